#!/usr/bin/python3
"""STUN Binding over IPv4 and IPv6 with coturn's turnutils_stunclient (plus an exact check in Python).

For each case turnutils_stunclient must exit 0 and print lines like
    0: : IPv4. UDP reflexive addr: 127.0.0.1:58048
    0: : IPv6. UDP reflexive addr: ::1:58274
whose address equals the client's own source address.  turnutils_stunclient picks an ephemeral
source port we cannot observe, so the exact (address, port) equality is additionally checked by a
Python Binding client that knows its own socket address, over UDP (127.0.0.1, 127.0.0.5, ::1) and
TCP (127.0.0.1).

Usage: /usr/bin/python3 test_stunclient.py [--server ferry|coturn] [--bin PATH]
Reports through the harness: an indented ok/FAIL line per check, then one PASS/FAIL line (exit 0/1).
"""

import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402

NAME = "stunclient_ipv4_ipv6"
REFLEXIVE_RE = re.compile(r"(IPv4|IPv6)\. UDP reflexive addr: (\S+):(\d+)\s*$", re.M)


def check_stunclient(tool, server_port, target, local, expect_ip, timeout):
    cmd = [tool, "-p", str(server_port)]
    if local:
        cmd += ["-L", local]
    cmd.append(target)
    label = f"turnutils_stunclient {'-L ' + local + ' ' if local else ''}{target}"
    # turnutils_stunclient waits forever when nobody answers: bound it.
    r = harness.run_client(cmd, timeout=timeout)
    problems = []
    if r.timed_out:
        problems.append(f"timed out after {timeout}s (no Binding response?)")
    elif r.returncode != 0:
        problems.append(f"exit status {r.returncode}")
    found = REFLEXIVE_RE.findall(r.output)
    if not found:
        problems.append("no 'UDP reflexive addr' line in the output")
    want_family = "IPv6" if ":" in expect_ip else "IPv4"
    for fam, ip, port in found:
        if fam != want_family:
            problems.append(f"family {fam}, want {want_family}")
        if ip != expect_ip:
            problems.append(f"reflexive address {ip}, want {expect_ip}")
        p = int(port)
        if not (1 <= p <= 65535) or p == server_port:
            problems.append(f"implausible reflexive port {p}")
    shown = ", ".join(f"{ip}:{port}" for _, ip, port in found) or "-"
    if not harness.check(f"{label}: reflexive {shown} (expected address {expect_ip})", not problems,
                         "; ".join(sorted(set(problems)))):
        print("    output:\n" + "\n".join("      " + l for l in r.output.strip().splitlines()[-20:]))


def check_native(kind, host, port, local):
    label = f"python Binding/{kind} {local or ''}->{host}"
    try:
        if kind == "udp":
            mapped, mine = harness.stun_binding_udp(host, port, timeout=3.0, local=local, retries=3)
        else:
            mapped, mine = harness.stun_binding_tcp(host, port, timeout=3.0, local=local)
    except Exception as exc:  # noqa: BLE001 - report whatever went wrong
        harness.check(label, False, str(exc))
        return
    harness.check(f"{label}: XOR-MAPPED-ADDRESS == client socket", tuple(mapped[:2]) == tuple(mine[:2]),
                  f"XOR-MAPPED-ADDRESS {mapped[0]}:{mapped[1]} != client socket {mine[0]}:{mine[1]}")


def main():
    ap = harness.common_arguments(__doc__.splitlines()[0])
    ap.add_argument("--tool", default="turnutils_stunclient")
    ap.add_argument("--client-timeout", type=float, default=10.0)
    ap.add_argument("--no-ipv6", action="store_true", help="skip the ::1 cases")
    ap.add_argument("--no-tcp", action="store_true", help="skip the TCP Binding case")
    args = ap.parse_args()


    def body():
        tool = harness.require_tool(args.tool)
        cfg = harness.config_from_args(args, ipv6=not args.no_ipv6, tcp=not args.no_tcp)
        with harness.server_from_args(args, cfg) as server:
            port = cfg.port
            check_stunclient(tool, port, "127.0.0.1", None, "127.0.0.1", args.client_timeout)
            # A non-default loopback source proves the server reports the real source address.
            check_stunclient(tool, port, "127.0.0.1", "127.0.0.5", "127.0.0.5", args.client_timeout)
            if not args.no_ipv6:
                check_stunclient(tool, port, "::1", None, "::1", args.client_timeout)
            check_native("udp", "127.0.0.1", port, "127.0.0.1")
            check_native("udp", "127.0.0.1", port, "127.0.0.5")
            if not args.no_ipv6:
                check_native("udp", "::1", port, "::1")
            if not args.no_tcp:
                check_native("tcp", "127.0.0.1", port, "127.0.0.1")
            harness.check(f"{args.server} still running at the end", server.alive())
            if args.show_server_log or harness.CHECKS.problems:
                server.dump_log("server log")
        return f"{harness.CHECKS.passed} checks"

    return harness.run_test(f"{NAME} [{args.server}]", body)


if __name__ == "__main__":
    sys.exit(main())
