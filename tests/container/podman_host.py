#!/usr/bin/python3
"""Prepares this Debian host for the container test: podman defaults and a local base image.

Standard library only (Debian's /usr/bin/python3). Idempotent; run as root.

  /usr/bin/python3 tests/container/podman_host.py     # what test_container.py does first

* Writes /etc/containers/containers.conf.d/ferry-test.conf: the runc runtime (crun fails on this
  host's mix of cgroup v1 hierarchies) and default ulimits that root may actually set here
  (podman's defaults ask for more than the host's hard limits allow).
* Makes docker.io/library/debian:bookworm-slim locally when podman does not have it: there is no
  reachable image registry, so the Dockerfile's unchanged `FROM debian:bookworm-slim` must resolve
  to a local image. mmdebstrap builds a minbase bookworm from the same Debian mirror apt uses
  (read from /etc/apt/sources.list*), trimmed like the official slim image (no man pages, docs,
  locales or apt caches, merged /usr without perl), and `podman import` stores it under the official name.
"""

from __future__ import annotations

import glob
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BASE_IMAGE = "docker.io/library/debian:bookworm-slim"
SUITE = "bookworm"
DROP_IN = Path("/etc/containers/containers.conf.d/ferry-test.conf")
DROP_IN_TEXT = """\
# Written by ferry's tests/container/podman_host.py (the container test); safe to delete.
[containers]
# podman's default nofile/nproc ulimits exceed what root may set on these hosts.
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

[engine]
# crun fails on this host's mixed cgroup hierarchies; runc works.
runtime = "runc"
"""
FALLBACK_MIRROR = "http://deb.debian.org/debian"

# Trim the base like Docker's debian:*-slim (its dpkg.cfg.d excludes); later apt-get installs in
# the image follow the same rules because mmdebstrap keeps them in /etc/dpkg/dpkg.cfg.d.
SLIM_DPKG_OPTS = [
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/info/*",
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
    "path-exclude=/usr/share/locale/*",
    "path-exclude=/usr/share/lintian/*",
]
# ... and its apt settings (docker-clean, docker-no-languages, docker-gzip-indexes): no package
# caches or downloaded .debs left in image layers, no translation indexes, compressed lists.
SLIM_APT_OPTS = [
    'Dir::Cache::pkgcache ""',
    'Dir::Cache::srcpkgcache ""',
    'DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; }',
    'APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; }',
    'Acquire::Languages "none"',
    'Acquire::GzipIndexes "true"',
]


def log(msg: str) -> None:
    print(f"[podman-host {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def write_drop_in() -> None:
    if DROP_IN.exists() and DROP_IN.read_text() == DROP_IN_TEXT:
        return
    DROP_IN.parent.mkdir(parents=True, exist_ok=True)
    tmp = DROP_IN.with_suffix(".tmp")
    tmp.write_text(DROP_IN_TEXT)
    tmp.replace(DROP_IN)
    log(f"wrote {DROP_IN}")


def _debian_uri(uri: str) -> bool:
    # Debian's own archives: .../debian and .../debian-security (any mirror host), not third-party repos.
    return re.search(r"/debian(-security)?/?$", uri) is not None


def debian_sources() -> list[str]:
    """One-line `deb URI SUITE COMPONENTS` entries for Debian's archives that apt uses here."""
    entries: list[tuple[str, str, str]] = []
    for path in ["/etc/apt/sources.list", *sorted(glob.glob("/etc/apt/sources.list.d/*.list"))]:
        try:
            lines = Path(path).read_text().splitlines()
        except OSError:
            continue
        for line in lines:
            line = re.sub(r"\[[^]]*\]", " ", line.split("#", 1)[0]).split()
            if len(line) >= 4 and line[0] == "deb":
                entries.append((line[1], line[2], " ".join(line[3:])))
    for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
        try:
            text = Path(path).read_text()
        except OSError:
            continue
        for stanza in re.split(r"\n\s*\n", text):
            fields: dict[str, str] = {}
            for line in stanza.splitlines():
                if line.startswith("#") or ":" not in line or line[:1].isspace():
                    continue
                key, value = line.split(":", 1)
                fields[key.strip().lower()] = value.strip()
            if "deb" not in fields.get("types", "").split() or fields.get("enabled", "yes").lower() == "no":
                continue
            for uri in fields.get("uris", "").split():
                for suite in fields.get("suites", "").split():
                    entries.append((uri, suite, fields.get("components", "main")))
    out = []
    for uri, suite, components in entries:
        if _debian_uri(uri) and suite.split("-")[0] == SUITE and "main" in components.split():
            line = f"deb {uri} {suite} main"
            if line not in out:
                out.append(line)
    if not any(f" {SUITE} " in line for line in out):
        out.insert(0, f"deb {FALLBACK_MIRROR} {SUITE} main")
    return out


def have_image(name: str) -> bool:
    return subprocess.run(["podman", "image", "exists", name], stdin=subprocess.DEVNULL).returncode == 0


def build_base_image(timeout: float = 900) -> None:
    sources = debian_sources()
    log("building " + BASE_IMAGE + " with mmdebstrap from: " + "; ".join(sources))
    t0 = time.monotonic()
    cmd = ["mmdebstrap", "--variant=minbase", "--format=tar", "--quiet"]
    # Merged /usr through directory symlinks, as debootstrap and the official image do, instead of
    # mmdebstrap's default of installing the usrmerge package (which drags in all of perl).
    cmd += ["--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr"]
    cmd += [f"--dpkgopt={o}" for o in SLIM_DPKG_OPTS]
    cmd += [f"--aptopt={o}" for o in SLIM_APT_OPTS]
    cmd += [SUITE, "-", *sources]
    # stdin is closed: with no terminal mmdebstrap would otherwise also read sources from it.
    # Its chatter (apt, hooks) goes to a temp file, shown only when something fails.
    with tempfile.TemporaryFile() as mm_log:
        mm = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=mm_log)
        try:
            imp = subprocess.run(
                ["podman", "import", "--quiet", "--change", 'CMD ["bash"]', "-", BASE_IMAGE],
                stdin=mm.stdout, stdout=subprocess.DEVNULL, timeout=timeout)
            mm.stdout.close()
            rc = mm.wait(timeout=60)
        except BaseException:
            mm.kill()
            mm.wait()
            raise
        if rc != 0 or imp.returncode != 0:
            mm_log.seek(0)
            sys.stderr.write(mm_log.read()[-8000:].decode(errors="replace"))
            if have_image(BASE_IMAGE):
                subprocess.run(["podman", "rmi", "-f", BASE_IMAGE], stdin=subprocess.DEVNULL)
            raise RuntimeError(f"base image build failed (mmdebstrap exit {rc}, podman import exit {imp.returncode})")
    log(f"built {BASE_IMAGE} in {time.monotonic() - t0:.0f} s")


def prepare(rebuild_base: bool = False) -> None:
    if os.geteuid() != 0:
        raise RuntimeError("the container test needs root (rootful podman)")
    for tool in ("podman", "runc", "mmdebstrap"):
        if subprocess.run(["sh", "-c", f"command -v {tool}"], stdout=subprocess.DEVNULL).returncode != 0:
            raise RuntimeError(f"{tool} not found: run scripts/install-deps.sh")
    write_drop_in()
    if rebuild_base and have_image(BASE_IMAGE):
        subprocess.run(["podman", "rmi", "-f", BASE_IMAGE], check=True, stdin=subprocess.DEVNULL)
    if have_image(BASE_IMAGE):
        log(f"{BASE_IMAGE} is present; reusing it")
    else:
        build_base_image()


if __name__ == "__main__":
    prepare(rebuild_base="--rebuild-base" in sys.argv[1:])
