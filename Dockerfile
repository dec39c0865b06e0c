# ferry container image.
#   docker build -t ferry .
#   docker run --rm --network host ferry                      # embedded default config
#   docker run --rm --network host -v $PWD/ferry.yaml:/etc/ferry/ferry.yaml:ro \
#       ferry --config /etc/ferry/ferry.yaml
# --network host is the practical choice for TURN: relay ports are allocated from a
# large range, which -p mappings handle badly.

# ---------------------------------------------------------------- build
FROM debian:bookworm-slim AS build
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      build-essential cmake pkg-config ca-certificates \
      libuv1-dev libssl-dev libpq-dev prometheus-cpp-dev \
      libyaml-cpp-dev libcli11-dev libspdlog-dev nlohmann-json3-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# Tests are off: the image needs neither GoogleTest nor ../shared.
RUN cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release -DFERRY_TESTS=OFF \
 && cmake --build build/release -j "$(nproc)" --target ferry \
 && bin=build/release/server/ferry && { [ -x "$bin" ] || bin=build/release/ferry; } \
 && install -D -m 755 -s "$bin" /out/ferry

# ---------------------------------------------------------------- runtime
FROM debian:bookworm-slim
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      ca-certificates libuv1 libssl3 libpq5 \
      libprometheus-cpp-core1.0 libprometheus-cpp-pull1.0 \
      libyaml-cpp0.7 libspdlog1.10 libfmt9 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system ferry \
 && useradd --system --gid ferry --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin ferry \
 && mkdir -p /etc/ferry
COPY --from=build /out/ferry /usr/local/bin/ferry
USER ferry
# STUN/TURN (udp+tcp), TURN over TLS/DTLS, Prometheus metrics (the default http.address
# is 127.0.0.1:9641; set it to 0.0.0.0:9641 in the config to scrape from outside).
EXPOSE 3478/udp 3478/tcp 5349/tcp 5349/udp 9641/tcp
# TODO: HEALTHCHECK once the server has a health endpoint (no /healthz yet).
ENTRYPOINT ["/usr/local/bin/ferry"]
# No CMD: with no arguments ferry runs its embedded default config.
