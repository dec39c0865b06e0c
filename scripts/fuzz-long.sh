#!/usr/bin/env bash
# Fuzz one target for longer than the ctest run does, with a corpus that persists
# between runs.
#
#   bash scripts/fuzz-long.sh TARGET [SECONDS] [-- extra libFuzzer flags]
#   bash scripts/fuzz-long.sh fuzz_stun_parse 3600
#   bash scripts/fuzz-long.sh --list
#
# TARGET is the name of a tests/fuzz/fuzz_*.cpp file without .cpp. SECONDS
# defaults to 600. Builds the clang ASan+UBSan fuzz configuration in build/fuzz
# (the same one scripts/test.sh uses), then runs the fuzzer over
# build/fuzz-long/corpus/TARGET, seeded from ../shared/testvectors/fuzz_corpus and
# tests/fuzz/corpus/TARGET. Crashes land in build/fuzz-long/artifacts/TARGET/.
#
# Environment:
#   FERRY_FUZZ_MERGE=1   afterwards, merge the inputs that add coverage into
#                        tests/fuzz/corpus/TARGET/ (minimised; commit them as seeds)
#   FERRY_FUZZ_JOBS=N    run N fuzzer processes in parallel (-fork=N; default 1)
#   JOBS=N               build parallelism (default 2)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
BUILD_ROOT=${FERRY_BUILD_ROOT:-build}
BUILD_DIR=$BUILD_ROOT/fuzz
OUT=$BUILD_ROOT/fuzz-long
SHARED_DIR=${FERRY_SHARED_DIR:-$ROOT/../shared}

usage() { sed -n '2,22p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }
targets() { for f in tests/fuzz/fuzz_*.cpp; do [[ -e $f ]] && basename "$f" .cpp; done; }

[[ $# -ge 1 ]] || usage 2
case $1 in
  -h | --help) usage 0 ;;
  --list) targets; exit 0 ;;
esac
TARGET=$1
shift
SECONDS_TO_RUN=600
if [[ $# -ge 1 && $1 != -- ]]; then SECONDS_TO_RUN=$1; shift; fi
[[ ${1:-} == -- ]] && shift
EXTRA=("$@")

if [[ ! -f tests/fuzz/$TARGET.cpp ]]; then
  echo "fuzz-long.sh: no tests/fuzz/$TARGET.cpp; targets are:" >&2
  targets >&2
  exit 2
fi

CC=clang CXX=clang++ cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Asan -DFERRY_FUZZ=ON \
  -DFERRY_WERROR=OFF -DFERRY_TESTS=ON -DFERRY_SHARED_DIR="$SHARED_DIR" >/dev/null
cmake --build "$BUILD_DIR" -j "${JOBS:-2}" --target "$TARGET"

corpus=$OUT/corpus/$TARGET
artifacts=$OUT/artifacts/$TARGET
mkdir -p "$corpus" "$artifacts"
# Seeds are (re)copied every run; the corpus keeps what earlier runs found.
for d in "$SHARED_DIR/testvectors/fuzz_corpus" "tests/fuzz/corpus/$TARGET"; do
  [[ -d $d ]] || continue
  find "$d" -maxdepth 1 -type f ! -name '*.json' ! -name '*.md' ! -name '.*' -exec cp -f {} "$corpus/" \;
done

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

fork=()
if [[ ${FERRY_FUZZ_JOBS:-1} -gt 1 ]]; then fork=(-fork="$FERRY_FUZZ_JOBS" -ignore_crashes=0); fi

echo "fuzz-long.sh: $TARGET for ${SECONDS_TO_RUN}s, corpus $corpus ($(find "$corpus" -type f | wc -l) inputs)"
rc=0
"$BUILD_DIR/tests/fuzz/$TARGET" -max_total_time="$SECONDS_TO_RUN" -timeout=5 -rss_limit_mb=2048 \
  -print_final_stats=1 -artifact_prefix="$artifacts/" "${fork[@]}" "${EXTRA[@]}" "$corpus" || rc=$?

if [[ ${FERRY_FUZZ_MERGE:-0} == 1 ]]; then
  mkdir -p "tests/fuzz/corpus/$TARGET"
  echo "fuzz-long.sh: merging new coverage into tests/fuzz/corpus/$TARGET"
  "$BUILD_DIR/tests/fuzz/$TARGET" -merge=1 "tests/fuzz/corpus/$TARGET" "$corpus"
fi

if ((rc != 0)); then
  echo "fuzz-long.sh: $TARGET failed (exit $rc); reproducers in $artifacts:" >&2
  ls -1 "$artifacts" >&2 || true
  echo "re-run one with: $BUILD_DIR/tests/fuzz/$TARGET $artifacts/<file>" >&2
fi
exit "$rc"
