#!/usr/bin/env bash
# THE test command for ferry (CI runs exactly this through .ci/run).
#
#   bash scripts/test.sh
#
# Stages, in order (each one's build directory is reused between runs):
#   deps     scripts/install-deps.sh test bench (no-op when everything is installed)
#   release  Release + FERRY_WERROR=ON in build/release (a unity build: files compiled in
#            batches of 16), `ctest -j JOBS` (all labels, including `ops` (deployment files) and
#            `container` (podman builds and runs the image, niced, beside the integration tests,
#            which stay one at a time: see tests/integration/CMakeLists.txt))
#   run      scripts/run.sh's own build (unity, Ninja, no tests, FERRY_BPF=OFF as on a machine
#            with only the `run` packages) in build/run, then `ferry --version`,
#            `--check-config examples/ferry.yaml`, and data_path kernel refused / auto accepted
#            through it: the README's run command keeps compiling and starting
#   asan     Asan (ASan+UBSan, gcc) in build/asan (unity), `ctest -L "$FERRY_ASAN_LABELS" -j JOBS`
#   fuzz     clang Asan + FERRY_FUZZ=ON in build/fuzz (unity), fuzz targets only,
#            `ctest -L fuzz -j JOBS` (each target runs FERRY_FUZZ_SECONDS on one core)
#
# The asan build starts (niced, in the background) while the release stage's tests run, and the
# fuzz build while the asan stage's tests run: those tests leave most of the CPUs idle. Each
# stage's own build then finishes what is left, so its time shows in the previous stage.
#
# Environment knobs:
#   FERRY_TEST_QUICK=1        release stage only (skip asan and fuzz) for local iteration
#   FERRY_TEST_STAGES="..."   explicit stage list, e.g. "release asan" (overrides QUICK)
#   FERRY_ASAN_LABELS=regex   ctest label regex for the asan stage (default: unit|integration)
#   FERRY_FUZZ_SECONDS=N      seconds per fuzz target in the fuzz stage (default 30)
#   FERRY_CTEST_ARGS="..."    extra arguments for every ctest run (e.g. "-R Stun")
#   FERRY_CTEST_TIMEOUT=N     default per-test timeout for tests that set none (default 300)
#   FERRY_BUILD_ROOT=dir      where the build directories go (default: build)
#   FERRY_SHARED_DIR=dir      shared/ with testvectors (default: ../shared)
#   FERRY_SKIP_DEPS=1         don't run install-deps.sh
#   JOBS=N                    build parallelism (default 2)
#
# Exits non-zero if any stage fails; prints a summary at the end. Every process a
# test starts (even a daemonised one) is found through a marker variable in its
# environment and ended when the script exits.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 1

JOBS=${JOBS:-2}
BUILD_ROOT=${FERRY_BUILD_ROOT:-build}
ASAN_LABELS=${FERRY_ASAN_LABELS:-unit|integration}
FUZZ_SECONDS=${FERRY_FUZZ_SECONDS:-30}
CTEST_TIMEOUT=${FERRY_CTEST_TIMEOUT:-300}
read -r -a CTEST_EXTRA <<<"${FERRY_CTEST_ARGS:-}"
SHARED_DIR=${FERRY_SHARED_DIR:-$ROOT/../shared}

if [[ -n ${FERRY_TEST_STAGES:-} ]]; then
  read -r -a STAGES <<<"$FERRY_TEST_STAGES"
elif [[ ${FERRY_TEST_QUICK:-0} == 1 ]]; then
  STAGES=(release)
else
  STAGES=(release run asan fuzz)
fi

CMAKE_COMMON=(-DFERRY_SHARED_DIR="$SHARED_DIR")
# Every stage compiles in batches of 16 files (scripts/run.sh's build does the same): it halves
# the compile time. The price is that a file missing an #include can compile inside its batch.
CMAKE_UNITY=(-DCMAKE_UNITY_BUILD=ON -DCMAKE_UNITY_BUILD_BATCH_SIZE=16)
if command -v ccache >/dev/null 2>&1; then
  CMAKE_COMMON+=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
fi

# Sanitizer behaviour for every test: stop at the first error, with a stack.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:strict_string_checks=1:detect_stack_use_after_return=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

# ---------------------------------------------------------------- bookkeeping
START=$(date +%s)
declare -a SUMMARY=()
FAILED=0

say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
record() { # record STAGE STATUS SECONDS [note]
  SUMMARY+=("$(printf '%-8s %-6s %5ss  %s' "$1" "$2" "$3" "${4:-}")")
  [[ $2 == FAIL ]] && FAILED=1
  return 0
}

# Marker inherited by everything the tests start (ctest, servers, browsers,
# daemonised postgres ...), so leftovers can be found and ended by pid.
FERRY_TEST_RUN_ID="ferry-test-$$-$(date +%s%N)"
export FERRY_TEST_RUN_ID
cleanup_processes() {
  local marker="FERRY_TEST_RUN_ID=$FERRY_TEST_RUN_ID" pids=() p pid
  export -n FERRY_TEST_RUN_ID # the scan's own children must not carry the marker
  for p in /proc/[0-9]*; do
    pid=${p#/proc/}
    [[ $pid == "$$" || $pid == "$BASHPID" ]] && continue
    grep -qzxF "$marker" "$p/environ" 2>/dev/null && pids+=("$pid")
  done
  ((${#pids[@]})) || return 0
  echo "test.sh: ending ${#pids[@]} process(es) left behind by the tests:" >&2
  ps -o pid=,args= -p "$(IFS=,; echo "${pids[*]}")" >&2 || true
  kill -TERM "${pids[@]}" 2>/dev/null || true
  for _ in 1 2 3 4 5 6 7 8 9 10; do
    local alive=()
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive+=("$pid"); done
    ((${#alive[@]})) || return 0
    sleep 0.5
  done
  kill -KILL "${alive[@]}" 2>/dev/null || true
}
trap 'stop_prebuilds; cleanup_processes' EXIT
trap 'echo "test.sh: interrupted" >&2; exit 130' INT TERM

# run_stage NAME FUNCTION: runs FUNCTION, times it, records PASS/FAIL.
run_stage() {
  local name=$1 fn=$2 t0 rc note=""
  say "stage: $name"
  t0=$(date +%s)
  STAGE_NOTE=""
  STAGE_COUNTS=""
  "$fn"
  rc=$?
  note=$STAGE_NOTE
  [[ -n $STAGE_COUNTS ]] && note="$STAGE_COUNTS${note:+; $note}"
  cleanup_processes
  export FERRY_TEST_RUN_ID
  if ((rc == 0)); then
    record "$name" PASS $(($(date +%s) - t0)) "$note"
  elif ((rc == 77)); then
    record "$name" SKIP $(($(date +%s) - t0)) "$note"
  else
    record "$name" FAIL $(($(date +%s) - t0)) "${note:-exit $rc}"
  fi
}

# ctest_run DIR [ctest args...]: ctest with a failure report and a per-test default timeout.
# Adds the run's counts to TOTAL_PASSED/TOTAL_FAILED and the stage note.
TOTAL_PASSED=0
TOTAL_FAILED=0
ctest_run() {
  local dir=$1 log rc counts passed failed total
  shift
  log=$(mktemp)
  ctest --test-dir "$dir" --output-on-failure --timeout "$CTEST_TIMEOUT" \
    --no-tests=error "$@" "${CTEST_EXTRA[@]}" 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  counts=$(sed -nE 's/^[0-9]+% tests passed, ([0-9]+) tests? failed out of ([0-9]+).*/\1 \2/p' "$log" | tail -n1)
  rm -f "$log"
  if [[ -n $counts ]]; then
    read -r failed total <<<"$counts"
    passed=$((total - failed))
    TOTAL_PASSED=$((TOTAL_PASSED + passed))
    TOTAL_FAILED=$((TOTAL_FAILED + failed))
    STAGE_COUNTS="$passed/$total tests passed"
  fi
  return "$rc"
}

# Background builds. While one stage's tests run (mostly waiting on servers and clients), the
# next stage's build compiles niced in the background; that stage then waits for it and runs its
# own `cmake --build`, which finishes whatever is left and is where a compile error is reported.
# The build runs without the test-run marker (cleanup_processes ends marked processes after every
# stage) in a session of its own, which the exit trap ends.
declare -A PREBUILD_PID=()
has_stage() { [[ " ${STAGES[*]} " == *" $1 "* ]]; }
prebuild() { # prebuild NAME DIR [cmake --build args...]
  local name=$1 dir=$2
  shift 2
  env -u FERRY_TEST_RUN_ID setsid nice -n 19 cmake --build "$dir" -j "$JOBS" "$@" >"$dir/prebuild.log" 2>&1 &
  PREBUILD_PID[$name]=$!
  echo "test.sh: building $dir in the background (niced; log: $dir/prebuild.log)"
}
await_prebuild() { # await_prebuild NAME: its status does not matter, the stage's own build decides
  local pid=${PREBUILD_PID[$1]:-}
  [[ -n $pid ]] || return 0
  wait "$pid" 2>/dev/null
  unset "PREBUILD_PID[$1]"
}
stop_prebuilds() {
  local pid
  for pid in "${PREBUILD_PID[@]}"; do kill -TERM -- "-$pid" 2>/dev/null; done
  return 0
}

# ---------------------------------------------------------------- stages
stage_deps() {
  if [[ ${FERRY_SKIP_DEPS:-0} == 1 ]]; then
    STAGE_NOTE="FERRY_SKIP_DEPS=1"
    return 77
  fi
  bash "$ROOT/scripts/install-deps.sh" test bench || return 1
  # The browser test drives Debian's chromium with npm's playwright-core (no browser download).
  (cd "$ROOT/tests/browser" && npm ci --no-audit --no-fund --loglevel=error) || { STAGE_NOTE="npm ci failed"; return 1; }
  # The deployment-file checks (ctest -L ops) validate with npm's kubernetes-models, yaml, dockerfile-utils.
  (cd "$ROOT/tests/ops" && npm ci --no-audit --no-fund --loglevel=error) || { STAGE_NOTE="npm ci (tests/ops) failed"; return 1; }
}

stage_release() {
  local dir=$BUILD_ROOT/release
  cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Release -DFERRY_WERROR=ON -DFERRY_TESTS=ON \
    "${CMAKE_COMMON[@]}" "${CMAKE_UNITY[@]}" || { STAGE_NOTE="configure failed"; return 1; }
  cmake --build "$dir" -j "$JOBS" || { STAGE_NOTE="build failed"; return 1; }
  # The integration tests mostly wait (about 40% of two CPUs busy): the asan build uses the rest.
  has_stage asan && configure_asan >/dev/null && prebuild asan "$BUILD_ROOT/asan"
  ctest_run "$dir" -j "$JOBS" || { STAGE_NOTE="tests failed"; return 1; }
}

stage_run() {
  # FERRY_BPF=OFF: on a fresh machine the README's run command installs only the `run` group,
  # which has no libbpf, so this is the build it makes (the release stage covers the other).
  local run=(env FERRY_SKIP_DEPS=1 FERRY_BUILD_ROOT="$BUILD_ROOT" JOBS="$JOBS" FERRY_BPF=OFF
    bash "$ROOT/scripts/run.sh") out
  "${run[@]}" --version || { STAGE_NOTE="scripts/run.sh --version failed"; return 1; }
  "${run[@]}" --check-config "$ROOT/examples/ferry.yaml" >/dev/null ||
    { STAGE_NOTE="scripts/run.sh --check-config examples/ferry.yaml failed"; return 1; }
  # Without the kernel fast path, data_path kernel is refused naming the key, and auto is accepted.
  out=$(FERRY_DATA_PATH=kernel "${run[@]}" --check-config "$ROOT/examples/ferry.yaml" 2>&1) &&
    { STAGE_NOTE="data_path kernel was accepted by a FERRY_BPF=OFF build"; return 1; }
  grep -q "data_path" <<<"$out" ||
    { STAGE_NOTE="data_path kernel refused without naming the key: $out"; return 1; }
  FERRY_DATA_PATH=auto "${run[@]}" --check-config "$ROOT/examples/ferry.yaml" >/dev/null ||
    { STAGE_NOTE="data_path auto refused by a FERRY_BPF=OFF build"; return 1; }
  STAGE_NOTE="$BUILD_ROOT/run/server/ferry (FERRY_BPF=OFF)"
}

configure_asan() {
  cmake -S . -B "$BUILD_ROOT/asan" -DCMAKE_BUILD_TYPE=Asan -DFERRY_WERROR=OFF -DFERRY_TESTS=ON \
    "${CMAKE_COMMON[@]}" "${CMAKE_UNITY[@]}"
}

stage_asan() {
  local dir=$BUILD_ROOT/asan
  await_prebuild asan
  configure_asan || { STAGE_NOTE="configure failed"; return 1; }
  cmake --build "$dir" -j "$JOBS" || { STAGE_NOTE="build failed"; return 1; }
  has_stage fuzz && configure_fuzz >/dev/null && prebuild fuzz "$BUILD_ROOT/fuzz" --target ferry_fuzz_targets
  STAGE_NOTE="labels: $ASAN_LABELS"
  ctest_run "$dir" -L "$ASAN_LABELS" -j "$JOBS" || { STAGE_NOTE="tests failed (labels: $ASAN_LABELS)"; return 1; }
}

configure_fuzz() {
  CC=clang CXX=clang++ cmake -S . -B "$BUILD_ROOT/fuzz" -DCMAKE_BUILD_TYPE=Asan -DFERRY_FUZZ=ON \
    -DFERRY_WERROR=OFF -DFERRY_TESTS=ON -DFERRY_FUZZ_SECONDS="$FUZZ_SECONDS" \
    "${CMAKE_COMMON[@]}" "${CMAKE_UNITY[@]}"
}

stage_fuzz() {
  local dir=$BUILD_ROOT/fuzz
  if ! compgen -G "$ROOT/tests/fuzz/fuzz_*.cpp" >/dev/null; then
    STAGE_NOTE="no tests/fuzz/fuzz_*.cpp targets yet"
    return 77
  fi
  if ! command -v clang++ >/dev/null 2>&1; then
    STAGE_NOTE="clang++ not found"
    return 1
  fi
  await_prebuild fuzz
  configure_fuzz || { STAGE_NOTE="configure failed"; return 1; }
  # Only the fuzz targets (and the libraries they link): the gcc stages already
  # build and run everything else.
  cmake --build "$dir" -j "$JOBS" --target ferry_fuzz_targets || { STAGE_NOTE="build failed"; return 1; }
  STAGE_NOTE="${FUZZ_SECONDS}s per target"
  ctest_run "$dir" -L fuzz -j "$JOBS" || { STAGE_NOTE="fuzzing found a failure (see $dir/tests/fuzz/artifacts)"; return 1; }
}

# ---------------------------------------------------------------- main
if [[ ! -d $SHARED_DIR/testvectors ]]; then
  echo "test.sh: warning: $SHARED_DIR/testvectors not found; tests that read test vectors will fail" >&2
fi

run_stage deps stage_deps
if [[ $FAILED == 1 ]]; then
  echo "test.sh: dependency installation failed; not building" >&2
else
  for s in "${STAGES[@]}"; do
    case $s in
      release | run | asan | fuzz) run_stage "$s" "stage_$s" ;;
      *) echo "test.sh: unknown stage '$s'" >&2; record "$s" FAIL 0 "unknown stage" ;;
    esac
  done
fi

say "summary ($(($(date +%s) - START))s total)"
for line in "${SUMMARY[@]}"; do echo "  $line"; done
if [[ ${FERRY_TEST_QUICK:-0} == 1 && -z ${FERRY_TEST_STAGES:-} ]]; then
  echo "  (FERRY_TEST_QUICK=1: asan and fuzz stages skipped)"
fi
if ((FAILED)); then
  echo "RESULT: FAIL"
else
  echo "RESULT: PASS"
fi
# Last line, in the plain form CI reads.
echo "tests: $TOTAL_PASSED passed, $TOTAL_FAILED failed"
exit "$FAILED"
