// Per-allocation usage (issue 15): the byte and packet counts each way, the distinct peers, the
// serial and start time, and Io::allocation_ended for every way an allocation ends.
#include <algorithm>

#include "tests/unit/fixtures/turn_core_fixture.h"

namespace ferry::turn {
namespace {

using namespace ferry::turn::testing;
using namespace std::chrono_literals;

constexpr size_t kIn = static_cast<size_t>(Direction::ClientToPeer);
constexpr size_t kOut = static_cast<size_t>(Direction::PeerToClient);

TEST_F(TurnCoreTest, AllocationCountsItsBytesAndPacketsEachWay) {
  TurnClient c = alice();
  const TransportAddress relayed = allocate_ok(c, tuple(1));
  ASSERT_EQ(permit(c, tuple(1), {kPeer}).outcome, Outcome::Success);
  ASSERT_EQ(bind(c, tuple(1), 0x4001, kPeer2).outcome, Outcome::Success);
  send_indication(c, tuple(1), kPeer, "hello");         // 5
  send_channel_data(tuple(1), 0x4001, "abcdefghij");    // 10
  send_indication(c, tuple(1), kPeer6, "not relayed");  // no IPv6 leg: dropped, not counted
  from_peer(relayed, kPeer, std::string(300, 'x'));     // Data indication
  from_peer(relayed, kPeer2, "12345678");               // ChannelData
  from_peer(relayed, TransportAddress::parse("192.0.2.99:1").value(), "no permission");  // dropped

  const Allocation* a = server().find_allocation(tuple(1));
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->usage.bytes[kIn], 15u);
  EXPECT_EQ(a->usage.packets[kIn], 2u);
  EXPECT_EQ(a->usage.bytes[kOut], 308u);
  EXPECT_EQ(a->usage.packets[kOut], 2u);
  // The allocation's counts are the server's here: they grow together on the data path.
  EXPECT_EQ(server().stats().relayed_bytes[kIn].get(), a->usage.bytes[kIn]);
  EXPECT_EQ(server().stats().relayed_bytes[kOut].get(), a->usage.bytes[kOut]);
  EXPECT_EQ(a->usage.serial, 1u);
  EXPECT_EQ(a->usage.started, clock.now());
}

TEST_F(TurnCoreTest, PeersAreDistinctIpsBoundedInTheList) {
  TurnClient c = alice();
  allocate_ok(c, tuple(1));
  ASSERT_EQ(permit(c, tuple(1), {kPeer, kPeer.with_port(1), kPeer2}).outcome, Outcome::Success);
  ASSERT_EQ(permit(c, tuple(1), {kPeer}).outcome, Outcome::Success);  // a refresh: no new peer
  const Allocation* a = server().find_allocation(tuple(1));
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->usage.peers(), 2u);
  ASSERT_EQ(a->usage.peer_list.size(), 2u);
  EXPECT_EQ(a->usage.peer_list[0].ip_string(), "192.0.2.7");
  EXPECT_EQ(a->usage.peer_list[0].port, 0);
  // Beyond the list's bound the peers are still counted, the list stays bounded.
  for (uint32_t i = 0; i < AllocationUsage::kPeerList + 4; ++i) {
    clock.advance(301s);  // the earlier permissions expire, so the table has room
    server().tick();
    ASSERT_EQ(refresh(c, tuple(1), 600).outcome, Outcome::Success);
    ASSERT_EQ(permit(c, tuple(1), {TransportAddress::v4(0xC0000264 + i, 9)}).outcome, Outcome::Success);
  }
  a = server().find_allocation(tuple(1));
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->usage.peer_list.size(), AllocationUsage::kPeerList);
  EXPECT_EQ(a->usage.peers(), 2u + AllocationUsage::kPeerList + 4);
}

TEST_F(TurnCoreTest, EveryEndOfAnAllocationIsReportedWithItsFinalUsage) {
  TurnClient c1 = alice(), c2 = alice(), c3 = bob();
  const TransportAddress r1 = allocate_ok(c1, tuple(1));
  allocate_ok(c2, tuple(2));
  allocate_ok(c3, tuple(3));
  ASSERT_EQ(permit(c1, tuple(1), {kPeer}).outcome, Outcome::Success);
  send_indication(c1, tuple(1), kPeer, "four");
  from_peer(r1, kPeer, "xy");
  EXPECT_TRUE(io.ended.empty());

  clock.advance(10s);
  ASSERT_EQ(refresh(c1, tuple(1), 0).outcome, Outcome::Success);  // deleted by the client
  ASSERT_EQ(io.ended.size(), 1u);
  EXPECT_EQ(io.ended[0].tuple, tuple(1));
  EXPECT_EQ(io.ended[0].username, "alice");
  EXPECT_EQ(io.ended[0].usage.bytes[kIn], 4u);
  EXPECT_EQ(io.ended[0].usage.bytes[kOut], 2u);
  EXPECT_EQ(io.ended[0].usage.peers(), 1u);
  EXPECT_EQ(clock.now() - io.ended[0].usage.started, 10s);

  EXPECT_EQ(server().close_user("bob"), 1u);  // revoked
  ASSERT_EQ(io.ended.size(), 2u);
  EXPECT_EQ(io.ended[1].username, "bob");
  EXPECT_EQ(io.ended[1].usage.serial, 3u);

  clock.advance(3600s);  // expired
  server().tick();
  ASSERT_EQ(io.ended.size(), 3u);
  EXPECT_EQ(io.ended[2].tuple, tuple(2));
  EXPECT_EQ(io.ended[2].usage.bytes[kIn] + io.ended[2].usage.bytes[kOut], 0u);
  EXPECT_EQ(server().allocation_count(), 0u);
}

TEST_F(TurnCoreTest, ForEachAllocationVisitsTheLiveOnes) {
  TurnClient c1 = alice(), c2 = bob();
  allocate_ok(c1, tuple(1));
  allocate_ok(c2, tuple(2));
  std::vector<std::string> users;
  server().for_each_allocation([&](const Allocation& a) { users.push_back(a.username); });
  std::sort(users.begin(), users.end());
  EXPECT_EQ(users, (std::vector<std::string>{"alice", "bob"}));
}

}  // namespace
}  // namespace ferry::turn
