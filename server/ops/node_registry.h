// This node's row in the fleet's registry (db/migrations/0003_nodes.sql), kept on a control loop
// (the signal loop of Operations::wait_for_shutdown), never on a worker: a PgPool of one
// connection, non-blocking, plus one LISTEN connection.
//
// Every heartbeat: upsert the row (what `report` says: state, allocations, relayed bytes/s, CPU;
// last_seen = the database's now()) and read back what the operator wants (`ferryctl drain`
// writes desired_state), then read the fleet from node_status (status computed in SQL) for the
// alternate server and /v1/ice-servers. A NOTIFY on 'ferry_nodes' naming this node brings the
// next heartbeat forward, so a drain is seen at once rather than within an interval. Between the
// two, the node's rows in `sessions` are replaced by what `sessions` hands over (the walk that
// `collect` started before the upsert); a NOTIFY on 'ferry_kill' goes to `kill` as it arrives.
// Last, the other live nodes' allocations per user (from their `sessions` rows) go to
// `user_counts`, for the fleet-wide per-user quota.
#pragma once

#include <uv.h>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "base/lifetime.h"
#include "db/pg_connection.h"
#include "server/net/uv_handle.h"
#include "server/ops/fleet_nodes.h"
#include "turn/user_quota.h"

namespace ferry::server {

struct NodeReport {
  bool draining = false;
  int64_t allocations = 0;
  double relayed_bps = 0;
  double cpu = 0;  // percent of one core
};

// What the row says the operator wants.
struct NodeDirective {
  bool drain = false;
  std::optional<double> deadline_in;  // seconds from now (database time) to close what is left; may be <= 0
};

struct NodeRegistrySettings {
  std::string conninfo;  // a secret: never logged
  std::string id;
  std::string version;
  std::vector<std::string> urls;
  std::vector<std::pair<Transport, stun::TransportAddress>> addresses;
  std::chrono::seconds heartbeat_interval{5};
};

class NodeRegistry {
 public:
  struct Hooks {
    std::function<NodeReport()> report;                        // before each upsert
    std::function<void(const NodeDirective&)> directive;       // after each answered upsert
    std::function<void(const std::vector<FleetNode>&)> fleet;  // after each fleet read; {} when it failed
    std::function<void()> collect;  // before each upsert: start collecting what `sessions` hands over
    // After each answered upsert: the node's live allocations as a JSON array of session rows
    // (session_rows_json), or nullopt when no collection is complete: the table is left alone.
    std::function<std::optional<std::string>()> sessions;
    std::function<void(std::string_view payload)> kill;  // a NOTIFY on ferry_kill
    // The other live nodes' allocations per username, after each fleet read; {} when it failed
    // (the quota then counts this node alone rather than stale figures).
    std::function<void(turn::UserCounts)> user_counts;
  };

  NodeRegistry(uv_loop_t* loop, NodeRegistrySettings settings, Hooks hooks);
  ~NodeRegistry();
  NodeRegistry(const NodeRegistry&) = delete;
  NodeRegistry& operator=(const NodeRegistry&) = delete;

  void start();  // first heartbeat at once
  void stop();   // closes the connections and the timer; idempotent

 private:
  void beat();
  void on_upsert(db::QueryResult r);
  void read_fleet();
  void on_fleet(db::QueryResult r);
  void read_user_counts();
  void finish_beat();

  uv_loop_t* loop_;
  NodeRegistrySettings settings_;
  Hooks hooks_;
  std::unique_ptr<db::PgPool> pool_;
  UvHandle<uv_timer_t> timer_;
  std::string started_at_;  // unix seconds, as text
  bool in_flight_ = false;
  bool again_ = false;  // a NOTIFY came during a heartbeat: one more right after it
  bool warned_ = false;
  bool warned_sessions_ = false;
  bool stopped_ = false;
  ferry::Lifetime alive_;
};

}  // namespace ferry::server
