// Build -> parse round trips for every MessageBuilder method, integrity/fingerprint, and malformed
// input (every prefix, oversized and misaligned lengths, tampering). Inputs that the parser sees are
// copied into exactly-sized heap buffers so AddressSanitizer (Asan build type) flags any over-read.
#include <gtest/gtest.h>

#include <openssl/evp.h>

#include <array>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "stun/attributes.h"
#include "stun/channel_data.h"
#include "stun/constants.h"
#include "stun/integrity.h"
#include "stun/message.h"
#include "stun/message_builder.h"
#include "tests/unit/fixtures/vectors.h"

namespace {

using namespace ferry::stun;
using ferry::testing::as_bytes;
using ferry::testing::from_hex;
using ferry::testing::to_hex;

using ferry::testing::kRfc5769TxId;

TransportAddress v4(const char* text) { return *TransportAddress::parse(text); }
TransportAddress v6(const char* text) { return *TransportAddress::parse(text); }

// Parses `bytes` from a heap copy of exactly that size (so reads past the end are ASan errors) and
// exercises every accessor and decoder on success. Returns whether it parsed.
bool parse_and_walk(Bytes bytes) {
  std::unique_ptr<uint8_t[]> copy(new uint8_t[bytes.size() == 0 ? 1 : bytes.size()]);
  std::copy(bytes.begin(), bytes.end(), copy.get());
  const Bytes b(copy.get(), bytes.size());
  auto r = MessageView::parse(b);
  (void)stream_frame_size(b);
  (void)parse_channel_data(b);
  if (!r.ok()) return false;
  const MessageView& m = *r;
  EXPECT_LE(m.size(), b.size());
  EXPECT_EQ(m.size(), kHeaderSize + load_u16(b.data() + 2));
  m.for_each([&](const RawAttribute& a) {
    EXPECT_LE(a.offset + 4 + a.value.size(), m.size());
    (void)decode_address(a.value);
    (void)decode_xor_address(a.value, m.transaction_id());
    (void)decode_error_code(a.value);
    (void)decode_text(a.value, kMaxRealmBytes);
    (void)decode_u32(a.value);
    (void)decode_channel_number(a.value);
    (void)decode_requested_transport(a.value);
    (void)decode_address_family(a.value);
    (void)decode_even_port(a.value);
    (void)decode_reservation_token(a.value);
    (void)decode_address_error_code(a.value);
    (void)decode_icmp(a.value);
    (void)decode_change_request(a.value);
    (void)decode_password_algorithm(a.value);
    (void)for_each_password_algorithm(a.value, [](const PasswordAlgorithmValue&) {});
    (void)for_each_unknown_attribute(a.value, [](uint16_t) {});
    (void)decode_userhash(a.value);
    return true;
  });
  uint16_t unknown[4];
  (void)m.unknown_required(unknown);
  const uint8_t key[16] = {};
  (void)verify_message_integrity(m, Bytes(key, 16));
  (void)verify_message_integrity_sha256(m, Bytes(key, 16));
  (void)verify_fingerprint(m);
  return true;
}

struct Built {
  std::vector<uint8_t> buf = std::vector<uint8_t>(4096);
  std::vector<uint8_t> bytes;
};

template <class F>
std::vector<uint8_t> build(F&& add, uint16_t type = make_type(Method::Allocate, Class::Request)) {
  std::vector<uint8_t> buf(4096);
  MessageBuilder mb(buf, type, kRfc5769TxId);
  add(mb);
  auto out = mb.finish();
  EXPECT_TRUE(out.ok());
  if (!out.ok()) return {};
  EXPECT_EQ(out->size() % 4, 0u);
  return std::vector<uint8_t>(out->begin(), out->end());
}

MessageView parsed(const std::vector<uint8_t>& bytes) {
  auto r = MessageView::parse(as_bytes(bytes));
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : to_string(r.error()));
  return *r;
}
// A MessageView does not own its bytes: temporaries are kept alive here until the process exits.
MessageView parsed(std::vector<uint8_t>&& bytes) {
  static std::deque<std::vector<uint8_t>> keep;
  return parsed(keep.emplace_back(std::move(bytes)));
}

// ---------------------------------------------------------------------------------------------
// Every builder method, decoded back.

TEST(StunRoundTrip, AddressAttributesIpv4AndIpv6) {
  const TransportAddress addrs[] = {v4("192.0.2.1:32853"),
                                    v4("0.0.0.0:0"),
                                    v4("255.255.255.255:65535"),
                                    v6("[2001:db8:1234:5678:11:2233:4455:6677]:32853"),
                                    v6("[::]:1"),
                                    v6("[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535")};
  for (const auto& a : addrs) {
    SCOPED_TRACE(a.to_string());
    const auto bytes = build([&](MessageBuilder& mb) {
      mb.add_xor_address(attr::XorMappedAddress, a)
          .add_xor_address(attr::XorPeerAddress, a)
          .add_xor_address(attr::XorRelayedAddress, a)
          .add_address(attr::MappedAddress, a)
          .add_address(attr::AlternateServer, a)
          .add_address(attr::ResponseOrigin, a)
          .add_address(attr::OtherAddress, a);
    });
    const auto m = parsed(bytes);
    for (uint16_t t : {attr::XorMappedAddress, attr::XorPeerAddress, attr::XorRelayedAddress}) {
      auto raw = m.find(t);
      ASSERT_TRUE(raw.has_value());
      EXPECT_EQ(raw->value.size(), a.is_v4() ? 8u : 20u);
      auto d = decode_xor_address(raw->value, m.transaction_id());
      ASSERT_TRUE(d.ok());
      EXPECT_EQ(*d, a);
      // XOR really is applied (except for the all-zero-after-xor corner, which these are not).
      EXPECT_NE(to_hex(raw->value.subspan(2)), to_hex(m.find(attr::MappedAddress)->value.subspan(2)));
    }
    for (uint16_t t : {attr::MappedAddress, attr::AlternateServer, attr::ResponseOrigin, attr::OtherAddress}) {
      auto d = decode_address(m.find(t)->value);
      ASSERT_TRUE(d.ok());
      EXPECT_EQ(*d, a);
    }
  }
}

TEST(StunRoundTrip, Rfc5769XorAddressesEncodeExactly) {
  // RFC 5769 §2.2/§2.3 XOR-MAPPED-ADDRESS values.
  uint8_t out[20];
  EXPECT_EQ(encode_xor_address(v4("192.0.2.1:32853"), kRfc5769TxId, out), 8u);
  EXPECT_EQ(to_hex(Bytes(out, 8)), "0001a147e112a643");
  EXPECT_EQ(encode_xor_address(v6("[2001:db8:1234:5678:11:2233:4455:6677]:32853"), kRfc5769TxId, out), 20u);
  EXPECT_EQ(to_hex(Bytes(out, 20)), "0002a1470113a9faa5d3f179bc25f4b5bed2b9d9");
}

TEST(StunRoundTrip, EveryOtherAttribute) {
  const std::array<uint16_t, 3> unknown = {0x07ad, 0x7fff, 0x001a};
  const std::array<PasswordAlgorithm, 2> algs = {PasswordAlgorithm::Sha256, PasswordAlgorithm::Md5};
  const std::string reason_763(kMaxReasonBytes, 'r');
  const auto bytes = build([&](MessageBuilder& mb) {
    mb.add_text(attr::Username, "マトリックス")
        .add_text(attr::Realm, "example.org")
        .add_text(attr::Nonce, "f//499k954d6OL34oL9FSTvy64sA")
        .add_text(attr::Software, "ferry")
        .add_text(attr::AlternateDomain, "turn.example.org")
        .add_u32(attr::Lifetime, 600)
        .add_u32(attr::ConnectionId, 0xdeadbeef)
        .add_error_code(438, "Stale Nonce")
        .add_unknown_attributes(unknown)
        .add_channel_number(0x4abc)
        .add_requested_transport(kTransportUdp)
        .add_address_family(attr::RequestedAddressFamily, Family::V6)
        .add_address_family(attr::AdditionalAddressFamily, Family::V6)
        .add_even_port(true)
        .add_reservation_token(0x0102030405060708ull)
        .add_address_error_code(Family::V6, 440)
        .add_change_request(true, false)
        .add_icmp(3, 13, 0xabcdef01)
        .add_password_algorithm(PasswordAlgorithm::Sha256)
        .add_password_algorithms(algs)
        .add(attr::Data, as_bytes(std::string("hello")))
        .add(attr::DontFragment, Bytes())
        .add(attr::Userhash, Bytes(userhash("user", "realm")));
  });
  const auto m = parsed(bytes);
  EXPECT_TRUE(m.is(Method::Allocate, Class::Request));
  EXPECT_TRUE(m.has_cookie());
  EXPECT_EQ(m.transaction_id_copy(), kRfc5769TxId);
  EXPECT_EQ(*decode_text(m.find(attr::Username)->value, kMaxUsernameBytes), "マトリックス");
  EXPECT_EQ(*decode_text(m.find(attr::Realm)->value, kMaxRealmBytes), "example.org");
  EXPECT_EQ(*decode_text(m.find(attr::Nonce)->value, kMaxNonceBytes), "f//499k954d6OL34oL9FSTvy64sA");
  EXPECT_EQ(*decode_text(m.find(attr::Software)->value, kMaxSoftwareBytes), "ferry");
  EXPECT_EQ(*decode_text(m.find(attr::AlternateDomain)->value, kMaxRealmBytes), "turn.example.org");
  EXPECT_EQ(*decode_u32(m.find(attr::Lifetime)->value), 600u);
  EXPECT_EQ(*decode_u32(m.find(attr::ConnectionId)->value), 0xdeadbeefu);
  auto ec = decode_error_code(m.find(attr::ErrorCode)->value);
  ASSERT_TRUE(ec.ok());
  EXPECT_EQ(ec->code, 438);
  EXPECT_EQ(ec->reason, "Stale Nonce");
  std::vector<uint16_t> got;
  ASSERT_TRUE(
      for_each_unknown_attribute(m.find(attr::UnknownAttributes)->value, [&](uint16_t t) { got.push_back(t); }).ok());
  EXPECT_EQ(got, std::vector<uint16_t>(unknown.begin(), unknown.end()));
  EXPECT_EQ(m.find(attr::UnknownAttributes)->value.size(), 6u);  // odd count: 2 bytes of padding
  EXPECT_EQ(*decode_channel_number(m.find(attr::ChannelNumber)->value), 0x4abc);
  EXPECT_EQ(to_hex(m.find(attr::ChannelNumber)->value), "4abc0000");  // RFFU zero
  EXPECT_EQ(*decode_requested_transport(m.find(attr::RequestedTransport)->value), kTransportUdp);
  EXPECT_EQ(to_hex(m.find(attr::RequestedTransport)->value), "11000000");
  EXPECT_EQ(*decode_address_family(m.find(attr::RequestedAddressFamily)->value), Family::V6);
  EXPECT_EQ(*decode_address_family(m.find(attr::AdditionalAddressFamily)->value), Family::V6);
  EXPECT_EQ(to_hex(m.find(attr::EvenPort)->value), "80");  // the RFC 8656 R bit, not Pion's 0xFF
  EXPECT_TRUE(*decode_even_port(m.find(attr::EvenPort)->value));
  EXPECT_EQ(*decode_reservation_token(m.find(attr::ReservationToken)->value), 0x0102030405060708ull);
  auto aec = decode_address_error_code(m.find(attr::AddressErrorCode)->value);
  ASSERT_TRUE(aec.ok());
  EXPECT_EQ(aec->family, Family::V6);
  EXPECT_EQ(aec->code, 440);
  EXPECT_EQ(aec->reason, "Address Family not Supported");
  auto cr = decode_change_request(m.find(attr::ChangeRequest)->value);
  ASSERT_TRUE(cr.ok());
  EXPECT_TRUE(cr->change_ip);
  EXPECT_FALSE(cr->change_port);
  auto icmp = decode_icmp(m.find(attr::Icmp)->value);
  ASSERT_TRUE(icmp.ok());
  EXPECT_EQ(icmp->type, 3);
  EXPECT_EQ(icmp->code, 13);
  EXPECT_EQ(icmp->data, 0xabcdef01u);
  auto pa = decode_password_algorithm(m.find(attr::PasswordAlgorithm)->value);
  ASSERT_TRUE(pa.ok());
  EXPECT_EQ(pa->algorithm, static_cast<uint16_t>(PasswordAlgorithm::Sha256));
  EXPECT_TRUE(pa->parameters.empty());
  std::vector<uint16_t> listed;
  ASSERT_TRUE(for_each_password_algorithm(m.find(attr::PasswordAlgorithms)->value,
                                          [&](const PasswordAlgorithmValue& v) {
    listed.push_back(v.algorithm);
              }).ok());
  EXPECT_EQ(listed, (std::vector<uint16_t>{2, 1}));
  EXPECT_EQ(ferry::testing::to_hex(m.find(attr::Data)->value), "68656c6c6f");
  EXPECT_TRUE(m.has(attr::DontFragment));
  EXPECT_TRUE(m.find(attr::DontFragment)->value.empty());
  auto uh = decode_userhash(m.find(attr::Userhash)->value);
  ASSERT_TRUE(uh.ok());
  EXPECT_EQ(to_hex(*uh), to_hex(Bytes(userhash("user", "realm"))));
  uint16_t out[4];
  EXPECT_EQ(m.unknown_required(out), 0u) << "every attribute the builder writes is known";
}

// RFC 7635 §6: ACCESS-TOKEN splits into its nonce and sealed block; THIRD-PARTY-AUTHORIZATION is
// text. Both are known, so a request carrying ACCESS-TOKEN (comprehension-required) gets no 420.
TEST(StunRoundTrip, Rfc7635AccessTokenAndThirdPartyAuthorization) {
  EXPECT_EQ(attr::AccessToken, 0x001B);
  EXPECT_EQ(attr::ThirdPartyAuthorization, 0x802E);
  EXPECT_EQ(attr::name(attr::AccessToken), "ACCESS-TOKEN");
  EXPECT_EQ(attr::name(attr::ThirdPartyAuthorization), "THIRD-PARTY-AUTHORIZATION");
  const auto nonce = from_hex("000102030405060708090a0b");
  const auto sealed = from_hex("deadbeefcafebabe00112233445566778899aabbccddeeff");
  uint8_t value[64];
  const size_t n = encode_access_token(Bytes(nonce), Bytes(sealed), value);
  ASSERT_EQ(n, 2 + nonce.size() + sealed.size());
  EXPECT_EQ(to_hex(Bytes(value, 2)), "000c");
  const auto bytes = build([&](MessageBuilder& mb) {
    mb.add(attr::AccessToken, Bytes(value, n)).add_text(attr::ThirdPartyAuthorization, "turn.example.org");
  });
  const auto m = parsed(bytes);
  auto t = decode_access_token(m.find(attr::AccessToken)->value);
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(to_hex(t->nonce), to_hex(Bytes(nonce)));
  EXPECT_EQ(to_hex(t->sealed), to_hex(Bytes(sealed)));
  EXPECT_EQ(*decode_text(m.find(attr::ThirdPartyAuthorization)->value, kMaxRealmBytes), "turn.example.org");
  uint16_t out[4];
  EXPECT_EQ(m.unknown_required(out), 0u);
  // Malformed: too short for the length, a zero-length nonce, a nonce with nothing after it.
  EXPECT_FALSE(decode_access_token(from_hex("00")).ok());
  EXPECT_FALSE(decode_access_token(from_hex("0000aabb")).ok());
  EXPECT_FALSE(decode_access_token(from_hex("0002aabb")).ok());
  EXPECT_FALSE(decode_access_token(from_hex("0005aabb")).ok());
  EXPECT_TRUE(decode_access_token(from_hex("0002aabbcc")).ok());
}

// RFC 6062 §6.1: the TCP-allocation methods and their message types on the wire.
TEST(StunRoundTrip, Rfc6062MethodsAndConnectionId) {
  EXPECT_EQ(make_type(Method::Connect, Class::Request), 0x000A);
  EXPECT_EQ(make_type(Method::Connect, Class::Error), 0x011A);
  EXPECT_EQ(make_type(Method::ConnectionBind, Class::Success), 0x010B);
  EXPECT_EQ(make_type(Method::ConnectionAttempt, Class::Indication), 0x001C);
  for (Method m : {Method::Connect, Method::ConnectionBind, Method::ConnectionAttempt}) {
    for (Class c : {Class::Request, Class::Indication, Class::Success, Class::Error}) {
      EXPECT_EQ(method_of(make_type(m, c)), m);
      EXPECT_EQ(class_of(make_type(m, c)), c);
    }
  }
  std::array<uint8_t, 64> out{};
  MessageBuilder mb(out, Method::ConnectionAttempt, Class::Indication, kRfc5769TxId);
  mb.add_xor_address(attr::XorPeerAddress, v4("192.0.2.1:32853")).add_u32(attr::ConnectionId, 0x01020304);
  auto bytes = mb.finish();
  ASSERT_TRUE(bytes.ok());
  auto m = MessageView::parse(*bytes);
  ASSERT_TRUE(m.ok());
  EXPECT_TRUE(m->is(Method::ConnectionAttempt, Class::Indication));
  auto id = m->find(attr::ConnectionId);
  ASSERT_TRUE(id);
  EXPECT_EQ(to_hex(id->value), "01020304");  // network order, 4 bytes (§6.2.1)
  EXPECT_EQ(*decode_u32(id->value), 0x01020304u);
  EXPECT_EQ(attr::name(attr::ConnectionId), "CONNECTION-ID");
  EXPECT_TRUE(attr::known(attr::ConnectionId));
  EXPECT_FALSE(decode_u32(Bytes(id->value.data(), 3)).ok());
  EXPECT_EQ(code::reason(code::ConnectionAlreadyExists), "Connection Already Exists");
  EXPECT_EQ(code::reason(code::ConnectionTimeoutOrFailure), "Connection Timeout or Failure");
}

TEST(StunRoundTrip, ErrorCodeDefaultsAndRanges) {
  for (uint16_t c : {300, 400, 401, 403, 420, 437, 438, 440, 441, 442, 443, 446, 447, 486, 500, 508, 699}) {
    SCOPED_TRACE(c);
    const auto bytes =
        build([&](MessageBuilder& mb) { mb.add_error_code(c); }, make_type(Method::Allocate, Class::Error));
    auto e = decode_error_code(parsed(bytes).find(attr::ErrorCode)->value);
    ASSERT_TRUE(e.ok());
    EXPECT_EQ(e->code, c);
    EXPECT_EQ(e->reason, code::reason(c));  // RFC phrase by default ("" for 699)
  }
  EXPECT_EQ(code::reason(401), "Unauthenticated");  // RFC 8489 §14.8 (RFC 5389 said "Unauthorized")
  // Decoder range checks: class 3-6, number 0-99.
  EXPECT_FALSE(decode_error_code(as_bytes(from_hex("00000200"))).ok());
  EXPECT_FALSE(decode_error_code(as_bytes(from_hex("00000700"))).ok());
  EXPECT_FALSE(decode_error_code(as_bytes(from_hex("00000464"))).ok());
  EXPECT_TRUE(decode_error_code(as_bytes(from_hex("00000663"))).ok());
}

TEST(StunRoundTrip, SaslPrepAndKeys) {
  // RFC 5769 §2.4: key from the unprepared password equals the one from "TheMatrIX".
  const Key a = long_term_key_md5("マトリックス", "example.org", "The\u00adM\u00aatr\u2168");
  const Key b = long_term_key_md5("マトリックス", "example.org", "TheMatrIX");
  EXPECT_EQ(to_hex(a.view()), "e8ca7ad59d5eb0518e312911d2dab2a9");
  EXPECT_TRUE(a == b);
  const Key s = long_term_key_sha256("user", "realm", "pass");
  EXPECT_EQ(s.size, 32u);
  uint8_t d[32];
  unsigned n = 0;
  EVP_Digest("user:realm:pass", 15, d, &n, EVP_sha256(), nullptr);
  EXPECT_EQ(to_hex(s.view()), to_hex(Bytes(d, n)));
  EVP_Digest("user:realm", 10, d, &n, EVP_sha256(), nullptr);
  EXPECT_EQ(to_hex(Bytes(userhash("user", "realm"))), to_hex(Bytes(d, n)));
}

// ---------------------------------------------------------------------------------------------
// Integrity and fingerprint.

std::vector<uint8_t> signed_message(const Key& k1, const Key& k256) {
  return build([&](MessageBuilder& mb) {
    mb.add_text(attr::Username, "user")
        .add_text(attr::Realm, "realm")
        .add_text(attr::Nonce, "nonce")
        .add_text(attr::Software, "odd length!")
        .add_message_integrity(k1.view())
        .add_message_integrity_sha256(k256.view())
        .add_fingerprint();
  });
}

TEST(StunRoundTrip, IntegrityAndFingerprintVerify) {
  const Key k1 = long_term_key_md5("user", "realm", "pass");
  const Key k256 = long_term_key_sha256("user", "realm", "pass");
  const auto bytes = signed_message(k1, k256);
  const auto m = parsed(bytes);
  EXPECT_TRUE(verify_message_integrity(m, k1.view()));
  EXPECT_TRUE(verify_message_integrity_sha256(m, k256.view()));
  EXPECT_TRUE(verify_fingerprint(m));
  EXPECT_FALSE(verify_message_integrity(m, k256.view()));
  EXPECT_FALSE(verify_message_integrity_sha256(m, k1.view()));
  EXPECT_FALSE(verify_message_integrity(m, long_term_key_md5("user", "realm", "wrong").view()));
  EXPECT_FALSE(verify_message_integrity(m, Bytes()));
  // Short-term and empty keys work too.
  for (const Key& k : {short_term_key("VOkJxbRl1RmTxUk/WvJxBt"), Key{}}) {
    const auto b2 = build([&](MessageBuilder& mb) { mb.add_message_integrity(k.view()).add_fingerprint(); });
    const auto m2 = parsed(b2);
    EXPECT_TRUE(verify_message_integrity(m2, k.view()));
    EXPECT_TRUE(verify_fingerprint(m2));
  }
}

TEST(StunRoundTrip, TruncatedSha256IntegrityVerifies) {
  // RFC 8489 §14.6: MESSAGE-INTEGRITY-SHA256 may carry the leading 16..32 bytes (multiple of 4).
  const Key k = long_term_key_sha256("user", "realm", "pass");
  for (size_t n : {16u, 20u, 24u, 28u, 32u}) {
    SCOPED_TRACE(n);
    std::vector<uint8_t> buf(256);
    MessageBuilder mb(buf, Method::Binding, Class::Request, kRfc5769TxId);
    mb.add_text(attr::Username, "user");
    const size_t at = mb.size();
    const std::vector<uint8_t> placeholder(n, 0);
    mb.add(attr::MessageIntegritySha256, as_bytes(placeholder));
    uint8_t mac[32];
    ASSERT_EQ(hmac_message_prefix(Hmac::Sha256, k.view(), Bytes(buf.data(), mb.size()), at,
                                  static_cast<uint16_t>(mb.size() - kHeaderSize), mac),
              32u);
    std::copy(mac, mac + n, buf.begin() + static_cast<long>(at + 4));
    const auto m = parsed(std::vector<uint8_t>(buf.begin(), buf.begin() + static_cast<long>(mb.size())));
    EXPECT_TRUE(verify_message_integrity_sha256(m, k.view()));
    buf[at + 4 + n - 1] ^= 1;
    const auto bad = parsed(std::vector<uint8_t>(buf.begin(), buf.begin() + static_cast<long>(mb.size())));
    EXPECT_FALSE(verify_message_integrity_sha256(bad, k.view()));
  }
  // 12 bytes or not a multiple of 4: never verifies.
  for (size_t n : {12u, 18u}) {
    const std::vector<uint8_t> v(n, 0);
    const auto m = parsed(build([&](MessageBuilder& mb) { mb.add(attr::MessageIntegritySha256, as_bytes(v)); }));
    EXPECT_FALSE(verify_message_integrity_sha256(m, k.view()));
  }
}

TEST(StunRoundTrip, TamperingAnyByteBreaksVerification) {
  const Key k1 = long_term_key_md5("user", "realm", "pass");
  const Key k256 = long_term_key_sha256("user", "realm", "pass");
  const auto bytes = signed_message(k1, k256);
  for (size_t i = 0; i < bytes.size(); ++i) {
    for (uint8_t flip : {0x01, 0x80}) {
      SCOPED_TRACE("byte " + std::to_string(i) + " ^ " + std::to_string(flip));
      auto t = bytes;
      t[i] ^= flip;
      ASSERT_NO_FATAL_FAILURE((void)parse_and_walk(as_bytes(t)));
      auto r = MessageView::parse(as_bytes(t));
      if (!r.ok()) continue;  // a clean parse failure is fine
      const bool all = verify_message_integrity(*r, k1.view()) && verify_message_integrity_sha256(*r, k256.view()) &&
                       verify_fingerprint(*r);
      EXPECT_FALSE(all);
      // The bytes each check covers: MI covers [0, MI), MI-256 covers [0, MI-256), FINGERPRINT all before it.
      const auto mi = parsed(bytes).message_integrity()->offset;
      if (i < mi + 4 && i >= 4) { EXPECT_FALSE(verify_message_integrity(*r, k1.view())); }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Malformed input.

TEST(StunRoundTrip, EveryPrefixFailsCleanly) {
  const Key k = long_term_key_md5("user", "realm", "pass");
  const std::vector<std::vector<uint8_t>> messages = {
      signed_message(k, long_term_key_sha256("user", "realm", "pass")),
      build([&](MessageBuilder& mb) {
        mb.add_xor_address(attr::XorPeerAddress, v6("[2001:db8::1]:80")).add_even_port(false).add_fingerprint();
      }),
      from_hex("000100582112a442b7e7a701bc34d686fa87dfae802200105354554e207465737420636c69656e74002400046e0001ff8029000"
               "8932ff9b151263b36000600096576746a3a68367659202020000800149aeaa70cbfd8cb56781ef2b5b2d3f249c1b571a2802800"
               "04e57a3bcf"),
  };
  for (const auto& msg : messages) {
    ASSERT_TRUE(parse_and_walk(as_bytes(msg)));
    for (size_t n = 0; n < msg.size(); ++n) {
      SCOPED_TRACE("prefix " + std::to_string(n));
      const Bytes prefix(msg.data(), n);
      // The header's length now exceeds the buffer: must fail, with a Result error.
      auto r = MessageView::parse(prefix);
      ASSERT_FALSE(r.ok());
      EXPECT_TRUE(r.error() == Error::Truncated || r.error() == Error::BadLength);
      EXPECT_FALSE(parse_and_walk(prefix));
      // Stream framing: the full size once 4 bytes are in, never a size <= what is buffered.
      auto fs = stream_frame_size(prefix);
      ASSERT_TRUE(fs.ok());
      if (n < 4) {
        EXPECT_FALSE(fs->has_value());
      } else {
        EXPECT_EQ(**fs, msg.size());
      }
      // Same prefix with the header length cut down to fit (a multiple of 4): parses a shorter
      // message or fails at an attribute boundary, never reads past it.
      if (n >= kHeaderSize) {
        auto cut = std::vector<uint8_t>(msg.begin(), msg.begin() + static_cast<long>(n));
        store_u16(cut.data() + 2, static_cast<uint16_t>((n - kHeaderSize) & ~size_t{3}));
        auto c = MessageView::parse(as_bytes(cut));
        if (c.ok()) {
          EXPECT_EQ(c->size(), kHeaderSize + ((n - kHeaderSize) & ~size_t{3}));
        } else {
          EXPECT_TRUE(c.error() == Error::Truncated || c.error() == Error::BadLength) << to_string(c.error());
        }
        (void)parse_and_walk(as_bytes(cut));
      }
    }
  }
}

TEST(StunRoundTrip, OversizedAndMisalignedLengths) {
  auto header = [](uint16_t len) {
    std::vector<uint8_t> b = from_hex("000100002112a442000000000000000000000000");
    store_u16(b.data() + 2, len);
    return b;
  };
  // Header length beyond the buffer.
  for (uint16_t len : {4, 8, 0x100, 0xFFFC}) {
    auto b = header(len);
    auto r = MessageView::parse(as_bytes(b));
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error(), Error::Truncated);
  }
  // Header length not a multiple of 4.
  for (uint16_t len : {1, 2, 3, 5, 6, 7, 0xFFFF}) {
    auto b = header(len);
    b.resize(kHeaderSize + len, 0);
    auto r = MessageView::parse(as_bytes(b));
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error(), Error::BadLength);
    auto fs = stream_frame_size(as_bytes(b));
    ASSERT_FALSE(fs.ok());
    EXPECT_EQ(fs.error(), Error::BadLength);
  }
  // An attribute length that overflows the message (0xFFFF, and one past the end).
  for (const char* hex : {"000100082112a442000000000000000000000000 8022ffff00000000",
                          "000100082112a442000000000000000000000000 8022000561626364",
                          "0001000c2112a442000000000000000000000000 8022000461626364 00080014"}) {
    std::string h(hex);
    h.erase(std::remove(h.begin(), h.end(), ' '), h.end());
    auto b = from_hex(h);
    if (b.size() % 4 != 0) b.resize(kHeaderSize + load_u16(b.data() + 2), 0);
    auto r = MessageView::parse(as_bytes(b));
    EXPECT_FALSE(r.ok()) << h;
    EXPECT_FALSE(parse_and_walk(as_bytes(b)));
  }
  // The last attribute's padding is part of the message length: 5 value bytes need 8.
  auto ok = from_hex("0001000c2112a442000000000000000000000000802200056162636465000000");
  ok.resize(kHeaderSize + 12, 0);
  EXPECT_TRUE(MessageView::parse(as_bytes(ok)).ok());
  // Top bits set: not STUN.
  auto ch = from_hex("400100002112a442000000000000000000000000");
  EXPECT_EQ(MessageView::parse(as_bytes(ch)).error(), Error::NotStun);
  ch[0] = 0x80;
  EXPECT_EQ(MessageView::parse(as_bytes(ch)).error(), Error::NotStun);
  EXPECT_FALSE(stream_frame_size(as_bytes(ch)).ok());
}

TEST(StunRoundTrip, TrailingBytesAreNotPartOfTheMessage) {
  // DECISION: the view covers 20 + length; what follows (the next frame of a stream, or UDP junk)
  // is ignored rather than rejected, and FINGERPRINT/MI are computed over the view only.
  const Key k = short_term_key("pwd");
  auto bytes = build(
      [&](MessageBuilder& mb) { mb.add_text(attr::Software, "x").add_message_integrity(k.view()).add_fingerprint(); });
  const size_t n = bytes.size();
  bytes.insert(bytes.end(), {0xde, 0xad, 0xbe, 0xef, 0x01});
  auto r = MessageView::parse(as_bytes(bytes));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->size(), n);
  EXPECT_TRUE(verify_fingerprint(*r));
  EXPECT_TRUE(verify_message_integrity(*r, k.view()));
}

TEST(StunRoundTrip, BuilderOverflowIsStickyNoSpace) {
  const Key k = short_term_key("pwd");
  auto add_all = [&](MessageBuilder& mb) {
    mb.add_text(attr::Username, "user")
        .add_xor_address(attr::XorMappedAddress, v6("[2001:db8::1]:3478"))
        .add_error_code(420)
        .add_even_port(true)
        .add_message_integrity(k.view())
        .add_message_integrity_sha256(k.view())
        .add_fingerprint();
  };
  std::vector<uint8_t> full_buf(1024);
  MessageBuilder full(full_buf, Method::Binding, Class::Request, kRfc5769TxId);
  add_all(full);
  ASSERT_TRUE(full.finish().ok());
  const size_t need = full.size();
  const std::vector<uint8_t> want(full_buf.begin(), full_buf.begin() + static_cast<long>(need));
  for (size_t cap = 0; cap <= need + 4; ++cap) {
    SCOPED_TRACE("capacity " + std::to_string(cap));
    std::unique_ptr<uint8_t[]> buf(new uint8_t[cap == 0 ? 1 : cap]);  // exact size: ASan sees overruns
    MessageBuilder mb(MutableBytes(buf.get(), cap), Method::Binding, Class::Request, kRfc5769TxId);
    add_all(mb);
    auto out = mb.finish();
    if (cap < need) {
      ASSERT_FALSE(out.ok());
      EXPECT_EQ(out.error(), Error::NoSpace);
      EXPECT_FALSE(mb.ok());
    } else {
      ASSERT_TRUE(out.ok());
      EXPECT_EQ(to_hex(*out), to_hex(as_bytes(want)));
    }
  }
  // Sticky: a later attribute that would fit is not written.
  std::vector<uint8_t> small(28);
  MessageBuilder mb(small, Method::Binding, Class::Request, kRfc5769TxId);
  mb.add_u32(attr::Lifetime, 1);  // 8 bytes: fits exactly
  EXPECT_TRUE(mb.ok());
  mb.add_text(attr::Software, "too long for the rest");
  EXPECT_FALSE(mb.ok());
  const size_t size_after = mb.size();
  mb.add(attr::DontFragment, Bytes());
  EXPECT_EQ(mb.size(), size_after);
  EXPECT_EQ(mb.finish().error(), Error::NoSpace);
  // The 16-bit message length is a limit too.
  std::vector<uint8_t> big(70000);
  MessageBuilder huge(big, Method::Send, Class::Indication, kRfc5769TxId);
  const std::vector<uint8_t> chunk(60000, 0xab);
  huge.add(attr::Data, as_bytes(chunk));
  EXPECT_TRUE(huge.ok());
  huge.add(attr::Data, as_bytes(chunk));
  EXPECT_FALSE(huge.ok());
  EXPECT_EQ(huge.finish().error(), Error::NoSpace);
}

TEST(StunRoundTrip, UnknownRequiredAttributes) {
  const uint8_t v[4] = {1, 2, 3, 4};
  const auto bytes = build([&](MessageBuilder& mb) {
    mb.add(0x07ad, Bytes(v, 4))
        .add(0x8000 + 0x7ad, Bytes(v, 4))       // unknown but comprehension-optional: ignored
        .add(attr::ChannelNumber, Bytes(v, 2))  // known (even if malformed): not listed
        .add(0x7fff, Bytes(v, 0))
        .add(0x07ad, Bytes(v, 4))  // duplicate: listed once
        .add(0xc057, Bytes(v, 4))
        .add(0x0024, Bytes(v, 4));  // PRIORITY (ICE) is unknown to a TURN server's codec
  });
  const auto m = parsed(bytes);
  uint16_t out[8];
  const size_t n = m.unknown_required(out);
  EXPECT_EQ(std::vector<uint16_t>(out, out + n), (std::vector<uint16_t>{0x07ad, 0x7fff, 0x0024}));
  uint16_t two[2];
  EXPECT_EQ(m.unknown_required(two), 2u);  // truncated to the output span
  EXPECT_EQ(m.unknown_required(std::span<uint16_t>()), 0u);
  // Unknown attributes after MESSAGE-INTEGRITY do not count (they are ignored, §14.5).
  const Key k = short_term_key("pwd");
  const auto after =
      parsed(build([&](MessageBuilder& mb) { mb.add_message_integrity(k.view()).add(0x07ad, Bytes(v, 4)); }));
  EXPECT_EQ(after.unknown_required(out), 0u);
  // A response listing them round-trips.
  const auto resp = parsed(build(
      [&](MessageBuilder& mb) { mb.add_error_code(420).add_unknown_attributes(std::span<const uint16_t>(out, n)); },
      make_type(Method::Binding, Class::Error)));
  std::vector<uint16_t> listed;
  ASSERT_TRUE(for_each_unknown_attribute(resp.find(attr::UnknownAttributes)->value, [&](uint16_t t) {
                listed.push_back(t);
              }).ok());
  EXPECT_EQ(listed, (std::vector<uint16_t>{0x07ad, 0x7fff, 0x0024}));
}

TEST(StunRoundTrip, AttributesAfterIntegrityAreIgnored) {
  const Key k = short_term_key("pwd");
  const Key k256 = long_term_key_sha256("u", "r", "p");
  // MI, then USERNAME/SOFTWARE (ignored), then MI-256 and FINGERPRINT (both still count).
  const auto bytes = build([&](MessageBuilder& mb) {
    mb.add_text(attr::Realm, "before")
        .add_message_integrity(k.view())
        .add_text(attr::Username, "after")
        .add_text(attr::Software, "after")
        .add_message_integrity_sha256(k256.view())
        .add_text(attr::Nonce, "after")
        .add_fingerprint();
  });
  const auto m = parsed(bytes);
  EXPECT_TRUE(m.has(attr::Realm));
  EXPECT_FALSE(m.has(attr::Username));
  EXPECT_FALSE(m.has(attr::Software));
  EXPECT_FALSE(m.has(attr::Nonce));
  EXPECT_TRUE(m.has(attr::MessageIntegrity));
  EXPECT_TRUE(m.has(attr::MessageIntegritySha256));
  EXPECT_TRUE(m.has(attr::Fingerprint));
  std::vector<uint16_t> seen;
  m.for_each([&](const RawAttribute& a) {
    seen.push_back(a.type);
    return true;
  });
  EXPECT_EQ(seen, (std::vector<uint16_t>{attr::Realm, attr::MessageIntegrity, attr::MessageIntegritySha256,
                                         attr::Fingerprint}));
  EXPECT_TRUE(verify_message_integrity(m, k.view()));
  EXPECT_TRUE(verify_message_integrity_sha256(m, k256.view()));
  EXPECT_TRUE(verify_fingerprint(m));
  // for_each stops when asked.
  size_t calls = 0;
  m.for_each([&](const RawAttribute&) { return ++calls < 2; });
  EXPECT_EQ(calls, 2u);
  // Anything after FINGERPRINT is ignored; a second FINGERPRINT too.
  const auto fp_first =
      parsed(build([&](MessageBuilder& mb) { mb.add_fingerprint().add_text(attr::Username, "x").add_fingerprint(); }));
  EXPECT_FALSE(fp_first.has(attr::Username));
  EXPECT_EQ(fp_first.fingerprint()->offset, kHeaderSize);
  EXPECT_TRUE(verify_fingerprint(fp_first));
  // MI after MI-256 is ignored (§14.6), so is a second MI.
  const auto twice = parsed(
      build([&](MessageBuilder& mb) { mb.add_message_integrity_sha256(k256.view()).add_message_integrity(k.view()); }));
  EXPECT_FALSE(twice.message_integrity().has_value());
  EXPECT_FALSE(twice.has(attr::MessageIntegrity));
  EXPECT_TRUE(verify_message_integrity_sha256(twice, k256.view()));
}

TEST(StunRoundTrip, Rfc3489MessageWithoutCookie) {
  // An RFC 3489 Binding request: 16-byte transaction id, no cookie.
  const auto req = from_hex(
      "00010008"
      "0102030405060708090a0b0c0d0e0f10"
      "0003000400000000");
  auto r = MessageView::parse(as_bytes(req));
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->has_cookie());
  EXPECT_TRUE(r->is(Method::Binding, Class::Request));
  EXPECT_EQ(to_hex(r->cookie_and_id()), "0102030405060708090a0b0c0d0e0f10");
  EXPECT_TRUE(r->has(attr::ChangeRequest));
  // The response echoes all 16 bytes and carries MAPPED-ADDRESS (RFC 8489 §12.2).
  std::vector<uint8_t> buf(64);
  MessageBuilder mb(buf, make_type(Method::Binding, Class::Success), r->cookie_and_id());
  mb.add_address(attr::MappedAddress, v4("192.0.2.1:32853"));
  auto out = mb.finish();
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(to_hex(out->subspan(4, 16)), "0102030405060708090a0b0c0d0e0f10");
  // Anything other than a Binding request without the cookie is not STUN (RFC 8489 §6.3).
  for (const char* type : {"0101", "0003", "0011", "0000"}) {
    auto other = req;
    const auto t = from_hex(type);
    std::copy(t.begin(), t.end(), other.begin());
    auto o = MessageView::parse(as_bytes(other));
    ASSERT_FALSE(o.ok()) << type;
    EXPECT_EQ(o.error(), Error::NotStun);
  }
}

// ---------------------------------------------------------------------------------------------
// ChannelData and stream framing.

TEST(StunRoundTrip, ChannelDataFramesAndStreams) {
  for (uint16_t ch : {kMinChannel, uint16_t{0x4abc}, kMaxChannel}) {
    for (size_t len : {0u, 1u, 2u, 3u, 4u, 5u, 1500u}) {
      SCOPED_TRACE(std::to_string(ch) + "/" + std::to_string(len));
      std::vector<uint8_t> buf(4 + padded4(len), 0xEE);
      for (size_t i = 0; i < len; ++i) buf[4 + i] = static_cast<uint8_t>(i);
      const size_t unpadded = write_channel_data_header(buf.data(), ch, static_cast<uint16_t>(len), false);
      EXPECT_EQ(unpadded, 4 + len);
      auto r = parse_channel_data(Bytes(buf.data(), unpadded));
      ASSERT_TRUE(r.ok());
      EXPECT_EQ(r->channel, ch);
      EXPECT_EQ(r->data.size(), len);
      const size_t padded = write_channel_data_header(buf.data(), ch, static_cast<uint16_t>(len), true);
      EXPECT_EQ(padded, padded4(4 + len));
      for (size_t i = 4 + len; i < padded; ++i) EXPECT_EQ(buf[i], 0);
      auto fs = stream_frame_size(Bytes(buf.data(), padded));
      ASSERT_TRUE(fs.ok() && fs->has_value());
      EXPECT_EQ(**fs, padded);
      EXPECT_TRUE(looks_like_channel_data(Bytes(buf.data(), padded)));
      EXPECT_FALSE(looks_like_stun(Bytes(buf.data(), padded)));
      // Every prefix shorter than header + data fails cleanly.
      for (size_t n = 0; n < unpadded; ++n) {
        std::unique_ptr<uint8_t[]> copy(new uint8_t[n == 0 ? 1 : n]);
        std::copy(buf.begin(), buf.begin() + static_cast<long>(n), copy.get());
        auto p = parse_channel_data(Bytes(copy.get(), n));
        ASSERT_FALSE(p.ok());
        EXPECT_EQ(p.error(), Error::Truncated);
      }
    }
  }
  for (uint16_t bad : {uint16_t{0x3fff}, uint16_t{0x5000}, uint16_t{0x7fff}}) {
    uint8_t b[8] = {};
    write_channel_data_header(b, bad, 4, false);
    EXPECT_EQ(parse_channel_data(Bytes(b, 8)).error(), Error::BadChannelNumber);
    // 0x3fff has top bits 00: a stream framer reads it as a STUN header, not ChannelData.
    if (bad >= 0x4000) { EXPECT_EQ(stream_frame_size(Bytes(b, 8)).error(), Error::BadChannelNumber); }
  }
  // A TCP stream: STUN, padded ChannelData, STUN - split back into frames.
  const Key k = short_term_key("pwd");
  const auto s1 = build([&](MessageBuilder& mb) { mb.add_text(attr::Software, "one").add_fingerprint(); });
  const auto s2 = build([&](MessageBuilder& mb) { mb.add_message_integrity(k.view()); });
  std::vector<uint8_t> cd(4 + 8, 0);
  cd[4] = 'h';
  cd[5] = 'i';
  cd[6] = '!';
  cd.resize(write_channel_data_header(cd.data(), 0x4001, 3, true));
  std::vector<uint8_t> stream;
  const std::vector<uint8_t>* frames_in[] = {&s1, &cd, &s2};
  for (const auto* f : frames_in) stream.insert(stream.end(), f->begin(), f->end());
  size_t pos = 0;
  int frames = 0;
  while (pos < stream.size()) {
    const Bytes rest(stream.data() + pos, stream.size() - pos);
    auto fs = stream_frame_size(rest);
    ASSERT_TRUE(fs.ok() && fs->has_value());
    ASSERT_LE(**fs, rest.size());
    const Bytes frame = rest.first(**fs);
    if (looks_like_stun(frame)) {
      auto m = MessageView::parse(frame);
      ASSERT_TRUE(m.ok());
      EXPECT_EQ(m->size(), frame.size());
    } else {
      ASSERT_TRUE(looks_like_channel_data(frame));
      auto c = parse_channel_data(frame);
      ASSERT_TRUE(c.ok());
      EXPECT_EQ(ferry::testing::to_hex(c->data), "686921");
    }
    pos += **fs;
    ++frames;
  }
  EXPECT_EQ(frames, 3);
  EXPECT_EQ(stream_frame_size(Bytes()).value(), std::nullopt);
  for (uint8_t first : {uint8_t{0x80}, uint8_t{0xC0}, uint8_t{0xFF}}) {  // top bits 10/11: neither
    const uint8_t b[1] = {first};
    auto fs = stream_frame_size(Bytes(b, 1));
    ASSERT_FALSE(fs.ok());
    EXPECT_EQ(fs.error(), Error::NotStun);
  }
}

}  // namespace
