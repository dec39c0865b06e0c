#include "server/ops/operations.h"

#include <csignal>

#include <spdlog/spdlog.h>
#include <uv.h>

#include "server/net/uv_handle.h"
#include "server/ops/ice_servers.h"

namespace ferry::server {

IceSettings ice_settings(const Config& config, const std::vector<ListenerConfig>& bound) {
  IceSettings s;
  s.urls = config.http.ice_urls.empty() ? derive_ice_urls(bound, config.relay.addresses) : config.http.ice_urls;
  for (const auto& secret : config.auth.shared_secrets) s.shared_secrets.push_back(secret.secret);
  s.credential_ttl = config.http.credential_ttl;
  s.max_credential_ttl = config.http.max_credential_ttl;
  return s;
}

namespace {
std::vector<WorkerStatsView> views(WorkerPool& pool) {
  std::vector<WorkerStatsView> out;
  for (size_t i = 0; i < pool.size(); ++i) {
    const Worker& w = pool.worker(i);
    out.push_back({&w.core().stats(), &w.stats(), &w.database_stats()});
  }
  return out;
}
}  // namespace

Operations::Operations(const Config& config, WorkerPool& pool)
    : config_(config),
      pool_(pool),
      keys_(config.http.api_keys, config.http.api_requests_per_second, clock_),
      metrics_(std::make_unique<MetricsCollector>(views(pool), FERRY_VERSION, &health_.draining_flag())),
      api_(metrics_.get(), health_, keys_, ice_settings(config, pool.listeners()), clock_),
      http_(api_) {
  std::vector<const ShellStats*> shells;
  for (size_t i = 0; i < pool.size(); ++i) shells.push_back(&pool.worker(i).stats());
  health_.set_workers(std::move(shells));
  health_.set_listeners_bound(pool.size() > 0);
  if (!config.database.url.empty()) {
    // API keys not in the config are looked up in the database; a hit is trusted for a minute.
    db_keys_ = std::make_unique<PgApiKeys>(config.database.url, clock_);
    keys_.set_lookup([db = db_keys_.get()](const std::array<uint8_t, 32>& h) { return db->lookup(h); },
                     std::chrono::seconds(60));
    // Reachable while some worker has a connection up (the workers publish their PgPool's state).
    health_.set_database_check([&pool] {
      for (size_t i = 0; i < pool.size(); ++i)
        if (pool.worker(i).database_stats().connections_up.get() > 0) return true;
      return false;
    });
  }
}

Operations::~Operations() { stop(); }

std::optional<std::string> Operations::start() {
  if (!config_.http.address) return std::nullopt;
  if (auto err = http_.start(*config_.http.address)) return err;
  spdlog::info("http endpoint on {} (/metrics /healthz /readyz /v1/ice-servers)", config_.http.address->to_string());
  if (config_.http.api_keys.empty()) spdlog::info("no http.api_keys: /v1/ice-servers answers 401 to everyone");
  return std::nullopt;
}

void Operations::stop() { http_.stop(); }

namespace {
struct ShutdownState {
  Operations* ops = nullptr;
  WorkerPool* pool = nullptr;
  const DrainConfig* drain = nullptr;
  const Clock* clock = nullptr;
  UvHandle<uv_timer_t> poll;
  uint64_t deadline_ms = 0;  // monotonic_ms(*clock)
  bool draining = false;
};

constexpr uint64_t kDrainPollMs = 200;

void on_signal(uv_signal_t* s, int signum) {
  auto* st = UvHandle<uv_signal_t>::owner_of<ShutdownState>(s);
  const char* name = signum == SIGINT ? "SIGINT" : "SIGTERM";
  if (signum == SIGINT || st->draining || st->drain->timeout == 0) {
    spdlog::info("got {}, shutting down{}", name, st->draining ? " without waiting for the drain" : "");
    uv_stop(s->loop);
    return;
  }
  st->draining = true;
  // Workers first: by the time /readyz says "draining", new Allocates are (all but) refused.
  st->pool->set_draining(true, st->drain->alternate_server);
  st->ops->health().set_draining(true);
  st->deadline_ms = monotonic_ms(*st->clock) + uint64_t{st->drain->timeout} * 1000;
  spdlog::info(
      "got SIGTERM, draining: {} allocation(s) left, waiting up to {} s (again to stop at once); new "
      "allocations {}",
      st->pool->active_allocations(), st->drain->timeout,
      st->drain->alternate_server ? "go to " + st->drain->alternate_server->to_string() : std::string("refused (508)"));
  uv_timer_start(
      st->poll.get(),
      [](uv_timer_t* t) {
    auto* st = UvHandle<uv_timer_t>::owner_of<ShutdownState>(t);
    const int64_t left = st->pool->active_allocations();
    if (left <= 0) {
      spdlog::info("drained: no allocation left, shutting down");
      uv_stop(t->loop);
    } else if (monotonic_ms(*st->clock) >= st->deadline_ms) {
      spdlog::info("drain timeout ({} s): shutting down with {} allocation(s) left", st->drain->timeout, left);
      uv_stop(t->loop);
    }
      },
      0, kDrainPollMs);
}
}  // namespace

void Operations::wait_for_shutdown(std::function<void()> on_sighup) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  ShutdownState st;
  st.ops = this;
  st.pool = &pool_;
  st.drain = &config_.drain;
  st.clock = &clock_;
  {
    UvHandle<uv_signal_t> sigint, sigterm, sighup;
    sigint.init(&loop, &st, uv_signal_init);
    sigterm.init(&loop, &st, uv_signal_init);
    st.poll.init(&loop, &st, uv_timer_init);
    uv_signal_start(sigint.get(), on_signal, SIGINT);
    uv_signal_start(sigterm.get(), on_signal, SIGTERM);
    sighup.init(&loop, &on_sighup, uv_signal_init);
    if (on_sighup) {
      uv_signal_start(
          sighup.get(), [](uv_signal_t* s, int) { (*UvHandle<uv_signal_t>::owner_of<std::function<void()>>(s))(); },
          SIGHUP);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    st.poll.close();
  }                               // the signal handles close here
  uv_run(&loop, UV_RUN_DEFAULT);  // their close callbacks free them
  uv_loop_close(&loop);
}

}  // namespace ferry::server
