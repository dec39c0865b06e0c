// TURN over TCP and TLS for the client legs (RFC 8656 §12.5): a connected non-blocking socket
// (with its TLS session for TLS), the length of the next frame in a received byte stream, and
// reads and writes that work the same over either.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "stun/transport_address.h"

struct ssl_st;      // OpenSSL's SSL
struct ssl_ctx_st;  // OpenSSL's SSL_CTX

namespace ferry::bench {

// A TLS client context for the benchmark: TLS 1.2 or later, the server's certificate not checked
// (the test servers on loopback use throw-away self-signed ones). nullptr with `error` set.
ssl_ctx_st* bench_tls_context(std::string& error);
void free_tls_context(ssl_ctx_st* ctx);
void free_tls(ssl_st* ssl);

// A TCP socket bound to `local`, connected to `to` (blocking connect: loopback answers at once)
// and, with `tls`, through a TLS handshake whose session lands in `*ssl`; then non-blocking with
// TCP_NODELAY. -1 with `error` set on failure.
int open_tcp_connected(const stun::TransportAddress& local, const stun::TransportAddress& to, std::string& error,
                       ssl_ctx_st* tls = nullptr, ssl_st** ssl = nullptr);

// A non-blocking TCP socket listening on `local` (the sink of RFC 6062 TCP peer legs). -1 with
// `error` set on failure.
int open_tcp_listener(const stun::TransportAddress& local, std::string& error);

// Bytes of the STUN message or ChannelData (padded to 4 over TCP) that `data` starts with, or 0
// while its header is incomplete. SIZE_MAX for bytes that start neither (a broken stream).
size_t stream_frame_length(const uint8_t* data, size_t available);

// One write to a non-blocking stream (`ssl` null: plain TCP): the bytes taken (> 0), 0 when it
// would block, -errno on an error. Over TLS, after a 0 the next call must pass the same length
// again (SSL_write's rule; the buffer may move).
ssize_t stream_send(int fd, ssl_st* ssl, const uint8_t* data, size_t size);
// One read: the bytes read (> 0), 0 at the end of the stream, -EAGAIN when nothing is there, -errno.
ssize_t stream_recv(int fd, ssl_st* ssl, uint8_t* data, size_t size);

// Writes all of a small message (a request), waiting up to `timeout_ms` for room each time.
// False on error or timeout.
bool send_all(int fd, ssl_st* ssl, const uint8_t* data, size_t size, int timeout_ms);

}  // namespace ferry::bench
