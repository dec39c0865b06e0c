#!/usr/bin/env bash
# Installs everything ferry needs to build, test and run on Debian 12 (bookworm).
#
#   bash scripts/install-deps.sh          # as root (or with sudo available)
#
# Idempotent: when every package is already installed it touches nothing and
# returns at once (no apt-get at all), so test.sh/run.sh call it on every run.
# It never leaves a coturn, PostgreSQL or Prometheus service running that it started.
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive

log() { printf '[install-deps] %s\n' "$*" >&2; }

PACKAGES=(
  # toolchain
  build-essential cmake pkg-config git ca-certificates clang libclang-rt-14-dev
  # libraries
  libuv1-dev libssl-dev libpq-dev prometheus-cpp-dev libgtest-dev libgmock-dev
  libyaml-cpp-dev libcli11-dev libspdlog-dev nlohmann-json3-dev libcpp-httplib-dev
  # peers and tools used by the integration/browser tests
  coturn postgresql chromium iproute2 openssl procps
  # the container test (tests/container): rootful podman with runc, a locally built base image
  podman runc mmdebstrap
  # promtool, for checking the Prometheus config in examples/ (and metrics)
  prometheus
)

# Node.js: a `node` already on PATH (e.g. NodeSource's build, which ships its
# own npm) wins; Debian's nodejs/npm would conflict with it.
if command -v node >/dev/null 2>&1; then
  if ! command -v npm >/dev/null 2>&1; then
    log "warning: node is on PATH ($(command -v node)) but npm is not; not installing Debian's npm over it"
  fi
else
  PACKAGES+=(nodejs npm)
fi

is_installed() {
  [[ "$(dpkg-query -W -f='${db:Status-Abbrev}' "$1" 2>/dev/null)" == ii* ]]
}

missing=()
for p in "${PACKAGES[@]}"; do
  is_installed "$p" || missing+=("$p")
done

if ((${#missing[@]} == 0)); then
  log "all ${#PACKAGES[@]} packages already installed"
  exit 0
fi

log "missing: ${missing[*]}"

SUDO=()
if [[ $(id -u) -ne 0 ]]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo -E)
  else
    log "error: not root and no sudo; install these packages by hand: ${missing[*]}"
    exit 1
  fi
fi

# Keep maintainer scripts from starting coturn/postgresql/prometheus: install a temporary
# policy-rc.d that denies service starts, unless the system already has one.
policy=/usr/sbin/policy-rc.d
own_policy=0
if [[ ! -e $policy ]]; then
  "${SUDO[@]}" sh -c "printf '#!/bin/sh\nexit 101\n' > $policy && chmod 755 $policy"
  own_policy=1
fi
remove_policy() {
  if ((own_policy)); then "${SUDO[@]}" rm -f "$policy"; fi
}
trap remove_policy EXIT

# Services running before we install anything are someone else's: leave them be.
svc_running() {
  case $1 in
    coturn) pgrep -x turnserver >/dev/null 2>&1 ;;
    postgresql) pgrep -x postgres >/dev/null 2>&1 ;;
    prometheus) pgrep -x prometheus >/dev/null 2>&1 ;;
  esac
}
declare -A was_running=()
for s in coturn postgresql prometheus; do
  if svc_running "$s"; then was_running[$s]=1; else was_running[$s]=0; fi
done

lists_present() {
  compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null
}

apt_install() {
  "${SUDO[@]}" apt-get install -y --no-install-recommends "$@"
}

# apt-get update only when there are no package lists, or when installing from
# the current (possibly stale) lists fails.
if ! lists_present; then
  log "no apt package lists; running apt-get update"
  "${SUDO[@]}" apt-get update
fi
if ! apt_install "${missing[@]}"; then
  log "install failed; refreshing package lists and retrying"
  "${SUDO[@]}" apt-get update
  apt_install "${missing[@]}"
fi

# If a service got started anyway (no policy-rc.d honoured, systemd, ...), stop it.
for s in coturn postgresql prometheus; do
  if ((was_running[$s] == 0)) && svc_running "$s"; then
    log "stopping the $s service the package started"
    if command -v service >/dev/null 2>&1; then
      "${SUDO[@]}" service "$s" stop || true
    elif command -v systemctl >/dev/null 2>&1; then
      "${SUDO[@]}" systemctl stop "$s" || true
    fi
    if [[ $s == postgresql ]] && command -v pg_lsclusters >/dev/null 2>&1; then
      pg_lsclusters --no-header 2>/dev/null | while read -r ver name _port status _rest; do
        if [[ $status == online ]]; then "${SUDO[@]}" pg_ctlcluster "$ver" "$name" stop || true; fi
      done
    fi
  fi
done
# Don't let systemd (when there is one) start them at boot either.
if command -v systemctl >/dev/null 2>&1 && [[ -d /run/systemd/system ]]; then
  "${SUDO[@]}" systemctl disable coturn postgresql prometheus >/dev/null 2>&1 || true
fi

log "done"
