#!/bin/bash
# Prints the Debian packages that hold the shared libraries the given binaries link, one per
# line, so the runtime image installs exactly those (Dockerfile, build stage).
#   container/runtime-packages.sh BINARY...
# Fails when ldd cannot find a library or no package holds one.
set -euo pipefail

ldd_out=$(ldd "$@")
if grep -q 'not found' <<<"$ldd_out"; then
  echo "runtime-packages: missing libraries:" >&2
  grep 'not found' <<<"$ldd_out" >&2
  exit 1
fi

packages=()
for lib in $(awk '$2 == "=>" && $3 ~ /^\// { print $3 }' <<<"$ldd_out" | sort -u); do
  pkg=""
  # bookworm is half-way through the /usr merge: dpkg knows a library under whichever of
  # /lib/... or /usr/lib/... its package ships, and ldd may print the other.
  for path in "$lib" "$(readlink -f "$lib")" "/usr$lib" "${lib#/usr}"; do
    pkg=$(dpkg-query -S "$path" 2>/dev/null | grep -v '^diversion' | head -n1 | cut -d: -f1 || true)
    [[ -n $pkg ]] && break
  done
  if [[ -z $pkg ]]; then
    echo "runtime-packages: no package holds $lib" >&2
    exit 1
  fi
  packages+=("$pkg")
done
printf '%s\n' "${packages[@]}" | sort -u
