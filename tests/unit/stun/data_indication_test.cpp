// A Data indication (RFC 8656 §10.3) framed in place the way the TURN core frames a peer datagram:
// MessageBuilder writes the header and XOR-PEER-ADDRESS in front of a payload that is already
// where DATA's value goes, and add_in_place() adds DATA's header and padding. The result must be
// byte for byte what the core's former hand-written framing produced, kept here as the reference.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <string>
#include <vector>

#include "stun/attributes.h"
#include "stun/constants.h"
#include "stun/message.h"
#include "stun/message_builder.h"
#include "tests/unit/fixtures/vectors.h"

namespace {

using namespace ferry::stun;
using ferry::testing::to_hex;

constexpr size_t kHeadroom = 64;  // as ServerCore::kPeerHeadroom
constexpr size_t kTailroom = 4;   // as ServerCore::kPeerTailroom
using ferry::testing::kRfc5769TxId;

// A peer datagram as the shell hands it over: headroom and tailroom full of garbage around it.
std::vector<uint8_t> datagram(const std::string& payload) {
  std::vector<uint8_t> b(kHeadroom + payload.size() + kTailroom, 0xEE);
  std::copy(payload.begin(), payload.end(), b.begin() + kHeadroom);
  return b;
}

// The framing server_core.cpp wrote by hand before it used MessageBuilder, copied unchanged.
Bytes framed_by_hand(uint8_t* buffer, size_t len, const TransportAddress& peer, const TransactionId& id) {
  uint8_t* payload = buffer + kHeadroom;
  const size_t addr_len = 4 + peer.ip_size();
  const size_t prefix = kHeaderSize + 4 + addr_len + 4;
  uint8_t* msg = payload - prefix;
  uint8_t* p = msg;
  store_u16(p, make_type(Method::Data, Class::Indication));
  const size_t total = prefix + padded4(len);
  store_u16(p + 2, static_cast<uint16_t>(total - kHeaderSize));
  store_u32(p + 4, kMagicCookie);
  std::memcpy(p + 8, id.data(), id.size());
  p += kHeaderSize;
  store_u16(p, attr::XorPeerAddress);
  store_u16(p + 2, static_cast<uint16_t>(addr_len));
  encode_xor_address(peer, std::span<const uint8_t, 12>(msg + 8, 12), p + 4);
  p += 4 + addr_len;
  store_u16(p, attr::Data);
  store_u16(p + 2, static_cast<uint16_t>(len));
  std::memset(payload + len, 0, padded4(len) - len);
  return Bytes(msg, total);
}

// The framing of turn/data.cpp.
Bytes framed_by_builder(uint8_t* buffer, size_t len, const TransportAddress& peer, const TransactionId& id) {
  uint8_t* payload = buffer + kHeadroom;
  const size_t prefix = kHeaderSize + 4 + (4 + peer.ip_size()) + 4;
  uint8_t* msg = payload - prefix;
  MessageBuilder b(MutableBytes(msg, prefix + padded4(len)), Method::Data, Class::Indication, id);
  b.add_xor_address(attr::XorPeerAddress, peer).add_in_place(attr::Data, len);
  auto bytes = b.finish();
  EXPECT_TRUE(bytes.ok());
  return bytes.ok() ? *bytes : Bytes{};
}

TEST(DataIndication, BuiltInPlaceMatchesKnownBytes) {
  const TransportAddress peer = *TransportAddress::parse("192.0.2.7:5000");
  std::vector<uint8_t> b = datagram("hello");
  const Bytes msg = framed_by_builder(b.data(), 5, peer, kRfc5769TxId);
  // Header (type 0x0017, length 24, cookie, id), XOR-PEER-ADDRESS 192.0.2.7:5000 xor the cookie,
  // DATA "hello" and three bytes of zero padding.
  EXPECT_EQ(to_hex(msg),
            "00170018"
            "2112a442"
            "b7e7a701bc34d686fa87dfae"
            "00120008"
            "0001329a"
            "e112a645"
            "00130005"
            "68656c6c"
            "6f000000");
  EXPECT_EQ(msg.data(), b.data() + kHeadroom - 36);  // framed in front of the payload, not copied
  auto v = MessageView::parse(msg);
  ASSERT_TRUE(v.ok());
  EXPECT_TRUE(v->is(Method::Data, Class::Indication));
  auto data = v->find(attr::Data);
  ASSERT_TRUE(data);
  EXPECT_EQ(std::string(data->value.begin(), data->value.end()), "hello");
  EXPECT_EQ(msg.size(), 44u);
}

TEST(DataIndication, BuiltInPlaceMatchesTheHandWrittenFraming) {
  const std::vector<TransportAddress> peers = {*TransportAddress::parse("192.0.2.7:5000"),
                                               *TransportAddress::parse("[2001:db8:1::7]:5000")};
  for (const TransportAddress& peer : peers) {
    for (size_t n : std::array<size_t, 8>{0, 1, 2, 3, 4, 5, 1200, 0xFFFF - 64}) {
      const std::string payload(n, 'z');
      std::vector<uint8_t> by_hand = datagram(payload);
      std::vector<uint8_t> by_builder = datagram(payload);
      const Bytes expected = framed_by_hand(by_hand.data(), n, peer, kRfc5769TxId);
      const Bytes actual = framed_by_builder(by_builder.data(), n, peer, kRfc5769TxId);
      ASSERT_EQ(actual.data() - by_builder.data(), expected.data() - by_hand.data()) << peer.to_string() << " " << n;
      EXPECT_TRUE(std::equal(actual.begin(), actual.end(), expected.begin(), expected.end()))
          << peer.to_string() << " " << n;
      // Nothing else in the buffer was touched.
      EXPECT_EQ(by_builder, by_hand) << peer.to_string() << " " << n;
    }
  }
}

TEST(DataIndication, InPlaceAttributeThatDoesNotFitOverflows) {
  std::array<uint8_t, kHeaderSize + 4 + 7> out{};  // room for 7 value bytes, not their padding
  MessageBuilder b(out, Method::Data, Class::Indication, kRfc5769TxId);
  b.add_in_place(attr::Data, 7);
  EXPECT_FALSE(b.ok());
  EXPECT_FALSE(b.finish().ok());
}

}  // namespace
