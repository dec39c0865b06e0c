// `ferryctl sessions` and `ferryctl kill` on the node side, pure: the node's live allocations as
// the JSON rows the registry writes into the sessions table, and the kill orders that arrive on
// channel 'ferry_kill' (db/migrations/0003_nodes.sql).
#pragma once

#include <cstddef>
#include <mutex>
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

// The workers' live allocations, gathered for a heartbeat: start() before the heartbeat's upsert
// (the signal loop then posts each worker its walk), add() on each worker's loop thread as it
// answers, take() once the upsert is answered. Workers answer well within that database round
// trip, so the rows written are as of that heartbeat; a slower worker costs one heartbeat: its
// collection is waited for, never restarted, and a complete one nobody took is written instead.
class SessionCollector {
 public:
  // A new collection of `workers` answers; false (nothing to post) while the current one still
  // waits for a worker. A complete collection not taken yet is kept for take().
  bool start(size_t workers);
  void add(std::vector<SessionInfo> rows);  // one worker's answer, from any thread
  // The newest complete collection not taken yet: the current one once every worker answered,
  // else the one start() kept; nullopt when there is none.
  std::optional<std::vector<SessionInfo>> take();

 private:
  std::mutex mutex_;
  std::vector<SessionInfo> rows_;                 // the current collection's, so far
  size_t pending_ = 0;                            // workers yet to answer it
  bool untaken_ = false;                          // rows_ has not been handed out by take()
  std::optional<std::vector<SessionInfo>> kept_;  // a complete collection start() set aside
};

struct KillOrder {
  std::optional<std::string> user;                   // every node: that user's allocations
  std::string node;                                  // with `allocation`: only on this node
  std::optional<stun::TransportAddress> allocation;  // the allocation's id (relayed address)
};

// {"user":"alice"} or {"node":"edge-1","allocation":"IP:PORT"}; nullopt for anything else.
std::optional<KillOrder> parse_kill_order(std::string_view payload);

}  // namespace ferry::server
