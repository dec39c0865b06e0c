#include "server/ops/fleet_sessions.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>

namespace ferry::server {

std::string session_rows_json(const std::vector<SessionInfo>& sessions, Instant now, size_t max_rows,
                              size_t* left_out) {
  using std::chrono::duration_cast;
  using std::chrono::milliseconds;
  using std::chrono::seconds;
  nlohmann::json rows = nlohmann::json::array();
  size_t dropped = 0;
  for (const auto& s : sessions) {
    if (s.relayed.empty()) continue;  // not allocated yet: nothing to name it by
    if (rows.size() >= max_rows) {
      ++dropped;
      continue;
    }
    std::string relayed;
    for (const auto& r : s.relayed) {
      if (!relayed.empty()) relayed.push_back(' ');
      relayed.append(r.to_string());
    }
    rows.push_back({{"id", s.relayed.front().to_string()},
                    {"user", s.username},
                    {"client", s.tuple.client.to_string()},
                    {"transport", turn::to_string(s.tuple.transport)},
                    {"relayed", relayed},
                    {"permissions", s.permissions},
                    {"expires_in", std::max<int64_t>(0, duration_cast<seconds>(s.expires - now).count())},
                    {"age_ms", std::max<int64_t>(0, duration_cast<milliseconds>(now - s.started).count())},
                    {"bytes_in", s.bytes_in},
                    {"bytes_out", s.bytes_out}});
  }
  if (left_out != nullptr) *left_out = dropped;
  // Invalid UTF-8 in a username (it is client input) must not make the dump throw.
  return rows.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

bool SessionCollector::start(size_t workers) {
  std::lock_guard lock(mutex_);
  if (pending_ > 0) return false;  // a slow worker: wait for it
  if (untaken_) kept_ = std::move(rows_);
  rows_.clear();
  pending_ = workers;
  untaken_ = true;
  return true;
}

void SessionCollector::add(std::vector<SessionInfo> rows) {
  std::lock_guard lock(mutex_);
  if (pending_ == 0) return;  // not asked for
  for (auto& r : rows) rows_.push_back(std::move(r));
  --pending_;
}

std::optional<std::vector<SessionInfo>> SessionCollector::take() {
  std::lock_guard lock(mutex_);
  std::optional<std::vector<SessionInfo>> out;
  if (untaken_ && pending_ == 0) {
    out = std::move(rows_);
    rows_.clear();
    untaken_ = false;
  } else {
    out = std::move(kept_);
  }
  kept_.reset();
  return out;
}

std::optional<KillOrder> parse_kill_order(std::string_view payload) {
  auto j = nlohmann::json::parse(payload, nullptr, false);
  if (!j.is_object()) return std::nullopt;
  KillOrder k;
  if (auto u = j.find("user"); u != j.end() && u->is_string() && !u->get<std::string>().empty()) {
    k.user = u->get<std::string>();
    return k;
  }
  auto n = j.find("node");
  auto a = j.find("allocation");
  if (n == j.end() || a == j.end() || !n->is_string() || !a->is_string()) return std::nullopt;
  k.node = n->get<std::string>();
  k.allocation = stun::TransportAddress::parse(a->get<std::string>());
  if (!k.allocation || k.allocation->port == 0 || k.node.empty()) return std::nullopt;
  return k;
}

}  // namespace ferry::server
