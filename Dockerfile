# ferry container image: multi-stage, built and run on debian:bookworm-slim.
#
#   podman build --format docker -t ferry .       # or: docker build -t ferry .
#   docker run --rm --network host ferry          # the config baked in at /etc/ferry/ferry.yaml
#   docker run --rm --network host -v $PWD/ferry.yaml:/etc/ferry/ferry.yaml:ro \
#       -e FERRY_DATABASE_URL=postgresql://... ferry
#
# Configuration: FERRY_CONFIG points at /etc/ferry/ferry.yaml; mount your file there (or a
# directory over /etc/ferry), override single keys with FERRY_* variables, and pass flags after
# the image name (`docker run ... ferry --log-level debug`). Secrets go in the file, in files it
# names (*_file keys) or in FERRY_* variables, never in flags.
#
# --network host is the practical choice for TURN: relays allocate ports from a large range
# (relay.port_min..port_max), which -p mappings handle badly, and clients must reach the relay
# ports at the address ferry advertises (relay.addresses[].external behind NAT).
#
# `podman build` needs --format docker to keep the HEALTHCHECK (OCI images have none).
# tests/container/test_container.py builds and runs this image for real.

# ---------------------------------------------------------------- build
FROM debian:bookworm-slim AS build
# Compile jobs; CI machines have two cores.
ARG JOBS=2
# The library part of scripts/install-deps.sh: keep the two lists in step.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      g++ make cmake pkg-config \
      libuv1-dev libssl-dev libpq-dev prometheus-cpp-dev libcpp-httplib-dev \
      libyaml-cpp-dev libcli11-dev libspdlog-dev nlohmann-json3-dev \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin
WORKDIR /src
COPY . .
# Only the two binaries: no tests (FERRY_TESTS=OFF needs neither GoogleTest nor shared/),
# benchmarks or examples; a unity build (files compiled in batches: about half the time).
RUN cmake -S . -B /build -DCMAKE_BUILD_TYPE=Release -DFERRY_TESTS=OFF \
      -DCMAKE_UNITY_BUILD=ON -DCMAKE_UNITY_BUILD_BATCH_SIZE=16 \
 && cmake --build /build -j "${JOBS}" --target ferry ferryctl \
 && install -D -m 0755 -s /build/server/ferry /out/usr/local/bin/ferry \
 && install -D -m 0755 -s /build/tools/ferryctl /out/usr/local/bin/ferryctl \
 && bash container/runtime-packages.sh /out/usr/local/bin/ferry /out/usr/local/bin/ferryctl > /out/runtime-packages

# ---------------------------------------------------------------- runtime
FROM debian:bookworm-slim
# Only the Debian packages holding the shared libraries the binaries link (found with ldd and
# dpkg -S in the build stage), plus CA certificates for verifying a PostgreSQL server's TLS.
COPY --from=build /out/runtime-packages /tmp/runtime-packages
RUN apt-get update \
 && xargs -a /tmp/runtime-packages \
      env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /tmp/runtime-packages \
 && groupadd --gid 10001 ferry \
 && useradd --uid 10001 --gid ferry --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin --no-log-init ferry
COPY --from=build /out/usr/local/bin/ /usr/local/bin/
COPY container/ferry.yaml /etc/ferry/ferry.yaml
COPY container/healthcheck.sh /usr/local/bin/ferry-healthcheck
# Fail the build, not the first start, when a library is missing or the baked-in config is bad.
RUN chmod 0755 /usr/local/bin/ferry-healthcheck \
 && if ldd /usr/local/bin/ferry /usr/local/bin/ferryctl | grep 'not found'; then exit 1; fi \
 && /usr/local/bin/ferry --check-config /etc/ferry/ferry.yaml > /dev/null
ENV FERRY_CONFIG=/etc/ferry/ferry.yaml
# A numeric user, so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
USER 10001:10001
# STUN/TURN over UDP and TCP, TURN over TLS and DTLS, HTTP (metrics, /healthz, /readyz). The
# HTTP listener's default address is 127.0.0.1:9641: set http.address (or FERRY_HTTP_ADDRESS)
# to 0.0.0.0:9641 to scrape it from outside the container.
EXPOSE 3478/udp 3478/tcp 5349/tcp 5349/udp 9641/tcp
# GET /healthz with bash's /dev/tcp (no curl in the image); the address comes from the effective
# config, or FERRY_HEALTHCHECK_ADDRESS.
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \
  CMD ["/usr/local/bin/ferry-healthcheck"]
# ferry is PID 1 and handles SIGTERM itself (drain, then exit 0). Give `docker stop` a timeout
# longer than the drain (docker stop -t 60; compose stop_grace_period).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/ferry"]
