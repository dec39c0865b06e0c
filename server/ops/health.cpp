#include "server/ops/health.h"

#include <cstdio>

namespace ferry::server {

std::optional<std::string> Health::liveness_problem(int64_t now_ms) const {
  if (workers_.empty()) return "no workers";
  for (size_t i = 0; i < workers_.size(); ++i) {
    const int64_t age = now_ms - workers_[i]->heartbeat_ms.get();
    if (age > kStaleMs) {
      char text[96];
      std::snprintf(text, sizeof text, "worker %zu has not ticked for %.1f s", i, static_cast<double>(age) / 1000.0);
      return std::string(text);
    }
  }
  return std::nullopt;
}

std::optional<std::string> Health::readiness_problem(int64_t now_ms) const {
  if (draining_) return "draining";
  if (!listeners_bound_) return "listeners not bound yet";
  if (auto p = liveness_problem(now_ms)) return p;
  if (database_reachable_ && !database_reachable_()) return "database unreachable";
  return std::nullopt;
}

}  // namespace ferry::server
