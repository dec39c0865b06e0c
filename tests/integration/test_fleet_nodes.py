#!/usr/bin/python3
"""Three ferry instances on one PostgreSQL act as one fleet: node registry, drain, failover lists.

A throwaway PostgreSQL (pg_env.py), `ferryctl db migrate`, and three ferry on loopback ports with
node.heartbeat_interval 1 s (n1 and n2 named, the third with the derived id <host>-<port>):
  registry   `ferryctl nodes --json` lists the three, active, with their URLs, allocations and
             last_seen; the table form names them too
  ice        /v1/ice-servers on n1 lists all three nodes, least loaded first (a node holding an
             allocation comes last), and its one credential allocates on every node
  drain      `ferryctl drain n2`: within 5 s a raw client's Allocate on n2 gets 300 Try Alternate
             with ALTERNATE-SERVER = the least loaded live active node, /readyz on n2 is 503, n2
             leaves the ICE list, while an allocation made on n2 before still refreshes and relays
  undrain    `ferryctl undrain n2`: Allocates succeed on n2 again, /readyz 200
  deadline   `ferryctl drain n2 --deadline 1`: the old allocation is closed after about a second
  sessions   `ferryctl sessions [--json]` lists allocations on three nodes with their columns; after
             a known number of payload bytes each way, bytes_in/bytes_out reach exactly those
             within a few heartbeats (MEASURE: how long after the last byte), the age is the
             allocation's own and grows; a row without started_at (an older node's) has no age;
             `ferryctl kill --user|--allocation` closes them at once
  down       n3 killed with SIGKILL: shown `down` within 3 heartbeats (+ slack), no longer listed
             in /v1/ice-servers, never an ALTERNATE-SERVER; with n1 and n2 both drained there is
             no live active node left, so n1 answers 508

Usage: /usr/bin/python3 test_fleet_nodes.py --ferryctl PATH [--bin PATH]
"""

import hashlib
import json
import os
import re
import secrets
import signal
import socket
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402
from harness import check  # noqa: E402
from pg_env import Ferryctl  # noqa: E402
from turn_udp_client import TurnError, TurnUdpClient  # noqa: E402

NAME = "fleet_nodes"
HEARTBEAT = 1  # seconds (node.heartbeat_interval)
API_KEY = secrets.token_urlsafe(24)


class Ctl(Ferryctl):
    def nodes(self) -> dict:
        return {n["id"]: n for n in self.json("nodes")}


class Echo:
    """A UDP echo peer on 127.0.0.1 (a daemon thread, stopped by close())."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop:
            try:
                data, addr = self.sock.recvfrom(65536)
                self.sock.sendto(data, addr)
            except (TimeoutError, socket.timeout):
                continue
            except OSError:
                return

    def close(self):
        self.stop = True
        self.thread.join(2)
        self.sock.close()


def wait_for(what, fn, timeout: float):
    """Polls fn() (bounded in time) until it returns something truthy; returns it and the seconds taken."""
    t0 = time.monotonic()
    last = None
    while time.monotonic() - t0 < timeout:
        try:
            last = fn()
            if last:
                return last, time.monotonic() - t0
        except Exception as e:  # noqa: BLE001 - keep polling; reported below
            last = e
        time.sleep(0.1)
    return None, f"{what}: not within {timeout} s (last: {last!r})"


def node_config(args, pg, node_id):
    digest = hashlib.sha256(API_KEY.encode()).hexdigest()
    node = f"node: {{id: {node_id}, heartbeat_interval: {HEARTBEAT}}}" if node_id else \
        f"node: {{heartbeat_interval: {HEARTBEAT}}}"
    # drain.timeout 30: SIGTERM drains (the harness default, 0, exits at once).
    return harness.config_from_args(args, ipv6=False, tcp=False, workers=1, drain={"timeout": "30"},
                                    http_port=harness.pick_free_port(udp=False, ipv6=False),
                                    http_extra=[f"api_keys: [{{name: fleet, sha256: {digest}}}]",
                                                "api_requests_per_second: 0"],
                                    extra_yaml=node)


def ice(server) -> dict:
    status, _, body = harness.http_get(server.config.http_port, "/v1/ice-servers",
                                       {"Authorization": "Bearer " + API_KEY})
    if status != 200:
        raise RuntimeError(f"/v1/ice-servers: {status} {body.strip()}")
    return json.loads(body)


def ice_ports(body: dict) -> list[int]:
    """The TURN port of each iceServers entry, in order."""
    out = []
    for entry in body["iceServers"]:
        for u in entry["urls"]:
            m = re.match(r"turn:127\.0\.0\.1:(\d+)\?transport=udp$", u)
            if m:
                out.append(int(m.group(1)))
                break
    return out


def readyz(server) -> int:
    return harness.http_get(server.config.http_port, "/readyz", timeout=2.0)[0]


def allocate_error(port) -> TurnError | None:
    c = TurnUdpClient(("127.0.0.1", port), harness.DEFAULT_USER, harness.DEFAULT_PASSWORD)
    try:
        c.allocate()
        c.refresh(0)
        return None
    except TurnError as e:
        return e
    finally:
        c.close()


def relays(client: TurnUdpClient, echo: Echo, payload: bytes) -> bool:
    client.send(("127.0.0.1", echo.port), payload)
    got = client.receive_data(2.0)
    return got is not None and got[1] == payload


def run(args, pg):
    ctl = Ctl(os.path.abspath(args.ferryctl), pg.url, timeout=30)
    p = ctl.run("db", "migrate")
    check("db migrate applies 0003 nodes", p.returncode == 0 and "applied 3 nodes" in p.stdout, p.stdout + p.stderr)
    p = ctl.run("nodes")
    check("ferryctl nodes on an empty registry", p.returncode == 0 and "no nodes" in p.stdout, p.stdout + p.stderr)
    p = ctl.run("drain", "nosuchnode")
    check("ferryctl drain of an unknown node is a clear error",
          p.returncode != 0 and "no node 'nosuchnode'" in p.stderr, p.stderr.strip())

    servers = {}
    env = {"FERRY_DATABASE_URL": pg.url}
    echo = Echo()
    try:
        for nid in ("n1", "n2", None):
            s = harness.Server("ferry", node_config(args, pg, nid), binary=args.bin, keep_workdir=args.keep_logs,
                               env=env)
            s.start()
            harness.wait_http(s.config.http_port)
            servers[nid or "derived"] = s
        # resolved_node_id(): the host name in the id alphabet, cut to fit, "-" and the first port.
        host = re.sub(r"[^A-Za-z0-9._-]", "-", socket.gethostname()) or "ferry"
        suffix = f"-{servers['derived'].config.port}"
        n3 = host[:64 - len(suffix)] + suffix
        servers = {"n1": servers["n1"], "n2": servers["n2"], n3: servers["derived"]}
        run_with_servers(ctl, pg, servers, echo)
    finally:
        echo.close()
        for nid, s in servers.items():
            if harness.CHECKS.problems and s.alive():
                s.dump_log(f"ferry log ({nid})")
            s.stop()


def run_with_servers(ctl, pg, servers, echo):
    ids = list(servers)
    n1, n2, n3 = (servers[i] for i in ids)
    port_of = {i: servers[i].config.port for i in ids}

    # --- registry --------------------------------------------------------------------------------
    nodes, took = wait_for("three active nodes",
                           lambda: (lambda n: n if all(n.get(i, {}).get("state") == "active" for i in ids) else None)(
                               ctl.nodes()), 10)
    check("ferryctl nodes --json lists the three nodes active (n3's id derived from host and port)",
          nodes is not None, took if nodes is None else "")
    if nodes is None:
        return
    for i in ids:
        n = nodes[i]
        check(f"{i}: urls, allocations, last_seen",
              f"turn:127.0.0.1:{port_of[i]}?transport=udp" in n["urls"] and n["allocations"] == 0
              and re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", n["last_seen"]) is not None
              and n["seconds_since_seen"] < 3 * HEARTBEAT, json.dumps(n))
    p = ctl.run("nodes")
    check("ferryctl nodes prints a table naming each node",
          p.returncode == 0 and all(re.search(rf"^{re.escape(i)}\s+active\s", p.stdout, re.M) for i in ids), p.stdout)

    # --- ICE servers: all three, least loaded first, one credential valid on each ----------------
    body, took = wait_for("three nodes in the ICE list",
                          lambda: (lambda b: b if sorted(ice_ports(b)) == sorted(port_of.values()) else None)(ice(n1)),
                          3 * HEARTBEAT + 2)
    check("/v1/ice-servers on n1 lists the three nodes", body is not None, str(took))
    if body is None:
        return
    cred = body["iceServers"][0]
    same = all(e["username"] == cred["username"] and e["credential"] == cred["credential"]
               for e in body["iceServers"])
    check("every entry carries the same credential", same, json.dumps(body))
    valid_on = []
    for i in ids:
        c = TurnUdpClient(("127.0.0.1", port_of[i]), cred["username"], cred["credential"])
        try:
            c.allocate()
            c.refresh(0)
            valid_on.append(i)
        except (TurnError, TimeoutError) as e:
            check(f"the ICE credential allocates on {i}", False, str(e))
        finally:
            c.close()
    check("the ICE credential allocates on every node", valid_on == ids, str(valid_on))

    # n2 holds an allocation (kept for the drain below): it becomes the most loaded node.
    old = TurnUdpClient(("127.0.0.1", port_of["n2"]), harness.DEFAULT_USER, harness.DEFAULT_PASSWORD)
    try:
        old.allocate(lifetime=600)
        old.create_permission("127.0.0.1")
        check("an allocation on n2 relays", relays(old, echo, b"before drain"))
        order, took = wait_for("n2 last in the ICE list",
                               lambda: (lambda o: o if o and o[-1] == port_of["n2"] else None)(ice_ports(ice(n1))), 5)
        check("/v1/ice-servers: least loaded first (n2, with an allocation, comes last)", order is not None, str(took))

        run_drain(ctl, servers, ids, port_of, old, echo)
    finally:
        old.close()
    run_sessions(ctl, pg, servers, ids, port_of)
    run_outage(ctl, pg, servers, ids, port_of)
    run_down(ctl, servers, ids, port_of)


def run_outage(ctl, pg, servers, ids, port_of):
    """PostgreSQL stopped and started again: the nodes keep relaying, hand out their own URLs
    meanwhile, and rejoin the registry by themselves."""
    n1 = servers["n1"]
    c = TurnUdpClient(("127.0.0.1", port_of["n1"]), harness.DEFAULT_USER, harness.DEFAULT_PASSWORD)
    try:
        c.allocate(lifetime=600)
        pg.stop()
        alone, took = wait_for("n1 alone in its ICE list", lambda: ice_ports(ice(n1)) == [port_of["n1"]],
                               3 * HEARTBEAT + 5)
        check("database down: /v1/ice-servers falls back to the node's own URLs", alone is not None, str(took))
        check("database down: the allocation still refreshes", c.refresh(600) == 600)
        check("database down: every ferry still runs", all(s.alive() for s in servers.values()))
        pg.start()
        back, took = wait_for("three active again",
                              lambda: all(n["state"] == "active" for n in ctl.nodes().values()) and
                              len(ctl.nodes()) == 3 and sorted(ice_ports(ice(n1))) == sorted(port_of.values()), 40)
        check("database back: the nodes rejoin the registry and the ICE list by themselves", back is not None,
              str(took))
        if back is not None:
            harness.log(f"after the database restart the fleet was whole again in {took:.1f} s")
        c.refresh(0)
    finally:
        c.close()


def until_closed(client: TurnUdpClient, limit: float) -> float | None:
    """Seconds until the client's allocation is gone (Refresh answered 437), polled; None if not within limit."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit:
        try:
            client.refresh(600)
        except TurnError as e:
            if e.code == 437:
                return time.monotonic() - t0
        except TimeoutError:
            pass
        time.sleep(0.01)
    return None


def relay_known_bytes(client: TurnUdpClient, peer: socket.socket, sizes_in, sizes_out) -> tuple[int, int]:
    """Payload bytes that went client -> peer and peer -> client, each datagram waited for."""
    got_in = got_out = 0
    for i, n in enumerate(sizes_in):
        client.send(peer.getsockname(), bytes([i]) * n)
        got_in += len(peer.recvfrom(65536)[0])
    for i, n in enumerate(sizes_out):
        peer.sendto(bytes([i]) * n, client.relayed)
        d = client.receive_data(2.0)
        got_out += len(d[1]) if d is not None else 0
    return got_in, got_out


def session_row(ctl, sid: str) -> dict | None:
    return next((r for r in ctl.json("sessions") if r["id"] == sid), None)


def run_session_usage(ctl, pg, a1: TurnUdpClient, sid: str, allocated_at: float):
    """Age and bytes of a1's row: the bytes relayed, exactly, once a heartbeat wrote them; an age
    that is the allocation's and grows."""
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer.bind(("127.0.0.1", 0))
    peer.settimeout(2.0)
    try:
        sent_in, sent_out = relay_known_bytes(a1, peer, [100, 250, 400, 1000], [60, 90, 1200])
    finally:
        peer.close()
    relayed_at = time.monotonic()
    check("the peer and the client got every byte (1750 in, 1350 out)", (sent_in, sent_out) == (1750, 1350),
          f"{sent_in} in, {sent_out} out")
    row, took = wait_for("bytes in the sessions row",
                         lambda: (lambda r: r if r and (r["bytes_in"], r["bytes_out"]) == (sent_in, sent_out)
                                  else None)(session_row(ctl, sid)), 3 * HEARTBEAT + 3)
    check(f"ferryctl sessions --json: bytes_in {sent_in} and bytes_out {sent_out}, exactly, within "
          f"{3 * HEARTBEAT + 3} s", row is not None, str(took))
    if row is None:
        return
    print(f"MEASURE sessions bytes current after the last relayed byte: {took:.2f} s "
          f"(node.heartbeat_interval {HEARTBEAT} s)", flush=True)
    first_age, first_at = row["age"], time.monotonic()
    expected = first_at - allocated_at
    check("age is the allocation's own (within 1.5 s of the time since its Allocate)",
          isinstance(first_age, int) and abs(first_age - expected) <= 1.5, f"age {first_age}, expected ~{expected:.1f}")
    time.sleep(2.5)
    row = session_row(ctl, sid) or {}
    later = time.monotonic() - first_at
    check("age grows with the time that passed",
          isinstance(row.get("age"), int) and row["age"] > first_age and abs(row["age"] - first_age - later) <= 1.5,
          f"{first_age} then {row.get('age')} after {later:.1f} s")
    check("the bytes stay as they were without traffic",
          (row.get("bytes_in"), row.get("bytes_out")) == (sent_in, sent_out), json.dumps(row))
    p = ctl.run("sessions", "--node", "n1")
    line = next((ln for ln in p.stdout.splitlines() if ln.startswith(sid)), "")
    check("the table has AGE, BYTES_IN and BYTES_OUT, with a1's bytes",
          p.returncode == 0 and re.search(r"\bAGE\s+BYTES_IN\s+BYTES_OUT\b", p.stdout) is not None
          and re.search(rf"\s\d+s\s+{sent_in}\s+{sent_out}\s", line) is not None, p.stdout)

    # A row an older node wrote (before migration 0007): no started_at, so no age, and bytes 0.
    # Its node is marked draining so that no live node hands it out meanwhile.
    pg.psql("INSERT INTO nodes (id, heartbeat_interval, desired_state) VALUES ('old-node', 3600, 'draining'); "
            "INSERT INTO sessions (node, id, username, client, transport, relayed, expires_at) VALUES "
            "('old-node', '127.0.0.1:9', 'old', '127.0.0.1:1', 'udp', '127.0.0.1:9', now() + interval '1 hour')")
    try:
        rows = ctl.json("sessions", "--node", "old-node")
        check("a row without started_at: age null, bytes 0",
              [(r["age"], r["bytes_in"], r["bytes_out"]) for r in rows] == [(None, 0, 0)], json.dumps(rows))
        p = ctl.run("sessions", "--node", "old-node")
        check("... and '-' for its age in the table",
              p.returncode == 0 and re.search(r"old-node/127\.0\.0\.1:9 .*\s-\s+0\s+0\s", p.stdout) is not None,
              p.stdout + p.stderr)
    finally:
        pg.psql("DELETE FROM nodes WHERE id = 'old-node'")


def run_sessions(ctl, pg, servers, ids, port_of):
    n1 = servers["n1"]
    victim = ids[2]
    # alice on n1 and on the third node; bob (a TURN REST credential from /v1/ice-servers) on n2.
    cred = ice(n1)
    rest = TurnUdpClient(("127.0.0.1", port_of["n2"]), "", "")
    a1 = TurnUdpClient(("127.0.0.1", port_of["n1"]), harness.DEFAULT_USER, harness.DEFAULT_PASSWORD)
    a3 = TurnUdpClient(("127.0.0.1", port_of[victim]), harness.DEFAULT_USER, harness.DEFAULT_PASSWORD)
    status, _, body = harness.http_get(n1.config.http_port, "/v1/ice-servers?user=bob",
                                       {"Authorization": "Bearer " + API_KEY})
    cred = json.loads(body)["iceServers"][0]
    rest.username, rest.password = cred["username"], cred["credential"]
    clients = {"a1": a1, "a3": a3, "b2": rest}
    try:
        allocated_at = time.monotonic()
        for c in clients.values():
            c.allocate(lifetime=600)
            c.create_permission("127.0.0.1")

        def listed():
            p = ctl.run("sessions", "--json")
            rows = json.loads(p.stdout) if p.returncode == 0 else []
            return rows if len(rows) == 3 else None
        rows, took = wait_for("three sessions", listed, 3 * HEARTBEAT + 2)
        check("ferryctl sessions --json lists the three live allocations across nodes", rows is not None, str(took))
        if rows is None:
            return
        by_id = {r["id"]: r for r in rows}
        want = f"n1/{a1.relayed[0]}:{a1.relayed[1]}"
        r = by_id.get(want, {})
        check("a session row: id NODE/RELAYED, node, user, client and transport, relayed, permissions, expiry",
              r.get("node") == "n1" and r.get("user") == harness.DEFAULT_USER
              and r.get("client") == "127.0.0.1:%d" % a1.sock.getsockname()[1] and r.get("transport") == "udp"
              and r.get("relayed") == f"{a1.relayed[0]}:{a1.relayed[1]}" and r.get("permissions") == 1
              and 500 < r.get("expires_in", 0) <= 600, json.dumps(rows))
        p = ctl.run("sessions", "--user", harness.DEFAULT_USER, "--json")
        check("ferryctl sessions --user filters", p.returncode == 0 and sorted(
            x["node"] for x in json.loads(p.stdout)) == sorted(["n1", victim]), p.stdout + p.stderr)
        p = ctl.run("sessions", "--user", "bob", "--node", "n2", "--json")
        check("--user matches a TURN REST username's user part; --node filters",
              p.returncode == 0 and [x["user"] for x in json.loads(p.stdout)] == [cred["username"]],
              p.stdout + p.stderr)
        p = ctl.run("sessions")
        check("ferryctl sessions prints a table", p.returncode == 0 and want in p.stdout, p.stdout)
        run_session_usage(ctl, pg, a1, want, allocated_at)
        p = ctl.run("kill")
        check("ferryctl kill without --user or --allocation is a clear error",
              p.returncode != 0 and "--user" in p.stderr, p.stderr)

        # kill --user: alice's allocations on n1 and the third node close, measured from the
        # moment ferryctl starts.
        t0 = time.monotonic()
        p = ctl.run("kill", "--user", harness.DEFAULT_USER)
        check("ferryctl kill --user alice", p.returncode == 0 and "closing 2 allocation(s)" in p.stdout,
              p.stdout + p.stderr)
        waited = time.monotonic() - t0
        times = [until_closed(c, 3.0) for c in (a1, a3)]
        total = [None if t is None else t + waited for t in times]
        harness.log(f"kill --user: allocations gone {total} s after ferryctl started (ferryctl itself {waited:.3f} s)")
        check("kill --user closes the user's allocations on other nodes within 1 s",
              all(t is not None and t < 1.0 for t in total), str(total))
        check("another user's allocation lives on", rest.refresh(600) == 600)

        t0 = time.monotonic()
        p = ctl.run("kill", "--allocation", f"n2/{rest.relayed[0]}:{rest.relayed[1]}")
        check("ferryctl kill --allocation NODE/ID", p.returncode == 0 and "closing 1 allocation(s)" in p.stdout,
              p.stdout + p.stderr)
        t = until_closed(rest, 3.0)
        total = None if t is None else t + (time.monotonic() - t0 - t)
        harness.log(f"kill --allocation: allocation gone {total} s after ferryctl started")
        check("kill --allocation closes that allocation within 1 s", total is not None and total < 1.0, str(total))
        empty, took = wait_for("no sessions", lambda: json.loads(ctl.run("sessions", "--json").stdout) == [],
                               3 * HEARTBEAT + 2)
        check("the sessions table follows: empty again within a few heartbeats", empty is not None, str(took))
    finally:
        for c in clients.values():
            c.close()


def run_drain(ctl, servers, ids, port_of, old, echo):
    n1, n2, n3 = (servers[i] for i in ids)
    # --- drain -------------------------------------------------------------------------------------
    t0 = time.monotonic()
    p = ctl.run("drain", "n2")
    check("ferryctl drain n2", p.returncode == 0 and "draining" in p.stdout, p.stdout + p.stderr)
    err, took = wait_for("300 from n2", lambda: (lambda e: e if e is not None and e.code == 300 else None)(
        allocate_error(port_of["n2"])), 5)
    check("within 5 s a new Allocate on n2 gets 300 Try Alternate", err is not None, str(took))
    harness.log(f"drain seen after {time.monotonic() - t0:.2f} s")
    if err is not None:
        alt = err.alternate_server()
        live_active = {("127.0.0.1", port_of[i]) for i in ids if i != "n2"}
        check("ALTERNATE-SERVER is a live active node's address", alt in live_active, f"{alt} not in {live_active}")
    status, _ = wait_for("n2 not ready", lambda: readyz(n2) == 503, 5)
    check("/readyz on n2 turns 503 while drained", status is not None)
    check("/healthz on n2 stays 200", harness.http_get(n2.config.http_port, "/healthz")[0] == 200)
    try:
        granted = old.refresh(600)
    except (TurnError, TimeoutError) as e:
        granted = str(e)
    check("the old allocation on n2 still refreshes", granted == 600, str(granted))
    check("the old allocation on n2 still relays", relays(old, echo, b"while draining"))
    gone, took = wait_for("n2 out of the ICE list", lambda: port_of["n2"] not in ice_ports(ice(n1)), 5)
    check("n2 leaves /v1/ice-servers while drained", gone is not None, str(took))
    state = ctl.nodes()["n2"]
    check("ferryctl nodes shows n2 draining", state["state"] == "draining" and state["allocations"] == 1,
          json.dumps(state))

    # --- undrain -----------------------------------------------------------------------------------
    p = ctl.run("undrain", "n2")
    check("ferryctl undrain n2", p.returncode == 0 and "active" in p.stdout, p.stdout + p.stderr)
    ok, took = wait_for("allocations on n2 again", lambda: allocate_error(port_of["n2"]) is None, 5)
    check("within 5 s of undrain Allocates succeed on n2 again", ok is not None, str(took))
    status, _ = wait_for("n2 ready", lambda: readyz(n2) == 200, 5)
    check("/readyz on n2 is 200 again", status is not None)
    check("the old allocation outlived drain and undrain", relays(old, echo, b"after undrain"))

    # --- drain with a deadline ---------------------------------------------------------------------
    t0 = time.monotonic()
    p = ctl.run("drain", "n2", "--deadline", "1")
    check("ferryctl drain n2 --deadline 1", p.returncode == 0, p.stdout + p.stderr)

    def closed():
        try:
            old.refresh(600)
            return False
        except TurnError as e:
            return e.code == 437
    done, took = wait_for("old allocation closed", closed, 8)
    check("after the deadline the old allocation is closed (437 on Refresh)", done is not None, str(took))
    harness.log(f"deadline drain closed the allocation after {time.monotonic() - t0:.2f} s")
    # The next part allocates on n2 at once: wait until n2 has read its undrain (its next poll of
    # the nodes table), or a busy machine makes that Allocate a 300.
    ctl.run("undrain", "n2")
    ok, took = wait_for("allocations on n2 after the deadline drain", lambda: allocate_error(port_of["n2"]) is None, 5)
    check("within 5 s of the second undrain Allocates succeed on n2 again", ok is not None, str(took))


def run_down(ctl, servers, ids, port_of):
    n1, n2, n3 = (servers[i] for i in ids)
    # --- a node killed with SIGKILL ----------------------------------------------------------------
    victim = ids[2]
    os.kill(n3.proc.pid, signal.SIGKILL)
    n3.wait_exit(5)
    t0 = time.monotonic()
    state, took = wait_for("victim down", lambda: ctl.nodes()[victim]["state"] == "down", 3 * HEARTBEAT + 5)
    check(f"{victim} killed with SIGKILL is shown down", state is not None, str(took))
    harness.log(f"SIGKILLed node shown down after {time.monotonic() - t0:.2f} s (3 heartbeats = {3 * HEARTBEAT} s)")
    gone, took = wait_for("victim out of ICE", lambda: port_of[victim] not in ice_ports(ice(n1)), 5)
    check(f"{victim} is no longer in /v1/ice-servers", gone is not None, str(took))
    two = sorted([port_of["n1"], port_of["n2"]])
    ports, took = wait_for("two nodes in n2's ICE list", lambda: sorted(ice_ports(ice(n2))) == two, 2 * HEARTBEAT + 2)
    check("/v1/ice-servers on n2 lists the two live nodes", ports is not None, str(took))

    # n2 drained: its only alternate is n1 (never the dead node).
    ctl.run("drain", "n2")
    err, took = wait_for("300 from n2", lambda: (lambda e: e if e is not None and e.code == 300 else None)(
        allocate_error(port_of["n2"])), 5)
    check("with a node down the drained n2 sends clients to n1",
          err is not None and err.alternate_server() == ("127.0.0.1", port_of["n1"]),
          str(took) if err is None else str(err.alternate_server()))
    # n1 drained too: no live active node is left, so no ALTERNATE-SERVER: 508.
    ctl.run("drain", "n1")
    err, took = wait_for("508 from n1", lambda: (lambda e: e if e is not None and e.code == 508 else None)(
        allocate_error(port_of["n1"])), 5)
    check("with no live active node left a drained node answers 508", err is not None, str(took))
    ctl.run("undrain", "n1")
    ctl.run("undrain", "n2")
    ok, took = wait_for("n1 allocates again", lambda: allocate_error(port_of["n1"]) is None, 5)
    check("n1 allocates again after undrain", ok is not None, str(took))

    # --- SIGTERM drain in a fleet: the same drain, reported in the registry ----------------------
    held = TurnUdpClient(("127.0.0.1", port_of["n1"]), harness.DEFAULT_USER, harness.DEFAULT_PASSWORD)
    try:
        held.allocate(lifetime=600)
        n1.send_signal(signal.SIGTERM)
        state, took = wait_for("n1 draining", lambda: ctl.nodes()["n1"]["state"] == "draining", 5)
        check("after SIGTERM ferryctl nodes shows n1 draining", state is not None, str(took))
        # n1 learns that n2 is active again (the undrain above) with its next fleet read.
        err, took = wait_for("300 from n1", lambda: (lambda e: e if e is not None and e.code == 300 else None)(
            allocate_error(port_of["n1"])), 3 * HEARTBEAT)
        check("SIGTERM-drained n1 sends new Allocates to n2 (no drain.alternate_server needed)",
              err is not None and err.alternate_server() == ("127.0.0.1", port_of["n2"]),
              str(took) if err is None else str(err.alternate_server()))
        check("n1 is still up while an allocation is left", n1.alive())
        held.refresh(0)
        check("n1 exits 0 once its last allocation is gone", n1.wait_exit(5) == 0)
    finally:
        held.close()


def main() -> int:
    ap = harness.common_arguments(__doc__.splitlines()[0])
    ap.add_argument("--ferryctl", required=True)
    args = ap.parse_args()
    if args.server != "ferry":
        return harness.report(NAME, [], f"nothing to check against {args.server}")
    return harness.run_pg_test(NAME, lambda pg: run(args, pg))


if __name__ == "__main__":
    sys.exit(main())
