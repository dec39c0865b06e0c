// auth/shared_secret: TURN REST API credentials (username "<expiry>:<user>", password
// base64(HMAC-SHA1(secret, username))), checked against ../shared/testvectors/long_term_key.json.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <fstream>

#include "auth/shared_secret.h"
#include "stun/integrity.h"
#include "base/clock.h"

using namespace ferry;
using auth::LookupStatus;

namespace {

std::string hex(const stun::Key& k) {
  static const char* d = "0123456789abcdef";
  std::string s;
  for (size_t i = 0; i < k.size; ++i) {
    s += d[k.bytes[i] >> 4];
    s += d[k.bytes[i] & 15];
  }
  return s;
}

nlohmann::json vector_named(const std::string& name) {
  std::ifstream in(std::string(FERRY_TESTVECTORS_DIR) + "/long_term_key.json");
  EXPECT_TRUE(in.good()) << "cannot open " << FERRY_TESTVECTORS_DIR << "/long_term_key.json";
  if (!in.good()) return {};
  auto j = nlohmann::json::parse(in);
  for (const auto& v : j.at("vectors")) {
    if (v.at("name") == name) return v;
  }
  ADD_FAILURE() << "vector " << name << " not found";
  return {};
}

auth::LookupResult sync_lookup(auth::CredentialStore& s, std::string_view user, std::string_view realm) {
  bool called = false;
  auto r = s.lookup(user, realm, [&](auth::LookupResult) { called = true; });
  EXPECT_TRUE(r.has_value()) << "SharedSecretStore must answer at once";
  EXPECT_FALSE(called);
  return r.value_or(auth::LookupResult::unavailable());
}

}  // namespace

TEST(SharedSecret, Base64) {
  EXPECT_EQ(auth::base64_encode(""), "");
  EXPECT_EQ(auth::base64_encode("f"), "Zg==");
  EXPECT_EQ(auth::base64_encode("fo"), "Zm8=");
  EXPECT_EQ(auth::base64_encode("foo"), "Zm9v");
  EXPECT_EQ(auth::base64_encode("foob"), "Zm9vYg==");
  EXPECT_EQ(auth::base64_encode("fooba"), "Zm9vYmE=");
  EXPECT_EQ(auth::base64_encode("foobar"), "Zm9vYmFy");
  EXPECT_EQ(auth::base64_encode(std::string("\xff\xfe\x00", 3)), "//4A");
}

TEST(SharedSecret, TurnRestVector) {
  auto v = vector_named("turn_rest_password");
  ASSERT_FALSE(v.is_null());
  const auto& e = v.at("expect");
  std::string username = e.at("username"), secret = e.at("shared_secret"), password = e.at("password");
  EXPECT_EQ(auth::rest_password(secret, username), password);
  // And the long-term key a server derives for realm pion.ly.
  auto key = stun::long_term_key_md5(username, "pion.ly", auth::rest_password(secret, username));
  EXPECT_EQ(hex(key), e.at("long_term_key_for_realm_pion.ly_hex").get<std::string>());

  // The store gives the same key for that username, as long as it has not expired.
  FakeClock clock(FakeClock::kDefaultStart, 1599491771 - 10);
  auth::SharedSecretStore store("pion.ly", clock, {secret});
  auto r = sync_lookup(store, username, "pion.ly");
  ASSERT_EQ(r.status, LookupStatus::Found);
  EXPECT_EQ(hex(r.credential->key_md5), e.at("long_term_key_for_realm_pion.ly_hex").get<std::string>());
  EXPECT_EQ(r.credential->expires_unix, 1599491771u);
  EXPECT_EQ(r.credential->username, username);
}

TEST(SharedSecret, TurnRestNegativeVector) {
  auto v = vector_named("turn_rest_username_rules");
  ASSERT_FALSE(v.is_null());
  const auto& neg = v.at("expect").at("negative");
  SteadyClock clock;  // real time: the vector's timestamp lies in the past
  auth::SharedSecretStore store(neg.at("realm"), clock, {neg.at("secret")});
  EXPECT_EQ(sync_lookup(store, neg.at("username").get<std::string>(), neg.at("realm").get<std::string>()).status,
            LookupStatus::NotFound);
}

TEST(SharedSecret, ParseUsername) {
  auto a = auth::parse_rest_username("1700000000:alice");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->expires_unix, 1700000000u);
  EXPECT_EQ(a->user_id, "alice");
  auto b = auth::parse_rest_username("1700000000");
  ASSERT_TRUE(b);
  EXPECT_EQ(b->user_id, "");
  auto c = auth::parse_rest_username("1700000000:a:b");  // user id: everything after the first ':'
  ASSERT_TRUE(c);
  EXPECT_EQ(c->user_id, "a:b");
  for (const char* bad : {"", ":alice", "alice", "alice:1700000000", "-1:x", "+1:x", " 1:x", "1 :x", "0x10:x",
                          "1700000000:", "12345678901234567890:x", "99999999999999999999", "1.5:x"}) {
    EXPECT_FALSE(auth::parse_rest_username(bad)) << "'" << bad << "'";
  }
}

TEST(SharedSecret, FoundKeysMatchThePassword) {
  FakeClock clock;
  auth::SharedSecretStore store("ferry", clock, {"s3cret-s3cret-s3cret"});
  std::string user = std::to_string(clock.unix_seconds() + 3600) + ":alice";
  auto r = sync_lookup(store, user, "ferry");
  ASSERT_EQ(r.status, LookupStatus::Found);
  std::string pw = auth::rest_password("s3cret-s3cret-s3cret", user);
  EXPECT_EQ(r.credential->key_md5, stun::long_term_key_md5(user, "ferry", pw));
  ASSERT_TRUE(r.credential->key_sha256);
  EXPECT_EQ(*r.credential->key_sha256, stun::long_term_key_sha256(user, "ferry", pw));
  EXPECT_TRUE(r.credential->alternates.empty());
  EXPECT_EQ(r.credential->expires_unix, clock.unix_seconds() + 3600);
}

TEST(SharedSecret, BareTimestampAccepted) {
  FakeClock clock;
  auth::SharedSecretStore store("ferry", clock, {"secret"});
  EXPECT_EQ(sync_lookup(store, std::to_string(clock.unix_seconds() + 60), "ferry").status, LookupStatus::Found);
}

TEST(SharedSecret, ExpiryUsesTheInjectedClock) {
  FakeClock clock;
  auth::SharedSecretStore store("ferry", clock, {"secret"});
  uint64_t now = clock.unix_seconds();
  std::string user = std::to_string(now + 10) + ":bob";
  EXPECT_EQ(sync_lookup(store, user, "ferry").status, LookupStatus::Found);
  clock.advance(std::chrono::seconds(9));
  EXPECT_EQ(sync_lookup(store, user, "ferry").status, LookupStatus::Found);
  clock.advance(std::chrono::seconds(1));  // now == expiry: expired
  EXPECT_EQ(sync_lookup(store, user, "ferry").status, LookupStatus::NotFound);
  EXPECT_EQ(sync_lookup(store, std::to_string(now - 1) + ":bob", "ferry").status, LookupStatus::NotFound);
}

TEST(SharedSecret, RefusesMalformedWrongRealmAndNoSecret) {
  FakeClock clock;
  auth::SharedSecretStore store("ferry", clock, {"secret"});
  std::string good = std::to_string(clock.unix_seconds() + 60) + ":u";
  EXPECT_EQ(sync_lookup(store, "alice", "ferry").status, LookupStatus::NotFound);
  EXPECT_EQ(sync_lookup(store, "x1:alice", "ferry").status, LookupStatus::NotFound);
  EXPECT_EQ(sync_lookup(store, good, "other").status, LookupStatus::NotFound);
  auth::SharedSecretStore empty("ferry", clock, {});
  EXPECT_EQ(sync_lookup(empty, good, "ferry").status, LookupStatus::NotFound);
  auth::SharedSecretStore blank("ferry", clock, {""});  // empty secrets are dropped
  EXPECT_EQ(blank.secret_count(), 0u);
  EXPECT_EQ(sync_lookup(blank, good, "ferry").status, LookupStatus::NotFound);
}

TEST(SharedSecret, RotationGivesAlternatesInOrder) {
  FakeClock clock;
  auth::SharedSecretStore store("ferry", clock, {"new-secret", "old-secret", "older-secret"});
  std::string user = std::to_string(clock.unix_seconds() + 60) + ":carol";
  auto r = sync_lookup(store, user, "ferry");
  ASSERT_EQ(r.status, LookupStatus::Found);
  EXPECT_EQ(r.credential->key_md5, stun::long_term_key_md5(user, "ferry", auth::rest_password("new-secret", user)));
  ASSERT_EQ(r.credential->alternates.size(), 2u);
  EXPECT_EQ(r.credential->alternates[0].key_md5,
            stun::long_term_key_md5(user, "ferry", auth::rest_password("old-secret", user)));
  EXPECT_EQ(r.credential->alternates[1].key_md5,
            stun::long_term_key_md5(user, "ferry", auth::rest_password("older-secret", user)));
  ASSERT_TRUE(r.credential->alternates[1].key_sha256);
  EXPECT_EQ(*r.credential->alternates[1].key_sha256,
            stun::long_term_key_sha256(user, "ferry", auth::rest_password("older-secret", user)));
}

TEST(SharedSecret, SetSecretsReplacesAtRuntime) {
  FakeClock clock;
  auth::SharedSecretStore store("ferry", clock, {"a-secret"});
  std::string user = std::to_string(clock.unix_seconds() + 60) + ":dave";
  auto before = sync_lookup(store, user, "ferry");
  store.set_secrets({"b-secret"});
  EXPECT_EQ(store.secret_count(), 1u);
  auto after = sync_lookup(store, user, "ferry");
  ASSERT_EQ(after.status, LookupStatus::Found);
  EXPECT_FALSE(before.credential->key_md5 == after.credential->key_md5);
  EXPECT_EQ(after.credential->key_md5, stun::long_term_key_md5(user, "ferry", auth::rest_password("b-secret", user)));
  store.set_secrets({});
  EXPECT_EQ(sync_lookup(store, user, "ferry").status, LookupStatus::NotFound);
}

TEST(SharedSecret, MaxTtl) {
  FakeClock clock;
  auth::SharedSecretStore store("ferry", clock, {"secret"});
  store.set_max_ttl(3600);
  EXPECT_EQ(sync_lookup(store, std::to_string(clock.unix_seconds() + 3600) + ":e", "ferry").status,
            LookupStatus::Found);
  EXPECT_EQ(sync_lookup(store, std::to_string(clock.unix_seconds() + 3601) + ":e", "ferry").status,
            LookupStatus::NotFound);
}

TEST(SharedSecret, MintRoundTrip) {
  FakeClock clock;
  auto m = auth::mint("mint-secret", "frank", 600, clock.unix_seconds());
  EXPECT_EQ(m.username, std::to_string(clock.unix_seconds() + 600) + ":frank");
  EXPECT_EQ(m.expires_unix, clock.unix_seconds() + 600);
  EXPECT_EQ(m.password, auth::rest_password("mint-secret", m.username));
  auth::SharedSecretStore store("ferry", clock, {"other", "mint-secret"});
  auto r = sync_lookup(store, m.username, "ferry");
  ASSERT_EQ(r.status, LookupStatus::Found);
  // Minted with the second secret: its key is the first alternate.
  ASSERT_EQ(r.credential->alternates.size(), 1u);
  EXPECT_EQ(r.credential->alternates[0].key_md5, stun::long_term_key_md5(m.username, "ferry", m.password));
  EXPECT_EQ(auth::mint("s", "", 5, 100).username, "105");
}
