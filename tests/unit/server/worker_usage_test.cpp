// A worker's usage (server/worker/worker_usage.h) over a real ServerCore: the usage record of an
// allocation, the allocation-duration histogram, the top users a worker publishes and how the
// scrape merges them into a bounded ferry_user_relayed_bytes; and the sessions snapshot
// (server/worker/session_info.h), which reads the same counters.
#include "server/worker/worker_usage.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "server/ops/fleet_sessions.h"
#include "server/ops/metrics.h"
#include "server/worker/session_info.h"
#include "tests/unit/fixtures/turn_core_fixture.h"

namespace ferry::server {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;
using ::testing::Not;
using turn::testing::kPeer;
using turn::testing::TurnCoreTest;

TEST(DurationHistogram, SamplesLandInTheFirstBucketTheyFit) {
  DurationHistogram h;
  h.observe(0ms);
  h.observe(1000ms);  // on a bound: le="1"
  h.observe(1001ms);  // le="10"
  h.observe(3600s);   // le="3600"
  h.observe(48h);     // +Inf
  auto s = h.snapshot();
  EXPECT_EQ(s.counts[0], 2u);
  EXPECT_EQ(s.counts[1], 1u);
  EXPECT_EQ(s.counts[7], 1u);
  EXPECT_EQ(s.counts[DurationHistogram::kBuckets - 1], 1u);
  EXPECT_EQ(s.sum, 1000u + 1001u + 3'600'000u + 172'800'000u);
}

TEST(TopUsers, MergesWorkersAndKeepsTheKHeaviest) {
  std::vector<UserUsage> all{{"a", 10, 1}, {"b", 50, 1}, {"c", 30, 2}, {"a", 45, 1}, {"d", 30, 1}, {"e", 1, 1}};
  auto top = top_k_users(all, 3);
  ASSERT_EQ(top.size(), 3u);
  EXPECT_EQ(top[0].user, "a");  // 10 + 45 across two workers
  EXPECT_EQ(top[0].bytes, 55u);
  EXPECT_EQ(top[0].allocations, 2u);
  EXPECT_EQ(top[1].user, "b");
  EXPECT_EQ(top[2].user, "c");  // ties by name: c before d
  EXPECT_TRUE(top_k_users(all, 0).empty());
  EXPECT_EQ(top_k_users(all, 100).size(), 5u);
}

// A whole round of the worker's tick parts at once, as a second of ticks would make it.
void whole_round(WorkerUsage& u, const turn::ServerCore& core) {
  constexpr uint32_t kParts = 3;
  for (uint32_t p = 0; p < kParts; ++p) u.on_tick(core, p, kParts);
}

class WorkerUsageTest : public TurnCoreTest {
 protected:
  WorkerUsageTest() { users.add_password("carol", "carol-pw"); }
  UsageSettings settings() {
    UsageSettings s;
    s.node_id = "node-7";
    s.boot_id = "b00t";
    s.worker = 3;
    s.top_users = 2;
    return s;
  }
  // An allocation of `user` at tuple(n) that relayed `in` bytes to kPeer and `out` back.
  void relay(const std::string& user, int n, size_t in, size_t out) {
    client::TurnClient c(creds(user, user + "-pw"));
    const auto relayed = allocate_ok(c, tuple(n));
    ASSERT_EQ(permit(c, tuple(n), {kPeer}).outcome, client::Outcome::Success);
    if (in) send_indication(c, tuple(n), kPeer, std::string(in, 'i'));
    if (out) from_peer(relayed, kPeer, std::string(out, 'o'));
  }
};

TEST_F(WorkerUsageTest, RecordOfAnAllocation) {
  WorkerUsage u(nullptr, clock, nullptr, settings(), "ferry");
  relay("alice", 1, 120, 30);
  clock.advance(90s);
  const turn::Allocation* a = server().find_allocation(tuple(1));
  ASSERT_NE(a, nullptr);
  const db::UsageRecord r = u.record_of(*a, true);
  EXPECT_EQ(r.allocation_id, "node-7/b00t/3/1");
  EXPECT_EQ(r.username, "alice");
  EXPECT_EQ(r.realm, "ferry");
  EXPECT_EQ(r.node, "node-7");
  EXPECT_EQ(r.transport, "udp");
  EXPECT_EQ(r.client, tuple(1).client.to_string());
  EXPECT_EQ(r.ended_unix_ms - r.started_unix_ms, 90000);
  EXPECT_TRUE(r.final);
  EXPECT_EQ(r.bytes_in, 120u);
  EXPECT_EQ(r.bytes_out, 30u);
  EXPECT_EQ(r.packets_in, 1u);
  EXPECT_EQ(r.packets_out, 1u);
  EXPECT_EQ(r.peers, 1u);
  EXPECT_EQ(r.peer_list, std::vector<std::string>{"192.0.2.7"});
  EXPECT_EQ(u.writer_stats(), nullptr);  // no database: no writer
  u.allocation_ended(*a);
  EXPECT_EQ(u.allocation_duration().snapshot().counts[4], 1u);  // 90 s: le="300"
}

TEST_F(WorkerUsageTest, SessionSnapshotCarriesStartAndTheUsageRecordsBytes) {
  WorkerUsage u(nullptr, clock, nullptr, settings(), "ferry");
  const Instant t0 = clock.now();
  client::TurnClient c(creds("alice", "alice-pw"));
  const auto relayed = allocate_ok(c, tuple(1));
  ASSERT_EQ(permit(c, tuple(1), {kPeer}).outcome, client::Outcome::Success);
  send_indication(c, tuple(1), kPeer, std::string(120, 'i'));
  from_peer(relayed, kPeer, std::string(30, 'o'));
  clock.advance(90s);
  const turn::Allocation* a = server().find_allocation(tuple(1));
  ASSERT_NE(a, nullptr);
  const SessionInfo s = session_info_of(*a);
  const db::UsageRecord r = u.record_of(*a, false);
  EXPECT_EQ(s.username, "alice");
  EXPECT_EQ(s.tuple, tuple(1));
  EXPECT_EQ(s.relayed, std::vector<stun::TransportAddress>{relayed});
  EXPECT_EQ(s.permissions, 1u);
  EXPECT_EQ(s.started, t0);
  EXPECT_EQ(s.expires, a->expires);
  // The same counters as the usage record, in the same directions.
  EXPECT_EQ(s.bytes_in, 120u);
  EXPECT_EQ(s.bytes_out, 30u);
  EXPECT_EQ(s.bytes_in, r.bytes_in);
  EXPECT_EQ(s.bytes_out, r.bytes_out);

  // More traffic shows in the next snapshot, not in the one already taken.
  send_indication(c, tuple(1), kPeer, std::string(80, 'i'));
  auto row = nlohmann::json::parse(session_rows_json({s, session_info_of(*a)}, clock.now()));
  ASSERT_EQ(row.size(), 2u);
  EXPECT_EQ(row[0]["bytes_in"], 120u);
  EXPECT_EQ(row[1]["bytes_in"], 200u);
  EXPECT_EQ(row[1]["age_ms"], 90'000);
}

TEST_F(WorkerUsageTest, TopUsersAreBoundedAndTheScrapeShowsNoMore) {
  WorkerUsage u(nullptr, clock, nullptr, settings(), "ferry");
  relay("alice", 1, 100, 0);
  relay("alice", 2, 100, 50);  // alice: 250 over two allocations
  relay("bob", 3, 400, 0);
  relay("carol", 4, 10, 0);
  whole_round(u, server());
  auto top = u.top_users().snapshot();
  ASSERT_EQ(top.size(), 2u);  // usage.top_users
  EXPECT_EQ(top[0].user, "bob");
  EXPECT_EQ(top[0].bytes, 400u);
  EXPECT_EQ(top[1].user, "alice");
  EXPECT_EQ(top[1].bytes, 250u);
  EXPECT_EQ(top[1].allocations, 2u);

  turn::ServerStats core;
  ShellStats shell;
  MetricsCollector m({{&core, &shell, nullptr, &u}}, "1", nullptr, 2);
  const std::string text = render_metrics(m);
  EXPECT_THAT(text, HasSubstr("ferry_user_relayed_bytes{user=\"bob\"} 400"));
  EXPECT_THAT(text, HasSubstr("ferry_user_relayed_bytes{user=\"alice\"} 250"));
  EXPECT_THAT(text, HasSubstr("ferry_user_allocations{user=\"alice\"} 2"));
  EXPECT_THAT(text, Not(HasSubstr("user=\"carol\"")));
  EXPECT_THAT(text, HasSubstr("ferry_allocation_duration_seconds_count 0"));
  EXPECT_THAT(text, HasSubstr("ferry_usage_records_dropped_total 0"));

  // The allocations end: the next second's list is empty.
  server().close_user("alice");
  server().close_user("bob");
  server().close_user("carol");
  whole_round(u, server());
  EXPECT_TRUE(u.top_users().snapshot().empty());
}

// The walk for the top users is spread over the tick's parts: each part sees its share of the
// allocations, every allocation is seen once a round, and the list is published when a round ends
// (an allocation that ends between two parts leaves no dangling name behind).
TEST_F(WorkerUsageTest, TopUsersWalkIsSpreadOverTheTickParts) {
  WorkerUsage u(nullptr, clock, nullptr, settings(), "ferry");
  for (int n = 1; n <= 40; ++n) relay(n % 2 ? "alice" : "bob", n, 10, 0);
  constexpr uint32_t kParts = 10;
  size_t seen = 0;
  for (uint32_t p = 0; p < kParts; ++p) {
    size_t in_part = 0;
    server().for_each_allocation_in_part(p, kParts, [&](const turn::Allocation&) { ++in_part; });
    EXPECT_LT(in_part, 40u) << "part " << p << " walked everything";
    seen += in_part;
  }
  EXPECT_EQ(seen, 40u);

  for (uint32_t p = 0; p + 1 < kParts; ++p) u.on_tick(server(), p, kParts);
  EXPECT_TRUE(u.top_users().snapshot().empty()) << "published before the round ended";
  server().close_user("bob");  // between two parts
  u.on_tick(server(), kParts - 1, kParts);
  auto top = u.top_users().snapshot();
  ASSERT_FALSE(top.empty());
  EXPECT_EQ(top[0].user, "alice");
  EXPECT_EQ(top[0].allocations, 20u);
  EXPECT_EQ(top[0].bytes, 200u);

  for (uint32_t p = 0; p < kParts; ++p) u.on_tick(server(), p, kParts);  // the next round: bob is gone
  top = u.top_users().snapshot();
  ASSERT_EQ(top.size(), 1u);
  EXPECT_EQ(top[0].user, "alice");
}

TEST_F(WorkerUsageTest, InterimRecordsAreSpreadOverTheInterval) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  {
    db::PgPoolOptions po;
    po.conninfo = "postgresql://postgres@127.0.0.1:1/postgres";  // never started: records only queue
    po.log = [](db::LogLevel, std::string_view) {};
    db::PgPool pool(&loop, po);
    UsageSettings s = settings();
    s.interval = 4s;
    WorkerUsage u(&loop, clock, &pool, s, "ferry");
    ASSERT_NE(u.writer_stats(), nullptr);
    for (int n = 1; n <= 8; ++n) relay(n % 2 ? "alice" : "bob", n, 10, 0);
    whole_round(u, server());
    EXPECT_EQ(u.writer_stats()->queued.get(), 0) << "younger than an interval: no interim record yet";
    clock.advance(5s);
    std::vector<int64_t> queued;
    for (int i = 0; i < 4; ++i) {
      whole_round(u, server());
      queued.push_back(u.writer_stats()->queued.get());
    }
    // A quarter of the allocations each second (serials 1..8 over 4 slots), all of them once.
    EXPECT_EQ(queued, (std::vector<int64_t>{2, 4, 6, 8}));
    whole_round(u, server());  // the next round replaces the records still waiting
    EXPECT_EQ(u.writer_stats()->queued.get(), 8);
    const turn::Allocation* a = server().find_allocation(tuple(1));
    ASSERT_NE(a, nullptr);
    u.allocation_ended(*a);  // the final record replaces the waiting interim one
    EXPECT_EQ(u.writer_stats()->queued.get(), 8);
    u.stop();
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  EXPECT_EQ(uv_loop_close(&loop), 0);
}

}  // namespace
}  // namespace ferry::server
