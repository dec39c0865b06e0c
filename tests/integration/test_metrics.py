#!/usr/bin/python3
"""Prometheus metrics on a live ferry, checked by `promtool check metrics`.

Starts ferry with its operations endpoint on a free port, relays real traffic with coturn's
turnutils_uclient (allocations, permissions, channels, data through turnutils_peer), scrapes
/metrics and runs promtool's linter on the scrape (names, units, _total suffixes, HELP/TYPE,
histogram shape). Also checks that the counters saw the traffic and that /healthz and /readyz
answer 200.

Usage: /usr/bin/python3 test_metrics.py [--bin PATH] [--uclient PATH] [--peer PATH] [--promtool PATH]
"""

import re
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402

NAME = "metrics_promtool"


def value(text: str, series: str) -> float | None:
    m = re.search(r"^" + re.escape(series) + r" (\S+)$", text, re.M)
    return float(m.group(1)) if m else None


def main() -> int:
    ap = harness.common_arguments(__doc__.splitlines()[0])
    ap.add_argument("--uclient", default="turnutils_uclient")
    ap.add_argument("--peer", default="turnutils_peer")
    ap.add_argument("--promtool", default="promtool")
    args = ap.parse_args()
    if args.server != "ferry":
        return harness.report(NAME, [], f"nothing to check against {args.server}")
    problems = harness.CHECKS.problems

    def body():
        uclient = harness.require_tool(args.uclient)
        peer_tool = harness.require_tool(args.peer)
        promtool = harness.require_tool(args.promtool)
        cfg = harness.config_from_args(args, http_port=harness.pick_free_port(udp=False, ipv6=False))
        server = harness.server_from_args(args, cfg)
        peer_port = harness.pick_free_port(tcp=False, ipv6=False)
        with harness.BackgroundProcess([peer_tool, "-L", "127.0.0.1", "-p", str(peer_port)], "turnutils_peer"):
            if not harness.udp_echo_ready("127.0.0.1", peer_port, timeout=5.0):
                return ["turnutils_peer does not echo"]
            with server:
                harness.wait_http(cfg.http_port)
                # Test-only credentials in uclient's argv: it has no other way to take them.
                r = harness.run_client([uclient, "-u", harness.DEFAULT_USER, "-w", cfg.users[harness.DEFAULT_USER],
                                        "-p", str(cfg.port), "-e", "127.0.0.1", "-r", str(peer_port), "-n", "20",
                                        "-l", "100", "-m", "1", "127.0.0.1"], timeout=60)
                if r.returncode != 0:
                    problems.append(f"uclient exit status {r.returncode}: {r.output[-2000:]}")
                status, headers, text = harness.http_get(cfg.http_port, "/metrics")
                if status != 200:
                    problems.append(f"/metrics answered {status}")
                if "version=0.0.4" not in headers.get("content-type", ""):
                    problems.append(f"/metrics content type {headers.get('content-type')!r}")
                lint = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True,
                                      timeout=30)
                if lint.returncode != 0 or lint.stdout.strip() or lint.stderr.strip():
                    problems.append(f"promtool check metrics (status {lint.returncode}): {lint.stdout}{lint.stderr}")
                expectations = {
                    "ferry_allocations_created_total": lambda v: v >= 1,
                    'ferry_relayed_packets_total{direction="client_to_peer"}': lambda v: v >= 20,
                    'ferry_relayed_packets_total{direction="peer_to_client"}': lambda v: v >= 1,
                    'ferry_relayed_bytes_total{direction="client_to_peer"}': lambda v: v >= 2000,
                    'ferry_requests_total{method="allocate",result="success"}': lambda v: v >= 1,
                    'ferry_requests_total{method="channel_bind",result="success"}': lambda v: v >= 1,
                    'ferry_auth_failures_total{reason="missing_credentials"}': lambda v: v >= 1,
                    "ferry_permissions_created_total": lambda v: v >= 1,
                    "ferry_workers": lambda v: v >= 1,
                    "ferry_draining": lambda v: v == 0,
                    'ferry_connections_active{transport="tcp"}': lambda v: v >= 0,
                    'ferry_connections_active{transport="tls"}': lambda v: v >= 0,
                    'ferry_connections_active{transport="dtls"}': lambda v: v >= 0,
                    "ferry_database_query_duration_seconds_count": lambda v: v == 0,
                }
                for series, ok in expectations.items():
                    v = value(text, series)
                    if v is None or not ok(v):
                        problems.append(f"{series} = {v}")
                if not re.search(r'^ferry_build_info\{version="[^"]+"\} 1$', text, re.M):
                    problems.append("no ferry_build_info")
                for path, want in (("/healthz", "ok"), ("/readyz", "ready")):
                    status, _, body = harness.http_get(cfg.http_port, path)
                    if status != 200 or body.strip() != want:
                        problems.append(f"{path}: {status} {body.strip()!r}")
                if problems:
                    server.dump_log("server log")
        return "promtool accepts a live scrape after real traffic; healthz and readyz 200"

    return harness.run_test(NAME, body)


if __name__ == "__main__":
    sys.exit(main())
