// STUN/TURN over TCP and over TLS (RFC 8656 §12.5, RFC 8489 §6.2.2-6.2.3): accepts connections,
// splits each byte stream into STUN messages and ChannelData frames, and writes frames back to a
// connection by its 5-tuple. A TLS connection is the same connection with a TlsSession between
// the socket and the framing, so framing, the write budget and the timeouts are shared.
//
// A connection is closed when it sends something that is neither STUN nor ChannelData, a frame
// larger than its read buffer, or a bad TLS record; when it has not delivered its first complete
// frame (for TLS: after the handshake) within the handshake timeout; and when it stays silent
// without an allocation for the idle timeout. Connections beyond the per-source or total limit
// are closed as soon as they are accepted.
//
// A listener with PROXY protocol (ProxySettings) closes connections from outside its trusted
// proxies at once, then reads the header (before TLS) within the handshake timeout and closes the
// connection when it is missing, malformed or of the other version. From then on the 5-tuple's
// client is the address the header carries: the connection limits, the core (XOR-MAPPED-ADDRESS,
// quotas) and the logs see the real client, not the proxy.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <uv.h>

#include "base/clock.h"
#include "server/net/connection_limits.h"
#include "server/net/proxy_protocol.h"
#include "server/net/socket_fd.h"
#include "server/net/stream_handler.h"
#include "server/tls/tls_context.h"
#include "stun/bytes.h"
#include "stun/transport_address.h"
#include "turn/five_tuple.h"
#include "turn/peer_policy.h"

namespace ferry::server {

using TcpLimits = ConnectionLimits;

struct ProxySettings {
  ProxyVersion version = ProxyVersion::V2;
  std::vector<turn::Cidr> trusted;  // who may send the header
};

class TcpListener {
 public:
  // `clock` (the worker's) times the handshake and idle deadlines; it must outlive the listener.
  TcpListener(uv_loop_t* loop, const Clock& clock, StreamHandler& handler, const ConnectionLimits& limits,
              ConnectionLimiter& limiter, ConnectionStats& stats);
  ~TcpListener();  // close(); the loop must run afterwards to release the handles
  TcpListener(const TcpListener&) = delete;
  TcpListener& operator=(const TcpListener&) = delete;

  // Listens on `local` (can be called for several addresses). `transport` Tls needs `tls`, whose
  // current certificate each new connection's handshake uses. 0 or a libuv error code.
  // `proxy`: every connection starts with a PROXY protocol header (see above).
  int listen(const stun::TransportAddress& local, const SocketOptions& options,
             turn::Transport transport = turn::Transport::Tcp, std::shared_ptr<TlsCertificates> tls = nullptr,
             std::optional<ProxySettings> proxy = std::nullopt);
  // The bound addresses, in listen() order (real ports when port 0 was asked for).
  const std::vector<stun::TransportAddress>& addresses() const { return addresses_; }

  // Writes at once when the socket takes it, else queues a copy within the write budget;
  // beyond the budget the frame is dropped whole so the stream stays framed. False: dropped.
  bool send(const turn::FiveTuple& to, stun::Bytes frame);
  void close_connection(const turn::FiveTuple& client);

  // RFC 6062 §5.4: the connection becomes a data connection. Bytes after the frame being handled
  // and everything read later go to `raw_handler` under `id`, unframed; the idle timeout no
  // longer applies (the allocation's lifetime does). false: no such connection.
  bool make_raw(const turn::FiveTuple& client, uint32_t id);
  // Writes raw bytes to a data connection, queueing what the socket does not take at once (never
  // dropping: the caller stops reading its source when the queue passes the write budget).
  // Returns the bytes queued afterwards, or nullopt when the connection is gone.
  std::optional<size_t> write_raw(const turn::FiveTuple& client, stun::Bytes bytes);
  // Stops or resumes reading a data connection (back-pressure from the other side).
  void set_reading(const turn::FiveTuple& client, bool reading);
  // Closes a data connection once its queued bytes are written (the peer side ended).
  void close_when_drained(const turn::FiveTuple& client);
  void set_raw_handler(RawStreamHandler* h) { raw_handler_ = h; }
  size_t write_budget() const { return limits_.write_budget; }
  // Closes connections past the handshake or idle timeout; call about once a second.
  void sweep_idle();
  // Stops listening and closes every connection, without on_closed().
  void close();

  size_t connection_count() const { return connections_.size(); }
  // Open connections of one transport (tcp or tls), counted when asked: once a tick.
  size_t connection_count(turn::Transport transport) const;
  uint64_t dropped_frames() const { return dropped_frames_; }

  struct Connection;  // defined in the .cpp

 private:
  struct Listening;
  static void on_connection(uv_stream_t* server, int status);
  static void on_alloc(uv_handle_t* handle, size_t suggested, uv_buf_t* buf);
  static void on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf);
  static void on_write(uv_write_t* req, int status);
  static void on_close(void* connection);  // from the handle's close callback

  void accept(Listening& l);
  void read_proxy_header(Connection& c);               // the PROXY header in c's buffer, then the stream
  void decrypt(Connection& c, size_t n);               // TLS: ciphertext in cipher_buffer_ to plaintext frames
  void consume(Connection& c);                         // hands out the complete frames in c's buffer
  bool write_bytes(Connection& c, stun::Bytes bytes);  // to the socket, queueing what it does not take
  void close(Connection& c, bool notify);

  uv_loop_t* loop_;
  const Clock& clock_;
  StreamHandler& handler_;
  RawStreamHandler* raw_handler_ = nullptr;
  ConnectionLimits limits_;
  ConnectionLimiter& limiter_;
  ConnectionStats& stats_;
  std::vector<std::unique_ptr<Listening>> listening_;
  std::vector<stun::TransportAddress> addresses_;
  std::unordered_map<turn::FiveTuple, Connection*, turn::FiveTupleHash> connections_;
  std::unordered_set<Connection*> closing_;  // closed, waiting for their close callback
  // TLS ciphertext is read here and decrypted into the connection's own buffer before the next
  // read: one buffer for every TLS connection of this loop.
  std::unique_ptr<uint8_t[]> cipher_buffer_;
  static constexpr size_t kCipherBuffer = 65536;
  uint64_t dropped_frames_ = 0;
  bool closed_ = false;
};

}  // namespace ferry::server
