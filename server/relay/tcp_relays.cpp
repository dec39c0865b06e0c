#include "server/relay/tcp_relays.h"

#include <cstring>
#include <sys/socket.h>
#include <unistd.h>
#include <vector>

#include "server/net/socket_fd.h"
#include "server/net/stream_write.h"
#include "turn/server_core.h"

namespace ferry::server {

namespace {
constexpr size_t kReadBuffer = 65536;     // per bound peer connection
constexpr int kBacklog = 64;              // peers connecting to one relayed address at once
constexpr uint64_t kDrainTimeoutMs = 30'000;  // a peer that will not take the rest is cut off

uv_stream_t* stream(uv_tcp_t& t) { return as_stream(t); }
uv_handle_t* handle(uv_tcp_t& t) { return as_handle(t); }

// Relayed addresses are shared: the listener and every connection made from it bind the same
// address and port (RFC 6062 §5.2), which Linux allows between sockets that all set SO_REUSEPORT.
int relay_socket(const stun::TransportAddress& local) {
  return open_bound_socket(SOCK_STREAM, local, SocketOptions{.reuse_port = true});
}
}  // namespace

struct TcpRelays::Listener {
  uv_tcp_t handle{};
  TcpRelays* owner = nullptr;
  turn::RelayId relay = 0;
  stun::TransportAddress local;
};

struct TcpRelays::PeerConnection {
  enum class State : uint8_t { Connecting, Waiting, Bound };
  uv_tcp_t handle{};
  uv_connect_t connect{};
  TcpRelays* owner = nullptr;
  turn::ConnectionId id = 0;
  State state = State::Connecting;
  turn::FiveTuple client;             // the client data connection, once bound
  std::unique_ptr<uint8_t[]> buffer;  // kReadBuffer bytes, from the bind on
  size_t queued = 0;                  // bytes for the peer its socket has not taken yet
  bool reading = false;
  bool client_paused = false;  // the client is not read while this queue is over the budget
  bool closing = false;
  uint64_t draining_since_ms = 0;
};

TcpRelays::TcpRelays(uv_loop_t* loop, TcpListener& clients) : loop_(loop), clients_(clients) {
  clients_.set_raw_handler(this);
}

TcpRelays::~TcpRelays() {
  close_all();
  clients_.set_raw_handler(nullptr);
}

// ---- listeners --------------------------------------------------------------------------------------

turn::OpenRelayResult TcpRelays::open(turn::RelayId relay, const stun::TransportAddress& local) {
  const int fd = relay_socket(local);
  if (fd < 0) return fd == UV_EADDRINUSE ? turn::OpenRelayResult::PortInUse : turn::OpenRelayResult::NoResources;
  auto* l = new Listener();
  l->owner = this;
  l->relay = relay;
  l->local = local;
  l->handle.data = l;
  if (uv_tcp_init(loop_, &l->handle) != 0) {
    ::close(fd);
    delete l;
    return turn::OpenRelayResult::NoResources;
  }
  int rc = uv_tcp_open(&l->handle, fd);
  if (rc != 0) ::close(fd);
  if (rc == 0) rc = uv_listen(stream(l->handle), kBacklog, &TcpRelays::on_accept);
  if (rc != 0) {
    uv_close(handle(l->handle), [](uv_handle_t* h) { delete static_cast<Listener*>(h->data); });
    return rc == UV_EADDRINUSE ? turn::OpenRelayResult::PortInUse : turn::OpenRelayResult::NoResources;
  }
  listeners_[relay] = l;
  return turn::OpenRelayResult::Opened;
}

void TcpRelays::close_listener(turn::RelayId relay) {
  auto it = listeners_.find(relay);
  if (it == listeners_.end()) return;
  it->second->owner = nullptr;
  uv_close(handle(it->second->handle), [](uv_handle_t* h) { delete static_cast<Listener*>(h->data); });
  listeners_.erase(it);
}

void TcpRelays::on_accept(uv_stream_t* server, int status) {
  auto* l = static_cast<Listener*>(server->data);
  if (status < 0 || l->owner == nullptr) return;
  l->owner->accept(*l);
}

void TcpRelays::accept(Listener& l) {
  auto* p = new PeerConnection();
  p->owner = this;
  p->handle.data = p;
  p->state = PeerConnection::State::Waiting;
  if (uv_tcp_init(loop_, &p->handle) != 0) {
    delete p;
    return;
  }
  std::optional<turn::ConnectionId> id;
  if (uv_accept(stream(l.handle), stream(p->handle)) == 0 && core_ != nullptr) {
    sockaddr_storage ss{};
    int len = sizeof ss;
    if (uv_tcp_getpeername(&p->handle, reinterpret_cast<sockaddr*>(&ss), &len) == 0) {
      if (auto peer = stun::TransportAddress::from_sockaddr(reinterpret_cast<const sockaddr*>(&ss))) {
        id = core_->on_peer_connection(l.relay, *peer);  // sends the ConnectionAttempt
      }
    }
  }
  if (!id) {  // no permission, denied, too many: closed at once (§5.3)
    close_peer(*p, false);
    return;
  }
  p->id = *id;
  connections_[*id] = p;  // not read until bound: its data waits in the kernel
}

// ---- Connect (§5.2) -----------------------------------------------------------------------------------

bool TcpRelays::connect(turn::ConnectionId id, turn::RelayId relay, const stun::TransportAddress& peer) {
  auto l = listeners_.find(relay);
  if (l == listeners_.end()) return false;
  const int fd = relay_socket(l->second->local);
  if (fd < 0) return false;
  auto* p = new PeerConnection();
  p->owner = this;
  p->id = id;
  p->handle.data = p;
  p->connect.data = p;
  if (uv_tcp_init(loop_, &p->handle) != 0) {
    ::close(fd);
    delete p;
    return false;
  }
  sockaddr_storage ss{};
  peer.to_sockaddr(ss);
  int rc = uv_tcp_open(&p->handle, fd);
  if (rc != 0) ::close(fd);
  if (rc == 0) rc = uv_tcp_connect(&p->connect, &p->handle, reinterpret_cast<const sockaddr*>(&ss), &on_connected);
  if (rc != 0) {
    close_peer(*p, false);
    return false;
  }
  connections_[id] = p;
  return true;
}

void TcpRelays::on_connected(uv_connect_t* req, int status) {
  auto* p = static_cast<PeerConnection*>(req->data);
  if (p->closing || p->owner == nullptr) return;  // abandoned (timeout, allocation gone): UV_ECANCELED
  TcpRelays& self = *p->owner;
  const turn::ConnectionId id = p->id;
  if (status < 0) {
    self.close_peer(*p, false);
  } else {
    p->state = PeerConnection::State::Waiting;
    uv_tcp_nodelay(&p->handle, 1);
  }
  if (self.core_ != nullptr) self.core_->on_peer_connected(id, status == 0);  // answers the Connect
}

// ---- the pipe (§5.4) ------------------------------------------------------------------------------------

void TcpRelays::bind(turn::ConnectionId id, const turn::FiveTuple& client) {
  auto it = connections_.find(id);
  if (it == connections_.end()) return;
  PeerConnection& p = *it->second;
  p.state = PeerConnection::State::Bound;
  p.client = client;
  p.buffer = std::make_unique_for_overwrite<uint8_t[]>(kReadBuffer);
  if (!clients_.make_raw(client, id) || uv_read_start(stream(p.handle), &on_alloc, &on_read) != 0) {
    close_peer(p, true);
    if (core_ != nullptr) core_->on_peer_connection_closed(id);
    return;
  }
  p.reading = true;
}

void TcpRelays::on_alloc(uv_handle_t* h, size_t, uv_buf_t* buf) {
  auto* p = static_cast<PeerConnection*>(h->data);
  buf->base = reinterpret_cast<char*>(p->buffer.get());
  buf->len = kReadBuffer;
}

void TcpRelays::on_read(uv_stream_t* s, ssize_t nread, const uv_buf_t*) {
  auto* p = static_cast<PeerConnection*>(s->data);
  if (p->closing || p->owner == nullptr) return;
  TcpRelays& self = *p->owner;
  if (nread < 0) {
    self.peer_ended(*p, nread == UV_EOF);
    return;
  }
  if (nread == 0) return;
  auto queued = self.clients_.write_raw(p->client, stun::Bytes(p->buffer.get(), static_cast<size_t>(nread)));
  if (!queued) {  // the client connection failed under the write
    const turn::ConnectionId id = p->id;
    self.close_peer(*p, true);
    if (self.core_ != nullptr) self.core_->on_peer_connection_closed(id);
    return;
  }
  if (*queued > self.clients_.write_budget()) {  // the client reads slower than the peer sends
    uv_read_stop(s);
    p->reading = false;
  }
}

void TcpRelays::on_raw_drained(uint32_t id) {
  auto it = connections_.find(id);
  if (it == connections_.end()) return;
  PeerConnection& p = *it->second;
  if (p.reading || p.closing || p.state != PeerConnection::State::Bound) return;
  if (uv_read_start(stream(p.handle), &on_alloc, &on_read) == 0) p.reading = true;
}

void TcpRelays::on_raw_bytes(uint32_t id, stun::Bytes bytes) {
  auto it = connections_.find(id);
  if (it == connections_.end()) return;
  PeerConnection& p = *it->second;
  write_to_peer(p, bytes);
  if (p.closing) return;
  if (p.queued > clients_.write_budget() && !p.client_paused) {  // the peer reads slower than the client sends
    clients_.set_reading(p.client, false);
    p.client_paused = true;
  }
}

void TcpRelays::write_to_peer(PeerConnection& p, stun::Bytes bytes) {
  // Copied only when the peer's socket is full; the budget bounds how much.
  const long queued = write_or_queue(stream(p.handle), bytes, p.queued, &p, &on_write);
  if (queued < 0) {
    peer_ended(p, false);
    return;
  }
  p.queued += static_cast<size_t>(queued);
}

void TcpRelays::on_write(uv_write_t* req, int status) {
  std::unique_ptr<QueuedWrite> w(static_cast<QueuedWrite*>(req->data));
  PeerConnection& p = *static_cast<PeerConnection*>(w->owner);  // write callbacks run before the close callback frees it
  p.queued -= w->size;
  if (p.closing || p.owner == nullptr) return;
  TcpRelays& self = *p.owner;
  if (self.draining_.count(&p) != 0) {  // the client is gone; the rest has reached the peer
    if (status < 0 || p.queued == 0) self.close_peer(p, false);
    return;
  }
  if (status < 0) {
    self.peer_ended(p, false);
    return;
  }
  if (p.client_paused && p.queued <= self.clients_.write_budget() / 2) {
    self.clients_.set_reading(p.client, true);
    p.client_paused = false;
  }
}

// ---- endings (§5.5) -------------------------------------------------------------------------------------

void TcpRelays::peer_ended(PeerConnection& p, bool graceful) {
  const turn::ConnectionId id = p.id;
  // The peer closed: what it sent still reaches the client, then the client connection closes.
  if (p.state == PeerConnection::State::Bound) {
    if (graceful) {
      clients_.close_when_drained(p.client);
    } else {
      clients_.close_connection(p.client);
    }
  }
  close_peer(p, false);
  if (core_ != nullptr) core_->on_peer_connection_closed(id);
}

void TcpRelays::on_raw_closed(uint32_t id) {
  auto it = connections_.find(id);
  if (it == connections_.end()) return;
  PeerConnection& p = *it->second;
  connections_.erase(it);
  if (core_ != nullptr) core_->on_peer_connection_closed(id);
  if (p.queued == 0) {
    close_peer(p, false);
    return;
  }
  // The client closed: what it sent still reaches the peer, within kDrainTimeoutMs.
  uv_read_stop(stream(p.handle));
  p.reading = false;
  p.draining_since_ms = uv_now(loop_);
  draining_.insert(&p);
}

void TcpRelays::close(turn::ConnectionId id) {
  auto it = connections_.find(id);
  if (it != connections_.end()) close_peer(*it->second, true);
}

void TcpRelays::close_peer(PeerConnection& p, bool client) {
  if (p.closing) return;
  p.closing = true;
  if (auto it = connections_.find(p.id); it != connections_.end() && it->second == &p) connections_.erase(it);
  draining_.erase(&p);
  if (client && p.state == PeerConnection::State::Bound) clients_.close_connection(p.client);
  uv_close(handle(p.handle), [](uv_handle_t* h) { delete static_cast<PeerConnection*>(h->data); });
}

void TcpRelays::sweep() {
  const uint64_t now = uv_now(loop_);
  std::vector<PeerConnection*> late;
  for (PeerConnection* p : draining_) {
    if (now - p->draining_since_ms >= kDrainTimeoutMs) late.push_back(p);
  }
  for (PeerConnection* p : late) close_peer(*p, false);
}

void TcpRelays::close_all() {
  std::vector<turn::RelayId> relays;
  for (auto& [relay, l] : listeners_) relays.push_back(relay);
  for (turn::RelayId r : relays) close_listener(r);
  std::vector<PeerConnection*> all(draining_.begin(), draining_.end());
  for (auto& [id, p] : connections_) all.push_back(p);
  for (PeerConnection* p : all) close_peer(*p, false);  // the client listener closes its own
}

}  // namespace ferry::server
