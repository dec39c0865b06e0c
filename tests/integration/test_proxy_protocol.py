#!/usr/bin/python3
"""PROXY protocol v1 and v2 on ferry's TCP and TLS listeners, with a real HAProxy in front.

HAProxy (Debian's haproxy, mode tcp) forwards three frontends to three ferry listeners that
trust 127.0.0.1: send-proxy-v2 to a tcp listener, send-proxy (v1) to another, send-proxy-v2 to a
tls listener (TLS passes through HAProxy untouched). Then:

  * a STUN Binding from 127.0.0.2 through HAProxy reports 127.0.0.2 and the client's own port
    (v2, v1 from 127.0.0.3, and over TLS), and a TURN Allocate through it answers the same
    XOR-MAPPED-ADDRESS;
  * limits.max_connections_per_ip counts the clients behind the proxy, not the proxy: a third
    connection from 127.0.0.2 is closed while 127.0.0.3 still gets in;
  * a connection to a PROXY listener from outside trusted_proxies (127.0.0.2 directly), one from a
    trusted address without a header, and one with a v1 header on the v2 listener are closed
    unanswered, and ferry_proxy_protocol_refused_total counts them by reason.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import ssl
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from turn_udp_client import ALLOCATE, REQUESTED_TRANSPORT, XOR_MAPPED_ADDRESS, _parse_xor_address, parse  # noqa: E402

check = harness.check


def haproxy_config(routes: list[tuple[int, int, str]]) -> str:
    lines = ["global", "  maxconn 200", "defaults", "  mode tcp", "  timeout connect 2s", "  timeout client 30s",
             "  timeout server 30s"]
    for i, (front, back, send) in enumerate(routes):
        lines += [f"frontend f{i}", f"  bind 127.0.0.1:{front}", f"  default_backend b{i}",
                  f"backend b{i}", f"  server ferry 127.0.0.1:{back} {send}"]
    return "\n".join(lines) + "\n"


def wait_port(port: int, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def closed_unanswered(port: int, local: str, payload: bytes) -> bool:
    """Connects from `local`, sends `payload` and a Binding, and expects the connection to end
    without any answer."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(3)
        s.bind((local, 0))
        s.connect(("127.0.0.1", port))
        try:
            s.sendall(payload + harness._binding_request()[0])
            return s.recv(4096) == b""
        except ConnectionResetError:
            return True
        except (TimeoutError, socket.timeout):
            return False


def allocate_mapped(port: int, local: str) -> tuple[tuple[str, int], tuple[str, int]]:
    """An unauthenticated Allocate over TCP through the proxy: ferry's 401 carries no
    XOR-MAPPED-ADDRESS, so authenticate once (long-term credential) and read the success."""
    import hashlib
    import hmac as hmac_mod
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(3)
        s.bind((local, 0))
        s.connect(("127.0.0.1", port))
        me = s.getsockname()[:2]
        transport = struct.pack("!HH", REQUESTED_TRANSPORT, 4) + bytes([17, 0, 0, 0])
        txid = os.urandom(12)
        s.sendall(struct.pack("!HHI", ALLOCATE, len(transport), 0x2112A442) + txid + transport)
        _t, _id, attrs = parse(harness.read_stun_message(s, time.monotonic() + 3))
        realm, nonce = attrs[0x0014], attrs[0x0015]
        key = hashlib.md5(f"{harness.DEFAULT_USER}:{realm.decode()}:{harness.DEFAULT_PASSWORD}".encode()).digest()

        def a(t: int, v: bytes) -> bytes:
            return struct.pack("!HH", t, len(v)) + v + b"\0" * (-len(v) % 4)
        body = transport + a(0x0006, harness.DEFAULT_USER.encode()) + a(0x0014, realm) + a(0x0015, nonce)
        txid = os.urandom(12)
        head = struct.pack("!HHI", ALLOCATE, len(body) + 24, 0x2112A442) + txid
        body += a(0x0008, hmac_mod.new(key, head + body, hashlib.sha1).digest())
        s.sendall(head + body)
        t, rtxid, attrs = parse(harness.read_stun_message(s, time.monotonic() + 3))
        if t != 0x0103 or XOR_MAPPED_ADDRESS not in attrs:
            raise RuntimeError(f"Allocate answered type {t:#06x}")
        return _parse_xor_address(attrs[XOR_MAPPED_ADDRESS], rtxid), me


def refused(http_port: int, reason: str) -> float:
    _s, _h, body = harness.http_get(http_port, "/metrics")
    m = re.search(rf'^ferry_proxy_protocol_refused_total{{reason="{reason}"}} (\S+)$', body, re.M)
    return float(m.group(1)) if m else -1


def run(args) -> None:
    if args.server != "ferry":
        raise harness.Skip("PROXY protocol listeners are ferry's")
    haproxy = shutil.which(args.haproxy) or (args.haproxy if os.access(args.haproxy, os.X_OK) else None)
    if not haproxy:
        raise harness.Skip(f"{args.haproxy} not installed (Debian package haproxy)")
    certs = harness.TempDir(prefix="ferry-it-proxy-")
    try:
        cfg = harness.config_from_args(args, ipv6=False, http_port=harness.pick_free_port(udp=False),
                                       limits={"max_connections_per_ip": 2}, workers=1)
        harness.add_tls(cfg, certs.path, dtls=False)
        v2_port, v1_port, tls_port = (harness.pick_free_port(udp=False, ipv6=False) for _ in range(3))
        trusted = "trusted_proxies: [127.0.0.1/32]"
        cfg.extra_listeners = [
            f"{{address: 127.0.0.1, port: {v2_port}, transport: tcp, proxy_protocol: v2, {trusted}}}",
            f"{{address: 127.0.0.1, port: {v1_port}, transport: tcp, proxy_protocol: v1, {trusted}}}",
            f"{{address: 127.0.0.1, port: {tls_port}, transport: tls, proxy_protocol: v2, {trusted}}}",
        ]
        fronts = [harness.pick_free_port(udp=False, ipv6=False) for _ in range(3)]
        hcfg = certs.path / "haproxy.cfg"
        hcfg.write_text(haproxy_config([(fronts[0], v2_port, "send-proxy-v2"), (fronts[1], v1_port, "send-proxy"),
                                        (fronts[2], tls_port, "send-proxy-v2")]))
        with harness.Server("ferry", cfg, binary=args.bin, keep_workdir=args.keep_logs) as server, \
                harness.BackgroundProcess([haproxy, "-db", "-f", str(hcfg)], "haproxy") as hap:
            harness.wait_http(cfg.http_port)
            check("haproxy listens", all(wait_port(p) for p in fronts), hap.log_text())

            mapped, me = harness.stun_binding_tcp("127.0.0.1", fronts[0], local="127.0.0.2")
            check("v2 through HAProxy: Binding from 127.0.0.2 reports 127.0.0.2 and the client's port",
                  mapped == me and me[0] == "127.0.0.2", f"mapped {mapped}, client {me}")
            mapped, me = harness.stun_binding_tcp("127.0.0.1", fronts[1], local="127.0.0.3")
            check("v1 through HAProxy: Binding from 127.0.0.3 reports 127.0.0.3 and the client's port",
                  mapped == me and me[0] == "127.0.0.3", f"mapped {mapped}, client {me}")
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as raw:
                raw.settimeout(3)
                raw.bind(("127.0.0.2", 0))
                raw.connect(("127.0.0.1", fronts[2]))
                me = raw.getsockname()[:2]
                with harness.insecure_tls_context().wrap_socket(raw, server_hostname="ferry.test") as t:
                    mapped = harness.stun_binding_over(t)
            check("v2 + TLS through HAProxy: Binding reports 127.0.0.2 and the client's port", mapped == me,
                  f"mapped {mapped}, client {me}")
            mapped, me = allocate_mapped(fronts[0], "127.0.0.2")
            check("v2 through HAProxy: Allocate's XOR-MAPPED-ADDRESS is the client's", mapped == me,
                  f"mapped {mapped}, client {me}")

            # max_connections_per_ip 2 counts the real clients behind the one proxy address.
            held = []
            for _ in range(2):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.settimeout(3)
                s.bind(("127.0.0.2", 0))
                s.connect(("127.0.0.1", fronts[0]))
                held.append(s)
                harness.stun_binding_over(s)
            check("a third connection of 127.0.0.2 behind the proxy is refused",
                  closed_unanswered(fronts[0], "127.0.0.2", b""))
            mapped, me = harness.stun_binding_tcp("127.0.0.1", fronts[0], local="127.0.0.3")
            check("while 127.0.0.3 behind the same proxy still gets in", mapped == me)
            for s in held:
                s.close()

            check("a connection to the PROXY listener from outside trusted_proxies is closed",
                  closed_unanswered(v2_port, "127.0.0.2", b""))
            check("a trusted address without a header is closed", closed_unanswered(v2_port, "127.0.0.1", b""))
            check("a v1 header on the v2 listener is closed",
                  closed_unanswered(v2_port, "127.0.0.1", b"PROXY TCP4 127.0.0.9 127.0.0.1 4000 3478\r\n"))
            check("a hand-made v1 header is believed from a trusted proxy",
                  harness.stun_binding_over(_connected_with(v1_port, b"PROXY TCP4 203.0.113.9 127.0.0.1 4000 3478\r\n"))
                  == ("203.0.113.9", 4000))
            # A v2 header trickling in byte by byte, and one sent in the same write as the Binding.
            v2_header = (b"\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x0c" + socket.inet_aton("198.51.100.77") +
                         socket.inet_aton("127.0.0.1") + struct.pack("!HH", 5555, v2_port))
            s = _connected_with(v2_port, b"")
            for byte in v2_header:
                s.sendall(bytes([byte]))
                time.sleep(0.002)
            check("a v2 header split into single bytes is read whole",
                  harness.stun_binding_over(s) == ("198.51.100.77", 5555))
            s = _connected_with(v2_port, b"")
            req, txid = harness._binding_request()
            s.sendall(v2_header.replace(struct.pack("!H", 5555), struct.pack("!H", 5556)) + req)
            check("a v2 header and a Binding in one write: the Binding is answered for the header's client",
                  harness.parse_binding_response(harness.read_stun_message(s, time.monotonic() + 3), txid)
                  == ("198.51.100.77", 5556))
            time.sleep(1.2)  # the counters reach /metrics on the next tick
            check("ferry_proxy_protocol_refused_total{reason=untrusted} counts it", refused(cfg.http_port, "untrusted") == 1,
                  str(refused(cfg.http_port, "untrusted")))
            check("ferry_proxy_protocol_refused_total{reason=bad_header} counts both",
                  refused(cfg.http_port, "bad_header") == 2, str(refused(cfg.http_port, "bad_header")))
            check("ferry still running", server.alive())
            check("haproxy still running", hap.alive())
    finally:
        certs.stop()


_sockets: list[socket.socket] = []


def _connected_with(port: int, header: bytes) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    _sockets.append(s)
    s.settimeout(3)
    s.connect(("127.0.0.1", port))
    s.sendall(header)
    return s


if __name__ == "__main__":
    ap = harness.common_arguments(__doc__.splitlines()[0])
    ap.add_argument("--haproxy", default="/usr/sbin/haproxy")
    rc = harness.run_test("proxy_protocol", lambda: run(ap.parse_args()))
    for s in _sockets:
        s.close()
    sys.exit(rc)
