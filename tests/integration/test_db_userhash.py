#!/usr/bin/python3
"""USERHASH (RFC 8489 §14.4) for PostgreSQL users, end to end: a throwaway PostgreSQL (pg_env.py),
users added with ferryctl (whose users.userhash, migration 0005, the database computes), ferry with
auth.userhash on, and a raw client that sends USERHASH = SHA-256(name:realm) instead of USERNAME:
  * the user allocates by hash (a cold hash: one query), again (cached), and after
    `ferryctl user passwd` with the new password;
  * a hash of nobody gets 401; a disabled user's hash gets 401;
  * a user added after ferry started allocates by hash at once (no cache to warm).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from pg_env import PgEnv, PgEnvError  # noqa: E402
from test_db_server import REALM, Ctl  # noqa: E402
from turn_udp_client import MAGIC, MESSAGE_INTEGRITY, NONCE, REALM as REALM_ATTR, TurnError, TurnUdpClient, \
    _attr  # noqa: E402

check = harness.check
USERHASH = 0x001E


class UserhashClient(TurnUdpClient):
    """Sends USERHASH instead of USERNAME once it knows the realm."""

    def _build(self, method, cls, attrs, txid, auth):
        body = b"".join(_attr(t, v) for t, v in attrs)
        if auth:
            h = hashlib.sha256(f"{self.username}:{self.realm}".encode()).digest()
            body += _attr(USERHASH, h) + _attr(REALM_ATTR, self.realm.encode()) + _attr(NONCE, self.nonce)
            head = struct.pack("!HHI", method | cls, len(body) + 24, MAGIC) + txid
            body += _attr(MESSAGE_INTEGRITY, hmac.new(self.key, head + body, hashlib.sha1).digest())
        return struct.pack("!HHI", method | cls, len(body), MAGIC) + txid + body


def wait_for(pred, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.1)
    return False


def allocate_code(server, user, password) -> int:
    c = UserhashClient(server, user, password)
    try:
        c.allocate()
        c.refresh(0)
        return 0
    except TurnError as e:
        return e.code
    finally:
        c.close()


def run(args, pg) -> None:
    ctl = Ctl(os.path.abspath(args.ferryctl), pg.url)
    ctl.run("db", "migrate")
    ctl.add_user("carol", "carol-pw")
    ctl.add_user("dave", "dave-pw")
    config = harness.config_from_args(args, users={}, shared_secrets=[], workers=1, ipv6=False, tcp=False,
                                      realm=REALM)
    with harness.Server("ferry", config, binary=args.bin, keep_workdir=args.keep_logs,
                        env={"FERRY_DATABASE_URL": pg.url, "FERRY_AUTH_USERHASH": "true"}) as server:
        s = ("127.0.0.1", config.port)
        code = allocate_code(s, "carol", "carol-pw")
        check("a PostgreSQL user allocates by USERHASH (cold)", code == 0, f"got {code}")
        code = allocate_code(s, "carol", "carol-pw")
        check("and again (cached)", code == 0, f"got {code}")
        code = allocate_code(s, "nobody", "x")
        check("the USERHASH of nobody gets 401", code == 401, f"got {code}")
        code = allocate_code(s, "carol", "wrong")
        check("the right USERHASH with a wrong password gets 401", code == 401, f"got {code}")
        ctl.run("user", "passwd", "carol", "--realm", REALM, "--password-stdin", stdin="carol-pw2\n")
        code = wait_for(lambda: allocate_code(s, "carol", "carol-pw2") == 0, 5.0)
        check("after ferryctl user passwd, USERHASH with the new password allocates", code)
        ctl.run("user", "disable", "dave", "--realm", REALM)
        code = wait_for(lambda: allocate_code(s, "dave", "dave-pw") == 401, 5.0)
        check("a disabled user's USERHASH gets 401", code)
        ctl.add_user("erin", "erin-pw")
        code = allocate_code(s, "erin", "erin-pw")
        check("a user added after the start allocates by USERHASH", code == 0, f"got {code}")
        if harness.CHECKS.problems:
            server.dump_log("ferry log")


def main() -> int:
    ap = harness.common_arguments(__doc__.splitlines()[0])
    ap.add_argument("--ferryctl", required=True)
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

    return harness.run_test("db_userhash", body)


if __name__ == "__main__":
    sys.exit(main())
