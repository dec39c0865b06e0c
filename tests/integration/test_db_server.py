#!/usr/bin/python3
"""ferry with PostgreSQL credentials, end to end (issue 4).

A throwaway PostgreSQL (pg_env.py), users and secrets managed with ferryctl, two ferry instances
on the same database (two workers each), real TURN clients:
  * a ferryctl user allocates (our Python client, and coturn's turnutils_uclient relaying data);
  * allocate latency with a cold and a warm cache;
  * `ferryctl user disable` closes the open allocations on both instances within 1 s (measured:
    a peer that keeps sending to each relayed address sees the port close), and a new Allocate
    gets 401;
  * a shared-secret token from the database allocates; an expired one is refused; revoking the
    secret closes the token's allocation;
  * a per-user allocation quota set with ferryctl applies (486);
  * PostgreSQL stopped: a cached user still allocates, relayed data still flows, an unknown user
    gets 500, ferry stays up and logs the outage once; PostgreSQL restarted: a new user works.
Reports through the harness (an indented ok/FAIL line per check, one PASS/FAIL line at the end)
and prints a MEASURE line per figure.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import os
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from pg_env import PgEnv, PgEnvError  # noqa: E402
from turn_udp_client import TurnError, TurnUdpClient  # noqa: E402
import test_uclient  # noqa: E402

REALM = "ferry.test"
NAME = "db_server"
check = harness.check


def measure(name: str, value: float, unit: str) -> None:
    print(f"MEASURE {name}: {value:.2f} {unit}", flush=True)


class Ctl:
    def __init__(self, binary: str, url: str):
        self.binary, self.url = binary, url

    def run(self, *args, stdin: str | None = None) -> subprocess.CompletedProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FERRY_") and not k.startswith("PG")}
        env["FERRY_DATABASE_URL"] = self.url
        p = subprocess.run([self.binary, *args], input=stdin, capture_output=True, text=True, env=env, timeout=60,
                           stdin=None if stdin is not None else subprocess.DEVNULL)
        if p.returncode != 0:
            raise RuntimeError(f"ferryctl {' '.join(args)} failed: {p.stderr.strip()}")
        return p

    def add_user(self, name: str, password: str) -> None:
        self.run("user", "add", name, "--realm", REALM, "--password-stdin", stdin=password + "\n")


class PortWatcher:
    """A peer that sends to a relayed address every 10 ms from a connected UDP socket and notes
    when the kernel reports the port closed (ICMP port unreachable -> ECONNREFUSED)."""

    def __init__(self, relayed: tuple[str, int]):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.connect(relayed)
        self.sock.settimeout(0.01)
        self.closed_at: float | None = None
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)

    @property
    def address(self) -> tuple[str, int]:
        return self.sock.getsockname()

    def start(self) -> "PortWatcher":
        self._thread.start()
        return self

    def _run(self) -> None:
        deadline = time.monotonic() + 60  # bounded even if nobody stops us
        while not self._stop and time.monotonic() < deadline and self.closed_at is None:
            try:
                self.sock.send(b"ping")
                self.sock.recv(2048)
            except ConnectionRefusedError:
                self.closed_at = time.monotonic()
            except (TimeoutError, socket.timeout):
                pass
            time.sleep(0.01)

    def stop(self) -> None:
        self._stop = True
        self._thread.join(timeout=2)
        self.sock.close()


def allocate_with_peer(server: tuple[str, int], user: str, password: str, local: str = "127.0.0.1"):
    c = TurnUdpClient(server, user, password, local=local)
    relayed = c.allocate()
    c.create_permission("127.0.0.1")
    return c, relayed


def timed_allocate(server, user, password, local="127.0.0.1") -> tuple[float, TurnUdpClient]:
    """Seconds for the authenticated Allocate round trip (the 401 challenge is taken first)."""
    c = TurnUdpClient(server, user, password, local=local)
    c.take_challenge()
    t0 = time.monotonic()
    c.allocate()
    return time.monotonic() - t0, c


def rest_credential(secret: str, user: str, expires: int) -> tuple[str, str]:
    username = f"{expires}:{user}"
    return username, base64.b64encode(hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()).decode()


def wait_for(pred, timeout: float, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return pred()


def can_allocate(server, user, password, local="127.0.0.1") -> int:
    """0 on success, else the error code (or -1 on timeout)."""
    c = TurnUdpClient(server, user, password, local=local)
    try:
        c.allocate(lifetime=60)
        c.refresh(0)
        return 0
    except TurnError as e:
        return e.code
    except TimeoutError:
        return -1
    finally:
        c.close()


def main() -> int:
    ap = harness.common_arguments(__doc__.splitlines()[0])
    ap.add_argument("--ferryctl", required=True)
    ap.add_argument("--uclient", default="turnutils_uclient")
    ap.add_argument("--peer", default="turnutils_peer")
    args = ap.parse_args()

    def body():
        try:
            pg = PgEnv()
            pg.create()
        except PgEnvError as e:
            return [f"setup: {e}"]
        try:
            run(args, pg)
        finally:
            pg.destroy()

    return harness.run_test(NAME, body)


def start_ferry(args, pg) -> harness.Server:
    config = harness.config_from_args(args, users={}, shared_secrets=[], workers=2, ipv6=False, tcp=False,
                                      extra_yaml="database: {cache_ttl: 60, negative_cache_ttl: 2}")
    server = harness.Server("ferry", config, binary=args.bin, keep_workdir=args.keep_logs,
                            env={"FERRY_DATABASE_URL": pg.url})
    return server.start()


def run(args, pg) -> None:
    ctl = Ctl(os.path.abspath(args.ferryctl), pg.url)
    ctl.run("db", "migrate")
    ctl.add_user("alice", "alice-pw")
    ctl.add_user("bob", "bob-pw")

    a = start_ferry(args, pg)
    b = start_ferry(args, pg)
    try:
        run_with_servers(args, pg, ctl, a, b)
    finally:
        for s in (a, b):
            if harness.CHECKS.problems:
                s.dump_log(f"ferry log (port {s.config.port})")
            check(f"ferry on port {s.config.port} still running at the end", s.alive())
            log = s.log_text(200000)
            check(f"ferry on port {s.config.port}: no secret or password in its log",
                  "alice-pw" not in log and "bob-pw" not in log and "shared-secret-value" not in log)
            s.stop()


def run_with_servers(args, pg, ctl, a: harness.Server, b: harness.Server) -> None:
    sa = ("127.0.0.1", a.config.port)
    sb = ("127.0.0.1", b.config.port)

    # --- a PostgreSQL user allocates; cold and warm cache -------------------------------------------
    cold, c1 = timed_allocate(sa, "alice", "alice-pw")
    check("PostgreSQL user allocates", c1.relayed is not None)
    warm = []
    for _ in range(5):
        t, c = timed_allocate(sa, "alice", "alice-pw")
        warm.append(t)
        c.refresh(0)
        c.close()
    warm.sort()
    measure("allocate latency, cold cache (database query)", cold * 1000, "ms")
    measure("allocate latency, warm cache (median of 5)", warm[2] * 1000, "ms")
    c1.refresh(0)
    c1.close()

    code = can_allocate(sa, "alice", "wrong-password")
    check("wrong password for a PostgreSQL user: 401", code == 401, f"got {code}")
    code = can_allocate(sa, "nobody", "x")
    check("unknown user: 401", code == 401, f"got {code}")

    # --- coturn's turnutils_uclient relays data as a PostgreSQL user --------------------------------
    uclient = harness.require_tool(args.uclient)
    peer_tool = harness.require_tool(args.peer)
    peer_port = harness.pick_free_port(tcp=False, ipv6=False)
    with harness.BackgroundProcess([peer_tool, "-L", "127.0.0.1", "-p", str(peer_port)], "turnutils_peer"):
        check("turnutils_peer echoes", harness.udp_echo_ready("127.0.0.1", peer_port, timeout=5.0))
        # The password is in uclient's argv: it has no other way to take it. Test-only credentials.
        r = harness.run_client([uclient, "-u", "alice", "-w", "alice-pw", "-p", str(a.config.port), "-e",
                                "127.0.0.1", "-r", str(peer_port), "-n", "20", "-l", "120", "-m", "1",
                                "127.0.0.1"], timeout=60)
        totals = test_uclient.TOTALS_RE.findall(r.output)
        lost = test_uclient.LOST_RE.search(r.output)
        recv = int(totals[-1][1]) if totals else 0
        check("turnutils_uclient relays data as a PostgreSQL user",
              r.returncode == 0 and recv > 0 and lost is not None and float(lost.group(2)) == 0.0,
              f"exit {r.returncode}, {totals}, {lost and lost.group(0)}\n{r.output[-3000:]}")

    # --- live revocation on both instances ---------------------------------------------------------
    ca, ra = allocate_with_peer(sa, "alice", "alice-pw", local="127.0.0.2")
    cb, rb = allocate_with_peer(sb, "alice", "alice-pw", local="127.0.0.3")
    cbob, rbob = allocate_with_peer(sa, "bob", "bob-pw", local="127.0.0.2")
    wa, wb, wbob = PortWatcher(ra).start(), PortWatcher(rb).start(), PortWatcher(rbob).start()
    time.sleep(0.3)
    check("relay ports are open before the revocation", wa.closed_at is None and wb.closed_at is None)
    # Measured from before ferryctl starts (process start, connect, UPDATE, commit, NOTIFY): an upper bound.
    t0 = time.monotonic()
    ctl.run("user", "disable", "alice", "--realm", REALM)
    wait_for(lambda: wa.closed_at is not None and wb.closed_at is not None, 5)
    for name, w in (("first", wa), ("second", wb)):
        if w.closed_at is None:
            check(f"revocation closes the allocation on the {name} instance", False, "still open after 5 s")
        else:
            delay = max(0.0, w.closed_at - t0)
            measure(f"revocation delay, {name} instance", delay * 1000, "ms")
            check(f"revocation closes the allocation on the {name} instance within 1 s", delay < 1.0,
                  f"{delay:.3f} s")
    time.sleep(0.3)
    check("another user's allocation stays open", wbob.closed_at is None)
    for w in (wa, wb, wbob):
        w.stop()
    for s, name in ((sa, "first"), (sb, "second")):
        code = can_allocate(s, "alice", "alice-pw")
        check(f"disabled user's new Allocate gets 401 ({name} instance)", code == 401, f"got {code}")
    ctl.run("user", "enable", "alice", "--realm", REALM)
    check("re-enabled user allocates again", wait_for(lambda: can_allocate(sa, "alice", "alice-pw") == 0, 3))
    ctl.run("user", "passwd", "alice", "--realm", REALM, "--password-stdin", stdin="alice-pw2\n")
    check("new password works at once", wait_for(lambda: can_allocate(sa, "alice", "alice-pw2") == 0, 3))
    check("old password is refused", can_allocate(sa, "alice", "alice-pw") == 401)
    ca.close()
    cb.close()

    # --- shared secrets from the database ----------------------------------------------------------
    secret = "db-shared-secret-value-0123456789"
    ctl.run("secret", "add", "--realm", REALM, "--secret-stdin", stdin=secret + "\n")
    tok = json.loads(ctl.run("token", "carol", "--realm", REALM, "--ttl", "300").stdout)["iceServers"][0]
    check("ferryctl token allocates (secret loaded via NOTIFY)",
          wait_for(lambda: can_allocate(sa, tok["username"], tok["credential"]) == 0, 3))
    user, pw = rest_credential(secret, "carol", int(time.time()) - 10)
    code = can_allocate(sa, user, pw)
    check("expired shared-secret username refused", code in (401, 500), f"got {code}")
    check("expired shared-secret username refused with 401", code == 401, f"got {code}")
    ct, rt = allocate_with_peer(sb, tok["username"], tok["credential"], local="127.0.0.4")
    wt = PortWatcher(rt).start()
    time.sleep(0.2)
    sid = pg.psql(f"SELECT max(id) FROM shared_secrets WHERE realm = '{REALM}'").strip()
    t0 = time.monotonic()
    ctl.run("secret", "revoke", sid)
    wait_for(lambda: wt.closed_at is not None, 5)
    if wt.closed_at is None:
        check("revoking a secret closes its tokens' allocations", False, "still open after 5 s")
    else:
        measure("revocation delay, revoked shared secret", (wt.closed_at - t0) * 1000, "ms")
        check("revoking a secret closes its tokens' allocations within 1 s", wt.closed_at - t0 < 1.0)
    wt.stop()
    ct.close()
    code = can_allocate(sa, tok["username"], tok["credential"])
    check("token of a revoked secret refused", code == 401, f"got {code}")

    # --- per-user quota from the database ---------------------------------------------------------
    ctl.run("user", "quota", "bob", "--realm", REALM, "--max-allocations", "1", "--bandwidth", "0")
    code = -2
    if wait_for(lambda: can_allocate(sa, "bob", "bob-pw", local="127.0.0.2") == 486, 3):
        code = 486
    check("user quota from the database: a second allocation gets 486", code == 486)
    ctl.run("user", "quota", "bob", "--realm", REALM, "--max-allocations", "0", "--bandwidth", "0")
    check("quota lifted: bob allocates again",
          wait_for(lambda: can_allocate(sa, "bob", "bob-pw", local="127.0.0.2") == 0, 3))

    # --- PostgreSQL goes away ----------------------------------------------------------------------
    cbob_sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    cbob_sink.bind(("127.0.0.1", 0))
    cbob_sink.settimeout(2)
    cbob.create_permission("127.0.0.1")
    check("bob is cached (allocates before the outage)", can_allocate(sa, "bob", "bob-pw") == 0)
    pg.stop()
    time.sleep(0.5)
    cbob.send(cbob_sink.getsockname(), b"during-outage")
    try:
        data, _ = cbob_sink.recvfrom(2048)
    except (TimeoutError, socket.timeout):
        data = b""
    check("relayed data flows during the outage", data == b"during-outage", repr(data))
    code = can_allocate(sa, "bob", "bob-pw")
    check("cached user allocates during the outage", code == 0, f"got {code}")
    code = can_allocate(sa, "zed", "zed-pw")
    check("uncached user gets 500 during the outage", code == 500, f"got {code}")
    for _ in range(20):  # many requests during the outage: one log line, not one per request
        can_allocate(sa, "zed", "zed-pw")
    check("ferry keeps running during the outage", a.alive() and b.alive())
    log = a.log_text(200000)
    print("  server log lines about the database:\n" + "\n".join(
        "    " + l for l in log.splitlines() if "database" in l), flush=True)
    outage_lines = [l for l in log.splitlines() if "database" in l and ("unavailable" in l or "down" in l
                                                                         or "lost" in l or "cannot" in l)]
    check("the outage is logged a few times, not per request", 1 <= len(outage_lines) <= 8,
          f"{len(outage_lines)} lines:\n" + "\n".join(outage_lines[:20]))

    pg.start()
    t0 = time.monotonic()
    ctl.add_user("dave", "dave-pw")
    ok = wait_for(lambda: can_allocate(sa, "dave", "dave-pw") == 0, 40, step=0.25)
    check("after PostgreSQL returns, a new user works without a restart", ok)
    if ok:
        measure("recovery after PostgreSQL restart", time.monotonic() - t0, "s")
    check("ferry still relays for the allocation opened before the outage",
          (cbob.send(cbob_sink.getsockname(), b"after"), cbob_sink.recvfrom(2048)[0])[1] == b"after")
    cbob.close()
    cbob_sink.close()


if __name__ == "__main__":
    sys.exit(main())
