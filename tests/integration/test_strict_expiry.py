#!/usr/bin/python3
"""auth.strict_expiry against the real binary: an allocation made with a TURN REST credential
ends when the credential's timestamp passes, however long a lifetime was asked for or refreshed to.

  * strict on: a credential with 4 s left asks for LIFETIME 600 and gets at most 4; a Refresh to
    600 one second later gets at most 3; the relayed port closes (a peer sending to it gets ICMP
    port unreachable) within the credential's life plus a tick, and ferry counts it expired;
  * a long-term user's allocation on the same server is untouched;
  * strict off (the default): the same credential's allocation outlives it (LIFETIME 600, port
    still open after the credential expired).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from test_db_server import PortWatcher  # noqa: E402
from turn_udp_client import ALLOCATE, LIFETIME, REQUESTED_TRANSPORT, XOR_RELAYED_ADDRESS, TurnUdpClient, \
    _parse_xor_address  # noqa: E402

check = harness.check
SECRET = harness.DEFAULT_SHARED_SECRET


def rest_credential(ttl: int, user: str = "probe") -> tuple[str, str, float]:
    expires = int(time.time()) + ttl
    name = f"{expires}:{user}"
    return name, base64.b64encode(hmac.new(SECRET.encode(), name.encode(), hashlib.sha1).digest()).decode(), expires


def allocate(c: TurnUdpClient, lifetime: int) -> tuple[tuple[str, int], int]:
    a = c.request(ALLOCATE, [(REQUESTED_TRANSPORT, bytes([17, 0, 0, 0])), (LIFETIME, struct.pack("!I", lifetime))])
    c.relayed = _parse_xor_address(a[XOR_RELAYED_ADDRESS], b"\0" * 12)
    return c.relayed, struct.unpack("!I", a[LIFETIME])[0]


def metric(port: int, name: str) -> float:
    _status, _headers, body = harness.http_get(port, "/metrics")
    m = re.search(rf"^{name} (\S+)$", body, re.M)
    return float(m.group(1)) if m else -1


def run(args) -> None:
    if args.server != "ferry":
        raise harness.Skip("auth.strict_expiry is ferry's")
    addr_of = lambda cfg: ("127.0.0.1", cfg.port)  # noqa: E731

    # ---- strict on ----
    cfg = harness.config_from_args(args, ipv6=False, tcp=False, http_port=harness.pick_free_port(udp=False))
    server = harness.Server("ferry", cfg, binary=args.bin, keep_workdir=args.keep_logs,
                            env={"FERRY_AUTH_STRICT_EXPIRY": "true"})
    with server:
        harness.wait_http(cfg.http_port)
        user, password, expires = rest_credential(4)
        c = TurnUdpClient(addr_of(cfg), user, password)
        relayed, granted = allocate(c, 600)
        check("strict: Allocate LIFETIME is cut to the credential's life", 0 < granted <= 4, f"granted {granted}")
        c.create_permission("127.0.0.1")
        watcher = PortWatcher(relayed).start()
        long_term = TurnUdpClient(addr_of(cfg), harness.DEFAULT_USER, harness.DEFAULT_PASSWORD)
        lt_relayed, lt_granted = allocate(long_term, 600)
        long_term.create_permission("127.0.0.1")
        lt_watcher = PortWatcher(lt_relayed).start()
        check("strict: a long-term user's Allocate gets what it asked", lt_granted == 600, f"granted {lt_granted}")
        time.sleep(1.0)
        refreshed = c.refresh(600)
        check("strict: Refresh cannot extend past the credential", 0 < refreshed <= 3, f"granted {refreshed}")
        got = c.receive_data(1.0)
        check("strict: the allocation relays before the credential expires", got is not None)
        deadline = expires + 3.0  # the expiry, plus a tick, plus slack for a loaded machine
        while watcher.closed_at is None and time.time() < deadline:
            time.sleep(0.05)
        closed_wall = time.time() - (time.monotonic() - watcher.closed_at) if watcher.closed_at else None
        check("strict: the relayed port closes when the credential expires",
              closed_wall is not None and expires - 1.0 <= closed_wall <= expires + 2.5,
              f"closed at {closed_wall} for expiry {expires}")
        check("strict: counted as expired", metric(cfg.http_port, "ferry_allocations_expired_total") == 1)
        check("strict: the long-term user's allocation is still open", lt_watcher.closed_at is None)
        check("strict: and refreshes", long_term.refresh(600) == 600)
        watcher.stop()
        lt_watcher.stop()
        c.close()
        long_term.close()

    # ---- strict off (the default) ----
    cfg = harness.config_from_args(args, ipv6=False, tcp=False)
    with harness.Server("ferry", cfg, binary=args.bin, keep_workdir=args.keep_logs):
        user, password, expires = rest_credential(2)
        c = TurnUdpClient(addr_of(cfg), user, password)
        relayed, granted = allocate(c, 600)
        check("default: Allocate LIFETIME is what was asked", granted == 600, f"granted {granted}")
        watcher = PortWatcher(relayed).start()
        while time.time() < expires + 2.0:
            time.sleep(0.1)
        check("default: the allocation outlives its credential", watcher.closed_at is None)
        watcher.stop()
        c.close()


if __name__ == "__main__":
    ap = harness.common_arguments(__doc__)
    sys.exit(harness.run_test("strict_expiry", lambda: run(ap.parse_args())))
