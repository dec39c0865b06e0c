#!/usr/bin/python3
"""TURN relay round trips with coturn's turnutils_uclient against turnutils_peer on loopback.

turnutils_peer (a UDP echo server) listens on 127.0.0.1:PEERPORT.  turnutils_uclient allocates on
the server under test with long-term credentials (alice/secret; the realm comes from the server's
401), creates permissions for the peer, sends -n messages of -l bytes per session through the
relay and counts the echoes that come back.  Scenarios:

  udp-channel-m1   -m 1       ChannelBind + ChannelData (uclient's default)
  udp-channel-m5   -m 5       five clients at once
  udp-send-m1      -m 1 -s    Send/Data indications instead of channels
  udp-send-m5      -m 5 -s
  tcp-channel-m1   -t -m 1    TURN over TCP to the server (UDP relay) -- only with --tcp
  tcp-send-m5      -t -m 5 -s                                       -- only with --tcp
  tls-channel-m1   -t -S -m 1     TURN over TLS (UDP relay)         -- only with --secure
  tls-send-m5      -t -S -m 5 -s
  dtls-channel-m1  -S -m 1        TURN over DTLS (UDP relay)
  dtls-send-m5     -S -m 5 -s

uclient's final report looks like
  7: : start_mclient: tot_send_msgs=100, tot_recv_msgs=100
  7: : Total lost packets 0 (0.000000%), total send dropped 0 (0.000000%)
and each scenario must exit 0 with tot_recv_msgs > 0, at least n*m messages sent, and lost packets
at most --max-loss percent (default 0).  Note "-m 1" runs two sessions (RTP + RTCP pair) unless
"-c" is given, so the totals are larger than n*m.

The secure scenarios give the server a TLS and a DTLS listener on one port number with a test
certificate made by `openssl req`; uclient does not check it.

Usage: /usr/bin/python3 test_uclient.py [--server ferry|coturn] [--bin PATH] [--tcp | --tcp-only | --secure-only]
       [--scenario NAME ...] [-n 50] [-l 100]
"""

import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402

NAME = "uclient_relay"

SCENARIOS = {
    "udp-channel-m1": ["-m", "1"],
    "udp-channel-m5": ["-m", "5"],
    "udp-send-m1": ["-m", "1", "-s"],
    "udp-send-m5": ["-m", "5", "-s"],
    # TURN REST API credentials (-W): uclient derives "<timestamp>:<user>" and its password from the
    # shared secret, checked by ferry's shared-secret store. Not run against coturn (lt-cred only).
    "udp-rest-m1": ["-m", "1", "-W", "SECRET"],
    "tcp-channel-m1": ["-t", "-m", "1"],
    "tcp-send-m5": ["-t", "-m", "5", "-s"],
    "tls-channel-m1": ["-t", "-S", "-m", "1"],
    "tls-send-m5": ["-t", "-S", "-m", "5", "-s"],
    "dtls-channel-m1": ["-S", "-m", "1"],
    "dtls-send-m5": ["-S", "-m", "5", "-s"],
}
UDP_SCENARIOS = [s for s in SCENARIOS if s.startswith("udp-")]
TCP_SCENARIOS = [s for s in SCENARIOS if s.startswith("tcp-")]
SECURE_SCENARIOS = [s for s in SCENARIOS if s.startswith(("tls-", "dtls-"))]

TOTALS_RE = re.compile(r"start_mclient: tot_send_msgs=(\d+), tot_recv_msgs=(\d+)\s*$", re.M)
LOST_RE = re.compile(r"Total lost packets (\d+) \(([\d.]+)%\), total send dropped (\d+) \(([\d.]+)%\)")
RTT_RE = re.compile(r"Average round trip delay ([\d.]+) ms")


def run_scenario(name, uclient, cfg, peer_port, args):
    extra = SCENARIOS[name]
    m = int(extra[extra.index("-m") + 1])
    if "-W" in extra:  # shared secret instead of a password
        extra = [cfg.shared_secrets[0] if x == "SECRET" else x for x in extra]
        creds = ["-u", harness.DEFAULT_USER]
    else:
        creds = ["-u", harness.DEFAULT_USER, "-w", cfg.users[harness.DEFAULT_USER]]
    port = cfg.tls_port if "-S" in extra else cfg.port
    cmd = [uclient, *creds,
           "-p", str(port), "-e", "127.0.0.1", "-r", str(peer_port),
           "-n", str(args.n), "-l", str(args.l), *extra, "127.0.0.1"]
    # The password appears in uclient's argv: it has no other way to take it.  Test-only creds.
    r = harness.run_client(cmd, timeout=args.client_timeout)
    problems = []
    if r.timed_out:
        problems.append(f"timed out after {args.client_timeout}s")
    elif r.returncode != 0:
        problems.append(f"exit status {r.returncode}")
    totals = TOTALS_RE.findall(r.output)
    lost = LOST_RE.search(r.output)
    sent = recv = None
    if not totals:
        problems.append("no final 'tot_send_msgs=..., tot_recv_msgs=...' line")
    else:
        sent, recv = (int(x) for x in totals[-1])
        if recv <= 0:
            problems.append("no packets came back through the relay")
        if sent < args.n * m:
            problems.append(f"only {sent} messages sent, want >= {args.n * m}")
    if not lost:
        problems.append("no 'Total lost packets' line")
    else:
        lost_pct = float(lost.group(2))
        if lost_pct > args.max_loss:
            problems.append(f"lost {lost.group(1)} packets ({lost_pct}%) > {args.max_loss}%")
        if float(lost.group(4)) > args.max_loss:
            problems.append(f"send dropped {lost.group(3)} ({lost.group(4)}%) > {args.max_loss}%")
    summary = " | ".join(x for x in [
        totals and f"tot_send_msgs={sent}, tot_recv_msgs={recv}",
        lost and lost.group(0),
        (RTT_RE.search(r.output) or [None])[0] if RTT_RE.search(r.output) else None,
    ] if x)
    shown = " ".join("<secret>" if x in cfg.shared_secrets else x for x in extra)
    if not harness.check(f"{name} ({shown}) in {r.elapsed:.1f}s: {summary}" if not problems else f"{name} ({shown})",
                         not problems, "; ".join(problems)):
        tail = r.output.strip().splitlines()[-25:]
        print("    uclient output (tail):\n" + ("\n".join("      " + l for l in tail) if tail else
              "      (none -- uclient prints nothing while its Allocate goes unanswered)"))
        return False
    return True


def main():
    ap = harness.common_arguments(__doc__.splitlines()[0])
    ap.add_argument("--uclient", default="turnutils_uclient")
    ap.add_argument("--peer", default="turnutils_peer")
    ap.add_argument("-n", type=int, default=50, help="messages per session (default 50)")
    ap.add_argument("-l", type=int, default=100, help="message length (default 100)")
    ap.add_argument("--max-loss", type=float, default=0.0, help="allowed loss in percent (default 0)")
    ap.add_argument("--client-timeout", type=float, default=60.0, help="seconds per uclient run")
    ap.add_argument("--keep-going", action="store_true", help="run the remaining scenarios after a failure")
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--tcp", action="store_true", help="also run the TCP (-t) scenarios")
    g.add_argument("--tcp-only", action="store_true", help="run only the TCP (-t) scenarios")
    g.add_argument("--secure-only", action="store_true", help="run only the TLS and DTLS (-S) scenarios")
    g.add_argument("--scenario", action="append", choices=sorted(SCENARIOS), help="run just these")
    args = ap.parse_args()

    if args.scenario:
        names = args.scenario
    elif args.tcp_only:
        names = TCP_SCENARIOS
    elif args.secure_only:
        names = SECURE_SCENARIOS
    else:
        names = UDP_SCENARIOS + (TCP_SCENARIOS if args.tcp else [])
    if args.server == "coturn":  # the reference runs lt-cred users only
        names = [n for n in names if "rest" not in n]
    label = f"{NAME} [{args.server}]"

    def body():
        uclient = harness.require_tool(args.uclient)
        peer_tool = harness.require_tool(args.peer)
        cfg = harness.config_from_args(args, tcp=True)
        if any(n in SECURE_SCENARIOS for n in names):
            harness.add_tls(cfg, harness.TempDir(prefix="ferry-it-cert-").path)
        server = harness.server_from_args(args, cfg)
        peer_port = harness.pick_free_port(tcp=False, ipv6=False)
        with harness.BackgroundProcess([peer_tool, "-L", "127.0.0.1", "-p", str(peer_port)], "turnutils_peer") as peer:
            if not harness.udp_echo_ready("127.0.0.1", peer_port, timeout=5.0):
                return [f"turnutils_peer on 127.0.0.1:{peer_port} does not echo\n{peer.log_text()}"]
            with server:
                secure = f" (tls/dtls {cfg.tls_port})" if cfg.tls_port else ""
                print(f"  {args.server} on 127.0.0.1:{cfg.port}{secure}, relay 127.0.0.1:{cfg.relay_min}-{cfg.relay_max}, "
                      f"peer 127.0.0.1:{peer_port}, -n {args.n} -l {args.l}")
                for name in names:
                    if not run_scenario(name, uclient, cfg, peer_port, args) and not args.keep_going:
                        skipped = names[names.index(name) + 1:]
                        if skipped:
                            print(f"  (stopping after the first failure; skipped {', '.join(skipped)}; "
                                  "use --keep-going to run them)")
                        break
                    if not harness.check(f"{args.server} still running after {name}", server.alive(),
                                         f"exit status {server.proc.returncode}"):
                        break
                if args.show_server_log or harness.CHECKS.problems:
                    server.dump_log("server log")
        if not names:
            return ["no scenario to run"]
        return f"{len(names)} scenarios ({', '.join(names)})"

    return harness.run_test(label, body)


if __name__ == "__main__":
    sys.exit(main())
