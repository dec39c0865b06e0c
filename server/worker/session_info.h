// One live allocation as `ferryctl sessions` shows it, taken from a worker's core on its own
// loop (a walk of the table, control path) and handed to the node registry, which keeps the
// node's rows in the sessions table (db/migrations/0003_nodes.sql).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "stun/transport_address.h"
#include "turn/five_tuple.h"

namespace ferry::server {

struct SessionInfo {
  std::string username;
  turn::FiveTuple tuple;                        // the client's 5-tuple
  std::vector<stun::TransportAddress> relayed;  // XOR-RELAYED-ADDRESS(es) as advertised, v4 first
  uint32_t permissions = 0;
  int64_t expires_in = 0;  // seconds
};

// `ferryctl kill --user U`: the whole USERNAME, or the user part of a TURN REST one
// ("1735689600:alice" is alice's).
inline bool session_user_matches(std::string_view username, std::string_view user) {
  if (username == user) return true;
  const auto colon = username.find(':');
  return colon != std::string_view::npos && username.substr(colon + 1) == user;
}

}  // namespace ferry::server
