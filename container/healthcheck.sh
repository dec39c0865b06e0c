#!/bin/bash
# The image's HEALTHCHECK: GET /healthz on ferry's HTTP listener with bash's /dev/tcp (the image
# has no curl). Exit 0 healthy, 1 not.
#
# Address, first found: FERRY_HEALTHCHECK_ADDRESS (IP:PORT); http.address of the effective config
# (ferry --check-config "$FERRY_CONFIG", so the mounted file and FERRY_* variables count); the
# default 127.0.0.1:9641. A wildcard address is probed on loopback. Flags given to the container
# are not visible here: set FERRY_HEALTHCHECK_ADDRESS when --http-address is one of them.
set -uo pipefail

addr=${FERRY_HEALTHCHECK_ADDRESS:-}
if [[ -z $addr && -n ${FERRY_CONFIG:-} ]]; then
  # The dump is YAML: "http:" then "  address: VALUE  # from ...".
  if dump=$(/usr/local/bin/ferry --check-config "$FERRY_CONFIG" 2>/dev/null); then
    raw=$(sed -n '/^http:/,/^[^ ]/ s/^  address: *\([^ ]*\).*/\1/p' <<<"$dump")
    addr=$(tr -d "\"'" <<<"$raw")
    if [[ -n $raw && -z $addr ]]; then
      echo "http.address is empty (HTTP listener off): nothing to check"
      exit 0
    fi
  fi
fi
addr=${addr:-127.0.0.1:9641}

port=${addr##*:}
host=${addr%:*}
host=${host#[}
host=${host%]}
case $host in
  0.0.0.0 | "") host=127.0.0.1 ;;
  ::) host=::1 ;;
esac

if ! exec 3<>"/dev/tcp/$host/$port"; then
  echo "unhealthy: cannot connect to $host:$port"
  exit 1
fi
printf 'GET /healthz HTTP/1.0\r\nHost: %s\r\nConnection: close\r\n\r\n' "$addr" >&3
if ! IFS= read -r -t 4 status <&3; then
  echo "unhealthy: no answer from $host:$port"
  exit 1
fi
status=${status%$'\r'}
if [[ $status =~ ^HTTP/1\.[01]\ 200 ]]; then
  echo "healthy: $status"
  exit 0
fi
echo "unhealthy: $status"
exit 1
