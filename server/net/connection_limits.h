// Limits and counters shared by the connection-oriented client transports of one worker: TCP and
// TLS connections and DTLS sessions. They bound what a client can make ferry hold (issue 5):
// a connection count per source address and in total, a handshake deadline (a new connection
// must complete its TLS/DTLS handshake and deliver its first STUN message in time), an idle
// timeout, and a write budget past which relayed data is dropped rather than queued.
#pragma once

#include <cstddef>
#include <cstdint>
#include <unordered_map>

#include "stun/transport_address.h"
#include "turn/server_stats.h"

namespace ferry::server {

struct ConnectionLimits {
  size_t read_buffer = 65536 + 4;          // the largest padded ChannelData frame
  size_t write_budget = 256 * 1024;        // bytes queued per connection before frames are dropped
  uint64_t idle_timeout_ms = 300'000;      // without an allocation; a connection with one lives as long
  uint64_t handshake_timeout_ms = 10'000;  // from accept to the first complete STUN/ChannelData frame
  uint32_t max_connections = 0;            // this worker's TCP+TLS connections and DTLS sessions; 0 = no limit
  uint32_t max_connections_per_ip = 0;     // of those, from one source IP; 0 = no limit
  int backlog = 511;
};

// Written by the worker's loop thread only (see Counter); read by the metrics endpoint.
struct ConnectionStats {
  Counter accepted;            // TCP/TLS connections and DTLS sessions admitted
  Counter rejected;            // refused by max_connections or max_connections_per_ip
  Counter handshake_timeouts;  // closed for not completing the handshake/first frame in time
  Counter idle_timeouts;
  Counter bad_input;           // closed for a malformed or oversized frame
  Counter tls_failures;        // TLS/DTLS handshake or record errors (bad version, garbage, ...)
  Counter write_budget_drops;  // frames dropped because the client reads too slowly
  Counter dtls_cookies_sent;   // HelloVerifyRequests: stateless answers to new DTLS clients
  // PROXY protocol listeners: connections closed because they came from outside trusted_proxies,
  // or because they did not start with a valid header of the listener's version.
  Counter proxy_untrusted;
  Counter proxy_bad_header;
};

// Counts open connections by source IP. One per worker, used on the accept path only.
class ConnectionLimiter {
 public:
  explicit ConnectionLimiter(const ConnectionLimits& limits)
      : max_total_(limits.max_connections), max_per_ip_(limits.max_connections_per_ip) {}

  // Whether one more connection from `client` fits; counts it when it does.
  bool try_acquire(const stun::TransportAddress& client);
  // Whether try_acquire would succeed, without counting.
  bool would_admit(const stun::TransportAddress& client) const;
  void release(const stun::TransportAddress& client);

  size_t total() const { return total_; }
  size_t count(const stun::TransportAddress& client) const;

 private:
  static stun::TransportAddress key(const stun::TransportAddress& a) { return a.with_port(0); }

  uint32_t max_total_;
  uint32_t max_per_ip_;
  size_t total_ = 0;
  std::unordered_map<stun::TransportAddress, uint32_t, stun::TransportAddressHash> per_ip_;
};

}  // namespace ferry::server
