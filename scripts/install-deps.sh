#!/usr/bin/env bash
# Installs the Debian 12 (bookworm) packages ferry needs, by group:
#
#   bash scripts/install-deps.sh            # = run
#   bash scripts/install-deps.sh run        # build and run the `ferry` binary (scripts/run.sh)
#   bash scripts/install-deps.sh test       # everything scripts/test.sh needs (includes run)
#   bash scripts/install-deps.sh bench      # bench/: load generator and bench/compare (includes run)
#   bash scripts/install-deps.sh test bench # several groups at once
#
# Groups:
#   run    toolchain (build-essential, cmake, ninja-build, pkg-config) and the -dev libraries ferry, ferryctl
#          and the benchmark/example tools link (the top CMakeLists.txt's find_package lines)
#   test   run + GoogleTest, clang (fuzz stage), clang-format (lint.format), coturn (reference server and turnutils_* clients),
#          haproxy (PROXY protocol test), python3-cryptography (OAuth test), postgresql, chromium and node/npm (browser and deployment-file tests), podman, runc and
#          mmdebstrap (container test), prometheus (promtool), openssl, iproute2, procps, git, and the kernel
#          fast path's build and test (libbpf-dev, bpftool, libelf-dev, zlib1g-dev, ethtool); without them
#          ferry builds without data_path: kernel
#   bench  run + coturn and Go with Pion's TURN sources (bench/compare drives both with the same
#          load as ferry), valgrind (bench/instructions counts instructions per packet)
#
# With no argument it installs `run` only: the lean set a first run needs. scripts/test.sh
# asks for `test bench` itself.
#
# Run as root, or with sudo available. Idempotent: when every package of the asked groups is
# installed it returns at once without calling apt-get.
#
# It never stops or disables a system service. While it installs, a temporary policy-rc.d keeps
# the packages' maintainer scripts from starting coturn/postgresql/prometheus/haproxy (the tests start
# their own instances on their own ports); a service that got started anyway during this install
# (one that was not running before) is stopped again, and nothing else is touched.
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive

log() { printf '[install-deps] %s\n' "$*" >&2; }

RUN_PACKAGES=(
  # toolchain
  build-essential cmake ninja-build pkg-config ca-certificates
  # libraries
  libuv1-dev libssl-dev libpq-dev prometheus-cpp-dev
  libyaml-cpp-dev libcli11-dev libspdlog-dev nlohmann-json3-dev libcpp-httplib-dev
)

TEST_PACKAGES=(
  # unit tests and the fuzz stage (clang with libFuzzer and the sanitizer runtimes)
  libgtest-dev libgmock-dev clang libclang-rt-14-dev clang-format git
  # peers and tools used by the integration/browser tests
  coturn postgresql chromium iproute2 openssl procps
  # haproxy: sends PROXY protocol v1/v2 headers in front of ferry (tests/integration/test_proxy_protocol.py)
  haproxy
  # python3-cryptography: seals RFC 7635 access tokens independently of ferry (tests/integration/test_oauth.py)
  python3-cryptography
  # the container test (tests/container): rootful podman with runc, a locally built base image
  podman runc mmdebstrap
  # promtool, for checking the Prometheus config in examples/ (and metrics)
  prometheus
  # the kernel fast path (data_path: kernel, server/fastpath/): libbpf and its headers, bpftool
  # (skeleton generation, map dumps in tests), libelf/zlib (libbpf's link deps), clang above for
  # -target bpf; ethtool turns veth checksum offload off in tests/integration/test_kernel_fastpath.py
  libbpf-dev bpftool libelf-dev zlib1g-dev ethtool
)

BENCH_PACKAGES=(
  # bench/compare runs coturn's turnserver next to ferry
  coturn procps
  # and Pion's TURN server (bench/pion/main.go, built offline in GOPATH mode against Debian's sources)
  golang-go golang-github-pion-turn.v2-dev
  # bench/instructions counts ferry's instructions per packet under callgrind
  valgrind
)

usage() {
  sed -n '2,9p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
}

groups=("$@")
((${#groups[@]})) || groups=(run)

PACKAGES=("${RUN_PACKAGES[@]}")
want_node=0
for g in "${groups[@]}"; do
  case $g in
    run) ;;
    test) PACKAGES+=("${TEST_PACKAGES[@]}"); want_node=1 ;;
    bench) PACKAGES+=("${BENCH_PACKAGES[@]}") ;;
    -h | --help) usage; exit 0 ;;
    *) log "error: unknown group '$g' (groups: run test bench)"; usage; exit 2 ;;
  esac
done

# Node.js (test group): a `node` already on PATH (e.g. NodeSource's build, which ships its
# own npm) wins; Debian's nodejs/npm would conflict with it.
if ((want_node)); then
  if command -v node >/dev/null 2>&1; then
    if ! command -v npm >/dev/null 2>&1; then
      log "warning: node is on PATH ($(command -v node)) but npm is not; not installing Debian's npm over it"
    fi
  else
    PACKAGES+=(nodejs npm)
  fi
fi

# Unique, in order.
declare -A seen=()
unique=()
for p in "${PACKAGES[@]}"; do
  [[ -n ${seen[$p]:-} ]] && continue
  seen[$p]=1
  unique+=("$p")
done
PACKAGES=("${unique[@]}")

is_installed() {
  [[ "$(dpkg-query -W -f='${db:Status-Abbrev}' "$1" 2>/dev/null)" == ii* ]]
}

missing=()
for p in "${PACKAGES[@]}"; do
  is_installed "$p" || missing+=("$p")
done

if ((${#missing[@]} == 0)); then
  log "all ${#PACKAGES[@]} packages of group(s) ${groups[*]} already installed"
  exit 0
fi

log "group(s) ${groups[*]}: missing ${missing[*]}"

SUDO=()
if [[ $(id -u) -ne 0 ]]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo -E)
  else
    log "error: not root and no sudo; install these packages by hand: ${missing[*]}"
    exit 1
  fi
fi

# Keep maintainer scripts from starting coturn/postgresql/prometheus during this install: a
# temporary policy-rc.d that denies service starts, unless the system already has one.
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

# Which of the services we may install are running before we start: those are someone else's
# and stay exactly as they are.
SERVICES=(coturn postgresql prometheus haproxy)
svc_running() {
  case $1 in
    coturn) pgrep -x turnserver >/dev/null 2>&1 ;;
    postgresql) pgrep -x postgres >/dev/null 2>&1 ;;
    prometheus) pgrep -x prometheus >/dev/null 2>&1 ;;
    haproxy) pgrep -x haproxy >/dev/null 2>&1 ;;
  esac
}
declare -A was_running=()
for s in "${SERVICES[@]}"; do
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

# Only a service that this install started (not running before, running now, its package just
# installed by us) is stopped again; nothing is disabled.
for s in "${SERVICES[@]}"; do
  [[ " ${missing[*]} " == *" $s "* ]] || continue
  if ((was_running[$s] == 0)) && svc_running "$s"; then
    log "stopping the $s service its package just started"
    if command -v service >/dev/null 2>&1; then
      "${SUDO[@]}" service "$s" stop || true
    elif command -v systemctl >/dev/null 2>&1; then
      "${SUDO[@]}" systemctl stop "$s" || true
    fi
  fi
done

log "done"
