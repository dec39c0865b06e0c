// RFC 6062 TCP allocations: Allocate over TCP/TLS, Connect, peers connecting to the relayed address,
// ConnectionBind and the lifetimes of the data connections.
#include "tests/unit/fixtures/turn_core_fixture.h"

namespace ferry::turn {
namespace {

using namespace ferry::turn::testing;

// ================================ RFC 6062 TCP allocations ================================

class TcpAllocationTest : public TurnCoreTest {
 protected:
  const FiveTuple control = tuple(1, Transport::Tcp);

  // Allocates a TCP relay for alice on `control`; returns its relayed address.
  TransportAddress allocate_tcp(TurnClient& c, const FiveTuple& t) {
    AllocateOptions o;
    o.transport = stun::kTransportTcp;
    return allocate_ok(c, t, o);
  }
  // Sends a Connect (the client is authenticated already): the answer comes later.
  void send_connect(TurnClient& c, const FiveTuple& t, const TransportAddress& peer) {
    auto req = c.connect_request(buf, peer);
    ASSERT_TRUE(req.ok());
    last_request.assign(req->begin(), req->end());
    io.to_client.clear();
    server().on_client_packet(t, *req);
  }
  // The one message sent to `t` since the last clear, as the client reads it.
  Response answer(TurnClient& c, const FiveTuple& t) {
    if (io.to_client.size() != 1) {
      ADD_FAILURE() << "expected one message, got " << io.to_client.size();
      return Response{};
    }
    EXPECT_EQ(io.to_client[0].to, t);
    last_response = io.to_client[0].bytes;
    io.to_client.clear();
    return c.on_response(last_response);
  }
  std::optional<ConnectionId> connection_id() const {
    auto v = MessageView::parse(Bytes(last_response));
    if (!v) return std::nullopt;
    auto a = v->find(attr::ConnectionId);
    if (!a) return std::nullopt;
    auto id = stun::decode_u32(a->value);
    return id ? std::optional<ConnectionId>(*id) : std::nullopt;
  }
  // Connect to `peer` and let the shell report success; returns the CONNECTION-ID answered.
  ConnectionId connect_ok(TurnClient& c, const TransportAddress& peer) {
    send_connect(c, control, peer);
    EXPECT_TRUE(io.to_client.empty()) << "Connect answered before the shell reported";
    if (io.connects.empty()) {
      ADD_FAILURE() << "no connect_peer";
      return 0;
    }
    const ConnectionId id = io.connects.back().id;
    EXPECT_EQ(io.connects.back().peer, peer);
    server().on_peer_connected(id, true);
    Response r = answer(c, control);
    EXPECT_EQ(r.outcome, Outcome::Success) << r.error_code << " " << r.reason;
    EXPECT_EQ(r.method, stun::Method::Connect);
    EXPECT_TRUE(r.authenticated);
    EXPECT_EQ(connection_id(), id);
    EXPECT_EQ(r.connection_id, id);  // as the client decodes it
    return id;
  }
  Response connection_bind(TurnClient& c, const FiveTuple& t, ConnectionId id) {
    return transact(c, t, [&](TurnClient& cl, MutableBytes out) { return cl.connection_bind_request(out, id); });
  }
};

TEST_F(TcpAllocationTest, AllocateOverTcpOpensATcpRelay) {
  TurnClient c = alice();
  const TransportAddress relayed = allocate_tcp(c, control);
  auto relay = io.relay_at(relayed);
  ASSERT_TRUE(relay);
  EXPECT_EQ(io.tcp_relays.count(*relay), 1u);
  ASSERT_NE(server().find_allocation(control), nullptr);
  EXPECT_TRUE(server().find_allocation(control)->tcp);
  // The control connection ends: so does the allocation and its listener.
  server().on_client_closed(control);
  expect_nothing_allocated();
}

TEST_F(TcpAllocationTest, AllocateOverTlsWorksToo) {
  TurnClient c = alice();
  allocate_tcp(c, tuple(1, Transport::Tls));
  EXPECT_EQ(io.tcp_relays.size(), 1u);
}

TEST_F(TcpAllocationTest, AllocateOverUdpOrDtlsGets400) {
  for (Transport t : {Transport::Udp, Transport::Dtls}) {
    TurnClient c = alice();
    AllocateOptions o;
    o.transport = stun::kTransportTcp;
    expect_error(allocate(c, tuple(1, t), o), code::BadRequest);
  }
  expect_nothing_allocated();
}

TEST_F(TcpAllocationTest, AllocateWithUdpOnlyAttributesGets400) {
  AllocateOptions df, even, token;
  df.dont_fragment = true;
  even.even_port = true;
  token.reservation_token = 0x0102030405060708ull;
  for (AllocateOptions o : {df, even, token}) {
    o.transport = stun::kTransportTcp;
    TurnClient c = alice();
    expect_error(allocate(c, control, o), code::BadRequest);
  }
  expect_nothing_allocated();
}

TEST_F(TcpAllocationTest, ConnectSucceedsWhenTheShellConnects) {
  TurnClient c = alice();
  const TransportAddress relayed = allocate_tcp(c, control);
  const ConnectionId id = connect_ok(c, kPeer);
  EXPECT_NE(id, 0u);
  EXPECT_EQ(io.connects[0].relay, *io.relay_at(relayed));
  const TcpConnection* tc = server().find_tcp_connection(id);
  ASSERT_NE(tc, nullptr);
  EXPECT_EQ(tc->state, TcpConnection::State::AwaitingBind);
  EXPECT_EQ(server().stats().tcp_connections_opened.get(), 1u);
  EXPECT_EQ(server().stats().tcp_connections_active.get(), 1);
}

TEST_F(TcpAllocationTest, ConnectFailureGets447) {
  TurnClient c = alice();
  allocate_tcp(c, control);
  send_connect(c, control, kPeer);
  ASSERT_EQ(io.connects.size(), 1u);
  server().on_peer_connected(io.connects[0].id, false);
  expect_error(answer(c, control), code::ConnectionTimeoutOrFailure);
  EXPECT_EQ(server().tcp_connection_count(), 0u);
  EXPECT_TRUE(io.closed_connections.empty()) << "the shell let go of a failed connect itself";
}

TEST_F(TcpAllocationTest, ConnectThatCannotStartGets447AtOnce) {
  io.connect_starts = false;
  TurnClient c = alice();
  allocate_tcp(c, control);
  send_connect(c, control, kPeer);
  expect_error(answer(c, control), code::ConnectionTimeoutOrFailure);
  EXPECT_EQ(server().tcp_connection_count(), 0u);
}

TEST_F(TcpAllocationTest, ConnectTimesOutAfter30Seconds) {
  TurnClient c = alice();
  allocate_tcp(c, control);
  send_connect(c, control, kPeer);
  ASSERT_EQ(io.connects.size(), 1u);
  const ConnectionId id = io.connects[0].id;
  clock.advance(29s);
  server().tick();
  EXPECT_TRUE(io.to_client.empty());
  clock.advance(1s);
  server().tick();
  expect_error(answer(c, control), code::ConnectionTimeoutOrFailure);
  EXPECT_EQ(io.closed_connections, std::vector<ConnectionId>{id});
  // The shell's late success finds nothing: it is told to close the socket.
  server().on_peer_connected(id, true);
  EXPECT_TRUE(io.to_client.empty());
  EXPECT_EQ(io.closed_connections.size(), 2u);
}

TEST_F(TcpAllocationTest, ConnectToADeniedPeerGets403) {
  TurnClient c = alice();
  allocate_tcp(c, control);
  send_connect(c, control, addr("10.1.2.3:80"));  // outside peers.allow
  expect_error(answer(c, control), code::Forbidden);
  send_connect(c, control, addr("198.51.100.10:5000"));  // the relay address itself
  expect_error(answer(c, control), code::Forbidden);
  EXPECT_TRUE(io.connects.empty());
}

TEST_F(TcpAllocationTest, ConnectToTheSamePeerTwiceGets446) {
  TurnClient c = alice();
  allocate_tcp(c, control);
  send_connect(c, control, kPeer);
  send_connect(c, control, kPeer);  // while the first is connecting
  expect_error(answer(c, control), code::ConnectionAlreadyExists);
  server().on_peer_connected(io.connects[0].id, true);
  EXPECT_EQ(answer(c, control).outcome, Outcome::Success);
  send_connect(c, control, kPeer);  // while it waits for its bind
  expect_error(answer(c, control), code::ConnectionAlreadyExists);
  // Another port of the same host is another connection.
  send_connect(c, control, kPeer.with_port(5001));
  EXPECT_EQ(io.connects.size(), 2u);
}

TEST_F(TcpAllocationTest, ConnectBadRequests) {
  TurnClient c = alice();
  allocate_tcp(c, control);
  auto req = c.request(buf, stun::Method::Connect, [](stun::MessageBuilder&) {});  // no XOR-PEER-ADDRESS
  ASSERT_TRUE(req.ok());
  io.to_client.clear();
  server().on_client_packet(control, *req);
  expect_error(answer(c, control), code::BadRequest);
  send_connect(c, control, kPeer.with_port(0));
  expect_error(answer(c, control), code::BadRequest);
  send_connect(c, control, kPeer6);  // no IPv6 relayed address
  expect_error(answer(c, control), code::PeerAddressFamilyMismatch);
  EXPECT_TRUE(io.connects.empty());
}

TEST_F(TcpAllocationTest, ConnectOnAUdpAllocationGets400AndWithoutOneGets437) {
  TurnClient c = alice();
  allocate_ok(c, control);  // REQUESTED-TRANSPORT UDP over TCP
  send_connect(c, control, kPeer);
  expect_error(answer(c, control), code::BadRequest);
  TurnClient d = bob();
  Response r = transact(d, tuple(2, Transport::Tcp), [&](TurnClient& cl, MutableBytes out) {
    return cl.request(out, stun::Method::Connect,
                      [&](stun::MessageBuilder& b) { b.add_xor_address(attr::XorPeerAddress, kPeer); });
  });
  expect_error(r, code::AllocationMismatch);
  EXPECT_TRUE(io.connects.empty());
}

TEST_F(TcpAllocationTest, PendingConnectionsAreLimited) {
  config.max_pending_tcp_connections = 2;
  TurnClient c = alice();
  allocate_tcp(c, control);
  connect_ok(c, kPeer);
  send_connect(c, control, kPeer2);
  send_connect(c, control, kPeer.with_port(7000));
  expect_error(answer(c, control), code::InsufficientCapacity);
  ASSERT_EQ(permit(c, control, {kPeer}).outcome, Outcome::Success);
  EXPECT_FALSE(server().on_peer_connection(io.connects[0].relay, kPeer.with_port(7001)));
}

TEST_F(TcpAllocationTest, SendAndChannelBindAreRefusedOnATcpAllocation) {
  TurnClient c = alice();
  allocate_tcp(c, control);
  ASSERT_EQ(permit(c, control, {kPeer}).outcome, Outcome::Success);
  expect_error(bind(c, control, 0x4000, kPeer), code::BadRequest);
  send_indication(c, control, kPeer, "hello");
  EXPECT_TRUE(io.to_peer.empty());
  EXPECT_EQ(dropped(DropReason::Policy), 1u);
}

TEST_F(TcpAllocationTest, PeerWithoutPermissionIsRefusedSilently) {
  TurnClient c = alice();
  const TransportAddress relayed = allocate_tcp(c, control);
  io.to_client.clear();
  EXPECT_FALSE(server().on_peer_connection(*io.relay_at(relayed), kPeer));
  EXPECT_TRUE(io.to_client.empty());
  EXPECT_EQ(dropped(DropReason::NoPermission), 1u);
  // A permitted IP that the peer policy denies is refused too.
  EXPECT_FALSE(server().on_peer_connection(*io.relay_at(relayed), addr("10.1.2.3:80")));
  EXPECT_EQ(server().tcp_connection_count(), 0u);
}

TEST_F(TcpAllocationTest, PeerWithPermissionGetsAConnectionAttempt) {
  TurnClient c = alice();
  const TransportAddress relayed = allocate_tcp(c, control);
  ASSERT_EQ(permit(c, control, {kPeer}).outcome, Outcome::Success);
  io.to_client.clear();
  const TransportAddress from = kPeer.with_port(33333);  // permissions ignore the port
  auto id = server().on_peer_connection(*io.relay_at(relayed), from);
  ASSERT_TRUE(id);
  ASSERT_EQ(io.to_client.size(), 1u);
  EXPECT_EQ(io.to_client[0].to, control);
  auto v = MessageView::parse(Bytes(io.to_client[0].bytes));
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v->method(), stun::Method::ConnectionAttempt);
  EXPECT_EQ(v->cls(), stun::Class::Indication);
  auto peer_attr = v->find(attr::XorPeerAddress);
  ASSERT_TRUE(peer_attr);
  EXPECT_EQ(stun::decode_xor_address(peer_attr->value, v->transaction_id()).value(), from);
  auto id_attr = v->find(attr::ConnectionId);
  ASSERT_TRUE(id_attr);
  EXPECT_EQ(stun::decode_u32(id_attr->value).value(), *id);
  // The same peer address again is refused while that connection exists.
  EXPECT_FALSE(server().on_peer_connection(*io.relay_at(relayed), from));
}

TEST_F(TcpAllocationTest, ConnectionBindMakesADataConnection) {
  TurnClient c = alice();
  allocate_tcp(c, control);
  const ConnectionId id = connect_ok(c, kPeer);
  const FiveTuple data = tuple(2, Transport::Tcp);
  TurnClient d = alice();  // a new connection learns its own nonce
  Response r = connection_bind(d, data, id);
  EXPECT_EQ(r.outcome, Outcome::Success) << r.error_code << " " << r.reason;
  EXPECT_EQ(r.method, stun::Method::ConnectionBind);
  EXPECT_TRUE(r.authenticated);
  ASSERT_EQ(io.bound.size(), 1u);
  EXPECT_EQ(io.bound[0].first, id);
  EXPECT_EQ(io.bound[0].second, data);
  EXPECT_EQ(server().find_tcp_connection(id)->state, TcpConnection::State::Bound);
  // Bound connections do not time out...
  clock.advance(60s);
  server().tick();
  EXPECT_TRUE(io.closed_connections.empty());
  // ...and cannot be bound twice.
  TurnClient e = alice();
  expect_error(connection_bind(e, tuple(3, Transport::Tcp), id), code::BadRequest);
  // The shell reports the end of the pipe: the core forgets it.
  server().on_peer_connection_closed(id);
  EXPECT_EQ(server().tcp_connection_count(), 0u);
  EXPECT_NE(server().find_allocation(control), nullptr);
}

TEST_F(TcpAllocationTest, ConnectionBindMayUseTheControlConnectionsNonce) {
  // coturn's uclient signs the ConnectionBind on the new connection with the nonce its control
  // connection got, and cannot follow a challenge there.
  TurnClient c = alice();
  allocate_tcp(c, control);
  const ConnectionId id = connect_ok(c, kPeer);
  const FiveTuple data = tuple(2, Transport::Tcp);
  auto req =
      c.request(buf, stun::Method::ConnectionBind, [&](stun::MessageBuilder& b) { b.add_u32(attr::ConnectionId, id); });
  ASSERT_TRUE(req.ok());
  Response r = exchange(c, data, *req);
  EXPECT_EQ(r.outcome, Outcome::Success) << r.error_code << " " << r.reason;
  ASSERT_EQ(io.bound.size(), 1u);
  // Only for a connection waiting for its bind: otherwise that nonce is stale on this connection.
  auto again =
      c.request(buf, stun::Method::ConnectionBind, [&](stun::MessageBuilder& b) { b.add_u32(attr::ConnectionId, id); });
  ASSERT_TRUE(again.ok());
  r = exchange(c, tuple(3, Transport::Tcp), *again);
  EXPECT_EQ(r.outcome, Outcome::Retry);
  EXPECT_EQ(r.error_code, code::StaleNonce);
}

TEST_F(TcpAllocationTest, ConnectionBindForAPassiveConnection) {
  TurnClient c = alice();
  const TransportAddress relayed = allocate_tcp(c, control);
  ASSERT_EQ(permit(c, control, {kPeer}).outcome, Outcome::Success);
  auto id = server().on_peer_connection(*io.relay_at(relayed), kPeer);
  ASSERT_TRUE(id);
  TurnClient d = alice();
  EXPECT_EQ(connection_bind(d, tuple(2, Transport::Tls), *id).outcome, Outcome::Success);
  ASSERT_EQ(io.bound.size(), 1u);
}

TEST_F(TcpAllocationTest, ConnectionBindRefusals) {
  TurnClient c = alice();
  allocate_tcp(c, control);
  const ConnectionId id = connect_ok(c, kPeer);
  TurnClient d = alice();
  expect_error(connection_bind(d, tuple(2, Transport::Tcp), id ^ 0x5A5A5A5Au), code::BadRequest);  // unknown id
  TurnClient u = alice();
  expect_error(connection_bind(u, tuple(3, Transport::Udp), id), code::BadRequest);  // not a stream
  // On the control connection itself.
  expect_error(connection_bind(c, control, id), code::BadRequest);
  // Another user may not take alice's connection.
  TurnClient b = bob();
  expect_error(connection_bind(b, tuple(4, Transport::Tcp), id), code::WrongCredentials);
  // Without CONNECTION-ID.
  TurnClient e = alice();
  Response r = transact(e, tuple(5, Transport::Tcp), [&](TurnClient& cl, MutableBytes out) {
    return cl.request(out, stun::Method::ConnectionBind, [](stun::MessageBuilder&) {});
  });
  expect_error(r, code::BadRequest);
  EXPECT_TRUE(io.bound.empty());
  EXPECT_EQ(server().find_tcp_connection(id)->state, TcpConnection::State::AwaitingBind);
}

TEST_F(TcpAllocationTest, UnboundConnectionClosesAfter30Seconds) {
  TurnClient c = alice();
  const TransportAddress relayed = allocate_tcp(c, control);
  ASSERT_EQ(permit(c, control, {kPeer}).outcome, Outcome::Success);
  auto passive = server().on_peer_connection(*io.relay_at(relayed), kPeer);
  ASSERT_TRUE(passive);
  const ConnectionId active = connect_ok(c, kPeer2);
  clock.advance(29s);
  server().tick();
  EXPECT_TRUE(io.closed_connections.empty());
  clock.advance(1s);
  server().tick();
  std::vector<ConnectionId> closed = io.closed_connections;
  std::sort(closed.begin(), closed.end());
  std::vector<ConnectionId> expected{*passive, active};
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(closed, expected);
  EXPECT_EQ(server().tcp_connection_count(), 0u);
  // A bind after the timeout names an unknown connection.
  TurnClient d = alice();
  expect_error(connection_bind(d, tuple(2, Transport::Tcp), active), code::BadRequest);
}

TEST_F(TcpAllocationTest, AllocationEndClosesItsDataConnections) {
  TurnClient c = alice();
  allocate_tcp(c, control);
  const ConnectionId bound = connect_ok(c, kPeer);
  TurnClient d = alice();
  ASSERT_EQ(connection_bind(d, tuple(2, Transport::Tcp), bound).outcome, Outcome::Success);
  const ConnectionId waiting = connect_ok(c, kPeer2);
  send_connect(c, control, kPeer.with_port(6001));  // still connecting
  const ConnectionId connecting = io.connects.back().id;
  server().on_client_closed(control);
  std::vector<ConnectionId> closed = io.closed_connections;
  std::sort(closed.begin(), closed.end());
  std::vector<ConnectionId> expected{bound, waiting, connecting};
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(closed, expected);
  EXPECT_EQ(server().tcp_connection_count(), 0u);
  EXPECT_EQ(server().stats().tcp_connections_active.get(), 0);
  expect_nothing_allocated();
}

TEST_F(TcpAllocationTest, ExpiryClosesItsDataConnections) {
  TurnClient c = alice();
  allocate_tcp(c, control);
  const ConnectionId id = connect_ok(c, kPeer);
  TurnClient d = alice();
  ASSERT_EQ(connection_bind(d, tuple(2, Transport::Tcp), id).outcome, Outcome::Success);
  clock.advance(601s);
  server().tick();
  EXPECT_EQ(io.closed_connections, std::vector<ConnectionId>{id});
  ASSERT_EQ(io.stream_closed.size(), 1u);
  EXPECT_EQ(io.stream_closed[0], control);
  expect_nothing_allocated();
}

TEST_F(TcpAllocationTest, ConnectionIdsAreDistinct) {
  TurnClient c = alice();
  const TransportAddress relayed = allocate_tcp(c, control);
  ASSERT_EQ(permit(c, control, {kPeer}).outcome, Outcome::Success);
  std::set<ConnectionId> ids;
  for (uint16_t port = 1000; port < 1016; ++port) {
    auto id = server().on_peer_connection(*io.relay_at(relayed), kPeer.with_port(port));
    ASSERT_TRUE(id);
    EXPECT_NE(*id, 0u);
    ids.insert(*id);
  }
  EXPECT_EQ(ids.size(), 16u);
  // Not a plain counter: consecutive ids differ in many bits.
  auto it = ids.begin();
  EXPECT_GT(*std::next(it) - *it, 16u);
}

}  // namespace
}  // namespace ferry::turn
