// MOBILITY-TICKET (RFC 8016 §3.1): its type, name and the 405 error, the empty request form, a
// ticket through builder and parser unchanged, and the size bound of the decoder.
#include <gtest/gtest.h>

#include <array>
#include <vector>

#include "stun/attributes.h"
#include "stun/constants.h"
#include "stun/message.h"
#include "stun/message_builder.h"

namespace {

using namespace ferry::stun;

constexpr std::array<uint8_t, kTransactionIdSize> kTicketTxId = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};

TEST(MobilityTicket, TypeNameAndErrorCode) {
  EXPECT_EQ(attr::MobilityTicket, 0x8030);
  EXPECT_FALSE(attr::comprehension_required(attr::MobilityTicket));  // old servers ignore it
  EXPECT_EQ(attr::name(attr::MobilityTicket), "MOBILITY-TICKET");
  EXPECT_EQ(code::MobilityForbidden, 405);
  EXPECT_EQ(code::reason(code::MobilityForbidden), "Mobility Forbidden");
}

TEST(MobilityTicket, EmptyAndFullTicketsRoundTrip) {
  std::array<uint8_t, 256> buf{};
  std::vector<uint8_t> ticket(36);
  for (size_t i = 0; i < ticket.size(); ++i) ticket[i] = static_cast<uint8_t>(0xA0 + i);
  MessageBuilder b(buf, Method::Allocate, Class::Request, kTicketTxId);
  b.add(attr::MobilityTicket, Bytes());
  b.add(attr::MobilityTicket, Bytes(ticket));
  auto bytes = b.finish();
  ASSERT_TRUE(bytes.ok());
  // Wire form of the empty one: type 0x8030, length 0, right after the header.
  EXPECT_EQ((*bytes)[20], 0x80);
  EXPECT_EQ((*bytes)[21], 0x30);
  EXPECT_EQ((*bytes)[22], 0x00);
  EXPECT_EQ((*bytes)[23], 0x00);
  auto msg = MessageView::parse(*bytes);
  ASSERT_TRUE(msg.ok());
  size_t seen = 0;
  msg->for_each([&](const RawAttribute& a) {
    if (a.type != attr::MobilityTicket) return true;
    auto t = decode_mobility_ticket(a.value);
    EXPECT_TRUE(t.ok());
    if (!t.ok()) return false;
    if (seen++ == 0) {
      EXPECT_TRUE(t->empty());
    } else {
      EXPECT_EQ(std::vector<uint8_t>(t->begin(), t->end()), ticket);
    }
    return true;
  });
  EXPECT_EQ(seen, 2u);
}

TEST(MobilityTicket, OversizedTicketIsRefused) {
  std::vector<uint8_t> big(kMaxMobilityTicketBytes + 1, 0x55);
  EXPECT_FALSE(decode_mobility_ticket(Bytes(big)).ok());
  EXPECT_TRUE(decode_mobility_ticket(Bytes(big.data(), kMaxMobilityTicketBytes)).ok());
}

}  // namespace
