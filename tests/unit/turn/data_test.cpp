// The data path (RFC 8656 §10, §12): Send indications and ChannelData to peers, peer datagrams to
// clients as Data indications or ChannelData, and the bandwidth limit.
#include "tests/unit/fixtures/turn_core_fixture.h"

namespace ferry::turn {
namespace {

using namespace ferry::turn::testing;

// ================================ data ================================

TEST_F(TurnCoreTest, SendIndicationRelaysOnlyWithPermission) {
  TurnClient c = alice();
  const TransportAddress relayed = allocate_ok(c, tuple(1));
  send_indication(c, tuple(1), kPeer, "no permission yet");
  EXPECT_TRUE(io.to_peer.empty());
  EXPECT_EQ(dropped(DropReason::NoPermission), 1u);
  ASSERT_EQ(permit(c, tuple(1), {kPeer}).outcome, Outcome::Success);
  const std::string payload("\x00\x01hello\xFF", 8);
  send_indication(c, tuple(1), kPeer, payload);
  ASSERT_EQ(io.to_peer.size(), 1u);
  EXPECT_EQ(io.to_peer[0].relay, *io.relay_at(relayed));
  EXPECT_EQ(io.to_peer[0].peer, kPeer);
  EXPECT_EQ(string_of(io.to_peer[0].bytes), payload);
  // Another port of the same IP is covered by the permission.
  send_indication(c, tuple(1), kPeer.with_port(9), "p");
  ASSERT_EQ(io.to_peer.size(), 2u);
  EXPECT_EQ(io.to_peer[1].peer, kPeer.with_port(9));
  EXPECT_EQ(server().stats().relayed_packets[static_cast<size_t>(Direction::ClientToPeer)].get(), 2u);
  EXPECT_EQ(server().stats().relayed_bytes[static_cast<size_t>(Direction::ClientToPeer)].get(), 9u);
}

TEST_F(TurnCoreTest, SendIndicationWithoutAllocationIsDropped) {
  TurnClient c = alice();
  send_indication(c, tuple(1), kPeer, "x");
  EXPECT_TRUE(io.to_peer.empty());
  EXPECT_TRUE(io.to_client.empty());
  EXPECT_EQ(dropped(DropReason::NoAllocation), 1u);
}

TEST_F(TurnCoreTest, ChannelDataRelaysToBoundPeer) {
  TurnClient c = alice();
  const TransportAddress relayed = allocate_ok(c, tuple(1));
  send_channel_data(tuple(1), 0x4000, "unbound");
  EXPECT_TRUE(io.to_peer.empty());
  ASSERT_EQ(bind(c, tuple(1), 0x4000, kPeer).outcome, Outcome::Success);
  send_channel_data(tuple(1), 0x4000, "abcde");
  ASSERT_EQ(io.to_peer.size(), 1u);
  EXPECT_EQ(io.to_peer[0].relay, *io.relay_at(relayed));
  EXPECT_EQ(io.to_peer[0].peer, kPeer);
  EXPECT_EQ(string_of(io.to_peer[0].bytes), "abcde");
  EXPECT_TRUE(io.to_client.size() <= 1u);  // only the ChannelBind response, nothing for the data
}

TEST_F(TurnCoreTest, PeerDatagramWithoutPermissionIsDropped) {
  TurnClient c = alice();
  const TransportAddress relayed = allocate_ok(c, tuple(1));
  io.to_client.clear();
  from_peer(relayed, kPeer, "knock knock");
  EXPECT_TRUE(io.to_client.empty());
  EXPECT_EQ(dropped(DropReason::NoPermission), 1u);
  // A relay id nobody owns is ignored.
  std::vector<uint8_t> b(ServerCore::kPeerHeadroom + 8 + ServerCore::kPeerTailroom);
  server().on_peer_packet(12345, kPeer, b.data(), 8);
  EXPECT_TRUE(io.to_client.empty());
}

TEST_F(TurnCoreTest, PeerDatagramWithPermissionBecomesDataIndication) {
  TurnClient c = alice();
  const TransportAddress relayed = allocate_ok(c, tuple(1));
  ASSERT_EQ(permit(c, tuple(1), {kPeer}).outcome, Outcome::Success);
  for (const std::string& payload :
       {std::string("hello"), std::string("four"), std::string(), std::string(1200, 'z')}) {
    io.to_client.clear();
    from_peer(relayed, kPeer, payload);
    ASSERT_EQ(io.to_client.size(), 1u);
    EXPECT_EQ(io.to_client[0].to, tuple(1));
    auto v = MessageView::parse(Bytes(io.to_client[0].bytes));
    ASSERT_TRUE(v.ok());
    EXPECT_TRUE(v->is(stun::Method::Data, stun::Class::Indication));
    EXPECT_EQ(io.to_client[0].bytes.size() % 4, 0u);
    EXPECT_FALSE(v->message_integrity());
    auto pd = c.on_peer_data(io.to_client[0].bytes);
    ASSERT_TRUE(pd);
    EXPECT_FALSE(pd->channel);
    EXPECT_EQ(pd->peer, kPeer);
    EXPECT_EQ(string_of(pd->data), payload);
    if (payload == "hello") {
      // Byte for byte the §10.3 framing the core wrote by hand before it used MessageBuilder: the
      // transaction id is the core's counter, everything else is fixed.
      const std::vector<uint8_t>& got = io.to_client[0].bytes;
      ASSERT_EQ(got.size(), 44u);
      const std::vector<uint8_t> header = {0x00, 0x17, 0x00, 0x18, 0x21, 0x12, 0xa4, 0x42};
      const std::vector<uint8_t> attributes = {0x00, 0x12, 0x00, 0x08, 0x00, 0x01, 0x32, 0x9a, 0xe1, 0x12, 0xa6, 0x45,
                                               0x00, 0x13, 0x00, 0x05, 'h',  'e',  'l',  'l',  'o',  0x00, 0x00, 0x00};
      EXPECT_EQ(std::vector<uint8_t>(got.begin(), got.begin() + 8), header);
      EXPECT_EQ(std::vector<uint8_t>(got.begin() + 20, got.end()), attributes);
    }
  }
  EXPECT_EQ(server().stats().relayed_packets[static_cast<size_t>(Direction::PeerToClient)].get(), 4u);
}

TEST_F(TurnCoreTest, Ipv6PeerDatagramBecomesDataIndication) {
  config.relays.push_back(RelayAddress{kRelay6, std::nullopt});
  TurnClient c = alice();
  AllocateOptions o;
  o.additional_family = Family::V6;
  Response r = allocate(c, tuple(1), o);
  ASSERT_EQ(r.relayed.size(), 2u);
  ASSERT_EQ(permit(c, tuple(1), {kPeer6}).outcome, Outcome::Success);
  io.to_client.clear();
  from_peer(r.relayed[1], kPeer6, "six");
  ASSERT_EQ(io.to_client.size(), 1u);
  auto pd = c.on_peer_data(io.to_client[0].bytes);
  ASSERT_TRUE(pd);
  EXPECT_EQ(pd->peer, kPeer6);
  EXPECT_EQ(string_of(pd->data), "six");
  // And the other way, out of the IPv6 relay.
  send_indication(c, tuple(1), kPeer6, "back");
  ASSERT_EQ(io.to_peer.size(), 1u);
  EXPECT_EQ(io.to_peer[0].relay, *io.relay_at(r.relayed[1]));
}

TEST_F(TurnCoreTest, PeerDatagramWithChannelBecomesUnpaddedChannelDataOverUdp) {
  TurnClient c = alice();
  const TransportAddress relayed = allocate_ok(c, tuple(1));
  ASSERT_EQ(bind(c, tuple(1), 0x4ABC, kPeer).outcome, Outcome::Success);
  io.to_client.clear();
  from_peer(relayed, kPeer, "hello");
  ASSERT_EQ(io.to_client.size(), 1u);
  const std::vector<uint8_t> expected = {0x4A, 0xBC, 0x00, 0x05, 'h', 'e', 'l', 'l', 'o'};
  EXPECT_EQ(io.to_client[0].bytes, expected);
  auto pd = c.on_peer_data(io.to_client[0].bytes);
  ASSERT_TRUE(pd);
  EXPECT_EQ(pd->channel, 0x4ABC);
  EXPECT_EQ(pd->peer, kPeer);
  EXPECT_EQ(string_of(pd->data), "hello");
}

TEST_F(TurnCoreTest, PeerDatagramWithChannelIsPaddedOverTcp) {
  const FiveTuple tcp = tuple(1, Transport::Tcp);
  TurnClient c = alice();
  const TransportAddress relayed = allocate_ok(c, tcp);
  ASSERT_EQ(bind(c, tcp, 0x4000, kPeer).outcome, Outcome::Success);
  io.to_client.clear();
  from_peer(relayed, kPeer, "hello");
  ASSERT_EQ(io.to_client.size(), 1u);
  const std::vector<uint8_t> expected = {0x40, 0x00, 0x00, 0x05, 'h', 'e', 'l', 'l', 'o', 0, 0, 0};
  EXPECT_EQ(io.to_client[0].bytes, expected);
  // A stream client's padded ChannelData is relayed without the padding.
  send_channel_data(tcp, 0x4000, "abcde");
  ASSERT_EQ(io.to_peer.size(), 1u);
  EXPECT_EQ(string_of(io.to_peer[0].bytes), "abcde");
  // Its allocation ending tells the shell the connection may go.
  ASSERT_EQ(refresh(c, tcp, 0).outcome, Outcome::Success);
  ASSERT_EQ(io.stream_closed.size(), 1u);
  EXPECT_EQ(io.stream_closed[0], tcp);
}

TEST_F(TurnCoreTest, BandwidthLimitDropsBeyondTokenBucket) {
  config.bandwidth_per_allocation = 1000;  // bytes/s, burst one second's worth
  TurnClient c = alice();
  const TransportAddress relayed = allocate_ok(c, tuple(1));
  ASSERT_EQ(permit(c, tuple(1), {kPeer}).outcome, Outcome::Success);
  const std::string chunk(600, 'b');
  send_indication(c, tuple(1), kPeer, chunk);
  EXPECT_EQ(io.to_peer.size(), 1u);
  send_indication(c, tuple(1), kPeer, chunk);  // 400 tokens left: dropped
  EXPECT_EQ(io.to_peer.size(), 1u);
  EXPECT_EQ(dropped(DropReason::Bandwidth), 1u);
  io.to_client.clear();
  from_peer(relayed, kPeer, chunk);  // the same bucket serves both directions
  EXPECT_TRUE(io.to_client.empty());
  EXPECT_EQ(dropped(DropReason::Bandwidth), 2u);
  clock.advance(1s);  // refilled
  send_indication(c, tuple(1), kPeer, chunk);
  EXPECT_EQ(io.to_peer.size(), 2u);
}

}  // namespace
}  // namespace ferry::turn
