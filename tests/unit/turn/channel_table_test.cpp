#include "turn/channel_table.h"

#include <gtest/gtest.h>

#include <string>
#include "tests/unit/fixtures/addresses.h"

namespace ferry::turn {
namespace {

using test::addr;

using namespace std::chrono_literals;

ChannelNumber ch(uint16_t v) { return ChannelNumber::from(v).value(); }

TEST(ChannelNumberTest, RangeBoundaries) {
  EXPECT_FALSE(ChannelNumber::valid(0x0000));
  EXPECT_FALSE(ChannelNumber::valid(0x3FFF));
  EXPECT_TRUE(ChannelNumber::valid(0x4000));
  EXPECT_TRUE(ChannelNumber::valid(0x4FFF));
  EXPECT_FALSE(ChannelNumber::valid(0x5000));
  EXPECT_FALSE(ChannelNumber::valid(0x7FFF));  // reserved for future use, not bindable
  EXPECT_FALSE(ChannelNumber::valid(0xFFFF));
  EXPECT_FALSE(ChannelNumber::from(0x3FFF));
  EXPECT_FALSE(ChannelNumber::from(0x5000));
  EXPECT_EQ(ChannelNumber::from(0x4000)->value(), 0x4000);
  EXPECT_EQ(ChannelNumber::from(0x4FFF)->value(), 0x4FFF);
  static_assert(ChannelNumber::from(0x4001)->value() == 0x4001);
  static_assert(!ChannelNumber::from(0x3FFF).has_value());
}

TEST(ChannelNumberTest, Compares) {
  EXPECT_EQ(ch(0x4001), ch(0x4001));
  EXPECT_NE(ch(0x4001), ch(0x4002));
  EXPECT_LT(ch(0x4001), ch(0x4002));
}

TEST(ChannelTableTest, ConstantsAndErrorCodes) {
  EXPECT_EQ(kChannelLifetime, 600s);
  EXPECT_EQ(kChannelQuarantine, 300s);
  EXPECT_EQ(error_code(ChannelBind::Bound), 0);
  EXPECT_EQ(error_code(ChannelBind::Refreshed), 0);
  EXPECT_EQ(error_code(ChannelBind::ChannelBoundToOtherPeer), 400);
  EXPECT_EQ(error_code(ChannelBind::PeerBoundToOtherChannel), 400);
  EXPECT_EQ(error_code(ChannelBind::ChannelQuarantined), 400);
  EXPECT_EQ(error_code(ChannelBind::PeerQuarantined), 400);
  EXPECT_EQ(error_code(ChannelBind::Full), 508);
  EXPECT_TRUE(succeeded(ChannelBind::Bound));
  EXPECT_TRUE(succeeded(ChannelBind::Refreshed));
  EXPECT_FALSE(succeeded(ChannelBind::Full));
}

TEST(ChannelTableTest, BindAndLookBothWays) {
  FakeClock clock;
  ChannelTable t;
  auto peer = addr("192.0.2.1:5000");
  EXPECT_FALSE(t.peer_of(ch(0x4000), clock.now()));
  EXPECT_EQ(t.bind(ch(0x4000), peer, clock.now()), ChannelBind::Bound);
  EXPECT_EQ(t.peer_of(ch(0x4000), clock.now()), peer);
  EXPECT_EQ(t.channel_of(peer, clock.now()), ch(0x4000));
  EXPECT_EQ(t.live_count(clock.now()), 1u);
  EXPECT_EQ(t.bind(ch(0x4FFF), addr("192.0.2.2:5000"), clock.now()), ChannelBind::Bound);
  EXPECT_EQ(t.peer_of(ch(0x4FFF), clock.now()), addr("192.0.2.2:5000"));
}

TEST(ChannelTableTest, PeerIsFullTransportAddress) {
  FakeClock clock;
  ChannelTable t;
  ASSERT_EQ(t.bind(ch(0x4000), addr("192.0.2.1:5000"), clock.now()), ChannelBind::Bound);
  // Same IP, other port: a different peer, may take another channel.
  EXPECT_EQ(t.bind(ch(0x4001), addr("192.0.2.1:5001"), clock.now()), ChannelBind::Bound);
  EXPECT_FALSE(t.channel_of(addr("192.0.2.1:5002"), clock.now()));
  EXPECT_EQ(t.channel_of(addr("192.0.2.1:5001"), clock.now()), ch(0x4001));
}

TEST(ChannelTableTest, ChannelBoundToOtherPeerIsRejected) {
  FakeClock clock;
  ChannelTable t;
  ASSERT_EQ(t.bind(ch(0x4000), addr("192.0.2.1:5000"), clock.now()), ChannelBind::Bound);
  EXPECT_EQ(t.bind(ch(0x4000), addr("192.0.2.2:5000"), clock.now()), ChannelBind::ChannelBoundToOtherPeer);
  EXPECT_EQ(t.bind(ch(0x4000), addr("192.0.2.1:5001"), clock.now()), ChannelBind::ChannelBoundToOtherPeer);
  EXPECT_EQ(t.peer_of(ch(0x4000), clock.now()), addr("192.0.2.1:5000"));
  EXPECT_EQ(t.size(), 1u);
}

TEST(ChannelTableTest, PeerBoundToOtherChannelIsRejected) {
  FakeClock clock;
  ChannelTable t;
  ASSERT_EQ(t.bind(ch(0x4000), addr("192.0.2.1:5000"), clock.now()), ChannelBind::Bound);
  EXPECT_EQ(t.bind(ch(0x4001), addr("192.0.2.1:5000"), clock.now()), ChannelBind::PeerBoundToOtherChannel);
  EXPECT_FALSE(t.peer_of(ch(0x4001), clock.now()));
}

TEST(ChannelTableTest, RebindingSamePairRefreshes) {
  FakeClock clock;
  ChannelTable t;
  auto peer = addr("[2001:db8::1]:5000");
  ASSERT_EQ(t.bind(ch(0x4ABC), peer, clock.now()), ChannelBind::Bound);
  clock.advance(500s);
  EXPECT_EQ(t.bind(ch(0x4ABC), peer, clock.now()), ChannelBind::Refreshed);
  EXPECT_EQ(t.expiry(ch(0x4ABC)), clock.now() + 600s);
  clock.advance(599s);  // 1099 s after the first bind
  EXPECT_EQ(t.peer_of(ch(0x4ABC), clock.now()), peer);
  EXPECT_EQ(t.size(), 1u);
}

TEST(ChannelTableTest, ExpiresAtExactlySixHundredSeconds) {
  FakeClock clock;
  ChannelTable t;
  auto peer = addr("192.0.2.1:5000");
  t.bind(ch(0x4000), peer, clock.now());
  clock.advance(600s - 1ns);
  EXPECT_EQ(t.peer_of(ch(0x4000), clock.now()), peer);
  EXPECT_EQ(t.channel_of(peer, clock.now()), ch(0x4000));
  clock.advance(1ns);
  EXPECT_FALSE(t.peer_of(ch(0x4000), clock.now()));
  EXPECT_FALSE(t.channel_of(peer, clock.now()));
  EXPECT_EQ(t.live_count(clock.now()), 0u);
}

TEST(ChannelTableTest, QuarantineBlocksOtherBindingsForFiveMinutes) {
  FakeClock clock;
  ChannelTable t;
  auto peer = addr("192.0.2.1:5000");
  auto other = addr("192.0.2.2:5000");
  t.bind(ch(0x4000), peer, clock.now());
  clock.advance(600s);  // expired, quarantine starts
  EXPECT_EQ(t.bind(ch(0x4000), other, clock.now()), ChannelBind::ChannelQuarantined);
  EXPECT_EQ(t.bind(ch(0x4001), peer, clock.now()), ChannelBind::PeerQuarantined);
  EXPECT_EQ(t.expire(clock.now()), 0u);  // still held
  clock.advance(300s - 1ns);
  EXPECT_EQ(t.bind(ch(0x4000), other, clock.now()), ChannelBind::ChannelQuarantined);
  EXPECT_EQ(t.bind(ch(0x4001), peer, clock.now()), ChannelBind::PeerQuarantined);
  clock.advance(1ns);  // 900 s after the bind: free again
  EXPECT_EQ(t.bind(ch(0x4000), other, clock.now()), ChannelBind::Bound);
  EXPECT_EQ(t.bind(ch(0x4001), peer, clock.now()), ChannelBind::Bound);
  EXPECT_EQ(t.peer_of(ch(0x4000), clock.now()), other);
  EXPECT_EQ(t.channel_of(peer, clock.now()), ch(0x4001));
  EXPECT_EQ(t.size(), 2u);
}

TEST(ChannelTableTest, SamePairDuringQuarantineRevives) {
  FakeClock clock;
  ChannelTable t;
  auto peer = addr("192.0.2.1:5000");
  t.bind(ch(0x4000), peer, clock.now());
  clock.advance(700s);
  EXPECT_FALSE(t.peer_of(ch(0x4000), clock.now()));
  EXPECT_EQ(t.bind(ch(0x4000), peer, clock.now()), ChannelBind::Bound);
  EXPECT_EQ(t.peer_of(ch(0x4000), clock.now()), peer);
  EXPECT_EQ(t.size(), 1u);
}

TEST(ChannelTableTest, ExpireForgetsAfterQuarantine) {
  FakeClock clock;
  ChannelTable t;
  t.bind(ch(0x4000), addr("192.0.2.1:5000"), clock.now());
  clock.advance(100s);
  t.bind(ch(0x4001), addr("192.0.2.2:5000"), clock.now());
  EXPECT_EQ(t.next_deadline(clock.now()), clock.now() + 500s);  // first binding's expiry
  clock.advance(500s);
  EXPECT_EQ(t.next_deadline(clock.now()), clock.now() + 100s);  // second binding's expiry
  clock.advance(100s);
  EXPECT_EQ(t.next_deadline(clock.now()), clock.now() + 200s);  // first one's quarantine end
  clock.advance(200s);                                          // first: 900 s old, out of quarantine
  EXPECT_EQ(t.expire(clock.now()), 1u);
  EXPECT_EQ(t.size(), 1u);
  clock.advance(100s);
  EXPECT_EQ(t.expire(clock.now()), 1u);
  EXPECT_EQ(t.size(), 0u);
  EXPECT_FALSE(t.next_deadline(clock.now()));
}

TEST(ChannelTableTest, FullCountsQuarantinedSlots) {
  FakeClock clock;
  ChannelTable t(2);
  EXPECT_EQ(t.max_size(), 2u);
  EXPECT_EQ(t.bind(ch(0x4000), addr("192.0.2.1:1"), clock.now()), ChannelBind::Bound);
  EXPECT_EQ(t.bind(ch(0x4001), addr("192.0.2.2:1"), clock.now()), ChannelBind::Bound);
  EXPECT_EQ(t.bind(ch(0x4002), addr("192.0.2.3:1"), clock.now()), ChannelBind::Full);
  EXPECT_EQ(t.bind(ch(0x4001), addr("192.0.2.2:1"), clock.now()), ChannelBind::Refreshed);
  // Conflict errors win over Full: the client learns what it did wrong.
  EXPECT_EQ(t.bind(ch(0x4000), addr("192.0.2.3:1"), clock.now()), ChannelBind::ChannelBoundToOtherPeer);
  clock.advance(600s);
  EXPECT_EQ(t.bind(ch(0x4002), addr("192.0.2.3:1"), clock.now()), ChannelBind::Full);  // quarantined
  clock.advance(300s);
  EXPECT_EQ(t.bind(ch(0x4002), addr("192.0.2.3:1"), clock.now()), ChannelBind::Bound);
}

TEST(ChannelTableTest, ExpiryOfUnknownChannel) {
  ChannelTable t;
  EXPECT_FALSE(t.expiry(ch(0x4000)));
}

}  // namespace
}  // namespace ferry::turn
