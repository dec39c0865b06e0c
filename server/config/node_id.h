// The id of this instance in the node registry (db/migrations/0003_nodes.sql): node.id when set,
// else one derived from the host name and the first listener's port, stable across restarts of
// the same deployment and distinct for several instances on one host.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "server/config/config.h"

namespace ferry::server {

// 1-64 of letters, digits and . _ - (what the nodes table's CHECK accepts).
bool valid_node_id(std::string_view id);

// "<host>-<port>" from `hostname` (characters outside the id alphabet become '-', cut so the whole
// fits in 64) and the first listener's port; "<host>" without listeners; "ferry-<port>" for an
// empty host name.
std::string derive_node_id(std::string_view hostname, const std::vector<ListenerConfig>& listeners);

// node.id if set, else derive_node_id(gethostname(), config.listeners).
std::string resolved_node_id(const Config& config);

}  // namespace ferry::server
