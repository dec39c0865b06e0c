// The node registry as the ops layer reads it (db/migrations/0003_nodes.sql, view node_status):
// rows turned into FleetNode, and the choices made from them: which nodes /v1/ice-servers hands
// out and which one a draining node sends new Allocates to. Pure functions, no I/O.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "server/config/config.h"
#include "stun/transport_address.h"

namespace ferry::server {

struct FleetNode {
  std::string id;
  std::string status;                                                   // active | draining | down
  std::vector<std::string> urls;                                        // as /v1/ice-servers hands out
  std::vector<std::pair<Transport, stun::TransportAddress>> addresses;  // first per transport
  int64_t allocations = 0;
  double relayed_bps = 0;
  double cpu = 0;
};

// Least loaded first: fewer allocations, then fewer relayed bytes/s, then by id, so every node
// ranks the fleet alike. CPU is reported but not ranked on: an idle node's share of a core is
// noise, and ranking on it would flip the choice every heartbeat.
bool less_loaded(const FleetNode& a, const FleetNode& b);

// The `active` nodes other than `exclude` ("" = none), least loaded first, at most `n`.
std::vector<const FleetNode*> pick_active(const std::vector<FleetNode>& nodes, std::string_view exclude, size_t n);

// ALTERNATE-SERVER for a draining node: an address of the least loaded active node other than
// `self`, preferring its udp listener, then tcp, tls, dtls; nullopt when there is no such node
// (the drain then answers 508).
std::optional<stun::TransportAddress> choose_alternate(const std::vector<FleetNode>& nodes, std::string_view self);

// The registry's JSON columns: `urls` ["turn:..."], `addresses` {"udp":"IP:PORT",...}.
std::string urls_json(const std::vector<std::string>& urls);
std::string addresses_json(const std::vector<std::pair<Transport, stun::TransportAddress>>& addresses);
// Their inverse; what does not parse is left out.
std::vector<std::string> parse_urls_json(std::string_view text);
std::vector<std::pair<Transport, stun::TransportAddress>> parse_addresses_json(std::string_view text);

}  // namespace ferry::server
