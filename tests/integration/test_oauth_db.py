#!/usr/bin/python3
"""RFC 7635 AS-RS keys from PostgreSQL: `ferryctl oauthkey add|list|remove` against a throwaway
server (pg_env.py), and ferry (auth.oauth: true, no keys in its config) opening tokens sealed here
in Python's `cryptography` with a key it finds only in the database.

  * `oauthkey add KID --key-stdin` stores the AS's key; without it a key is made and printed once;
    a duplicate kid, a key that is not 32 bytes of base64 are one-line errors; `list` never shows
    a key;
  * Allocate with a token of a database kid succeeds; after `oauthkey remove` (and the cache
    time) a fresh token of that kid gets 401.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from pg_env import PgEnv, PgEnvError  # noqa: E402
from test_oauth import make_token  # noqa: E402
from turn_udp_client import TurnError, TurnUdpClient  # noqa: E402

NAME = "oauth_db"
SERVER_NAME = "turn.db.test"
check = harness.check


def ctl(args, pg, *argv, input=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("FERRY_") and not k.startswith("PG")}
    env["FERRY_DATABASE_URL"] = pg.url
    return subprocess.run([os.path.abspath(args.ferryctl)] + list(argv), input=input, capture_output=True, text=True,
                          env=env, timeout=60, stdin=None if input is not None else subprocess.DEVNULL)


def describe(p):
    return "rc=%d stdout=%r stderr=%r" % (p.returncode, p.stdout[-300:], p.stderr[-300:])


def one_line_error(p):
    lines = [line for line in p.stderr.splitlines() if line.strip()]
    return p.returncode != 0 and len(lines) == 1 and lines[0].startswith("ferryctl: ")


def allocates(addr, kid, as_rs, mac_key) -> bool | int:
    c = TurnUdpClient(addr, kid, "", access_token=make_token(as_rs, SERVER_NAME, mac_key, time.time(), 600),
                      mac_key=mac_key)
    try:
        c.allocate()
        return True
    except TurnError as e:
        return e.code
    finally:
        c.close()


def run(args, pg) -> None:
    try:
        import cryptography  # noqa: F401
    except ImportError:
        raise harness.Skip("python3-cryptography is not installed (scripts/install-deps.sh test group)")
    p = ctl(args, pg, "db", "migrate")
    check("db migrate applies 0006 oauth_keys", p.returncode == 0 and "oauth_keys" in p.stdout, describe(p))

    as_rs = os.urandom(32)
    p = ctl(args, pg, "oauthkey", "add", "db-kid", "--key-stdin", "--as-url", "https://as.test", input=
            base64.b64encode(as_rs).decode() + "\n")
    check("oauthkey add --key-stdin", p.returncode == 0 and "db-kid" in p.stdout, describe(p))
    p = ctl(args, pg, "oauthkey", "add", "db-kid", "--key-stdin", input=base64.b64encode(as_rs).decode() + "\n")
    check("a duplicate kid is a one-line error", one_line_error(p) and "already exists" in p.stderr, describe(p))
    p = ctl(args, pg, "oauthkey", "add", "short", "--key-stdin", input=base64.b64encode(b"x" * 16).decode() + "\n")
    check("a 16-byte key is a one-line error", one_line_error(p) and "32 bytes" in p.stderr, describe(p))
    p = ctl(args, pg, "oauthkey", "add", "made")
    made = p.stdout.strip()
    check("oauthkey add without a key prints a fresh one once",
          p.returncode == 0 and len(base64.b64decode(made)) == 32, describe(p))
    p = ctl(args, pg, "oauthkey", "list")
    check("oauthkey list shows kids, never keys",
          p.returncode == 0 and "db-kid" in p.stdout and "made" in p.stdout and "https://as.test" in p.stdout
          and base64.b64encode(as_rs).decode() not in p.stdout and made not in p.stdout, describe(p))

    cfg = harness.config_from_args(args, ipv6=False, tcp=False,
                                   extra_yaml="database: {cache_ttl: 1, negative_cache_ttl: 1}")
    env = {"FERRY_DATABASE_URL": pg.url, "FERRY_AUTH_OAUTH": "true", "FERRY_AUTH_OAUTH_SERVER_NAME": SERVER_NAME}
    with harness.Server("ferry", cfg, binary=args.bin, keep_workdir=args.keep_logs, env=env):
        addr = ("127.0.0.1", cfg.port)
        mac_key = os.urandom(20)
        ok = False
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # the pool connects shortly after start (500 until then)
            ok = allocates(addr, "db-kid", as_rs, mac_key)
            if ok is True:
                break
            time.sleep(0.3)
        check("Allocate with a token of a database kid succeeds", ok is True, f"got {ok}")
        check("a database kid with the wrong AS-RS key gets 401", allocates(addr, "made", as_rs, mac_key) == 401)
        p = ctl(args, pg, "oauthkey", "remove", "db-kid")
        check("oauthkey remove", p.returncode == 0, describe(p))
        p = ctl(args, pg, "oauthkey", "remove", "db-kid")
        check("removing it again is a one-line error", one_line_error(p), describe(p))
        time.sleep(1.5)  # database.cache_ttl
        check("after remove, its tokens get 401", allocates(addr, "db-kid", as_rs, mac_key) == 401)


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

    return harness.run_test(NAME, body)


if __name__ == "__main__":
    sys.exit(main())
