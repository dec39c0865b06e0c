#include "server/net/dtls_listener.h"

namespace ferry::server {

DtlsListener::DtlsListener(uv_loop_t* loop, const Clock& clock, StreamHandler& handler,
                           std::shared_ptr<TlsCertificates> tls, const ConnectionLimits& limits,
                           ConnectionLimiter& limiter, ConnectionStats& stats)
    : loop_(loop), clock_(clock), handler_(handler), server_(*this, clock, std::move(tls), limits, limiter, stats) {}

DtlsListener::~DtlsListener() { close(); }

int DtlsListener::listen(const stun::TransportAddress& local, const SocketOptions& options, const ReceiveArea& area) {
  if (closed_) return UV_EINVAL;
  int rc = 0;
  UdpSocket* s = UdpSocket::open(loop_, local, options, &rc);
  if (s == nullptr) return rc;
  sockets_.push_back(s);  // closed with the others, even if start fails
  rc = s->start(area, static_cast<DatagramHandler&>(*this), 0);
  if (rc != 0) return rc;
  addresses_.push_back(s->local());
  if (!timer_) {
    if ((rc = timer_.init(loop_, this, uv_timer_init)) != 0) return rc;
    uv_timer_start(
        timer_.get(),
        [](uv_timer_t* t) {
      auto* self = UvHandle<uv_timer_t>::owner_of<DtlsListener>(t);
      if (self != nullptr) self->server_.tick(monotonic_ms(self->clock_));
        },
        kTickMs, kTickMs);
  }
  return 0;
}

void DtlsListener::on_datagram(UdpSocket& socket, const stun::TransportAddress& from, uint8_t* storage, size_t len) {
  server_.on_datagram(turn::FiveTuple{from, socket.local(), turn::Transport::Dtls}, stun::Bytes(storage, len),
                      monotonic_ms(clock_));
}

void DtlsListener::send_datagram(const turn::FiveTuple& to, stun::Bytes datagram) {
  for (UdpSocket* s : sockets_) {
    if (s->local() == to.server) {
      if (s->send(to.client, datagram) != 0) ++send_errors_;  // a full socket buffer drops it, as UDP would
      return;
    }
  }
  ++send_errors_;
}

void DtlsListener::close() {
  if (closed_) return;
  closed_ = true;
  server_.close_all();  // the alerts go out while the sockets are still open
  for (UdpSocket* s : sockets_) s->close();
  sockets_.clear();
  timer_.close();
}

}  // namespace ferry::server
