#include "server/worker/transport_config.h"

#include <spdlog/spdlog.h>

namespace ferry::server {

bool needs_tls(const Config& config) {
  for (const auto& l : config.listeners)
    if (l.transport == Transport::Tls || l.transport == Transport::Dtls) return true;
  return false;
}

TlsOptions tls_options(const Config& config) {
  TlsOptions o;
  o.cert_file = config.tls.cert;
  o.key_file = config.tls.key;
  if (!config.tls.ciphers.empty()) o.ciphers = config.tls.ciphers;
  if (!config.tls.ciphersuites.empty()) o.ciphersuites = config.tls.ciphersuites;
  o.tls13_only = config.tls.min_version == "1.3";
  return o;
}

ConnectionLimits connection_limits(const Config& config) {
  ConnectionLimits l;
  l.max_connections = config.limits.max_connections;
  l.max_connections_per_ip = config.limits.max_connections_per_ip;
  l.handshake_timeout_ms = uint64_t{config.limits.handshake_timeout} * 1000;
  l.idle_timeout_ms = uint64_t{config.limits.connection_idle_timeout} * 1000;
  l.write_budget = config.limits.connection_write_budget;
  return l;
}

std::optional<std::string> configure_transports(const Config& config, WorkerSettings& settings) {
  settings.tcp = connection_limits(config);
  if (!needs_tls(config)) return std::nullopt;
  std::string error;
  auto certs = TlsCertificates::load(tls_options(config), &error);
  if (!certs) return error;
  spdlog::info("TLS certificate {}: {}", config.tls.cert, certs->current()->description());
  certs->watch(std::chrono::seconds(config.tls.reload_interval));
  settings.tls = std::move(certs);
  return std::nullopt;
}

}  // namespace ferry::server
