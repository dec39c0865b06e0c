#!/usr/bin/python3
"""RFC 6062 TCP allocations on loopback: turnutils_uclient's TCP relay mode, then a Python client.

uclient scenarios (each must exit 0 with tot_send_msgs == tot_recv_msgs and 0 lost):
  tcp-relay-m1   -T -m 1       -T implies -t -y -c: two clients over TCP, each with a TCP
  tcp-relay-m5   -T -m 5       allocation; one Connects to the other's relayed address (active
                               open, §5.2), the other gets a ConnectionAttempt (passive, §5.3);
                               both ConnectionBind a new TCP connection and echo through them.
  tls-relay-m1   -T -S -m 1    the same over TLS client connections (only with --tls)

Then a client written here (standard library only, independent of ferry's C++ client) against a
TCP echo peer also written here:
  * Connect to the echo peer, ConnectionBind on a new connection, 1 MiB of random bytes through
    it and back, byte for byte (the echo peer and the client run concurrently, so the pipe's
    back-pressure is exercised both ways);
  * Connect to the same peer again: 446; to a closed port: 447;
  * a peer connecting to the relayed address: ConnectionAttempt with its address, then
    ConnectionBind and bytes both ways;
  * a peer from an IP without a permission (127.0.0.2): closed, no ConnectionAttempt;
  * the control connection closes: the data connections close too.

Usage: /usr/bin/python3 test_tcp_relay.py [--server ferry] [--bin PATH] --uclient PATH [--tls]
"""

import hashlib
import hmac
import os
import re
import socket
import struct
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402
from turn_udp_client import (MAGIC, REQUEST, SUCCESS, INDICATION, ALLOCATE, CREATE_PERMISSION,  # noqa: E402
                             USERNAME, MESSAGE_INTEGRITY, ERROR_CODE, XOR_PEER_ADDRESS, REALM, NONCE,
                             XOR_RELAYED_ADDRESS, REQUESTED_TRANSPORT, TurnError, _attr, _xor_address,
                             _parse_xor_address, parse)

NAME = "tcp_relay_rfc6062"
CONNECT, CONNECTION_BIND, CONNECTION_ATTEMPT = 0x000A, 0x000B, 0x000C
CONNECTION_ID = 0x002A

SCENARIOS = {
    "tcp-relay-m1": ["-T", "-m", "1"],
    "tcp-relay-m5": ["-T", "-m", "5"],
    "tls-relay-m1": ["-T", "-S", "-m", "1"],
}
TOTALS_RE = re.compile(r"start_mclient: tot_send_msgs=(\d+), tot_recv_msgs=(\d+)\s*$", re.M)
LOST_RE = re.compile(r"Total lost packets (\d+) \(([\d.]+)%\)")


def run_uclient(name, uclient, cfg, n):
    extra = SCENARIOS[name]
    port = cfg.tls_port if "-S" in extra else cfg.port
    cmd = [uclient, "-u", harness.DEFAULT_USER, "-w", cfg.users[harness.DEFAULT_USER], "-p", str(port),
           "-n", str(n), "-l", "100", *extra, "127.0.0.1"]
    r = harness.run_client(cmd, timeout=60)
    problems = []
    totals = TOTALS_RE.findall(r.output)
    lost = LOST_RE.search(r.output)
    if r.timed_out or r.returncode != 0:
        problems.append("timed out" if r.timed_out else f"exit status {r.returncode}")
    if not totals:
        problems.append("no final totals line")
    else:
        sent, recv = (int(x) for x in totals[-1])
        if sent < n or recv != sent:
            problems.append(f"sent {sent}, received {recv}: want received == sent >= {n}")
    if not lost or int(lost.group(1)) != 0:
        problems.append(f"lost packets: {lost.group(0) if lost else 'no line'}")
    if problems:
        tail = "\n".join("      " + l for l in r.output.strip().splitlines()[-20:])
        return [f"{name}: {'; '.join(problems)}\n    uclient output (tail):\n{tail}"]
    print(f"  ok   {name} ({' '.join(extra)}) in {r.elapsed:.1f}s: {totals[-1][0]} sent, {totals[-1][1]} echoed, 0 lost")
    return []


# ---- a TURN-over-TCP client, just enough for RFC 6062 ---------------------------------------------

class TurnTcp:
    def __init__(self, server, user, password, timeout=5.0):
        self.sock = socket.create_connection(server, timeout=timeout)
        self.user, self.password, self.timeout = user, password, timeout
        self.realm = self.nonce = self.key = None
        self.buffer = b""
        self.indications = []  # (type, txid, attrs) that arrived while waiting for an answer

    def close(self):
        self.sock.close()

    def _read_message(self, deadline):
        while True:
            if len(self.buffer) >= 20:
                size = 20 + struct.unpack("!H", self.buffer[2:4])[0]
                if len(self.buffer) >= size:
                    msg, self.buffer = self.buffer[:size], self.buffer[size:]
                    return parse(msg)
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no message from the server")
            self.sock.settimeout(left)
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("the server closed the connection")
            self.buffer += chunk

    def _build(self, method, attrs, txid, auth):
        body = b"".join(_attr(t, v) for t, v in attrs)
        if auth:
            body += _attr(USERNAME, self.user.encode()) + _attr(REALM, self.realm.encode()) + _attr(NONCE, self.nonce)
            head = struct.pack("!HHI", method | REQUEST, len(body) + 24, MAGIC) + txid
            body += _attr(MESSAGE_INTEGRITY, hmac.new(self.key, head + body, hashlib.sha1).digest())
        return struct.pack("!HHI", method | REQUEST, len(body), MAGIC) + txid + body

    def request(self, method, attrs, build_attrs=None):
        """Success attributes, or TurnError. build_attrs(txid) adds attributes that need the txid."""
        for _ in range(3):
            txid = os.urandom(12)
            extra = build_attrs(txid) if build_attrs else []
            self.sock.sendall(self._build(method, attrs + extra, txid, self.nonce is not None))
            deadline = time.monotonic() + self.timeout
            while True:
                t, rtxid, a = self._read_message(deadline)
                if rtxid == txid:
                    break
                self.indications.append((t, rtxid, a))
            if t == (method | SUCCESS):
                return a
            code = (a[ERROR_CODE][2] & 7) * 100 + a[ERROR_CODE][3] if ERROR_CODE in a else 0
            if code in (401, 438) and NONCE in a and REALM in a:
                fresh = self.nonce is None or code == 438
                self.nonce, self.realm = a[NONCE], a[REALM].decode()
                self.key = hashlib.md5(f"{self.user}:{self.realm}:{self.password}".encode()).digest()
                if fresh:
                    continue
            raise TurnError(code, a.get(ERROR_CODE, b"    ")[4:].decode(errors="replace"))
        raise TurnError(401, "challenge not accepted")

    def allocate_tcp(self):
        a = self.request(ALLOCATE, [(REQUESTED_TRANSPORT, bytes([6, 0, 0, 0]))])
        return _parse_xor_address(a[XOR_RELAYED_ADDRESS], b"\0" * 12)

    def create_permission(self, ip):
        self.request(CREATE_PERMISSION, [(XOR_PEER_ADDRESS, _xor_address(ip, 0, b"\0" * 12))])

    def connect(self, peer):
        a = self.request(CONNECT, [], lambda txid: [(XOR_PEER_ADDRESS, _xor_address(peer[0], peer[1], txid))])
        return a[CONNECTION_ID]

    def connection_bind(self, cid):
        self.request(CONNECTION_BIND, [(CONNECTION_ID, cid)])

    def wait_indication(self, method, timeout):
        deadline = time.monotonic() + timeout
        while True:
            for i, (t, txid, a) in enumerate(self.indications):
                if t == (method | INDICATION):
                    del self.indications[i]
                    return txid, a
            self.indications.append(self._read_message(deadline))


def recv_exactly(s, n, timeout, already=b""):
    """n bytes from socket s (after `already`, bytes read with the last STUN answer), or fewer on
    EOF or timeout."""
    out = bytearray(already)
    deadline = time.monotonic() + timeout
    while len(out) < n:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        s.settimeout(left)
        try:
            chunk = s.recv(min(65536, n - len(out)))
        except (TimeoutError, socket.timeout):
            break
        if not chunk:
            break
        out += chunk
    return bytes(out)


def leftover(t):
    """Bytes the client read past its last STUN message: on a data connection, the first data."""
    data, t.buffer = t.buffer, b""
    return data


def closed_within(s, timeout):
    """True when `s` reaches EOF (or a reset) within `timeout`, reading and discarding any bytes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        s.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            if not s.recv(65536):
                return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except (TimeoutError, socket.timeout):
            return False
    return False


class EchoPeer:
    """A TCP echo server on 127.0.0.1, one thread per connection, bounded by the test's lifetime."""

    def __init__(self):
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", harness.pick_free_port(udp=False, ipv6=False)))
        self.listener.listen(8)
        self.address = self.listener.getsockname()
        self.stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        self.listener.settimeout(0.2)
        while not self.stop:
            try:
                c, _ = self.listener.accept()
            except (TimeoutError, socket.timeout):
                continue
            except OSError:
                return
            threading.Thread(target=self._echo, args=(c,), daemon=True).start()

    def _echo(self, c):
        c.settimeout(30)
        try:
            while not self.stop:
                data = c.recv(65536)
                if not data:
                    break
                c.sendall(data)
        except OSError:
            pass
        c.close()

    def close(self):
        self.stop = True
        self.listener.close()


def python_client_checks(cfg):
    problems = []
    server = ("127.0.0.1", cfg.port)
    user, password = harness.DEFAULT_USER, cfg.users[harness.DEFAULT_USER]
    peer = EchoPeer()
    sockets = []
    try:
        control = TurnTcp(server, user, password)
        sockets.append(control)
        relayed = control.allocate_tcp()
        control.create_permission("127.0.0.1")

        # Active open through to the echo peer, 1 MiB each way at once.
        cid = control.connect(peer.address)
        data = TurnTcp(server, user, password)
        sockets.append(data)
        data.connection_bind(cid)
        payload = os.urandom(1 << 20)
        sender = threading.Thread(target=lambda: data.sock.sendall(payload), daemon=True)
        sender.start()
        echoed = recv_exactly(data.sock, len(payload), timeout=20, already=leftover(data))
        sender.join(5)
        if echoed != payload:
            problems.append(f"Connect: {len(echoed)} of {len(payload)} bytes came back"
                            + ("" if len(echoed) < len(payload) else " (different bytes)"))
        else:
            print(f"  ok   Connect + ConnectionBind: {len(payload)} bytes echoed byte for byte")

        # Same peer again while that connection is in use: 446; a closed port: 447.
        before = len(problems)
        for target, want in ((peer.address, 446), (("127.0.0.1", harness.pick_free_port(udp=False, ipv6=False)), 447)):
            try:
                control.connect(target)
                problems.append(f"Connect to {target}: succeeded, want {want}")
            except TurnError as e:
                if e.code != want:
                    problems.append(f"Connect to {target}: {e.code}, want {want}")
        if len(problems) == before:
            print("  ok   Connect again: 446; to a closed port: 447")

        # Passive open: a peer connects to the relayed address.
        p = socket.create_connection(tuple(relayed), timeout=5, source_address=("127.0.0.1", 0))
        sockets.append(p)
        _txid, attempt = control.wait_indication(CONNECTION_ATTEMPT, timeout=5)
        seen = _parse_xor_address(attempt[XOR_PEER_ADDRESS], _txid)
        if seen != p.getsockname():
            problems.append(f"ConnectionAttempt names {seen}, the peer is {p.getsockname()}")
        early = b"sent by the peer before the bind"
        p.sendall(early)  # must wait in the server until the client binds
        data2 = TurnTcp(server, user, password)
        sockets.append(data2)
        data2.connection_bind(attempt[CONNECTION_ID])
        got = recv_exactly(data2.sock, len(early), timeout=5, already=leftover(data2))
        data2.sock.sendall(b"client to peer")
        back = recv_exactly(p, len(b"client to peer"), timeout=5)
        if got != early or back != b"client to peer":
            problems.append(f"passive data connection: client got {got!r}, peer got {back!r}")
        else:
            print("  ok   peer connects: ConnectionAttempt, ConnectionBind, bytes both ways (early ones kept)")

        # A peer without a permission (127.0.0.2) is closed at once and never announced.
        stranger = socket.create_connection(tuple(relayed), timeout=5, source_address=("127.0.0.2", 0))
        sockets.append(stranger)
        if not closed_within(stranger, 3):
            problems.append("a peer without a permission was not closed")
        try:
            control.wait_indication(CONNECTION_ATTEMPT, timeout=1)
            problems.append("a peer without a permission was announced")
        except TimeoutError:
            print("  ok   peer without a permission: closed, not announced")

        # The allocation ends with its control connection, and its data connections with it.
        control.close()
        if not (closed_within(data.sock, 5) and closed_within(data2.sock, 5) and closed_within(p, 5)):
            problems.append("data connections outlived the control connection")
        else:
            print("  ok   control connection closed: data connections closed")
    except (OSError, TurnError, TimeoutError, KeyError) as e:
        problems.append(f"python client: {type(e).__name__}: {e}")
    finally:
        for s in sockets:
            try:
                (s.close if hasattr(s, "close") else s.sock.close)()
            except OSError:
                pass
        peer.close()
    return problems


def main():
    ap = harness.common_arguments(__doc__.splitlines()[0])
    ap.add_argument("--uclient", default="turnutils_uclient")
    ap.add_argument("--tls", action="store_true", help="also run uclient over TLS (needs openssl)")
    ap.add_argument("-n", type=int, default=50, help="uclient messages per session (default 50)")
    args = ap.parse_args()
    label = f"{NAME} [{args.server}]"
    names = [n for n in SCENARIOS if args.tls or not n.startswith("tls-")]

    def body():
        uclient = harness.require_tool(args.uclient)
        cfg = harness.config_from_args(args, tcp=True)
        if args.tls:
            harness.add_tls(cfg, harness.TempDir(prefix="ferry-it-cert-").path, dtls=False)
        problems = harness.CHECKS.problems
        with harness.server_from_args(args, cfg) as server:
            print(f"  {args.server} on 127.0.0.1:{cfg.port}, relay 127.0.0.1:{cfg.relay_min}-{cfg.relay_max}")
            for name in names:
                problems += run_uclient(name, uclient, cfg, args.n)
            if args.server == "ferry":  # the checks below use ferry's exact answers
                problems += python_client_checks(cfg)
            if not server.alive():
                problems.append(f"{args.server} exited (status {server.proc.returncode})")
            if problems or args.show_server_log:
                server.dump_log("server log")
        return f"{len(names)} uclient scenarios ({', '.join(names)}) and the RFC 6062 checks"

    return harness.run_test(label, body)


if __name__ == "__main__":
    sys.exit(main())
