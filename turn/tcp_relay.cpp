// RFC 6062 TCP allocations in the core: the Allocate checks (§5.1), Connect (§5.2), peers that
// connect to the relayed address (§5.3), ConnectionBind (§5.4) and the lifetimes of the peer
// data connections (§5.2, §5.3, §5.5). The shell moves the bytes; the core decides who may connect
// and keeps the timers.
#include <algorithm>
#include <cstring>

#include "base/splitmix.h"
#include "stun/attributes.h"
#include "turn/server_core.h"

namespace ferry::turn {

using stun::Class;
using stun::MessageBuilder;
using stun::MessageView;
using stun::Method;
using stun::TransportAddress;
namespace attr = stun::attr;
namespace code = stun::code;

uint16_t ServerCore::check_tcp_allocate(const FiveTuple& from, const MessageView& msg) const {
  // §5.1: only over a TCP or TLS client connection, and without the UDP-only attributes.
  if (!is_stream(from.transport)) return code::BadRequest;
  if (msg.has(attr::DontFragment) || msg.has(attr::EvenPort) || msg.has(attr::ReservationToken)) {
    return code::BadRequest;
  }
  return 0;
}

size_t ServerCore::pending_tcp_connections(const Allocation& a) const {
  return static_cast<size_t>(std::count_if(a.tcp_connections.begin(), a.tcp_connections.end(), [&](ConnectionId id) {
    auto it = tcp_connections_.find(id);
    return it != tcp_connections_.end() && it->second.state != TcpConnection::State::Bound;
  }));
}

TcpConnection* ServerCore::new_tcp_connection(Allocation& a, const TransportAddress& peer) {
  // §6.2.1 wants the id unique; it should also be hard to guess, though a ConnectionBind needs the
  // allocation owner's credentials anyway. A keyed mix of a counter, skipping 0 and ids in use.
  uint64_t key = config_.seed;
  for (size_t i = 0; i < 8; ++i) key = (key << 8) ^ config_.nonce_key[i];
  ConnectionId id = 0;
  do {
    const uint64_t x = splitmix64(key ^ splitmix64(++connection_id_counter_));
    id = static_cast<ConnectionId>(x ^ (x >> 32));
  } while (id == 0 || tcp_connections_.count(id) != 0);
  TcpConnection& c = tcp_connections_[id];
  c.id = id;
  c.owner = &a;
  c.peer = peer;
  a.tcp_connections.push_back(id);
  stats_.tcp_connections_active.set(static_cast<int64_t>(tcp_connections_.size()));
  return &c;
}

void ServerCore::close_tcp_connection(ConnectionId id, bool tell_shell) {
  auto it = tcp_connections_.find(id);
  if (it == tcp_connections_.end()) return;
  auto& ids = it->second.owner->tcp_connections;
  ids.erase(std::remove(ids.begin(), ids.end(), id), ids.end());
  tcp_connections_.erase(it);
  stats_.tcp_connections_active.set(static_cast<int64_t>(tcp_connections_.size()));
  if (tell_shell) io_.close_peer_connection(id);
}

// ---- Connect (§5.2) -------------------------------------------------------------------------------

void ServerCore::handle_connect(const FiveTuple& from, const MessageView& msg, const Auth& auth, Allocation& a) {
  if (!a.tcp) {
    send_error(from, msg, code::BadRequest, &auth, "Connect needs a TCP allocation");
    return;
  }
  auto peer_attr = msg.find(attr::XorPeerAddress);
  auto peer = peer_attr ? stun::decode_xor_address(peer_attr->value, msg.transaction_id())
                        : stun::Result<TransportAddress>(stun::Error::Missing);
  if (!peer || peer->port == 0) {
    send_error(from, msg, code::BadRequest, &auth, "Missing or invalid XOR-PEER-ADDRESS");
    return;
  }
  const RelayLeg* leg = a.leg_for(peer->family);
  if (leg == nullptr) {
    send_error(from, msg, code::PeerAddressFamilyMismatch, &auth);
    return;
  }
  // The same peer address policy as for UDP relaying.
  if (!peer_allowed(*peer)) {
    send_error(from, msg, code::Forbidden, &auth);
    return;
  }
  // 446 while a connection to this peer is being made, waits for its bind, or is in use.
  for (ConnectionId id : a.tcp_connections) {
    if (tcp_connections_.at(id).peer == *peer) {
      send_error(from, msg, code::ConnectionAlreadyExists, &auth);
      return;
    }
  }
  if (pending_tcp_connections(a) >= config_.max_pending_tcp_connections) {
    send_error(from, msg, code::InsufficientCapacity, &auth, "Too many unbound connections");
    return;
  }
  TcpConnection& c = *new_tcp_connection(a, *peer);
  c.state = TcpConnection::State::Connecting;
  c.deadline = clock_.now() + kTcpConnectTimeout;
  std::memcpy(c.connect_request.data(), msg.cookie_and_id().data(), c.connect_request.size());
  c.connect_fingerprint = msg.fingerprint().has_value();
  if (!io_.connect_peer(c.id, leg->id, *peer)) {
    answer_connect(c, code::ConnectionTimeoutOrFailure);
    close_tcp_connection(c.id, /*tell_shell=*/false);
  }
  // The answer comes with on_peer_connected(), or from expire_tcp_connections() after the timeout.
}

void ServerCore::answer_connect(TcpConnection& c, uint16_t error) {
  const Allocation& a = *c.owner;
  const Class cls = error == 0 ? Class::Success : Class::Error;
  stats_.responses[idx(RequestMethod::Other)][idx(error == 0 ? RequestResult::Success : RequestResult::Error)].add();
  MessageBuilder b(out_, stun::make_type(Method::Connect, cls), std::span<const uint8_t, 16>(c.connect_request));
  if (error == 0) {
    b.add_u32(attr::ConnectionId, c.id);
  } else {
    b.add_error_code(error);
    stats_.errors_sent[error].add();
  }
  // The Connect came over the control connection, authenticated as the allocation's user.
  Auth auth{a.username, a.key, a.sha256, {}};
  finish_and_send(a.tuple, c.connect_fingerprint, b, &auth);
}

void ServerCore::on_peer_connected(ConnectionId id, bool connected) {
  auto it = tcp_connections_.find(id);
  if (it == tcp_connections_.end() || it->second.state != TcpConnection::State::Connecting) {
    // Given up on already (timeout, allocation gone): the shell must not keep the socket.
    if (connected) io_.close_peer_connection(id);
    return;
  }
  TcpConnection& c = it->second;
  if (!connected) {
    answer_connect(c, code::ConnectionTimeoutOrFailure);
    close_tcp_connection(id, /*tell_shell=*/false);
    return;
  }
  c.state = TcpConnection::State::AwaitingBind;
  c.deadline = clock_.now() + kTcpBindTimeout;
  stats_.tcp_connections_opened.add();
  answer_connect(c, 0);
}

// ---- a peer connects to the relayed address (§5.3) --------------------------------------------------

std::optional<ConnectionId> ServerCore::on_peer_connection(RelayId relay, const TransportAddress& peer) {
  if (relay >= relay_owner_.size() || relay_owner_[relay] == nullptr) return std::nullopt;
  Allocation& a = *relay_owner_[relay];
  if (!a.tcp) return std::nullopt;
  if (!peer_allowed(peer)) {
    stats_.drop(DropReason::Policy);
    return std::nullopt;
  }
  // Without a permission for the peer's IP the connection is closed at once, and the client
  // hears nothing of it.
  if (!a.permissions.allows(peer, clock_.now())) {
    stats_.drop(DropReason::NoPermission);
    return std::nullopt;
  }
  for (ConnectionId id : a.tcp_connections) {
    if (tcp_connections_.at(id).peer == peer) return std::nullopt;
  }
  if (pending_tcp_connections(a) >= config_.max_pending_tcp_connections) {
    stats_.drop(DropReason::Policy);
    return std::nullopt;
  }
  TcpConnection& c = *new_tcp_connection(a, peer);
  c.state = TcpConnection::State::AwaitingBind;
  c.deadline = clock_.now() + kTcpBindTimeout;
  stats_.tcp_connections_opened.add();
  // ConnectionAttempt indication: XOR-PEER-ADDRESS and CONNECTION-ID, over the control connection.
  std::array<uint8_t, stun::kTransactionIdSize> txid{};
  ++indication_counter_;
  std::memcpy(txid.data(), &indication_counter_, sizeof(indication_counter_));
  MessageBuilder b(out_, stun::make_type(Method::ConnectionAttempt, Class::Indication), txid);
  b.add_xor_address(attr::XorPeerAddress, peer);
  b.add_u32(attr::ConnectionId, c.id);
  finish_and_send(a.tuple, false, b, nullptr);
  return c.id;
}

// ---- ConnectionBind (§5.4) --------------------------------------------------------------------------------

void ServerCore::handle_connection_bind(const FiveTuple& from, const MessageView& msg, const Auth& auth) {
  if (!is_stream(from.transport)) {
    send_error(from, msg, code::BadRequest, &auth, "ConnectionBind needs a TCP/TLS connection");
    return;
  }
  if (allocations_.count(from) != 0) {  // a control connection cannot become a data connection
    send_error(from, msg, code::BadRequest, &auth, "ConnectionBind on a connection with an allocation");
    return;
  }
  auto id_attr = msg.find(attr::ConnectionId);
  auto id = id_attr ? stun::decode_u32(id_attr->value) : stun::Result<uint32_t>(stun::Error::Missing);
  auto it = id ? tcp_connections_.find(*id) : tcp_connections_.end();
  if (it == tcp_connections_.end() || it->second.state != TcpConnection::State::AwaitingBind) {
    send_error(from, msg, code::BadRequest, &auth, "Unknown CONNECTION-ID");
    return;
  }
  TcpConnection& c = it->second;
  if (c.owner->username != auth.username) {  // only the allocation's user may take its connections
    stats_.auth_failed(AuthFailure::WrongUser);
    send_error(from, msg, code::WrongCredentials, &auth);
    return;
  }
  c.state = TcpConnection::State::Bound;
  c.deadline = {};
  auto b = start_response(msg, Class::Success);
  finish_and_send(from, msg, b, &auth);
  // After the answer, so that the answer is the last STUN message on this connection.
  io_.bind_data_connection(c.id, from);
}

// A data connection is part of its allocation's session: clients (coturn's among them) sign the
// ConnectionBind with the nonce of the control connection, which the new connection has never been
// sent, and cannot follow a challenge on the data connection. So that nonce is good here too --
// for a ConnectionBind naming a connection of that allocation, and only while it waits for one.
bool ServerCore::connection_bind_nonce_valid(const MessageView& msg, std::string_view nonce) const {
  if (msg.method() != Method::ConnectionBind) return false;
  auto id_attr = msg.find(attr::ConnectionId);
  auto id = id_attr ? stun::decode_u32(id_attr->value) : stun::Result<uint32_t>(stun::Error::Missing);
  if (!id) return false;
  auto it = tcp_connections_.find(*id);
  if (it == tcp_connections_.end() || it->second.state != TcpConnection::State::AwaitingBind) return false;
  uint8_t binding[48];
  const size_t n = it->second.owner->tuple.encode(binding);
  return nonces_.check(nonce, stun::Bytes(binding, n), clock_.unix_seconds()) == auth::NonceCheck::Valid;
}

// ---- lifetimes ---------------------------------------------------------------------------------------------

void ServerCore::on_peer_connection_closed(ConnectionId id) {
  auto it = tcp_connections_.find(id);
  if (it == tcp_connections_.end()) return;
  if (it->second.state == TcpConnection::State::Connecting) {
    answer_connect(it->second, code::ConnectionTimeoutOrFailure);
  }
  close_tcp_connection(id, /*tell_shell=*/false);
}

void ServerCore::expire_tcp_connections(Instant now) {
  std::vector<ConnectionId> late;
  for (auto& [id, c] : tcp_connections_) {
    if (c.state != TcpConnection::State::Bound && c.deadline <= now) late.push_back(id);
  }
  for (ConnectionId id : late) {
    TcpConnection& c = tcp_connections_.at(id);
    if (c.state == TcpConnection::State::Connecting) answer_connect(c, code::ConnectionTimeoutOrFailure);
    close_tcp_connection(id, /*tell_shell=*/true);
  }
}

}  // namespace ferry::turn
