#include "server/ops/operations.h"

#include <sys/resource.h>

#include <csignal>

#include <spdlog/spdlog.h>
#include <uv.h>

#include "server/net/uv_handle.h"
#include "server/config/node_id.h"
#include "server/ops/drain_state.h"
#include "server/ops/fleet_nodes.h"
#include "server/ops/fleet_sessions.h"
#include "server/ops/ice_servers.h"
#include "server/ops/node_registry.h"

namespace ferry::server {

IceSettings ice_settings(const Config& config, const std::vector<ListenerConfig>& bound) {
  IceSettings s;
  s.urls = config.http.ice_urls.empty() ? derive_ice_urls(bound, config.relay.addresses) : config.http.ice_urls;
  for (const auto& secret : config.auth.shared_secrets) s.shared_secrets.push_back(secret.secret);
  s.credential_ttl = config.http.credential_ttl;
  s.max_credential_ttl = config.http.max_credential_ttl;
  s.max_nodes = config.http.ice_nodes;
  return s;
}

namespace {
std::vector<WorkerStatsView> views(WorkerPool& pool) {
  std::vector<WorkerStatsView> out;
  for (size_t i = 0; i < pool.size(); ++i) {
    const Worker& w = pool.worker(i);
    out.push_back({&w.core().stats(), &w.stats(), &w.database_stats(), &w.usage()});
  }
  return out;
}
}  // namespace

Operations::Operations(const Config& config, WorkerPool& pool)
    : config_(config),
      pool_(pool),
      keys_(config.http.api_keys, config.http.api_requests_per_second, clock_),
      metrics_(std::make_unique<MetricsCollector>(views(pool), FERRY_VERSION, &health_.draining_flag(),
                                                  config.usage.top_users)),
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
  const Config* config = nullptr;
  const Clock* clock = nullptr;
  UvHandle<uv_timer_t> poll;
  UvHandle<uv_timer_t> deadline;  // a fleet drain's --deadline
  uint64_t deadline_ms = 0;       // monotonic_ms(*clock), SIGTERM's drain.timeout
  std::optional<DrainState> drain;
  DrainTarget applied;
  std::string node_id;
  std::unique_ptr<NodeRegistry> registry;
  std::shared_ptr<SessionCollector> sessions = std::make_shared<SessionCollector>();
  bool warned_session_cap = false;
  // Per worker, its allocations per user in the last complete collection (the quota's counts).
  std::vector<turn::UserCounts> worker_user_counts;
  // For the heartbeat's rates: the totals and the time at the previous heartbeat.
  uint64_t last_bytes = 0;
  double last_cpu_s = 0;
  uint64_t last_report_ms = 0;
};

constexpr uint64_t kDrainPollMs = 200;

// Tells the workers and /readyz what DrainState wants, when that changed.
void apply_drain(ShutdownState& st) {
  const DrainTarget want = st.drain->target();
  if (want == st.applied) return;
  // Workers first: by the time /readyz says "draining", new Allocates are (all but) refused.
  st.pool->set_draining(want.draining, want.alternate);
  st.ops->health().set_draining(want.draining);
  const std::string where = want.alternate ? "go to " + want.alternate->to_string() : std::string("refused (508)");
  if (!want.draining) {
    spdlog::info("undrained: taking new allocations again");
  } else if (want.draining != st.applied.draining) {
    // SIGTERM logs its own line (with drain.timeout); this is `ferryctl drain`.
    if (!st.drain->sigterm())
      spdlog::info("draining (ferryctl drain): {} allocation(s) left; new allocations {}",
                   st.pool->active_allocations(), where);
  } else {
    spdlog::info("draining: new allocations now {}", where);  // the least loaded node changed
  }
  st.applied = want;
}

uint64_t total_relayed_bytes(WorkerPool& pool) {
  uint64_t n = 0;
  for (size_t i = 0; i < pool.size(); ++i)
    for (const auto& c : pool.worker(i).core().stats().relayed_bytes) n += c.get();
  return n;
}

double cpu_seconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  auto s = [](const timeval& t) { return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6; };
  return s(ru.ru_utime) + s(ru.ru_stime);
}

NodeReport node_report(ShutdownState& st) {
  NodeReport r;
  r.draining = st.drain->draining();
  r.allocations = st.pool->active_allocations();
  const uint64_t now = monotonic_ms(*st.clock);
  const uint64_t bytes = total_relayed_bytes(*st.pool);
  const double cpu = cpu_seconds();
  if (st.last_report_ms != 0 && now > st.last_report_ms) {
    const double secs = static_cast<double>(now - st.last_report_ms) / 1000.0;
    r.relayed_bps = static_cast<double>(bytes - st.last_bytes) / secs;
    r.cpu = 100.0 * (cpu - st.last_cpu_s) / secs;
  }
  st.last_report_ms = now;
  st.last_bytes = bytes;
  st.last_cpu_s = cpu;
  return r;
}

void close_at_deadline(ShutdownState& st) {
  if (!st.drain->fleet()) return;
  if (const int64_t left = st.pool->active_allocations(); left > 0) {
    spdlog::info("drain deadline passed: closing {} allocation(s)", left);
    st.pool->close_all_allocations();
  }
}

void on_directive(ShutdownState& st, const NodeDirective& d) {
  if (d.drain != st.drain->fleet()) {
    if (d.drain) spdlog::info("node registry: node {} asked to drain", st.node_id);
    else spdlog::info("node registry: node {} asked to undrain", st.node_id);
  }
  st.drain->set_fleet(d.drain);
  apply_drain(st);
  if (!d.drain || !d.deadline_in) {
    uv_timer_stop(st.deadline.get());
    return;
  }
  if (*d.deadline_in <= 0) {
    close_at_deadline(st);
    return;
  }
  // Re-armed at each heartbeat with the database's count of what is left, so clock skew between
  // machines does not matter.
  uv_timer_start(
      st.deadline.get(),
      [](uv_timer_t* t) {
    if (auto* st = UvHandle<uv_timer_t>::owner_of<ShutdownState>(t)) close_at_deadline(*st);
      },
      static_cast<uint64_t>(*d.deadline_in * 1000.0), 0);
}

void apply_fleet(ShutdownState& st, const std::vector<FleetNode>& nodes) {
  st.drain->set_fleet_alternate(choose_alternate(nodes, st.node_id));
  apply_drain(st);
  std::vector<std::vector<std::string>> urls;
  for (const FleetNode* n : pick_active(nodes, "", nodes.size()))
    if (!n->urls.empty()) urls.push_back(n->urls);
  st.ops->api().set_fleet(std::move(urls));
}

// Before a heartbeat's upsert: each worker walks its allocations on its own loop (control path).
void collect_sessions(ShutdownState& st) {
  if (!st.sessions->start(st.pool->size())) return;  // a slow worker: wait for it
  std::weak_ptr<SessionCollector> collector = st.sessions;
  st.pool->collect_sessions([collector](std::vector<SessionInfo> rows) {
    if (auto c = collector.lock()) c->add(std::move(rows));
  });
}

// After the upsert: the newest complete collection as rows (nullopt: none, the table is left as it
// is), and this node's other workers' counts per user for the quota.
std::optional<std::string> take_sessions(ShutdownState& st) {
  std::optional<std::vector<SessionInfo>> rows = st.sessions->take();
  if (!rows) return std::nullopt;
  st.worker_user_counts.assign(st.pool->size(), {});
  for (const auto& r : *rows)
    if (r.worker < st.worker_user_counts.size()) ++st.worker_user_counts[r.worker][r.username];
  size_t left_out = 0;
  // Age and expiry as of now, the bytes as of the walk.
  std::string out = session_rows_json(*rows, st.clock->now(), kMaxSessionRows, &left_out);
  if (left_out > 0 && !st.warned_session_cap) {
    spdlog::warn("node registry: {} allocation(s) beyond {} left out of the sessions table", left_out, kMaxSessionRows);
    st.warned_session_cap = true;
  }
  return out;
}

void on_kill(ShutdownState& st, std::string_view payload) {
  auto order = parse_kill_order(payload);
  if (!order) {
    spdlog::warn("node registry: ignoring a malformed kill order");
    return;
  }
  if (order->user) {
    spdlog::info("ferryctl kill: closing the allocations of user {}", *order->user);
    st.pool->close_user_sessions(*order->user);
  } else if (order->node == st.node_id) {
    spdlog::info("ferryctl kill: closing allocation {}", order->allocation->to_string());
    st.pool->close_relayed(*order->allocation);
  }
}

void on_signal(uv_signal_t* s, int signum) {
  auto* st = UvHandle<uv_signal_t>::owner_of<ShutdownState>(s);
  const char* name = signum == SIGINT ? "SIGINT" : "SIGTERM";
  const uint32_t timeout = st->config->drain.timeout;
  if (signum == SIGINT || st->drain->sigterm() || timeout == 0) {
    spdlog::info("got {}, shutting down{}", name, st->drain->sigterm() ? " without waiting for the drain" : "");
    uv_stop(s->loop);
    return;
  }
  st->drain->set_sigterm();
  apply_drain(*st);
  st->deadline_ms = monotonic_ms(*st->clock) + uint64_t{timeout} * 1000;
  spdlog::info(
      "got SIGTERM, draining: {} allocation(s) left, waiting up to {} s (again to stop at once); new "
      "allocations {}",
      st->pool->active_allocations(), timeout,
      st->applied.alternate ? "go to " + st->applied.alternate->to_string() : std::string("refused (508)"));
  uv_timer_start(
      st->poll.get(),
      [](uv_timer_t* t) {
    auto* st = UvHandle<uv_timer_t>::owner_of<ShutdownState>(t);
    const int64_t left = st->pool->active_allocations();
    if (left <= 0) {
      spdlog::info("drained: no allocation left, shutting down");
      uv_stop(t->loop);
    } else if (monotonic_ms(*st->clock) >= st->deadline_ms) {
      spdlog::info("drain timeout ({} s): shutting down with {} allocation(s) left", st->config->drain.timeout, left);
      uv_stop(t->loop);
    }
      },
      0, kDrainPollMs);
}

void start_registry(ShutdownState& st, uv_loop_t* loop) {
  const Config& config = *st.config;
  NodeRegistrySettings rs;
  rs.conninfo = config.database.url;
  rs.id = st.node_id;
  rs.version = FERRY_VERSION;
  rs.urls = ice_settings(config, st.pool->listeners()).urls;
  rs.addresses = advertised_addresses(st.pool->listeners(), config.relay.addresses);
  rs.heartbeat_interval = std::chrono::seconds(config.node.heartbeat_interval);
  NodeRegistry::Hooks hooks;
  hooks.report = [&st] { return node_report(st); };
  hooks.directive = [&st](const NodeDirective& d) { on_directive(st, d); };
  hooks.fleet = [&st](const std::vector<FleetNode>& nodes) { apply_fleet(st, nodes); };
  hooks.collect = [&st] { collect_sessions(st); };
  hooks.sessions = [&st] { return take_sessions(st); };
  hooks.kill = [&st](std::string_view payload) { on_kill(st, payload); };
  // The per-user quota across the fleet: worker i counts the other nodes' allocations (the
  // database's, as of their last heartbeat) and this node's other workers' (this collection).
  hooks.user_counts = [&st](turn::UserCounts other_nodes) {
    st.pool->set_remote_user_counts(turn::remote_counts_per_worker(other_nodes, st.worker_user_counts));
  };
  st.registry = std::make_unique<NodeRegistry>(loop, std::move(rs), std::move(hooks));
  st.registry->start();
  spdlog::info("node registry: this is node {} (heartbeat every {} s)", st.node_id, config.node.heartbeat_interval);
}

}  // namespace

void Operations::wait_for_shutdown(std::function<void()> on_sighup) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  ShutdownState st;
  st.ops = this;
  st.pool = &pool_;
  st.config = &config_;
  st.clock = &clock_;
  st.drain.emplace(config_.drain.alternate_server);
  st.node_id = resolved_node_id(config_);
  {
    UvHandle<uv_signal_t> sigint, sigterm, sighup;
    sigint.init(&loop, &st, uv_signal_init);
    sigterm.init(&loop, &st, uv_signal_init);
    st.poll.init(&loop, &st, uv_timer_init);
    st.deadline.init(&loop, &st, uv_timer_init);
    uv_signal_start(sigint.get(), on_signal, SIGINT);
    uv_signal_start(sigterm.get(), on_signal, SIGTERM);
    sighup.init(&loop, &on_sighup, uv_signal_init);
    if (on_sighup) {
      uv_signal_start(
          sighup.get(), [](uv_signal_t* s, int) { (*UvHandle<uv_signal_t>::owner_of<std::function<void()>>(s))(); },
          SIGHUP);
    }
    // The fleet's registry rides this loop: off the data path, and gone with it.
    if (!config_.database.url.empty()) start_registry(st, &loop);
    uv_run(&loop, UV_RUN_DEFAULT);
    if (st.registry) st.registry->stop();
    st.poll.close();
    st.deadline.close();
  }                               // the signal handles close here
  uv_run(&loop, UV_RUN_DEFAULT);  // their close callbacks free them (and the registry's connections')
  st.registry.reset();
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
}

}  // namespace ferry::server
