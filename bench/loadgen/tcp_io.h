// TURN over TCP for the client legs (RFC 8656 §12.5): a connected non-blocking socket, the length
// of the next frame in a received byte stream, and a send that finishes a small message.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "stun/transport_address.h"

namespace ferry::bench {

// A TCP socket bound to `local`, connected to `to` (blocking connect: loopback answers at once),
// then made non-blocking with TCP_NODELAY. -1 with `error` set on failure.
int open_tcp_connected(const stun::TransportAddress& local, const stun::TransportAddress& to, std::string& error);

// Bytes of the STUN message or ChannelData (padded to 4 over TCP) that `data` starts with, or 0
// while its header is incomplete. SIZE_MAX for bytes that start neither (a broken stream).
size_t stream_frame_length(const uint8_t* data, size_t available);

// Writes all of a small message (a request) to a non-blocking stream socket, waiting up to
// `timeout_ms` for room. False on error or timeout.
bool send_all(int fd, const uint8_t* data, size_t size, int timeout_ms);

}  // namespace ferry::bench
