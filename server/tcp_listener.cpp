#include "server/tcp_listener.h"

#include <cstring>
#include <memory>
#include <sys/socket.h>
#include <unistd.h>

#include "server/socket_fd.h"
#include "stun/channel_data.h"

namespace ferry::server {

struct TcpListener::Listening {
  uv_tcp_t handle{};
  TcpListener* owner = nullptr;
};

struct TcpListener::Connection {
  uv_tcp_t handle{};
  TcpListener* owner = nullptr;
  turn::FiveTuple tuple;
  std::unique_ptr<uint8_t[]> buffer;  // limits_.read_buffer bytes; [0, used) not yet framed
  size_t used = 0;
  size_t queued = 0;  // bytes in uv_write requests still in flight
  uint64_t last_read_ms = 0;
  bool closing = false;
  bool notify_on_close = false;
};

namespace {

struct WriteRequest {
  uv_write_t req{};
  TcpListener::Connection* connection = nullptr;
  size_t size = 0;
  std::unique_ptr<uint8_t[]> bytes;
};

uv_stream_t* stream(uv_tcp_t& t) { return reinterpret_cast<uv_stream_t*>(&t); }
uv_handle_t* handle(uv_tcp_t& t) { return reinterpret_cast<uv_handle_t*>(&t); }

std::optional<stun::TransportAddress> address_of(int (*get)(const uv_tcp_t*, sockaddr*, int*), const uv_tcp_t& t) {
  sockaddr_storage ss{};
  int len = sizeof ss;
  if (get(&t, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return std::nullopt;
  return stun::TransportAddress::from_sockaddr(reinterpret_cast<const sockaddr*>(&ss));
}

}  // namespace

TcpListener::TcpListener(uv_loop_t* loop, StreamHandler& handler, TcpLimits limits)
    : loop_(loop), handler_(handler), limits_(limits) {}

TcpListener::~TcpListener() { close(); }

int TcpListener::listen(const stun::TransportAddress& local, const SocketOptions& options) {
  const int fd = open_bound_socket(SOCK_STREAM, local, options);
  if (fd < 0) return fd;
  auto* l = new Listening();
  l->owner = this;
  l->handle.data = l;
  int rc = uv_tcp_init(loop_, &l->handle);
  if (rc != 0) {
    ::close(fd);
    delete l;
    return rc;
  }
  rc = uv_tcp_open(&l->handle, fd);
  if (rc != 0) ::close(fd);  // not adopted by the handle
  if (rc == 0) rc = uv_listen(stream(l->handle), limits_.backlog, &TcpListener::on_connection);
  if (rc != 0) {
    uv_close(handle(l->handle), [](uv_handle_t* h) { delete static_cast<Listening*>(h->data); });
    return rc;
  }
  if (options.reuse_port) steer_by_source_ip(fd, local.family, options.steer_by_ip_among);
  listening_.push_back(l);
  addresses_.push_back(bound_address(fd, local));
  return 0;
}

void TcpListener::on_connection(uv_stream_t* server, int status) {
  auto* l = static_cast<Listening*>(server->data);
  if (status < 0 || l->owner == nullptr) return;  // e.g. EMFILE: the kernel keeps the connection queued
  l->owner->accept(*l);
}

void TcpListener::accept(Listening& l) {
  auto* c = new Connection();
  c->owner = this;
  c->handle.data = c;
  if (uv_tcp_init(loop_, &c->handle) != 0) {
    delete c;
    return;
  }
  auto discard = [&] {
    c->closing = true;
    c->owner = nullptr;
    uv_close(handle(c->handle), &TcpListener::on_close);
  };
  if (uv_accept(stream(l.handle), stream(c->handle)) != 0) return discard();
  auto peer = address_of(&uv_tcp_getpeername, c->handle);
  auto local = address_of(&uv_tcp_getsockname, c->handle);
  if (!peer || !local) return discard();
  c->tuple = turn::FiveTuple{*peer, *local, turn::Transport::Tcp};
  uv_tcp_nodelay(&c->handle, 1);  // STUN transactions are small and latency-bound
  c->buffer = std::make_unique<uint8_t[]>(limits_.read_buffer);
  c->last_read_ms = uv_now(loop_);
  if (auto it = connections_.find(c->tuple); it != connections_.end()) close(*it->second, true);
  if (uv_read_start(stream(c->handle), &TcpListener::on_alloc, &TcpListener::on_read) != 0) return discard();
  connections_[c->tuple] = c;
}

void TcpListener::on_alloc(uv_handle_t* h, size_t, uv_buf_t* buf) {
  auto* c = static_cast<Connection*>(h->data);
  // A full buffer yields len 0, which libuv reports to on_read as UV_ENOBUFS: the connection closes.
  buf->base = reinterpret_cast<char*>(c->buffer.get() + c->used);
  buf->len = c->owner->limits_.read_buffer - c->used;
}

void TcpListener::on_read(uv_stream_t* s, ssize_t nread, const uv_buf_t*) {
  auto* c = static_cast<Connection*>(s->data);
  if (c->closing) return;
  TcpListener& self = *c->owner;
  if (nread < 0) {
    self.close(*c, true);
    return;
  }
  if (nread == 0) return;  // EAGAIN
  c->used += static_cast<size_t>(nread);
  c->last_read_ms = uv_now(self.loop_);
  self.consume(*c);
}

void TcpListener::consume(Connection& c) {
  uint8_t* buf = c.buffer.get();
  size_t off = 0;
  while (!c.closing) {
    // Frame every ChannelData number a client may have bound (up to 0x7FFF); the core decides validity.
    auto size = stun::stream_frame_size(stun::Bytes(buf + off, c.used - off), stun::kMaxChannelRfc5766);
    if (!size || (*size && **size > limits_.read_buffer)) {
      close(c, true);  // not STUN/ChannelData, or a frame we could never hold
      return;
    }
    if (!*size || **size > c.used - off) break;  // a partial frame: wait for more
    const size_t n = **size;
    handler_.on_frame(c.tuple, stun::Bytes(buf + off, n));
    off += n;
  }
  if (c.closing) return;  // the handler ended the connection (e.g. its allocation went away)
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
  size_t written = 0;
  if (c.queued == 0) {
    uv_buf_t b = uv_buf_init(const_cast<char*>(reinterpret_cast<const char*>(frame.data())),
                             static_cast<unsigned>(frame.size()));
    const int n = uv_try_write(stream(c.handle), &b, 1);
    if (n >= 0 && static_cast<size_t>(n) == frame.size()) return true;
    if (n >= 0) {
      written = static_cast<size_t>(n);
    } else if (n != UV_EAGAIN) {
      close(c, true);
      return false;
    }
  } else if (c.queued + frame.size() > limits_.write_budget) {
    // The client reads slower than its peers send: drop whole frames, never part of one.
    ++dropped_frames_;
    return false;
  }
  // Any unwritten tail of a partly written frame must follow, or the stream loses its framing.
  auto* w = new WriteRequest();
  w->connection = &c;
  w->size = frame.size() - written;
  w->bytes = std::make_unique<uint8_t[]>(w->size);
  std::memcpy(w->bytes.get(), frame.data() + written, w->size);
  uv_buf_t b = uv_buf_init(reinterpret_cast<char*>(w->bytes.get()), static_cast<unsigned>(w->size));
  w->req.data = w;
  if (uv_write(&w->req, stream(c.handle), &b, 1, &TcpListener::on_write) != 0) {
    delete w;
    close(c, true);
    return false;
  }
  c.queued += w->size;
  return true;
}

void TcpListener::on_write(uv_write_t* req, int status) {
  std::unique_ptr<WriteRequest> w(static_cast<WriteRequest*>(req->data));
  Connection& c = *w->connection;  // write callbacks run before the close callback frees it
  c.queued -= w->size;
  if (status < 0 && !c.closing) c.owner->close(c, true);
}

void TcpListener::close_connection(const turn::FiveTuple& client) {
  auto it = connections_.find(client);
  if (it != connections_.end()) close(*it->second, false);
}

void TcpListener::sweep_idle() {
  const uint64_t now = uv_now(loop_);
  std::vector<Connection*> idle;
  for (auto& [tuple, c] : connections_) {
    if (now - c->last_read_ms >= limits_.idle_timeout_ms && !handler_.holds_allocation(tuple)) idle.push_back(c);
  }
  for (Connection* c : idle) close(*c, true);
}

void TcpListener::close(Connection& c, bool notify) {
  if (c.closing) return;
  c.closing = true;
  c.notify_on_close = notify;
  if (auto it = connections_.find(c.tuple); it != connections_.end() && it->second == &c) connections_.erase(it);
  // on_closed() runs from the close callback, never from inside a frame the core is handling.
  closing_.insert(&c);
  uv_close(handle(c.handle), &TcpListener::on_close);
}

void TcpListener::on_close(uv_handle_t* h) {
  std::unique_ptr<Connection> c(static_cast<Connection*>(h->data));
  if (c->owner == nullptr) return;  // the listener is gone
  c->owner->closing_.erase(c.get());
  if (c->notify_on_close) c->owner->handler_.on_closed(c->tuple);
}

void TcpListener::close() {
  if (closed_) return;
  closed_ = true;
  for (Listening* l : listening_) {
    l->owner = nullptr;
    uv_close(handle(l->handle), [](uv_handle_t* h) { delete static_cast<Listening*>(h->data); });
  }
  listening_.clear();
  for (auto& [tuple, c] : connections_) {
    c->closing = true;
    c->owner = nullptr;
    uv_close(handle(c->handle), &TcpListener::on_close);
  }
  connections_.clear();
  // Connections already closing must not call back into a listener that may be destroyed next.
  for (Connection* c : closing_) c->owner = nullptr;
  closing_.clear();
}

}  // namespace ferry::server
