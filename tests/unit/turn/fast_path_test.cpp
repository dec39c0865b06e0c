// The core's side of the kernel fast path (turn/fast_path.cpp): which channels it offers the
// shell, with which deadline, when it takes them back, and the kernel's counts folded into usage.
#include "tests/unit/fixtures/turn_core_fixture.h"

namespace ferry::turn {
namespace {

using namespace ferry::turn::testing;

class FastPathTest : public TurnCoreTest {
 protected:
  FastPathTest() { config.fast_path = true; }
  // An allocation of alice's at tuple(1) with channel 0x4001 bound to kPeer.
  void bound_channel() {
    client_ = alice();
    allocate_ok(client_, tuple(1));
    ASSERT_EQ(bind(client_, tuple(1), 0x4001, kPeer).outcome, Outcome::Success);
  }
  const FastPathChannel* installed(uint16_t channel = 0x4001, int n = 1) const {
    auto it = io.fast_path.find({tuple(n).to_string(), channel});
    return it == io.fast_path.end() ? nullptr : &it->second;
  }
  TurnClient client_ = alice();
};

TEST_F(TurnCoreTest, FastPathOffByDefaultTellsTheShellNothing) {
  TurnClient c = alice();
  allocate_ok(c, tuple(1));
  ASSERT_EQ(bind(c, tuple(1), 0x4001, kPeer).outcome, Outcome::Success);
  ASSERT_EQ(refresh(c, tuple(1), 0).outcome, Outcome::Success);
  EXPECT_TRUE(io.installs.empty());
  EXPECT_TRUE(io.removes.empty());
}

TEST_F(FastPathTest, ChannelBindInstallsWithTheEarliestExpiryAsDeadline) {
  const Instant t0 = clock.now();
  bound_channel();
  ASSERT_EQ(io.installs.size(), 1u);
  const FastPathChannel* c = installed();
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->client, tuple(1));
  EXPECT_EQ(c->peer, kPeer);
  ASSERT_EQ(io.open.size(), 1u);
  EXPECT_EQ(c->relay_local, io.open.begin()->second);
  // The permission (300 s) ends before the channel (600 s) and the allocation (600 s).
  EXPECT_EQ(c->deadline, t0 + 300s);
  EXPECT_EQ(server().stats().fast_path_channels.get(), 1);
}

TEST_F(FastPathTest, PermissionOnlyAndSendIndicationsInstallNothing) {
  TurnClient c = alice();
  allocate_ok(c, tuple(1));
  ASSERT_EQ(permit(c, tuple(1), {kPeer}).outcome, Outcome::Success);
  send_indication(c, tuple(1), kPeer, "hello");
  EXPECT_TRUE(io.installs.empty());
}

TEST_F(FastPathTest, PeerThePolicyForbidsIsNeverInstalled) {
  TurnClient c = alice();
  allocate_ok(c, tuple(1));
  expect_error(bind(c, tuple(1), 0x4001, addr("127.0.0.1:5000")), code::Forbidden);
  expect_error(bind(c, tuple(1), 0x4002, addr("10.0.0.1:5000")), code::Forbidden);
  expect_error(bind(c, tuple(1), 0x4003, TransportAddress::v4(0xC6336400u + 10, 50000)), code::Forbidden);
  EXPECT_TRUE(io.installs.empty());
}

TEST_F(FastPathTest, RefreshesMoveTheDeadlineAndOnlyThen) {
  bound_channel();
  clock.advance(100s);
  // CreatePermission refreshes the permission: the channel's deadline moves to now + 300 s.
  ASSERT_EQ(permit(client_, tuple(1), {kPeer}).outcome, Outcome::Success);
  ASSERT_EQ(io.installs.size(), 2u);
  EXPECT_EQ(installed()->deadline, clock.now() + 300s);
  // A Refresh that changes nothing for the channel installs nothing new.
  ASSERT_EQ(refresh(client_, tuple(1)).outcome, Outcome::Success);
  EXPECT_EQ(io.installs.size(), 2u);
  // A ChannelBind refresh renews the permission too.
  clock.advance(10s);
  ASSERT_EQ(bind(client_, tuple(1), 0x4001, kPeer).outcome, Outcome::Success);
  EXPECT_EQ(installed()->deadline, clock.now() + 300s);
}

TEST_F(FastPathTest, AllocationExpiryCapsTheDeadline) {
  bound_channel();
  // At 400 s the allocation (600 s) ends before a permission refreshed now (700 s).
  clock.advance(250s);
  ASSERT_EQ(permit(client_, tuple(1), {kPeer}).outcome, Outcome::Success);
  clock.advance(150s);
  ASSERT_EQ(permit(client_, tuple(1), {kPeer}).outcome, Outcome::Success);
  EXPECT_EQ(installed()->deadline, clock.now() + 200s);  // the allocation's expiry
}

TEST_F(FastPathTest, ExpiryRemovesAtTheTickAndFoldsTheCountsIn) {
  bound_channel();
  clock.advance(299s);
  server().tick();
  EXPECT_TRUE(io.removes.empty());
  io.next_removal_usage.packets = {3, 2};
  io.next_removal_usage.bytes = {300, 200};
  clock.advance(1s);
  server().tick();
  ASSERT_EQ(io.removes.size(), 1u);
  EXPECT_EQ(io.removes[0].second, 0x4001);
  EXPECT_EQ(installed(), nullptr);
  EXPECT_EQ(server().stats().fast_path_channels.get(), 0);
  const Allocation* a = server().find_allocation(tuple(1));
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->usage.packets[0], 3u);
  EXPECT_EQ(a->usage.bytes[1], 200u);
  EXPECT_EQ(server().stats().relayed_packets[0].get(), 3u);
  EXPECT_EQ(server().stats().fast_path_bytes[0].get(), 300u);
  // Past the deadline the core answers as before: no permission, dropped.
  send_channel_data(tuple(1), 0x4001, "late");
  EXPECT_TRUE(io.to_peer.empty());
}

TEST_F(FastPathTest, RefreshZeroRemovesBeforeTheUsageIsFinal) {
  bound_channel();
  io.next_removal_usage.packets = {5, 7};
  io.next_removal_usage.bytes = {500, 700};
  ASSERT_EQ(refresh(client_, tuple(1), 0).outcome, Outcome::Success);
  ASSERT_EQ(io.removes.size(), 1u);
  // Before the relay socket closes: closing it sends the queued answer, and the client may send
  // again at once; the kernel must not relay that.
  EXPECT_EQ(io.closed_at_removes[0], 0u);
  EXPECT_EQ(io.closed, 1u);
  ASSERT_EQ(io.ended.size(), 1u);
  EXPECT_EQ(io.ended[0].usage.packets[0], 5u);
  EXPECT_EQ(io.ended[0].usage.bytes[1], 700u);
  EXPECT_TRUE(io.fast_path.empty());
}

TEST_F(FastPathTest, KillAndDrainRemove) {
  bound_channel();
  TurnClient bob_client = alice();
  allocate_ok(bob_client, tuple(2));
  ASSERT_EQ(bind(bob_client, tuple(2), 0x4002, kPeer2).outcome, Outcome::Success);
  EXPECT_EQ(io.fast_path.size(), 2u);
  EXPECT_EQ(server().close_if([](const Allocation& a) { return a.tuple == tuple(1); }), 1u);
  EXPECT_EQ(io.fast_path.size(), 1u);
  EXPECT_EQ(server().close_all(), 1u);
  EXPECT_TRUE(io.fast_path.empty());
  EXPECT_EQ(server().stats().fast_path_channels.get(), 0);
}

TEST_F(FastPathTest, BandwidthLimitedAllocationsStayInUserSpace) {
  config.bandwidth_per_allocation = 1000;
  bound_channel();
  EXPECT_TRUE(io.installs.empty());
}

TEST_F(FastPathTest, StreamAllocationsAreNotOffered) {
  TurnClient c = alice();
  allocate_ok(c, tuple(1, Transport::Tcp));
  ASSERT_EQ(bind(c, tuple(1, Transport::Tcp), 0x4001, kPeer).outcome, Outcome::Success);
  EXPECT_TRUE(io.installs.empty());
}

TEST_F(FastPathTest, KernelCountsAddToUsageAndRelayedCounters) {
  bound_channel();
  FastPathUsage u;
  u.packets = {10, 20};
  u.bytes = {1000, 2000};
  server().add_fast_path_usage(tuple(1), u);
  server().add_fast_path_usage(tuple(9), u);  // no such allocation: ignored
  const Allocation* a = server().find_allocation(tuple(1));
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->usage.packets[1], 20u);
  EXPECT_EQ(a->usage.bytes[0], 1000u);
  EXPECT_EQ(server().stats().relayed_bytes[1].get(), 2000u);
  EXPECT_EQ(server().stats().fast_path_packets[0].get(), 10u);
}

}  // namespace
}  // namespace ferry::turn
