#include "turn/user_quota.h"

namespace ferry::turn {

std::vector<UserCounts> remote_counts_per_worker(const UserCounts& other_nodes,
                                                 const std::vector<UserCounts>& per_worker) {
  // The node's total per user, then each worker's own share taken out again.
  UserCounts node_total = other_nodes;
  for (const auto& w : per_worker)
    for (const auto& [user, n] : w) node_total[user] += n;
  std::vector<UserCounts> out;
  out.reserve(per_worker.size());
  for (const auto& w : per_worker) {
    UserCounts r = node_total;
    for (const auto& [user, n] : w) {
      auto it = r.find(user);
      if (it->second <= n) r.erase(it);
      else it->second -= n;
    }
    out.push_back(std::move(r));
  }
  return out;
}

}  // namespace ferry::turn
