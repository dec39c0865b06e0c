// One live allocation as `ferryctl sessions` shows it, taken from a worker's core on its own
// loop (a walk of the table, control path) and handed to the node registry, which keeps the
// node's rows in the sessions table (db/migrations/0003_nodes.sql, 0007_session_usage.sql).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/clock.h"
#include "stun/transport_address.h"
#include "turn/allocation.h"
#include "turn/five_tuple.h"

namespace ferry::server {

struct SessionInfo {
  std::string username;
  turn::FiveTuple tuple;                        // the client's 5-tuple
  std::vector<stun::TransportAddress> relayed;  // XOR-RELAYED-ADDRESS(es) as advertised, v4 first
  uint32_t permissions = 0;
  // Steady-clock times (every loop's SteadyClock is the process's one steady clock), so the rows
  // can be written a heartbeat after the walk and still give the right age and expiry.
  Instant started{};
  Instant expires{};
  // Payload bytes so far, as the usage records count them (AllocationUsage): in = from the client
  // to its peers, out = from peers to the client.
  uint64_t bytes_in = 0;
  uint64_t bytes_out = 0;
  uint32_t worker = 0;  // which worker of this node holds it (the per-user quota's counts)
};

// The snapshot of one allocation: copies of what the core keeps anyway (its usage counters too),
// nothing counted on the data path for it.
SessionInfo session_info_of(const turn::Allocation& a);

// `ferryctl kill --user U`: the whole USERNAME, or the user part of a TURN REST one
// ("1735689600:alice" is alice's).
inline bool session_user_matches(std::string_view username, std::string_view user) {
  if (username == user) return true;
  const auto colon = username.find(':');
  return colon != std::string_view::npos && username.substr(colon + 1) == user;
}

}  // namespace ferry::server
