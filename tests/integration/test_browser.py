#!/usr/bin/python3
"""Headless chromium relays a WebRTC data channel through the server (tests/browser/relay_datachannel.mjs).

Starts the server (ferry or coturn) on loopback, then runs
    node tests/browser/relay_datachannel.mjs --turn-url turn:127.0.0.1:PORT?transport=udp --username alice
        --expect-relay-address 127.0.0.1 --expect-relay-ports MIN-MAX
with the password in the FERRY_TEST_CREDENTIAL environment variable (never in argv).  Both peer
connections use iceTransportPolicy 'relay'; the script asserts an echo over the data channel and
relay/relay selected candidate pairs.

With --transport tls the server gets a TLS listener with a certificate made by `openssl req`, the
only ICE server is turns:127.0.0.1:TLSPORT?transport=tcp, and chromium runs with
--ignore-certificate-errors.

Needs: node >= 20, `npm ci` done in tests/browser, Debian chromium at /usr/bin/chromium
(override with --chromium or $CHROMIUM_BIN).

Usage: /usr/bin/python3 test_browser.py [--server ferry|coturn] [--bin PATH] [--transport udp|tcp|tls]
"""

import os
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402

NAME = "browser_relay_datachannel"
BROWSER_DIR = harness.REPO_ROOT / "tests" / "browser"
SCRIPT = BROWSER_DIR / "relay_datachannel.mjs"


def main():
    ap = harness.common_arguments(__doc__.splitlines()[0])
    ap.add_argument("--node", default=os.environ.get("NODE", "node"))
    ap.add_argument("--chromium", default=os.environ.get("CHROMIUM_BIN", "/usr/bin/chromium"))
    ap.add_argument("--transport", choices=["udp", "tcp", "tls"], default="udp",
                    help="client-to-server transport: turn: over udp or tcp, or turns: (relay is UDP either way)")
    ap.add_argument("--timeout", type=float, default=30.0, help="in-page timeout in seconds (default 30)")
    ap.add_argument("--verbose", action="store_true", help="pass --verbose to the node script")
    args = ap.parse_args()
    label = f"{NAME} [{args.server}, {args.transport}]"

    def body():
        node = shutil.which(args.node) if os.sep not in args.node else args.node
        setup = []
        if not node:
            setup.append(f"setup: node not found ({args.node})")
        if not (BROWSER_DIR / "node_modules" / "playwright-core").is_dir():
            setup.append(f"setup: playwright-core missing: run (cd {BROWSER_DIR} && npm ci --no-audit --no-fund)")
        if not os.access(args.chromium, os.X_OK):
            setup.append(f"setup: chromium not found at {args.chromium} (apt-get install -y chromium)")
        if setup:
            return setup

        cfg = harness.config_from_args(args, tcp=True)
        if args.transport == "tls":
            harness.add_tls(cfg, harness.TempDir(prefix="ferry-it-cert-").path, dtls=False)
        server = harness.server_from_args(args, cfg)
        env = dict(os.environ)
        env["FERRY_TEST_CREDENTIAL"] = cfg.users[harness.DEFAULT_USER]
        env["CHROMIUM_BIN"] = args.chromium
        # Chromium's profile and playwright's artifacts go under TMPDIR: give them a private one that
        # is removed even when node had to be killed before it could clean up after itself.
        tmp = harness.TempDir(prefix="ferry-it-browser-")
        env["TMPDIR"] = str(tmp.path)
        try:
            with server:
                if args.transport == "tls":
                    turn_url = f"turns:127.0.0.1:{cfg.tls_port}?transport=tcp"
                else:
                    turn_url = f"turn:127.0.0.1:{cfg.port}?transport={args.transport}"
                cmd = [node, str(SCRIPT), "--turn-url", turn_url, "--username", harness.DEFAULT_USER,
                       "--timeout", str(int(args.timeout)), "--chromium", args.chromium,
                       "--expect-relay-address", cfg.relay_addresses[0],
                       "--expect-relay-ports", f"{cfg.relay_min}-{cfg.relay_max}",
                       "--expect-relay-protocol", args.transport]
                if args.verbose:
                    cmd.append("--verbose")
                if args.transport == "tls":
                    cmd.append("--ignore-certificate-errors")  # the test certificate is self-signed
                # The script has its own watchdog at timeout+20s; this outer bound is a backstop.
                r = harness.run_client(cmd, timeout=args.timeout + 45, env=env, cwd=str(BROWSER_DIR),
                                       line_buffered=False)
                print(r.output.rstrip())
                harness.check("the data channel opens through the relay",
                              not r.timed_out and r.returncode == 0
                              and any(l.startswith("PASS ") for l in r.output.splitlines()),
                              "timed out" if r.timed_out else f"node exit status {r.returncode}")
                harness.check(f"{args.server} still running at the end", server.alive(),
                              f"exit status {server.proc.returncode}")
                if args.show_server_log or harness.CHECKS.problems:
                    server.dump_log("server log")
        finally:
            tmp.stop()
        return f"{args.transport} to the server, UDP relay"

    return harness.run_test(label, body)


if __name__ == "__main__":
    sys.exit(main())
