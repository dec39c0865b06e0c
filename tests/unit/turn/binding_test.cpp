// Binding requests (RFC 8489 §7.3): XOR-MAPPED-ADDRESS, RFC 3489 clients, FINGERPRINT, 420 for
// unknown attributes, the RFC 5780 NAT behaviour discovery attributes, and malformed input.
#include "tests/unit/fixtures/turn_core_fixture.h"

namespace ferry::turn {
namespace {

using namespace ferry::turn::testing;

// ================================ Binding ================================

TEST_F(TurnCoreTest, BindingReturnsXorMappedAddress) {
  TurnClient c = alice();
  Response r = transact(c, tuple(1), [](TurnClient& cl, MutableBytes out) { return cl.binding_request(out); });
  EXPECT_EQ(r.outcome, Outcome::Success);
  EXPECT_EQ(r.method, stun::Method::Binding);
  ASSERT_TRUE(r.mapped);
  EXPECT_EQ(*r.mapped, tuple(1).client);
  MessageView v = response_view();
  EXPECT_TRUE(v.has(attr::XorMappedAddress));
  EXPECT_FALSE(v.has(attr::MappedAddress));
  EXPECT_FALSE(v.message_integrity());
  EXPECT_FALSE(v.fingerprint());
  EXPECT_EQ(c.pending_count(), 0u);
  EXPECT_EQ(server().stats().binding_requests.get(), 1u);
  expect_nothing_allocated();
}

TEST_F(TurnCoreTest, Rfc3489BindingWithoutCookieGetsMappedAddress) {
  // RFC 8489 §12: a request without the magic cookie is an RFC 3489 client's.
  std::array<uint8_t, 20> req{};
  stun::store_u16(req.data(), stun::make_type(stun::Method::Binding, stun::Class::Request));
  for (size_t i = 4; i < 20; ++i) req[i] = static_cast<uint8_t>(0xA0 + i);
  server().on_client_packet(tuple(1), req);
  ASSERT_EQ(io.to_client.size(), 1u);
  // MessageView only accepts cookie-less *requests*, so read the answer by hand: header, then
  // exactly one attribute, MAPPED-ADDRESS (RFC 3489 has no XOR-MAPPED-ADDRESS).
  const std::vector<uint8_t>& res = io.to_client[0].bytes;
  ASSERT_EQ(res.size(), 20u + 4u + 8u);
  EXPECT_EQ(stun::load_u16(res.data()), stun::make_type(stun::Method::Binding, stun::Class::Success));
  EXPECT_EQ(stun::load_u16(res.data() + 2), 12);
  EXPECT_TRUE(std::equal(req.begin() + 4, req.end(), res.begin() + 4));  // all 16 id bytes back
  EXPECT_EQ(stun::load_u16(res.data() + 20), attr::MappedAddress);
  EXPECT_EQ(stun::load_u16(res.data() + 22), 8);
  auto mapped = stun::decode_address(Bytes(res.data() + 24, 8));
  ASSERT_TRUE(mapped.ok());
  EXPECT_EQ(*mapped, tuple(1).client);
}

TEST_F(TurnCoreTest, AnswerIsBuiltInTheLentScratchOnlyDuringItsPacket) {
  TurnClient c = alice();
  auto in_range = [](const uint8_t* p, const std::vector<uint8_t>& v) {
    return p >= v.data() && p < v.data() + v.size();
  };
  std::vector<uint8_t> scratch(ServerCore::kResponseCapacity + 100, 0);
  auto req = c.binding_request(buf);
  ASSERT_TRUE(req);
  server().on_client_packet(tuple(1), *req, scratch);
  ASSERT_EQ(io.to_client.size(), 1u);
  EXPECT_TRUE(in_range(io.last_client_data, scratch));
  EXPECT_EQ(c.on_response(io.to_client[0].bytes).outcome, Outcome::Success);
  // Too small to hold any answer: not used.
  std::vector<uint8_t> small(ServerCore::kResponseCapacity - 1, 0);
  req = c.binding_request(buf);
  ASSERT_TRUE(req);
  server().on_client_packet(tuple(1), *req, small);
  ASSERT_EQ(io.to_client.size(), 2u);
  EXPECT_FALSE(in_range(io.last_client_data, small));
  // Not lent: the core's own buffer, not the scratch of an earlier packet.
  req = c.binding_request(buf);
  ASSERT_TRUE(req);
  server().on_client_packet(tuple(1), *req);
  ASSERT_EQ(io.to_client.size(), 3u);
  EXPECT_FALSE(in_range(io.last_client_data, scratch));
}

TEST_F(TurnCoreTest, BindingIndicationGetsNoAnswer) {
  stun::TransactionId id = client::random_transaction_id();
  stun::MessageBuilder b(buf, stun::Method::Binding, stun::Class::Indication, id);
  server().on_client_packet(tuple(1), *b.finish());
  EXPECT_TRUE(io.to_client.empty());
}

TEST_F(TurnCoreTest, FingerprintEchoedWhenRequested) {
  TurnClientConfig cfg = creds("alice", "alice-pw");
  cfg.fingerprint = true;
  TurnClient c(cfg);
  Response r = transact(c, tuple(1), [](TurnClient& cl, MutableBytes out) { return cl.binding_request(out); });
  EXPECT_EQ(r.outcome, Outcome::Success);
  MessageView v = response_view();
  ASSERT_TRUE(v.fingerprint());
  EXPECT_TRUE(stun::verify_fingerprint(v));
}

TEST_F(TurnCoreTest, WrongFingerprintIsDropped) {
  TurnClientConfig cfg = creds("alice", "alice-pw");
  cfg.fingerprint = true;
  TurnClient c(cfg);
  auto req = c.binding_request(buf);
  ASSERT_TRUE(req.ok());
  buf[req->size() - 1] ^= 0x01;  // corrupt the CRC
  server().on_client_packet(tuple(1), *req);
  EXPECT_TRUE(io.to_client.empty());
}

TEST_F(TurnCoreTest, UnknownComprehensionRequiredAttributeGets420) {
  TurnClient c = alice();
  Response r = transact(c, tuple(1), [](TurnClient& cl, MutableBytes out) {
    return cl.request(
        out, stun::Method::Binding,
        [](stun::MessageBuilder& b) {
      const uint8_t v[4] = {1, 2, 3, 4};
      b.add(0x7F01, Bytes(v));  // unknown, comprehension-required
      b.add(0xC001, Bytes(v));  // unknown, comprehension-optional: not listed
        },
        false);
  });
  expect_error(r, code::UnknownAttribute);
  EXPECT_EQ(r.unknown_attributes, std::vector<uint16_t>{0x7F01});
  EXPECT_EQ(server().stats().errors_sent[420].get(), 1u);
}

TEST_F(TurnCoreTest, UnknownAttributeInAllocateGets420BeforeAuthentication) {
  TurnClient c = alice();
  Response r = transact(c, tuple(1), [](TurnClient& cl, MutableBytes out) {
    return cl.request(out, stun::Method::Allocate, [](stun::MessageBuilder& b) {
      b.add_requested_transport(stun::kTransportUdp);
      b.add_u32(0x7F02, 0);
    });
  });
  expect_error(r, code::UnknownAttribute);
  EXPECT_EQ(r.unknown_attributes, std::vector<uint16_t>{0x7F02});
  expect_nothing_allocated();
}

TEST_F(TurnCoreTest, ChangeRequestWithoutOtherAddressGets420) {
  TurnClient c = alice();
  Response r = transact(c, tuple(1), [](TurnClient& cl, MutableBytes out) {
    return cl.request(
        out, stun::Method::Binding, [](stun::MessageBuilder& b) { b.add_change_request(true, true); }, false);
  });
  expect_error(r, code::UnknownAttribute);
  EXPECT_EQ(r.unknown_attributes, std::vector<uint16_t>{attr::ChangeRequest});
}

const TransportAddress kAlternate = TransportAddress::parse("198.51.100.2:3479").value();

// A Binding request with RFC 5780 attributes from client `n` to `local`; returns where the one
// answer went (its 5-tuple) and the answer.
struct NatAnswer {
  FiveTuple to;
  Response response;
  size_t size = 0;
};

class NatDiscoveryTest : public TurnCoreTest {
 protected:
  NatDiscoveryTest() { config.nat_discovery = NatDiscovery{kListener, kAlternate}; }

  NatAnswer binding(const TransportAddress& local, const std::function<void(stun::MessageBuilder&)>& attrs,
                    Transport t = Transport::Udp) {
    TurnClient c = alice();
    auto req = c.request(buf, stun::Method::Binding, attrs, false);
    EXPECT_TRUE(req.ok());
    io.to_client.clear();
    FiveTuple from = tuple(1, t);
    from.server = local;
    server().on_client_packet(from, *req);
    if (io.to_client.size() != 1) {
      ADD_FAILURE() << "expected one answer, got " << io.to_client.size();
      return {};
    }
    return {io.to_client[0].to, c.on_response(io.to_client[0].bytes), io.to_client[0].bytes.size()};
  }
  NatAnswer change(const TransportAddress& local, bool ip, bool port) {
    return binding(local, [&](stun::MessageBuilder& b) { b.add_change_request(ip, port); });
  }
};

TEST_F(NatDiscoveryTest, PlainBindingCarriesResponseOriginOtherAddressAndMappedAddress) {
  NatAnswer a = binding(kListener, [](stun::MessageBuilder&) {});
  ASSERT_EQ(a.response.outcome, Outcome::Success);
  EXPECT_EQ(a.to, tuple(1));
  EXPECT_EQ(a.response.response_origin, kListener);
  EXPECT_EQ(a.response.other_address, kAlternate);
  EXPECT_EQ(a.response.mapped, tuple(1).client);
  auto v = MessageView::parse(Bytes(io.to_client[0].bytes));
  ASSERT_TRUE(v.ok());
  EXPECT_TRUE(v->has(attr::MappedAddress));  // RFC 5780 §6.1: both, so clients can spot an ALG
  EXPECT_TRUE(v->has(attr::XorMappedAddress));
}

TEST_F(NatDiscoveryTest, ChangeIpAnswersFromTheOtherAddressSamePort) {
  NatAnswer a = change(kListener, true, false);
  ASSERT_EQ(a.response.outcome, Outcome::Success);
  const TransportAddress expected = addr("198.51.100.2:3478");
  EXPECT_EQ(a.to.server, expected);
  EXPECT_EQ(a.to.client, tuple(1).client);
  EXPECT_EQ(a.response.response_origin, expected);
  EXPECT_EQ(a.response.other_address, kAlternate);
}

TEST_F(NatDiscoveryTest, ChangePortAnswersFromTheOtherPortSameAddress) {
  NatAnswer a = change(kListener, false, true);
  ASSERT_EQ(a.response.outcome, Outcome::Success);
  const TransportAddress expected = addr("198.51.100.1:3479");
  EXPECT_EQ(a.to.server, expected);
  EXPECT_EQ(a.response.response_origin, expected);
}

TEST_F(NatDiscoveryTest, ChangeBothAnswersFromTheAlternate) {
  NatAnswer a = change(kListener, true, true);
  ASSERT_EQ(a.response.outcome, Outcome::Success);
  EXPECT_EQ(a.to.server, kAlternate);
  EXPECT_EQ(a.response.response_origin, kAlternate);
}

TEST_F(NatDiscoveryTest, EmptyChangeRequestAnswersFromWhereItArrived) {
  NatAnswer a = change(kListener, false, false);
  ASSERT_EQ(a.response.outcome, Outcome::Success);
  EXPECT_EQ(a.to, tuple(1));
  EXPECT_EQ(a.response.response_origin, kListener);
}

TEST_F(NatDiscoveryTest, OtherAddressIsRelativeToWhereTheRequestArrived) {
  // RFC 5780 §6.1 Table 1: from A2:P1 the other address is A1:P2, and "change IP" leads back to A1.
  const TransportAddress a2p1 = addr("198.51.100.2:3478");
  NatAnswer a = change(a2p1, true, false);
  ASSERT_EQ(a.response.outcome, Outcome::Success);
  EXPECT_EQ(a.to.server, kListener);
  EXPECT_EQ(a.response.response_origin, kListener);
  EXPECT_EQ(a.response.other_address, addr("198.51.100.1:3479"));
  // From A2:P2 changing both ends at A1:P1.
  NatAnswer b = change(kAlternate, true, true);
  EXPECT_EQ(b.to.server, kListener);
  EXPECT_EQ(b.response.other_address, kListener);
}

TEST_F(NatDiscoveryTest, ResponsePortSendsToThatPortOfTheClient) {
  NatAnswer a = binding(kListener, [](stun::MessageBuilder& b) { b.add_u32(attr::ResponsePort, 0xBEEF0000u); });
  ASSERT_EQ(a.response.outcome, Outcome::Success);
  EXPECT_EQ(a.to.client, tuple(1).client.with_port(0xBEEF));
  EXPECT_EQ(a.response.mapped, tuple(1).client);  // still the address the request came from
}

TEST_F(NatDiscoveryTest, PaddingFillsTheAnswerToA1500ByteDatagram) {
  NatAnswer a = binding(kListener, [](stun::MessageBuilder& b) { b.add(attr::Padding, Bytes()); });
  ASSERT_EQ(a.response.outcome, Outcome::Success);
  EXPECT_LE(a.size, 1500u - 28u);
  EXPECT_GT(a.size, 1500u - 28u - 4u);
}

TEST_F(NatDiscoveryTest, PaddedAnswersCountAgainstTheUnauthenticatedRate) {
  config.unauth_requests_per_second = 1;  // a burst of 2
  TurnClient c = alice();
  size_t answered = 0;
  for (int i = 0; i < 4; ++i) {
    auto req = c.request(
        buf, stun::Method::Binding, [](stun::MessageBuilder& b) { b.add(attr::Padding, Bytes()); }, false);
    ASSERT_TRUE(req.ok());
    io.to_client.clear();
    server().on_client_packet(tuple(1), *req);
    answered += io.to_client.size();
  }
  EXPECT_EQ(answered, 2u);
  EXPECT_EQ(dropped(DropReason::RateLimited), 2u);
  // Unpadded answers are not limited (ICE keep-alives).
  NatAnswer a = binding(kListener, [](stun::MessageBuilder&) {});
  EXPECT_EQ(a.response.outcome, Outcome::Success);
}

TEST_F(NatDiscoveryTest, PaddingWithResponsePortGets400) {
  NatAnswer a = binding(kListener, [](stun::MessageBuilder& b) {
    b.add(attr::Padding, Bytes());
    b.add_u32(attr::ResponsePort, 0x13880000u);
  });
  EXPECT_EQ(a.response.error_code, code::BadRequest);
}

TEST_F(NatDiscoveryTest, ChangeRequestOverTcpGets400) {
  NatAnswer a = binding(
      kListener, [](stun::MessageBuilder& b) { b.add_change_request(true, false); }, Transport::Tcp);
  EXPECT_EQ(a.response.error_code, code::BadRequest);
  EXPECT_EQ(a.to.server, kListener);
}

TEST_F(NatDiscoveryTest, ChangeRequestOnAnotherListenerGets420) {
  // A listener that is not one of the four (here IPv6) has no alternate to answer from.
  const TransportAddress v6 = addr("[2001:db8::1]:3478");
  NatAnswer a = change(v6, true, false);
  EXPECT_EQ(a.response.error_code, code::UnknownAttribute);
  EXPECT_EQ(a.response.unknown_attributes, std::vector<uint16_t>{attr::ChangeRequest});
  EXPECT_EQ(a.to.server, v6);
  // A plain Binding there is answered, without RESPONSE-ORIGIN or OTHER-ADDRESS.
  NatAnswer b = binding(v6, [](stun::MessageBuilder&) {});
  EXPECT_EQ(b.response.outcome, Outcome::Success);
  EXPECT_FALSE(b.response.other_address);
  EXPECT_FALSE(b.response.response_origin);
}

TEST_F(TurnCoreTest, Rfc5780AttributesWithoutNatDiscoveryGet420) {
  TurnClient c = alice();
  Response r = transact(c, tuple(1), [](TurnClient& cl, MutableBytes out) {
    return cl.request(
        out, stun::Method::Binding,
        [](stun::MessageBuilder& b) {
      b.add_u32(attr::ResponsePort, 0x13880000u);
      b.add(attr::Padding, Bytes());
        },
        false);
  });
  expect_error(r, code::UnknownAttribute);
  EXPECT_EQ(r.unknown_attributes, (std::vector<uint16_t>{attr::ResponsePort, attr::Padding}));
  EXPECT_FALSE(r.other_address);
}

TEST(NatDiscovery, SourceAndOtherFollowTable1) {
  const NatDiscovery nd{kListener, kAlternate};
  const TransportAddress a2p1 = addr("198.51.100.2:3478"), a1p2 = addr("198.51.100.1:3479");
  EXPECT_EQ(nd.addresses(), (std::array<TransportAddress, 4>{kListener, a2p1, a1p2, kAlternate}));
  for (const auto& a : nd.addresses()) {
    EXPECT_TRUE(nd.serves(a));
    EXPECT_EQ(nd.source(a, false, false), a);
    EXPECT_NE(nd.other(a).ip, a.ip);
    EXPECT_NE(nd.other(a).port, a.port);
  }
  EXPECT_EQ(nd.source(a1p2, true, false), kAlternate);
  EXPECT_EQ(nd.source(a1p2, false, true), kListener);
  EXPECT_FALSE(nd.serves(addr("198.51.100.1:3480")));
}

TEST_F(TurnCoreTest, MalformedRequestGets400) {
  // A Binding request with the cookie whose attribute claims more bytes than there are.
  std::array<uint8_t, 28> req{};
  stun::store_u16(req.data(), stun::make_type(stun::Method::Binding, stun::Class::Request));
  stun::store_u16(req.data() + 2, 8);
  stun::store_u32(req.data() + 4, stun::kMagicCookie);
  for (size_t i = 8; i < 20; ++i) req[i] = static_cast<uint8_t>(i);
  stun::store_u16(req.data() + 20, attr::Software);
  stun::store_u16(req.data() + 22, 100);
  server().on_client_packet(tuple(1), req);
  ASSERT_EQ(io.to_client.size(), 1u);
  auto v = MessageView::parse(Bytes(io.to_client[0].bytes));
  ASSERT_TRUE(v.ok());
  EXPECT_TRUE(v->is(stun::Method::Binding, stun::Class::Error));
  EXPECT_TRUE(std::equal(req.begin() + 8, req.begin() + 20, v->transaction_id().begin()));
  auto e = v->find(attr::ErrorCode);
  ASSERT_TRUE(e);
  EXPECT_EQ(stun::decode_error_code(e->value)->code, code::BadRequest);
  EXPECT_EQ(dropped(DropReason::Malformed), 1u);
}

TEST_F(TurnCoreTest, NonStunDatagramGetsNothing) {
  const std::string junk(40, '\xFF');
  server().on_client_packet(tuple(1), bytes_of(junk));
  server().on_client_packet(tuple(1), bytes_of("hi"));
  // STUN-shaped but a success response (we never sent a request): ignored too.
  stun::MessageBuilder b(buf, stun::Method::Binding, stun::Class::Success, client::random_transaction_id());
  server().on_client_packet(tuple(1), *b.finish());
  EXPECT_TRUE(io.to_client.empty());
  expect_nothing_allocated();
}

}  // namespace
}  // namespace ferry::turn
