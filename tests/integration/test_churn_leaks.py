#!/usr/bin/python3
"""Churn, then SIGTERM: ferry exits 0 with no AddressSanitizer or LeakSanitizer report.

ferry-loadgen --mode churn relays a steady rate while allocations are created, refreshed, left to
expire and deleted (limits.default_lifetime 2 so the short lifetimes are granted). Half-way
through the second run ferry gets SIGTERM with allocations, permissions and channels live
(drain.timeout 0: it stops at once), so shutdown frees a busy server, not an idle one. In the
ASan build (scripts/test.sh's asan stage runs the integration label against it) LeakSanitizer
checks the heap at exit and reports to stderr, which the harness keeps in the server log; any
"Sanitizer" or "runtime error" line there fails the test, as does a non-zero exit status
(LeakSanitizer exits 23). In the release build the test checks the clean exit only.

Usage: /usr/bin/python3 test_churn_leaks.py --loadgen PATH [--bin PATH] [--seconds 16]
"""

import json
import os
import re
import secrets
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402

NAME = "churn_leaks"
USER = "churn"
SANITIZER_LINE = re.compile(r"(Sanitizer|runtime error:)")


def churn_cmd(args, port: int, seconds: float) -> list[str]:
    return [args.loadgen, "--mode", "churn", "--json", "--target", f"127.0.0.1:{port}", "--user", USER,
            "-n", "24", "--rate", "800", "--duration", str(seconds), "--warmup", "0.5", "--churn-life", "1.2",
            "--expire-lifetime", "2", "--rto", "0.3"]


def metric(http_port: int, name: str) -> float:
    _, _, body = harness.http_get(http_port, "/metrics", timeout=5)
    total = 0.0
    for line in body.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def main() -> int:
    ap = harness.common_arguments(__doc__)
    ap.add_argument("--loadgen", required=True, help="ferry-loadgen")
    ap.add_argument("--seconds", type=float, default=16, help="seconds of churn in all (default 16)")
    args = ap.parse_args()
    problems: list[str] = []

    password = secrets.token_urlsafe(12)
    env = dict(os.environ, FERRY_BENCH_PASSWORD=password)
    http_port = harness.pick_free_port()
    cfg = harness.config_from_args(args, users={USER: password}, ipv6=False, tcp=False,
                                   peers_allow=["127.0.0.0/8"], shared_secrets=[], log_level="warn",
                                   workers=2, http_port=http_port, limits={"default_lifetime": 2})
    # LeakSanitizer on (the default of ASan on Linux; said again in case the environment says otherwise).
    server_env = {"ASAN_OPTIONS": (os.environ.get("ASAN_OPTIONS", "") + ":detect_leaks=1").lstrip(":")}
    srv = harness.Server("ferry", cfg, binary=args.bin, keep_workdir=args.keep_logs,
                         ready_timeout=max(args.ready_timeout, 30), env=server_env)
    srv.start()
    try:
        sanitized = b"__asan_init" in Path(srv.binary).read_bytes()
        half = args.seconds / 2
        # 1: a whole churn run; the loadgen deletes what it made.
        r = harness.run_client(churn_cmd(args, cfg.port, half), timeout=half + 40, env=env, line_buffered=False)
        report = next((json.loads(l) for l in reversed(r.output.splitlines()) if l.startswith("{")), None)
        if report is None or r.returncode != 0:
            problems.append(f"churn run: exit {r.returncode}: {r.output[-1500:]}")
        else:
            for key in ("allocated", "refreshed", "expired", "deleted"):
                if report[key] == 0:
                    problems.append(f"churn run: nothing {key}: {json.dumps(report)}")
            if report["failed"] != 0:
                problems.append(f"churn run: {report['failed']} failed requests: {json.dumps(report['errors'])}")
        # 2: churn again and stop ferry in the middle of it.
        gen = harness.BackgroundProcess(churn_cmd(args, cfg.port, half + 30), "loadgen", env=env)
        time.sleep(half)
        live = metric(http_port, "ferry_allocations_active")
        if live == 0:
            problems.append("no allocation live when ferry was stopped")
        if metric(http_port, "ferry_allocations_expired_total") == 0:
            problems.append("no allocation expired")
        srv.send_signal(signal.SIGTERM)
        status = srv.wait_exit(60)  # an ASan build checks the heap at exit
        gen.stop()
        if status is None:
            problems.append("ferry did not exit within 60 s of SIGTERM")
        elif status != 0:
            problems.append(f"ferry exited with status {status} after SIGTERM (LeakSanitizer exits 23)")
        log_text = srv.log_text(200000)
        reports = [l for l in log_text.splitlines() if SANITIZER_LINE.search(l)]
        if reports:
            problems.append(f"sanitizer report in ferry's log: {reports[0]}")
        if problems:
            srv.dump_log("ferry log", 12000)
    finally:
        srv.stop()
    kind = "ASan/LSan build" if sanitized else "not a sanitizer build: exit status only"
    return harness.report(NAME, problems,
                          f"churn, SIGTERM with {live:.0f} allocations live, exit 0, no sanitizer report ({kind})")


if __name__ == "__main__":
    sys.exit(main())
