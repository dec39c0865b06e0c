#!/usr/bin/python3
"""`ferryctl probe URL` against ferry and against coturn (Debian's turnserver), on loopback.

For each server, with a long-term user: turn: over UDP and TCP, and turns: with the test
certificate (--ca, --servername) pass every step and exit 0; --json says the same; turns: without
--ca fails the certificate step (chain not verified) but still relays; a wrong password exits 1
with a "FAIL at allocate A: 401" line. Against ferry also: --secret-stdin (a TURN REST credential
from the shared secret) passes and a wrong secret fails the same way. And for the CLI: a bad URL
is a usage error (exit 2, one "ferryctl: probe:" line) and a port where nothing listens fails the
Binding at once.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402

check = harness.check
STEPS = ["resolve", "connect", "binding", "allocate A", "allocate B", "permission", "channel bind",
         "data A->B", "data B->A", "release"]


def probe(ferryctl: str, url: str, *extra: str, stdin: str = "") -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FERRY_")}
    return subprocess.run([ferryctl, "probe", url, "--timeout", "3", *extra], input=stdin, capture_output=True,
                          text=True, timeout=60, env=env)


def step_lines(out: str) -> dict[str, str]:
    """step name -> "ok" / "FAIL", from the probe's "  ok    NAME   1.2 ms  detail" lines."""
    lines = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] in ("ok", "FAIL"):
            for name in STEPS + ["certificate"]:
                if line[8:].startswith(name + " ") and name not in lines:
                    lines[name] = parts[0]
    return lines


def explain(p: subprocess.CompletedProcess) -> str:
    return f"exit {p.returncode}\n{p.stdout}{p.stderr}"


def probe_server(kind: str, ferryctl: str, cfg: harness.ServerConfig, cert: str) -> None:
    user, password = harness.DEFAULT_USER, harness.DEFAULT_PASSWORD
    base = f"127.0.0.1:{cfg.port}"
    for url in (f"turn:{base}?transport=udp", f"turn:{base}?transport=tcp"):
        p = probe(ferryctl, url, "--user", user, "--password-stdin", stdin=password + "\n")
        steps = step_lines(p.stdout)
        check(f"{kind}: {url} passes every step", p.returncode == 0 and all(steps.get(s) == "ok" for s in STEPS)
              and "PASS:" in p.stdout, explain(p))
    p = probe(ferryctl, f"turn:{base}", "--user", user, "--password-stdin", "--json", stdin=password + "\n")
    try:
        j = json.loads(p.stdout)
    except ValueError:
        j = {}
    check(f"{kind}: --json reports every step ok", p.returncode == 0 and j.get("ok") is True
          and [s["name"] for s in j.get("steps", [])] == STEPS and all(s["ok"] for s in j["steps"])
          and all(isinstance(s["ms"], (int, float)) for s in j["steps"]), explain(p))
    check(f"{kind}: --json has the reflexive and relayed addresses",
          any(s.get("reflexive", "").startswith("127.0.0.1:") for s in j.get("steps", [])) and
          sum(1 for s in j.get("steps", []) if s.get("relayed", "").startswith("127.0.0.1:")) == 2, p.stdout)

    tls = f"turns:127.0.0.1:{cfg.tls_port}"
    p = probe(ferryctl, tls, "--user", user, "--password-stdin", "--ca", cert, "--servername", "ferry.test",
              stdin=password + "\n")
    steps = step_lines(p.stdout)
    check(f"{kind}: {tls} with --ca passes every step, the certificate included",
          p.returncode == 0 and steps.get("certificate") == "ok" and all(steps.get(s) == "ok" for s in STEPS),
          explain(p))
    check(f"{kind}: the certificate line names the chain, the name and the days left",
          "chain verified" in p.stdout and "name ferry.test matches" in p.stdout
          and re.search(r"expires in [12] days", p.stdout),
          p.stdout)
    p = probe(ferryctl, tls, "--user", user, "--password-stdin", "--json", stdin=password + "\n")
    try:
        cert_step = next(s for s in json.loads(p.stdout)["steps"] if s["name"] == "certificate")
    except (ValueError, StopIteration, KeyError):
        cert_step = {}
    check(f"{kind}: {tls} without --ca fails on the certificate (self-signed, IP not in it) but relays",
          p.returncode == 1 and cert_step.get("chain_ok") is False and cert_step.get("name_ok") is False
          and cert_step.get("days_left") in (1, 2) and '"name": "data B->A"' in p.stdout, explain(p))

    p = probe(ferryctl, f"turn:{base}", "--user", user, "--password-stdin", stdin="not-the-password\n")
    check(f"{kind}: a wrong password exits 1 with a clear line",
          p.returncode == 1 and "FAIL at allocate A: 401" in p.stdout and "credentials" in p.stdout, explain(p))


def run(args) -> None:
    if args.server != "ferry":
        raise harness.Skip("this test starts ferry and coturn itself")
    ferryctl = os.path.abspath(args.ferryctl)
    certs = harness.TempDir(prefix="ferry-it-probe-")
    try:
        cfg = harness.config_from_args(args, ipv6=False)
        harness.add_tls(cfg, certs.path, dtls=False)
        cert = cfg.cert_file
        with harness.Server("ferry", cfg, binary=args.bin, keep_workdir=args.keep_logs) as server:
            probe_server("ferry", ferryctl, cfg, cert)
            base = f"turn:127.0.0.1:{cfg.port}"
            p = probe(ferryctl, base, "--secret-stdin", "--user", "probe-it", stdin=harness.DEFAULT_SHARED_SECRET + "\n")
            check("ferry: --secret-stdin (a TURN REST credential) passes", p.returncode == 0
                  and "TURN REST credential" in p.stdout and "PASS:" in p.stdout, explain(p))
            p = probe(ferryctl, base, "--secret-stdin", stdin="another-secret\n")
            check("ferry: a wrong shared secret fails at Allocate", p.returncode == 1
                  and "FAIL at allocate A: 401" in p.stdout, explain(p))
            check("ferry: still running", server.alive())

        # ferry's default peer policy refuses its own (and loopback) addresses: the round trip between
        # two allocations cannot be made, and the probe says so.
        cfg = harness.config_from_args(args, ipv6=False, tcp=False, peers_allow=[])
        with harness.Server("ferry", cfg, binary=args.bin, keep_workdir=args.keep_logs):
            p = probe(ferryctl, f"turn:127.0.0.1:{cfg.port}", "--user", harness.DEFAULT_USER, "--password-stdin",
                      stdin=harness.DEFAULT_PASSWORD + "\n")
            check("ferry refusing the relayed address as a peer: FAIL at permission, 403 and why, released",
                  p.returncode == 1 and "FAIL at permission: A for 127.0.0.1: 403" in p.stdout
                  and "peers.allow" in p.stdout and step_lines(p.stdout).get("release") == "ok", explain(p))

        if args.coturn:
            cfg = harness.config_from_args(args, ipv6=False, shared_secrets=[])
            cfg.cert_file, cfg.key_file = str(cert), str(certs.path / "server.key")
            cfg.tls_port = harness.pick_free_port(ipv6=False)
            with harness.Server("coturn", cfg, binary=args.coturn, keep_workdir=args.keep_logs):
                probe_server("coturn", ferryctl, cfg, cert)
        else:
            check("coturn (turnserver) is installed for the reference run", False, "pass --coturn PATH")

        p = probe(ferryctl, "http://127.0.0.1:3478", "--user", "u", "--password-stdin", stdin="pw\n")
        check("a bad URL is a usage error", p.returncode == 2 and p.stderr.startswith("ferryctl: probe: unknown scheme"),
              explain(p))
        p = probe(ferryctl, "turn:127.0.0.1:3478?transport=sctp", "--user", "u", "--password-stdin", stdin="pw\n")
        check("an unknown transport is a usage error", p.returncode == 2 and "sctp" in p.stderr, explain(p))
        p = probe(ferryctl, "turn:127.0.0.1:3478", stdin="")
        check("no credentials is a usage error", p.returncode == 2 and "--user" in p.stderr, explain(p))
        dead = harness.pick_free_port()
        p = probe(ferryctl, f"stun:127.0.0.1:{dead}")
        check("nothing listening fails the Binding at once", p.returncode == 1 and "FAIL at binding" in p.stdout,
              explain(p))
    finally:
        certs.stop()


if __name__ == "__main__":
    ap = harness.common_arguments(__doc__.splitlines()[0])
    ap.add_argument("--ferryctl", required=True, help="the ferryctl binary")
    ap.add_argument("--coturn", default=None, help="coturn's turnserver, for the reference run")
    sys.exit(harness.run_test("ferryctl_probe", lambda: run(ap.parse_args())))
