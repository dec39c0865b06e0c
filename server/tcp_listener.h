// STUN/TURN over TCP (RFC 8656 §12.5, RFC 8489 §6.2.2): accepts connections, splits each byte
// stream into STUN messages and ChannelData frames, and writes frames back to a connection by its
// 5-tuple. A connection that sends something that is neither, or a frame larger than its read
// buffer, is closed; so is one that stays silent without an allocation for the idle timeout.
#pragma once

#include <cstddef>
#include <cstdint>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <uv.h>

#include "server/socket_fd.h"
#include "stun/bytes.h"
#include "stun/transport_address.h"
#include "turn/five_tuple.h"

namespace ferry::server {

class StreamHandler {
 public:
  virtual ~StreamHandler() = default;
  // One complete frame; `frame` is valid only during the call.
  virtual void on_frame(const turn::FiveTuple& from, stun::Bytes frame) = 0;
  // The connection is gone (peer closed, error, garbage, idle). Not called for connections
  // closed through close_connection() or close().
  virtual void on_closed(const turn::FiveTuple& client) = 0;
  // A connection holding an allocation lives as long as the allocation, however quiet.
  virtual bool holds_allocation(const turn::FiveTuple& /*client*/) const { return false; }
};

struct TcpLimits {
  size_t read_buffer = 65536 + 4;     // the largest padded ChannelData frame
  size_t write_budget = 256 * 1024;   // bytes queued per connection before frames are dropped
  uint64_t idle_timeout_ms = 300'000;
  int backlog = 511;
};

class TcpListener {
 public:
  TcpListener(uv_loop_t* loop, StreamHandler& handler, TcpLimits limits = {});
  ~TcpListener();  // close(); the loop must run afterwards to release the handles
  TcpListener(const TcpListener&) = delete;
  TcpListener& operator=(const TcpListener&) = delete;

  // Listens on `local` (can be called for several addresses). 0 or a libuv error code.
  int listen(const stun::TransportAddress& local, const SocketOptions& options);
  // The bound addresses, in listen() order (real ports when port 0 was asked for).
  const std::vector<stun::TransportAddress>& addresses() const { return addresses_; }

  // Writes at once when the socket takes it, else queues a copy within the write budget;
  // beyond the budget the frame is dropped whole so the stream stays framed. False: dropped.
  bool send(const turn::FiveTuple& to, stun::Bytes frame);
  void close_connection(const turn::FiveTuple& client);
  // Closes connections idle past the timeout; call about once a second.
  void sweep_idle();
  // Stops listening and closes every connection, without on_closed().
  void close();

  size_t connection_count() const { return connections_.size(); }
  uint64_t dropped_frames() const { return dropped_frames_; }

  struct Connection;  // defined in the .cpp

 private:
  struct Listening;
  static void on_connection(uv_stream_t* server, int status);
  static void on_alloc(uv_handle_t* handle, size_t suggested, uv_buf_t* buf);
  static void on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf);
  static void on_write(uv_write_t* req, int status);
  static void on_close(uv_handle_t* handle);

  void accept(Listening& l);
  void consume(Connection& c);  // hands out the complete frames in c's buffer
  void close(Connection& c, bool notify);

  uv_loop_t* loop_;
  StreamHandler& handler_;
  TcpLimits limits_;
  std::vector<Listening*> listening_;
  std::vector<stun::TransportAddress> addresses_;
  std::unordered_map<turn::FiveTuple, Connection*, turn::FiveTupleHash> connections_;
  std::unordered_set<Connection*> closing_;  // closed, waiting for their close callback
  uint64_t dropped_frames_ = 0;
  bool closed_ = false;
};

}  // namespace ferry::server
