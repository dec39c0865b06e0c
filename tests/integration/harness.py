#!/usr/bin/python3
"""Integration-test harness: run a STUN/TURN server (ferry or coturn) on loopback for real clients.

Standard library only; run the tests with Debian's /usr/bin/python3.

Main pieces:
  * pick_free_port() / pick_free_range(): ports in 20000-32000 (below the Linux ephemeral range,
    which also avoids turnutils_uclient's misbehaviour with -m N against ports >= 32768). Every
    port handed out is also claimed across processes (a flock per block of 16 ports, held until
    the test exits), so tests that ctest runs side by side never pick the same one.
  * ServerConfig: realm, user, listeners, relay range; renders a ferry YAML config or the
    equivalent coturn (turnserver) command line.
  * Server: starts the server in its own process group, waits until every listener answers
    (UDP: STUN Binding request/response; TCP: the same over a TCP connection), stops it
    (SIGTERM to the group, then SIGKILL), removes its temp dir.
  * run_client() / BackgroundProcess: bounded client runs that never leave processes behind.
  * stun_binding(): a minimal RFC 8489 Binding client returning the XOR-MAPPED-ADDRESS (over
    UDP, TCP and TLS).
  * make_test_certificate(): a throw-away self-signed certificate made with `openssl req`, for the
    tls/dtls listeners (ServerConfig.tls_port, .dtls).
  * common_arguments() / server_from_args(): the --server/--bin/... command-line options every
    test script shares.
  * check() / run_test() / report(): how every test script reports. check(name, cond, detail)
    prints an indented ok/FAIL line and records a failure; run_test(NAME, body) runs the test,
    turns an exception into a failure and ends with report()'s one top-level "PASS NAME: ..." or
    "FAIL NAME: ..." line (exit 0/1; 77 for Skip). CTest fails a test on a top-level FAIL line.
    run_pg_test(NAME, body) is run_test with body(pg) given a throwaway PostgreSQL (pg_env.py),
    skipped when none can be made.

Every spawned process gets PR_SET_PDEATHSIG=SIGKILL and its own session, and every one is
registered for cleanup at exit and on SIGINT/SIGTERM/SIGHUP, so even a killed test run leaves
nothing behind.
"""

from __future__ import annotations

import argparse
import atexit
import ctypes
import ctypes.util
import fcntl
import glob
import ipaddress
import os
import random
import secrets
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent.parent

PORT_LOW = 20000
PORT_HIGH = 32000  # inclusive upper bound for anything we pick; stays below 32768

DEFAULT_REALM = "ferry.test"
DEFAULT_USER = "alice"
DEFAULT_PASSWORD = "secret"
DEFAULT_SHARED_SECRET = "it-shared-secret"  # test-only TURN REST API secret

COTURN_BIN = "/usr/bin/turnserver"

# ----------------------------------------------------------------------------------------------
# Process bookkeeping


def log(msg: str) -> None:
    print(f"[harness {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


_libc = None


def _set_pdeathsig() -> None:
    """preexec_fn: die with SIGKILL if the harness process goes away (even by SIGKILL)."""
    global _libc
    try:
        if _libc is None:
            _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        PR_SET_PDEATHSIG = 1
        _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except Exception:  # best effort; process-group cleanup still applies
        pass


_live: list = []  # objects with a .stop() method, stopped in reverse order at exit


def _cleanup_all() -> None:
    while _live:
        obj = _live.pop()
        try:
            obj.stop()
        except Exception as exc:  # keep going, cleanup must not stop half-way
            log(f"cleanup of {obj!r} failed: {exc}")


def _on_signal(signum, _frame):
    log(f"got signal {signum}, cleaning up")
    _cleanup_all()
    # 128+N is the conventional exit status for "killed by signal N".
    os._exit(128 + signum)


atexit.register(_cleanup_all)
for _sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
    signal.signal(_sig, _on_signal)


def _kill_group(proc: subprocess.Popen, term_timeout: float = 5.0) -> None:
    """SIGTERM the process group of proc, wait up to term_timeout, then SIGKILL the group."""
    try:
        pgid = os.getpgid(proc.pid)
    except ProcessLookupError:
        pgid = None
    if proc.poll() is None and pgid is not None:
        try:
            os.killpg(pgid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=term_timeout)
        except subprocess.TimeoutExpired:
            log(f"pid {proc.pid} ignored SIGTERM for {term_timeout}s, sending SIGKILL")
    if pgid is not None:
        # Whatever is left in the group (children of the server, or the server itself).
        try:
            os.killpg(pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        log(f"pid {proc.pid} did not die after SIGKILL")


def _spawn(cmd: list[str], stdout, stderr, env=None, cwd=None) -> subprocess.Popen:
    return subprocess.Popen(
        cmd,
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=stderr,
        env=env,
        cwd=cwd,
        start_new_session=True,  # own process group -> killpg() reaches its children too
        preexec_fn=_set_pdeathsig,
        close_fds=True,
    )


@dataclass
class ClientResult:
    cmd: list[str]
    returncode: int | None  # None when it was killed on timeout
    output: str  # stdout and stderr interleaved
    elapsed: float
    timed_out: bool


def run_client(cmd: list[str], timeout: float, env=None, cwd=None,
               line_buffered: bool = True) -> ClientResult:
    """Run a client to completion in its own process group; kill the group on timeout.

    line_buffered: run C clients under `stdbuf -oL -eL` so that output written before a
    timeout kill is not lost in stdio buffers (turnutils_* print with printf)."""
    start = time.monotonic()
    stdbuf = shutil.which("stdbuf") if line_buffered else None
    if stdbuf:
        cmd = [stdbuf, "-oL", "-eL", *cmd]
    with tempfile.TemporaryFile(mode="w+b") as out:
        proc = _spawn(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd)

        class _Guard:
            def stop(self):
                _kill_group(proc, term_timeout=2)

        guard = _Guard()
        _live.append(guard)
        timed_out = False
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
        finally:
            _kill_group(proc, term_timeout=2)
            if guard in _live:
                _live.remove(guard)
        out.seek(0)
        text = out.read().decode("utf-8", errors="replace")
    return ClientResult(cmd, None if timed_out else proc.returncode, text,
                        time.monotonic() - start, timed_out)


class TempDir:
    """A temporary directory removed at stop()/exit, also when the test is interrupted by a signal."""

    def __init__(self, prefix: str = "ferry-it-"):
        self.path = Path(tempfile.mkdtemp(prefix=prefix))
        _live.append(self)

    def stop(self) -> None:
        if self in _live:
            _live.remove(self)
        shutil.rmtree(self.path, ignore_errors=True)

    def __enter__(self):
        return self.path

    def __exit__(self, *exc):
        self.stop()

    def __repr__(self):
        return f"<TempDir {self.path}>"


class BackgroundProcess:
    """A helper process (e.g. turnutils_peer) that lives for the duration of a test."""

    def __init__(self, cmd: list[str], name: str, workdir: Path | None = None, env=None):
        self.cmd = cmd
        self.name = name
        self._own_dir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix=f"ferry-it-{name}-"))
        self.log_path = self.workdir / f"{name}.log"
        self._log = open(self.log_path, "wb")
        self.proc = _spawn(cmd, stdout=self._log, stderr=subprocess.STDOUT, env=env)
        _live.append(self)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_text(self, max_bytes: int = 20000) -> str:
        try:
            data = self.log_path.read_bytes()
        except OSError:
            return ""
        return data[-max_bytes:].decode("utf-8", errors="replace")

    def stop(self) -> None:
        if self in _live:
            _live.remove(self)
        _kill_group(self.proc)
        if not self._log.closed:
            self._log.close()
        if self._own_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def __repr__(self):
        return f"<{self.name} pid={self.proc.pid}>"


# ----------------------------------------------------------------------------------------------
# Ports


def _can_bind(family: int, kind: int, addr: str, port: int) -> bool:
    try:
        with socket.socket(family, kind) as s:
            # No SO_REUSEADDR: TIME_WAIT leftovers count as busy too.
            s.bind((addr, port))
        return True
    except OSError:
        return False


def _port_is_free(port: int, udp: bool = True, tcp: bool = True, ipv6: bool = True) -> bool:
    checks = [(socket.AF_INET, "127.0.0.1")]
    if ipv6 and socket.has_ipv6:
        checks.append((socket.AF_INET6, "::1"))
    for family, addr in checks:
        if udp and not _can_bind(family, socket.SOCK_DGRAM, addr, port):
            return False
        if tcp and not _can_bind(family, socket.SOCK_STREAM, addr, port):
            return False
    return True


_handed_out: set[int] = set()

# Ports are claimed in blocks: one lock file per 16 ports under the temp dir, flock'ed by the
# process that hands one of them out and released by the kernel when that process exits (even by
# SIGKILL), so no stale claim can outlive a test. Checking that a port is free is not enough on
# its own: two tests may both find it free before either server binds it.
_CLAIM_BLOCK = 16
_CLAIM_DIR = Path(tempfile.gettempdir()) / "ferry-test-ports"
_claimed: dict[int, int] = {}  # block -> fd holding its lock


def _claim(ports: range) -> bool:
    """Claims the blocks holding `ports` for this process; False if another process holds one."""
    wanted = sorted({p // _CLAIM_BLOCK for p in ports} - _claimed.keys())
    taken: list[tuple[int, int]] = []
    try:
        _CLAIM_DIR.mkdir(mode=0o1777, exist_ok=True)
        for block in wanted:
            fd = os.open(_CLAIM_DIR / str(block), os.O_CREAT | os.O_RDWR, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                for _, held in taken:
                    os.close(held)
                return False
            taken.append((block, fd))
    except OSError as exc:  # an unwritable temp dir: fall back to this process's own bookkeeping
        log(f"cannot claim ports under {_CLAIM_DIR}: {exc}")
        return True
    _claimed.update(taken)
    return True


def pick_free_port(low: int = PORT_LOW, high: int = PORT_HIGH, udp=True, tcp=True, ipv6=True,
                   attempts: int = 200) -> int:
    """A port in [low, high] free for UDP and TCP on 127.0.0.1 and ::1 (not yet handed out)."""
    rng = random.Random(os.getpid() ^ time.monotonic_ns())
    for _ in range(attempts):
        port = rng.randint(low, high)
        if port in _handed_out:
            continue
        if _port_is_free(port, udp=udp, tcp=tcp, ipv6=ipv6) and _claim(range(port, port + 1)):
            _handed_out.add(port)
            return port
    raise RuntimeError(f"no free port in {low}-{high} after {attempts} attempts")


def pick_free_range(size: int, low: int = PORT_LOW, high: int = PORT_HIGH,
                    attempts: int = 50) -> tuple[int, int]:
    """A block of `size` consecutive ports free for UDP and TCP on 127.0.0.1 (relay range)."""
    rng = random.Random(os.getpid() ^ time.monotonic_ns() ^ 0x5A5A)
    for _ in range(attempts):
        start = rng.randint(low, high - size + 1)
        block = range(start, start + size)
        if any(p in _handed_out for p in block):
            continue
        if all(_port_is_free(p, udp=True, tcp=True, ipv6=False) for p in block) and _claim(block):
            _handed_out.update(block)
            return start, start + size - 1
    raise RuntimeError(f"no free block of {size} ports in {low}-{high} after {attempts} attempts")


# ----------------------------------------------------------------------------------------------
# STUN Binding client (RFC 8489) for readiness checks and exact reflexive-address checks

MAGIC_COOKIE = 0x2112A442
BINDING_REQUEST = 0x0001
BINDING_SUCCESS = 0x0101
ATTR_MAPPED_ADDRESS = 0x0001
ATTR_XOR_MAPPED_ADDRESS = 0x0020


def _binding_request() -> tuple[bytes, bytes]:
    txid = secrets.token_bytes(12)
    return struct.pack("!HHI", BINDING_REQUEST, 0, MAGIC_COOKIE) + txid, txid


def _parse_address(value: bytes, xor: bool, txid: bytes) -> tuple[str, int]:
    if len(value) < 4:
        raise ValueError("short address attribute")
    family, port = value[1], struct.unpack("!H", value[2:4])[0]
    raw = value[4:]
    if xor:
        port ^= MAGIC_COOKIE >> 16
        key = struct.pack("!I", MAGIC_COOKIE) + txid
        raw = bytes(b ^ key[i] for i, b in enumerate(raw))
    if family == 0x01 and len(raw) >= 4:
        return str(ipaddress.IPv4Address(raw[:4])), port
    if family == 0x02 and len(raw) >= 16:
        return str(ipaddress.IPv6Address(raw[:16])), port
    raise ValueError(f"bad address family {family}")


def parse_binding_response(data: bytes, txid: bytes) -> tuple[str, int]:
    """Return the (XOR-)MAPPED-ADDRESS of a Binding success response, else raise ValueError."""
    if len(data) < 20:
        raise ValueError("short STUN message")
    mtype, mlen, cookie = struct.unpack("!HHI", data[:8])
    if cookie != MAGIC_COOKIE or data[8:20] != txid:
        raise ValueError("not a response to our request")
    if mtype != BINDING_SUCCESS:
        raise ValueError(f"not a Binding success response (type 0x{mtype:04x})")
    body = data[20:20 + mlen]
    mapped = xor_mapped = None
    off = 0
    while off + 4 <= len(body):
        atype, alen = struct.unpack("!HH", body[off:off + 4])
        value = body[off + 4:off + 4 + alen]
        if atype == ATTR_XOR_MAPPED_ADDRESS:
            xor_mapped = _parse_address(value, True, txid)
        elif atype == ATTR_MAPPED_ADDRESS:
            mapped = _parse_address(value, False, txid)
        off += 4 + alen + ((4 - alen % 4) % 4)
    if xor_mapped:
        return xor_mapped
    if mapped:
        return mapped
    raise ValueError("Binding response without XOR-MAPPED-ADDRESS")


def _family(host: str) -> int:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def stun_binding_udp(host: str, port: int, timeout: float = 1.0, local: str | None = None,
                     retries: int = 3):
    """Send a Binding request over UDP. Returns ((mapped_ip, mapped_port), (local_ip, local_port))."""
    fam = _family(host)
    with socket.socket(fam, socket.SOCK_DGRAM) as s:
        s.bind((local or ("::1" if fam == socket.AF_INET6 else "127.0.0.1"), 0))
        s.connect((host, port))
        req, txid = _binding_request()
        per_try = timeout / max(1, retries)
        for _ in range(max(1, retries)):
            s.send(req)
            deadline = time.monotonic() + per_try
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                s.settimeout(left)
                try:
                    data = s.recv(2048)
                except (socket.timeout, ConnectionRefusedError):
                    # ICMP port unreachable shows up as ECONNREFUSED: not listening (yet).
                    break
                try:
                    return parse_binding_response(data, txid), s.getsockname()[:2]
                except ValueError:
                    continue  # stray datagram; keep waiting within this try
        raise TimeoutError(f"no STUN Binding response from {host}:{port}/udp")


def stun_binding_tcp(host: str, port: int, timeout: float = 2.0, local: str | None = None):
    """Binding request over a TCP connection. Returns ((mapped_ip, mapped_port), (local_ip, local_port))."""
    fam = _family(host)
    deadline = time.monotonic() + timeout
    with socket.socket(fam, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        if local:
            s.bind((local, 0))
        s.connect((host, port))
        req, txid = _binding_request()
        s.sendall(req)
        buf = b""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no STUN Binding response from {host}:{port}/tcp")
            s.settimeout(left)
            chunk = s.recv(4096)
            if not chunk:
                raise ConnectionError(f"{host}:{port}/tcp closed the connection")
            buf += chunk
            if len(buf) >= 20:
                need = 20 + struct.unpack("!H", buf[2:4])[0]
                if len(buf) >= need:
                    return parse_binding_response(buf[:need], txid), s.getsockname()[:2]


def insecure_tls_context() -> ssl.SSLContext:
    """A TLS client context that accepts the tests' self-signed certificates."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def read_stun_message(s, deadline: float) -> bytes:
    """Reads one STUN message from a stream socket (plain or TLS) before `deadline`."""
    buf = b""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("no STUN message")
        s.settimeout(left)
        chunk = s.recv(4096)
        if not chunk:
            raise ConnectionError("connection closed")
        buf += chunk
        if len(buf) >= 20:
            need = 20 + struct.unpack("!H", buf[2:4])[0]
            if len(buf) >= need:
                return buf[:need]


def stun_binding_over(s, timeout: float = 2.0):
    """Binding request over an already connected stream socket. Returns the mapped (ip, port)."""
    req, txid = _binding_request()
    s.sendall(req)
    return parse_binding_response(read_stun_message(s, time.monotonic() + timeout), txid)


def stun_binding_tls(host: str, port: int, timeout: float = 2.0, local: str | None = None):
    """Binding request over TLS (certificate not checked). Returns ((mapped), (local), tls version)."""
    fam = _family(host)
    with socket.socket(fam, socket.SOCK_STREAM) as raw:
        raw.settimeout(timeout)
        if local:
            raw.bind((local, 0))
        raw.connect((host, port))
        with insecure_tls_context().wrap_socket(raw) as s:
            mapped = stun_binding_over(s, timeout)
            return mapped, s.getsockname()[:2], s.version()


def make_test_certificate(directory: Path, name: str = "server", cn: str = "ferry.test") -> tuple[Path, Path]:
    """A self-signed P-256 certificate and its key as PEM files in `directory` (cert, key)."""
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    r = subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                        "-nodes", "-days", "2", "-subj", f"/CN={cn}", "-keyout", str(key), "-out", str(cert)],
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
    if r.returncode != 0:
        raise RuntimeError(f"openssl req failed: {r.stderr.decode(errors='replace')}")
    return cert, key


def udp_echo_ready(host: str, port: int, timeout: float = 5.0) -> bool:
    """True once a UDP echo server (turnutils_peer) echoes a datagram back."""
    deadline = time.monotonic() + timeout
    probe = b"ferry-it-probe-" + secrets.token_hex(4).encode()
    with socket.socket(_family(host), socket.SOCK_DGRAM) as s:
        s.connect((host, port))
        for _ in range(100):
            if time.monotonic() >= deadline:
                return False
            try:
                s.send(probe)
                s.settimeout(0.2)
                if s.recv(2048) == probe:
                    return True
            except (socket.timeout, ConnectionRefusedError):
                time.sleep(0.05)
    return False


# ----------------------------------------------------------------------------------------------
# HTTP (ferry's operations endpoint)


def http_get(port: int, path: str, headers: dict | None = None, timeout: float = 5.0,
             method: str = "GET") -> tuple[int, dict, str]:
    """One request to 127.0.0.1:port. Returns (status, headers, body)."""
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, headers=headers or {})
        res = conn.getresponse()
        body = res.read().decode("utf-8", errors="replace")
        return res.status, {k.lower(): v for k, v in res.getheaders()}, body
    finally:
        conn.close()


def wait_http(port: int, path: str = "/healthz", timeout: float = 5.0) -> None:
    """Poll until the endpoint answers anything (bounded)."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    for _ in range(200):
        if time.monotonic() >= deadline:
            break
        try:
            http_get(port, path, timeout=1.0)
            return
        except OSError as exc:
            last = exc
            time.sleep(0.05)
    raise ServerError(f"http endpoint on port {port} not answering: {last}")


class TurnProbe:
    """ferry_turn_probe (tests/integration/turn_probe.cpp): one TURN client on one UDP 5-tuple,
    driven line by line. Lines: "allocate", "refresh SECONDS"; answers like "allocate ok ADDR",
    "allocate error 508 ...", "refresh ok 600"."""

    def __init__(self, binary: str, host: str, port: int, user: str, password: str):
        self.proc = subprocess.Popen([binary, host, str(port), user, password], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     start_new_session=True, preexec_fn=_set_pdeathsig)
        _live.append(self)

    def ask(self, line: str, timeout: float = 10.0) -> str:
        import select

        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            raise TimeoutError(f"probe did not answer {line!r} within {timeout}s")
        return self.proc.stdout.readline().strip()

    def stop(self) -> None:
        if self in _live:
            _live.remove(self)
        try:
            if self.proc.poll() is None:
                self.proc.stdin.write("quit\n")
                self.proc.stdin.flush()
                self.proc.wait(timeout=2)
        except (OSError, subprocess.TimeoutExpired, ValueError):
            pass
        _kill_group(self.proc, term_timeout=1)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


# ----------------------------------------------------------------------------------------------
# Server configuration


@dataclass
class Listener:
    address: str
    port: int
    transport: str  # "udp" | "tcp" | "tls" | "dtls"


@dataclass
class ServerConfig:
    port: int
    relay_min: int
    relay_max: int
    realm: str = DEFAULT_REALM
    users: dict[str, str] = field(default_factory=lambda: {DEFAULT_USER: DEFAULT_PASSWORD})
    relay_addresses: list[str] = field(default_factory=lambda: ["127.0.0.1"])
    ipv6: bool = True  # also listen on ::1
    tcp: bool = True  # also listen on TCP
    ipv6_tcp: bool = False  # TCP on ::1 as well (coturn always does this when listening on ::1)
    peers_allow: list[str] = field(default_factory=lambda: ["127.0.0.0/8", "::1/128"])
    # TURN REST API secrets (ferry: auth.shared_secrets); usernames are "<expiry>:<user>".
    shared_secrets: list[str] = field(default_factory=lambda: [DEFAULT_SHARED_SECRET])
    log_level: str = "info"
    workers: int = 0  # ferry: 0 = one per CPU
    extra_yaml: str = ""  # appended to ferry.yaml as is (top-level keys)
    # TLS on 127.0.0.1:tls_port (0: none) and DTLS on the same port number when dtls is set;
    # both need cert_file and key_file (make_test_certificate()).
    tls_port: int = 0
    dtls: bool = False
    cert_file: str | None = None
    key_file: str | None = None
    # Extra keys of ferry's limits: and tls: sections, e.g. {"max_connections_per_ip": 20}.
    limits: dict = field(default_factory=dict)
    tls: dict = field(default_factory=dict)
    # ferry's operations endpoint on 127.0.0.1:http_port (0: off), with more "key: value" lines
    # under http: (api_keys, ice_urls, ...).
    http_port: int = 0
    http_extra: list[str] = field(default_factory=list)
    # drain.* keys; timeout 0 by default so that stopping the server (SIGTERM) is immediate.
    drain: dict[str, str] = field(default_factory=lambda: {"timeout": "0"})
    database_url: str = ""  # ferry's database.url (test databases only)
    # More ferry listeners, each a YAML flow mapping ("{address: ..., port: ..., transport: tcp,
    # proxy_protocol: v2, ...}"); not polled by wait_ready.
    extra_listeners: list[str] = field(default_factory=list)

    @property
    def listeners(self) -> list[Listener]:
        out = [Listener("127.0.0.1", self.port, "udp")]
        if self.tcp:
            out.append(Listener("127.0.0.1", self.port, "tcp"))
        if self.ipv6:
            out.append(Listener("::1", self.port, "udp"))
            if self.ipv6_tcp:
                out.append(Listener("::1", self.port, "tcp"))
        if self.tls_port:
            out.append(Listener("127.0.0.1", self.tls_port, "tls"))
            if self.dtls:
                out.append(Listener("127.0.0.1", self.tls_port, "dtls"))
        return out

    # -- ferry -------------------------------------------------------------------------------
    def ferry_yaml(self) -> str:
        def q(s: str) -> str:  # YAML double-quoted scalar
            return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'

        lines = [f"realm: {q(self.realm)}", "listeners:"]
        for l in self.listeners:
            lines.append(f"  - {{address: {q(l.address)}, port: {l.port}, transport: {l.transport}}}")
        lines += [f"  - {raw}" for raw in self.extra_listeners]
        lines.append("relay:")
        lines.append("  addresses: [" + ", ".join(f"{{address: {q(a)}}}" for a in self.relay_addresses) + "]")
        lines.append(f"  port_min: {self.relay_min}")
        lines.append(f"  port_max: {self.relay_max}")
        lines.append("auth:")
        lines.append("  users: [" + ", ".join(
            f"{{name: {q(u)}, password: {q(p)}}}" for u, p in self.users.items()) + "]")
        if self.shared_secrets:
            lines.append("  shared_secrets: [" + ", ".join(q(s) for s in self.shared_secrets) + "]")
        lines.append("peers:")
        lines.append("  allow: [" + ", ".join(q(p) for p in self.peers_allow) + "]")
        if self.limits:
            lines.append("limits:")
            lines += [f"  {k}: {v}" for k, v in self.limits.items()]
        if self.tls_port or self.tls:
            lines.append("tls:")
            if self.cert_file:
                lines.append(f"  cert: {q(str(self.cert_file))}")
                lines.append(f"  key: {q(str(self.key_file))}")
            lines += [f"  {k}: {v}" for k, v in self.tls.items()]
        lines.append(f"log: {{level: {self.log_level}}}")
        if self.http_port:
            lines.append("http:")
            lines.append(f'  address: "127.0.0.1:{self.http_port}"')
            lines.extend("  " + l for l in self.http_extra)
        else:
            lines.append('http: {address: ""}')
        lines.append("drain: {" + ", ".join(f"{k}: {q(v)}" for k, v in self.drain.items()) + "}")
        if self.database_url:
            lines.append(f"database: {{url: {q(self.database_url)}}}")
        if self.workers:
            lines.append(f"workers: {self.workers}")
        if self.extra_yaml:
            lines.append(self.extra_yaml.rstrip("\n"))
        return "\n".join(lines) + "\n"

    # -- coturn ------------------------------------------------------------------------------
    def coturn_args(self, workdir: Path) -> list[str]:
        """turnserver options equivalent to ferry_yaml(). Note: --user puts the password in argv;
        acceptable for the throw-away test credentials used with the coturn reference only."""
        args = [
            "-n",  # no config file
            "--no-cli",
            "--log-file", "stdout",
            "--simple-log",
            "--pidfile", str(workdir / "turnserver.pid"),  # default is /var/run/turnserver.pid
            "--userdb", str(workdir / "turndb"),  # default is the system /var/lib/turn/turndb
            "--listening-port", str(self.port),
            "--listening-ip", "127.0.0.1",
        ]
        if self.ipv6:
            args += ["--listening-ip", "::1"]
        for a in self.relay_addresses:
            args += ["--relay-ip", a]
        args += [
            "--min-port", str(self.relay_min),
            "--max-port", str(self.relay_max),
            "--lt-cred-mech",
            "--realm", self.realm,
        ]
        for u, p in self.users.items():
            args += ["--user", f"{u}:{p}"]
        args += [
            "--allow-loopback-peers",  # ferry: peers.allow contains 127.0.0.0/8 and ::1/128
            "--no-rfc5780",  # ferry does not do RFC 5780; also keeps port+1 unused
            "--no-multicast-peers",
            "--relay-threads", "1",
        ]
        if self.tls_port:
            args += ["--tls-listening-port", str(self.tls_port), "--cert", str(self.cert_file),
                     "--pkey", str(self.key_file)]
            if not self.dtls:
                args.append("--no-dtls")
        else:
            args += ["--no-tls", "--no-dtls"]
        if not self.tcp:
            args.append("--no-tcp")
        if self.log_level == "debug":
            args.append("--verbose")
        return args


def find_ferry_binary() -> str | None:
    """FERRY_BIN, else the newest build/*/ferry (or build/ferry) under the repository root."""
    env = os.environ.get("FERRY_BIN")
    if env:
        return env
    candidates = [p for p in glob.glob(str(REPO_ROOT / "build" / "*" / "ferry")) +
                  glob.glob(str(REPO_ROOT / "build" / "*" / "server" / "ferry")) +
                  glob.glob(str(REPO_ROOT / "build" / "ferry")) +
                  glob.glob(str(REPO_ROOT / "build" / "server" / "ferry"))
                  if os.path.isfile(p) and os.access(p, os.X_OK)]
    if not candidates:
        return None
    return max(candidates, key=os.path.getmtime)


class ServerError(RuntimeError):
    pass


class Server:
    """A running ferry or coturn instance on loopback. Use as a context manager."""

    def __init__(self, kind: str, config: ServerConfig, binary: str | None = None,
                 keep_workdir: bool = False, ready_timeout: float = 15.0, env: dict | None = None):
        if kind not in ("ferry", "coturn"):
            raise ValueError(f"unknown server kind {kind!r}")
        self.kind = kind
        self.config = config
        self.binary = binary or (find_ferry_binary() if kind == "ferry" else COTURN_BIN)
        if not self.binary:
            raise ServerError("ferry binary not found: pass --bin PATH or set FERRY_BIN")
        self.binary = os.path.abspath(self.binary) if os.sep in self.binary else self.binary  # cwd changes
        if not (os.path.isfile(self.binary) and os.access(self.binary, os.X_OK)):
            raise ServerError(f"server binary {self.binary} is not an executable file")
        self.keep_workdir = keep_workdir
        self.ready_timeout = ready_timeout
        self.env = env  # extra environment (e.g. FERRY_DATABASE_URL: secrets stay out of argv)
        self.workdir: Path | None = None
        self.proc: subprocess.Popen | None = None
        self._log = None
        self.log_path: Path | None = None
        self.cmd: list[str] = []

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> "Server":
        self.workdir = Path(tempfile.mkdtemp(prefix=f"ferry-it-{self.kind}-"))
        if self.kind == "ferry":
            cfg_path = self.workdir / "ferry.yaml"
            cfg_path.write_text(self.config.ferry_yaml())
            cfg_path.chmod(0o600)  # holds the test password
            self.cmd = [self.binary, "--config", str(cfg_path)]
        else:
            self.cmd = [self.binary] + self.config.coturn_args(self.workdir)
        self.log_path = self.workdir / f"{self.kind}.log"
        self._log = open(self.log_path, "wb")
        log(f"starting {self.kind}: {self._printable_cmd()}")
        env = None
        if self.env:
            env = dict(os.environ)
            env.update(self.env)
        self.proc = _spawn(self.cmd, stdout=self._log, stderr=subprocess.STDOUT, cwd=self.workdir, env=env)
        _live.append(self)
        try:
            self.wait_ready(self.ready_timeout)
        except Exception:
            self.dump_log("server log (not ready)")
            self.stop()
            raise
        return self

    def _printable_cmd(self) -> str:
        # Do not print test passwords given to coturn on its command line.
        out, hide = [], False
        for a in self.cmd:
            if hide:
                out.append(a.split(":", 1)[0] + ":***")
                hide = False
                continue
            out.append(a)
            hide = a == "--user"
        return " ".join(out)

    def wait_ready(self, timeout: float) -> None:
        """Poll every listener until it answers a STUN Binding (bounded by timeout)."""
        deadline = time.monotonic() + timeout
        pending = list(self.config.listeners)
        attempt = 0
        last_err: Exception | None = None
        while pending and attempt < 1000:
            attempt += 1
            if self.proc.poll() is not None:
                raise ServerError(f"{self.kind} exited with status {self.proc.returncode} during startup")
            if time.monotonic() >= deadline:
                raise ServerError(f"{self.kind} not ready after {timeout}s; still silent: "
                                  + ", ".join(f"{l.address}:{l.port}/{l.transport}" for l in pending)
                                  + f" (last error: {last_err})")
            l = pending[0]
            try:
                if l.transport == "udp":
                    stun_binding_udp(l.address, l.port, timeout=0.3, retries=1)
                elif l.transport == "tls":
                    stun_binding_tls(l.address, l.port, timeout=1.0)
                elif l.transport == "dtls":
                    pass  # bound with the others before the server answers anything (no DTLS client here)
                else:
                    stun_binding_tcp(l.address, l.port, timeout=1.0)
                pending.pop(0)
                continue
            except (OSError, TimeoutError, ValueError) as exc:
                last_err = exc
            time.sleep(0.1)
        if pending:
            raise ServerError(f"{self.kind} readiness loop gave up")
        log(f"{self.kind} ready on port {self.config.port} (pid {self.proc.pid})")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def send_signal(self, sig: int) -> None:
        """Signal the server process itself (not its group)."""
        if self.alive():
            self.proc.send_signal(sig)

    def wait_exit(self, timeout: float) -> int | None:
        """The exit status once the server has exited within `timeout` seconds, else None."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self) -> None:
        if self in _live:
            _live.remove(self)
        if self.proc is not None:
            _kill_group(self.proc)
        if self._log is not None and not self._log.closed:
            self._log.close()
        if self.workdir is not None:
            if self.keep_workdir:
                log(f"kept {self.kind} work dir {self.workdir}")
            else:
                shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    def __enter__(self):
        return self.start()

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None and self.log_path is not None:
            self.dump_log("server log")
        self.stop()

    def __repr__(self):
        return f"<{self.kind} server pid={self.proc.pid if self.proc else None}>"

    # -- diagnostics -------------------------------------------------------------------------
    def log_text(self, max_bytes: int = 20000) -> str:
        if self.log_path is None:
            return ""
        try:
            data = self.log_path.read_bytes()
        except OSError:
            return ""
        return data[-max_bytes:].decode("utf-8", errors="replace")

    def dump_log(self, title: str, max_bytes: int = 8000) -> None:
        text = self.log_text(max_bytes)
        print(f"----- {title} ({self.kind}, last {max_bytes} bytes) -----", file=sys.stderr)
        print(text.rstrip() or "(empty)", file=sys.stderr)
        print(f"----- end of {title} -----", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------------------------
# Shared command line


def common_arguments(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--server", choices=["ferry", "coturn"], default=os.environ.get("FERRY_IT_SERVER", "ferry"),
                   help="server implementation to test (default: ferry, or $FERRY_IT_SERVER)")
    p.add_argument("--bin", default=None,
                   help="server binary (default: $FERRY_BIN or newest build/*/ferry; /usr/bin/turnserver for coturn)")
    p.add_argument("--port", type=int, default=0, help="listener port (default: a free port in 20000-32000)")
    p.add_argument("--relay-ports", type=int, default=200, help="size of the relay port range (default 200)")
    p.add_argument("--realm", default=DEFAULT_REALM)
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warn", "error"],
                   help="server log level (coturn: debug -> --verbose)")
    p.add_argument("--keep-logs", action="store_true", help="keep the server work dir (config + log)")
    p.add_argument("--show-server-log", action="store_true", help="print the server log at the end")
    p.add_argument("--ready-timeout", type=float, default=15.0, help="seconds to wait for the server to answer")
    return p


def config_from_args(args, **overrides) -> ServerConfig:
    port = args.port or pick_free_port()
    relay_min, relay_max = pick_free_range(max(10, args.relay_ports))
    kw = dict(port=port, relay_min=relay_min, relay_max=relay_max, realm=args.realm,
              log_level=args.log_level)
    kw.update(overrides)
    return ServerConfig(**kw)


def add_tls(cfg: ServerConfig, directory: Path, dtls: bool = True) -> ServerConfig:
    """Gives `cfg` a TLS listener (and a DTLS one on the same port number) with a fresh test
    certificate written to `directory`."""
    cert, key = make_test_certificate(directory)
    cfg.cert_file, cfg.key_file = str(cert), str(key)
    cfg.tls_port = pick_free_port(ipv6=False)
    cfg.dtls = dtls
    return cfg


def server_from_args(args, config: ServerConfig) -> Server:
    return Server(args.server, config, binary=args.bin, keep_workdir=args.keep_logs,
                  ready_timeout=args.ready_timeout)


def report(name: str, problems: list[str], summary: str) -> int:
    """A test's verdict: every problem and a FAIL line (exit status 1), or one PASS line (0)."""
    if problems:
        for p in problems:
            print(f"  problem: {p}")
        print(f"FAIL {name}: {len(problems)} problem(s)")
        return 1
    print(f"PASS {name}: {summary}")
    return 0


class Skip(Exception):
    """Raised by a test body when the machine cannot run it (run_test exits 77: CTest's skip)."""


class Checks:
    """The named checks of one test run. Each prints an indented "ok"/"FAIL" line as it runs (the
    top-level PASS/FAIL line is report()'s) and a failed one becomes one of the run's problems."""

    def __init__(self) -> None:
        self.problems: list[str] = []
        self.passed = 0

    def check(self, name: str, cond, detail: str = "") -> bool:
        if cond:
            self.passed += 1
            print(f"  ok   {name}", flush=True)
        else:
            self.problems.append(f"{name}: {detail}" if detail else name)
            print(f"  FAIL {name}" + (f": {detail}" if detail else ""), flush=True)
        return bool(cond)


CHECKS = Checks()  # one test per process: the checks every script's check() records into


def check(name: str, cond, detail: str = "") -> bool:
    return CHECKS.check(name, cond, detail)


def run_test(name: str, body) -> int:
    """The one way a test script ends. body() runs the test, records failures with check() (or
    returns a list of problems) and may return a summary line; an exception is one more problem
    (with its traceback), Skip is exit status 77. The verdict is report()'s: exit 0 or 1."""
    summary = None
    try:
        result = body()
        if isinstance(result, list):
            CHECKS.problems += result
        elif isinstance(result, str):
            summary = result
    except Skip as why:
        print(f"SKIP {name}: {why}", flush=True)
        return 77
    except Exception as exc:  # noqa: BLE001 - a crash in the test is a failure; cleanup still happens
        import traceback
        traceback.print_exc()
        CHECKS.problems.append(f"{type(exc).__name__}: {exc}")
    return report(name, CHECKS.problems, summary or f"{CHECKS.passed} checks passed")


def run_pg_test(name: str, body) -> int:
    """run_test(name, ...) with body(pg) given a fresh pg_env.PgEnv, destroyed afterwards; Skip
    when no PostgreSQL server can be made here."""
    from pg_env import PgEnv, PgEnvError

    def with_pg():
        try:
            pg = PgEnv()
            pg.create()
        except PgEnvError as e:
            raise Skip(str(e))
        try:
            return body(pg)
        finally:
            pg.destroy()

    return run_test(name, with_pg)


def require_tool(path: str) -> str:
    found = shutil.which(path) if os.sep not in path else (path if os.access(path, os.X_OK) else None)
    if not found:
        raise ServerError(f"required tool {path} not found (Debian package coturn provides turnutils_*)")
    return found


if __name__ == "__main__":
    # Manual use: start a server and keep it running until Ctrl-C (bounded to 1 hour).
    ap = common_arguments("Start a test server on loopback and keep it running until Ctrl-C.")
    ap.add_argument("--print-config", action="store_true", help="only print the ferry YAML / coturn argv")
    ns = ap.parse_args()
    cfg = config_from_args(ns)
    if ns.print_config:
        print(cfg.ferry_yaml() if ns.server == "ferry" else " ".join(cfg.coturn_args(Path("/tmp/WORKDIR"))))
        sys.exit(0)
    with server_from_args(ns, cfg) as srv:
        print(f"{ns.server} listening on 127.0.0.1:{cfg.port} (udp/tcp) and [::1]:{cfg.port} (udp); "
              f"relay 127.0.0.1:{cfg.relay_min}-{cfg.relay_max}; user {DEFAULT_USER}; realm {cfg.realm}",
              flush=True)
        for _ in range(3600):
            if not srv.alive():
                print("server exited", file=sys.stderr)
                break
            time.sleep(1)
