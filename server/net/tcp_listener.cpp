#include "server/net/tcp_listener.h"

#include <algorithm>
#include <cstring>
#include <memory>
#include <sys/socket.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include "server/net/socket_fd.h"
#include "server/net/stream_timeouts.h"
#include "server/net/stream_write.h"
#include "server/net/tls_pump.h"
#include "server/net/uv_handle.h"
#include "server/tls/tls_session.h"
#include "stun/channel_data.h"

namespace ferry::server {

struct TcpListener::Listening {
  UvHandle<uv_tcp_t> handle;  // data: this Listening, which holds the listener
  TcpListener* owner = nullptr;
  turn::Transport transport = turn::Transport::Tcp;
  std::unique_ptr<TlsContextCache> tls;  // set for Transport::Tls
  std::optional<ProxySettings> proxy;
};

struct TcpListener::Connection final : TlsSession::Output {
  // Closed with on_close as its `after`: the connection is freed from the close callback, once
  // its write requests have ended and no callback of ours is still using it.
  UvHandle<uv_tcp_t> handle;
  TcpListener* owner = nullptr;  // null once the listener is gone (close())
  turn::FiveTuple tuple;
  std::unique_ptr<uint8_t[]> buffer;  // limits_.read_buffer bytes of plaintext; [0, used) not yet framed
  size_t used = 0;
  size_t queued = 0;  // bytes in uv_write requests still in flight
  StreamDeadlines deadlines;
  std::unique_ptr<TlsSession> tls;  // null for plain TCP
  bool counted = false;             // holds a place in the ConnectionLimiter
  // PROXY protocol: the header has not been read yet; `tuple.client` is still the proxy.
  bool awaiting_proxy = false;
  ProxyVersion proxy_version = ProxyVersion::V2;
  bool closing = false;
  bool notify_on_close = false;
  // RFC 6062 data connection: unframed bytes, for the RawStreamHandler under raw_id.
  bool raw = false;
  bool close_when_drained = false;
  uint32_t raw_id = 0;

  // TLS records (handshake, data, alerts) go out through the same write path as plain frames.
  void on_tls_output(stun::Bytes ciphertext) override {
    if (owner != nullptr && !closing) owner->write_bytes(*this, ciphertext);
  }
};

namespace {

using TcpHandle = UvHandle<uv_tcp_t>;

std::optional<stun::TransportAddress> address_of(int (*get)(const uv_tcp_t*, sockaddr*, int*), const uv_tcp_t& t) {
  sockaddr_storage ss{};
  int len = sizeof ss;
  if (get(&t, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return std::nullopt;
  return stun::TransportAddress::from_sockaddr(reinterpret_cast<const sockaddr*>(&ss));
}

}  // namespace

TcpListener::TcpListener(uv_loop_t* loop, const Clock& clock, StreamHandler& handler, const ConnectionLimits& limits,
                         ConnectionLimiter& limiter, ConnectionStats& stats)
    : loop_(loop), clock_(clock), handler_(handler), limits_(limits), limiter_(limiter), stats_(stats) {}

TcpListener::~TcpListener() { close(); }

int TcpListener::listen(const stun::TransportAddress& local, const SocketOptions& options, turn::Transport transport,
                        std::shared_ptr<TlsCertificates> tls, std::optional<ProxySettings> proxy) {
  if (transport == turn::Transport::Tls && tls == nullptr) return UV_EINVAL;
  const int fd = open_bound_socket(SOCK_STREAM, local, options);
  if (fd < 0) return fd;
  auto l = std::make_unique<Listening>();
  l->owner = this;
  l->transport = transport;
  l->proxy = std::move(proxy);
  if (transport == turn::Transport::Tls) {
    l->tls = std::make_unique<TlsContextCache>(std::move(tls));
    if (!cipher_buffer_) cipher_buffer_ = std::make_unique<uint8_t[]>(kCipherBuffer);
  }
  int rc = l->handle.init(loop_, l.get(), uv_tcp_init);
  if (rc != 0) {
    ::close(fd);
    return rc;
  }
  rc = uv_tcp_open(l->handle.get(), fd);
  if (rc != 0) ::close(fd);  // not adopted by the handle
  if (rc == 0) rc = uv_listen(l->handle.stream(), limits_.backlog, &TcpListener::on_connection);
  if (rc != 0) return rc;  // l's handle closes with it
  if (options.reuse_port) steer_by_source_ip(fd, local.family, options.steer_by_ip_among);
  listening_.push_back(std::move(l));
  addresses_.push_back(bound_address(fd, local));
  return 0;
}

void TcpListener::on_connection(uv_stream_t* server, int status) {
  auto* l = TcpHandle::owner_of<Listening>(server);
  if (status < 0 || l == nullptr) return;  // e.g. EMFILE: the kernel keeps the connection queued
  l->owner->accept(*l);
}

void TcpListener::accept(Listening& l) {
  auto* c = new Connection();
  c->owner = this;
  if (c->handle.init(loop_, c, uv_tcp_init) != 0) {
    delete c;
    return;
  }
  auto discard = [&] {
    c->closing = true;
    c->owner = nullptr;
    c->handle.close(&TcpListener::on_close, c);
  };
  if (uv_accept(l.handle.stream(), c->handle.stream()) != 0) return discard();
  auto peer = address_of(&uv_tcp_getpeername, *c->handle.get());
  auto local = address_of(&uv_tcp_getsockname, *c->handle.get());
  if (!peer || !local) return discard();
  if (l.proxy) {
    // Only the proxies may speak for someone else; the limits apply to the client the header names.
    const auto& trusted = l.proxy->trusted;
    if (std::none_of(trusted.begin(), trusted.end(), [&](const turn::Cidr& cidr) { return cidr.contains(*peer); })) {
      stats_.proxy_untrusted.add();
      spdlog::debug("tcp: closed a connection from {}: not in trusted_proxies", peer->to_string());
      return discard();
    }
    c->awaiting_proxy = true;
    c->proxy_version = l.proxy->version;
  } else if (!limiter_.try_acquire(*peer)) {
    // Over the limit: closed before anything is allocated for it (issue 5: connection floods).
    stats_.rejected.add();
    return discard();
  } else {
    c->counted = true;
  }
  auto release = [&] {
    if (c->counted) limiter_.release(*peer);
    c->counted = false;
  };
  c->tuple = turn::FiveTuple{*peer, *local, l.transport};
  if (l.tls) {
    const TlsContext* ctx = l.tls->get();
    c->tls = TlsSession::create(ctx != nullptr ? ctx->tls() : nullptr, c);
    if (!c->tls) {
      release();
      return discard();
    }
  }
  uv_tcp_nodelay(c->handle.get(), 1);  // STUN transactions are small and latency-bound
  c->buffer = std::make_unique<uint8_t[]>(limits_.read_buffer);
  c->deadlines.open(monotonic_ms(clock_));
  if (auto it = connections_.find(c->tuple); it != connections_.end()) close(*it->second, true);
  if (uv_read_start(c->handle.stream(), &TcpListener::on_alloc, &TcpListener::on_read) != 0) {
    release();
    return discard();
  }
  stats_.accepted.add();
  connections_[c->tuple] = c;
}

void TcpListener::on_alloc(uv_handle_t* h, size_t, uv_buf_t* buf) {
  auto* c = TcpHandle::owner_of<Connection>(h);
  if (c == nullptr) {  // closed: nothing more is read
    *buf = uv_buf_init(nullptr, 0);
    return;
  }
  if (c->awaiting_proxy) {
    // The header goes to the connection's own buffer (before any TLS), and no further than the
    // longest header accepted: what follows it is copied on from there.
    buf->base = reinterpret_cast<char*>(c->buffer.get() + c->used);
    buf->len = c->used < kProxyMaxLength ? kProxyMaxLength - c->used : 0;
    return;
  }
  if (c->tls) {
    // Decrypted before the next read, so every TLS connection of the loop can share it.
    buf->base = reinterpret_cast<char*>(c->owner->cipher_buffer_.get());
    buf->len = kCipherBuffer;
    return;
  }
  // A full buffer yields len 0, which libuv reports to on_read as UV_ENOBUFS: the connection closes.
  buf->base = reinterpret_cast<char*>(c->buffer.get() + c->used);
  buf->len = c->owner->limits_.read_buffer - c->used;
}

void TcpListener::on_read(uv_stream_t* s, ssize_t nread, const uv_buf_t*) {
  auto* c = TcpHandle::owner_of<Connection>(s);
  if (c == nullptr || c->closing) return;
  TcpListener& self = *c->owner;
  if (nread < 0) {
    self.close(*c, true);
    return;
  }
  if (nread == 0) return;  // EAGAIN
  c->deadlines.read(monotonic_ms(self.clock_));
  if (c->awaiting_proxy) {
    c->used += static_cast<size_t>(nread);
    self.read_proxy_header(*c);
    return;
  }
  if (c->tls) {
    self.decrypt(*c, static_cast<size_t>(nread));
    return;
  }
  c->used += static_cast<size_t>(nread);
  self.consume(*c);
}

void TcpListener::read_proxy_header(Connection& c) {
  const ProxyParse p = parse_proxy_header(stun::Bytes(c.buffer.get(), c.used));
  if (p.status == ProxyParseStatus::NeedMore) return;  // the handshake timeout bounds the wait
  if (p.status == ProxyParseStatus::Invalid || p.header.version != c.proxy_version) {
    stats_.proxy_bad_header.add();
    spdlog::debug("tcp: closed a connection from proxy {}: {}", c.tuple.client.to_string(),
                  p.status == ProxyParseStatus::Invalid ? p.error : "PROXY header of the other version");
    close(c, false);
    return;
  }
  c.awaiting_proxy = false;
  turn::FiveTuple real = c.tuple;
  if (p.header.source) real.client = *p.header.source;  // else LOCAL/UNKNOWN: the proxy itself
  if (!limiter_.try_acquire(real.client)) {
    stats_.rejected.add();
    close(c, false);
    return;
  }
  c.counted = true;
  // From here on the connection is the client's: re-file it under the real 5-tuple.
  if (auto it = connections_.find(c.tuple); it != connections_.end() && it->second == &c) connections_.erase(it);
  c.tuple = real;
  if (auto it = connections_.find(c.tuple); it != connections_.end()) close(*it->second, true);
  connections_[c.tuple] = &c;
  const size_t rest = c.used - p.header.length;
  uint8_t* after = c.buffer.get() + p.header.length;
  if (c.tls) {
    // What followed the header is the start of the TLS stream (rest < kProxyMaxLength, well
    // inside the cipher buffer).
    std::memcpy(cipher_buffer_.get(), after, rest);
    c.used = 0;
    if (rest > 0) decrypt(c, rest);
    return;
  }
  std::memmove(c.buffer.get(), after, rest);
  c.used = rest;
  if (rest > 0) consume(c);
}

void TcpListener::decrypt(Connection& c, size_t n) {
  const TlsPumpEnd end = pump_tls(
      *c.tls, stun::Bytes(cipher_buffer_.get(), n),
      // consume() leaves at most one partial frame no larger than the buffer, so there is room.
      [&] { return stun::MutableBytes(c.buffer.get() + c.used, limits_.read_buffer - c.used); },
      [&](size_t bytes) {
    c.used += bytes;
    consume(c);
      },
      [&] { return c.closing; }, stats_, c.tuple);
  if (end == TlsPumpEnd::Closed || end == TlsPumpEnd::Failed) close(c, true);
}

void TcpListener::consume(Connection& c) {
  uint8_t* buf = c.buffer.get();
  size_t off = 0;
  handler_.frames_begin(stun::Bytes(buf, c.used));
  while (!c.closing && !c.raw) {
    // Frame every ChannelData number a client may have bound (up to 0x7FFF); the core decides validity.
    auto size = stun::stream_frame_size(stun::Bytes(buf + off, c.used - off), stun::kMaxChannelRfc5766);
    if (!size || (*size && **size > limits_.read_buffer)) {
      stats_.bad_input.add();
      close(c, true);  // not STUN/ChannelData, or a frame we could never hold
      return;
    }
    if (!*size || **size > c.used - off) break;  // a partial frame: wait for more
    const size_t n = **size;
    c.deadlines.established = true;
    handler_.on_frame(c.tuple, stun::Bytes(buf + off, n));
    off += n;
  }
  handler_.frames_end();  // before the buffer moves: what the frames relayed leaves now
  if (c.closing) return;  // the handler ended the connection (e.g. its allocation went away)
  if (c.raw) {
    // A data connection (possibly since the frame just handled, its ConnectionBind): whatever
    // follows is the client's data for the peer.
    c.used -= off;  // first, so a handler that reads again finds the buffer free
    if (c.used > 0 && raw_handler_ != nullptr) raw_handler_->on_raw_bytes(c.raw_id, stun::Bytes(buf + off, c.used));
    c.used = 0;
    return;
  }
  if (off > 0) {
    std::memmove(buf, buf + off, c.used - off);
    c.used -= off;
  }
}

bool TcpListener::send(const turn::FiveTuple& to, stun::Bytes frame) {
  auto it = connections_.find(to);
  if (it == connections_.end()) {
    ++dropped_frames_;
    return false;
  }
  Connection& c = *it->second;
  if (c.queued > 0 && c.queued + frame.size() > limits_.write_budget) {
    // The client reads slower than its peers send: drop whole frames, never part of one (or of a
    // TLS record: the budget is checked before encrypting).
    ++dropped_frames_;
    stats_.write_budget_drops.add();
    return false;
  }
  if (c.tls) {
    if (!c.tls->write(frame)) {  // the records went to write_bytes() through on_tls_output()
      ++dropped_frames_;
      return false;
    }
    return !c.closing;
  }
  return write_bytes(c, frame);
}

bool TcpListener::write_bytes(Connection& c, stun::Bytes bytes) {
  if (c.closing) return false;
  // Any unwritten tail of a partly written frame must follow, or the stream loses its framing.
  const long queued = write_or_queue(c.handle.stream(), bytes, c.queued, &TcpListener::on_write);
  if (queued < 0) {
    close(c, true);
    return false;
  }
  c.queued += static_cast<size_t>(queued);
  return true;
}

void TcpListener::on_write(uv_write_t* req, int status) {
  std::unique_ptr<QueuedWrite> w(static_cast<QueuedWrite*>(req->data));
  auto* cp = TcpHandle::owner_of<Connection>(req->handle);
  if (cp == nullptr) return;  // closed: the rest of its writes end with UV_ECANCELED
  Connection& c = *cp;
  c.queued -= w->size;
  if (c.closing || c.owner == nullptr) return;
  TcpListener& self = *c.owner;
  if (status < 0) {
    self.close(c, true);
    return;
  }
  if (!c.raw) return;
  if (c.close_when_drained && c.queued == 0) {
    self.close(c, false);
  } else if (c.queued <= self.limits_.write_budget / 2 && self.raw_handler_ != nullptr) {
    self.raw_handler_->on_raw_drained(c.raw_id);
  }
}

bool TcpListener::make_raw(const turn::FiveTuple& client, uint32_t id) {
  auto it = connections_.find(client);
  if (it == connections_.end() || it->second->closing) return false;
  it->second->raw = true;
  it->second->raw_id = id;
  return true;
}

std::optional<size_t> TcpListener::write_raw(const turn::FiveTuple& client, stun::Bytes bytes) {
  auto it = connections_.find(client);
  if (it == connections_.end()) return std::nullopt;
  Connection& c = *it->second;
  if (c.tls) {
    if (!c.tls->write(bytes)) return std::nullopt;
  } else if (!write_bytes(c, bytes)) {
    return std::nullopt;
  }
  if (c.closing) return std::nullopt;
  return c.queued;
}

void TcpListener::set_reading(const turn::FiveTuple& client, bool reading) {
  auto it = connections_.find(client);
  if (it == connections_.end() || it->second->closing) return;
  Connection& c = *it->second;
  if (reading) {
    if (uv_read_start(c.handle.stream(), &TcpListener::on_alloc, &TcpListener::on_read) != 0) close(c, true);
  } else {
    uv_read_stop(c.handle.stream());
  }
}

void TcpListener::close_when_drained(const turn::FiveTuple& client) {
  auto it = connections_.find(client);
  if (it == connections_.end()) return;
  Connection& c = *it->second;
  if (c.queued == 0) {
    close(c, false);
    return;
  }
  uv_read_stop(c.handle.stream());
  c.close_when_drained = true;
}

size_t TcpListener::connection_count(turn::Transport transport) const {
  size_t n = 0;
  for (const auto& [tuple, c] : connections_) n += tuple.transport == transport;
  return n;
}

void TcpListener::close_connection(const turn::FiveTuple& client) {
  auto it = connections_.find(client);
  if (it != connections_.end()) close(*it->second, false);
}

void TcpListener::sweep_idle() {
  StreamSweep<Connection> sweep(monotonic_ms(clock_), limits_);
  for (auto& [tuple, c] : connections_) {
    // A data connection lives as long as its allocation, as does one holding an allocation.
    sweep.check(*c, c->deadlines, [&, &tuple = tuple, c = c] { return c->raw || handler_.holds_allocation(tuple); });
  }
  sweep.close_expired(stats_, [&](Connection& c) { close(c, true); });
}

void TcpListener::close(Connection& c, bool notify) {
  if (c.closing) return;
  if (c.tls) {
    c.tls->close_notify();  // a no-op when called from inside the session or after a failure
    if (c.closing) return;  // writing the alert failed and closed the connection already
  }
  c.closing = true;
  c.notify_on_close = notify;
  if (c.counted) {
    limiter_.release(c.tuple.client);
    c.counted = false;
  }
  if (auto it = connections_.find(c.tuple); it != connections_.end() && it->second == &c) connections_.erase(it);
  // on_closed() runs from the close callback, never from inside a frame the core is handling.
  closing_.insert(&c);
  c.handle.close(&TcpListener::on_close, &c);
}

void TcpListener::on_close(void* connection) {
  std::unique_ptr<Connection> c(static_cast<Connection*>(connection));
  if (c->owner == nullptr) return;  // the listener is gone
  c->owner->closing_.erase(c.get());
  if (!c->notify_on_close) return;
  if (c->raw) {
    if (c->owner->raw_handler_ != nullptr) c->owner->raw_handler_->on_raw_closed(c->raw_id);
  } else {
    c->owner->handler_.on_closed(c->tuple);
  }
}

void TcpListener::close() {
  if (closed_) return;
  closed_ = true;
  listening_.clear();  // their handles close with them
  for (auto& [tuple, c] : connections_) {
    if (c->counted) limiter_.release(c->tuple.client);
    c->counted = false;
    c->closing = true;
    c->owner = nullptr;
    c->handle.close(&TcpListener::on_close, c);
  }
  connections_.clear();
  // Connections already closing must not call back into a listener that may be destroyed next.
  for (Connection* c : closing_) c->owner = nullptr;
  closing_.clear();
}

}  // namespace ferry::server
