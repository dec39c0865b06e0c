// N workers, each a thread with its own loop: the relay port range is split so they never compete
// for a port, the allocation cap is split so the total holds, and the listeners use SO_REUSEPORT
// so the kernel spreads clients over them (a client's 5-tuple always hashes to the same worker).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "server/worker/worker.h"

namespace ferry::server {

struct PortRange {
  uint16_t min = 0;
  uint16_t max = 0;
};

// Share `index` of `count` of [min, max]: contiguous, sizes differing by at most one.
// Requires 1 <= count <= max - min + 1.
PortRange port_share(uint16_t min, uint16_t max, size_t count, size_t index);

// `configured` workers, 0 meaning one per available CPU.
size_t worker_count(uint32_t configured);

struct PoolSettings {
  WorkerSettings base;  // core.port_min/max and core.max_allocations are totals, split here
  size_t workers = 1;   // at most the number of relay ports
  // Each worker builds its own stores (and database connections) from these: nothing is shared
  // between loops.
  CredentialSettings credentials;
};

class WorkerPool {
 public:
  explicit WorkerPool(PoolSettings settings) : settings_(std::move(settings)) {}
  ~WorkerPool() { stop(); }
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  // Builds and binds every worker, then starts their threads. On a bind failure nothing is left
  // running and the error names the listener ("udp 0.0.0.0:3478: address already in use").
  std::optional<std::string> start();
  // Stops every loop and joins the threads. Idempotent.
  void stop();

  // The listeners as bound (a port 0 in the config is replaced by the port the OS chose, which
  // every worker then shares).
  const std::vector<ListenerConfig>& listeners() const;
  size_t size() const { return workers_.size(); }
  const Worker& worker(size_t i) const { return *workers_[i]; }
  Worker& worker(size_t i) { return *workers_[i]; }

  // From any thread: every worker's core starts (or stops) draining; see ServerCore::set_draining.
  void set_draining(bool draining, std::optional<stun::TransportAddress> alternate);
  // From any thread: every worker closes all its allocations.
  void close_all_allocations();
  // From any thread, per worker (see Worker): `deliver` runs once on each worker's loop thread.
  void collect_sessions(const std::function<void(std::vector<SessionInfo>)>& deliver);
  void close_user_sessions(const std::string& user);
  void close_relayed(const stun::TransportAddress& relayed);
  // Allocations on every worker now (from the cores' gauges; safe from any thread).
  int64_t active_allocations() const;

 private:
  PoolSettings settings_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::vector<std::thread> threads_;
};

}  // namespace ferry::server
