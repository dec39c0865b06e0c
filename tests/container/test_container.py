#!/usr/bin/python3
"""Builds the ferry image from the top-level Dockerfile with podman and runs it for real.

  /usr/bin/python3 tests/container/test_container.py [--source DIR] [--keep-image | --image TAG]

As root on Debian 12 with podman, runc and mmdebstrap (scripts/install-deps.sh). No registry is
needed: podman_host.py makes debian:bookworm-slim locally. Steps:

  1. host setup (podman_host.prepare): containers.conf drop-in, local base image
  2. `podman build --format docker` (docker format keeps the HEALTHCHECK), compiling ferry in the
     image with the Dockerfile's JOBS=2
  3. the image runs as a non-root numeric user and has the HEALTHCHECK and FERRY_CONFIG set
  4. `podman run --network host` with a config mounted at /etc/ferry/ferry.yaml that listens on
     free ports below 32768 on 127.0.0.1, and a FERRY_* variable (FERRY_SOFTWARE) on top
  5. STUN Binding over UDP and TCP answers with our own address and the SOFTWARE from the
     variable; coturn's turnutils_stunclient agrees when it is installed
  6. the image's HEALTHCHECK script against a stand-in /healthz (address from the mounted config,
     FERRY_HTTP_ADDRESS or FERRY_HEALTHCHECK_ADDRESS; 200 healthy, 503 or no listener not); then
     ferry's own GET /healthz and /readyz answer 200 and `podman healthcheck run` passes. Those
     are skipped with FERRY_CONTAINER_EXPECT_HEALTHZ=0 (for branches without the HTTP listener).
  7. SIGTERM to the container: ferry (PID 1) exits 0 within STOP_SECONDS
  8. the container, the image and any intermediate image or build container made by this run
     are removed, also on failure, timeout or SIGINT/SIGTERM

Reports through the harness: one final `PASS container: ...` or `FAIL container: ...` line; exit
0 / 1 (77, harness.Skip, when not root: CTest skips).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.dont_write_bytecode = True  # no __pycache__ in the source tree (it is the build context)
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "integration"))

import harness  # noqa: E402  (pick_free_port, stun_binding_udp/tcp)
import podman_host  # noqa: E402

LABEL = "ferry.test=container"  # on every container and image this test makes
BUILD_SECONDS = 1500  # compiling ferry in the image on 2 cores takes ~5 min; generous for a loaded host
READY_SECONDS = 30
STOP_SECONDS = 15  # SIGTERM to exit; ferry drains (FERRY_DRAIN_TIMEOUT below) with no allocations
SOFTWARE = "ferry-container-test"
STUNCLIENT = "/usr/bin/turnutils_stunclient"

ATTR_SOFTWARE = 0x8022


def log(msg: str) -> None:
    print(f"[container {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class Failure(Exception):
    pass


_current: subprocess.Popen | None = None  # the podman command running now, for on_signal


def podman(*args: str, timeout: float = 60, check: bool = True, capture: bool = True,
           niceness: int = 0) -> subprocess.CompletedProcess:
    """Runs podman; on timeout it gets SIGTERM (podman build then removes its build containers)."""
    global _current
    cmd = ["podman", *args]
    if niceness:
        cmd = ["nice", "-n", str(niceness), *cmd]
    pipe = subprocess.PIPE if capture else None
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=pipe, stderr=pipe, text=True)
    _current = proc
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        stop_process(proc)
        raise Failure(f"`{' '.join(cmd)}` did not finish in {timeout:.0f} s")
    finally:
        _current = None
    r = subprocess.CompletedProcess(cmd, proc.returncode, out, err)
    if check and r.returncode != 0:
        detail = (err or "").strip()[-2000:] if capture else ""
        raise Failure(f"`{' '.join(cmd)}` exited {r.returncode}: {detail}")
    return r


def stop_process(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()


def ids(*args: str) -> set[str]:
    r = podman(*args, check=False)
    return set(r.stdout.split()) if r.returncode == 0 else set()


# ----------------------------------------------------------------------------------------------
# Cleanup: everything this run made, found by label and by before/after lists of IDs.


class Janitor:
    def __init__(self) -> None:
        self.images_before: set[str] = set()
        self.containers_before: set[str] = set()
        self.image: str | None = None
        self.container: str | None = None
        self.keep_image = False

    def snapshot(self) -> None:
        self.images_before = ids("images", "--all", "--quiet", "--no-trunc")
        # --external: buildah's working containers of a build, which `podman ps` alone hides.
        self.containers_before = ids("ps", "--all", "--external", "--quiet", "--no-trunc")

    def sweep_stale(self, keep: str | None = None) -> None:
        """Containers and images left by an earlier run of this test that was killed outright
        (or kept with --keep-image), except the image `keep`."""
        for cid in ids("ps", "--all", "--quiet", "--filter", f"label={LABEL}"):
            log(f"removing stale test container {cid[:12]}")
            podman("rm", "--force", "--time", "0", cid, check=False)
        keep_ids = ids("images", "--quiet", keep) if keep else set()
        for iid in ids("images", "--quiet", "--filter", f"label={LABEL}") - keep_ids:
            log(f"removing stale test image {iid[:12]}")
            podman("rmi", "--force", iid, check=False)

    def clean(self) -> None:
        if self.container:
            podman("rm", "--force", "--time", "0", self.container, check=False, timeout=60)
            self.container = None
        new_containers = ids("ps", "--all", "--external", "--quiet", "--no-trunc") - self.containers_before
        for cid in new_containers:
            podman("rm", "--force", "--time", "0", cid, check=False, timeout=60)
        if self.keep_image:
            return
        if self.image:
            podman("rmi", "--force", self.image, check=False, timeout=120)
        # Intermediate images (the build stage, cached layers) made by this run; never the base.
        base = ids("images", "--quiet", "--no-trunc", podman_host.BASE_IMAGE)
        for iid in ids("images", "--all", "--quiet", "--no-trunc") - self.images_before - base:
            podman("rmi", "--force", iid, check=False, timeout=120)
        # conmon goes with its container; report (not kill blindly) anything that still names ours.
        left = ids("ps", "--all", "--external", "--quiet", "--no-trunc") - self.containers_before
        if left:
            log(f"warning: containers still present after cleanup: {sorted(left)}")


JANITOR = Janitor()


def on_signal(signum, _frame):
    log(f"got signal {signum}; cleaning up")
    try:
        if _current is not None and _current.poll() is None:
            stop_process(_current)
        JANITOR.clean()
    finally:
        os._exit(128 + signum)


# ----------------------------------------------------------------------------------------------
# Checks


def binding_software(host: str, port: int, timeout: float = 3.0) -> str | None:
    """SOFTWARE attribute of a UDP Binding response (None if the response has none)."""
    txid = secrets.token_bytes(12)
    req = struct.pack("!HHI", 0x0001, 0, 0x2112A442) + txid
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(req, (host, port))
        data = s.recv(2048)
    if len(data) < 20 or data[8:20] != txid:
        raise Failure("Binding response does not match the request")
    mlen = struct.unpack("!H", data[2:4])[0]
    body = data[20:20 + mlen]
    off = 0
    while off + 4 <= len(body):
        atype, alen = struct.unpack("!HH", body[off:off + 4])
        if atype == ATTR_SOFTWARE:
            return body[off + 4:off + 4 + alen].decode("utf-8", "replace")
        off += 4 + alen + ((4 - alen % 4) % 4)
    return None


def wait_for_binding(port: int, deadline: float, container: str) -> None:
    while True:
        try:
            harness.stun_binding_udp("127.0.0.1", port, timeout=1.0)
            return
        except (TimeoutError, OSError):
            pass
        state = podman("inspect", "--format", "{{.State.Status}}", container, check=False).stdout.strip()
        if state not in ("running", "created", "configured"):
            raise Failure(f"container is {state or 'gone'} before answering STUN")
        if time.monotonic() > deadline:
            raise Failure(f"no STUN Binding answer on 127.0.0.1:{port}/udp within {READY_SECONDS} s")
        time.sleep(0.3)


def http_get(url: str, timeout: float = 3.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read(2000).decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read(2000).decode("utf-8", "replace")


def check_image_metadata(image: str) -> None:
    info = json.loads(podman("image", "inspect", image).stdout)[0]
    cfg = info.get("Config", {})
    user = cfg.get("User", "")
    uid = user.split(":")[0]
    if not uid.isdigit() or int(uid) == 0:
        raise Failure(f"image USER is {user!r}, want a numeric non-root user")
    # podman shows a docker-format image's HEALTHCHECK at the top level; docker under Config.
    health = info.get("Healthcheck") or cfg.get("Healthcheck") or {}
    test = health.get("Test") or []
    if not any("ferry-healthcheck" in t for t in test):
        raise Failure(f"image has no HEALTHCHECK running ferry-healthcheck (got {health!r})")
    env = cfg.get("Env") or []
    if "FERRY_CONFIG=/etc/ferry/ferry.yaml" not in env:
        raise Failure(f"image does not set FERRY_CONFIG=/etc/ferry/ferry.yaml (Env: {env})")
    exposed = set((cfg.get("ExposedPorts") or {}).keys())
    want = {"3478/udp", "3478/tcp", "5349/tcp", "5349/udp", "9641/tcp"}
    if not want <= exposed:
        raise Failure(f"image exposes {sorted(exposed)}, want at least {sorted(want)}")
    entry = cfg.get("Entrypoint") or []
    if entry != ["/usr/local/bin/ferry"]:
        raise Failure(f"ENTRYPOINT is {entry}, want exec form [\"/usr/local/bin/ferry\"] so ferry is PID 1")
    log(f"image: user {user}, HEALTHCHECK {test}, {info.get('Size', 0) / 1e6:.0f} MB")


class FakeHealthServer:
    """A stand-in /healthz on loopback, to check the image's HEALTHCHECK script by itself."""

    def __init__(self, host: str, port: int):
        import http.server
        import threading

        outer = self
        self.status = 200
        self.requests: list[str] = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's naming)
                outer.requests.append(self.path)
                code = outer.status if self.path == "/healthz" else 404
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        family = socket.AF_INET6 if ":" in host else socket.AF_INET

        class Server(http.server.ThreadingHTTPServer):
            address_family = family

        self.httpd = Server((host, port), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def check_healthcheck_script(tag: str, tmp: Path) -> None:
    """The HEALTHCHECK script finds the HTTP address (config file, FERRY_* variable, override),
    wants 200 from /healthz, and fails fast when nothing answers. Runs without ferry's own
    HTTP listener, against a fake one."""
    port = harness.pick_free_port()
    cfg = tmp / "health.yaml"

    def probe(http_address: str | None, env: dict[str, str] | None = None) -> tuple[int, str]:
        text = "realm: container.test\n"
        if http_address is not None:
            text += f'http:\n  address: "{http_address}"\n'
        cfg.write_text(text)
        cfg.chmod(0o644)
        cmd = ["run", "--rm", "--pull=never", "--network", "host", "--label", LABEL,
               "--entrypoint", "/usr/local/bin/ferry-healthcheck",
               "--volume", f"{cfg}:/etc/ferry/ferry.yaml:ro"]
        for k, v in (env or {}).items():
            cmd += ["--env", f"{k}={v}"]
        r = podman(*cmd, tag, check=False, timeout=30)
        return r.returncode, (r.stdout + r.stderr).strip()

    fake = FakeHealthServer("127.0.0.1", port)
    try:
        cases = [
            ("address from the mounted config", f"127.0.0.1:{port}", None, 0),
            ("wildcard address probed on loopback", f"0.0.0.0:{port}", None, 0),
            ("FERRY_HTTP_ADDRESS overrides the file", "127.0.0.1:1", {"FERRY_HTTP_ADDRESS": f"0.0.0.0:{port}"}, 0),
            ("FERRY_HEALTHCHECK_ADDRESS wins", "127.0.0.1:1", {"FERRY_HEALTHCHECK_ADDRESS": f"127.0.0.1:{port}"}, 0),
            ("HTTP listener turned off", "", None, 0),
            ("nothing listening", "127.0.0.1:1", None, 1),
        ]
        for what, addr, env, want in cases:
            rc, out = probe(addr, env)
            if rc != want:
                raise Failure(f"HEALTHCHECK script, {what}: exit {rc}, want {want}: {out}")
        fake.status = 503
        rc, out = probe(f"127.0.0.1:{port}")
        if rc != 1:
            raise Failure(f"HEALTHCHECK script passed on a 503 from /healthz: {out}")
        if "/healthz" not in fake.requests:
            raise Failure(f"HEALTHCHECK script never asked /healthz (asked {fake.requests})")
    finally:
        fake.close()
    log("HEALTHCHECK script: address from config/env, 200 healthy, 503 and no listener unhealthy: OK")


def config_yaml(port: int, http_port: int, relay_min: int, relay_max: int) -> str:
    """The config mounted at /etc/ferry/ferry.yaml, rendered by the harness's ServerConfig (the one
    place the Python tests write ferry configs): UDP and TCP on 127.0.0.1, a shared secret and no
    users, the HTTP listener, and no drain keys so the image's FERRY_DRAIN_TIMEOUT applies."""
    cfg = harness.ServerConfig(port=port, relay_min=relay_min, relay_max=relay_max, realm="container.test",
                               users={}, shared_secrets=["container-test-secret"], ipv6=False, tcp=True,
                               http_port=http_port, drain={})
    return "# Written by tests/container/test_container.py; mounted at /etc/ferry/ferry.yaml.\n" + cfg.ferry_yaml()


# ----------------------------------------------------------------------------------------------


def run(args) -> list[str]:
    t_start = time.monotonic()
    timings: list[str] = []
    expect_healthz = os.environ.get("FERRY_CONTAINER_EXPECT_HEALTHZ", "1") != "0"

    podman_host.prepare()
    timings.append(f"host {time.monotonic() - t_start:.0f}s")
    JANITOR.sweep_stale(keep=args.image)
    JANITOR.snapshot()

    if args.image:
        tag = args.image  # someone else's image: used, never removed
        log(f"testing the existing image {tag} (no build)")
    else:
        tag = f"localhost/ferry-container-test:{os.getpid()}-{int(time.time())}"
        JANITOR.image = tag
        log(f"building {tag} from {args.source} (JOBS=2)")
        t0 = time.monotonic()
        build = ["build", "--pull=never", "--format", "docker", "--network", "host", "--layers=false",
                 "--force-rm", "--build-arg", "JOBS=2", "--label", LABEL, "--tag", tag, "--file",
                 str(Path(args.source) / "Dockerfile"), str(args.source)]
        # Niced: ctest runs this beside the (mostly waiting) integration tests, whose timing must
        # not suffer from the compile; the build takes the CPU they leave idle.
        podman(*build, timeout=BUILD_SECONDS, capture=False, niceness=19)
        timings.append(f"build {time.monotonic() - t0:.0f}s")
    check_image_metadata(tag)

    port = harness.pick_free_port()
    http_port = harness.pick_free_port()
    relay_min, relay_max = harness.pick_free_range(32)
    with tempfile.TemporaryDirectory(prefix="ferry-container-") as tmp:
        cfg = Path(tmp) / "ferry.yaml"
        cfg.write_text(config_yaml(port, http_port, relay_min, relay_max))
        cfg.chmod(0o644)

        # The mounted file validates inside the image, with the variable applied on top.
        r = podman("run", "--rm", "--pull=never", "--network", "host", "--label", LABEL,
                   "--volume", f"{cfg}:/etc/ferry/ferry.yaml:ro", "--env", f"FERRY_SOFTWARE={SOFTWARE}",
                   tag, "--check-config", "/etc/ferry/ferry.yaml", check=False)
        if r.returncode != 0 or f"software: {SOFTWARE}  # from FERRY_SOFTWARE" not in r.stdout:
            raise Failure(f"--check-config in the image failed ({r.returncode}): {r.stdout[-1500:]} {r.stderr[-1500:]}")

        check_healthcheck_script(tag, Path(tmp))

        name = f"ferry-container-test-{os.getpid()}"
        log(f"starting {name}: STUN/TURN 127.0.0.1:{port} udp+tcp, HTTP 127.0.0.1:{http_port}")
        t0 = time.monotonic()
        r = podman("run", "--detach", "--pull=never", "--network", "host", "--name", name, "--label", LABEL,
                   # podman schedules HEALTHCHECKs with systemd timers, absent here; the test runs it.
                   "--health-interval", "disable",
                   "--volume", f"{cfg}:/etc/ferry/ferry.yaml:ro",
                   "--env", f"FERRY_SOFTWARE={SOFTWARE}",
                   # The drain timeout once the server has one: no allocations, so it should not wait anyway.
                   "--env", "FERRY_DRAIN_TIMEOUT=5",
                   tag)
        JANITOR.container = r.stdout.strip() or name
        try:
            wait_for_binding(port, time.monotonic() + READY_SECONDS, name)
            timings.append(f"ready {time.monotonic() - t0:.1f}s")

            (mapped, local) = harness.stun_binding_udp("127.0.0.1", port, timeout=2.0)
            if tuple(mapped) != tuple(local):
                raise Failure(f"UDP Binding mapped {mapped}, want our own address {local}")
            (mapped, local) = harness.stun_binding_tcp("127.0.0.1", port, timeout=3.0)
            if tuple(mapped) != tuple(local):
                raise Failure(f"TCP Binding mapped {mapped}, want our own address {local}")
            sw = binding_software("127.0.0.1", port)
            if sw != SOFTWARE:
                raise Failure(f"SOFTWARE in the Binding response is {sw!r}, want {SOFTWARE!r} from FERRY_SOFTWARE")
            log("STUN Binding over UDP and TCP: OK (XOR-MAPPED-ADDRESS, SOFTWARE from the environment)")
            if os.path.exists(STUNCLIENT):
                r = subprocess.run([STUNCLIENT, "-p", str(port), "127.0.0.1"], stdin=subprocess.DEVNULL,
                                   capture_output=True, text=True, timeout=20)
                if r.returncode != 0 or "UDP reflexive addr" not in r.stdout + r.stderr:
                    raise Failure(f"turnutils_stunclient failed ({r.returncode}): {(r.stdout + r.stderr)[-1500:]}")
                log("turnutils_stunclient: OK")

            top = podman("top", name, "user", "pid", "comm").stdout
            ferry_rows = [line.split() for line in top.splitlines()[1:] if line.split()[-1:] == ["ferry"]]
            if not ferry_rows or ferry_rows[0][1] != "1" or ferry_rows[0][0] in ("root", "0"):
                raise Failure(f"ferry should run as PID 1 and not as root; podman top says:\n{top}")
            log(f"ferry runs as PID 1, user {ferry_rows[0][0]}")

            if expect_healthz:
                for path in ("/healthz", "/readyz"):  # the Kubernetes examples probe both
                    code, body = http_get(f"http://127.0.0.1:{http_port}{path}")
                    if code != 200:
                        raise Failure(f"GET {path} answered {code}: {body[:500]}")
                r = podman("healthcheck", "run", name, check=False, timeout=30)
                if r.returncode != 0:
                    raise Failure(f"the image's HEALTHCHECK failed ({r.returncode}): {r.stdout} {r.stderr}")
                log("GET /healthz and /readyz 200, `podman healthcheck run`: OK")
            else:
                log("FERRY_CONTAINER_EXPECT_HEALTHZ=0: /healthz, /readyz and the HEALTHCHECK not checked")

            t0 = time.monotonic()
            podman("kill", "--signal", "TERM", name)
            r = podman("wait", name, timeout=STOP_SECONDS + 5, check=False)
            stop = time.monotonic() - t0
            if r.returncode != 0:
                raise Failure(f"`podman wait` failed: {r.stderr.strip()}")
            code = r.stdout.strip().splitlines()[-1] if r.stdout.strip() else "?"
            if code != "0":
                raise Failure(f"ferry exited {code} after SIGTERM, want 0")
            if stop > STOP_SECONDS:
                raise Failure(f"ferry took {stop:.1f} s to exit after SIGTERM (limit {STOP_SECONDS} s)")
            timings.append(f"stop {stop:.1f}s")
            log(f"SIGTERM: exit 0 after {stop:.1f} s")
        except Failure:
            logs = podman("logs", name, check=False).stdout + podman("logs", name, check=False).stderr
            log("container log (tail):\n" + logs[-4000:])
            raise
    timings.append(f"total {time.monotonic() - t_start:.0f}s")
    return timings


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", default=str(HERE.parent.parent), help="repository root (build context)")
    ap.add_argument("--keep-image", action="store_true", help="keep the built image (for poking at it)")
    ap.add_argument("--image", help="test this existing image instead of building one (it is kept)")
    args = ap.parse_args()

    def body():
        if os.geteuid() != 0:
            raise harness.Skip("needs root (rootful podman)")
        JANITOR.keep_image = args.keep_image
        for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(s, on_signal)
        try:
            timings = run(args)
        finally:
            JANITOR.clean()
        return f"image built and run; {', '.join(timings)}"

    return harness.run_test("container", body)


if __name__ == "__main__":
    sys.exit(main())
