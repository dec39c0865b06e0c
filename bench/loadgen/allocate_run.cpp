// Allocates/s with authentication: --count new clients (each a fresh socket, so a new 5-tuple,
// as a new client would be), --allocations of them in flight, each doing Allocate -> 401 ->
// authenticated Allocate (RFC 8656 §7.1, RFC 8489 §9.2). The rate is successes over the time from
// the first request to the last success; each one's latency runs from its first,
// unauthenticated request to the success. Afterwards, untimed, every allocation is deleted
// (Refresh with LIFETIME 0) so the server ends as it began.
//
// Fresh 5-tuples, not allocate/delete cycles on one socket: some servers (coturn 4.6) keep a
// deleted allocation's relay port for about a minute, so cycles would measure the size of the
// port range, not the rate.
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <vector>

#include "bench/loadgen/addresses.h"
#include "bench/loadgen/clock.h"
#include "bench/loadgen/latency_histogram.h"
#include "bench/loadgen/runs.h"
#include "bench/loadgen/text.h"
#include "bench/loadgen/turn_sessions.h"
#include "bench/loadgen/udp_io.h"

namespace ferry::bench {

nlohmann::json run_allocate(const Options& o) {
  const uint64_t count = o.max_count != 0 ? std::min<uint64_t>(o.max_count, 60000) : 1000;
  SessionParams sp;
  sp.lifetime = o.lifetime;
  sp.rto_ns = seconds_to_ns(o.rto);
  sp.transmissions = o.transmissions;
  sp.concurrency = std::max<uint32_t>(o.allocations, 1);
  SessionDriver driver(sp);

  client::TurnClientConfig cc;
  cc.username = o.user;
  cc.password = o.password;
  std::vector<std::unique_ptr<Session>> sessions;
  sessions.reserve(count);
  LatencyHistogram latency;
  uint64_t socket_errors = 0, last_success = 0;
  std::string last_socket_error;

  auto next = [&]() -> Session* {
    if (sessions.size() >= count) return nullptr;
    std::string err;
    const auto i = static_cast<uint32_t>(sessions.size());
    const int fd = open_udp(client_source(o, i), UdpOptions{.buffer_bytes = 0}, err);
    if (fd < 0 || !connect_udp(fd, o.target)) {
      ++socket_errors;
      last_socket_error = err.empty() ? std::strerror(errno) : err;
      if (fd >= 0) ::close(fd);
      return nullptr;
    }
    auto s = std::make_unique<Session>();
    s->fd = fd;
    s->index = i;
    s->client = std::make_unique<client::TurnClient>(cc);
    s->steps = {Step::Allocate};
    sessions.push_back(std::move(s));
    return sessions.back().get();
  };
  auto step_done = [&](Session&, Step step, uint64_t now, uint64_t latency_ns) {
    if (step != Step::Allocate) return;
    latency.record(latency_ns);
    last_success = now;
  };
  const uint64_t t0 = now_ns();
  const uint64_t start_until = t0 + seconds_to_ns(o.duration);
  const DriveResult r = driver.drive(
      next, [](Session&) {}, step_done, start_until, start_until + seconds_to_ns(10));
  if (sessions.empty()) throw std::runtime_error(cat("client socket: ", last_socket_error));

  // Untimed cleanup.
  size_t cursor = 0;
  const uint64_t limit = now_ns() + std::min<uint64_t>(seconds_to_ns(10) + count * 5'000'000ull, seconds_to_ns(120));
  const DriveResult teardown = driver.drive(
      [&]() -> Session* {
        while (cursor < sessions.size()) {
          Session* s = sessions[cursor++].get();
          if (s->allocated) {
            s->steps = {Step::Delete};
            return s;
          }
        }
        return nullptr;
      },
      [](Session&) {}, nullptr, limit, limit);
  for (auto& s : sessions) ::close(s->fd);

  const uint64_t ok = latency.count();
  const double seconds = ok > 0 ? static_cast<double>(last_success - t0) / 1e9 : 0.0;
  nlohmann::json j;
  j["mode"] = "allocate";
  j["target"] = o.target.to_string();
  j["concurrency"] = sp.concurrency;
  j["count"] = count;
  j["started"] = sessions.size();
  j["allocations"] = ok;
  j["seconds"] = seconds;
  j["aps"] = seconds > 0 ? static_cast<double>(ok) / seconds : 0.0;
  j["latency_us"] = {{"p50", static_cast<double>(latency.quantile(0.5)) / 1e3},
                     {"p99", static_cast<double>(latency.quantile(0.99)) / 1e3},
                     {"max", static_cast<double>(latency.max()) / 1e3}};
  j["failed"] = r.failed;
  nlohmann::json errors = nlohmann::json::object();
  for (const auto& [what, n] : r.errors) errors[what] = n;
  j["errors"] = errors;
  j["requests"] = r.requests;
  j["auth_retries"] = r.auth_retries;
  j["retransmissions"] = r.retransmissions;
  j["teardown_failed"] = teardown.failed;
  j["socket_errors"] = socket_errors;
  return j;
}

}  // namespace ferry::bench
