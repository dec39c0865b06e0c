// The fleet's pure pieces: node ids (node.id, derived from host and port), the node.* and
// http.ice_nodes config rows, the least-loaded choice behind /v1/ice-servers and ALTERNATE-SERVER,
// the registry's JSON columns, the two-reason drain, /v1/ice-servers with a fleet, and the
// sessions rows, their collector and kill orders.
#include "server/ops/fleet_nodes.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "auth/shared_secret.h"
#include "server/config/config.h"
#include "server/config/node_id.h"
#include "server/ops/drain_state.h"
#include "server/ops/fleet_sessions.h"
#include "server/ops/ice_servers.h"
#include "server/ops/metrics.h"
#include "server/ops/ops_api.h"
#include "tests/unit/fixtures/addresses.h"

namespace ferry::server {
namespace {

using ::testing::HasSubstr;

FleetNode node(std::string id, std::string status, int64_t allocations, double bps = 0, std::string udp = "") {
  FleetNode n;
  n.id = std::move(id);
  n.status = std::move(status);
  n.allocations = allocations;
  n.relayed_bps = bps;
  n.urls = {"turn:" + n.id + "?transport=udp"};
  if (!udp.empty()) n.addresses.emplace_back(Transport::Udp, test::addr(udp));
  return n;
}

// ---- node ids ---------------------------------------------------------------------------------

TEST(NodeId, DerivedFromHostAndFirstListenerPort) {
  std::vector<ListenerConfig> ls = {{test::addr("0.0.0.0:3478"), Transport::Udp},
                                    {test::addr("[::]:5349"), Transport::Tls}};
  EXPECT_EQ(derive_node_id("relay-a.example.org", ls), "relay-a.example.org-3478");
  EXPECT_EQ(derive_node_id("relay a/b", ls), "relay-a-b-3478");  // outside the id alphabet -> '-'
  EXPECT_EQ(derive_node_id("", ls), "ferry-3478");
  EXPECT_EQ(derive_node_id("host", {}), "host");
  const std::string long_id = derive_node_id(std::string(100, 'h'), ls);
  EXPECT_EQ(long_id.size(), 64u);
  EXPECT_THAT(long_id, ::testing::EndsWith("-3478"));
  EXPECT_TRUE(valid_node_id(long_id));
  // Same inputs, same id: a restarted instance keeps its row.
  EXPECT_EQ(derive_node_id("h", ls), derive_node_id("h", ls));
}

TEST(NodeId, ConfiguredIdWins) {
  Config c;
  c.node.id = "edge-1";
  EXPECT_EQ(resolved_node_id(c), "edge-1");
  c.node.id.clear();
  const std::string derived = resolved_node_id(c);
  EXPECT_TRUE(valid_node_id(derived)) << derived;
  EXPECT_THAT(derived, ::testing::EndsWith("-3478"));  // the default first listener
}

TEST(NodeId, Validity) {
  EXPECT_TRUE(valid_node_id("a"));
  EXPECT_TRUE(valid_node_id("node_1.eu-west"));
  EXPECT_FALSE(valid_node_id(""));
  EXPECT_FALSE(valid_node_id("a b"));
  EXPECT_FALSE(valid_node_id("a:b"));
  EXPECT_FALSE(valid_node_id(std::string(65, 'a')));
}

// ---- config rows ------------------------------------------------------------------------------

TEST(FleetConfig, DefaultsAndKeys) {
  Config d;
  EXPECT_EQ(d.node.id, "");
  EXPECT_EQ(d.node.heartbeat_interval, 5u);
  EXPECT_EQ(d.http.ice_nodes, 3u);
  auto r = load_config_string("node: {id: edge-1, heartbeat_interval: 1}\nhttp: {ice_nodes: 5}\n", "ferry.yaml", {});
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->node.id, "edge-1");
  EXPECT_EQ(r->node.heartbeat_interval, 1u);
  EXPECT_EQ(r->http.ice_nodes, 5u);
  auto e = load_config_string("", "ferry.yaml", {{"FERRY_NODE_ID", "edge-2"}, {"FERRY_NODE_HEARTBEAT_INTERVAL", "2"}});
  ASSERT_TRUE(e) << e.error().message;
  EXPECT_EQ(e->node.id, "edge-2");
  EXPECT_EQ(e->node.heartbeat_interval, 2u);
}

TEST(FleetConfig, BadValuesNameTheKey) {
  auto r = load_config_string("node: {id: \"a b\"}\n", "ferry.yaml", {});
  ASSERT_FALSE(r);
  EXPECT_THAT(r.error().message, HasSubstr("node.id"));
  EXPECT_THAT(r.error().message, HasSubstr("letters, digits"));
  r = load_config_string("node: {heartbeat_interval: 0}\n", "ferry.yaml", {});
  ASSERT_FALSE(r);
  EXPECT_THAT(r.error().message, HasSubstr("node.heartbeat_interval"));
  r = load_config_string("http: {ice_nodes: 0}\n", "ferry.yaml", {});
  ASSERT_FALSE(r);
  EXPECT_THAT(r.error().message, HasSubstr("http.ice_nodes"));
}

// ---- least loaded -----------------------------------------------------------------------------

TEST(FleetChoice, ActiveNodesLeastLoadedFirst) {
  std::vector<FleetNode> nodes = {node("c", "active", 5),   node("a", "active", 2, 900), node("b", "active", 2, 100),
                                  node("d", "draining", 0), node("e", "down", 0),        node("f", "active", 2, 100)};
  auto picked = pick_active(nodes, "", 10);
  std::vector<std::string> ids;
  for (const auto* n : picked) ids.push_back(n->id);
  // Fewer allocations first, then fewer bytes/s, then id; draining and down never.
  EXPECT_EQ(ids, (std::vector<std::string>{"b", "f", "a", "c"}));
  EXPECT_EQ(pick_active(nodes, "", 2).size(), 2u);
  EXPECT_EQ(pick_active(nodes, "b", 1).front()->id, "f");
  EXPECT_TRUE(pick_active({}, "", 3).empty());
}

TEST(FleetChoice, AlternateIsTheLeastLoadedOtherLiveNode) {
  std::vector<FleetNode> nodes = {
      node("self", "active", 0, 0, "10.0.0.1:3478"), node("busy", "active", 9, 0, "10.0.0.2:3478"),
      node("idle", "active", 1, 0, "10.0.0.3:3478"), node("dead", "down", 0, 0, "10.0.0.4:3478"),
      node("leaving", "draining", 0, 0, "10.0.0.5:3478")};
  EXPECT_EQ(choose_alternate(nodes, "self"), test::addr("10.0.0.3:3478"));
  // A node without an address to send clients to is passed over.
  nodes[2].addresses.clear();
  EXPECT_EQ(choose_alternate(nodes, "self"), test::addr("10.0.0.2:3478"));
  // Its udp listener first, else another transport's.
  nodes[1].addresses = {{Transport::Tcp, test::addr("10.0.0.2:3479")}, {Transport::Udp, test::addr("10.0.0.2:3478")}};
  EXPECT_EQ(choose_alternate(nodes, "self"), test::addr("10.0.0.2:3478"));
  nodes[1].addresses = {{Transport::Tcp, test::addr("10.0.0.2:3479")}};
  EXPECT_EQ(choose_alternate(nodes, "self"), test::addr("10.0.0.2:3479"));
  // Nobody else live and active: none (the drain answers 508).
  nodes.erase(nodes.begin() + 1, nodes.begin() + 3);
  EXPECT_EQ(choose_alternate(nodes, "self"), std::nullopt);
}

TEST(FleetJson, ColumnsRoundTrip) {
  std::vector<std::string> urls = {"stun:1.2.3.4:3478", "turn:1.2.3.4:3478?transport=udp"};
  EXPECT_EQ(parse_urls_json(urls_json(urls)), urls);
  std::vector<std::pair<Transport, stun::TransportAddress>> a = {{Transport::Tcp, test::addr("[2001:db8::1]:3478")},
                                                                 {Transport::Udp, test::addr("1.2.3.4:3478")}};
  EXPECT_EQ(addresses_json(a), R"({"tcp":"[2001:db8::1]:3478","udp":"1.2.3.4:3478"})");
  EXPECT_EQ(parse_addresses_json(addresses_json(a)), a);
  // What does not parse is left out, never a crash.
  EXPECT_TRUE(parse_urls_json("not json").empty());
  EXPECT_EQ(parse_urls_json(R"(["a", 3, null])"), (std::vector<std::string>{"a"}));
  EXPECT_TRUE(parse_addresses_json(R"({"udp":"nonsense","carrier-pigeon":"1.2.3.4:1","tcp":"1.2.3.4:0"})").empty());
}

TEST(FleetJson, AdvertisedAddressesOnePerTransport) {
  std::vector<ListenerConfig> ls = {{test::addr("127.0.0.1:3478"), Transport::Udp},
                                    {test::addr("127.0.0.2:3478"), Transport::Udp},
                                    {test::addr("0.0.0.0:5349"), Transport::Tls},
                                    {test::addr("0.0.0.0:3478"), Transport::Tcp}};
  std::vector<RelayAddressConfig> relays = {{test::addr("10.0.0.5:0"), test::addr("203.0.113.10:0")}};
  auto a = advertised_addresses(ls, relays);
  ASSERT_EQ(a.size(), 3u);
  EXPECT_EQ(a[0], std::make_pair(Transport::Udp, test::addr("127.0.0.1:3478")));
  EXPECT_EQ(a[1], std::make_pair(Transport::Tls, test::addr("203.0.113.10:5349")));
  EXPECT_EQ(a[2], std::make_pair(Transport::Tcp, test::addr("203.0.113.10:3478")));
  EXPECT_TRUE(advertised_addresses({{test::addr("0.0.0.0:3478"), Transport::Udp}}, {}).empty());
}

// ---- the drain's two reasons ------------------------------------------------------------------

TEST(DrainState, SigtermOrFleetDrains) {
  DrainState d(std::nullopt);
  EXPECT_EQ(d.target(), DrainTarget{});
  d.set_fleet_alternate(test::addr("10.0.0.3:3478"));
  EXPECT_FALSE(d.target().draining);  // an alternate alone drains nothing
  d.set_fleet(true);
  EXPECT_EQ(d.target(), (DrainTarget{true, test::addr("10.0.0.3:3478")}));
  d.set_fleet_alternate(std::nullopt);
  EXPECT_EQ(d.target(), (DrainTarget{true, std::nullopt}));  // 508
  d.set_fleet(false);
  EXPECT_FALSE(d.target().draining);  // undrain
  d.set_sigterm();
  d.set_fleet(true);
  d.set_fleet(false);
  EXPECT_TRUE(d.target().draining);  // an undrain does not cancel SIGTERM
}

TEST(DrainState, ConfiguredAlternateWins) {
  DrainState d(test::addr("192.0.2.1:3478"));
  d.set_fleet_alternate(test::addr("10.0.0.3:3478"));
  d.set_fleet(true);
  EXPECT_EQ(d.target().alternate, test::addr("192.0.2.1:3478"));
}

// ---- /v1/ice-servers with a fleet -------------------------------------------------------------

TEST(FleetIce, ListsUpToMaxNodesWithOneCredential) {
  FakeClock clock;
  turn::ServerStats core;
  ShellStats shell;
  Health health;
  MetricsCollector metrics{{{&core, &shell, nullptr}}, "t", nullptr};
  ApiKeyRing keys{{ApiKeyConfig{"web", sha256("k")}}, 0, clock};
  IceSettings ice;
  ice.urls = {"turn:self:3478?transport=udp"};
  ice.shared_secrets = {"s3cret"};
  ice.max_nodes = 2;
  OpsApi api(&metrics, health, keys, ice, clock);
  OpsRequest req;
  req.path = "/v1/ice-servers";
  req.authorization = "Bearer k";

  auto j = nlohmann::json::parse(api.handle(req).body);
  ASSERT_EQ(j["iceServers"].size(), 1u);  // no fleet known: this node alone
  EXPECT_EQ(j["iceServers"][0]["urls"][0], "turn:self:3478?transport=udp");

  api.set_fleet({{"turn:a:3478?transport=udp"}, {"turn:b:3478?transport=udp"}, {"turn:c:3478?transport=udp"}});
  j = nlohmann::json::parse(api.handle(req).body);
  ASSERT_EQ(j["iceServers"].size(), 2u);  // http.ice_nodes
  EXPECT_EQ(j["iceServers"][0]["urls"][0], "turn:a:3478?transport=udp");
  EXPECT_EQ(j["iceServers"][1]["urls"][0], "turn:b:3478?transport=udp");
  EXPECT_EQ(j["iceServers"][0]["username"], j["iceServers"][1]["username"]);
  EXPECT_EQ(j["iceServers"][0]["credential"], j["iceServers"][1]["credential"]);
  const std::string user = j["iceServers"][0]["username"];
  EXPECT_EQ(j["iceServers"][1]["credential"], auth::rest_password("s3cret", user));

  api.set_fleet({});  // the database went away: back to this node's own URLs
  j = nlohmann::json::parse(api.handle(req).body);
  EXPECT_EQ(j["iceServers"].size(), 1u);
}

// ---- sessions and kill orders ----------------------------------------------------------------

constexpr Instant kNow = FakeClock::kDefaultStart;

SessionInfo session(std::string user, std::string client, std::vector<std::string> relayed) {
  SessionInfo s;
  s.username = std::move(user);
  s.tuple.client = test::addr(client);
  s.tuple.server = test::addr("10.0.0.1:3478");
  s.tuple.transport = turn::Transport::Tcp;
  for (const auto& r : relayed) s.relayed.push_back(test::addr(r));
  s.permissions = 2;
  s.started = kNow - std::chrono::milliseconds(90'250);
  s.expires = kNow + std::chrono::milliseconds(300'900);
  s.bytes_in = 5'000'000'000;  // past 32 bits
  s.bytes_out = 1234;
  return s;
}

TEST(FleetSessions, RowsNameEachAllocationByItsRelayedAddress) {
  auto j = nlohmann::json::parse(
      session_rows_json({session("alice", "192.0.2.7:5555", {"203.0.113.1:50000", "[2001:db8::1]:50002"}),
                         session("bob", "192.0.2.8:6666", {})},  // not yet allocated: left out
                        kNow));
  ASSERT_EQ(j.size(), 1u);
  EXPECT_EQ(j[0]["id"], "203.0.113.1:50000");
  EXPECT_EQ(j[0]["user"], "alice");
  EXPECT_EQ(j[0]["client"], "192.0.2.7:5555");
  EXPECT_EQ(j[0]["transport"], "tcp");
  EXPECT_EQ(j[0]["relayed"], "203.0.113.1:50000 [2001:db8::1]:50002");
  EXPECT_EQ(j[0]["permissions"], 2);
  EXPECT_EQ(j[0]["expires_in"], 300);
  EXPECT_EQ(j[0]["age_ms"], 90'250);
  EXPECT_EQ(j[0]["bytes_in"], 5'000'000'000u);
  EXPECT_EQ(j[0]["bytes_out"], 1234u);
}

TEST(FleetSessions, AgeAndExpiryAreTakenAtTheWriteNotAtTheWalk) {
  // Rows are written a heartbeat after the workers' walk: the same snapshot, written later, is
  // older and nearer its expiry; the bytes stay those of the walk.
  const SessionInfo s = session("alice", "192.0.2.7:5555", {"203.0.113.1:50000"});
  auto later = nlohmann::json::parse(session_rows_json({s}, kNow + std::chrono::seconds(5)));
  EXPECT_EQ(later[0]["age_ms"], 95'250);
  EXPECT_EQ(later[0]["expires_in"], 295);
  EXPECT_EQ(later[0]["bytes_in"], 5'000'000'000u);
  auto expired = nlohmann::json::parse(session_rows_json({s}, kNow + std::chrono::seconds(400)));
  EXPECT_EQ(expired[0]["expires_in"], 0);  // past its expiry: 0, never negative
  auto early = nlohmann::json::parse(session_rows_json({s}, s.started - std::chrono::seconds(1)));
  EXPECT_EQ(early[0]["age_ms"], 0);  // never negative either
}

TEST(FleetSessions, RowsAreBoundedAndSurviveOddUsernames) {
  std::vector<SessionInfo> many;
  for (int i = 0; i < 5; ++i)
    many.push_back(session("u", "192.0.2.7:5555", {"203.0.113.1:" + std::to_string(50000 + i)}));
  many[0].username = std::string("ÿþ", 2);  // not UTF-8: replaced, never a throw
  size_t left_out = 0;
  auto j = nlohmann::json::parse(session_rows_json(many, kNow, 3, &left_out));
  EXPECT_EQ(j.size(), 3u);
  EXPECT_EQ(left_out, 2u);
}

std::vector<std::string> users(const std::optional<std::vector<SessionInfo>>& rows) {
  std::vector<std::string> out;
  if (rows)
    for (const auto& r : *rows) out.push_back(r.username);
  return out;
}

SessionInfo of(std::string user) {
  SessionInfo s;
  s.username = std::move(user);
  return s;
}

TEST(FleetSessions, CollectorHandsOverWhatEveryWorkerAnswered) {
  SessionCollector c;
  EXPECT_FALSE(c.take());  // nothing collected yet: the table is left alone
  ASSERT_TRUE(c.start(2));
  c.add({of("a")});
  EXPECT_FALSE(c.take());  // one worker of two: not yet
  c.add({of("b"), of("c")});
  EXPECT_THAT(users(c.take()), ::testing::ElementsAre("a", "b", "c"));
  EXPECT_FALSE(c.take());  // handed over once
  ASSERT_TRUE(c.start(1));
  c.add({});
  auto empty = c.take();  // no allocations is an answer too: the node's rows go
  ASSERT_TRUE(empty);
  EXPECT_TRUE(empty->empty());
}

TEST(FleetSessions, CollectorWaitsForASlowWorkerAndFallsBackToTheCompleteOne) {
  SessionCollector c;
  ASSERT_TRUE(c.start(1));
  c.add({of("first")});  // complete, but its heartbeat's upsert failed: never taken
  ASSERT_TRUE(c.start(2));
  c.add({of("second")});
  // The new collection waits for its second worker: the complete one before it is handed over.
  EXPECT_THAT(users(c.take()), ::testing::ElementsAre("first"));
  EXPECT_FALSE(c.take());
  EXPECT_FALSE(c.start(2));  // still waiting: not restarted, nothing to post
  c.add({of("late")});
  EXPECT_THAT(users(c.take()), ::testing::ElementsAre("second", "late"));
  c.add({of("unasked")});  // an answer nobody waits for is dropped
  EXPECT_FALSE(c.take());
}

TEST(FleetSessions, UserMatchesWholeNameOrRestUserPart) {
  EXPECT_TRUE(session_user_matches("alice", "alice"));
  EXPECT_TRUE(session_user_matches("1735689600:alice", "alice"));
  EXPECT_TRUE(session_user_matches("1735689600:alice", "1735689600:alice"));
  EXPECT_FALSE(session_user_matches("alice2", "alice"));
  EXPECT_FALSE(session_user_matches("1735689600:alice", "1735689600"));
  EXPECT_FALSE(session_user_matches("bob", "alice"));
}

TEST(FleetSessions, KillOrders) {
  auto k = parse_kill_order(R"({"user":"alice"})");
  ASSERT_TRUE(k);
  EXPECT_EQ(k->user, "alice");
  k = parse_kill_order(R"({"node":"edge-1","allocation":"203.0.113.1:50000"})");
  ASSERT_TRUE(k);
  EXPECT_FALSE(k->user);
  EXPECT_EQ(k->node, "edge-1");
  EXPECT_EQ(k->allocation, test::addr("203.0.113.1:50000"));
  for (const char* bad : {"", "nonsense", "[]", R"({"user":""})", R"({"user":3})", R"({"node":"n"})",
                          R"({"node":"","allocation":"1.2.3.4:5"})", R"({"node":"n","allocation":"1.2.3.4"})",
                          R"({"node":"n","allocation":"not an address"})"})
    EXPECT_FALSE(parse_kill_order(bad)) << bad;
}

}  // namespace
}  // namespace ferry::server
