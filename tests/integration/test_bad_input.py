#!/usr/bin/python3
"""Bad input on the TCP, TLS and DTLS listeners while real clients keep relaying (issue 5).

Two turnutils_uclient sessions, one over TLS (-t -S) and one over DTLS (-S), relay through the
server to turnutils_peer from before the first bad input until after the last one, and must lose
nothing. Meanwhile, with limits.handshake_timeout 2 s and limits.max_connections_per_ip lowered:

  garbage         an HTTP request on the TLS port and bytes that are not STUN on the TCP port:
                  closed at once
  big-length      a STUN header whose length (65532) could never fit the read buffer: closed at once
  hello-silence   a TLS ClientHello and then silence: closed after the handshake timeout
  partial-64k     ChannelData claiming 65535 bytes, a little of it sent, then silence, over TCP and
                  over TLS: closed after the handshake timeout (no first complete frame)
  dtls-noise      non-DTLS datagrams on the DTLS port get no answer; 300 cookieless ClientHellos from
                  300 source ports get HelloVerifyRequests and leave no state
  flood           1000 connections from 127.0.0.2 each sending one byte: all but the per-address
                  limit closed at once, the rest after the handshake timeout; the server's resident
                  memory grows by less than 64 MiB
  after           a TLS Binding from 127.0.0.2 works again once the flood is gone

Every wait is bounded; every socket is closed at the end.

Usage: /usr/bin/python3 test_bad_input.py [--bin PATH] [--uclient PATH] [--peer PATH]
"""

import re
import selectors
import socket
import ssl
import struct
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402

NAME = "bad_input"
HANDSHAKE_TIMEOUT = 2
PER_IP_LIMIT = 20
FLOOD = 1000
FLOOD_SOURCE = "127.0.0.2"
DTLS_SOURCE = "127.0.0.3"

TOTALS_RE = re.compile(r"start_mclient: tot_send_msgs=(\d+), tot_recv_msgs=(\d+)\s*$", re.M)
LOST_RE = re.compile(r"Total lost packets (\d+) \(([\d.]+)%\)")


# ---- helpers -------------------------------------------------------------------------------------

def connect(port, source=None, tls=False):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(5)
    if source:
        s.bind((source, 0))
    s.connect(("127.0.0.1", port))
    if tls:
        s = harness.insecure_tls_context().wrap_socket(s)
    return s


def wait_closed(s, deadline):
    """Reads (and discards) until the server closes; returns the time it did, or None at the deadline."""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        s.settimeout(left)
        try:
            if not s.recv(65536):
                return time.monotonic()
        except (socket.timeout, TimeoutError):
            return None
        except (ssl.SSLError, OSError):  # reset, or a TLS alert followed by the close
            return time.monotonic()


def client_hello():
    """The bytes of a real TLS ClientHello (Python's ssl over memory BIOs)."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = harness.insecure_tls_context().wrap_bio(incoming, outgoing)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


def dtls_client_hello(seq):
    """A minimal DTLS 1.2 ClientHello without a cookie (RFC 6347 §4.2.1)."""
    body = struct.pack("!H", 0xFEFD) + bytes(32) + b"\x00" + b"\x00"  # version, random, session id, cookie
    body += struct.pack("!HH", 2, 0xC02B) + b"\x01\x00"  # one cipher suite, null compression
    handshake = struct.pack("!B", 1) + len(body).to_bytes(3, "big") + struct.pack("!H", 0) + (0).to_bytes(3, "big")
    handshake += len(body).to_bytes(3, "big") + body
    record = struct.pack("!BH", 22, 0xFEFF) + struct.pack("!H", 0) + seq.to_bytes(6, "big")
    return record + struct.pack("!H", len(handshake)) + handshake


def rss_kib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def closed_between(name, opened_at, closed_at, low, high):
    if closed_at is None:
        return [f"{name}: still open {high:.1f} s after it was opened"]
    took = closed_at - opened_at
    if took < low:
        return [f"{name}: closed after {took:.2f} s, before the {HANDSHAKE_TIMEOUT} s handshake timeout"]
    print(f"    {name}: closed after {took:.2f} s")
    return []


# ---- the bad inputs ------------------------------------------------------------------------------

def garbage(cfg):
    problems = []
    cases = [("http-on-tls", cfg.tls_port, b"GET / HTTP/1.1\r\nHost: ferry\r\n\r\n"),
             ("junk-on-tcp", cfg.port, bytes(range(0xC0, 0x100)) * 2),
             ("big-length", cfg.port, struct.pack("!HHI", 0x0001, 0xFFFC, 0x2112A442) + bytes(12) + bytes(100))]
    for name, port, data in cases:
        s = connect(port)
        t0 = time.monotonic()
        s.sendall(data)
        problems += closed_between(name, t0, wait_closed(s, t0 + 2), 0, 2)
        s.close()
    return problems


def silent(cfg):
    """Connections that never complete a first frame, all at once, each closed by the deadline."""
    channel_data_64k = struct.pack("!HH", 0x4001, 0xFFFF) + bytes(1000)
    conns = []
    s = connect(cfg.tls_port)
    s.sendall(client_hello())
    conns.append(("hello-silence", s))
    s = connect(cfg.port)
    s.sendall(channel_data_64k)
    conns.append(("partial-64k tcp", s))
    s = connect(cfg.tls_port, tls=True)
    s.sendall(channel_data_64k)
    conns.append(("partial-64k tls", s))
    t0 = time.monotonic()
    problems = []
    for name, s in conns:
        problems += closed_between(name, t0, wait_closed(s, t0 + HANDSHAKE_TIMEOUT + 3), HANDSHAKE_TIMEOUT - 0.5,
                                   HANDSHAKE_TIMEOUT + 3)
        s.close()
    return problems


def dtls_noise(cfg):
    problems = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((DTLS_SOURCE, 0))
        s.settimeout(0.5)
        for junk in (b"\x00\x01\x00\x00\x21\x12\xa4\x42" + bytes(12), b"\xff" * 100, b"\x16\xfe"):
            s.sendto(junk, ("127.0.0.1", cfg.tls_port))
        try:
            data = s.recv(2048)
            problems.append(f"dtls-noise: non-DTLS datagrams were answered ({data[:16].hex()})")
        except socket.timeout:
            pass
    answered = 0
    socks = []
    try:
        for i in range(300):
            u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            socks.append(u)
            u.bind((DTLS_SOURCE, 0))
            u.sendto(dtls_client_hello(i), ("127.0.0.1", cfg.tls_port))
        deadline = time.monotonic() + 3
        for u in socks:
            u.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                d = u.recv(2048)
                answered += len(d) > 13 and d[0] == 22 and d[13] == 3  # HelloVerifyRequest
            except socket.timeout:
                pass
    finally:
        for u in socks:
            u.close()
    if answered < 240:  # loopback UDP under a burst may drop a few; none should need state
        problems.append(f"dtls-noise: only {answered}/300 cookieless ClientHellos got a HelloVerifyRequest")
    print(f"    dtls-noise: {answered}/300 ClientHellos answered with a HelloVerifyRequest")
    return problems


def flood(cfg, server):
    problems = []
    rss_before = rss_kib(server.proc.pid)
    sel = selectors.DefaultSelector()
    open_socks = set()
    t0 = time.monotonic()
    try:
        for i in range(FLOOD):
            if time.monotonic() - t0 > 30:
                problems.append(f"flood: opening {FLOOD} connections took over 30 s (stopped at {i})")
                break
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.settimeout(5)
            s.bind((FLOOD_SOURCE, 0))
            try:
                s.connect(("127.0.0.1", cfg.tls_port))
                s.send(b"\x16")
            except OSError:
                s.close()  # refused or reset while opening: closed is what we want anyway
                continue
            s.setblocking(False)
            sel.register(s, selectors.EVENT_READ)
            open_socks.add(s)
        opened = time.monotonic()
        rss_peak = rss_kib(server.proc.pid)

        def drain(until):
            while open_socks and time.monotonic() < until:
                for key, _ in sel.select(timeout=max(0.0, min(0.2, until - time.monotonic()))):
                    s = key.fileobj
                    try:
                        data = s.recv(4096)
                    except BlockingIOError:
                        continue
                    except OSError:
                        data = b""
                    if not data:
                        sel.unregister(s)
                        s.close()
                        open_socks.discard(s)

        drain(opened + 1.0)
        still_open = len(open_socks)
        if still_open > PER_IP_LIMIT:
            problems.append(f"flood: {still_open} connections still open 1 s after the flood; the limit is {PER_IP_LIMIT}")
        drain(opened + HANDSHAKE_TIMEOUT + 3)
        if open_socks:
            problems.append(f"flood: {len(open_socks)} connections outlived the handshake timeout")
        growth = (rss_peak - rss_before) / 1024
        if growth > 64:
            problems.append(f"flood: resident memory grew by {growth:.1f} MiB")
        print(f"    flood: {FLOOD} connections in {opened - t0:.1f} s, {still_open} left after 1 s, "
              f"all closed {time.monotonic() - opened:.1f} s after; RSS {rss_before} -> {rss_peak} KiB")
    finally:
        for s in open_socks:
            s.close()
        sel.close()
    return problems


def after(cfg):
    try:
        mapped, local, _ = harness.stun_binding_tls("127.0.0.1", cfg.tls_port, local=FLOOD_SOURCE)
    except (OSError, TimeoutError, ValueError) as exc:
        return [f"after: a TLS Binding from {FLOOD_SOURCE} failed after the flood: {exc}"]
    return [] if tuple(mapped) == tuple(local) else [f"after: mapped {mapped}, client is {local}"]


# ---- the relaying clients ------------------------------------------------------------------------

def relay_result(name, proc, n, finished_early):
    out = proc.log_text(200000)
    problems = []
    if proc.proc.returncode != 0:
        problems.append(f"{name}: exit status {proc.proc.returncode}")
    totals = TOTALS_RE.findall(out)
    lost = LOST_RE.search(out)
    if not totals or not lost:
        problems.append(f"{name}: no final report")
    else:
        sent, recv = (int(x) for x in totals[-1])
        if sent < n or recv != sent or float(lost.group(2)) > 0:
            problems.append(f"{name}: sent {sent}, received {recv}, {lost.group(0)}")
        else:
            print(f"    {name}: {sent} sent, {recv} received through the relay, none lost")
    if finished_early:
        problems.append(f"{name}: finished before the bad input did, so it did not relay throughout; raise -n")
    if problems:
        tail = "\n".join("      " + l for l in out.strip().splitlines()[-15:])
        problems[-1] += f"\n    {name} output (tail):\n{tail}"
    return problems


def main():
    ap = harness.common_arguments(__doc__.splitlines()[0])
    ap.add_argument("--uclient", default="turnutils_uclient")
    ap.add_argument("--peer", default="turnutils_peer")
    # 700 messages every 40 ms: 28 s, about three times what the bad input takes under ASan.
    ap.add_argument("-n", type=int, default=700, help="messages each relaying client sends (every 40 ms)")
    args = ap.parse_args()
    label = f"{NAME} [{args.server}]"

    def body():
        if args.server != "ferry":
            return ["only ferry is supported"]
        problems = harness.CHECKS.problems
        uclient = harness.require_tool(args.uclient)
        peer_tool = harness.require_tool(args.peer)
        cfg = harness.config_from_args(args, tcp=True)
        harness.add_tls(cfg, harness.TempDir(prefix="ferry-it-cert-").path)
        cfg.limits = {"max_connections_per_ip": PER_IP_LIMIT, "handshake_timeout": HANDSHAKE_TIMEOUT,
                      "connection_idle_timeout": 60}
        peer_port = harness.pick_free_port(tcp=False, ipv6=False)
        with harness.BackgroundProcess([peer_tool, "-L", "127.0.0.1", "-p", str(peer_port)], "turnutils_peer"), \
                harness.server_from_args(args, cfg) as server:
            if not harness.udp_echo_ready("127.0.0.1", peer_port, timeout=5.0):
                raise harness.ServerError("turnutils_peer does not echo")
            print(f"  ferry: tcp {cfg.port}, tls/dtls {cfg.tls_port}; limits {cfg.limits}")
            common = ["-c", "-u", harness.DEFAULT_USER, "-w", cfg.users[harness.DEFAULT_USER], "-p", str(cfg.tls_port),
                      "-e", "127.0.0.1", "-r", str(peer_port), "-n", str(args.n), "-z", "40", "-l", "100", "127.0.0.1"]
            clients = [("uclient tls", harness.BackgroundProcess(["stdbuf", "-oL", "-eL", uclient, "-t", "-S", *common],
                                                                 "uclient-tls")),
                       ("uclient dtls", harness.BackgroundProcess(["stdbuf", "-oL", "-eL", uclient, "-S", *common],
                                                                  "uclient-dtls"))]
            # Relaying has begun when each reports messages received.
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and not all(
                    re.search(r"tot_recv_msgs=[1-9]", c.log_text()) for _, c in clients):
                time.sleep(0.2)
            for name, c in clients:
                if not re.search(r"tot_recv_msgs=[1-9]", c.log_text()):
                    raise harness.ServerError(f"{name} is not relaying after 15 s:\n{c.log_text()[-2000:]}")
            started = time.monotonic()
            for step, run in (("garbage", lambda: garbage(cfg)), ("silent", lambda: silent(cfg)),
                              ("dtls-noise", lambda: dtls_noise(cfg)), ("flood", lambda: flood(cfg, server)),
                              ("after", lambda: after(cfg))):
                found = run()
                if not server.alive():
                    found.append(f"ferry exited (status {server.proc.returncode}) during {step}")
                harness.check(step, not found, "\n    ".join(p.replace("\n", "\n    ") for p in found))
                if not server.alive():
                    break
            print(f"  bad input took {time.monotonic() - started:.1f} s; waiting for the relaying clients")
            early = {name for name, c in clients if not c.alive()}
            for name, c in clients:
                try:
                    c.proc.wait(timeout=args.n * 0.04 + 60)
                except Exception:  # noqa: BLE001
                    problems.append(f"{name} did not finish")
                problems += relay_result(name, c, args.n, name in early)
                c.stop()
            if problems or args.show_server_log:
                server.dump_log("server log")
        return (f"garbage, a silent ClientHello, 64 KiB claims, DTLS noise and a {FLOOD}-connection flood were "
                "bounded while TLS and DTLS clients relayed without loss")

    return harness.run_test(label, body)


if __name__ == "__main__":
    sys.exit(main())
