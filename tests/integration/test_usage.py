#!/usr/bin/python3
"""Usage records and per-user metrics end to end (issue 15, deliverables 7 and 8).

A throwaway PostgreSQL (pg_env.py), ferry with a database, usage.interval 2 s and usage.top_users 3,
our raw TURN client (turn_udp_client.py) and a UDP peer socket on loopback:
  * five users each relay a known number of bytes both ways (Send indications to the peer, peer
    datagrams back as Data indications); the peer and the clients count what arrived;
  * while they are live: an interim usage record (final = false) appears within a few intervals,
    and /metrics shows ferry_user_relayed_bytes for exactly the 3 heaviest users with exactly
    their bytes;
  * the allocations end (Refresh 0): `ferryctl usage --json` sums equal the bytes relayed, exactly,
    per user and direction, with one allocation each; --user, --since and a bad --since;
  * ferry_allocation_duration_seconds counted every ended allocation;
  * PostgreSQL stopped: an allocation ends meanwhile, its record stays buffered
    (ferry_usage_records_queued, ferry_usage_batches_failed_total); PostgreSQL started again: the
    record arrives with exact sums; a second ferry with usage.queue_size 2 drops (and counts in
    ferry_usage_records_dropped_total) what does not fit, and writes what did;
  * ferry stopped (SIGTERM) with an allocation open: its record is final, with exact sums.
Prints a MEASURE line for how long the buffered record took to arrive after PostgreSQL came back.
"""

from __future__ import annotations

import json
import os
import re
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from pg_env import Ferryctl  # noqa: E402
from turn_udp_client import TurnUdpClient  # noqa: E402

NAME = "usage"
check = harness.check
USERS = {f"user{i}": f"pw-{i}" for i in range(5)}
USERS["carol"] = "pw-carol"
USERS["dave"] = "pw-dave"


def measure(name: str, value: float, unit: str) -> None:
    print(f"MEASURE {name}: {value:.2f} {unit}", flush=True)


class Ctl(Ferryctl):
    def usage(self, *args) -> dict[str, dict]:
        return {row["user"]: row for row in self.json("usage", *args)}


def metrics(port: int) -> str:
    status, _, body = harness.http_get(port, "/metrics")
    if status != 200:
        raise RuntimeError(f"/metrics answered {status}")
    return body


def metric_values(text: str, name: str) -> dict[str, float]:
    """{labels text: value} of every sample of `name` (exact name, labels or not)."""
    out = {}
    for line in text.splitlines():
        m = re.match(rf"^{re.escape(name)}(\{{[^}}]*\}})?\s+(\S+)$", line)
        if m:
            out[m.group(1) or ""] = float(m.group(2))
    return out


def metric(text: str, name: str) -> float:
    return sum(metric_values(text, name).values())


class Session:
    """One user's allocation relaying with a peer; counts the bytes that arrived each way."""

    def __init__(self, server: tuple[str, int], user: str, peer: socket.socket):
        self.user = user
        self.peer = peer
        self.client = TurnUdpClient(server, user, USERS[user])
        self.client.allocate()
        self.client.create_permission("127.0.0.1")
        self.sent_in = self.sent_out = 0  # payload bytes sent client->peer / peer->client

    def client_to_peer(self, sizes: list[int]) -> int:
        """Sends the payloads through the relay, paced; returns the bytes the peer received."""
        got = 0
        self.peer.settimeout(2.0)
        for i, n in enumerate(sizes):
            self.client.send(self.peer.getsockname(), bytes([i % 251]) * n)
            self.sent_in += n
            data, _src = self.peer.recvfrom(65536)  # one at a time: nothing is lost on loopback
            got += len(data)
        return got

    def peer_to_client(self, sizes: list[int]) -> int:
        got = 0
        for i, n in enumerate(sizes):
            self.peer.sendto(bytes([i % 251]) * n, self.client.relayed)
            self.sent_out += n
            d = self.client.receive_data(2.0)
            if d is not None:
                got += len(d[1])
        return got

    def end(self) -> None:
        self.client.refresh(0)
        self.client.close()


def wait_for(what, timeout: float, step: float = 0.2):
    """Polls what() until it returns something truthy; returns it (or the last falsy value)."""
    deadline = time.monotonic() + timeout
    value = None
    for _ in range(int(timeout / step) + 2):
        value = what()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(step)
    return value


def start_ferry(args, pg, **usage) -> harness.Server:
    usage_yaml = ", ".join(f"{k}: {v}" for k, v in {"interval": 2, "top_users": 3, **usage}.items())
    config = harness.config_from_args(args, users=USERS, shared_secrets=[], workers=2, ipv6=False, tcp=False,
                                      http_port=harness.pick_free_port(),
                                      extra_yaml=f"usage: {{{usage_yaml}}}\nnode: {{id: usage-test-node}}")
    server = harness.Server("ferry", config, binary=args.bin, keep_workdir=args.keep_logs,
                            env={"FERRY_DATABASE_URL": pg.url})
    return server.start()


def run(args, pg) -> None:
    ctl = Ctl(os.path.abspath(args.ferryctl), pg.url)
    ctl.run("db", "migrate", ok=True)
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer.bind(("127.0.0.1", 0))
    a = start_ferry(args, pg)
    servers = [a]
    try:
        run_with_server(ctl, pg, peer, a, args, servers)
    finally:
        peer.close()
        for s in servers:
            if harness.CHECKS.problems:
                s.dump_log(f"ferry log (port {s.config.port})")
            check(f"ferry on port {s.config.port} still running at the end", s.alive())
            s.stop()


def run_with_server(ctl: Ctl, pg, peer: socket.socket, a: harness.Server, args, servers: list) -> None:
    server = ("127.0.0.1", a.config.port)
    hp = a.config.http_port

    # --- five users relay known amounts, user i more than user i-1 -----------------------------
    sessions = []
    for i in range(5):
        s = Session(server, f"user{i}", peer)
        sizes_in = [100 + 37 * k for k in range(10 + 5 * i)]
        sizes_out = [50 + 11 * k for k in range(4 + 2 * i)]
        got_in = s.client_to_peer(sizes_in)
        got_out = s.peer_to_client(sizes_out)
        check(f"user{i}: the peer received every byte sent through the relay ({s.sent_in})", got_in == s.sent_in,
              f"{got_in} of {s.sent_in}")
        check(f"user{i}: the client received every byte the peer sent ({s.sent_out})", got_out == s.sent_out,
              f"{got_out} of {s.sent_out}")
        sessions.append(s)

    # --- live: an interim record, and the top 3 users on /metrics ------------------------------
    live = wait_for(lambda: (lambda u: u if all(
        u.get(s.user, {}).get("bytes_in") == s.sent_in for s in sessions) else None)(ctl.usage()), 12.0, 0.5)
    check("interim usage records of live allocations arrive within a few usage.interval",
          bool(live) and all(live[s.user]["live"] == 1 for s in sessions), json.dumps(live))

    heaviest = sorted(sessions, key=lambda s: s.sent_in + s.sent_out, reverse=True)[:3]
    expected_top = {f'{{user="{s.user}"}}': float(s.sent_in + s.sent_out) for s in heaviest}
    top = wait_for(lambda: (lambda v: v if v == expected_top else None)(
        metric_values(metrics(hp), "ferry_user_relayed_bytes")), 5.0)
    got_top = metric_values(metrics(hp), "ferry_user_relayed_bytes")
    check("ferry_user_relayed_bytes shows exactly the 3 heaviest users (usage.top_users) with their exact bytes",
          top == expected_top, f"got {got_top}, expected {expected_top}")
    allocs = metric_values(metrics(hp), "ferry_user_allocations")
    check("ferry_user_allocations: the same 3 users, one allocation each",
          allocs == {k: 1.0 for k in expected_top}, str(allocs))

    # --- the allocations end: exact sums -----------------------------------------------------------
    for s in sessions:
        s.end()

    def all_final():
        u = ctl.usage()
        return u if all(s.user in u and u[s.user]["live"] == 0 for s in sessions) else None

    usage = wait_for(all_final, 10.0) or ctl.usage()
    for s in sessions:
        row = usage.get(s.user, {})
        check(f"ferryctl usage --json {s.user}: bytes_in {s.sent_in} and bytes_out {s.sent_out}, exactly; "
              f"1 allocation, final",
              row.get("bytes_in") == s.sent_in and row.get("bytes_out") == s.sent_out
              and row.get("allocations") == 1 and row.get("live") == 0, json.dumps(row))
    row = usage.get("user2", {})
    check("packets counted each way (user2: 20 in, 8 out)",
          row.get("packets_in") == 20 and row.get("packets_out") == 8, json.dumps(row))
    rows = pg.psql("SELECT allocation_id, node, peers, array_to_string(peer_list, ' ') FROM usage_records "
                   "WHERE username = 'user0'").strip().split("|")
    check("a record names its node, allocation and peers",
          len(rows) == 4 and rows[1] == "usage-test-node" and rows[0].startswith("usage-test-node/")
          and rows[2] == "1" and rows[3] == "127.0.0.1", str(rows))

    only = ctl.usage("--user", "user3")
    check("--user filters", list(only) == ["user3"] and only["user3"]["bytes_in"] == sessions[3].sent_in,
          json.dumps(only))
    check("--since 1h includes them, a future timestamp none",
          len(ctl.usage("--since", "1h")) >= 5 and ctl.usage("--since", "2999-01-01T00:00Z") == {})
    bad = ctl.run("usage", "--since", "last tuesday-ish", ok=False)
    check("a bad --since is refused with a message naming it",
          bad.returncode != 0 and "--since" in bad.stderr, bad.stderr.strip())
    table = ctl.run("usage", ok=True).stdout
    check("the table lists each user", all(s.user in table for s in sessions) and "BYTES_IN" in table, table)

    text = metrics(hp)
    count = metric(text, "ferry_allocation_duration_seconds_count")
    check("ferry_allocation_duration_seconds observed every ended allocation (5)", count == 5, str(count))
    check("ferry_usage_records_written_total counts the records", metric(text, "ferry_usage_records_written_total") >= 5)

    # --- PostgreSQL outage: the record waits and arrives ------------------------------------------
    # No interim records on this one (interval 3600): dave's rows are exactly the final records kept.
    b = start_ferry(args, pg, queue_size=2, interval=3600)
    servers.append(b)
    carol = Session(server, "carol", peer)
    carol.client_to_peer([500, 700, 900])
    carol.peer_to_client([300, 400])
    small = [Session(("127.0.0.1", b.config.port), "dave", peer) for _ in range(4)]
    for s in small:
        s.client_to_peer([100])
    pg.stop()
    stopped = time.monotonic()
    carol.end()
    for s in small:
        s.end()
    time.sleep(2.5)
    text = metrics(hp)
    check("during the outage the record is buffered (ferry_usage_records_queued >= 1)",
          metric(text, "ferry_usage_records_queued") >= 1, str(metric(text, "ferry_usage_records_queued")))
    check("failed batches are counted (ferry_usage_batches_failed_total > 0)",
          metric(text, "ferry_usage_batches_failed_total") > 0)
    tb = metrics(b.config.http_port)
    check("usage.queue_size 2: two of four records dropped and counted (ferry_usage_records_dropped_total)",
          metric(tb, "ferry_usage_records_dropped_total") == 2 and metric(tb, "ferry_usage_records_queued") == 2,
          f"dropped {metric(tb, 'ferry_usage_records_dropped_total')}, queued {metric(tb, 'ferry_usage_records_queued')}")
    check("ferry keeps serving during the outage", harness.stun_binding_udp("127.0.0.1", a.config.port) is not None)
    pg.start()
    back = time.monotonic()
    got = wait_for(lambda: ctl.usage("--user", "carol").get("carol"), 45.0, 0.25)
    arrived = time.monotonic()
    check("after the restart carol's record arrives with exact sums (bytes_in 2100, bytes_out 700)",
          bool(got) and got["bytes_in"] == carol.sent_in == 2100 and got["bytes_out"] == carol.sent_out == 700
          and got["live"] == 0, json.dumps(got))
    if got:
        measure("buffered usage record written after PostgreSQL came back", arrived - back, "s")
        measure("PostgreSQL outage", back - stopped, "s")
    dave = wait_for(lambda: ctl.usage("--user", "dave").get("dave"), 20.0, 0.25)
    check("the records that fit the small buffer arrive (2 allocations of dave, 100 bytes each)",
          bool(dave) and dave["allocations"] == 2 and dave["bytes_in"] == 200, json.dumps(dave))
    queued = wait_for(lambda: metric(metrics(hp), "ferry_usage_records_queued") == 0, 5.0)
    check("nothing left buffered", queued)

    # --- ferry stops with an allocation open: its record becomes final before the exit ------------
    open_one = Session(("127.0.0.1", b.config.port), "user0", peer)
    open_one.client_to_peer([1234])
    open_one.peer_to_client([321])
    b.stop()
    servers.remove(b)
    row = ctl.usage("--user", "user0").get("user0")  # user0's first allocation plus this one
    check("an allocation open when ferry stops gets a final record with exact sums",
          bool(row) and row["allocations"] == 2 and row["bytes_in"] == sessions[0].sent_in + 1234
          and row["bytes_out"] == sessions[0].sent_out + 321 and row["live"] == 0, json.dumps(row))
    open_one.client.close()


def main() -> int:
    ap = harness.common_arguments(__doc__.splitlines()[0])
    ap.add_argument("--ferryctl", required=True)
    args = ap.parse_args()
    return harness.run_pg_test(NAME, lambda pg: run(args, pg))


if __name__ == "__main__":
    sys.exit(main())
