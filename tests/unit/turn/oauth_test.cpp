// RFC 7635 third-party authorization in the core: THIRD-PARTY-AUTHORIZATION in the 401, Allocate
// with ACCESS-TOKEN signed with the token's mac_key, later requests signed with it, and the ways
// a token is refused (unknown kid, tampered, expired, wrong mac key).
#include "auth/access_token.h"
#include "auth/oauth_keys.h"
#include "stun/attributes.h"
#include "stun/message_builder.h"
#include "tests/unit/fixtures/turn_core_fixture.h"

namespace ferry::turn {
namespace {

using namespace ferry::turn::testing;
using stun::Class;
using stun::MessageBuilder;
using stun::Method;

constexpr std::string_view kServerName = "turn.example.org";

class OAuthTest : public TurnCoreTest {
 protected:
  OAuthTest() {
    as_rs.fill(0x5a);
    ring.set({{"kid1", as_rs, 0, ""}});
    config.oauth_server_name = std::string(kServerName);
    config.oauth_clock_skew = 5;
    const uint8_t mac[32] = {7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
                             8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8};
    mac_key = stun::Key::from(Bytes(mac, sizeof mac));
  }
  ServerCore& core_with_keys() {
    auto& s = server();
    s.set_oauth_keys(&ring);
    return s;
  }
  std::vector<uint8_t> token(uint64_t issued, uint32_t lifetime, const auth::AsRsKey& k) const {
    auth::AccessToken t;
    t.mac_key = mac_key;
    t.timestamp = issued << 16;
    t.lifetime = lifetime;
    const std::array<uint8_t, 12> nonce = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    return auth::seal_access_token(k, kServerName, nonce, t);
  }
  // The 401 to a bare Allocate: its NONCE; checks THIRD-PARTY-AUTHORIZATION on the way.
  std::string challenge(const FiveTuple& t) {
    stun::TransactionId id{};
    id[0] = ++txn;
    MessageBuilder b(buf, Method::Allocate, Class::Request, id);
    b.add_requested_transport(stun::kTransportUdp);
    send(t, *b.finish());
    MessageView v = response_view();
    EXPECT_EQ(v.cls(), Class::Error);
    auto tpa = v.find(attr::ThirdPartyAuthorization);
    EXPECT_TRUE(tpa);
    if (tpa) { EXPECT_EQ(*stun::decode_text(tpa->value, 763), kServerName); }
    auto n = v.find(attr::Nonce);
    return n ? std::string(*stun::decode_text(n->value, 763)) : std::string();
  }
  // A request signed with `key`, carrying `tok` when not empty.
  Bytes request(Method m, const std::string& nonce, const std::vector<uint8_t>& tok, const stun::Key& key,
                const char* kid = "kid1", std::optional<TransportAddress> peer = std::nullopt, bool sha256 = false) {
    stun::TransactionId id{};
    id[0] = ++txn;
    MessageBuilder b(buf, m, Class::Request, id);
    if (m == Method::Allocate) b.add_requested_transport(stun::kTransportUdp);
    if (peer) b.add_xor_address(attr::XorPeerAddress, *peer);
    b.add_text(attr::Username, kid).add_text(attr::Realm, kRealm).add_text(attr::Nonce, nonce);
    if (!tok.empty()) b.add(attr::AccessToken, Bytes(tok));
    if (sha256) {
      b.add_message_integrity_sha256(key.view());
    } else {
      b.add_message_integrity(key.view());
    }
    return *b.finish();
  }
  void send(const FiveTuple& t, Bytes req) {
    io.to_client.clear();
    server().on_client_packet(t, req);
    ASSERT_EQ(io.to_client.size(), 1u);
    last_response = io.to_client[0].bytes;
  }
  uint16_t error_code() {
    MessageView v = response_view();
    if (v.cls() == Class::Success) return 0;
    auto e = v.find(attr::ErrorCode);
    return e ? stun::decode_error_code(e->value)->code : 0;
  }
  uint64_t failures(AuthFailure f) { return server().stats().auth_failures[static_cast<size_t>(f)].get(); }

  auth::AsRsKey as_rs{};
  auth::OAuthKeyRing ring;
  stun::Key mac_key;
  uint8_t txn = 0;
};

TEST_F(OAuthTest, AllocateWithATokenSucceedsAndIsSignedWithTheMacKey) {
  core_with_keys();
  const FiveTuple t = tuple(1);
  const std::string nonce = challenge(t);
  send(t, request(Method::Allocate, nonce, token(clock.unix_seconds(), 600, as_rs), mac_key));
  ASSERT_EQ(error_code(), 0);
  EXPECT_TRUE(stun::verify_message_integrity(response_view(), mac_key.view()));
  ASSERT_NE(server().find_allocation(t), nullptr);
  EXPECT_EQ(server().find_allocation(t)->username, "kid1");
  // Later requests are signed with the same mac_key, the token left out (the allocation holds it).
  send(t, request(Method::CreatePermission, nonce, {}, mac_key, "kid1", kPeer));
  EXPECT_EQ(error_code(), 0);
  // ...but not with another key.
  auto wrong = mac_key;
  wrong.bytes[0] ^= 1;
  send(t, request(Method::CreatePermission, nonce, {}, wrong, "kid1", kPeer));
  EXPECT_EQ(error_code(), code::Unauthenticated);
  // Revalidation (a reload) leaves token allocations alone: kid1 is no user.
  EXPECT_EQ(server().revalidate_users(), 0u);
  EXPECT_EQ(server().allocation_count(), 1u);
}

TEST_F(OAuthTest, UnknownKidTamperedExpiredAndWrongMacKeyGet401) {
  core_with_keys();
  const FiveTuple t = tuple(2);
  const std::string nonce = challenge(t);
  const uint64_t now = clock.unix_seconds();

  send(t, request(Method::Allocate, nonce, token(now, 600, as_rs), mac_key, "kid-nobody"));
  EXPECT_EQ(error_code(), code::Unauthenticated);
  EXPECT_TRUE(response_view().find(attr::ThirdPartyAuthorization));

  auto tampered = token(now, 600, as_rs);
  tampered[20] ^= 0x80;
  send(t, request(Method::Allocate, nonce, tampered, mac_key));
  EXPECT_EQ(error_code(), code::Unauthenticated);

  auth::AsRsKey other = as_rs;
  other[3] ^= 1;
  send(t, request(Method::Allocate, nonce, token(now, 600, other), mac_key));
  EXPECT_EQ(error_code(), code::Unauthenticated);

  send(t, request(Method::Allocate, nonce, token(now - 700, 600, as_rs), mac_key));  // expired
  EXPECT_EQ(error_code(), code::Unauthenticated);
  send(t, request(Method::Allocate, nonce, token(now + 60, 600, as_rs), mac_key));  // not yet
  EXPECT_EQ(error_code(), code::Unauthenticated);
  EXPECT_EQ(failures(AuthFailure::BadToken), 5u);

  auto wrong = mac_key;
  wrong.bytes[31] ^= 1;
  send(t, request(Method::Allocate, nonce, token(now, 600, as_rs), wrong));
  EXPECT_EQ(error_code(), code::Unauthenticated);
  EXPECT_EQ(failures(AuthFailure::BadIntegrity), 1u);
  expect_nothing_allocated();

  // Within the skew an old token still works.
  send(t, request(Method::Allocate, nonce, token(now - 603, 600, as_rs), mac_key));
  EXPECT_EQ(error_code(), 0);
}

// RFC 7635 §5 with RFC 8489's MESSAGE-INTEGRITY-SHA256: the mac_key is the HMAC-SHA256 key too.
TEST_F(OAuthTest, MessageIntegritySha256IsKeyedWithTheMacKey) {
  core_with_keys();
  const FiveTuple t = tuple(5);
  const std::string nonce = challenge(t);
  auto wrong = mac_key;
  wrong.bytes[5] ^= 1;
  send(t, request(Method::Allocate, nonce, token(clock.unix_seconds(), 600, as_rs), wrong, "kid1", {}, true));
  EXPECT_EQ(error_code(), code::Unauthenticated);
  send(t, request(Method::Allocate, nonce, token(clock.unix_seconds(), 600, as_rs), mac_key, "kid1", {}, true));
  ASSERT_EQ(error_code(), 0);
  EXPECT_TRUE(stun::verify_message_integrity_sha256(response_view(), mac_key.view()));
}

// A key store that answers later (PostgreSQL): the request is kept and answered from the callback.
TEST_F(OAuthTest, AKeyFoundLaterAnswersTheRequestThen) {
  struct Later final : auth::OAuthKeyStore {
    std::vector<Callback> pending;
    std::optional<auth::OAuthKeyResult> lookup(std::string_view, Callback done) override {
      pending.push_back(std::move(done));
      return std::nullopt;
    }
  };
  Later later;
  server().set_oauth_keys(&later);
  const FiveTuple t = tuple(6);
  const std::string nonce = challenge(t);
  auto req = request(Method::Allocate, nonce, token(clock.unix_seconds(), 600, as_rs), mac_key);
  io.to_client.clear();
  server().on_client_packet(t, req);
  EXPECT_TRUE(io.to_client.empty());
  ASSERT_EQ(later.pending.size(), 1u);
  std::fill(buf.begin(), buf.end(), 0);  // the core kept its own copy of the request
  later.pending[0](auth::OAuthKeyResult{auth::LookupStatus::Found, auth::OAuthKey{"kid1", as_rs, 0, ""}});
  ASSERT_EQ(io.to_client.size(), 1u);
  last_response = io.to_client[0].bytes;
  EXPECT_EQ(error_code(), 0);
  EXPECT_EQ(server().allocation_count(), 1u);
}

TEST_F(OAuthTest, AfterTheTokenExpiresLaterRequestsGet401) {
  core_with_keys();
  const FiveTuple t = tuple(3);
  std::string nonce = challenge(t);
  send(t, request(Method::Allocate, nonce, token(clock.unix_seconds(), 30, as_rs), mac_key));
  ASSERT_EQ(error_code(), 0);
  clock.advance(std::chrono::seconds(31));
  send(t, request(Method::CreatePermission, nonce, {}, mac_key, "kid1", kPeer));
  EXPECT_EQ(error_code(), code::Unauthenticated);
}

TEST_F(OAuthTest, WithoutAServerNameTokensAreNotLookedAtAndThe401OffersNone) {
  config.oauth_server_name.clear();
  core_with_keys();
  const FiveTuple t = tuple(4);
  stun::TransactionId id{};
  MessageBuilder b(buf, Method::Allocate, Class::Request, id);
  b.add_requested_transport(stun::kTransportUdp);
  send(t, *b.finish());
  EXPECT_FALSE(response_view().find(attr::ThirdPartyAuthorization));
  auto n = response_view().find(attr::Nonce);
  ASSERT_TRUE(n);
  send(t, request(Method::Allocate, std::string(*stun::decode_text(n->value, 763)),
                  token(clock.unix_seconds(), 600, as_rs), mac_key));
  EXPECT_EQ(error_code(), code::Unauthenticated);
  expect_nothing_allocated();
}

}  // namespace
}  // namespace ferry::turn
