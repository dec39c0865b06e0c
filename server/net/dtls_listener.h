// The DTLS listeners of one worker: UDP sockets feeding a DtlsServer, a timer for its
// retransmissions and timeouts, and decrypted frames passed on to the worker (a StreamHandler).
#pragma once

#include <cstddef>
#include <memory>
#include <vector>

#include <uv.h>

#include "base/clock.h"
#include "server/net/connection_limits.h"
#include "server/net/dtls_server.h"
#include "server/net/socket_fd.h"
#include "server/net/stream_handler.h"
#include "server/tls/tls_context.h"
#include "server/net/udp_socket.h"
#include "server/net/uv_handle.h"
#include "stun/transport_address.h"
#include "turn/five_tuple.h"

namespace ferry::server {

class DtlsListener final : private DatagramHandler, private DtlsServer::Host {
 public:
  // `clock` (the worker's) times the sessions' deadlines; it must outlive the listener.
  DtlsListener(uv_loop_t* loop, const Clock& clock, StreamHandler& handler, std::shared_ptr<TlsCertificates> tls,
               const ConnectionLimits& limits, ConnectionLimiter& limiter, ConnectionStats& stats);
  ~DtlsListener() override;  // close(); the loop must run afterwards to release the handles
  DtlsListener(const DtlsListener&) = delete;
  DtlsListener& operator=(const DtlsListener&) = delete;

  // Binds a UDP socket at `local`; datagrams are read into `area` (the loop's shared buffer).
  // 0 or a libuv error code.
  int listen(const stun::TransportAddress& local, const SocketOptions& options, const ReceiveArea& area);
  const std::vector<stun::TransportAddress>& addresses() const { return addresses_; }

  // One frame to an established session, as one DTLS record. False: dropped.
  bool send(const turn::FiveTuple& to, stun::Bytes frame) { return server_.send(to, frame); }
  // close_notify to every session, then closes the sockets and the timer, without on_closed().
  void close();

  size_t session_count() const { return server_.session_count(); }
  uint64_t dropped_frames() const { return server_.dropped_frames() + send_errors_; }

 private:
  static constexpr uint64_t kTickMs = 250;  // DTLS retransmission timers start at one second

  // DatagramHandler
  void on_datagram(UdpSocket& socket, const stun::TransportAddress& from, uint8_t* storage, size_t len) override;
  // DtlsServer::Host
  void send_datagram(const turn::FiveTuple& to, stun::Bytes datagram) override;
  void on_frame(const turn::FiveTuple& from, stun::Bytes frame) override { handler_.on_frame(from, frame); }
  void on_closed(const turn::FiveTuple& client) override { handler_.on_closed(client); }
  bool holds_allocation(const turn::FiveTuple& client) const override { return handler_.holds_allocation(client); }

  uv_loop_t* loop_;
  const Clock& clock_;
  StreamHandler& handler_;
  std::vector<UdpSocket*> sockets_;
  std::vector<stun::TransportAddress> addresses_;
  UvHandle<uv_timer_t> timer_;
  DtlsServer server_;
  uint64_t send_errors_ = 0;
  bool closed_ = false;
};

}  // namespace ferry::server
