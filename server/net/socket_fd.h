// Bound socket descriptors made by hand: libuv 1.44 cannot set SO_REUSEPORT (one listener per
// worker loop shares a port) or IP_MTU_DISCOVER, so sockets are created here and handed to libuv
// with uv_udp_open / uv_tcp_open.
#pragma once

#include "stun/transport_address.h"

namespace ferry::server {

struct SocketOptions {
  bool reuse_port = false;  // SO_REUSEPORT: the kernel spreads clients over the workers' sockets
  // With reuse_port: the number of sockets in the group, and the socket's place in it is the
  // order of binding. Clients are then spread by source IP, not by 5-tuple, so all the sockets of
  // one client reach the same worker: RFC 8656 §7.2 RESERVATION-TOKENs and the per-user quota
  // live in one worker's core. 0 or 1: the kernel's 5-tuple hash.
  uint32_t steer_by_ip_among = 0;
  bool dont_fragment = false;  // DF set on every datagram (TURN DONT-FRAGMENT, RFC 8656 §14.8)
  // SO_RCVBUF/SO_SNDBUF, best effort (the kernel caps them at net.core.rmem_max/wmem_max). 0: the
  // kernel default (about 208 KiB), which a listener that all of a worker's clients share fills
  // with a burst of 1000-byte datagrams.
  int buffer_bytes = 0;
};

// A non-blocking, close-on-exec socket of `type` (SOCK_DGRAM / SOCK_STREAM) bound to `local`.
// IPv6 sockets are IPv6-only so 0.0.0.0 and :: can bind the same port side by side.
// Returns the descriptor, or a negative libuv error code (UV_EADDRINUSE, ...).
int open_bound_socket(int type, const stun::TransportAddress& local, const SocketOptions& options);

// Spreads the reuseport group `fd` belongs to by client source IP (see steer_by_ip_among).
// Needs `fd` already in its group; logs a warning once if the kernel refuses.
void steer_by_source_ip(int fd, stun::Family family, uint32_t group_size);

// The address a socket is bound to (the real port after binding port 0).
stun::TransportAddress bound_address(int fd, const stun::TransportAddress& fallback);

}  // namespace ferry::server
