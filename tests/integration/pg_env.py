#!/usr/bin/python3
"""A throwaway PostgreSQL server for tests (standard library only).

    from pg_env import PgEnv
    with PgEnv() as pg:          # initdb + pg_ctl start in a fresh temp dir, on a free port
        url = pg.url             # postgresql://postgres@127.0.0.1:PORT/postgres?sslmode=disable
        pg.stop(); pg.start()    # simulate an outage
    # stopped and removed here, also when the test failed; atexit/SIGTERM clean up as well

Run directly it starts a server, prints its URL on stdout and keeps it until stdin closes or it
gets SIGINT/SIGTERM:   python3 tests/integration/pg_env.py

Tests run ferryctl against it with Ferryctl(binary, pg.url): its environment holds that database
URL and none of the caller's FERRY_* or PG* variables. harness.run_pg_test(NAME, body) runs a test
body with a fresh PgEnv (skipped, exit 77, when none can be made).

Details: trust authentication on 127.0.0.1 only (listen_addresses=127.0.0.1), the unix socket in
the temp dir, fsync off. PostgreSQL refuses to run as root, so when running as root the temp dir is
chowned to the `postgres` system user and initdb/pg_ctl run under `runuser -u postgres --`.
Binaries: $FERRY_PG_BINDIR, else the newest /usr/lib/postgresql/*/bin, else PATH.
"""

import atexit
import glob
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile


class PgEnvError(Exception):
    pass


def find_bindir():
    env = os.environ.get("FERRY_PG_BINDIR")
    if env and os.path.exists(os.path.join(env, "initdb")):
        return env
    cands = [d for d in glob.glob("/usr/lib/postgresql/*/bin")
             if os.path.exists(os.path.join(d, "initdb")) and os.path.exists(os.path.join(d, "pg_ctl"))]
    if cands:
        cands.sort(key=lambda d: [int(x) if x.isdigit() else 0 for x in d.split("/")[-2].split(".")])
        return cands[-1]
    initdb = shutil.which("initdb")
    if initdb and shutil.which("pg_ctl"):
        return os.path.dirname(initdb)
    return None


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_live = []


def _cleanup_all():
    for env in list(_live):
        env.destroy()


def _on_signal(signum, _frame):
    _cleanup_all()
    sys.exit(128 + signum)


atexit.register(_cleanup_all)


class PgEnv:
    def __init__(self, bindir=None, user="postgres"):
        self.bindir = bindir or find_bindir()
        if not self.bindir:
            raise PgEnvError("PostgreSQL server binaries (initdb, pg_ctl) not found; "
                             "install postgresql or set FERRY_PG_BINDIR")
        self.user = user
        self.dir = None
        self.port = None
        self._prefix = []
        self._started = False

    # -- lifecycle -------------------------------------------------------------------------------
    def __enter__(self):
        self.create()
        return self

    def __exit__(self, *exc):
        self.destroy()
        return False

    def create(self):
        self.dir = tempfile.mkdtemp(prefix="ferry-pg-")
        _live.append(self)
        for sig in (signal.SIGTERM, signal.SIGHUP):
            if signal.getsignal(sig) in (signal.SIG_DFL, None):
                signal.signal(sig, _on_signal)
        try:
            if os.geteuid() == 0:
                try:
                    pw = pwd.getpwnam(self.user)
                except KeyError:
                    raise PgEnvError("running as root and there is no '%s' user to run PostgreSQL as" % self.user)
                os.chown(self.dir, pw.pw_uid, pw.pw_gid)
                self._prefix = ["runuser", "-u", self.user, "--"]
            self.port = free_port()
            self._run([self._bin("initdb"), "-D", self.data, "-A", "trust", "-U", "postgres",
                       "-E", "UTF8", "--no-sync", "--no-instructions"])
            self.start()
        except Exception:
            self.destroy()
            raise
        return self.url

    def start(self):
        opts = "-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off" % (
            self.port, self.dir)
        self._run([self._bin("pg_ctl"), "-D", self.data, "-l", os.path.join(self.dir, "server.log"),
                   "-w", "-t", "30", "-o", opts, "start"])
        self._started = True

    def stop(self, mode="fast"):
        self._run([self._bin("pg_ctl"), "-D", self.data, "-m", mode, "-w", "-t", "30", "stop"])
        self._started = False

    def destroy(self):
        if self.dir is None:
            return
        if os.path.exists(os.path.join(self.data, "postmaster.pid")):
            try:
                self._run([self._bin("pg_ctl"), "-D", self.data, "-m", "immediate", "-w", "-t", "30", "stop"])
            except PgEnvError:
                pass
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir = None
        if self in _live:
            _live.remove(self)

    # -- helpers -----------------------------------------------------------------------------------
    @property
    def data(self):
        return os.path.join(self.dir, "data")

    @property
    def url(self):
        return "postgresql://postgres@127.0.0.1:%d/postgres?sslmode=disable&gssencmode=disable" % self.port

    def psql(self, sql, input=None):
        """Runs SQL with psql (unaligned, tuples only); returns stdout. Raises on error."""
        psql = self._bin("psql") if os.path.exists(self._bin("psql")) else shutil.which("psql")
        p = subprocess.run([psql, "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d", self.url, "-c", sql],
                           input=input, capture_output=True, text=True, timeout=60)
        if p.returncode != 0:
            raise PgEnvError("psql failed: %s" % p.stderr.strip())
        return p.stdout

    def server_log(self):
        try:
            with open(os.path.join(self.dir, "server.log")) as f:
                return f.read()
        except OSError:
            return ""

    def _bin(self, name):
        return os.path.join(self.bindir, name)

    def _run(self, argv):
        p = subprocess.run(self._prefix + argv, cwd="/", capture_output=True, text=True, timeout=120)
        if p.returncode != 0:
            raise PgEnvError("%s failed (%d): %s%s" % (os.path.basename(argv[0]), p.returncode,
                                                       p.stdout.strip(), p.stderr.strip()))
        return p.stdout


class Ferryctl:
    """Runs ferryctl on one database (FERRY_DATABASE_URL), bounded in time."""

    def __init__(self, binary, url, timeout=60):
        self.binary = binary
        self.url = url
        self.timeout = timeout

    def run(self, *args, ok=False):
        """The finished process; with ok=True a non-zero exit raises RuntimeError."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("FERRY_") and not k.startswith("PG")}
        env["FERRY_DATABASE_URL"] = self.url
        p = subprocess.run([self.binary] + list(args), capture_output=True, text=True, env=env,
                           timeout=self.timeout, stdin=subprocess.DEVNULL)
        if ok and p.returncode != 0:
            raise RuntimeError("ferryctl %s failed (%d): %s" % (" ".join(args), p.returncode, p.stderr.strip()))
        return p

    def json(self, *args):
        """`ferryctl ARGS --json`, parsed; raises when it fails."""
        return json.loads(self.run(*args, "--json", ok=True).stdout)


def main():
    signal.signal(signal.SIGINT, _on_signal)
    try:
        env = PgEnv()
        env.create()
    except PgEnvError as e:
        print("pg_env: %s" % e, file=sys.stderr)
        return 1
    print(env.url, flush=True)
    try:
        sys.stdin.read()
    finally:
        env.destroy()
    return 0


if __name__ == "__main__":
    sys.exit(main())
