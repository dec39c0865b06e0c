#include "server/net/dtls_server.h"

#include <openssl/ssl.h>

#include "server/net/tls_pump.h"

namespace ferry::server {

namespace {

// RFC 7983 §7: the first byte of a DTLS record is its content type, 20-63.
bool looks_like_dtls(stun::Bytes d) { return !d.empty() && d[0] >= 20 && d[0] <= 63; }

// A handshake record of epoch 0 holding a ClientHello: a client starting over.
bool is_initial_client_hello(stun::Bytes d) {
  constexpr size_t kRecordHeader = 13;
  return d.size() > kRecordHeader && d[0] == 22 && d[3] == 0 && d[4] == 0 && d[kRecordHeader] == 1;
}

}  // namespace

struct DtlsServer::Session final : TlsSession::Output {
  DtlsServer* owner = nullptr;
  turn::FiveTuple tuple;
  DtlsCookieSubject cookie;  // the SSL's app data: its ClientHello's cookie is checked again in the handshake
  std::unique_ptr<TlsSession> tls;
  StreamDeadlines deadlines;
  bool ended = false;

  void on_tls_output(stun::Bytes datagram) override {
    if (!ended) owner->host_.send_datagram(tuple, datagram);
  }
};

void DtlsServer::ListenOutput::on_tls_output(stun::Bytes datagram) {
  owner->stats_.dtls_cookies_sent.add();  // DTLSv1_listen only ever writes HelloVerifyRequests
  owner->host_.send_datagram(owner->listen_tuple_, datagram);
}

DtlsServer::DtlsServer(Host& host, const Clock& clock, std::shared_ptr<TlsCertificates> tls,
                       const ConnectionLimits& limits, ConnectionLimiter& limiter, ConnectionStats& stats)
    : host_(host),
      tls_(std::move(tls)),
      limits_(limits),
      limiter_(limiter),
      stats_(stats),
      cookie_key_(clock),
      plain_(std::make_unique<uint8_t[]>(kPlainBuffer)) {
  listen_output_.owner = this;
  listen_subject_.key = &cookie_key_;
}

DtlsServer::~DtlsServer() {
  for (auto& [tuple, s] : sessions_) {
    s->ended = true;
    limiter_.release(tuple.client);
  }
}

void DtlsServer::on_datagram(const turn::FiveTuple& from, stun::Bytes datagram, uint64_t now_ms) {
  if (!looks_like_dtls(datagram)) return;  // plain STUN or noise on the DTLS port: not ours
  if (auto it = sessions_.find(from); it != sessions_.end()) {
    Session& s = *it->second;
    if (!(s.tls->handshake_done() && is_initial_client_hello(datagram))) {
      process(s, datagram, now_ms);
      reap();
      return;
    }
    end(s, /*notify=*/true, /*alert=*/false);  // the client lost its state and starts over
  }
  admit(from, datagram, now_ms);
  reap();
}

void DtlsServer::admit(const turn::FiveTuple& from, stun::Bytes datagram, uint64_t now_ms) {
  // Over the limit: not even a HelloVerifyRequest.
  if (!limiter_.would_admit(from.client)) {
    stats_.rejected.add();
    return;
  }
  const TlsContext* ctx = tls_.get();
  if (ctx == nullptr) return;
  if (!listener_ || listener_ctx_ != ctx->dtls()) {  // first use, or the certificate was reloaded
    listener_ = TlsSession::create(ctx->dtls(), &listen_output_);
    if (!listener_) return;
    listener_ctx_ = ctx->dtls();
    SSL_set_app_data(listener_->ssl(), &listen_subject_);
  }
  listen_subject_.client = from.client;
  listen_tuple_ = from;
  switch (listener_->listen(datagram)) {
    case TlsSession::Listen::Answered: return;
    case TlsSession::Listen::Failed: listener_.reset(); return;
    case TlsSession::Listen::Accepted: break;
  }
  // The client proved it receives at its address: it gets a session, and the listener a new SSL.
  if (!limiter_.try_acquire(from.client)) {
    stats_.rejected.add();
    listener_.reset();
    return;
  }
  auto s = std::make_unique<Session>();
  s->owner = this;
  s->tuple = from;
  s->cookie = DtlsCookieSubject{&cookie_key_, from.client};
  s->tls = std::move(listener_);
  s->tls->set_output(s.get());
  SSL_set_app_data(s->tls->ssl(), &s->cookie);
  s->deadlines.open(now_ms);
  stats_.accepted.add();
  Session& session = *s;
  sessions_.emplace(from, std::move(s));
  process(session, {}, now_ms);  // the ClientHello is buffered in the SSL: answer it
}

void DtlsServer::process(Session& s, stun::Bytes datagram, uint64_t now_ms) {
  s.deadlines.read(now_ms);
  // Each record's plaintext is one frame (RFC 8656 §3.1): no framing, straight to the host.
  const TlsPumpEnd end = pump_tls(
      *s.tls, datagram, [&] { return stun::MutableBytes(plain_.get(), kPlainBuffer); },
      [&](size_t bytes) {
    s.deadlines.established = true;
    host_.on_frame(s.tuple, stun::Bytes(plain_.get(), bytes));
      },
      [&] { return s.ended; }, stats_, s.tuple);
  // Closed: the pump answered the close_notify with ours. Failed: OpenSSL sent its alert.
  if (end == TlsPumpEnd::Closed || end == TlsPumpEnd::Failed) this->end(s, /*notify=*/true, /*alert=*/false);
}

bool DtlsServer::send(const turn::FiveTuple& to, stun::Bytes frame) {
  auto it = sessions_.find(to);
  if (it == sessions_.end() || it->second->ended || !it->second->tls->write(frame)) {
    ++dropped_frames_;
    return false;
  }
  return true;
}

void DtlsServer::end(Session& s, bool notify, bool alert) {
  if (s.ended) return;
  if (alert) s.tls->close_notify();
  s.ended = true;
  limiter_.release(s.tuple.client);
  const turn::FiveTuple tuple = s.tuple;
  auto node = sessions_.extract(tuple);
  if (!node.empty()) ended_.push_back(std::move(node.mapped()));
  if (notify) host_.on_closed(tuple);  // the allocation ends with its session
}

void DtlsServer::reap() { ended_.clear(); }

void DtlsServer::tick(uint64_t now_ms) {
  std::vector<Session*> failed;
  StreamSweep<Session> sweep(now_ms, limits_);
  for (auto& [tuple, s] : sessions_) {
    if (!s->tls->handshake_done() && !s->tls->on_timer()) {
      failed.push_back(s.get());  // gave up retransmitting
    } else {
      sweep.check(*s, s->deadlines, [&, &tuple = tuple] { return host_.holds_allocation(tuple); });
    }
  }
  for (Session* s : failed) {
    stats_.tls_failures.add();
    end(*s, true, false);
  }
  sweep.close_expired(stats_, [&](Session& s) { end(s, true, true); });
  reap();
}

void DtlsServer::close_all() {
  for (auto& [tuple, s] : sessions_) {
    s->tls->close_notify();
    s->ended = true;
    limiter_.release(tuple.client);
  }
  sessions_.clear();
  ended_.clear();
  listener_.reset();
}

}  // namespace ferry::server
