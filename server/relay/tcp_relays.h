// The peer side of RFC 6062 TCP allocations on one worker loop: a TCP listener on each TCP
// allocation's relayed address, connections to peers made from that same address (Connect,
// §5.2), connections peers make to it (§5.3), and, once the client has bound a data connection
// (§5.4), the pipe between the two sockets.
//
// The pipe moves bytes without the core. Each direction has back-pressure instead of drops (a
// stream cannot lose bytes): when the receiving side's write queue passes the write budget the
// sending side is no longer read until the queue is down to half. A peer connection waiting for
// its ConnectionBind is not read at all, so its data waits in the kernel (the buffering §5.3 asks
// for, bounded by the socket buffer). Memory per pipe: one read buffer plus at most a budget's
// worth of queued bytes each way.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <unordered_map>
#include <unordered_set>

#include <uv.h>

#include "base/clock.h"
#include "server/net/stream_handler.h"
#include "server/net/tcp_listener.h"
#include "stun/transport_address.h"
#include "turn/five_tuple.h"
#include "turn/io.h"
#include "turn/server_stats.h"

namespace ferry::turn {
class ServerCore;
}

namespace ferry::server {

class TcpRelays final : public RawStreamHandler {
 public:
  // `clients` holds the client data connections; the core learns of connects and closes.
  // `clock` (the worker's) times the drain timeout.
  TcpRelays(uv_loop_t* loop, const Clock& clock, TcpListener& clients);
  ~TcpRelays() override;  // close_all(); the loop must run afterwards to release the handles
  TcpRelays(const TcpRelays&) = delete;
  TcpRelays& operator=(const TcpRelays&) = delete;

  void set_core(turn::ServerCore* core) { core_ = core; }

  // turn::Io, for the Worker to forward
  turn::OpenRelayResult open(turn::RelayId relay, const stun::TransportAddress& local);
  void close_listener(turn::RelayId relay);  // unknown ids are ignored
  bool connect(turn::ConnectionId id, turn::RelayId relay, const stun::TransportAddress& peer);
  void bind(turn::ConnectionId id, const turn::FiveTuple& client);
  void close(turn::ConnectionId id);

  // Closes pipes whose peer side has been draining for too long; call about once a second.
  void sweep();
  void close_all();

  size_t listener_count() const { return listeners_.size(); }
  size_t connection_count() const { return connections_.size(); }

  // RawStreamHandler (the client data connections)
  void on_raw_bytes(uint32_t id, stun::Bytes bytes) override;
  void on_raw_drained(uint32_t id) override;
  void on_raw_closed(uint32_t id) override;

  struct Listener;
  struct PeerConnection;

 private:
  static void on_accept(uv_stream_t* server, int status);
  static void on_connected(uv_connect_t* req, int status);
  static void on_alloc(uv_handle_t* handle, size_t suggested, uv_buf_t* buf);
  static void on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf);
  static void on_write(uv_write_t* req, int status);

  void accept(Listener& l);
  void write_to_peer(PeerConnection& p, stun::Bytes bytes);
  // Forgets `p` and closes its socket; with `client`, the client data connection too.
  void close_peer(PeerConnection& p, bool client);
  void peer_ended(PeerConnection& p, bool graceful);  // EOF or error from the peer

  uv_loop_t* loop_;
  const Clock& clock_;
  TcpListener& clients_;
  turn::ServerCore* core_ = nullptr;
  std::unordered_map<turn::RelayId, std::unique_ptr<Listener>> listeners_;
  std::unordered_map<turn::ConnectionId, PeerConnection*> connections_;
  // No longer known to the core (their client side ended), writing out what is queued for the peer.
  std::unordered_set<PeerConnection*> draining_;
};

}  // namespace ferry::server
