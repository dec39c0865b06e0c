// The usage of one worker's allocations (issue 15): a usage record for each allocation that ends
// and, once per `interval`, for each one older than that (spread over the seconds of the
// interval); the allocation-duration histogram; and the
// worker's heaviest users for /metrics. All on the worker's loop, off the data path: the core
// counts bytes and packets per allocation beside its own counters, and this reads them when an
// allocation ends or when the tick walks the live ones. Records go into the UsageWriter's bounded
// queue; without a database there is no writer and only the metrics are kept.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>

#include <uv.h>

#include "base/clock.h"
#include "db/pg_connection.h"
#include "db/usage_writer.h"
#include "server/worker/bucket_histogram.h"
#include "server/worker/top_users.h"
#include "turn/allocation.h"
#include "turn/server_core.h"

namespace ferry::server {

struct UsageSettings {
  std::string node_id;  // resolved_node_id(config)
  std::string boot_id;  // this process's run, shared by its workers: allocation ids stay unique across restarts
  uint32_t worker = 0;  // index in the pool
  std::chrono::seconds interval{60};
  size_t queue_size = 10000;
  size_t top_users = 10;
  std::chrono::milliseconds flush_interval{500};
};

class WorkerUsage {
 public:
  // `pool` null: no database, no records. `loop`, `clock` and `pool` must outlive this object.
  WorkerUsage(uv_loop_t* loop, const Clock& clock, db::PgPool* pool, UsageSettings settings, std::string realm);

  void start();  // on the loop thread
  void stop();   // closes the timers; records not yet written are lost

  // Shutdown: the allocations still open end with the process, so their records become final.
  void finish(const turn::ServerCore& core);
  // Shutdown: keeps writing until the queue is empty or `budget` has passed, then calls `done`
  // (on the loop). false, and `done` is not called: nothing to wait for (no database, nothing
  // queued, or the database is down).
  bool drain(std::chrono::milliseconds budget, std::function<void()> done);

  // Io::allocation_ended.
  void allocation_ended(const turn::Allocation& a);
  // From each of the worker's tick parts (`parts` a second): interim records when due and the top
  // users, for the part's share of the allocations; the top list is published when a round ends.
  void on_tick(const turn::ServerCore& core, uint32_t part, uint32_t parts);

  const DurationHistogram& allocation_duration() const { return duration_; }
  const TopUsers& top_users() const { return top_; }
  const db::UsageStats* writer_stats() const { return writer_ ? &writer_->stats() : nullptr; }

  // "<node>/<boot>/<worker>/<serial>"
  std::string allocation_id(const turn::Allocation& a) const;
  db::UsageRecord record_of(const turn::Allocation& a, bool final) const;

 private:
  const Clock& clock_;
  UsageSettings settings_;
  std::string realm_;
  db::PgPool* pool_;
  std::unique_ptr<db::UsageWriter> writer_;
  uv_loop_t* loop_;
  uv_timer_t* drain_timer_ = nullptr;  // freed by its close callback
  std::function<void()> drain_done_;
  std::chrono::steady_clock::time_point drain_deadline_{};
  DurationHistogram duration_;
  TopUsers top_;
  uint64_t rounds_ = 0;  // rounds begun: picks the slot of interim records
  uint64_t slot_ = 0;    // this round's
  struct Sum {
    uint64_t bytes = 0;
    uint64_t allocations = 0;
  };
  struct NameHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  // This round's sums so far. The keys own their names, as an allocation may end between two parts
  // of a round; a user seen in the last round keeps its entry (no allocation for it each round).
  std::unordered_map<std::string, Sum, NameHash, std::equal_to<>> per_user_;
};

}  // namespace ferry::server
