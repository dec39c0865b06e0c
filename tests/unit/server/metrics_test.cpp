// The scrape side of the metrics: the latency histogram's buckets, the collector's sums over
// workers, and the exposition text (also checked with `promtool check metrics` when installed).
#include "server/ops/metrics.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include <unistd.h>

#include "server/worker/bucket_histogram.h"
#include "turn/five_tuple.h"

namespace ferry::server {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;
using ::testing::Not;
using turn::idx;

TEST(LatencyHistogram, SamplesLandInTheFirstBucketTheyFit) {
  LatencyHistogram h;
  h.observe(0us);
  h.observe(500us);  // on a bound: le="0.0005"
  h.observe(501us);  // next bucket
  h.observe(3s);     // 5 s bucket
  h.observe(60s);    // +Inf
  h.observe(-5us);   // clamped to 0
  auto s = h.snapshot();
  EXPECT_EQ(s.counts[0], 3u);
  EXPECT_EQ(s.counts[1], 1u);
  EXPECT_EQ(s.counts[12], 1u);
  EXPECT_EQ(s.counts[LatencyHistogram::kBuckets - 1], 1u);
  EXPECT_EQ(s.count(), 6u);
  EXPECT_EQ(s.sum, 500u + 501u + 3'000'000u + 60'000'000u);
}

TEST(DatabaseStats, ObserveCountsByStatus) {
  DatabaseStats d;
  d.observe(db::QueryStats{"lookup", db::QueryStatus::Ok, 0us, 1200us});
  d.observe(db::QueryStats{"lookup", db::QueryStatus::Timeout, 0us, 2s});
  EXPECT_EQ(d.queries[0].get(), 1u);
  EXPECT_EQ(d.queries[2].get(), 1u);
  EXPECT_EQ(d.query_duration.snapshot().count(), 2u);
  d.set_connections(2, 1);
  EXPECT_EQ(d.connections_up.get(), 2);
  EXPECT_EQ(d.connections_down.get(), 1);
}

struct TwoWorkers {
  turn::ServerStats core[2];
  ShellStats shell[2];
  DatabaseStats db[2];
  std::atomic<bool> draining{false};
  MetricsCollector collector() {
    return MetricsCollector({{&core[0], &shell[0], &db[0]}, {&core[1], &shell[1], nullptr}}, "1.2.3", &draining);
  }
};

TEST(Metrics, SumsEveryWorker) {
  TwoWorkers w;
  w.core[0].allocations_created.add(3);
  w.core[1].allocations_created.add(4);
  w.core[0].allocations_active[idx(turn::Transport::Udp)][idx(turn::AllocationFamily::V4)].add(2);
  w.core[1].allocations_active[idx(turn::Transport::Udp)][idx(turn::AllocationFamily::V4)].add(1);
  w.core[1].allocations_active[idx(turn::Transport::Tcp)][idx(turn::AllocationFamily::Dual)].add(1);
  w.core[0].relayed(turn::Direction::ClientToPeer, 100);
  w.core[1].relayed(turn::Direction::ClientToPeer, 50);
  w.core[1].drop(turn::DropReason::NoPermission);
  w.core[0].allocations_refused[508].add();
  w.core[1].allocations_refused[299].add();  // not in the always-listed set: shown once non-zero
  w.core[0].responses[idx(turn::RequestMethod::Binding)][idx(turn::RequestResult::Success)].add(7);
  w.core[0].auth_failed(turn::AuthFailure::BadIntegrity);
  w.shell[0].tcp_frames_dropped.set(2);
  w.shell[1].client_send_dropped.add(1);
  w.shell[1].tcp_connections.set(5);
  w.shell[0].tls_connections.set(2);
  w.shell[1].tls_connections.set(1);
  w.shell[0].dtls_sessions.set(4);
  w.db[0].observe(db::QueryStats{"", db::QueryStatus::Ok, 0us, 1500us});
  w.db[0].set_connections(1, 0);
  w.shell[0].loop_busy_io.observe(20us);
  w.shell[1].loop_busy_io.observe(300us);
  w.shell[1].loop_busy_timers.observe(2ms);
  w.draining = true;

  const std::string text = render_metrics(w.collector());
  EXPECT_THAT(text, HasSubstr("ferry_build_info{version=\"1.2.3\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("ferry_workers 2\n"));
  EXPECT_THAT(text, HasSubstr("ferry_draining 1\n"));
  EXPECT_THAT(text, HasSubstr("ferry_allocations_created_total 7\n"));
  EXPECT_THAT(text, HasSubstr("ferry_allocations_active{transport=\"udp\",family=\"ipv4\"} 3\n"));
  EXPECT_THAT(text, HasSubstr("ferry_allocations_active{transport=\"tcp\",family=\"dual\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("ferry_allocations_active{transport=\"udp\",family=\"ipv6\"} 0\n"));
  EXPECT_THAT(text, HasSubstr("ferry_relayed_bytes_total{direction=\"client_to_peer\"} 150\n"));
  EXPECT_THAT(text, HasSubstr("ferry_relayed_packets_total{direction=\"client_to_peer\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("ferry_dropped_packets_total{reason=\"no_permission\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("ferry_dropped_packets_total{reason=\"back_pressure\"} 3\n"));
  EXPECT_THAT(text, HasSubstr("ferry_allocations_refused_total{code=\"508\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("ferry_allocations_refused_total{code=\"486\"} 0\n"));
  EXPECT_THAT(text, HasSubstr("ferry_allocations_refused_total{code=\"299\"} 1\n"));
  EXPECT_THAT(text, Not(HasSubstr("code=\"298\"")));
  EXPECT_THAT(text, HasSubstr("ferry_requests_total{method=\"binding\",result=\"success\"} 7\n"));
  EXPECT_THAT(text, HasSubstr("ferry_auth_failures_total{reason=\"bad_integrity\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("ferry_connections_active{transport=\"tcp\"} 5\n"));
  EXPECT_THAT(text, HasSubstr("ferry_connections_active{transport=\"tls\"} 3\n"));
  EXPECT_THAT(text, HasSubstr("ferry_connections_active{transport=\"dtls\"} 4\n"));
  EXPECT_THAT(text, HasSubstr("ferry_database_connections{state=\"up\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("ferry_database_queries_total{status=\"ok\"} 1\n"));
  // Cumulative buckets in seconds; the sample of 1.5 ms is in le=0.0025 and above.
  EXPECT_THAT(text, HasSubstr("ferry_database_query_duration_seconds_bucket{le=\"0.001\"} 0\n"));
  EXPECT_THAT(text, HasSubstr("ferry_database_query_duration_seconds_bucket{le=\"0.0025\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("ferry_database_query_duration_seconds_bucket{le=\"+Inf\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("ferry_database_query_duration_seconds_count 1\n"));
  EXPECT_THAT(text, HasSubstr("ferry_database_query_duration_seconds_sum 0.0015\n"));
  EXPECT_THAT(text, HasSubstr("# TYPE ferry_allocations_created_total counter\n"));
  EXPECT_THAT(text, HasSubstr("# TYPE ferry_database_query_duration_seconds histogram\n"));
  // Loop turns of both workers, by phase.
  EXPECT_THAT(text, HasSubstr("ferry_loop_busy_seconds_bucket{phase=\"io\",le=\"2.5e-05\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("ferry_loop_busy_seconds_bucket{phase=\"io\",le=\"0.0005\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("ferry_loop_busy_seconds_count{phase=\"io\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("ferry_loop_busy_seconds_bucket{phase=\"timers\",le=\"0.001\"} 0\n"));
  EXPECT_THAT(text, HasSubstr("ferry_loop_busy_seconds_bucket{phase=\"timers\",le=\"0.0025\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("ferry_allocation_duration_seconds_bucket{le=\"86400\"} 0\n"));
}

// Prometheus' own linter: names, units, _total suffixes, HELP/TYPE, histogram shape.
TEST(Metrics, PassesPromtoolCheckMetrics) {
  if (!std::filesystem::exists("/usr/bin/promtool"))
    GTEST_SKIP() << "promtool not installed (Debian package prometheus)";
  TwoWorkers w;
  w.core[0].allocations_created.add();
  w.core[0].errors_sent[401].add();
  w.db[0].observe(db::QueryStats{"", db::QueryStatus::Ok, 0us, 1500us});
  const std::string text = render_metrics(w.collector());
  const auto path = std::filesystem::temp_directory_path() / ("ferry-metrics-" + std::to_string(::getpid()) + ".txt");
  {
    std::ofstream out(path);
    out << text;
  }
  const std::string cmd = "/usr/bin/promtool check metrics < " + path.string() + " 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string output;
  char buf[512];
  while (std::fgets(buf, sizeof buf, p) != nullptr) output += buf;
  const int status = ::pclose(p);
  std::filesystem::remove(path);
  EXPECT_EQ(status, 0) << output;
  EXPECT_EQ(output, "") << "promtool has remarks";
}

}  // namespace
}  // namespace ferry::server
