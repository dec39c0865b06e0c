#!/usr/bin/python3
"""Smoke test of ferry-loadgen and ferry-forwarder against a real ferry on loopback (label bench).

Small numbers, a few seconds: every mode runs and reports, packets arrive on every allocation
(client legs over UDP, TCP and TLS, IPv4 and IPv6; RFC 6062 TCP peer legs), a fixed rate is kept,
the loopback guard and wrong credentials are refused. Reports through the harness (an indented
ok/FAIL line per check, one PASS/FAIL line); the exit status is the verdict.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "integration"))
import harness  # noqa: E402

NAME = "bench_loadgen_smoke"
USER = "bench"


def check(cond: bool, what: str, detail: str = "") -> None:
    harness.check(what, cond, detail)


def loadgen(args, env, *extra: str, expect_json: bool = True):
    cmd = [args.loadgen, "--json", *extra]
    # No stdbuf: the tool flushes its own output, and stdbuf's LD_PRELOAD upsets ASan builds.
    r = harness.run_client(cmd, timeout=60, env=env, line_buffered=False)
    report = None
    for line in reversed(r.output.splitlines()):
        if line.startswith("{"):
            report = json.loads(line)
            break
    if expect_json and report is None:
        print(r.output[-2000:], file=sys.stderr)
    return r, report


def run() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ferry", required=True)
    ap.add_argument("--loadgen", required=True)
    ap.add_argument("--forwarder", required=True)
    args = ap.parse_args()

    certs = harness.TempDir("ferry-loadgen-smoke-")
    cert, key = harness.make_test_certificate(certs.path)
    password = secrets.token_urlsafe(12)
    env = dict(os.environ, FERRY_BENCH_PASSWORD=password)
    port = harness.pick_free_port(udp=True, tcp=False, ipv6=False)
    relay_min, relay_max = harness.pick_free_range(200)
    cfg = harness.ServerConfig(port=port, relay_min=relay_min, relay_max=relay_max, users={USER: password},
                               relay_addresses=["127.0.0.1", "::1"], ipv6=True, tcp=True, ipv6_tcp=True,
                               peers_allow=["127.0.0.0/8", "::1/128"], shared_secrets=[], log_level="warn",
                               tls_port=harness.pick_free_port(), cert_file=str(cert), key_file=str(key))
    target = f"127.0.0.1:{port}"
    common = ["--target", target, "--user", USER, "--warmup", "0.1", "--duration", "0.5"]

    with harness.Server("ferry", cfg, binary=args.ferry):
        r, rep = loadgen(args, env, "--mode", "relay", "-n", "4", *common)
        ok = rep is not None and r.returncode == 0
        check(ok and rep["ready"] == 4 and rep["received"] > 0 and rep["streams_seen"] == 4,
              "ChannelData: 4 allocations relay to the sink", json.dumps(rep))
        if ok:
            check(rep["pps"] > 0 and rep["mbps"] > 0 and rep["latency_us"]["p99"] >= rep["latency_us"]["p50"] > 0,
                  "ChannelData: rate, throughput and latency reported", json.dumps(rep))
            check(rep["teardown_failed"] == 0, "allocations deleted afterwards", json.dumps(rep))

        r, rep = loadgen(args, env, "--mode", "relay", "--framing", "send", "-n", "2", "--size", "1000", *common)
        check(rep is not None and r.returncode == 0 and rep["received"] > 0 and rep["streams_seen"] == 2,
              "Send indications, 1000-byte payloads, relay to the sink", json.dumps(rep))

        # 2000 packets/s for 0.5 s measured: about 1000 sent, nearly all received.
        r, rep = loadgen(args, env, "--mode", "relay", "-n", "4", "--rate", "2000", *common)
        ok = rep is not None and r.returncode == 0
        check(ok and 700 <= rep["sent"] <= 1300 and rep["received"] >= 0.8 * rep["sent"],
              "a fixed rate is kept", json.dumps(rep))

        # TURN over TCP: 101-byte payloads make ChannelData that needs padding (RFC 8656 §12.5).
        r, rep = loadgen(args, env, "--mode", "relay", "--transport", "tcp", "-n", "4", "--size", "101", *common)
        check(rep is not None and r.returncode == 0 and rep["transport"] == "tcp" and rep["ready"] == 4
              and rep["received"] > 0 and rep["streams_seen"] == 4 and rep["loss"] == 0 and rep["teardown_failed"] == 0,
              "TCP client legs: padded ChannelData relays to the sink, allocations deleted", json.dumps(rep))
        r, rep = loadgen(args, env, "--mode", "relay", "--transport", "tcp", "--framing", "send", "-n", "2",
                         "--rate", "2000", *common)
        check(rep is not None and r.returncode == 0 and rep["received"] > 0 and rep["streams_seen"] == 2,
              "TCP client legs: Send indications at a fixed rate", json.dumps(rep))
        r, rep = loadgen(args, env, "--mode", "relay", "--transport", "tls", "-n", "4", "--size", "101",
                         "--target", f"127.0.0.1:{cfg.tls_port}", "--user", USER, "--warmup", "0.1", "--duration", "0.5")
        check(rep is not None and r.returncode == 0 and rep["transport"] == "tls" and rep["ready"] == 4
              and rep["received"] > 0 and rep["streams_seen"] == 4 and rep["loss"] == 0 and rep["teardown_failed"] == 0,
              "TLS client legs: padded ChannelData relays to the sink, allocations deleted", json.dumps(rep))
        # RFC 6062 TCP relays: Connect to the sink's TCP listener, ConnectionBind on a data connection,
        # 101-byte records back to back (the sink cuts them out of the stream again).
        r, rep = loadgen(args, env, "--mode", "relay", "--transport", "tcp", "--peer-transport", "tcp", "-n", "4",
                         "--size", "101", *common)
        check(rep is not None and r.returncode == 0 and rep["peer_transport"] == "tcp" and rep["ready"] == 4
              and rep["peer_connections"] == 4 and rep["received"] > 0 and rep["streams_seen"] == 4
              and rep["loss"] == 0 and rep["foreign"] == 0 and rep["teardown_failed"] == 0,
              "RFC 6062 TCP peer legs: records relay over data connections to the TCP sink", json.dumps(rep))
        r, rep = loadgen(args, env, "--mode", "relay", "--transport", "tls", "--peer-transport", "tcp", "-n", "2",
                         "--rate", "2000", "--target", f"127.0.0.1:{cfg.tls_port}", "--user", USER, "--warmup", "0.1",
                         "--duration", "0.5")
        check(rep is not None and r.returncode == 0 and rep["ready"] == 2 and 700 <= rep["sent"] <= 1300
              and rep["received"] == rep["sent"] and rep["foreign"] == 0,
              "RFC 6062 TCP peer legs over TLS control and data connections at a fixed rate", json.dumps(rep))
        v6 = ["--target", f"[::1]:{port}", "--sink", "[::1]:0", "--user", USER, "--warmup", "0.1", "--duration", "0.5"]
        for extra, what in (([], "UDP"), (["--transport", "tcp"], "TCP")):
            r, rep = loadgen(args, env, "--mode", "relay", "-n", "4", *extra, *v6)
            check(rep is not None and r.returncode == 0 and rep["family"] == "ipv6" and rep["peer"].startswith("[::1]:")
                  and rep["ready"] == 4 and rep["received"] > 0 and rep["streams_seen"] == 4,
                  f"IPv6 client ({what}) and peer legs relay to an IPv6 sink", json.dumps(rep))

        r, rep = loadgen(args, env, "--mode", "binding", "-n", "2", "--target", target, "--warmup", "0.1",
                         "--duration", "0.5")
        check(rep is not None and r.returncode == 0 and rep["responses"] > 0 and rep["rps"] > 0,
              "Binding requests/s measured", json.dumps(rep))

        r, rep = loadgen(args, env, "--mode", "allocate", "-n", "4", "--count", "20", "--target", target,
                         "--user", USER, "--duration", "5")
        check(rep is not None and r.returncode == 0 and rep["allocations"] == 20 and rep["failed"] == 0
              and rep["auth_retries"] == 20 and rep["teardown_failed"] == 0,
              "20 authenticated Allocates (each after a 401), then deleted", json.dumps(rep))

        bad_env = dict(os.environ, FERRY_BENCH_PASSWORD="wrong-" + password)
        r, rep = loadgen(args, bad_env, "--mode", "relay", "-n", "1", *common, "--rto", "0.1", "--transmissions", "2")
        check(rep is not None and r.returncode == 1 and rep["ready"] == 0
              and any("401" in k for k in rep["setup_errors"]),
              "a wrong password fails the setup with 401 and exit status 1", json.dumps(rep))

    r, _ = loadgen(args, env, "--mode", "raw", "--target", "192.0.2.1:3478", "-n", "1", expect_json=False)
    check(r.returncode == 2 and "outside loopback" in r.output, "a target outside loopback is refused", r.output)
    r, _ = loadgen(args, env, "--mode", "relay", "--target", target, "-n", "1", expect_json=False)
    check(r.returncode == 2 and "--user" in r.output, "relay without credentials is a usage error", r.output)
    r, _ = loadgen(args, env, "--mode", "binding", "--transport", "tcp", "--target", target, expect_json=False)
    check(r.returncode == 2 and "--transport tcp" in r.output, "TCP outside relay mode is a usage error", r.output)
    r, _ = loadgen(args, env, "--mode", "relay", "--peer-transport", "tcp", "--target", target, "--user", USER,
                   expect_json=False)
    check(r.returncode == 2 and "--peer-transport tcp" in r.output,
          "a TCP peer leg over a UDP client leg is a usage error", r.output)

    fport = harness.pick_free_port(udp=True, tcp=False, ipv6=False)
    sink = harness.pick_free_port(udp=True, tcp=False, ipv6=False)
    fwd_cmd = [args.forwarder, "--listen", f"127.0.0.1:{fport}", "--to", f"127.0.0.1:{sink}", "--threads", "2",
               "--duration", "20"]
    with harness.BackgroundProcess(fwd_cmd, "forwarder") as fwd:
        for _ in range(100):
            if "READY" in fwd.log_text():
                break
            time.sleep(0.05)
        r, rep = loadgen(args, env, "--mode", "raw", "--target", f"127.0.0.1:{fport}", "--sink",
                         f"127.0.0.1:{sink}", "-n", "8", "--warmup", "0.1", "--duration", "0.5")
        check(rep is not None and r.returncode == 0 and rep["received"] > 0 and rep["streams_seen"] == 8,
              "the forwarder forwards plain UDP to the sink", json.dumps(rep))


def main() -> int:
    return harness.run_test(NAME, run)


if __name__ == "__main__":
    sys.exit(main())
