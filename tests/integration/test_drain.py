#!/usr/bin/python3
"""SIGTERM drains ferry: readiness goes false, new Allocates are refused, old allocations live on.

Each scenario holds an allocation with ferry_turn_probe (the project's TurnClient on one UDP
5-tuple), sends ferry SIGTERM and checks:
  delete     /readyz turns 503 "draining"; a new Allocate gets 508; the old allocation still
             refreshes; deleting it (Refresh 0) makes ferry exit 0 at once.
  alternate  with drain.alternate_server a new Allocate gets 300 with ALTERNATE-SERVER; the
             allocation is kept, so ferry exits 0 when drain.timeout (2 s) has passed.
  second     a second SIGTERM ends the drain at once, exit 0.

Usage: /usr/bin/python3 test_drain.py --probe PATH [--bin PATH]
"""

import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402

NAME = "sigterm_drain"


def wait_ready_status(port: int, want: int, timeout: float = 5.0) -> tuple[int, str]:
    deadline = time.monotonic() + timeout
    status, body = 0, ""
    while time.monotonic() < deadline:
        status, _, body = harness.http_get(port, "/readyz", timeout=2.0)
        if status == want:
            break
        time.sleep(0.05)
    return status, body.strip()


def scenario(args, name: str, drain: dict, problems: list) -> None:
    def check(cond: bool, what: str) -> None:
        if not cond:
            problems.append(f"{name}: {what}")

    cfg = harness.config_from_args(args, http_port=harness.pick_free_port(udp=False, ipv6=False), drain=drain,
                                   ipv6=False)
    password = cfg.users[harness.DEFAULT_USER]
    with harness.server_from_args(args, cfg) as server, \
            harness.TurnProbe(args.probe, "127.0.0.1", cfg.port, harness.DEFAULT_USER, password) as old, \
            harness.TurnProbe(args.probe, "127.0.0.1", cfg.port, harness.DEFAULT_USER, password) as new:
        harness.wait_http(cfg.http_port)
        answer = old.ask("allocate")
        check(answer.startswith("allocate ok"), f"first allocation: {answer!r}")
        status, body = wait_ready_status(cfg.http_port, 200)
        check(status == 200, f"/readyz before SIGTERM: {status} {body!r}")

        server.send_signal(signal.SIGTERM)
        t0 = time.monotonic()
        status, body = wait_ready_status(cfg.http_port, 503)
        check(status == 503 and body == "draining", f"/readyz after SIGTERM: {status} {body!r}")
        status, _, _ = harness.http_get(cfg.http_port, "/healthz")
        check(status == 200, f"/healthz while draining: {status}")
        _, _, metrics = harness.http_get(cfg.http_port, "/metrics")
        check("\nferry_draining 1\n" in metrics, "ferry_draining is not 1")

        answer = new.ask("allocate")
        if "alternate_server" in drain:
            check(answer.startswith("allocate error 300 alternate=" + drain["alternate_server"]),
                  f"new Allocate while draining: {answer!r}, want 300 with ALTERNATE-SERVER")
        else:
            check(answer.startswith("allocate error 508"), f"new Allocate while draining: {answer!r}, want 508")
        answer = old.ask("refresh 600")
        check(answer == "refresh ok 600", f"the old allocation refreshes: {answer!r}")
        check(server.alive(), "ferry exited while an allocation was left")

        if name == "delete":
            answer = old.ask("refresh 0")
            check(answer == "refresh ok 0", f"deleting the old allocation: {answer!r}")
            code = server.wait_exit(5)
            check(code == 0, f"exit after the last allocation ended: {code}")
        elif name == "alternate":
            code = server.wait_exit(10)
            waited = time.monotonic() - t0
            check(code == 0, f"exit after drain.timeout: {code}")
            check(waited >= 1.5, f"exited after {waited:.1f} s, before drain.timeout (2 s)")
        else:  # second
            server.send_signal(signal.SIGTERM)
            code = server.wait_exit(5)
            check(code == 0, f"exit on a second SIGTERM: {code}")
            check(time.monotonic() - t0 < 10, "the second SIGTERM did not end the drain at once")
        log = server.log_text()
        check("draining" in log, "no drain in the log")
        if any(p.startswith(name) for p in problems):
            server.dump_log(f"server log ({name})")
    print(f"  {'ok  ' if not any(p.startswith(name) for p in problems) else 'FAIL'} {name}")


def main() -> int:
    ap = harness.common_arguments(__doc__.splitlines()[0])
    ap.add_argument("--probe", required=True, help="ferry_turn_probe binary")
    args = ap.parse_args()
    if args.server != "ferry":
        return harness.report(NAME, [], f"nothing to check against {args.server}")
    problems = harness.CHECKS.problems

    def body():
        harness.require_tool(args.probe)
        scenario(args, "delete", {"timeout": "30"}, problems)
        scenario(args, "alternate", {"timeout": "2", "alternate_server": "127.0.0.1:3479"}, problems)
        scenario(args, "second", {"timeout": "60"}, problems)
        return "readiness flips, new Allocates get 508 or 300+ALTERNATE-SERVER, old ones live on, exit 0"

    return harness.run_test(NAME, body)


if __name__ == "__main__":
    sys.exit(main())
