// One worker's view of its database pool, for the metrics endpoint: query latencies and outcomes
// (fed from db::PgPool::set_query_hook on the worker's loop) and how many connections are up
// (set by the worker from PgPool::connected_count()). Single writer: that loop.
#pragma once

#include <array>

#include "db/pg_connection.h"
#include "server/worker/bucket_histogram.h"
#include "turn/server_stats.h"

namespace ferry::server {

struct DatabaseStats {
  static constexpr size_t kStatuses = 4;  // db::QueryStatus: ok, error, timeout, unavailable

  LatencyHistogram query_duration;         // query() to answer
  std::array<Counter, kStatuses> queries;  // by db::QueryStatus
  Gauge connections_up;                    // connected (ready or busy)
  Gauge connections_down;                  // configured but not connected

  // For PgPool::set_query_hook: pool.set_query_hook([&s](const db::QueryStats& q) { s.observe(q); }).
  void observe(const db::QueryStats& q) {
    query_duration.observe(q.total);
    const auto i = static_cast<size_t>(q.status);
    if (i < kStatuses) queries[i].add();
  }
  void set_connections(size_t up, size_t down) {
    connections_up.set(static_cast<int64_t>(up));
    connections_down.set(static_cast<int64_t>(down));
  }
};

}  // namespace ferry::server
