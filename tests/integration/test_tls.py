#!/usr/bin/python3
"""TLS and DTLS listeners: protocol versions with `openssl s_client`, ALPN, and certificate reload.

The server gets a TLS and a DTLS listener on one port number with a self-signed certificate made
by `openssl req`. Checks:

  versions     s_client -tls1 and -tls1_1 are refused with a protocol_version alert (the client is
               allowed to offer them: -cipher DEFAULT@SECLEVEL=0), -tls1_2 and -tls1_3 complete;
               over UDP -dtls1 is refused and -dtls1_2 completes
  alpn         -alpn stun.turn and -alpn stun.nat-discovery are selected (RFC 7443); a client
               offering only h2 still gets its handshake, without ALPN
  binding      a STUN Binding over TLS (Python's ssl) gets the client's address back
  sighup       the certificate files are replaced; connections keep working, new handshakes
               still see the old certificate until SIGHUP, then the new one
  watch        with tls.reload_interval: 1 a replaced certificate is served without a signal

Usage: /usr/bin/python3 test_tls.py [--bin PATH] [--openssl PATH] [--check NAME ...]
"""

import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402

NAME = "tls"
CHECKS = ["versions", "alpn", "binding", "sighup", "watch"]


def s_client(openssl, args, timeout=15):
    """Runs `openssl s_client` with no input (it ends after the handshake); returns its output."""
    r = subprocess.run([openssl, "s_client", *args], stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=timeout)
    return r.stdout.decode(errors="replace") + r.stderr.decode(errors="replace")


def negotiated(out):
    """The protocol and cipher of a completed handshake, or None."""
    for line in out.splitlines():
        if line.startswith("New, ") and "Cipher is (NONE)" not in line:
            return line.strip()
    return None


def check_versions(openssl, cfg):
    problems = []
    target = ["-connect", f"127.0.0.1:{cfg.tls_port}", "-cipher", "DEFAULT@SECLEVEL=0"]
    for flag in ("-tls1", "-tls1_1"):
        out = s_client(openssl, [*target, flag])
        if negotiated(out):
            problems.append(f"{flag} was accepted: {negotiated(out)}")
        elif "alert protocol version" not in out:
            problems.append(f"{flag}: no protocol_version alert from the server:\n{out[-600:]}")
    for flag, want in (("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")):
        out = s_client(openssl, [*target, flag])
        got = negotiated(out)
        if not got or want not in got:
            problems.append(f"{flag}: handshake did not complete as {want}:\n{out[-600:]}")
    out = s_client(openssl, [*target, "-dtls1"])
    if negotiated(out):
        problems.append(f"-dtls1 was accepted: {negotiated(out)}")
    elif "alert protocol version" not in out:
        problems.append(f"-dtls1: no protocol_version alert from the server:\n{out[-600:]}")
    out = s_client(openssl, [*target, "-dtls1_2"])
    if not negotiated(out) or "DTLSv1.2" not in out:
        problems.append(f"-dtls1_2: handshake did not complete:\n{out[-600:]}")
    return problems


def check_alpn(openssl, cfg):
    problems = []
    target = ["-connect", f"127.0.0.1:{cfg.tls_port}"]
    for proto in ("stun.turn", "stun.nat-discovery"):
        out = s_client(openssl, [*target, "-alpn", f"h2,{proto}"])
        if f"ALPN protocol: {proto}" not in out:
            problems.append(f"ALPN {proto} not selected:\n{out[-600:]}")
    out = s_client(openssl, [*target, "-alpn", "h2"])
    if not negotiated(out) or "No ALPN negotiated" not in out:
        problems.append(f"a client offering only h2 should get a handshake without ALPN:\n{out[-600:]}")
    out = s_client(openssl, ["-dtls1_2", *target, "-alpn", "stun.turn"])
    if "ALPN protocol: stun.turn" not in out:
        problems.append(f"DTLS: ALPN stun.turn not selected:\n{out[-600:]}")
    return problems


def check_binding(cfg):
    mapped, local, version = harness.stun_binding_tls("127.0.0.1", cfg.tls_port)
    if tuple(mapped) != tuple(local):
        return [f"Binding over TLS mapped {mapped}, client is {local}"]
    print(f"    Binding over {version}: {mapped[0]}:{mapped[1]}")
    return []


def der_of(path):
    return ssl.PEM_cert_to_DER_cert(Path(path).read_text())


class Conn:
    """An open TLS connection to the server, to see that reloads leave it alone."""

    def __init__(self, port):
        raw = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.s = harness.insecure_tls_context().wrap_socket(raw)

    def cert(self):
        return self.s.getpeercert(binary_form=True)

    def binding_ok(self):
        try:
            harness.stun_binding_over(self.s)
            return True
        except (OSError, TimeoutError, ValueError):
            return False

    def close(self):
        self.s.close()


def served_cert(port):
    c = Conn(port)
    try:
        return c.cert()
    finally:
        c.close()


def replace_files(cfg, cert, key):
    """Replaces the server's files by rename, as certificate renewal tools do."""
    for src, dst in ((key, cfg.key_file), (cert, cfg.cert_file)):
        tmp = dst + ".new"
        Path(tmp).write_bytes(Path(src).read_bytes())
        os.replace(tmp, dst)


def check_sighup(server, cfg, workdir):
    problems = []
    old = der_of(cfg.cert_file)
    new_cert, new_key = harness.make_test_certificate(workdir, "renewed", "renewed.ferry.test")
    before = Conn(cfg.tls_port)
    if before.cert() != old or not before.binding_ok():
        problems.append("the first connection did not get the configured certificate")
    replace_files(cfg, new_cert, new_key)
    if served_cert(cfg.tls_port) != old:
        problems.append("the new certificate was served before SIGHUP (reload_interval is 0)")
    os.kill(server.proc.pid, signal.SIGHUP)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and served_cert(cfg.tls_port) != der_of(new_cert):
        time.sleep(0.1)
    if served_cert(cfg.tls_port) != der_of(new_cert):
        problems.append("new handshakes do not get the new certificate 5 s after SIGHUP")
    if not before.binding_ok():
        problems.append("the connection opened before the reload stopped working")
    before.close()
    if not server.alive():
        problems.append("the server exited on SIGHUP")
    return problems


def check_watch(server, cfg, workdir):
    new_cert, new_key = harness.make_test_certificate(workdir, "watched", "watched.ferry.test")
    before = Conn(cfg.tls_port)
    replace_files(cfg, new_cert, new_key)
    deadline = time.monotonic() + 6
    while time.monotonic() < deadline and served_cert(cfg.tls_port) != der_of(new_cert):
        time.sleep(0.2)
    problems = []
    if served_cert(cfg.tls_port) != der_of(new_cert):
        problems.append("the replaced certificate was not picked up within 6 s (reload_interval 1)")
    if not before.binding_ok():
        problems.append("the connection opened before the reload stopped working")
    before.close()
    return problems


def main():
    ap = harness.common_arguments(__doc__.splitlines()[0])
    ap.add_argument("--openssl", default="openssl")
    ap.add_argument("--check", action="append", choices=CHECKS, help="run just these")
    args = ap.parse_args()
    checks = args.check or CHECKS
    label = f"{NAME} [{args.server}]"

    def body():
        if args.server != "ferry":
            return ["only ferry is supported (coturn accepts TLS 1.0/1.1 by default)"]
        openssl = harness.require_tool(args.openssl)
        workdir = harness.TempDir(prefix="ferry-it-tls-").path
        # One server with reload only on SIGHUP, one that watches its files.
        runs = [("sighup-only", {"reload_interval": 0}, [c for c in checks if c != "watch"]),
                ("watching", {"reload_interval": 1}, [c for c in checks if c == "watch"])]
        for run_name, tls_keys, run_checks in runs:
            if not run_checks:
                continue
            run_dir = workdir / run_name
            run_dir.mkdir()
            cfg = harness.config_from_args(args, tcp=True)
            harness.add_tls(cfg, run_dir)
            cfg.tls = dict(tls_keys)
            with harness.server_from_args(args, cfg) as server:
                print(f"  ferry: tls/dtls on 127.0.0.1:{cfg.tls_port}, tls.reload_interval {tls_keys['reload_interval']}")
                for name in run_checks:
                    if name == "versions":
                        problems = check_versions(openssl, cfg)
                    elif name == "alpn":
                        problems = check_alpn(openssl, cfg)
                    elif name == "binding":
                        problems = check_binding(cfg)
                    elif name == "sighup":
                        problems = check_sighup(server, cfg, run_dir)
                    else:
                        problems = check_watch(server, cfg, run_dir)
                    if not server.alive():
                        problems.append(f"ferry exited (status {server.proc.returncode})")
                    harness.check(name, not problems, "\n    ".join(p.replace("\n", "\n    ") for p in problems))
                if args.show_server_log or harness.CHECKS.problems:
                    server.dump_log("server log")
        return f"{len(checks)} checks ({', '.join(checks)})"

    return harness.run_test(label, body)


if __name__ == "__main__":
    sys.exit(main())
