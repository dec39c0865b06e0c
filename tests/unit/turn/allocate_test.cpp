// Allocate (RFC 8656 §7.2) and Refresh (§7.3): relayed addresses, retransmissions, REQUESTED-TRANSPORT,
// address families, EVEN-PORT and RESERVATION-TOKEN, lifetimes, quotas and relay sockets that fail.
#include "tests/unit/fixtures/turn_core_fixture.h"

namespace ferry::turn {
namespace {

using namespace ferry::turn::testing;

// ================================ Allocate ================================

TEST_F(TurnCoreTest, AllocateSucceedsWithRelayedMappedLifetimeAndIntegrity) {
  TurnClient c = alice();
  Response r = allocate(c, tuple(1));
  ASSERT_EQ(r.outcome, Outcome::Success) << r.error_code << " " << r.reason;
  EXPECT_TRUE(r.authenticated);
  ASSERT_EQ(r.relayed.size(), 1u);
  EXPECT_TRUE(r.relayed[0].same_ip(kRelay4));
  EXPECT_GE(r.relayed[0].port, 50000);
  EXPECT_LE(r.relayed[0].port, 50999);
  ASSERT_TRUE(r.lifetime);
  EXPECT_EQ(*r.lifetime, 600u);
  ASSERT_TRUE(r.mapped);
  EXPECT_EQ(*r.mapped, tuple(1).client);
  EXPECT_FALSE(r.reservation_token);
  // The MESSAGE-INTEGRITY verifies with alice's MD5 long-term key, independently of the client.
  MessageView v = response_view();
  EXPECT_TRUE(stun::verify_message_integrity(v, stun::long_term_key_md5("alice", kRealm, "alice-pw").view()));
  EXPECT_FALSE(stun::verify_message_integrity(v, stun::long_term_key_md5("alice", kRealm, "wrong").view()));
  // The relay socket is bound at exactly the advertised address.
  ASSERT_EQ(io.open.size(), 1u);
  EXPECT_EQ(io.open.begin()->second, r.relayed[0]);
  EXPECT_FALSE(io.df.begin()->second);
  EXPECT_EQ(server().allocation_count(), 1u);
  EXPECT_EQ(server().stats().allocations_created.get(), 1u);
  const Allocation* a = server().find_allocation(tuple(1));
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->username, "alice");
  EXPECT_EQ(a->expires, clock.now() + 600s);
  EXPECT_EQ(c.relayed(), r.relayed);
  EXPECT_EQ(c.pending_count(), 0u);
}

TEST_F(TurnCoreTest, DontFragmentIsPassedToOpenRelay) {
  TurnClient c = alice();
  AllocateOptions o;
  o.dont_fragment = true;
  allocate_ok(c, tuple(1), o);
  ASSERT_EQ(io.df.size(), 1u);
  EXPECT_TRUE(io.df.begin()->second);
}

TEST_F(TurnCoreTest, RetransmittedAllocateGetsIdenticalSuccess) {
  TurnClient c = alice();
  auto first = c.allocate_request(buf);
  ASSERT_EQ(exchange(c, tuple(1), *first).outcome, Outcome::Retry);
  auto req = c.retry(buf, c.last_transaction_id());
  ASSERT_TRUE(req.ok());
  const std::vector<uint8_t> request(req->begin(), req->end());
  Response r = exchange(c, tuple(1), request);
  ASSERT_EQ(r.outcome, Outcome::Success);
  const std::vector<uint8_t> first_answer = last_response;
  clock.advance(200ms);  // a retransmission comes a little later
  server().on_client_packet(tuple(1), request);
  ASSERT_EQ(io.to_client.size(), 2u);
  EXPECT_EQ(io.to_client[1].bytes, first_answer);
  EXPECT_EQ(server().allocation_count(), 1u);
  EXPECT_EQ(io.open.size(), 1u);
  EXPECT_EQ(server().stats().allocations_created.get(), 1u);
}

TEST_F(TurnCoreTest, RetransmittedDualAllocateKeepsAddressErrorCode) {
  TurnClient c = alice();
  AllocateOptions o;
  o.additional_family = Family::V6;  // no IPv6 relay configured: success with ADDRESS-ERROR-CODE 440
  auto first = c.allocate_request(buf, o);
  ASSERT_EQ(exchange(c, tuple(1), *first).outcome, Outcome::Retry);
  auto req = c.retry(buf, c.last_transaction_id());
  const std::vector<uint8_t> request(req->begin(), req->end());
  Response r = exchange(c, tuple(1), request);
  ASSERT_EQ(r.outcome, Outcome::Success);
  ASSERT_TRUE(r.address_error);
  const std::vector<uint8_t> first_answer = last_response;
  clock.advance(1500ms);
  server().on_client_packet(tuple(1), request);
  ASSERT_EQ(io.to_client.size(), 2u);
  EXPECT_EQ(io.to_client[1].bytes, first_answer);
  EXPECT_EQ(server().allocation_count(), 1u);
}

TEST_F(TurnCoreTest, SecondAllocateOnSameTupleGets437) {
  TurnClient c = alice();
  const TransportAddress relayed = allocate_ok(c, tuple(1));
  Response r = allocate(c, tuple(1));
  expect_error(r, code::AllocationMismatch);
  EXPECT_TRUE(r.authenticated);
  EXPECT_EQ(server().allocation_count(), 1u);
  EXPECT_EQ(io.open.size(), 1u);
  EXPECT_EQ(io.open.begin()->second, relayed);
}

TEST_F(TurnCoreTest, MissingRequestedTransportGets400) {
  TurnClient c = alice();
  AllocateOptions o;
  o.transport = std::nullopt;
  Response r = allocate(c, tuple(1), o);
  expect_error(r, code::BadRequest);
  EXPECT_TRUE(r.authenticated);  // after authentication, errors are signed
  expect_nothing_allocated();
}

TEST_F(TurnCoreTest, TcpRequestedTransportGets442WhenTcpRelaysAreOff) {
  config.tcp_relay = false;
  TurnClient c = alice();
  AllocateOptions o;
  o.transport = stun::kTransportTcp;
  expect_error(allocate(c, tuple(1, Transport::Tcp), o), code::UnsupportedTransportProtocol);
  expect_nothing_allocated();
}

TEST_F(TurnCoreTest, OtherRequestedTransportGets442) {
  TurnClient c = alice();
  AllocateOptions o;
  o.transport = 132;  // SCTP
  expect_error(allocate(c, tuple(1, Transport::Tcp), o), code::UnsupportedTransportProtocol);
  expect_nothing_allocated();
}

TEST_F(TurnCoreTest, RequestedFamilyIpv6WithoutIpv6RelayGets440) {
  TurnClient c = alice();
  AllocateOptions o;
  o.requested_family = Family::V6;
  expect_error(allocate(c, tuple(1), o), code::AddressFamilyNotSupported);
  expect_nothing_allocated();
}

TEST_F(TurnCoreTest, RequestedFamilyIpv6WithIpv6Relay) {
  config.relays.push_back(RelayAddress{kRelay6, std::nullopt});
  TurnClient c = alice();
  AllocateOptions o;
  o.requested_family = Family::V6;
  const TransportAddress relayed = allocate_ok(c, tuple(1), o);
  EXPECT_TRUE(relayed.same_ip(kRelay6));
  EXPECT_EQ(io.open.size(), 1u);
}

TEST_F(TurnCoreTest, AdditionalFamilyGivesDualAllocation) {
  config.relays.push_back(RelayAddress{kRelay6, std::nullopt});
  TurnClient c = alice();
  AllocateOptions o;
  o.additional_family = Family::V6;
  Response r = allocate(c, tuple(1), o);
  ASSERT_EQ(r.outcome, Outcome::Success) << r.error_code;
  ASSERT_EQ(r.relayed.size(), 2u);
  EXPECT_TRUE(r.relayed[0].same_ip(kRelay4));
  EXPECT_TRUE(r.relayed[1].same_ip(kRelay6));
  EXPECT_FALSE(r.address_error);
  EXPECT_EQ(io.open.size(), 2u);
  EXPECT_EQ(server().open_relay_count(), 2u);
  // Both legs go when the allocation does.
  EXPECT_EQ(refresh(c, tuple(1), 0).outcome, Outcome::Success);
  expect_nothing_allocated();
}

TEST_F(TurnCoreTest, AdditionalFamilyWithoutIpv6RelaySucceedsWithAddressErrorCode) {
  TurnClient c = alice();
  AllocateOptions o;
  o.additional_family = Family::V6;
  Response r = allocate(c, tuple(1), o);
  ASSERT_EQ(r.outcome, Outcome::Success) << r.error_code;
  ASSERT_EQ(r.relayed.size(), 1u);
  EXPECT_TRUE(r.relayed[0].same_ip(kRelay4));
  ASSERT_TRUE(r.address_error);
  EXPECT_EQ(r.address_error->family, Family::V6);
  EXPECT_EQ(r.address_error->code, code::AddressFamilyNotSupported);
  EXPECT_EQ(io.open.size(), 1u);
}

TEST_F(TurnCoreTest, AdditionalFamilyIpv4Gets400) {
  TurnClient c = alice();
  AllocateOptions o;
  o.additional_family = Family::V4;
  expect_error(allocate(c, tuple(1), o), code::BadRequest);
  expect_nothing_allocated();
}

TEST_F(TurnCoreTest, RequestedAndAdditionalFamilyTogetherGets400) {
  config.relays.push_back(RelayAddress{kRelay6, std::nullopt});
  TurnClient c = alice();
  AllocateOptions o;
  o.requested_family = Family::V4;
  o.additional_family = Family::V6;
  expect_error(allocate(c, tuple(1), o), code::BadRequest);
  expect_nothing_allocated();
}

TEST_F(TurnCoreTest, EvenPortGivesEvenPort) {
  TurnClient c = alice();
  AllocateOptions o;
  o.even_port = true;
  for (int i = 1; i <= 4; ++i) {
    TurnClient ci = alice();
    Response r = allocate(ci, tuple(i), o);
    ASSERT_EQ(r.outcome, Outcome::Success) << r.error_code;
    ASSERT_EQ(r.relayed.size(), 1u);
    EXPECT_EQ(r.relayed[0].port % 2, 0) << r.relayed[0].port;
    EXPECT_FALSE(r.reservation_token);
  }
  EXPECT_EQ(io.open.size(), 4u);
}

TEST_F(TurnCoreTest, EvenPortWithReserveGivesTokenRedeemedForNextPort) {
  TurnClient a = alice();
  AllocateOptions o;
  o.even_port = true;
  o.reserve_next = true;
  Response r = allocate(a, tuple(1), o);
  ASSERT_EQ(r.outcome, Outcome::Success) << r.error_code;
  ASSERT_TRUE(r.reservation_token);
  ASSERT_EQ(r.relayed.size(), 1u);
  const uint16_t port = r.relayed[0].port;
  EXPECT_EQ(port % 2, 0);
  EXPECT_EQ(a.reservation_token(), r.reservation_token);

  TurnClient b = bob();
  AllocateOptions redeem;
  redeem.reservation_token = *r.reservation_token;
  Response rb = allocate(b, tuple(2), redeem);
  ASSERT_EQ(rb.outcome, Outcome::Success) << rb.error_code << " " << rb.reason;
  ASSERT_EQ(rb.relayed.size(), 1u);
  EXPECT_EQ(rb.relayed[0], kRelay4.with_port(static_cast<uint16_t>(port + 1)));
  EXPECT_FALSE(rb.reservation_token);
  EXPECT_EQ(io.open.size(), 2u);
  EXPECT_TRUE(io.relay_at(kRelay4.with_port(static_cast<uint16_t>(port + 1))));

  // A token is good once.
  TurnClient c = alice();
  expect_error(allocate(c, tuple(3), redeem), code::InsufficientCapacity);
  EXPECT_EQ(server().allocation_count(), 2u);
}

TEST_F(TurnCoreTest, UnknownReservationTokenGets508) {
  TurnClient c = alice();
  AllocateOptions o;
  o.reservation_token = 0x0102030405060708ull;
  expect_error(allocate(c, tuple(1), o), code::InsufficientCapacity);
  expect_nothing_allocated();
}

TEST_F(TurnCoreTest, ReservationTokenExpiresAfterThirtySeconds) {
  TurnClient a = alice();
  AllocateOptions o;
  o.even_port = true;
  o.reserve_next = true;
  Response r = allocate(a, tuple(1), o);
  ASSERT_TRUE(r.reservation_token);
  clock.advance(kReservationLifetime);
  server().tick();
  TurnClient b = bob();
  AllocateOptions redeem;
  redeem.reservation_token = *r.reservation_token;
  expect_error(allocate(b, tuple(2), redeem), code::InsufficientCapacity);
  EXPECT_EQ(server().allocation_count(), 1u);
}

TEST_F(TurnCoreTest, ReservationTokenWithEvenPortGets400) {
  TurnClient c = alice();
  AllocateOptions o;
  o.even_port = true;
  o.reservation_token = 0x0102030405060708ull;
  expect_error(allocate(c, tuple(1), o), code::BadRequest);
  expect_nothing_allocated();
}

TEST_F(TurnCoreTest, LifetimeBelowDefaultGetsDefault) {
  TurnClient c = alice();
  AllocateOptions o;
  o.lifetime = 10;
  Response r = allocate(c, tuple(1), o);
  ASSERT_EQ(r.outcome, Outcome::Success);
  EXPECT_EQ(r.lifetime, 600u);
  EXPECT_EQ(server().find_allocation(tuple(1))->expires, clock.now() + 600s);
}

TEST_F(TurnCoreTest, LifetimeAboveMaximumGetsMaximum) {
  TurnClient c = alice();
  AllocateOptions o;
  o.lifetime = 99999;
  Response r = allocate(c, tuple(1), o);
  ASSERT_EQ(r.outcome, Outcome::Success);
  EXPECT_EQ(r.lifetime, 3600u);
  EXPECT_EQ(server().find_allocation(tuple(1))->expires, clock.now() + 3600s);
}

TEST_F(TurnCoreTest, PerUserQuotaGets486) {
  config.max_allocations_per_user = 1;
  TurnClient a1 = alice(), a2 = alice(), b = bob();
  allocate_ok(a1, tuple(1));
  Response r = allocate(a2, tuple(2));
  expect_error(r, code::AllocationQuotaReached);
  EXPECT_TRUE(r.authenticated);
  allocate_ok(b, tuple(3));  // another user is not affected
  EXPECT_EQ(server().allocation_count(), 2u);
  EXPECT_EQ(io.open.size(), 2u);
  // Freeing alice's allocation frees her quota.
  ASSERT_EQ(refresh(a1, tuple(1), 0).outcome, Outcome::Success);
  allocate_ok(a2, tuple(2));
}

TEST_F(TurnCoreTest, MaxAllocationsGets508) {
  config.max_allocations = 1;
  TurnClient a = alice(), b = bob();
  allocate_ok(a, tuple(1));
  expect_error(allocate(b, tuple(2)), code::InsufficientCapacity);
  EXPECT_EQ(server().allocation_count(), 1u);
  EXPECT_EQ(io.open.size(), 1u);
}

TEST_F(TurnCoreTest, OpenRelayNoResourcesGets508) {
  TurnClient c = alice();
  server();
  io.fail_next = {OpenRelayResult::NoResources};
  expect_error(allocate(c, tuple(1), {}), code::InsufficientCapacity);
  EXPECT_EQ(io.open_attempts, 1u);  // no point retrying other ports
  expect_nothing_allocated();
  // The port and relay slot went back: the next Allocate works.
  allocate_ok(c, tuple(1));
}

TEST_F(TurnCoreTest, OpenRelayPortInUseTriesAnotherPort) {
  TurnClient c = alice();
  server();
  io.fail_next = {OpenRelayResult::PortInUse, OpenRelayResult::PortInUse};
  allocate_ok(c, tuple(1));
  EXPECT_EQ(io.open_attempts, 3u);
  EXPECT_EQ(io.open.size(), 1u);
  EXPECT_EQ(server().open_relay_count(), 1u);
}

TEST_F(TurnCoreTest, OpenRelayAlwaysInUseGets508) {
  TurnClient c = alice();
  server();
  io.fail_next.assign(100, OpenRelayResult::PortInUse);
  expect_error(allocate(c, tuple(1), {}), code::InsufficientCapacity);
  expect_nothing_allocated();
}

// ================================ Refresh ================================

TEST_F(TurnCoreTest, RefreshExtendsAllocation) {
  TurnClient c = alice();
  allocate_ok(c, tuple(1));
  clock.advance(500s);
  Response r = refresh(c, tuple(1));
  ASSERT_EQ(r.outcome, Outcome::Success);
  EXPECT_TRUE(r.authenticated);
  EXPECT_EQ(r.lifetime, 600u);
  clock.advance(200s);  // 700 s after the Allocate: past the original lifetime
  server().tick();
  EXPECT_EQ(server().allocation_count(), 1u);
  clock.advance(400s);  // 600 s after the Refresh
  server().tick();
  expect_nothing_allocated();
  EXPECT_EQ(server().stats().allocations_expired.get(), 1u);
}

TEST_F(TurnCoreTest, RefreshLifetimeIsClampedLikeAllocate) {
  // RFC 8656 §7.3: desired lifetime = min(requested, maximum), raised to the default if below it.
  TurnClient c = alice();
  allocate_ok(c, tuple(1));
  Response low = refresh(c, tuple(1), 10);
  ASSERT_EQ(low.outcome, Outcome::Success);
  EXPECT_EQ(low.lifetime, 600u);
  EXPECT_EQ(server().find_allocation(tuple(1))->expires, clock.now() + 600s);
  Response high = refresh(c, tuple(1), 99999);
  ASSERT_EQ(high.outcome, Outcome::Success);
  EXPECT_EQ(high.lifetime, 3600u);
  Response mid = refresh(c, tuple(1), 1200);
  EXPECT_EQ(mid.lifetime, 1200u);
}

TEST_F(TurnCoreTest, RefreshLifetimeZeroDeletes) {
  TurnClient c = alice();
  allocate_ok(c, tuple(1));
  ASSERT_EQ(permit(c, tuple(1), {kPeer}).outcome, Outcome::Success);
  Response r = refresh(c, tuple(1), 0);
  ASSERT_EQ(r.outcome, Outcome::Success);
  EXPECT_TRUE(r.authenticated);  // signed although the allocation is gone
  EXPECT_EQ(r.lifetime, 0u);
  expect_nothing_allocated();
  EXPECT_EQ(io.closed, 1u);
  EXPECT_EQ(server().stats().allocations_deleted.get(), 1u);
  EXPECT_TRUE(c.relayed().empty());
  // Nothing is relayed any more, and a second delete finds no allocation.
  send_indication(c, tuple(1), kPeer, "late");
  EXPECT_TRUE(io.to_peer.empty());
  expect_error(refresh(c, tuple(1), 0), code::AllocationMismatch);
}

TEST_F(TurnCoreTest, RefreshWithoutAllocationGets437) {
  TurnClient c = alice();
  Response r = refresh(c, tuple(1));
  expect_error(r, code::AllocationMismatch);
  EXPECT_TRUE(r.authenticated);
  expect_nothing_allocated();
}

TEST_F(TurnCoreTest, RefreshRequestedFamilyMismatchGets443) {
  TurnClient c = alice();
  allocate_ok(c, tuple(1));
  expect_error(refresh(c, tuple(1), 600, Family::V6), code::PeerAddressFamilyMismatch);
  EXPECT_EQ(server().allocation_count(), 1u);
  Response ok = refresh(c, tuple(1), 600, Family::V4);
  EXPECT_EQ(ok.outcome, Outcome::Success);
}

TEST_F(TurnCoreTest, RefreshZeroWithFamilyDropsOneLegOfDualAllocation) {
  config.relays.push_back(RelayAddress{kRelay6, std::nullopt});
  TurnClient c = alice();
  AllocateOptions o;
  o.additional_family = Family::V6;
  ASSERT_EQ(allocate(c, tuple(1), o).relayed.size(), 2u);
  Response r = refresh(c, tuple(1), 0, Family::V6);
  ASSERT_EQ(r.outcome, Outcome::Success);
  EXPECT_EQ(server().allocation_count(), 1u);
  ASSERT_EQ(io.open.size(), 1u);
  EXPECT_TRUE(io.open.begin()->second.same_ip(kRelay4));
  EXPECT_FALSE(server().find_allocation(tuple(1))->v6);
}

}  // namespace
}  // namespace ferry::turn
