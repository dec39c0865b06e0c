#!/usr/bin/python3
"""Two ferry nodes on one PostgreSQL share each user's allocation quota (issue 15, deliverable 6).

A throwaway PostgreSQL (pg_env.py), `ferryctl db migrate`, and two ferry (a, b) on loopback ports
with node.heartbeat_interval 1 s, one worker each, and limits.max_allocations_per_user 2:
  fleet      the static user allocates 2 on a; within a few heartbeats an Allocate on b gets
             486 Allocation Quota Reached (RFC 8656 §7.2), and a third on a too (a's own count)
  free       one of a's allocations deleted (Refresh 0): b allocates again; then, a heartbeat
             later, a refuses (1 on a + 1 on b = 2)
  database   a users-table user with --max-allocations 3 (the row wins over the config's 2):
             2 on a, 1 on b, and the 4th on b is refused
  race       both nodes asked at once for 2 each within one heartbeat: each admits at most the
             quota, so the fleet holds at most nodes x max (the documented bound); a heartbeat
             later both refuse
  down       a killed with SIGKILL: once it shows `down`, its sessions no longer count on b

Usage: /usr/bin/python3 test_fleet_quota.py --ferryctl PATH [--bin PATH]
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402
from harness import check  # noqa: E402
from pg_env import PgEnv, PgEnvError  # noqa: E402
from test_fleet_nodes import Ctl, wait_for  # noqa: E402
from turn_udp_client import TurnError, TurnUdpClient  # noqa: E402

NAME = "fleet_quota"
HEARTBEAT = 1  # seconds (node.heartbeat_interval)
MAX = 2  # limits.max_allocations_per_user
# Sessions reach the table one to two heartbeats after they change, and the other node reads the
# table at its own heartbeat: 3 heartbeats, plus slack for a loaded machine.
SEEN = 3 * HEARTBEAT + 3


def node_config(args, node_id):
    return harness.config_from_args(args, ipv6=False, tcp=False, workers=1,
                                    limits={"max_allocations_per_user": MAX},
                                    http_port=harness.pick_free_port(udp=False, ipv6=False),
                                    extra_yaml=f"node: {{id: {node_id}, heartbeat_interval: {HEARTBEAT}}}")


class Clients:
    """The allocations a test holds, closed (Refresh 0, then the socket) at the end."""

    def __init__(self):
        self.held = []

    def allocate(self, port, user=harness.DEFAULT_USER, password=harness.DEFAULT_PASSWORD):
        """A new allocation on `port`: the client, or the TurnError code it got."""
        c = TurnUdpClient(("127.0.0.1", port), user, password)
        try:
            c.allocate(lifetime=600)
        except TurnError as e:
            c.close()
            return e.code
        except TimeoutError:
            c.close()
            return "timeout"
        self.held.append(c)
        return c

    def free(self, c):
        try:
            c.refresh(0)
        except (TurnError, TimeoutError):
            pass
        c.close()
        self.held.remove(c)

    def free_all(self):
        for c in list(self.held):
            self.free(c)


def refused_within(clients, port, limit, **kw):
    """Allocates on `port` until it gets 486 (any success is freed at once); seconds taken or None."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit:
        got = clients.allocate(port, **kw)
        if got == 486:
            return time.monotonic() - t0
        if not isinstance(got, (int, str)):
            clients.free(got)
        time.sleep(0.1)
    return None


def granted_within(clients, port, limit, **kw):
    """Allocates on `port` until one succeeds (kept); (client, seconds) or (None, last answer)."""
    t0 = time.monotonic()
    got = None
    while time.monotonic() - t0 < limit:
        got = clients.allocate(port, **kw)
        if not isinstance(got, (int, str)):
            return got, time.monotonic() - t0
        time.sleep(0.1)
    return None, got


def live_sessions(ctl, user, n):
    """Waits until `ferryctl sessions --user` shows n rows for user."""
    def shown():
        p = ctl.run("sessions", "--user", user, "--json")
        return p.returncode == 0 and len(json.loads(p.stdout)) == n
    return wait_for(f"{n} sessions of {user}", shown, SEEN)


def run(args, pg):
    ctl = Ctl(os.path.abspath(args.ferryctl), pg.url)
    p = ctl.run("db", "migrate")
    check("db migrate", p.returncode == 0, p.stdout + p.stderr)
    add_user(ctl, args.realm)

    servers = {}
    env = {"FERRY_DATABASE_URL": pg.url}
    clients = Clients()
    try:
        for nid in ("a", "b"):
            s = harness.Server("ferry", node_config(args, nid), binary=args.bin, keep_workdir=args.keep_logs, env=env)
            s.start()
            harness.wait_http(s.config.http_port)
            servers[nid] = s
        nodes, took = wait_for("two active nodes",
                               lambda: all(ctl.nodes().get(i, {}).get("state") == "active" for i in servers), 10)
        check("both nodes registered active", nodes is not None, str(took))
        run_with_servers(ctl, servers, clients)
    finally:
        clients.free_all()
        for nid, s in servers.items():
            if harness.CHECKS.problems and s.alive():
                s.dump_log(f"ferry log ({nid})")
            s.stop()


def add_user(ctl, realm):
    env = {k: v for k, v in os.environ.items() if not k.startswith("FERRY_") and not k.startswith("PG")}
    env["FERRY_DATABASE_URL"] = ctl.url
    p = subprocess.run([ctl.binary, "user", "add", "carol", "--realm", realm, "--max-allocations", "3",
                        "--password-stdin"], input="carol-pw\n", capture_output=True, text=True, env=env, timeout=30)
    check("ferryctl user add carol --max-allocations 3", p.returncode == 0, p.stdout + p.stderr)


def run_with_servers(ctl, servers, clients):
    pa, pb = servers["a"].config.port, servers["b"].config.port
    user = harness.DEFAULT_USER

    # --- fleet: 2 on a, then b refuses ------------------------------------------------------------
    a1, a2 = clients.allocate(pa), clients.allocate(pa)
    check(f"{user} allocates {MAX} on a", all(not isinstance(c, (int, str)) for c in (a1, a2)), f"{a1} {a2}")
    if isinstance(a1, (int, str)) or isinstance(a2, (int, str)):
        return
    t0 = time.monotonic()
    check("a third Allocate on a gets 486 (a's own count)", clients.allocate(pa) == 486)
    took = refused_within(clients, pb, SEEN)
    check(f"an Allocate on b gets 486 within {SEEN} s (a's allocations count on b)", took is not None)
    if took is not None:
        harness.log(f"b refused with 486 {time.monotonic() - t0:.2f} s after a's second allocation "
                    f"(heartbeat {HEARTBEAT} s)")
    other = clients.allocate(pb, "carol", "carol-pw")
    check("another user is not affected on b", not isinstance(other, (int, str)), str(other))
    if not isinstance(other, (int, str)):
        clients.free(other)

    # --- free one on a: b allocates again, then a refuses -----------------------------------------
    clients.free(a1)
    t0 = time.monotonic()
    b1, took = granted_within(clients, pb, SEEN)
    check(f"after a frees one, b allocates again within {SEEN} s", b1 is not None, str(took))
    if b1 is not None:
        harness.log(f"b granted {took:.2f} s after a freed one")
        took = refused_within(clients, pa, SEEN)
        check("then a refuses (1 on a + 1 on b = the quota)", took is not None)
    clients.free_all()

    # --- database user: the users-table quota counts across nodes too -----------------------------
    ok, took = live_sessions(ctl, user, 0)
    check("the sessions table empties", ok is not None, str(took))
    c = [clients.allocate(pa, "carol", "carol-pw") for _ in range(2)] + [clients.allocate(pb, "carol", "carol-pw")]
    check("carol (max_allocations 3 in users) holds 2 on a and 1 on b",
          all(not isinstance(x, (int, str)) for x in c), str(c))
    took = refused_within(clients, pb, SEEN, user="carol", password="carol-pw")
    check("carol's 4th, on b, gets 486", took is not None)
    clients.free_all()

    # --- race: both nodes at once, within one heartbeat --------------------------------------------
    ok, took = live_sessions(ctl, user, 0)
    check("the sessions table empties again", ok is not None, str(took))
    time.sleep(HEARTBEAT + 0.5)  # both nodes have read the empty table
    got = [clients.allocate(p) for p in (pa, pb, pa, pb)]
    granted = sum(1 for x in got if not isinstance(x, (int, str)))
    harness.log(f"race: {granted} of 4 Allocates granted at once on two nodes (quota {MAX})")
    check(f"at once on two nodes, at most nodes x quota = {2 * MAX} granted", MAX <= granted <= 2 * MAX, str(got))
    ta = refused_within(clients, pa, SEEN)
    tb = refused_within(clients, pb, SEEN)
    check("after the race both nodes refuse", ta is not None and tb is not None, f"{ta} {tb}")
    clients.free_all()

    # --- down: a dead node's sessions stop counting -----------------------------------------------
    a1, a2 = clients.allocate(pa), clients.allocate(pa)
    took = refused_within(clients, pb, SEEN)
    check("again 2 on a: b refuses", took is not None)
    os.kill(servers["a"].proc.pid, signal.SIGKILL)
    servers["a"].wait_exit(5)
    for c in (a1, a2):
        if not isinstance(c, (int, str)):
            c.close()
            clients.held.remove(c)
    t0 = time.monotonic()
    b1, took = granted_within(clients, pb, 3 * HEARTBEAT + SEEN)
    check("a killed with SIGKILL: once it is down, b allocates again", b1 is not None, str(took))
    if b1 is not None:
        harness.log(f"b granted {time.monotonic() - t0:.2f} s after a was killed (down after 3 heartbeats)")


def main() -> int:
    ap = harness.common_arguments(__doc__.splitlines()[0])
    ap.add_argument("--ferryctl", required=True)
    args = ap.parse_args()
    if args.server != "ferry":
        return harness.report(NAME, [], f"nothing to check against {args.server}")

    def body():
        try:
            pg = PgEnv()
            pg.create()
        except PgEnvError as e:
            raise harness.Skip(str(e))
        try:
            run(args, pg)
        finally:
            pg.destroy()

    return harness.run_test(NAME, body)


if __name__ == "__main__":
    sys.exit(main())
