// `ferryctl sessions` and `ferryctl kill` on the node side, pure: the node's live allocations as
// the JSON rows the registry writes into the sessions table, and the kill orders that arrive on
// channel 'ferry_kill' (db/migrations/0003_nodes.sql).
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/clock.h"
#include "server/worker/session_info.h"
#include "stun/transport_address.h"

namespace ferry::server {

// At most this many rows per node: the table stays bounded whatever a node carries.
inline constexpr size_t kMaxSessionRows = 10000;

// [{"id","user","client","transport","relayed","permissions","expires_in","age_ms","bytes_in",
// "bytes_out"}, ...] as of `now` (the same steady clock as the sessions' times): expires_in in
// whole seconds (0 once past), age_ms the allocation's age in milliseconds, the bytes as the
// snapshot counted them. `id` is the first relayed address (unique on the node while the
// allocation lives). Rows beyond `max_rows` are left out and counted in `*left_out`.
std::string session_rows_json(const std::vector<SessionInfo>& sessions, Instant now, size_t max_rows = kMaxSessionRows,
                              size_t* left_out = nullptr);

struct KillOrder {
  std::optional<std::string> user;                   // every node: that user's allocations
  std::string node;                                  // with `allocation`: only on this node
  std::optional<stun::TransportAddress> allocation;  // the allocation's id (relayed address)
};

// {"user":"alice"} or {"node":"edge-1","allocation":"IP:PORT"}; nullopt for anything else.
std::optional<KillOrder> parse_kill_order(std::string_view payload);

}  // namespace ferry::server
