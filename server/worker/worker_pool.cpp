#include "server/worker/worker_pool.h"

#include <algorithm>
#include <sys/socket.h>
#include <unistd.h>

#include <uv.h>

namespace ferry::server {

PortRange port_share(uint16_t min, uint16_t max, size_t count, size_t index) {
  const size_t total = size_t{max} - min + 1;
  const size_t base = total / count;
  const size_t extra = total % count;  // the first `extra` shares get one more port
  const size_t first = min + index * base + std::min(index, extra);
  const size_t size = base + (index < extra ? 1 : 0);
  return PortRange{static_cast<uint16_t>(first), static_cast<uint16_t>(first + size - 1)};
}

size_t worker_count(uint32_t configured) {
  if (configured != 0) return configured;
  return std::max(1u, uv_available_parallelism());
}

namespace {

// SO_REUSEPORT would let us share a port with another process of the same user (a second ferry
// started by mistake) and silently split its clients: check that nobody holds the port first.
std::optional<std::string> check_port_free(const ListenerConfig& l) {
  if (l.address.port == 0) return std::nullopt;
  const int type = (l.transport == Transport::Udp || l.transport == Transport::Dtls) ? SOCK_DGRAM : SOCK_STREAM;
  const int fd = open_bound_socket(type, l.address, SocketOptions{});
  if (fd < 0) return std::string(to_string(l.transport)) + " " + l.address.to_string() + ": " + uv_strerror(fd);
  ::close(fd);
  return std::nullopt;
}

}  // namespace

std::optional<std::string> WorkerPool::start() {
  const size_t n = std::max<size_t>(1, settings_.workers);
  if (n > 1) {
    for (const auto& l : settings_.base.listeners)
      if (auto err = check_port_free(l)) return err;
  }
  const turn::ServerCoreConfig& total = settings_.base.core;
  std::vector<ListenerConfig> listeners = settings_.base.listeners;
  for (size_t i = 0; i < n; ++i) {
    WorkerSettings s = settings_.base;
    s.listeners = listeners;
    s.reuse_port = n > 1;
    s.worker_count = static_cast<uint32_t>(n);
    const PortRange share = port_share(total.port_min, total.port_max, n, i);
    s.core.port_min = share.min;
    s.core.port_max = share.max;
    if (total.max_allocations != 0) s.core.max_allocations = (total.max_allocations + n - 1) / n;
    // The per-IP limit holds per worker as is: listeners steer each source IP to one worker.
    const uint32_t connections = settings_.base.tcp.max_connections;
    if (connections != 0) s.tcp.max_connections = static_cast<uint32_t>((connections + n - 1) / n);
    s.usage.worker = static_cast<uint32_t>(i);
    s.core.seed = total.seed ^ (0x9E3779B97F4A7C15ull * (i + 1));  // distinct port choices per worker
    auto w = std::make_unique<Worker>(std::move(s), settings_.credentials);
    if (auto err = w->bind()) {
      workers_.clear();
      return err;
    }
    // Port 0 means "any": the first worker's choice becomes everyone's, so they share it.
    if (i == 0) {
      const auto& bound = w->bound_listeners();
      listeners.clear();
      for (const auto& b : bound) listeners.push_back(b);
    }
    workers_.push_back(std::move(w));
  }
  for (auto& w : workers_) threads_.emplace_back([worker = w.get()] { worker->run(); });
  return std::nullopt;
}

void WorkerPool::stop() {
  for (auto& w : workers_) w->stop();
  for (auto& t : threads_) t.join();
  threads_.clear();
  workers_.clear();
}

void WorkerPool::set_draining(bool draining, std::optional<stun::TransportAddress> alternate) {
  for (auto& w : workers_) w->set_draining(draining, alternate);
}

void WorkerPool::collect_sessions(const std::function<void(std::vector<SessionInfo>)>& deliver) {
  for (auto& w : workers_) w->collect_sessions(deliver);
}

void WorkerPool::close_user_sessions(const std::string& user) {
  for (auto& w : workers_) w->close_user_sessions(user);
}

void WorkerPool::close_relayed(const stun::TransportAddress& relayed) {
  for (auto& w : workers_) w->close_relayed(relayed);
}

void WorkerPool::close_all_allocations() {
  for (auto& w : workers_) w->close_all_allocations();
}

int64_t WorkerPool::active_allocations() const {
  int64_t n = 0;
  for (const auto& w : workers_) n += w->core().stats().active_allocations();
  return n;
}

const std::vector<ListenerConfig>& WorkerPool::listeners() const {
  static const std::vector<ListenerConfig> kNone;
  return workers_.empty() ? kNone : workers_.front()->bound_listeners();
}

}  // namespace ferry::server
