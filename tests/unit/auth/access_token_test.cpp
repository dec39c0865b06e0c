// RFC 7635 self-contained tokens: seal/open round trip, the wire layout of §6.2, and every way a
// token is refused (wrong key, wrong server name, a flipped bit, a bad shape, its time).
#include "auth/access_token.h"

#include <gtest/gtest.h>

#include "auth/oauth_keys.h"
#include "stun/attributes.h"

namespace ferry::auth {
namespace {

AsRsKey key_of(uint8_t b) {
  AsRsKey k;
  k.fill(b);
  return k;
}

AccessToken sample(uint64_t issued, uint32_t lifetime) {
  AccessToken t;
  const uint8_t mac[20] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20};
  t.mac_key = stun::Key::from(stun::Bytes(mac, sizeof mac));
  t.timestamp = issued << 16 | 32000;  // half a second
  t.lifetime = lifetime;
  return t;
}

constexpr std::array<uint8_t, kGcmNonceBytes> kNonce = {9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 1, 2};

TEST(AccessToken, SealThenOpenRoundTripsWithTheRfcLayout) {
  const auto t = sample(1'700'000'000, 600);
  auto wire = seal_access_token(key_of(7), "turn.example.org", kNonce, t);
  // nonce_length | nonce | block (2 + 20 + 8 + 4) | tag (16)
  ASSERT_EQ(wire.size(), 2u + 12 + 34 + 16);
  EXPECT_EQ(wire[0], 0);
  EXPECT_EQ(wire[1], 12);
  EXPECT_TRUE(std::equal(kNonce.begin(), kNonce.end(), wire.begin() + 2));
  TokenError err{};
  auto opened = open_access_token(key_of(7), "turn.example.org", stun::Bytes(wire), &err);
  ASSERT_TRUE(opened);
  EXPECT_EQ(opened->mac_key, t.mac_key);
  EXPECT_EQ(opened->timestamp, t.timestamp);
  EXPECT_EQ(opened->issued_unix(), 1'700'000'000u);
  EXPECT_EQ(opened->lifetime, 600u);
  EXPECT_EQ(opened->expires_unix(), 1'700'000'600u);
}

TEST(AccessToken, WrongKeyServerNameOrAnyFlippedBitFailsTheTag) {
  auto wire = seal_access_token(key_of(7), "turn.example.org", kNonce, sample(1000, 60));
  TokenError err{};
  EXPECT_FALSE(open_access_token(key_of(8), "turn.example.org", stun::Bytes(wire), &err));
  EXPECT_EQ(err, TokenError::BadTag);
  EXPECT_FALSE(open_access_token(key_of(7), "other.example.org", stun::Bytes(wire), &err));
  EXPECT_EQ(err, TokenError::BadTag);
  for (size_t i = 2; i < wire.size(); ++i) {
    auto bad = wire;
    bad[i] ^= 0x01;
    EXPECT_FALSE(open_access_token(key_of(7), "turn.example.org", stun::Bytes(bad))) << "byte " << i;
  }
}

TEST(AccessToken, MalformedValuesAreRefusedWithoutReadingPastThem) {
  auto wire = seal_access_token(key_of(7), "s", kNonce, sample(1000, 60));
  TokenError err{};
  for (size_t n = 0; n < wire.size(); ++n) {
    std::vector<uint8_t> cut(wire.begin(), wire.begin() + static_cast<long>(n));
    EXPECT_FALSE(open_access_token(key_of(7), "s", stun::Bytes(cut), &err)) << n;
  }
  std::vector<uint8_t> huge_nonce = {0xff, 0xff, 1, 2, 3};
  EXPECT_FALSE(open_access_token(key_of(7), "s", stun::Bytes(huge_nonce), &err));
  EXPECT_EQ(err, TokenError::Malformed);
}

TEST(AccessToken, TimeChecksAllowSkewAndHonourTheKeysCap) {
  const auto t = sample(1000, 60);  // valid [1000, 1060)
  EXPECT_FALSE(check_token_time(t, 1000, 0, 0));
  EXPECT_FALSE(check_token_time(t, 1059, 0, 0));
  EXPECT_EQ(check_token_time(t, 1060, 0, 0), TokenError::Expired);
  EXPECT_FALSE(check_token_time(t, 1064, 5, 0));
  EXPECT_EQ(check_token_time(t, 1065, 5, 0), TokenError::Expired);
  EXPECT_EQ(check_token_time(t, 994, 5, 0), TokenError::NotYetValid);
  EXPECT_FALSE(check_token_time(t, 995, 5, 0));
  EXPECT_EQ(check_token_time(t, 1000, 0, 30), TokenError::TooLong);
  EXPECT_FALSE(check_token_time(t, 1000, 0, 60));
}

TEST(AccessToken, Base64DecodeIsStrict) {
  EXPECT_EQ(*base64_decode("aGVsbG8="), (std::vector<uint8_t>{'h', 'e', 'l', 'l', 'o'}));
  EXPECT_EQ(*base64_decode("aGVsbG8"), (std::vector<uint8_t>{'h', 'e', 'l', 'l', 'o'}));
  EXPECT_FALSE(base64_decode("aGVs bG8="));
  EXPECT_FALSE(base64_decode("a"));
  EXPECT_TRUE(base64_decode("")->empty());
}

TEST(OAuthKeyRing, FindsConfiguredKidsAndAsksTheFallbackForOthers) {
  OAuthKeyRing ring;
  ring.set({{"k1", key_of(1), 0, "https://as.example"}});
  auto r = ring.lookup("k1", nullptr);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, LookupStatus::Found);
  EXPECT_EQ(r->key->key, key_of(1));
  EXPECT_EQ(ring.lookup("k2", nullptr)->status, LookupStatus::NotFound);

  struct Later final : OAuthKeyStore {
    Callback pending;
    std::optional<OAuthKeyResult> lookup(std::string_view, Callback done) override {
      pending = std::move(done);
      return std::nullopt;
    }
  };
  auto later = std::make_shared<Later>();
  ring.set_fallback(later);
  std::optional<OAuthKeyResult> got;
  EXPECT_FALSE(ring.lookup("k2", [&](OAuthKeyResult res) { got = res; }));
  ASSERT_TRUE(later->pending);
  later->pending(OAuthKeyResult{LookupStatus::Found, OAuthKey{"k2", key_of(2), 0, ""}});
  ASSERT_TRUE(got);
  EXPECT_EQ(got->key->kid, "k2");
}

}  // namespace
}  // namespace ferry::auth
