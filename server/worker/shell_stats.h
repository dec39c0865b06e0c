// What one worker's I/O shell counts itself (the core counts the rest): single writer, the
// worker's loop thread; read by the metrics and health endpoints from the HTTP thread.
#pragma once

#include <cstdint>

#include "base/clock.h"
#include "server/worker/bucket_histogram.h"
#include "turn/server_stats.h"

namespace ferry::server {

struct ShellStats {
  Counter client_send_dropped;  // UDP to clients: socket buffer full or send error
  Counter peer_send_dropped;    // UDP to peers
  Counter receive_errors;
  // Copied from the TcpListener and the DtlsListener on every tick (they keep plain integers that
  // only their loop may read).
  Gauge tcp_connections;
  Gauge tls_connections;
  Gauge dtls_sessions;
  Gauge tcp_frames_dropped;  // cumulative: frames over a connection's write budget
  Gauge proxy_untrusted;     // cumulative: PROXY protocol connections not from trusted_proxies
  Gauge proxy_bad_header;    // cumulative: ... without a valid header of the listener's version
  // Milliseconds on the steady clock at the loop's last tick (or start): /healthz checks that
  // every loop has ticked recently.
  Gauge heartbeat_ms;
  // Each turn of the loop, the work between two waits for I/O: the timer phase (the tick's walk
  // of the allocations, usage records, sweeps) and the I/O phase (packets, posted tasks, database
  // answers). A packet that arrives during a long turn waits it out: this is where a latency tail
  // made by the server itself shows.
  LoopBusyHistogram loop_busy_timers;
  LoopBusyHistogram loop_busy_io;
};

// `clock` in monotonic milliseconds, as heartbeat_ms holds it. The worker stamps with its own
// clock and the health checks read the process's steady_clock(): the same time source.
inline int64_t steady_ms(const Clock& clock = steady_clock()) { return static_cast<int64_t>(monotonic_ms(clock)); }

}  // namespace ferry::server
