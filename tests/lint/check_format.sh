#!/usr/bin/env bash
# Fails when a C++ source file differs from what .clang-format makes of it.
# Fix with: git ls-files '*.h' '*.cpp' | xargs clang-format -i
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
command -v clang-format >/dev/null || { echo "clang-format not installed (scripts/install-deps.sh test)"; exit 1; }
mapfile -t files < <(find base stun turn auth db server client tools bench examples tests \
  \( -name node_modules -o -name build \) -prune -o \( -name '*.h' -o -name '*.cpp' \) -print | sort)
if ! clang-format --dry-run --Werror "${files[@]}" 2>/tmp/ferry-format.$$; then
  grep -E '^[^ ].*: (error|warning):' /tmp/ferry-format.$$ | cut -d: -f1 | sort -u | sed 's/^/not formatted: /'
  rm -f /tmp/ferry-format.$$
  echo "format: run  git ls-files '*.h' '*.cpp' | xargs clang-format -i"
  exit 1
fi
rm -f /tmp/ferry-format.$$
echo "format: ${#files[@]} files follow .clang-format"
