// The two deadlines every client stream transport (TCP, TLS, DTLS) applies, and the sweep that
// enforces them (issue 5): a new connection or session must deliver its first complete frame
// (after its TLS/DTLS handshake) within handshake_timeout_ms, and one without an allocation must
// not stay silent for idle_timeout_ms. Times are monotonic milliseconds (base/clock.h).
#pragma once

#include <cstdint>
#include <vector>

#include "server/net/connection_limits.h"

namespace ferry::server {

struct StreamDeadlines {
  uint64_t opened_ms = 0;
  uint64_t last_read_ms = 0;
  bool established = false;  // a complete frame arrived: the handshake deadline no longer applies

  void open(uint64_t now_ms) { opened_ms = last_read_ms = now_ms; }
  void read(uint64_t now_ms) { last_read_ms = now_ms; }
};

// One pass over a listener's connections: check() each, then close_expired(). Collected first and
// closed afterwards, since closing one changes the container being walked.
template <class Connection>
class StreamSweep {
 public:
  StreamSweep(uint64_t now_ms, const ConnectionLimits& limits) : now_(now_ms), limits_(limits) {}

  // `idle_exempt()` (e.g. "holds an allocation") is asked only of a connection past its idle deadline.
  template <class Exempt>
  void check(Connection& c, const StreamDeadlines& d, Exempt&& idle_exempt) {
    if (!d.established && now_ - d.opened_ms >= limits_.handshake_timeout_ms) {
      late_.push_back(&c);  // e.g. a ClientHello and then silence, or one byte and then silence
    } else if (now_ - d.last_read_ms >= limits_.idle_timeout_ms && !idle_exempt()) {
      idle_.push_back(&c);
    }
  }

  // Counts each expired connection in `stats` and hands it to `close`: the late ones first.
  template <class Close>
  void close_expired(ConnectionStats& stats, Close&& close) {
    for (Connection* c : late_) {
      stats.handshake_timeouts.add();
      close(*c);
    }
    for (Connection* c : idle_) {
      stats.idle_timeouts.add();
      close(*c);
    }
  }

 private:
  uint64_t now_;
  const ConnectionLimits& limits_;
  std::vector<Connection*> late_;
  std::vector<Connection*> idle_;
};

}  // namespace ferry::server
