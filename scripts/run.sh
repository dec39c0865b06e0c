#!/usr/bin/env bash
# THE run command: installs the `run` dependency group (toolchain and the -dev libraries, no
# test tools), builds only the Release `ferry` binary (no tests, no -Werror) into build/run and
# runs it. Arguments are passed to ferry; with none it serves
# its embedded default configuration (STUN/TURN on 3478 udp+tcp, no database).
#
#   bash scripts/run.sh                      # embedded default config
#   bash scripts/run.sh --config ferry.yaml  # your own config
#
# Environment: FERRY_SKIP_DEPS=1 skips install-deps.sh, JOBS=N (default 2),
# FERRY_BUILD_ROOT=dir (default build; the build directory is <root>/run), FERRY_BPF=AUTO|ON|OFF
# (the kernel fast path; AUTO builds it when libbpf-dev, clang and bpftool are installed, which
# the `run` group does not install).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
BUILD_DIR=${FERRY_BUILD_ROOT:-build}/run

if [[ ${FERRY_SKIP_DEPS:-0} != 1 ]]; then
  bash scripts/install-deps.sh run
fi

LAUNCHER=()
if command -v ccache >/dev/null 2>&1; then
  LAUNCHER=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
fi

# Its own build directory: no tests (so neither GoogleTest nor shared/ is needed) and no -Werror
# (a newer compiler's new warning must not stop a first run). scripts/test.sh builds build/release.
#
# A first build is most of a first run's time, so this one is made fast: a unity build (16
# sources per compiler run: the standard, spdlog, fmt and libuv headers are parsed once per
# batch, not once per file; about half the CPU time) with Ninja, which compiles a library's
# objects while the libraries below it still link (Make would run the layers one after another,
# with one core idle behind each big batch). The code and -O3 are those of the tested build;
# test.sh's `run` stage builds this configuration so it keeps compiling.
GENERATOR=()
if [[ ! -f $BUILD_DIR/CMakeCache.txt ]] && command -v ninja >/dev/null 2>&1; then
  GENERATOR=(-G Ninja) # an existing build directory keeps the generator it was made with
fi
cmake -S . -B "$BUILD_DIR" "${GENERATOR[@]}" -DCMAKE_BUILD_TYPE=Release -DFERRY_WERROR=OFF -DFERRY_BPF="${FERRY_BPF:-AUTO}" \
  -DFERRY_TESTS=OFF -DCMAKE_UNITY_BUILD=ON -DCMAKE_UNITY_BUILD_BATCH_SIZE=16 "${LAUNCHER[@]}" >&2
cmake --build "$BUILD_DIR" -j "${JOBS:-2}" --target ferry >&2

# The binary is server/ferry in the build tree (or ferry, if a runtime output
# directory is ever set); take whichever the build just wrote.
bin=""
for c in "$BUILD_DIR/server/ferry" "$BUILD_DIR/ferry"; do
  if [[ -x $c && ( -z $bin || $c -nt $bin ) ]]; then bin=$c; fi
done
[[ -n $bin ]] || { echo "run.sh: ferry binary not found under $BUILD_DIR" >&2; exit 1; }
exec "$bin" "$@"
