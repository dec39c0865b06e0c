// /healthz and /readyz. Liveness: every worker loop has ticked recently (its 1 s timer stamps
// ShellStats::heartbeat_ms). Readiness: alive, every listener bound, the database reachable when
// one is configured, and not draining. Read from the HTTP threads; set from main.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "server/worker/shell_stats.h"

namespace ferry::server {

class Health {
 public:
  // A loop whose last tick is older than this is stuck (ticks are 1 s apart).
  static constexpr int64_t kStaleMs = 5000;

  // Before the HTTP server starts; the stats outlive it.
  void set_workers(std::vector<const ShellStats*> workers) { workers_ = std::move(workers); }
  // Before the HTTP server starts; called from HTTP threads, so it must be thread-safe and quick
  // (read state the workers publish; never query the database from here). Unset: no database.
  void set_database_check(std::function<bool()> reachable) { database_reachable_ = std::move(reachable); }

  void set_listeners_bound(bool bound) { listeners_bound_ = bound; }
  void set_draining(bool draining) { draining_ = draining; }
  bool draining() const { return draining_; }
  const std::atomic<bool>& draining_flag() const { return draining_; }

  // nullopt when alive, else why not ("worker 1 has not ticked for 7.2 s").
  std::optional<std::string> liveness_problem(int64_t now_ms) const;
  // nullopt when ready, else why not ("draining", "database unreachable", ...).
  std::optional<std::string> readiness_problem(int64_t now_ms) const;

 private:
  std::vector<const ShellStats*> workers_;
  std::function<bool()> database_reachable_;
  std::atomic<bool> listeners_bound_{false};
  std::atomic<bool> draining_{false};
};

}  // namespace ferry::server
