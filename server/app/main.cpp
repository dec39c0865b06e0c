// The ferry binary: configuration in, workers up, signals handled, workers down.
#include <chrono>
#include <csignal>
#include <cstdio>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <variant>

#include <openssl/rand.h>
#include <spdlog/spdlog.h>
#include <uv.h>

#include "auth/chained_store.h"
#include "auth/nonce.h"
#include "auth/shared_secret.h"
#include "auth/static_users.h"
#include "server/app/cli.h"
#include "server/config/config.h"
#include "server/config/local_addresses.h"
#include "server/config/node_id.h"
#include "server/fastpath/kernel_fast_path.h"
#include "server/app/log.h"
#include "server/worker/transport_config.h"
#include "server/ops/operations.h"
#include "server/worker/worker_pool.h"
#include "base/clock.h"
#include "turn/peer_policy.h"

namespace {

using namespace ferry;
using server::Config;

uint64_t random_seed() {
  uint64_t seed = 0;
  RAND_bytes(reinterpret_cast<unsigned char*>(&seed), sizeof seed);  // port choice should be unguessable
  return seed;
}

// Peers that are this server (listener and relay IPs) must never be relayed to; the core adds its
// relay addresses itself. A wildcard listener is every interface address of its family.
void add_listener_addresses(turn::PeerPolicy& policy, const std::vector<server::ListenerConfig>& listeners,
                            const std::vector<server::InterfaceAddress>& interfaces) {
  for (const auto& l : listeners) {
    if (!server::is_unspecified(l.address)) {
      policy.add_own_address(l.address);
      continue;
    }
    for (const auto& i : interfaces) {
      if (i.ip.family == l.address.family) policy.add_own_address(i.ip);
    }
  }
}

std::optional<std::string> add_peer_rules(turn::PeerPolicy& policy, const Config& config) {
  for (const auto& text : config.peers.allow) {
    auto c = turn::Cidr::parse(text);
    if (!c) return "peers.allow: not an address or prefix: " + text;
    policy.allow(*c);
  }
  for (const auto& text : config.peers.deny) {
    auto c = turn::Cidr::parse(text);
    if (!c) return "peers.deny: not an address or prefix: " + text;
    policy.deny(*c);
  }
  return std::nullopt;
}

// The fields ServerCore::set_limits takes: set at startup and again on SIGHUP.
void set_limits(turn::ServerCoreConfig& c, const Config& config) {
  c.default_lifetime = config.limits.default_lifetime;
  c.max_lifetime = config.limits.max_lifetime;
  c.max_allocations = config.limits.max_allocations;
  c.max_allocations_per_user = config.limits.max_allocations_per_user;
  c.max_permissions = config.limits.max_permissions_per_allocation;
  c.max_channels = config.limits.max_channels_per_allocation;
  c.bandwidth_per_allocation = config.limits.bandwidth_per_allocation;
  c.unauth_requests_per_second = config.limits.unauth_requests_per_second;
  c.tcp_relay = config.relay.tcp_allocations;
  c.strict_expiry = config.auth.strict_expiry;
  c.mobility = config.turn.mobility;
}

turn::ServerCoreConfig core_config(const Config& config, std::vector<turn::RelayAddress> relays) {
  turn::ServerCoreConfig c;
  c.realm = config.realm;
  c.software = config.software;
  c.relays = std::move(relays);
  c.port_min = config.relay.port_min;
  c.port_max = config.relay.port_max;
  set_limits(c, config);
  c.nonce_lifetime = config.auth.nonce_lifetime;
  c.max_channel_number =
      config.relay.strict_channel_numbers ? turn::ChannelNumber::kMax : turn::ChannelNumber::kMaxRfc5766;
  c.userhash = config.auth.userhash;
  if (config.oauth_enabled()) c.oauth_server_name = config.oauth_server_name();
  c.oauth_clock_skew = config.auth.oauth_clock_skew;
  c.nonce_key = auth::random_key();  // one key for all workers: a nonce from one is valid at another
  c.seed = random_seed();
  return c;
}

// Usage records and per-user metrics. The boot id tells this run's allocation ids from those of
// an earlier run of the same node (their serials start from 1 again).
server::UsageSettings usage_settings(const Config& config) {
  server::UsageSettings u;
  u.node_id = server::resolved_node_id(config);
  char boot[9];
  std::snprintf(boot, sizeof boot, "%08x", static_cast<unsigned>(random_seed()));
  u.boot_id = boot;
  u.interval = std::chrono::seconds(config.usage.interval);
  u.queue_size = config.usage.queue_size;
  u.top_users = config.usage.top_users;
  return u;
}

// Keys are derived here; the passwords go no further (and are never logged).
auth::StaticUsers static_users(const Config& config) {
  auth::StaticUsers users(config.realm);
  for (const auto& u : config.auth.users) {
    if (u.key) {
      users.add_key_md5(u.name, stun::Key::from(stun::Bytes(u.key->data(), u.key->size())));
    } else {
      users.add_password(u.name, u.password);
    }
  }
  return users;
}

server::CredentialSettings credential_settings(const Config& config) {
  server::CredentialSettings s;
  s.realm = config.realm;
  s.users = std::make_shared<const auth::StaticUsers>(static_users(config));
  for (const auto& secret : config.auth.shared_secrets) s.secrets.push_back(secret.secret);
  for (const auto& k : config.auth.oauth_keys) s.oauth_keys.push_back({k.kid, k.key, k.lifetime_max, k.as_url});
  s.database.url = config.database.url;
  s.database.pool_size = config.database.pool_size;
  s.database.cache_ttl = std::chrono::seconds(config.database.cache_ttl);
  s.database.negative_cache_ttl = std::chrono::seconds(config.database.negative_cache_ttl);
  s.database.max_stale = std::chrono::seconds(config.database.max_stale);
  s.database.secrets_refresh = std::chrono::seconds(config.database.secrets_refresh);
  return s;
}

// Keys a reload cannot change on a running server (sockets, threads, the database pool, nonces).
std::vector<std::string> restart_only_changes(const Config& a, const Config& b) {
  std::vector<std::string> changed;
  auto listeners = [](const Config& c) {
    std::string out;
    for (const auto& l : c.listeners) {
      out += server::to_string(l.transport);
      out += l.address.to_string();
      out += ' ';
    }
    return out;
  };
  if (a.realm != b.realm) changed.push_back("realm");
  if (a.workers != b.workers) changed.push_back("workers");
  if (a.data_path != b.data_path) changed.push_back("data_path");
  if (listeners(a) != listeners(b)) changed.push_back("listeners");
  if (a.nat_discovery.other_address != b.nat_discovery.other_address ||
      a.nat_discovery.other_port != b.nat_discovery.other_port)
    changed.push_back("nat_discovery");
  if (a.relay.port_min != b.relay.port_min || a.relay.port_max != b.relay.port_max) changed.push_back("relay ports");
  if (a.database.url != b.database.url || a.database.pool_size != b.database.pool_size) changed.push_back("database");
  return changed;
}

void log_relays(const std::vector<turn::RelayAddress>& relays) {
  for (const auto& r : relays) {
    if (r.external) spdlog::info("relay address {} (advertised as {})", r.local.ip_string(), r.external->ip_string());
    else spdlog::info("relay address {}", r.local.ip_string());
  }
}

// SIGHUP: read the configuration again the way startup did; apply what can change live (users,
// shared secrets, limits, log level, TLS certificates, API keys, ICE URLs) on every worker; keep
// the old configuration when the new one is broken.
struct Reloader {
  int argc;
  char** argv;
  Config current;
  server::WorkerPool* pool;
  server::TlsCertificates* tls;  // null without tls/dtls listeners
  server::Operations* ops;

  void reload() {
    spdlog::info("got SIGHUP, reloading the configuration");
    auto parsed = server::parse_command_line(argc, argv, server::process_environment());
    if (auto* exit = std::get_if<server::ExitNow>(&parsed)) {
      std::string text = exit->text;
      while (!text.empty() && text.back() == '\n') text.pop_back();
      spdlog::error("reload failed, keeping the running configuration: {}", text);
      return;
    }
    Config next = std::move(std::get<server::RunConfig>(parsed).config);
    for (const auto& key : restart_only_changes(current, next))
      spdlog::warn("reload: {} changed; it takes effect only after a restart", key);
    server::set_log_level(next.log.level);
    if (tls != nullptr) tls->reload();  // certificate files; open connections keep theirs
    auto settings = std::make_shared<const server::CredentialSettings>(credential_settings(next));
    for (size_t i = 0; i < pool->size(); ++i) pool->worker(i).reload_credentials(settings);
    // Limits: the total allocation cap is split between workers as at startup.
    turn::ServerCoreConfig limits;
    set_limits(limits, next);
    if (limits.max_allocations != 0)
      limits.max_allocations = (limits.max_allocations + pool->size() - 1) / pool->size();
    for (size_t i = 0; i < pool->size(); ++i) pool->worker(i).set_limits(limits);
    ops->api_keys().set_keys(next.http.api_keys, next.http.api_requests_per_second);
    ops->api().set_ice(server::ice_settings(next, pool->listeners()));
    spdlog::info("reloaded: {} user{}, {} shared secret{}", next.auth.users.size(),
                 next.auth.users.size() == 1 ? "" : "s", next.auth.shared_secrets.size(),
                 next.auth.shared_secrets.size() == 1 ? "" : "s");
    current = std::move(next);
  }
};

// data_path: the kernel fast path, loaded and attached once for every worker. false: refuse to start.
bool open_fast_path(const Config& config, server::WorkerSettings& base) {
  if (config.data_path == server::DataPath::User) return true;
  std::string why;
  base.fast_path = server::fastpath::KernelFastPath::open(&why);
  if (!base.fast_path) {
    if (config.data_path == server::DataPath::Kernel) {
      spdlog::error("data_path kernel: {}", why);
      return false;
    }
    spdlog::info("data_path auto: relaying in user space, the kernel fast path is unavailable: {}", why);
    return true;
  }
  std::string names;
  for (const auto& n : base.fast_path->interfaces()) names += (names.empty() ? "" : ", ") + n;
  spdlog::info("data_path {}: kernel fast path at TC ingress of {} (IPv4 UDP channels)",
               server::to_string(config.data_path), names);
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  auto parsed = server::parse_command_line(argc, argv, server::process_environment());
  if (auto* exit = std::get_if<server::ExitNow>(&parsed)) {
    std::fputs(exit->text.c_str(), exit->code == 0 ? stdout : stderr);
    return exit->code;
  }
  auto& run = std::get<server::RunConfig>(parsed);
  const Config& config = run.config;
  server::setup_logging(config.log.level, config.log.format);
  for (const auto& w : run.warnings) spdlog::warn("{}", w);

  // A client that resets its TCP connection must cost us an error code, not the process.
  std::signal(SIGPIPE, SIG_IGN);

  const auto interfaces = server::interface_addresses();
  auto resolved = server::resolve_relay_addresses(config.relay.addresses, interfaces);
  for (const auto& w : resolved.warnings) spdlog::warn("{}", w);
  if (resolved.relays.empty() && config.turn_enabled()) spdlog::warn("no relay address: TURN allocations will fail");
  log_relays(resolved.relays);

  server::PoolSettings pool_settings;
  server::WorkerSettings& base = pool_settings.base;
  if (auto err = add_peer_rules(base.policy, config)) {
    spdlog::error("{}", *err);
    return 1;
  }
  base.listeners = config.listeners;
  base.core = core_config(config, std::move(resolved.relays));
  base.usage = usage_settings(config);
  // RFC 5780: three more udp listeners around the primary one (validated with the config).
  std::optional<server::NatDiscoveryPlan> nat;
  server::plan_nat_discovery(config, nat);
  if (nat) {
    base.core.nat_discovery = turn::NatDiscovery{nat->primary, nat->alternate};
    base.listeners.insert(base.listeners.end(), nat->added.begin(), nat->added.end());
  }
  add_listener_addresses(base.policy, base.listeners, interfaces);
  if (auto err = server::configure_transports(config, base)) {
    spdlog::error("{}", *err);
    return 1;
  }
  if (!open_fast_path(config, base)) return 1;
  const auto tls = base.tls;  // reloaded on SIGHUP; connections keep the certificate they started with

  const size_t ports = size_t{config.relay.port_max} - config.relay.port_min + 1;
  pool_settings.workers = server::worker_count(config.workers);
  if (pool_settings.workers > ports) {
    spdlog::warn("workers: {} workers but only {} relay ports; running {}", pool_settings.workers, ports, ports);
    pool_settings.workers = ports;
  }
  // Each worker builds its own stores from these: static users first, then shared-secret (TURN
  // REST API) usernames "<expiry>:<user>", then PostgreSQL users.
  pool_settings.credentials = credential_settings(config);
  const size_t secrets = config.auth.shared_secrets.size();

  server::WorkerPool pool(std::move(pool_settings));
  if (auto err = pool.start()) {
    spdlog::error("cannot listen on {}", *err);
    return 1;
  }
  for (const auto& l : pool.listeners())
    spdlog::info("listening on {} {}{}", server::to_string(l.transport), l.address.to_string(),
                 l.nat_alternate ? " (RFC 5780 alternate)" : "");
  if (nat)
    spdlog::info("NAT behaviour discovery (RFC 5780): {} with other address {}", nat->primary.to_string(),
                 nat->alternate.to_string());
  spdlog::info("ferry {} running with {} worker{}, relay ports {}-{}, {} user{}, {} shared secret{}{}", FERRY_VERSION,
               pool.size(), pool.size() == 1 ? "" : "s", config.relay.port_min, config.relay.port_max,
               config.auth.users.size(), config.auth.users.size() == 1 ? "" : "s", secrets, secrets == 1 ? "" : "s",
               config.database.url.empty() ? "" : ", PostgreSQL users");

  // Metrics, health, readiness, ICE servers and the SIGTERM drain (server/ops/operations.h).
  server::Operations ops(config, pool);
  if (auto err = ops.start()) {
    spdlog::error("cannot listen on {}", *err);
    pool.stop();
    return 1;
  }
  Reloader reloader{argc, argv, config, &pool, tls.get(), &ops};
  ops.wait_for_shutdown([&reloader] { reloader.reload(); });
  ops.stop();
  pool.stop();
  spdlog::info("stopped");
  return 0;
}
