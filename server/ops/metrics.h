// Prometheus metrics, built at scrape time: the counters stay where the workers keep them
// (turn::ServerStats, ShellStats, DatabaseStats: per-worker, single-writer relaxed atomics) and a
// scrape reads and sums them. Nothing on the data path knows about Prometheus.
//
// Names follow the Prometheus conventions: `ferry_` prefix, `_total` for counters, base units
// (bytes, seconds). The full list is in metrics.cpp and in the README's Operations section.
#pragma once

#include <atomic>
#include <string>
#include <vector>

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

#include "server/worker/database_stats.h"
#include "server/worker/shell_stats.h"
#include "server/worker/worker_usage.h"
#include "turn/server_stats.h"

namespace ferry::server {

// What one worker exposes to the scrape. The pointed-to stats outlive the collector.
struct WorkerStatsView {
  const turn::ServerStats* core = nullptr;
  const ShellStats* shell = nullptr;
  const DatabaseStats* database = nullptr;  // may be null: no database metrics from this worker
  const WorkerUsage* usage = nullptr;       // may be null: no usage metrics from this worker
};

class MetricsCollector final : public prometheus::Collectable {
 public:
  // `draining` (may be null) is read at every scrape for ferry_draining. `top_users`: how many users
  // ferry_user_relayed_bytes shows at most (usage.top_users).
  MetricsCollector(std::vector<WorkerStatsView> workers, std::string version,
                   const std::atomic<bool>* draining = nullptr, size_t top_users = 10);
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  std::vector<WorkerStatsView> workers_;
  std::string version_;
  const std::atomic<bool>* draining_;
  size_t top_users_;
};

// The text exposition format (version 0.0.4) of everything `c` collects.
std::string render_metrics(const prometheus::Collectable& c);

}  // namespace ferry::server
