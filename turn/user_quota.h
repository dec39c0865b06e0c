// The per-user allocation quota across a fleet (RFC 8656 §7.2: 486 Allocation Quota Reached).
// A core counts its own allocations per username exactly; what the other nodes hold comes from
// their last published sessions (the heartbeat, see server/ops/node_registry.h), handed to each
// worker as its own copy, so the check on Allocate reads only the worker's memory.
#pragma once

#include <cstddef>
#include <string>
#include <unordered_map>
#include <vector>

namespace ferry::turn {

// Allocations per username held elsewhere in the fleet, as last seen.
using UserCounts = std::unordered_map<std::string, size_t>;

// Whether a new allocation must be refused: `max` 0 is unlimited; `local` this core's count,
// `remote` the rest of the fleet's (possibly a heartbeat or more old).
constexpr bool user_quota_reached(size_t local, size_t remote, size_t max) { return max != 0 && local + remote >= max; }

// What each of a node's workers must count besides its own allocations: the other nodes'
// (`other_nodes`) plus this node's other workers' (`per_worker[j]`, j != i). One map per worker.
std::vector<UserCounts> remote_counts_per_worker(const UserCounts& other_nodes,
                                                 const std::vector<UserCounts>& per_worker);

inline size_t count_for(const UserCounts& counts, const std::string& user) {
  auto it = counts.find(user);
  return it == counts.end() ? 0 : it->second;
}

}  // namespace ferry::turn
