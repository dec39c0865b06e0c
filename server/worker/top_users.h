// One worker's heaviest users right now, for /metrics: the worker's loop recomputes the list once a
// second from its live allocations (a walk of its own table, off the data path) and publishes it
// here; the scrape merges the lists of all workers. The lock is taken only by that once-a-second
// publish and by scrapes, never on the data path. At most `k` entries: the label count on
// /metrics stays bounded however many users there are.
#pragma once

#include <algorithm>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace ferry::server {

struct UserUsage {
  std::string user;
  uint64_t bytes = 0;        // relayed both ways by the user's live allocations
  uint64_t allocations = 0;  // the user's live allocations
};

class TopUsers {
 public:
  void publish(std::vector<UserUsage> top) {
    std::lock_guard lock(mutex_);
    top_ = std::move(top);
  }
  std::vector<UserUsage> snapshot() const {
    std::lock_guard lock(mutex_);
    return top_;
  }

 private:
  mutable std::mutex mutex_;
  std::vector<UserUsage> top_;
};

// The k users with the most bytes among `per_user`, largest first (ties by name, so the list is
// stable between scrapes). Merges lists from several workers when given their concatenation.
std::vector<UserUsage> top_k_users(std::vector<UserUsage> per_user, size_t k);

}  // namespace ferry::server
