// The operations API without sockets: bearer parsing, API keys (hashes, constant-time lookup,
// per-key token buckets), health and readiness, and /v1/ice-servers' answers and JSON.
#include "server/ops/ops_api.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "auth/shared_secret.h"
#include "server/ops/ice_servers.h"
#include "server/ops/metrics.h"
#include "tests/unit/fixtures/addresses.h"

namespace ferry::server {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;

ApiKeyConfig key(const std::string& name, const std::string& secret) { return ApiKeyConfig{name, sha256(secret)}; }

TEST(Bearer, ParsesRfc6750Tokens) {
  EXPECT_EQ(parse_bearer("Bearer abc123"), "abc123");
  EXPECT_EQ(parse_bearer("bearer abc-._~+/=="), "abc-._~+/==");
  EXPECT_EQ(parse_bearer("BEARER   tok  "), "tok");
  EXPECT_FALSE(parse_bearer(""));
  EXPECT_FALSE(parse_bearer("Bearer"));
  EXPECT_FALSE(parse_bearer("Bearer "));
  EXPECT_FALSE(parse_bearer("Basic dXNlcjpwdw=="));
  EXPECT_FALSE(parse_bearer("Bearerabc"));
  EXPECT_FALSE(parse_bearer("Bearer a b"));
  EXPECT_FALSE(parse_bearer("Bearer =abc"));
  EXPECT_FALSE(parse_bearer("Bearer ab=c"));
  EXPECT_FALSE(parse_bearer("Bearer a\"b"));
  EXPECT_FALSE(parse_bearer("Bearer " + std::string(600, 'a')));
}

TEST(ApiKeys, Sha256Hex) {
  auto h = sha256("test");
  EXPECT_EQ(to_hex(h.data(), h.size()), "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08");
}

TEST(ApiKeys, KnownKeysAreAllowedOthersUnknown) {
  FakeClock clock;
  ApiKeyRing ring({key("web", "k1"), key("mobile", "k2")}, 0, clock);
  EXPECT_EQ(ring.check("k1").verdict, ApiKeyVerdict::Allowed);
  EXPECT_EQ(ring.check("k1").name, "web");
  EXPECT_EQ(ring.check("k2").name, "mobile");
  EXPECT_EQ(ring.check("k3").verdict, ApiKeyVerdict::Unknown);
  EXPECT_EQ(ring.check("").verdict, ApiKeyVerdict::Unknown);
  ApiKeyRing empty({}, 0, clock);
  EXPECT_EQ(empty.check("k1").verdict, ApiKeyVerdict::Unknown);
}

TEST(ApiKeys, EachKeyHasItsOwnTokenBucket) {
  FakeClock clock;
  ApiKeyRing ring({key("web", "k1"), key("mobile", "k2")}, 2, clock);
  EXPECT_EQ(ring.check("k1").verdict, ApiKeyVerdict::Allowed);
  EXPECT_EQ(ring.check("k1").verdict, ApiKeyVerdict::Allowed);
  EXPECT_EQ(ring.check("k1").verdict, ApiKeyVerdict::RateLimited);
  EXPECT_EQ(ring.check("k2").verdict, ApiKeyVerdict::Allowed) << "another key is not limited by the first";
  clock.advance(500ms);
  EXPECT_EQ(ring.check("k1").verdict, ApiKeyVerdict::Allowed);
  EXPECT_EQ(ring.check("k1").verdict, ApiKeyVerdict::RateLimited);
  // A reload keeps the state of keys that stay (no free refill) and drops removed ones.
  ring.set_keys({key("web", "k1")}, 2);
  EXPECT_EQ(ring.check("k1").verdict, ApiKeyVerdict::RateLimited);
  EXPECT_EQ(ring.check("k2").verdict, ApiKeyVerdict::Unknown);
  ring.set_keys({key("web", "k1")}, 0);
  for (int i = 0; i < 100; ++i) ASSERT_EQ(ring.check("k1").verdict, ApiKeyVerdict::Allowed);
}

TEST(ApiKeys, UnknownKeysAreLookedUpAndCached) {
  FakeClock clock;
  ApiKeyRing ring({key("web", "k1")}, 2, clock);
  int lookups = 0;
  ApiKeyLookup::Status answer = ApiKeyLookup::Status::Found;
  ring.set_lookup(
      [&](const std::array<uint8_t, 32>& h) {
    ++lookups;
    EXPECT_EQ(h, sha256("db-key"));
    return ApiKeyLookup{answer, answer == ApiKeyLookup::Status::Found ? "from-db" : ""};
      },
      60s);
  EXPECT_EQ(ring.check("k1").verdict, ApiKeyVerdict::Allowed);
  EXPECT_EQ(lookups, 0) << "configured keys need no lookup";
  auto r = ring.check("db-key");
  EXPECT_EQ(r.verdict, ApiKeyVerdict::Allowed);
  EXPECT_EQ(r.name, "from-db");
  EXPECT_EQ(ring.check("db-key").verdict, ApiKeyVerdict::Allowed);
  EXPECT_EQ(ring.check("db-key").verdict, ApiKeyVerdict::RateLimited) << "looked-up keys have a bucket too";
  EXPECT_EQ(lookups, 1) << "a hit is cached";
  // After the cache time the key is asked again; revoked, it stops working.
  clock.advance(61s);
  answer = ApiKeyLookup::Status::NotFound;
  EXPECT_EQ(ring.check("db-key").verdict, ApiKeyVerdict::Unknown);
  EXPECT_EQ(lookups, 2);
  answer = ApiKeyLookup::Status::Unavailable;
  EXPECT_EQ(ring.check("db-key").verdict, ApiKeyVerdict::Unavailable);
  EXPECT_EQ(ring.size(), 1u);
}

TEST(IceServers, DerivesUrlsFromListeners) {
  std::vector<ListenerConfig> listeners = {
      {test::addr("127.0.0.1:3478"), Transport::Udp}, {test::addr("127.0.0.1:3478"), Transport::Tcp},
      {test::addr("[::1]:3478"), Transport::Udp},     {test::addr("0.0.0.0:5349"), Transport::Tls},
      {test::addr("[::]:3479"), Transport::Udp},      {test::addr("0.0.0.0:5349"), Transport::Dtls}};
  std::vector<RelayAddressConfig> relays = {{test::addr("10.0.0.5:0"), test::addr("203.0.113.10:0")}};
  EXPECT_EQ(derive_ice_urls(listeners, relays),
            (std::vector<std::string>{"stun:127.0.0.1:3478", "turn:127.0.0.1:3478?transport=udp",
                                      "turn:127.0.0.1:3478?transport=tcp", "stun:[::1]:3478",
                                      "turn:[::1]:3478?transport=udp", "turns:203.0.113.10:5349?transport=tcp"}));
}

TEST(IceServers, TtlIsBoundedAndChecked) {
  EXPECT_EQ(parse_ttl(std::nullopt, 3600, 86400), 3600u);
  EXPECT_EQ(parse_ttl(std::nullopt, 3600, 600), 600u);
  EXPECT_EQ(parse_ttl("60", 3600, 86400), 60u);
  EXPECT_EQ(parse_ttl("999999", 3600, 86400), 86400u);
  EXPECT_EQ(parse_ttl("99999999999999999999999", 3600, 86400), 86400u);
  EXPECT_FALSE(parse_ttl("0", 3600, 86400));
  EXPECT_FALSE(parse_ttl("-5", 3600, 86400));
  EXPECT_FALSE(parse_ttl("5s", 3600, 86400));
  EXPECT_FALSE(parse_ttl("", 3600, 86400));
}

TEST(IceServers, UserIds) {
  EXPECT_TRUE(valid_user_id("alice@example.org"));
  EXPECT_TRUE(valid_user_id("a-b_c.d"));
  EXPECT_FALSE(valid_user_id(""));
  EXPECT_FALSE(valid_user_id("a:b"));
  EXPECT_FALSE(valid_user_id("a b"));
  EXPECT_FALSE(valid_user_id(std::string(65, 'a')));
}

TEST(IceServers, JsonIsAnRtcIceServerList) {
  auth::MintedCredential c{"1700003600:web", "pw+/=", 1700003600, 3600};
  auto j = nlohmann::json::parse(ice_servers_json({"stun:h:3478", "turn:h:3478?transport=udp"}, c));
  ASSERT_TRUE(j["iceServers"].is_array());
  ASSERT_EQ(j["iceServers"].size(), 1u);
  EXPECT_EQ(j["iceServers"][0]["urls"], nlohmann::json({"stun:h:3478", "turn:h:3478?transport=udp"}));
  EXPECT_EQ(j["iceServers"][0]["username"], "1700003600:web");
  EXPECT_EQ(j["iceServers"][0]["credential"], "pw+/=");
  EXPECT_EQ(j["ttl"], 3600);
  EXPECT_EQ(j["expires"], 1700003600);
}

class OpsApiTest : public ::testing::Test {
 protected:
  OpsApiTest() {
    shell.heartbeat_ms.set(steady_ms());
    health.set_workers({&shell});
    health.set_listeners_bound(true);
    ice.urls = {"stun:127.0.0.1:3478", "turn:127.0.0.1:3478?transport=udp"};
    ice.shared_secrets = {"s3cret", "older"};
    ice.credential_ttl = 600;
    ice.max_credential_ttl = 3600;
  }
  OpsResponse get(const std::string& path, const std::string& authorization = "",
                  std::map<std::string, std::string> query = {}) {
    OpsApi api(&metrics, health, keys, ice, clock);
    OpsRequest r;
    r.path = path;
    r.authorization = authorization;
    r.query = std::move(query);
    return api.handle(r);
  }
  static std::string header(const OpsResponse& r, const std::string& name) {
    for (const auto& [k, v] : r.headers)
      if (k == name) return v;
    return "";
  }

  FakeClock clock;
  ShellStats shell;
  turn::ServerStats core;
  Health health;
  MetricsCollector metrics{{{&core, &shell, nullptr}}, "t", nullptr};
  ApiKeyRing keys{{key("web", "good-key")}, 3, clock};
  IceSettings ice;
};

TEST_F(OpsApiTest, MissingOrWrongKeyGets401) {
  auto r = get("/v1/ice-servers");
  EXPECT_EQ(r.status, 401);
  EXPECT_THAT(header(r, "WWW-Authenticate"), HasSubstr("Bearer"));
  EXPECT_EQ(get("/v1/ice-servers", "Bearer wrong-key").status, 401);
  EXPECT_EQ(get("/v1/ice-servers", "Basic Z29vZC1rZXk=").status, 401);
  EXPECT_EQ(get("/v1/ice-servers", "good-key").status, 401);
}

TEST_F(OpsApiTest, GoodKeyGetsAWorkingCredential) {
  auto r = get("/v1/ice-servers", "Bearer good-key", {{"ttl", "120"}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.content_type, "application/json");
  EXPECT_EQ(header(r, "Cache-Control"), "no-store");
  EXPECT_EQ(header(r, "Access-Control-Allow-Origin"), "*");
  auto j = nlohmann::json::parse(r.body);
  const std::string username = j["iceServers"][0]["username"];
  const std::string expected_user = std::to_string(clock.unix_seconds() + 120) + ":web";
  EXPECT_EQ(username, expected_user);
  // The credential is the TURN REST password of the first (current) secret.
  EXPECT_EQ(j["iceServers"][0]["credential"], auth::rest_password("s3cret", username));
  EXPECT_EQ(j["iceServers"][0]["urls"].size(), 2u);
  EXPECT_EQ(j["ttl"], 120);
}

TEST_F(OpsApiTest, TtlDefaultsAndIsCapped) {
  auto j = nlohmann::json::parse(get("/v1/ice-servers", "Bearer good-key").body);
  EXPECT_EQ(j["ttl"], 600);
  j = nlohmann::json::parse(get("/v1/ice-servers", "Bearer good-key", {{"ttl", "100000"}}).body);
  EXPECT_EQ(j["ttl"], 3600);
  EXPECT_EQ(get("/v1/ice-servers", "Bearer good-key", {{"ttl", "abc"}}).status, 400);
}

TEST_F(OpsApiTest, UserParameterNamesTheUser) {
  auto j = nlohmann::json::parse(get("/v1/ice-servers", "Bearer good-key", {{"user", "carol"}}).body);
  EXPECT_THAT(std::string(j["iceServers"][0]["username"]), ::testing::EndsWith(":carol"));
  EXPECT_EQ(get("/v1/ice-servers", "Bearer good-key", {{"user", "a:b"}}).status, 400);
}

TEST_F(OpsApiTest, OverTheKeysRateGets429) {
  OpsApi api(&metrics, health, keys, ice, clock);
  OpsRequest req;
  req.path = "/v1/ice-servers";
  req.authorization = "Bearer good-key";
  for (int i = 0; i < 3; ++i) EXPECT_EQ(api.handle(req).status, 200);
  auto r = api.handle(req);
  EXPECT_EQ(r.status, 429);
  EXPECT_EQ(header(r, "Retry-After"), "1");
  req.authorization = "Bearer wrong";
  EXPECT_EQ(api.handle(req).status, 401) << "an unknown key is refused before any rate";
  clock.advance(1s);
  req.authorization = "Bearer good-key";
  EXPECT_EQ(api.handle(req).status, 200);
}

TEST_F(OpsApiTest, NoSharedSecretGets503) {
  ice.shared_secrets.clear();
  auto r = get("/v1/ice-servers", "Bearer good-key");
  EXPECT_EQ(r.status, 503);
  EXPECT_THAT(r.body, HasSubstr("shared secret"));
  EXPECT_EQ(get("/v1/ice-servers").status, 401) << "the key is checked first";
}

TEST_F(OpsApiTest, KeyStoreDownGets503) {
  keys.set_lookup(
      [](const std::array<uint8_t, 32>&) {
    return ApiKeyLookup{ApiKeyLookup::Status::Unavailable, ""};
      },
      60s);
  EXPECT_EQ(get("/v1/ice-servers", "Bearer other-key").status, 503);
  EXPECT_EQ(get("/v1/ice-servers", "Bearer good-key").status, 200) << "configured keys still work";
}

TEST_F(OpsApiTest, PreflightAndMethods) {
  OpsApi api(&metrics, health, keys, ice, clock);
  OpsRequest req;
  req.method = "OPTIONS";
  req.path = "/v1/ice-servers";
  auto r = api.handle(req);
  EXPECT_EQ(r.status, 204);
  EXPECT_THAT(header(r, "Access-Control-Allow-Headers"), HasSubstr("Authorization"));
  req.method = "POST";
  EXPECT_EQ(api.handle(req).status, 405);
  req.path = "/metrics";
  EXPECT_EQ(api.handle(req).status, 405);
  EXPECT_EQ(get("/nope").status, 404);
}

TEST_F(OpsApiTest, MetricsAreServed) {
  core.allocations_created.add(2);
  auto r = get("/metrics");
  EXPECT_EQ(r.status, 200);
  EXPECT_THAT(r.content_type, HasSubstr("version=0.0.4"));
  EXPECT_THAT(r.body, HasSubstr("ferry_allocations_created_total 2\n"));
}

TEST_F(OpsApiTest, HealthFollowsTheHeartbeats) {
  EXPECT_EQ(get("/healthz").status, 200);
  shell.heartbeat_ms.set(steady_ms() - Health::kStaleMs - 1000);
  auto r = get("/healthz");
  EXPECT_EQ(r.status, 503);
  EXPECT_THAT(r.body, HasSubstr("worker 0 has not ticked"));
  EXPECT_EQ(get("/readyz").status, 503);
}

TEST_F(OpsApiTest, ReadinessNeedsListenersDatabaseAndNoDrain) {
  EXPECT_EQ(get("/readyz").status, 200);
  health.set_listeners_bound(false);
  EXPECT_EQ(get("/readyz").body, "listeners not bound yet\n");
  health.set_listeners_bound(true);
  bool db_up = false;
  health.set_database_check([&] { return db_up; });
  EXPECT_EQ(get("/readyz").body, "database unreachable\n");
  db_up = true;
  EXPECT_EQ(get("/readyz").status, 200);
  health.set_draining(true);
  auto r = get("/readyz");
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.body, "draining\n");
  EXPECT_EQ(get("/healthz").status, 200) << "a draining server is still alive";
}

}  // namespace
}  // namespace ferry::server
