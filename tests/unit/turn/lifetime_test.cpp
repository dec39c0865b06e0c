// Lifetimes of what the core holds: expiry of allocations, permissions and channels, tick() in parts,
// revocation, draining, the gauges and counters, and limits reloaded.
#include "tests/unit/fixtures/turn_core_fixture.h"

namespace ferry::turn {
namespace {

using namespace ferry::turn::testing;

// ================================ Expiry ================================

TEST_F(TurnCoreTest, AllocationExpiresAtItsLifetime) {
  TurnClient c = alice();
  allocate_ok(c, tuple(1));
  clock.advance(599s);
  server().tick();
  EXPECT_EQ(server().allocation_count(), 1u);
  clock.advance(1s);
  server().tick();
  expect_nothing_allocated();
  EXPECT_EQ(server().stats().allocations_expired.get(), 1u);
  EXPECT_EQ(io.closed, 1u);
  EXPECT_TRUE(io.stream_closed.empty());  // UDP: no connection to close
}

TEST_F(TurnCoreTest, TickInPartsWalksEveryAllocationOnceARound) {
  std::vector<TurnClient> clients;
  for (int i = 0; i < 40; ++i) {
    clients.push_back(alice());
    allocate_ok(clients.back(), tuple(i + 1));
    ASSERT_EQ(permit(clients.back(), tuple(i + 1), {kPeer}).outcome, Outcome::Success);
  }
  EXPECT_EQ(server().stats().permissions_active.get(), 40);
  // Permissions lapse at 300 s: the gauge is recounted once the round of ten parts is complete.
  clock.advance(301s);
  for (uint32_t part = 0; part < 9; ++part) server().tick(part, 10);
  EXPECT_EQ(server().stats().permissions_active.get(), 40);
  server().tick(9, 10);
  EXPECT_EQ(server().stats().permissions_active.get(), 0);
  // Allocations lapse at 600 s: none is left after one round, and none went before its part.
  clock.advance(300s);
  size_t left = server().allocation_count();
  for (uint32_t part = 0; part < 10; ++part) {
    server().tick(part, 10);
    EXPECT_LE(server().allocation_count(), left);
    left = server().allocation_count();
  }
  expect_nothing_allocated();
  EXPECT_EQ(server().stats().allocations_expired.get(), 40u);
}

TEST_F(TurnCoreTest, PermissionExpiresAtExactly300Seconds) {
  TurnClient c = alice();
  const TransportAddress relayed = allocate_ok(c, tuple(1));
  ASSERT_EQ(permit(c, tuple(1), {kPeer}).outcome, Outcome::Success);
  clock.advance(300s - 1ms);
  from_peer(relayed, kPeer, "still");
  EXPECT_EQ(io.to_client.size(), 2u);  // the CreatePermission response and the Data indication
  send_indication(c, tuple(1), kPeer, "out");
  EXPECT_EQ(io.to_peer.size(), 1u);
  clock.advance(1ms);
  io.to_client.clear();
  from_peer(relayed, kPeer, "late");
  EXPECT_TRUE(io.to_client.empty());
  send_indication(c, tuple(1), kPeer, "late");
  EXPECT_EQ(io.to_peer.size(), 1u);
  server().tick();
  EXPECT_EQ(server().find_allocation(tuple(1))->permissions.size(), 0u);  // reclaimed
  EXPECT_EQ(dropped(DropReason::NoPermission), 2u);
}

TEST_F(TurnCoreTest, ChannelExpiresAt600Seconds) {
  TurnClient c = alice();
  AllocateOptions o;
  o.lifetime = 3600;
  const TransportAddress relayed = allocate_ok(c, tuple(1), o);
  ASSERT_EQ(bind(c, tuple(1), 0x4001, kPeer).outcome, Outcome::Success);
  // Keep the permission alive (it lasts 300 s) so only the channel can be what expires.
  clock.advance(290s);
  ASSERT_EQ(permit(c, tuple(1), {kPeer}).outcome, Outcome::Success);
  clock.advance(290s);
  ASSERT_EQ(permit(c, tuple(1), {kPeer}).outcome, Outcome::Success);
  clock.advance(20s - 1ms);  // 599.999 s after the bind
  send_channel_data(tuple(1), 0x4001, "in time");
  ASSERT_EQ(io.to_peer.size(), 1u);
  clock.advance(1ms);
  send_channel_data(tuple(1), 0x4001, "too late");
  EXPECT_EQ(io.to_peer.size(), 1u);
  EXPECT_EQ(dropped(DropReason::NoChannel), 1u);
  // From the peer, the permission still stands: a Data indication instead of ChannelData.
  io.to_client.clear();
  from_peer(relayed, kPeer, "hello");
  ASSERT_EQ(io.to_client.size(), 1u);
  auto pd = c.on_peer_data(io.to_client[0].bytes);
  ASSERT_TRUE(pd);
  EXPECT_FALSE(pd->channel);
  // After the 5-minute quarantine the binding is reclaimed; then the allocation ends.
  clock.advance(kChannelQuarantine);
  server().tick();
  EXPECT_EQ(server().find_allocation(tuple(1))->channels.size(), 0u);
  clock.advance(3600s);
  server().tick();
  expect_nothing_allocated();
}

TEST_F(TurnCoreTest, EverythingExpiresWithoutLeaks) {
  config.relays.push_back(RelayAddress{kRelay6, std::nullopt});
  AllocateOptions dual;
  dual.additional_family = Family::V6;
  AllocateOptions reserve;
  reserve.even_port = true;
  reserve.reserve_next = true;
  TurnClient a = alice(), b = bob(), c = alice();
  allocate_ok(a, tuple(1), dual);
  allocate_ok(b, tuple(2), reserve);
  allocate_ok(c, tuple(3));
  ASSERT_EQ(permit(a, tuple(1), {kPeer, kPeer6}).outcome, Outcome::Success);
  ASSERT_EQ(bind(b, tuple(2), 0x4000, kPeer).outcome, Outcome::Success);
  EXPECT_EQ(io.open.size(), 4u);
  clock.advance(600s);
  server().tick();
  EXPECT_EQ(server().allocation_count(), 0u);
  EXPECT_EQ(server().open_relay_count(), 0u);
  EXPECT_TRUE(io.open.empty());
  EXPECT_EQ(io.closed, 4u);
  EXPECT_EQ(server().stats().allocations_expired.get(), 3u);
  // Relay slots and ports are reused afterwards.
  TurnClient d = bob();
  allocate_ok(d, tuple(4));
  EXPECT_EQ(io.open.size(), 1u);
  EXPECT_LT(io.open.begin()->first, 4u);
}

// ================================ revocation ================================

TEST_F(TurnCoreTest, CloseUserClosesOnlyThatUsersAllocations) {
  TurnClient a1 = alice(), a2 = alice(), b = bob();
  allocate_ok(a1, tuple(1));
  allocate_ok(a2, tuple(2));
  const TransportAddress bob_relay = allocate_ok(b, tuple(3));
  EXPECT_EQ(server().close_user("alice"), 2u);
  EXPECT_EQ(server().allocation_count(), 1u);
  EXPECT_NE(server().find_allocation(tuple(3)), nullptr);
  ASSERT_EQ(io.open.size(), 1u);
  EXPECT_EQ(io.open.begin()->second, bob_relay);
  EXPECT_EQ(server().stats().allocations_deleted.get(), 2u);
  EXPECT_EQ(server().close_user("alice"), 0u);
  EXPECT_EQ(server().close_user("nobody"), 0u);
  // Alice's old 5-tuple has no allocation now.
  expect_error(refresh(a1, tuple(1)), code::AllocationMismatch);
}

TEST_F(TurnCoreTest, CloseAllClosesEveryAllocation) {
  TurnClient a = alice(), b = bob();
  allocate_ok(a, tuple(1));
  allocate_ok(b, tuple(2));
  EXPECT_EQ(server().close_all(), 2u);
  EXPECT_EQ(server().allocation_count(), 0u);
  EXPECT_TRUE(io.open.empty());
  EXPECT_EQ(server().stats().allocations_deleted.get(), 2u);
  EXPECT_EQ(server().close_all(), 0u);
  expect_error(refresh(b, tuple(2)), code::AllocationMismatch);
}

TEST_F(TurnCoreTest, CloseIfClosesWhatThePredicatePicks) {
  TurnClient a = alice(), b = bob();
  allocate_ok(a, tuple(1));
  allocate_ok(b, tuple(2));
  size_t seen = 0;
  server().for_each_allocation([&](const Allocation&) { ++seen; });
  EXPECT_EQ(seen, 2u);
  EXPECT_EQ(server().close_if([](const Allocation& x) { return x.username == "bob"; }), 1u);
  EXPECT_EQ(server().allocation_count(), 1u);
  EXPECT_NE(server().find_allocation(tuple(1)), nullptr);
  EXPECT_EQ(server().close_if([](const Allocation&) { return false; }), 0u);
}

TEST_F(TurnCoreTest, RevalidateClosesAllocationsTheStoreNoLongerVouchesFor) {
  TurnClient a = alice(), b = bob();
  allocate_ok(a, tuple(1));
  allocate_ok(b, tuple(2));
  EXPECT_EQ(server().revalidate_users(), 0u);  // nothing changed
  EXPECT_EQ(server().allocation_count(), 2u);
  users.add_password("alice", "new-password");  // a new key: the old allocation is no longer vouched for
  users.remove("bob");
  EXPECT_EQ(server().revalidate_users(), 2u);
  EXPECT_EQ(server().allocation_count(), 0u);
  EXPECT_TRUE(io.open.empty());
}

TEST_F(TurnCoreTest, RevalidateWithAnAsyncStoreClosesWhenTheAnswerComes) {
  AsyncStore async(users);
  store = &async;
  async.defer = false;
  TurnClient a = alice(), b = bob();
  allocate_ok(a, tuple(1));
  allocate_ok(b, tuple(2));
  async.defer = true;
  users.remove("alice");
  EXPECT_EQ(server().revalidate_users(), 0u);  // answers pending
  EXPECT_EQ(server().allocation_count(), 2u);
  async.answer_all();
  EXPECT_EQ(server().allocation_count(), 1u);
  EXPECT_NE(server().find_allocation(tuple(2)), nullptr);
}

TEST_F(TurnCoreTest, StreamClientClosingEndsItsAllocation) {
  const FiveTuple tcp = tuple(1, Transport::Tcp);
  TurnClient a = alice(), b = bob();
  allocate_ok(a, tcp);
  allocate_ok(b, tuple(2));
  server().on_client_closed(tcp);
  EXPECT_EQ(server().find_allocation(tcp), nullptr);
  EXPECT_EQ(server().allocation_count(), 1u);
  EXPECT_EQ(io.open.size(), 1u);
  EXPECT_EQ(server().stats().allocations_deleted.get(), 1u);
  server().on_client_closed(tcp);  // twice is harmless
  EXPECT_EQ(server().allocation_count(), 1u);
}

// ================================ Draining and gauges ================================

int64_t active(const ServerStats& s, Transport t, AllocationFamily f) {
  return s.allocations_active[static_cast<size_t>(t)][idx(f)].get();
}

TEST_F(TurnCoreTest, DrainingRefusesNewAllocationsWith508AndKeepsOldOnes) {
  TurnClient a = alice();
  allocate_ok(a, tuple(1));
  server().set_draining(true);
  EXPECT_TRUE(server().draining());
  TurnClient b = bob();
  Response r = allocate(b, tuple(2));
  expect_error(r, code::InsufficientCapacity);
  EXPECT_TRUE(r.authenticated);
  EXPECT_EQ(server().allocation_count(), 1u);
  EXPECT_EQ(server().stats().allocations_refused[code::InsufficientCapacity].get(), 1u);
  // The existing allocation lives on: refresh, permissions and data still work.
  EXPECT_EQ(refresh(a, tuple(1), 600).outcome, Outcome::Success);
  ASSERT_EQ(permit(a, tuple(1), {kPeer}).outcome, Outcome::Success);
  send_indication(a, tuple(1), kPeer, "still relayed");
  EXPECT_EQ(io.to_peer.size(), 1u);
  // ...and ends when the client deletes it, or expires.
  ASSERT_EQ(refresh(a, tuple(1), 0).outcome, Outcome::Success);
  EXPECT_EQ(server().stats().active_allocations(), 0);
  server().set_draining(false);
  allocate_ok(b, tuple(2));
}

TEST_F(TurnCoreTest, DrainingWithAlternateServerAnswers300WithAlternateServer) {
  const TransportAddress alt = addr("203.0.113.9:3478");
  server().set_draining(true, alt);
  TurnClient c = alice();
  Response r = allocate(c, tuple(1));
  expect_error(r, code::TryAlternate);
  EXPECT_TRUE(r.authenticated);  // RFC 8489 §10: only the real server may redirect
  MessageView v = response_view();
  auto a = v.find(attr::AlternateServer);
  ASSERT_TRUE(a.has_value());
  auto decoded = stun::decode_address(a->value);
  ASSERT_TRUE(decoded.ok());
  EXPECT_EQ(*decoded, alt);
  expect_nothing_allocated();
  EXPECT_EQ(server().stats().allocations_refused[code::TryAlternate].get(), 1u);
}

TEST_F(TurnCoreTest, DrainingAlternateOfOtherFamilyFallsBackTo508) {
  server().set_draining(true, addr("[2001:db8::9]:3478"));
  TurnClient c = alice();
  Response r = allocate(c, tuple(1));
  expect_error(r, code::InsufficientCapacity);
  EXPECT_FALSE(response_view().has(attr::AlternateServer));
}

TEST_F(TurnCoreTest, DrainingStillAnswersARetransmittedAllocate) {
  TurnClient c = alice();
  allocate_ok(c, tuple(1));
  const std::vector<uint8_t> first = last_request;
  server().set_draining(true);
  io.to_client.clear();
  server().on_client_packet(tuple(1), Bytes(first));
  ASSERT_EQ(io.to_client.size(), 1u);
  auto v = MessageView::parse(Bytes(io.to_client[0].bytes));
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v->cls(), stun::Class::Success);
}

TEST_F(TurnCoreTest, GaugesFollowAllocationsPermissionsAndChannels) {
  config.relays.push_back(RelayAddress{kRelay6, std::nullopt});
  TurnClient a = alice();
  allocate_ok(a, tuple(1));
  TurnClient b = bob();
  AllocateOptions dual;
  dual.additional_family = Family::V6;
  ASSERT_EQ(allocate(b, tuple(2, Transport::Tcp), dual).relayed.size(), 2u);
  const ServerStats& s = server().stats();
  EXPECT_EQ(active(s, Transport::Udp, AllocationFamily::V4), 1);
  EXPECT_EQ(active(s, Transport::Tcp, AllocationFamily::Dual), 1);
  EXPECT_EQ(s.active_allocations(), 2);

  ASSERT_EQ(permit(a, tuple(1), {kPeer, kPeer2}).outcome, Outcome::Success);
  ASSERT_EQ(permit(a, tuple(1), {kPeer}).outcome, Outcome::Success);  // a refresh, not a new one
  EXPECT_EQ(s.permissions_active.get(), 2);
  ASSERT_EQ(bind(a, tuple(1), 0x4000, kPeer).outcome, Outcome::Success);
  EXPECT_EQ(s.channels_active.get(), 1);
  EXPECT_EQ(s.permissions_active.get(), 2);

  // Dropping the IPv6 leg moves the allocation from dual to IPv4.
  ASSERT_EQ(refresh(b, tuple(2, Transport::Tcp), 0, Family::V6).outcome, Outcome::Success);
  EXPECT_EQ(active(s, Transport::Tcp, AllocationFamily::Dual), 0);
  EXPECT_EQ(active(s, Transport::Tcp, AllocationFamily::V4), 1);

  // Permissions expire after 300 s (the channel refreshes its own peer's permission only when
  // rebound), channels after 600 s; the tick recounts.
  clock.advance(301s);
  ASSERT_EQ(refresh(a, tuple(1), 600).outcome, Outcome::Success);
  server().tick();
  EXPECT_EQ(s.permissions_active.get(), 0);
  EXPECT_EQ(s.channels_active.get(), 1);
  clock.advance(300s);
  server().tick();
  EXPECT_EQ(s.channels_active.get(), 0);

  // Deleting takes everything of an allocation off the gauges.
  ASSERT_EQ(permit(a, tuple(1), {kPeer}).outcome, Outcome::Success);
  EXPECT_EQ(s.permissions_active.get(), 1);
  ASSERT_EQ(refresh(a, tuple(1), 0).outcome, Outcome::Success);
  EXPECT_EQ(s.permissions_active.get(), 0);
  EXPECT_EQ(active(s, Transport::Udp, AllocationFamily::V4), 0);
  server().on_client_closed(tuple(2, Transport::Tcp));
  EXPECT_EQ(s.active_allocations(), 0);
}

TEST_F(TurnCoreTest, ResponsesAreCountedByMethodAndResult) {
  TurnClient c = alice();
  allocate_ok(c, tuple(1));  // a 401 challenge, then success
  const ServerStats& s = server().stats();
  EXPECT_EQ(s.responses[idx(RequestMethod::Allocate)][idx(RequestResult::Error)].get(), 1u);
  EXPECT_EQ(s.responses[idx(RequestMethod::Allocate)][idx(RequestResult::Success)].get(), 1u);
  EXPECT_EQ(s.allocations_refused[code::Unauthenticated].get(), 0u) << "a challenge is not a refusal";
  expect_error(allocate(c, tuple(1)), code::AllocationMismatch);  // a second one on the same 5-tuple
  EXPECT_EQ(s.allocations_refused[code::AllocationMismatch].get(), 1u);
  EXPECT_EQ(refresh(c, tuple(1), 600).outcome, Outcome::Success);
  EXPECT_EQ(s.responses[idx(RequestMethod::Refresh)][idx(RequestResult::Success)].get(), 1u);
}

TEST_F(TurnCoreTest, SetLimitsAppliesToNewRequests) {
  TurnClient a = alice();
  allocate_ok(a, tuple(1));
  ServerCoreConfig l = config;
  l.max_lifetime = 120;
  l.default_lifetime = 60;
  l.max_allocations = 1;
  server().set_limits(l);
  // A refresh asking for an hour now gets the new maximum.
  Response r = refresh(a, tuple(1), 3600);
  ASSERT_EQ(r.outcome, Outcome::Success);
  EXPECT_EQ(a.lifetime(), 120u);
  // The cap of one allocation is reached: 508 for the next.
  TurnClient b = bob();
  expect_error(allocate(b, tuple(2)), code::InsufficientCapacity);
  l.max_allocations = 0;
  server().set_limits(l);
  allocate_ok(b, tuple(2));
  EXPECT_EQ(server().allocation_count(), 2u);
}

}  // namespace
}  // namespace ferry::turn
