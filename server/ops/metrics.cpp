#include "server/ops/metrics.h"

#include <algorithm>
#include <iterator>
#include <limits>
#include <sstream>

#include <prometheus/text_serializer.h>

namespace ferry::server {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;
using turn::idx;

namespace {

// Label values, indexed like the enums in turn/server_stats.h.
constexpr const char* kTransports[] = {"udp", "tcp", "tls", "dtls"};
constexpr const char* kFamilies[] = {"ipv4", "ipv6", "dual"};
constexpr const char* kMethods[] = {"binding", "allocate", "refresh", "create_permission", "channel_bind", "other"};
constexpr const char* kResults[] = {"success", "error"};
constexpr const char* kDirections[] = {"client_to_peer", "peer_to_client"};
constexpr const char* kAuthFailures[] = {"missing_credentials", "bad_nonce",  "unknown_user", "bad_integrity",
                                         "store_unavailable",   "wrong_user", "bad_token"};
constexpr const char* kQueryStatuses[] = {"ok", "error", "timeout", "unavailable"};
// Allocate error codes reported even while zero, so rate() sees their first increment.
constexpr uint16_t kAllocateCodes[] = {300, 400, 420, 437, 440, 442, 486, 500, 508};

static_assert(std::size(kTransports) == turn::kTransportCount);
static_assert(std::size(kFamilies) == idx(turn::AllocationFamily::Count));
static_assert(std::size(kMethods) == idx(turn::RequestMethod::Count));
static_assert(std::size(kResults) == idx(turn::RequestResult::Count));
static_assert(std::size(kDirections) == idx(turn::Direction::Count));
static_assert(std::size(kAuthFailures) == idx(turn::AuthFailure::Count));
static_assert(std::size(kQueryStatuses) == DatabaseStats::kStatuses);

using Labels = std::vector<ClientMetric::Label>;

MetricFamily family(std::string name, std::string help, MetricType type) {
  return MetricFamily{std::move(name), std::move(help), type, {}};
}

void add_value(MetricFamily& f, Labels labels, double v) {
  ClientMetric m;
  m.label = std::move(labels);
  if (f.type == MetricType::Counter) m.counter.value = v;
  else m.gauge.value = v;
  f.metric.push_back(std::move(m));
}

// One histogram series from a BucketHistogram's snapshot, its bounds printed in seconds.
template <class H>
void add_histogram(MetricFamily& f, Labels labels, const typename H::Snapshot& s) {
  ClientMetric m;
  m.label = std::move(labels);
  uint64_t cumulative = 0;
  for (size_t i = 0; i < H::kBuckets; ++i) {
    cumulative += s.counts[i];
    const double bound = i < H::kBounds.size() ? static_cast<double>(H::kBounds[i]) * H::kUnitSeconds
                                               : std::numeric_limits<double>::infinity();
    m.histogram.bucket.push_back({cumulative, bound});
  }
  m.histogram.sample_count = cumulative;
  m.histogram.sample_sum = static_cast<double>(s.sum) * H::kUnitSeconds;
  f.metric.push_back(std::move(m));
}

template <class F>
double sum(const std::vector<WorkerStatsView>& ws, F&& get) {
  double total = 0;
  for (const auto& w : ws) total += static_cast<double>(get(w));
  return total;
}

}  // namespace

MetricsCollector::MetricsCollector(std::vector<WorkerStatsView> workers, std::string version,
                                   const std::atomic<bool>* draining, size_t top_users)
    : workers_(std::move(workers)), version_(std::move(version)), draining_(draining), top_users_(top_users) {}

std::vector<MetricFamily> MetricsCollector::Collect() const {
  const auto& ws = workers_;
  std::vector<MetricFamily> out;
  auto counter = [&](const char* name, const char* help, auto&& get) {
    auto f = family(name, help, MetricType::Counter);
    add_value(f, {}, sum(ws, get));
    out.push_back(std::move(f));
  };
  auto gauge = [&](const char* name, const char* help, double v) {
    auto f = family(name, help, MetricType::Gauge);
    add_value(f, {}, v);
    out.push_back(std::move(f));
  };

  {
    auto f = family("ferry_build_info", "Build information; the value is always 1.", MetricType::Gauge);
    add_value(f, {{"version", version_}}, 1);
    out.push_back(std::move(f));
  }
  gauge("ferry_workers", "Worker threads (event loops).", static_cast<double>(ws.size()));
  gauge("ferry_draining", "1 while the server drains after SIGTERM, else 0.",
        draining_ != nullptr && draining_->load() ? 1 : 0);

  // ---- allocations ----
  {
    auto f = family("ferry_allocations_active", "Allocations now, by client transport and relayed address family.",
                    MetricType::Gauge);
    for (size_t t = 0; t < turn::kTransportCount; ++t)
      for (size_t fam = 0; fam < idx(turn::AllocationFamily::Count); ++fam)
        add_value(f, {{"transport", kTransports[t]}, {"family", kFamilies[fam]}},
                  sum(ws, [&](const WorkerStatsView& w) { return w.core->allocations_active[t][fam].get(); }));
    out.push_back(std::move(f));
  }
  counter("ferry_allocations_created_total", "Allocations created.",
          [](const WorkerStatsView& w) { return w.core->allocations_created.get(); });
  counter("ferry_allocations_expired_total", "Allocations that ended because their lifetime ran out.",
          [](const WorkerStatsView& w) { return w.core->allocations_expired.get(); });
  counter("ferry_allocations_deleted_total",
          "Allocations ended by the client (Refresh with lifetime 0, or its TCP connection closed) or revoked.",
          [](const WorkerStatsView& w) { return w.core->allocations_deleted.get(); });
  counter("ferry_allocations_moved_total",
          "Allocations moved to a client's new address by a Refresh with its MOBILITY-TICKET (RFC 8016).",
          [](const WorkerStatsView& w) { return w.core->allocations_moved.get(); });
  {
    auto f = family("ferry_allocations_refused_total",
                    "Allocate requests answered with an error, by STUN error code (not counting the 401/438 "
                    "challenges of the normal authentication exchange).",
                    MetricType::Counter);
    for (uint16_t code = 0; code < 700; ++code) {
      const double v = sum(ws, [&](const WorkerStatsView& w) { return w.core->allocations_refused[code].get(); });
      const bool listed =
          std::find(std::begin(kAllocateCodes), std::end(kAllocateCodes), code) != std::end(kAllocateCodes);
      if (listed || v != 0) add_value(f, {{"code", std::to_string(code)}}, v);
    }
    out.push_back(std::move(f));
  }

  {
    DurationHistogram::Snapshot total;
    for (const auto& w : ws)
      if (w.usage != nullptr) total += w.usage->allocation_duration().snapshot();
    auto f = family("ferry_allocation_duration_seconds", "How long allocations lived, observed when they end.",
                    MetricType::Histogram);
    add_histogram<DurationHistogram>(f, {}, total);
    out.push_back(std::move(f));
  }

  {
    // Summed over the workers: a turn is a turn, whichever loop made it.
    LoopBusyHistogram::Snapshot timers, io;
    for (const auto& w : ws) {
      timers += w.shell->loop_busy_timers.snapshot();
      io += w.shell->loop_busy_io.snapshot();
    }
    auto f = family("ferry_loop_busy_seconds",
                    "Work done in one turn of a worker's event loop, between two waits for I/O, by phase: timers "
                    "(the allocation walk, usage records, sweeps) and io (packets, requests, database answers). "
                    "A packet arriving during a long turn waits it out.",
                    MetricType::Histogram);
    add_histogram<LoopBusyHistogram>(f, {{"phase", "timers"}}, timers);
    add_histogram<LoopBusyHistogram>(f, {{"phase", "io"}}, io);
    out.push_back(std::move(f));
  }

  // ---- per user, bounded: the top_users_ heaviest users of the live allocations ----
  {
    // Each worker publishes its own top list once a second; merged here. A user spread thinly over
    // many workers may be missed by every worker's list; the bound on labels holds regardless.
    std::vector<UserUsage> all;
    for (const auto& w : ws)
      if (w.usage != nullptr) {
        auto top = w.usage->top_users().snapshot();
        std::move(top.begin(), top.end(), std::back_inserter(all));
      }
    auto bytes = family("ferry_user_relayed_bytes",
                        "Payload bytes relayed both ways by the live allocations of the heaviest users (at most "
                        "usage.top_users of them; updated every second).",
                        MetricType::Gauge);
    auto allocs = family("ferry_user_allocations", "Live allocations of the users in ferry_user_relayed_bytes.",
                         MetricType::Gauge);
    for (const auto& u : top_k_users(std::move(all), top_users_)) {
      add_value(bytes, {{"user", u.user}}, static_cast<double>(u.bytes));
      add_value(allocs, {{"user", u.user}}, static_cast<double>(u.allocations));
    }
    out.push_back(std::move(bytes));
    out.push_back(std::move(allocs));
  }

  // ---- usage records (with a database) ----
  {
    auto usage_counter = [&](const char* name, const char* help, auto&& get) {
      counter(name, help, [&](const WorkerStatsView& w) -> uint64_t {
        const db::UsageStats* s = w.usage != nullptr ? w.usage->writer_stats() : nullptr;
        return s != nullptr ? get(*s) : 0;
      });
    };
    usage_counter("ferry_usage_records_written_total", "Usage records the database took.",
                  [](const db::UsageStats& s) { return s.written.get(); });
    usage_counter("ferry_usage_records_dropped_total",
                  "Usage records lost because the buffer (usage.queue_size per worker) was full.",
                  [](const db::UsageStats& s) { return s.dropped.get(); });
    usage_counter("ferry_usage_batches_failed_total",
                  "Batches of usage records the database did not take (down, timeout, error); they are retried.",
                  [](const db::UsageStats& s) { return s.failed_batches.get(); });
    gauge("ferry_usage_records_queued", "Usage records buffered, waiting for the database.",
          sum(ws, [](const WorkerStatsView& w) -> int64_t {
            const db::UsageStats* s = w.usage != nullptr ? w.usage->writer_stats() : nullptr;
            return s != nullptr ? s->queued.get() : 0;
          }));
  }

  // ---- requests and authentication ----
  {
    auto f = family("ferry_requests_total", "STUN/TURN requests answered, by method and result.", MetricType::Counter);
    for (size_t m = 0; m < idx(turn::RequestMethod::Count); ++m)
      for (size_t r = 0; r < idx(turn::RequestResult::Count); ++r)
        add_value(f, {{"method", kMethods[m]}, {"result", kResults[r]}},
                  sum(ws, [&](const WorkerStatsView& w) { return w.core->responses[m][r].get(); }));
    out.push_back(std::move(f));
  }
  {
    auto f = family("ferry_error_responses_total", "Error responses sent, by STUN error code.", MetricType::Counter);
    for (uint16_t code = 0; code < 700; ++code) {
      const double v = sum(ws, [&](const WorkerStatsView& w) { return w.core->errors_sent[code].get(); });
      if (v != 0) add_value(f, {{"code", std::to_string(code)}}, v);
    }
    out.push_back(std::move(f));
  }
  {
    auto f = family("ferry_auth_failures_total",
                    "Requests that failed authentication, by reason (missing_credentials is the first, "
                    "unauthenticated request of every normal exchange).",
                    MetricType::Counter);
    for (size_t r = 0; r < idx(turn::AuthFailure::Count); ++r)
      add_value(f, {{"reason", kAuthFailures[r]}},
                sum(ws, [&](const WorkerStatsView& w) { return w.core->auth_failures[r].get(); }));
    out.push_back(std::move(f));
  }

  // ---- relayed data ----
  // A counter family by direction, from one of the core's per-direction arrays.
  auto by_direction = [&](const char* name, const char* help, auto member) {
    auto f = family(name, help, MetricType::Counter);
    for (size_t d = 0; d < idx(turn::Direction::Count); ++d)
      add_value(f, {{"direction", kDirections[d]}},
                sum(ws, [&](const WorkerStatsView& w) { return ((*w.core).*member)[d].get(); }));
    out.push_back(std::move(f));
  };
  by_direction("ferry_relayed_packets_total", "Packets relayed, by direction.", &turn::ServerStats::relayed_packets);
  by_direction("ferry_relayed_bytes_total", "Payload bytes relayed, by direction.", &turn::ServerStats::relayed_bytes);
  // data_path kernel: the kernel's share of the above, read back about once a second.
  by_direction("ferry_fastpath_relayed_packets_total",
               "Packets the kernel fast path relayed (included in ferry_relayed_packets_total), by direction; "
               "counted when read back, about once a second.",
               &turn::ServerStats::fast_path_packets);
  by_direction("ferry_fastpath_relayed_bytes_total",
               "Payload bytes the kernel fast path relayed (included in ferry_relayed_bytes_total).",
               &turn::ServerStats::fast_path_bytes);
  gauge("ferry_fastpath_channels", "Channels the kernel fast path relays now (data_path kernel).",
        sum(ws, [](const WorkerStatsView& w) { return w.core->fast_path_channels.get(); }));
  {
    auto f = family("ferry_dropped_packets_total",
                    "Packets not relayed or answered, by reason. back_pressure: TCP frames over a connection's "
                    "write budget and UDP datagrams the kernel would not take (full socket buffer).",
                    MetricType::Counter);
    // turn::DropReason, in its order, then the shell's own.
    constexpr const char* kCoreReasons[] = {"no_allocation", "no_permission", "policy",      "bandwidth",
                                            "malformed",     "no_channel",    "rate_limited"};
    static_assert(std::size(kCoreReasons) == idx(turn::DropReason::Count));
    for (size_t r = 0; r < idx(turn::DropReason::Count); ++r)
      add_value(f, {{"reason", kCoreReasons[r]}},
                sum(ws, [&](const WorkerStatsView& w) { return w.core->dropped[r].get(); }));
    add_value(f, {{"reason", "back_pressure"}}, sum(ws, [](const WorkerStatsView& w) {
                return w.shell->client_send_dropped.get() + w.shell->peer_send_dropped.get() +
                       static_cast<uint64_t>(w.shell->tcp_frames_dropped.get());
              }));
    out.push_back(std::move(f));
  }
  counter("ferry_receive_errors_total", "Socket receive errors.",
          [](const WorkerStatsView& w) { return w.shell->receive_errors.get(); });

  // ---- permissions, channels, connections ----
  gauge("ferry_permissions_active", "Permissions installed now (RFC 8656 §9).",
        sum(ws, [](const WorkerStatsView& w) { return w.core->permissions_active.get(); }));
  gauge("ferry_channels_active", "Channel bindings live now (RFC 8656 §12).",
        sum(ws, [](const WorkerStatsView& w) { return w.core->channels_active.get(); }));
  counter("ferry_permissions_created_total", "Permissions installed.",
          [](const WorkerStatsView& w) { return w.core->permissions_created.get(); });
  counter("ferry_channels_bound_total", "Channel bindings made.",
          [](const WorkerStatsView& w) { return w.core->channels_bound.get(); });
  gauge("ferry_tcp_peer_connections_active",
        "RFC 6062 peer data connections of TCP allocations now: connecting, waiting for ConnectionBind, or bound.",
        sum(ws, [](const WorkerStatsView& w) { return w.core->tcp_connections_active.get(); }));
  counter("ferry_tcp_peer_connections_opened_total",
          "RFC 6062 peer data connections established (Connect succeeded, or a permitted peer connected).",
          [](const WorkerStatsView& w) { return w.core->tcp_connections_opened.get(); });
  {
    auto f = family("ferry_connections_active",
                    "Client connections (TCP, TLS) and DTLS sessions open now, by transport.", MetricType::Gauge);
    add_value(f, {{"transport", "tcp"}},
              sum(ws, [](const WorkerStatsView& w) { return w.shell->tcp_connections.get(); }));
    add_value(f, {{"transport", "tls"}},
              sum(ws, [](const WorkerStatsView& w) { return w.shell->tls_connections.get(); }));
    add_value(f, {{"transport", "dtls"}},
              sum(ws, [](const WorkerStatsView& w) { return w.shell->dtls_sessions.get(); }));
    out.push_back(std::move(f));
  }

  {
    auto f = family("ferry_proxy_protocol_refused_total",
                    "TCP/TLS connections closed by a PROXY protocol listener: from outside trusted_proxies "
                    "(untrusted), or without a valid header of the listener's version (bad_header).",
                    MetricType::Counter);
    add_value(f, {{"reason", "untrusted"}},
              sum(ws, [](const WorkerStatsView& w) { return w.shell->proxy_untrusted.get(); }));
    add_value(f, {{"reason", "bad_header"}},
              sum(ws, [](const WorkerStatsView& w) { return w.shell->proxy_bad_header.get(); }));
    out.push_back(std::move(f));
  }

  // ---- database ----
  {
    LatencyHistogram::Snapshot total;
    for (const auto& w : ws)
      if (w.database != nullptr) total += w.database->query_duration.snapshot();
    auto f = family("ferry_database_query_duration_seconds", "Database query latency, from submission to answer.",
                    MetricType::Histogram);
    add_histogram<LatencyHistogram>(f, {}, total);
    out.push_back(std::move(f));
  }
  {
    auto f = family("ferry_database_queries_total", "Database queries, by outcome.", MetricType::Counter);
    for (size_t s = 0; s < DatabaseStats::kStatuses; ++s)
      add_value(f, {{"status", kQueryStatuses[s]}}, sum(ws, [&](const WorkerStatsView& w) {
                  return w.database != nullptr ? w.database->queries[s].get() : 0;
                }));
    out.push_back(std::move(f));
  }
  {
    auto f = family("ferry_database_connections", "Database connections, by state (0 and 0 without a database).",
                    MetricType::Gauge);
    add_value(f, {{"state", "up"}}, sum(ws, [](const WorkerStatsView& w) {
                return w.database != nullptr ? w.database->connections_up.get() : 0;
              }));
    add_value(f, {{"state", "down"}}, sum(ws, [](const WorkerStatsView& w) {
                return w.database != nullptr ? w.database->connections_down.get() : 0;
              }));
    out.push_back(std::move(f));
  }
  return out;
}

std::string render_metrics(const prometheus::Collectable& c) {
  std::ostringstream s;
  prometheus::TextSerializer().Serialize(s, c.Collect());
  return s.str();
}

}  // namespace ferry::server
