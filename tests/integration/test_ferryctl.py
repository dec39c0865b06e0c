#!/usr/bin/python3
"""ferryctl end to end against a throwaway PostgreSQL (pg_env.py). Standard library only.

    python3 tests/integration/test_ferryctl.py --ferryctl build/db/tools/ferryctl

Reports through the harness: an indented ok/FAIL line per check and one PASS/FAIL line at the end;
exit status 0 only when every check passed.
"""

import argparse
import base64
import hashlib
import hmac
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from pg_env import PgEnv, PgEnvError  # noqa: E402

NAME = "ferryctl"
FERRY_BIN = None
check = harness.check


class Ctl:
    def __init__(self, binary, url):
        self.binary = binary
        self.url = url

    def run(self, *args, input=None, url=True, env_extra=None):
        env = {k: v for k, v in os.environ.items() if not k.startswith("FERRY_") and not k.startswith("PG")}
        if url:
            env["FERRY_DATABASE_URL"] = self.url
        env.update(env_extra or {})
        p = subprocess.run([self.binary] + list(args), input=input, capture_output=True, text=True,
                           env=env, timeout=60, stdin=None if input is not None else subprocess.DEVNULL)
        return p


def one_line_error(p):
    lines = [l for l in p.stderr.splitlines() if l.strip()]
    return p.returncode != 0 and len(lines) == 1 and lines[0].startswith("ferryctl: ")


def describe(p):
    return "rc=%d stdout=%r stderr=%r" % (p.returncode, p.stdout[-400:], p.stderr[-400:])


def long_term_keys(user, realm, password):
    s = ("%s:%s:%s" % (user, realm, password)).encode()
    return hashlib.md5(s).hexdigest(), hashlib.sha256(s).hexdigest()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ferryctl", required=True)
    ap.add_argument("--ferry", help="also check that this ferry binary accepts keys from the database")
    args = ap.parse_args()
    global FERRY_BIN
    FERRY_BIN = os.path.abspath(args.ferry) if args.ferry else None
    binary = os.path.abspath(args.ferryctl)

    def body():
        if not os.access(binary, os.X_OK):
            return [f"setup: {binary} is not executable"]
        try:
            pg = PgEnv()
            pg.create()
        except PgEnvError as e:
            return [f"setup: {e}"]
        try:
            run_checks(Ctl(binary, pg.url), pg)
        finally:
            pg.destroy()

    return harness.run_test(NAME, body)


def run_checks(ctl, pg):
    # --- connection errors ---------------------------------------------------------------------
    p = ctl.run("user", "list", url=False)
    check("missing database is a one-line error", one_line_error(p) and "no database" in p.stderr, describe(p))

    p = ctl.run("--database", "postgresql://[broken", "user", "list", url=False)
    check("malformed URL is a one-line error", one_line_error(p) and "cannot connect" in p.stderr, describe(p))

    p = ctl.run("--database", "postgresql://u:hunter2@[broken", "user", "list", url=False)
    check("malformed URL error does not echo the password",
          p.returncode != 0 and "cannot connect" in p.stderr and "u:***@" in p.stderr and "hunter2" not in p.stderr,
          describe(p))

    p = ctl.run("--database", "postgresql://postgres@127.0.0.1:1/postgres?connect_timeout=3", "user", "list",
                url=False)
    check("unreachable server is a one-line error", one_line_error(p) and "cannot connect" in p.stderr, describe(p))

    p = ctl.run("--database", "postgresql://postgres:hunter2@127.0.0.1:1/postgres?connect_timeout=3",
                "user", "list", url=False)
    check("password in --database warns and is not echoed",
          p.returncode != 0 and "warning" in p.stderr and "hunter2" not in p.stderr, describe(p))

    p = ctl.run("user", "list")
    check("unmigrated database says to migrate", one_line_error(p) and "db migrate" in p.stderr, describe(p))

    # --- migrations ----------------------------------------------------------------------------
    p = ctl.run("db", "migrate")
    check("db migrate applies 0001 and 0002",
          p.returncode == 0 and "applied 1 initial" in p.stdout and "applied 2 api_keys" in p.stdout, describe(p))
    p = ctl.run("db", "migrate")
    check("db migrate again is a no-op", p.returncode == 0 and "up to date" in p.stdout, describe(p))
    p = ctl.run("db", "status")
    check("db status: nothing pending",
          p.returncode == 0 and "applied  1 initial" in p.stdout and "applied  2 api_keys" in p.stdout, describe(p))
    versions = pg.psql("SELECT string_agg(version::text, ',' ORDER BY version) FROM schema_migrations").strip()
    # Every migration in db/migrations/, once (later ones join without editing this test).
    mig_dir = Path(__file__).resolve().parents[2] / "db" / "migrations"
    want = ",".join(str(int(f.name[:4])) for f in sorted(mig_dir.glob("[0-9][0-9][0-9][0-9]_*.sql")))
    check("schema_migrations records each version once", versions == want, f"{versions} (want {want})")

    # --- users ---------------------------------------------------------------------------------
    p = ctl.run("user", "add", "alice", "--password-stdin", input="correct horse\n")
    check("user add with password from stdin", p.returncode == 0, describe(p))
    row = pg.psql("SELECT encode(key_md5,'hex') || ' ' || encode(key_sha256,'hex') || ' ' || realm "
                  "FROM users WHERE name = 'alice'").strip()
    md5, sha = long_term_keys("alice", "ferry", "correct horse")
    check("stored keys are MD5/SHA-256(user:realm:password)", row == "%s %s ferry" % (md5, sha), row)
    dump = pg.psql("SELECT row_to_json(u)::text FROM users u")
    check("plaintext password is not stored", "correct horse" not in dump, dump)

    p = ctl.run("user", "add", "alice", "--password-stdin", input="other\n")
    check("duplicate user is a one-line error", one_line_error(p) and "already exists" in p.stderr, describe(p))

    p = ctl.run("user", "add", "bob")  # stdin is not a terminal and no --password-stdin
    check("no terminal and no --password-stdin is refused", one_line_error(p) and "--password-stdin" in p.stderr,
          describe(p))

    p = ctl.run("user", "add", "bob", "--realm", "example.org", "--max-allocations", "4", "--bandwidth", "125000",
                "--password-stdin", input="pw-bob\n")
    check("user add with realm and quota", p.returncode == 0, describe(p))
    q = pg.psql("SELECT max_allocations || ' ' || bandwidth FROM users WHERE name = 'bob'").strip()
    check("quota stored", q == "4 125000", q)

    p = ctl.run("user", "list")
    check("user list shows both users",
          p.returncode == 0 and re.search(r"^alice\s+ferry\s+yes", p.stdout, re.M)
          and re.search(r"^bob\s+example\.org\s+yes\s+4\s+125000", p.stdout, re.M), describe(p))
    p = ctl.run("user", "list", "--realm", "example.org")
    check("user list --realm filters", p.returncode == 0 and "bob" in p.stdout and "alice" not in p.stdout,
          describe(p))

    p = ctl.run("user", "disable", "alice")
    state = pg.psql("SELECT enabled FROM users WHERE name = 'alice'").strip()
    check("user disable", p.returncode == 0 and state == "f", describe(p) + " enabled=" + state)
    p = ctl.run("user", "list")
    check("user list shows disabled", re.search(r"^alice\s+ferry\s+no", p.stdout, re.M) is not None, describe(p))
    p = ctl.run("user", "enable", "alice")
    state = pg.psql("SELECT enabled FROM users WHERE name = 'alice'").strip()
    check("user enable", p.returncode == 0 and state == "t", describe(p) + " enabled=" + state)

    p = ctl.run("user", "quota", "alice", "--max-allocations", "2", "--bandwidth", "1000")
    q = pg.psql("SELECT max_allocations || ' ' || bandwidth FROM users WHERE name = 'alice'").strip()
    check("user quota", p.returncode == 0 and q == "2 1000", describe(p) + " " + q)

    p = ctl.run("user", "passwd", "alice", "--password-stdin", input="new password\n")
    row = pg.psql("SELECT encode(key_md5,'hex') FROM users WHERE name = 'alice'").strip()
    check("user passwd", p.returncode == 0 and row == long_term_keys("alice", "ferry", "new password")[0],
          describe(p))

    for cmd in (["disable", "nobody"], ["enable", "nobody"], ["del", "nobody"], ["passwd", "nobody"],
                ["quota", "nobody", "--max-allocations", "1"]):
        p = ctl.run("user", *cmd, input="x\n")
        check("unknown user: user %s" % cmd[0], one_line_error(p) and "not found" in p.stderr, describe(p))
    p = ctl.run("user", "disable", "bob")  # bob lives in example.org, not the default realm
    check("realm is part of the user's identity", one_line_error(p) and "not found" in p.stderr, describe(p))

    # --- live revocation: the trigger announces the change on ferry_credentials ----------------------
    script = ("LISTEN ferry_credentials;\n"
              "\\! %s user disable alice > /dev/null\n"
              "SELECT 1;\n") % ctl.binary
    psql = os.path.join(pg.bindir, "psql")
    env = dict(os.environ, FERRY_DATABASE_URL=ctl.url)
    lp = subprocess.run([psql, "-X", "-d", ctl.url], input=script, capture_output=True, text=True, env=env,
                        timeout=60)
    m = re.search(r'notification "ferry_credentials" with payload "(.*)" received', lp.stdout)
    payload = json.loads(m.group(1)) if m else {}
    check("disable sends NOTIFY with revoke=true",
          payload.get("table") == "users" and payload.get("name") == "alice" and payload.get("revoke") is True
          and "key_md5" not in payload, lp.stdout + lp.stderr)

    p = ctl.run("user", "del", "alice")
    gone = pg.psql("SELECT count(*) FROM users WHERE name = 'alice'").strip()
    check("user del", p.returncode == 0 and gone == "0", describe(p))
    p = ctl.run("user", "del", "alice")
    check("user del twice is an error", one_line_error(p) and "not found" in p.stderr, describe(p))

    # --- shared secrets and tokens ---------------------------------------------------------------
    p = ctl.run("token", "carol", "--ttl", "600")
    check("token without any secret is a clear error", one_line_error(p) and "secret add" in p.stderr, describe(p))

    p = ctl.run("secret", "add", "--secret-stdin", input="an-old-shared-secret-value\n")
    check("secret add from stdin", p.returncode == 0 and "an-old-shared-secret-value" not in p.stdout + p.stderr,
          describe(p))
    time.sleep(0.01)
    p = ctl.run("secret", "add", "--expires", "30d")
    generated = p.stdout.strip()
    check("secret add generates and prints the value once", p.returncode == 0 and len(generated) >= 32,
          describe(p))
    p = ctl.run("secret", "add", "--secret-stdin", input="short\n")
    check("too short secret is refused", one_line_error(p), describe(p))
    p = ctl.run("secret", "add", "--expires", "not a time", "--secret-stdin", input="yet-another-secret-value\n")
    check("bad --expires is a one-line error", one_line_error(p) and "--expires" in p.stderr, describe(p))

    p = ctl.run("secret", "list")
    check("secret list hides values",
          p.returncode == 0 and generated not in p.stdout and "an-old-shared-secret-value" not in p.stdout
          and len(re.findall(r"active", p.stdout)) == 2, describe(p))

    before = int(time.time())
    p = ctl.run("token", "carol", "--ttl", "600", "--url", "turn:turn.example.org:3478?transport=udp",
                "--url", "turns:turn.example.org:5349")
    try:
        tok = json.loads(p.stdout)
        server = tok["iceServers"][0]
        user = server["username"]
        exp, uid = user.split(":", 1)
        want = base64.b64encode(hmac.new(generated.encode(), user.encode(), hashlib.sha1).digest()).decode()
        ok = (p.returncode == 0 and uid == "carol" and before + 600 <= int(exp) <= int(time.time()) + 600
              and server["credential"] == want and server["urls"] == ["turn:turn.example.org:3478?transport=udp",
                                                                      "turns:turn.example.org:5349"]
              and tok["ttl"] == 600)
        check("token prints iceServers JSON signed with the newest secret", ok, describe(p))
    except (ValueError, KeyError, IndexError) as e:
        check("token prints iceServers JSON signed with the newest secret", False, "%r %s" % (e, describe(p)))

    p = ctl.run("token", "dave", "--ttl", "60", "--secret-stdin", input="offline-secret-value\n", url=False)
    try:
        server = json.loads(p.stdout)["iceServers"][0]
        want = base64.b64encode(hmac.new(b"offline-secret-value", server["username"].encode(),
                                         hashlib.sha1).digest()).decode()
        check("token --secret-stdin needs no database", p.returncode == 0 and server["credential"] == want,
              describe(p))
    except (ValueError, KeyError, IndexError) as e:
        check("token --secret-stdin needs no database", False, "%r %s" % (e, describe(p)))

    newest = pg.psql("SELECT max(id) FROM shared_secrets").strip()
    p = ctl.run("secret", "revoke", newest)
    check("secret revoke", p.returncode == 0 and "revoked" in p.stdout, describe(p))
    p = ctl.run("token", "erin", "--ttl", "60")
    try:
        server = json.loads(p.stdout)["iceServers"][0]
        want = base64.b64encode(hmac.new(b"an-old-shared-secret-value", server["username"].encode(),
                                         hashlib.sha1).digest()).decode()
        check("token falls back to the remaining active secret", server["credential"] == want, describe(p))
    except (ValueError, KeyError, IndexError) as e:
        check("token falls back to the remaining active secret", False, "%r %s" % (e, describe(p)))
    p = ctl.run("secret", "revoke", "99999")
    check("revoking an unknown secret is an error", one_line_error(p) and "not found" in p.stderr, describe(p))

    # --- API keys for GET /v1/ice-servers ---------------------------------------------------------
    p = ctl.run("apikey", "add", "web")
    api_key = p.stdout.strip()
    check("apikey add prints a key once", p.returncode == 0 and re.fullmatch(r"[0-9a-f]{64}", api_key) is not None,
          describe(p))
    stored = pg.psql("SELECT encode(sha256, 'hex') FROM api_keys WHERE name = 'web'").strip()
    check("only the key's SHA-256 is stored", stored == hashlib.sha256(api_key.encode()).hexdigest(),
          stored + " " + describe(p))
    p = ctl.run("apikey", "add", "web")
    check("a second active key of one name is refused", one_line_error(p) and "already exists" in p.stderr, describe(p))
    p = ctl.run("apikey", "add", "bad name")
    check("a bad key name is refused", one_line_error(p), describe(p))
    p = ctl.run("apikey", "add", "old")
    revoked_key = p.stdout.strip()
    p = ctl.run("apikey", "revoke", "old")
    check("apikey revoke", p.returncode == 0 and "revoked" in p.stdout, describe(p))
    p = ctl.run("apikey", "revoke", "old")
    check("revoking twice is an error", one_line_error(p) and "no active" in p.stderr, describe(p))
    p = ctl.run("apikey", "list")
    check("apikey list shows names and states, never keys",
          p.returncode == 0 and re.search(r"^web\s+[0-9a-f]{8}\s+\S+\s+active", p.stdout, re.M) is not None
          and re.search(r"^old\s+[0-9a-f]{8}\s+\S+\s+revoked", p.stdout, re.M) is not None
          and api_key not in p.stdout, describe(p))
    if FERRY_BIN:
        check_server_api_keys(pg, api_key, revoked_key)

    # --- nothing secret reached the server log ------------------------------------------------------
    log = pg.server_log()
    check("server log holds no password or secret",
          "correct horse" not in log and generated not in log and "an-old-shared-secret-value" not in log
          and api_key not in log, "found in server.log")


def check_server_api_keys(pg, api_key, revoked_key):
    """ferry with database.url accepts keys from `ferryctl apikey add` at GET /v1/ice-servers."""
    cfg = harness.ServerConfig(port=harness.pick_free_port(), relay_min=0, relay_max=0,
                               http_port=harness.pick_free_port(udp=False, ipv6=False), database_url=pg.url)
    cfg.relay_min, cfg.relay_max = harness.pick_free_range(10)
    with harness.Server("ferry", cfg, binary=FERRY_BIN) as server:
        harness.wait_http(cfg.http_port)
        status, _, body = harness.http_get(cfg.http_port, "/v1/ice-servers", {"Authorization": "Bearer " + api_key})
        ok = status == 200 and json.loads(body)["iceServers"][0]["username"].endswith(":web")
        check("ferry accepts a key from the database", ok, "%d %s" % (status, body.strip()))
        status, _, _ = harness.http_get(cfg.http_port, "/v1/ice-servers", {"Authorization": "Bearer " + revoked_key})
        check("ferry refuses a revoked key", status == 401, str(status))
        status, _, _ = harness.http_get(cfg.http_port, "/v1/ice-servers", {"Authorization": "Bearer nope"})
        check("ferry refuses an unknown key", status == 401, str(status))
        if harness.CHECKS.problems:
            server.dump_log("ferry log")


if __name__ == "__main__":
    sys.exit(main())
