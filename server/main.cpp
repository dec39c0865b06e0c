// The ferry binary: configuration in, workers up, signals handled, workers down.
#include <csignal>
#include <cstdio>
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
#include "server/cli.h"
#include "server/config.h"
#include "server/local_addresses.h"
#include "server/log.h"
#include "server/operations.h"
#include "server/worker_pool.h"
#include "turn/clock.h"
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
void add_listener_addresses(turn::PeerPolicy& policy, const Config& config,
                            const std::vector<server::InterfaceAddress>& interfaces) {
  for (const auto& l : config.listeners) {
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

turn::ServerCoreConfig core_config(const Config& config, std::vector<turn::RelayAddress> relays) {
  turn::ServerCoreConfig c;
  c.realm = config.realm;
  c.software = config.software;
  c.relays = std::move(relays);
  c.port_min = config.relay.port_min;
  c.port_max = config.relay.port_max;
  c.default_lifetime = config.limits.default_lifetime;
  c.max_lifetime = config.limits.max_lifetime;
  c.nonce_lifetime = config.auth.nonce_lifetime;
  c.max_allocations = config.limits.max_allocations;
  c.max_allocations_per_user = config.limits.max_allocations_per_user;
  c.max_permissions = config.limits.max_permissions_per_allocation;
  c.max_channels = config.limits.max_channels_per_allocation;
  c.max_channel_number = config.relay.strict_channel_numbers ? turn::ChannelNumber::kMax : turn::ChannelNumber::kMaxRfc5766;
  c.bandwidth_per_allocation = config.limits.bandwidth_per_allocation;
  c.userhash = config.auth.userhash;
  c.nonce_key = auth::random_key();  // one key for all workers: a nonce from one is valid at another
  c.seed = random_seed();
  return c;
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

void warn_unsupported(const Config& config) {
  if (!config.database.url.empty()) spdlog::warn("database: PostgreSQL credentials are not supported yet; ignored");
  for (const auto& l : config.listeners) {
    if (l.transport == server::Transport::Tls || l.transport == server::Transport::Dtls)
      spdlog::warn("listener {} {}: {} is not supported yet; not listening", server::to_string(l.transport),
                   l.address.to_string(), server::to_string(l.transport));
  }
}

void log_relays(const std::vector<turn::RelayAddress>& relays) {
  for (const auto& r : relays) {
    if (r.external)
      spdlog::info("relay address {} (advertised as {})", r.local.ip_string(), r.external->ip_string());
    else
      spdlog::info("relay address {}", r.local.ip_string());
  }
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
  warn_unsupported(config);

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
  add_listener_addresses(base.policy, config, interfaces);
  base.core = core_config(config, std::move(resolved.relays));
  base.listeners = config.listeners;

  const size_t ports = size_t{config.relay.port_max} - config.relay.port_min + 1;
  pool_settings.workers = server::worker_count(config.workers);
  if (pool_settings.workers > ports) {
    spdlog::warn("workers: {} workers but only {} relay ports; running {}", pool_settings.workers, ports, ports);
    pool_settings.workers = ports;
  }
  auto users = std::make_shared<const auth::StaticUsers>(static_users(config));
  std::vector<std::string> secrets;
  for (const auto& s : config.auth.shared_secrets) secrets.push_back(s.secret);
  // Each worker gets its own stores: nothing is shared between loops. Static users are asked
  // first, then shared-secret (TURN REST API) usernames "<expiry>:<user>".
  pool_settings.make_credentials = [users, secrets, realm = config.realm]() -> std::unique_ptr<auth::CredentialStore> {
    static const turn::SteadyClock clock;  // lives as long as the process; the stores only read it
    auto chain = std::make_unique<auth::ChainedStore>();
    chain->add(std::make_shared<auth::StaticUsers>(*users));
    if (!secrets.empty()) chain->add(std::make_shared<auth::SharedSecretStore>(realm, clock, secrets));
    return chain;
  };

  server::WorkerPool pool(std::move(pool_settings));
  if (auto err = pool.start()) {
    spdlog::error("cannot listen on {}", *err);
    return 1;
  }
  for (const auto& l : pool.listeners())
    spdlog::info("listening on {} {}", server::to_string(l.transport), l.address.to_string());
  spdlog::info("ferry {} running with {} worker{}, relay ports {}-{}, {} user{}, {} shared secret{}", FERRY_VERSION,
               pool.size(), pool.size() == 1 ? "" : "s", config.relay.port_min, config.relay.port_max,
               config.auth.users.size(), config.auth.users.size() == 1 ? "" : "s", secrets.size(),
               secrets.size() == 1 ? "" : "s");

  // Metrics, health, readiness, ICE servers and the SIGTERM drain (server/operations.h).
  server::Operations ops(config, pool);
  if (auto err = ops.start()) {
    spdlog::error("cannot listen on {}", *err);
    pool.stop();
    return 1;
  }
  ops.wait_for_shutdown();
  ops.stop();
  pool.stop();
  spdlog::info("stopped");
  return 0;
}
