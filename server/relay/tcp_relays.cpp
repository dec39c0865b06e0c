#include "server/relay/tcp_relays.h"

#include <cstring>
#include <sys/socket.h>
#include <unistd.h>
#include <vector>

#include "server/net/socket_fd.h"
#include "server/net/stream_write.h"
#include "server/net/uv_handle.h"
#include "turn/server_core.h"

namespace ferry::server {

namespace {
constexpr size_t kReadBuffer = 65536;         // per bound peer connection
constexpr int kBacklog = 64;                  // peers connecting to one relayed address at once
constexpr uint64_t kDrainTimeoutMs = 30'000;  // a peer that will not take the rest is cut off

using TcpHandle = UvHandle<uv_tcp_t>;

// Relayed addresses are shared: the listener and every connection made from it bind the same
// address and port (RFC 6062 §5.2), which Linux allows between sockets that all set SO_REUSEPORT.
int relay_socket(const stun::TransportAddress& local) {
  return open_bound_socket(SOCK_STREAM, local, SocketOptions{.reuse_port = true});
}
}  // namespace

struct TcpRelays::Listener {
  TcpHandle handle;  // data: this Listener
  TcpRelays* owner = nullptr;
  turn::RelayId relay = 0;
  stun::TransportAddress local;
};

struct TcpRelays::PeerConnection {
  enum class State : uint8_t { Connecting, Waiting, Bound };
  // Closed with a delete of this connection as its `after`: its connect and write requests
  // point at it and end (UV_ECANCELED) before the close callback.
  TcpHandle handle;
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

TcpRelays::TcpRelays(uv_loop_t* loop, const Clock& clock, TcpListener& clients)
    : loop_(loop), clock_(clock), clients_(clients) {
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
  auto l = std::make_unique<Listener>();
  l->owner = this;
  l->relay = relay;
  l->local = local;
  if (l->handle.init(loop_, l.get(), uv_tcp_init) != 0) {
    ::close(fd);
    return turn::OpenRelayResult::NoResources;
  }
  int rc = uv_tcp_open(l->handle.get(), fd);
  if (rc != 0) ::close(fd);
  if (rc == 0) rc = uv_listen(l->handle.stream(), kBacklog, &TcpRelays::on_accept);
  if (rc != 0) return rc == UV_EADDRINUSE ? turn::OpenRelayResult::PortInUse : turn::OpenRelayResult::NoResources;
  listeners_[relay] = std::move(l);
  return turn::OpenRelayResult::Opened;
}

void TcpRelays::close_listener(turn::RelayId relay) {
  auto it = listeners_.find(relay);
  if (it == listeners_.end()) return;
  listeners_.erase(it);  // its handle closes with it
}

void TcpRelays::on_accept(uv_stream_t* server, int status) {
  auto* l = TcpHandle::owner_of<Listener>(server);
  if (status < 0 || l == nullptr) return;
  l->owner->accept(*l);
}

void TcpRelays::accept(Listener& l) {
  auto* p = new PeerConnection();
  p->owner = this;
  p->state = PeerConnection::State::Waiting;
  if (p->handle.init(loop_, p, uv_tcp_init) != 0) {
    delete p;
    return;
  }
  std::optional<turn::ConnectionId> id;
  if (uv_accept(l.handle.stream(), p->handle.stream()) == 0 && core_ != nullptr) {
    sockaddr_storage ss{};
    int len = sizeof ss;
    if (uv_tcp_getpeername(p->handle.get(), reinterpret_cast<sockaddr*>(&ss), &len) == 0) {
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
  if (p->handle.init(loop_, p, uv_tcp_init) != 0) {
    ::close(fd);
    delete p;
    return false;
  }
  sockaddr_storage ss{};
  peer.to_sockaddr(ss);
  int rc = uv_tcp_open(p->handle.get(), fd);
  if (rc != 0) ::close(fd);
  if (rc == 0) rc = uv_tcp_connect(&p->connect, p->handle.get(), reinterpret_cast<const sockaddr*>(&ss), &on_connected);
  if (rc != 0) {
    close_peer(*p, false);
    return false;
  }
  connections_[id] = p;
  return true;
}

void TcpRelays::on_connected(uv_connect_t* req, int status) {
  auto* p = TcpHandle::owner_of<PeerConnection>(req->handle);
  if (p == nullptr || p->closing) return;  // abandoned (timeout, allocation gone): UV_ECANCELED
  TcpRelays& self = *p->owner;
  const turn::ConnectionId id = p->id;
  if (status < 0) {
    self.close_peer(*p, false);
  } else {
    p->state = PeerConnection::State::Waiting;
    uv_tcp_nodelay(p->handle.get(), 1);
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
  if (!clients_.make_raw(client, id) || uv_read_start(p.handle.stream(), &on_alloc, &on_read) != 0) {
    close_peer(p, true);
    if (core_ != nullptr) core_->on_peer_connection_closed(id);
    return;
  }
  p.reading = true;
}

void TcpRelays::on_alloc(uv_handle_t* h, size_t, uv_buf_t* buf) {
  auto* p = TcpHandle::owner_of<PeerConnection>(h);
  if (p == nullptr) {  // closed: nothing more is read
    *buf = uv_buf_init(nullptr, 0);
    return;
  }
  buf->base = reinterpret_cast<char*>(p->buffer.get());
  buf->len = kReadBuffer;
}

void TcpRelays::on_read(uv_stream_t* s, ssize_t nread, const uv_buf_t*) {
  auto* p = TcpHandle::owner_of<PeerConnection>(s);
  if (p == nullptr || p->closing) return;
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
  if (uv_read_start(p.handle.stream(), &on_alloc, &on_read) == 0) p.reading = true;
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
  const long queued = write_or_queue(p.handle.stream(), bytes, p.queued, &on_write);
  if (queued < 0) {
    peer_ended(p, false);
    return;
  }
  p.queued += static_cast<size_t>(queued);
}

void TcpRelays::on_write(uv_write_t* req, int status) {
  std::unique_ptr<QueuedWrite> w(static_cast<QueuedWrite*>(req->data));
  auto* pp = TcpHandle::owner_of<PeerConnection>(req->handle);
  if (pp == nullptr) return;  // closed: the rest of its writes end with UV_ECANCELED
  PeerConnection& p = *pp;
  p.queued -= w->size;
  if (p.closing) return;
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
  uv_read_stop(p.handle.stream());
  p.reading = false;
  p.draining_since_ms = monotonic_ms(clock_);
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
  p.handle.close([](void* self) { delete static_cast<PeerConnection*>(self); }, &p);
}

void TcpRelays::sweep() {
  const uint64_t now = monotonic_ms(clock_);
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
