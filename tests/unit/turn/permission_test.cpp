// CreatePermission (RFC 8656 §9) and ChannelBind (§11), RFC 5766 channel numbers, and the relay
// policy applied to every way a client can name a peer.
#include "tests/unit/fixtures/turn_core_fixture.h"

namespace ferry::turn {
namespace {

using namespace ferry::turn::testing;

// ================================ CreatePermission ================================

TEST_F(TurnCoreTest, CreatePermissionForOnePeer) {
  TurnClient c = alice();
  allocate_ok(c, tuple(1));
  Response r = permit(c, tuple(1), {kPeer});
  ASSERT_EQ(r.outcome, Outcome::Success);
  EXPECT_TRUE(r.authenticated);
  const Allocation* a = server().find_allocation(tuple(1));
  EXPECT_TRUE(a->permissions.allows(kPeer, clock.now()));
  EXPECT_TRUE(a->permissions.allows(kPeer.with_port(1), clock.now()));  // IP only
  EXPECT_FALSE(a->permissions.allows(kPeer2, clock.now()));
  EXPECT_EQ(server().stats().permissions_created.get(), 1u);
}

TEST_F(TurnCoreTest, CreatePermissionForSeveralPeers) {
  TurnClient c = alice();
  allocate_ok(c, tuple(1));
  const TransportAddress p3 = addr("203.0.113.99:7");
  Response r = permit(c, tuple(1), {kPeer, kPeer2, p3, kPeer});
  ASSERT_EQ(r.outcome, Outcome::Success);
  const Allocation* a = server().find_allocation(tuple(1));
  EXPECT_TRUE(a->permissions.allows(kPeer, clock.now()));
  EXPECT_TRUE(a->permissions.allows(kPeer2, clock.now()));
  EXPECT_TRUE(a->permissions.allows(p3, clock.now()));
  EXPECT_EQ(a->permissions.size(), 3u);
}

TEST_F(TurnCoreTest, CreatePermissionForDeniedPeerGets403AndInstallsNothing) {
  TurnClient c = alice();
  allocate_ok(c, tuple(1));
  for (const char* denied : {"10.0.0.1:80", "127.0.0.1:80", "0.0.0.0:80", "169.254.169.254:80", "198.51.100.10:5"}) {
    SCOPED_TRACE(denied);
    expect_error(permit(c, tuple(1), {addr(denied)}), code::Forbidden);
  }
  // All or nothing: a good peer next to a denied one is not installed either.
  expect_error(permit(c, tuple(1), {kPeer, addr("10.0.0.1:80")}), code::Forbidden);
  EXPECT_EQ(server().find_allocation(tuple(1))->permissions.size(), 0u);
  send_indication(c, tuple(1), kPeer, "x");
  EXPECT_TRUE(io.to_peer.empty());
  EXPECT_EQ(server().stats().errors_sent[403].get(), 6u);
}

TEST_F(TurnCoreTest, CreatePermissionFamilyMismatchGets443) {
  TurnClient c = alice();
  allocate_ok(c, tuple(1));
  expect_error(permit(c, tuple(1), {kPeer6}), code::PeerAddressFamilyMismatch);
  EXPECT_EQ(server().find_allocation(tuple(1))->permissions.size(), 0u);
}

TEST_F(TurnCoreTest, CreatePermissionWithoutPeerGets400) {
  TurnClient c = alice();
  allocate_ok(c, tuple(1));
  expect_error(permit(c, tuple(1), {}), code::BadRequest);
  EXPECT_EQ(server().find_allocation(tuple(1))->permissions.size(), 0u);
}

TEST_F(TurnCoreTest, CreatePermissionBeyondMaximumGets508) {
  config.max_permissions = 2;
  TurnClient c = alice();
  allocate_ok(c, tuple(1));
  const TransportAddress p3 = addr("192.0.2.9:1");
  expect_error(permit(c, tuple(1), {kPeer, kPeer2, p3}), code::InsufficientCapacity);
  EXPECT_EQ(server().find_allocation(tuple(1))->permissions.size(), 0u);
  ASSERT_EQ(permit(c, tuple(1), {kPeer, kPeer2}).outcome, Outcome::Success);
  expect_error(permit(c, tuple(1), {p3}), code::InsufficientCapacity);
  EXPECT_EQ(permit(c, tuple(1), {kPeer}).outcome, Outcome::Success);  // a refresh needs no room
  EXPECT_EQ(server().find_allocation(tuple(1))->permissions.size(), 2u);
}

TEST_F(TurnCoreTest, CreatePermissionWithoutAllocationGets437) {
  TurnClient c = alice();
  expect_error(permit(c, tuple(1), {kPeer}), code::AllocationMismatch);
  expect_nothing_allocated();
}

// ================================ ChannelBind ================================

TEST_F(TurnCoreTest, ChannelBindSucceedsAndInstallsPermission) {
  TurnClient c = alice();
  allocate_ok(c, tuple(1));
  Response r = bind(c, tuple(1), 0x4000, kPeer);
  ASSERT_EQ(r.outcome, Outcome::Success);
  EXPECT_TRUE(r.authenticated);
  const Allocation* a = server().find_allocation(tuple(1));
  auto n = ChannelNumber::from(0x4000);
  EXPECT_EQ(a->channels.peer_of(*n, clock.now()), kPeer);
  EXPECT_TRUE(a->permissions.allows(kPeer, clock.now()));
  EXPECT_EQ(c.channel_peer(0x4000), kPeer);
  EXPECT_EQ(server().stats().channels_bound.get(), 1u);
}

TEST_F(TurnCoreTest, ChannelNumbersOutOfRangeGet400) {
  TurnClient c = alice();
  allocate_ok(c, tuple(1));
  for (uint16_t ch : {uint16_t{0x3FFF}, uint16_t{0x5000}, uint16_t{0x7FFF}, uint16_t{0x0000}}) {
    SCOPED_TRACE(ch);
    expect_error(bind(c, tuple(1), ch, kPeer), code::BadRequest);
  }
  EXPECT_EQ(server().find_allocation(tuple(1))->channels.size(), 0u);
  EXPECT_EQ(server().find_allocation(tuple(1))->permissions.size(), 0u);
}

TEST_F(TurnCoreTest, ChannelRebindSamePairRefreshes) {
  TurnClient c = alice();
  allocate_ok(c, tuple(1));
  ASSERT_EQ(bind(c, tuple(1), 0x4000, kPeer).outcome, Outcome::Success);
  clock.advance(500s);
  // The permission (300 s) lapsed, the channel (600 s) did not; rebinding refreshes both.
  ASSERT_EQ(bind(c, tuple(1), 0x4000, kPeer).outcome, Outcome::Success);
  const Allocation* a = server().find_allocation(tuple(1));
  EXPECT_EQ(a->channels.expiry(*ChannelNumber::from(0x4000)), clock.now() + 600s);
  EXPECT_EQ(a->permissions.expiry(kPeer), clock.now() + 300s);
  EXPECT_EQ(server().stats().channels_bound.get(), 1u);
}

TEST_F(TurnCoreTest, ChannelBoundToOtherPeerGets400) {
  TurnClient c = alice();
  allocate_ok(c, tuple(1));
  ASSERT_EQ(bind(c, tuple(1), 0x4000, kPeer).outcome, Outcome::Success);
  expect_error(bind(c, tuple(1), 0x4000, kPeer2), code::BadRequest);
  EXPECT_EQ(server().find_allocation(tuple(1))->channels.peer_of(*ChannelNumber::from(0x4000), clock.now()), kPeer);
  EXPECT_FALSE(server().find_allocation(tuple(1))->permissions.allows(kPeer2, clock.now()));
}

TEST_F(TurnCoreTest, PeerBoundToOtherChannelGets400) {
  TurnClient c = alice();
  allocate_ok(c, tuple(1));
  ASSERT_EQ(bind(c, tuple(1), 0x4000, kPeer).outcome, Outcome::Success);
  expect_error(bind(c, tuple(1), 0x4001, kPeer), code::BadRequest);
  EXPECT_FALSE(server().find_allocation(tuple(1))->channels.peer_of(*ChannelNumber::from(0x4001), clock.now()));
}

TEST_F(TurnCoreTest, ChannelBindToDeniedPeerGets403) {
  TurnClient c = alice();
  allocate_ok(c, tuple(1));
  expect_error(bind(c, tuple(1), 0x4000, addr("10.0.0.1:80")), code::Forbidden);
  expect_error(bind(c, tuple(1), 0x4000, addr("127.0.0.1:80")), code::Forbidden);
  EXPECT_EQ(server().find_allocation(tuple(1))->channels.size(), 0u);
  EXPECT_EQ(server().find_allocation(tuple(1))->permissions.size(), 0u);
}

TEST_F(TurnCoreTest, ChannelBindFamilyMismatchGets443) {
  TurnClient c = alice();
  allocate_ok(c, tuple(1));
  expect_error(bind(c, tuple(1), 0x4000, kPeer6), code::PeerAddressFamilyMismatch);
}

// ================================ RFC 5766 channel numbers ================================

// libwebrtc and coturn's clients pick channel numbers from RFC 5766's 0x4000-0x7FFF; the server
// accepts them when configured for it (the shipped default) and relays ChannelData on them.
TEST_F(TurnCoreTest, Rfc5766ChannelNumbersAcceptedWhenConfigured) {
  config.max_channel_number = turn::ChannelNumber::kMaxRfc5766;
  TurnClient c = alice();
  allocate_ok(c, tuple(1));
  const TransportAddress peer = *TransportAddress::parse("192.0.2.7:9000");
  EXPECT_EQ(bind(c, tuple(1), 0x56CB, peer).outcome, Outcome::Success);
  EXPECT_EQ(bind(c, tuple(1), 0x8000, peer).error_code, code::BadRequest);  // not ChannelData at all
  io.to_peer.clear();
  send_channel_data(tuple(1), 0x56CB, "hello");
  ASSERT_EQ(io.to_peer.size(), 1u);
  EXPECT_EQ(io.to_peer[0].peer, peer);
}

// ================================ relay policy matrix (issue 8) ================================

// Every address class refused by default, through every way a client can name a peer: the
// CreatePermission and ChannelBind are answered 403 and install nothing, and a Send indication to
// the peer relays nothing (indications get no answer; the drop is counted as policy).
TEST_F(TurnCoreTest, RelayPolicyMatrixRefusesEveryDefaultDeniedClass) {
  config.relays.push_back(RelayAddress{kRelay6, std::nullopt});
  TurnClient c = alice();
  AllocateOptions o;
  o.additional_family = Family::V6;  // a dual allocation, so IPv6 peers are refused by policy, not 443
  allocate_ok(c, tuple(1), o);
  const struct {
    const char* cls;
    const char* peer;
  } kDenied[] = {
      {"loopback v4", "127.0.0.1:9"},
      {"loopback v4 (other)", "127.10.20.30:9"},
      {"unspecified v4", "0.0.0.0:9"},
      {"this network", "0.1.2.3:9"},
      {"RFC 1918 10/8", "10.1.2.3:9"},
      {"RFC 1918 172.16/12", "172.16.5.4:9"},
      {"RFC 1918 192.168/16", "192.168.1.1:9"},
      {"RFC 6598 shared", "100.64.0.1:9"},
      {"link-local v4 (cloud metadata)", "169.254.169.254:80"},
      {"multicast v4", "224.0.0.251:9"},
      {"broadcast", "255.255.255.255:9"},
      {"reserved 240/4", "240.0.0.1:9"},
      {"loopback v6", "[::1]:9"},
      {"unspecified v6", "[::]:9"},
      {"link-local v6", "[fe80::1]:9"},
      {"ULA", "[fd00::1]:9"},
      {"multicast v6", "[ff02::1]:9"},
      {"IPv4-mapped loopback", "[::ffff:127.0.0.1]:9"},
      {"IPv4-mapped private", "[::ffff:10.0.0.1]:9"},
      {"IPv4-compatible loopback", "[::127.0.0.1]:9"},
      {"NAT64 of private", "[64:ff9b::a00:1]:9"},
      {"NAT64 of loopback", "[64:ff9b::7f00:1]:9"},
      {"6to4 of private", "[2002:a00:1::1]:9"},
      {"server's own relay v4", "198.51.100.10:9"},
      {"server's own relay v6", "[2001:db8::10]:9"},
  };
  uint16_t channel = 0x4000;
  for (const auto& d : kDenied) {
    SCOPED_TRACE(std::string(d.cls) + " " + d.peer);
    const TransportAddress peer = addr(d.peer);
    expect_error(permit(c, tuple(1), {peer}), code::Forbidden);
    expect_error(bind(c, tuple(1), channel++, peer), code::Forbidden);
    const uint64_t policy_drops = server().stats().dropped[static_cast<size_t>(DropReason::Policy)].get();
    send_indication(c, tuple(1), peer, "probe");
    EXPECT_TRUE(io.to_peer.empty());
    EXPECT_GT(server().stats().dropped[static_cast<size_t>(DropReason::Policy)].get() +
                  server().stats().dropped[static_cast<size_t>(DropReason::NoPermission)].get(),
              policy_drops);
  }
  const Allocation* a = server().find_allocation(tuple(1));
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->permissions.size(), 0u);
  EXPECT_TRUE(io.to_peer.empty());
  // And a public peer still works, so the refusals above were the policy's doing.
  EXPECT_EQ(permit(c, tuple(1), {kPeer}).outcome, Outcome::Success);
  send_indication(c, tuple(1), kPeer, "ok");
  EXPECT_EQ(io.to_peer.size(), 1u);
}

}  // namespace
}  // namespace ferry::turn
