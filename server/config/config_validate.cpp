// Checks across keys (port_min <= port_max, TLS files for tls/dtls listeners, RFC 5780 pairs,
// ...) that no single key's parser can make, naming the key and where its value came from; and
// the loaders that run every layer but flags.
#include <set>

#include "server/config/config.h"
#include "server/config/local_addresses.h"

namespace ferry::server {

std::optional<ConfigError> validate_config(const Config& c) {
  auto where = [&](const std::string& key) -> std::string {
    auto it = c.origins.find(key);
    return it == c.origins.end() ? "" : it->second + ": ";
  };
  auto fail = [&](const std::string& key, const std::string& detail) {
    return ConfigError{where(key) + key + ": " + detail};
  };
  // Blame whichever of two keys was set last by the user (the one with an origin).
  auto blame = [&](const std::string& a, const std::string& b) {
    return c.origins.count(a) ? a : (c.origins.count(b) ? b : a);
  };

  if (c.listeners.empty()) return fail("listeners", "needs at least one listener");
#if !FERRY_HAVE_BPF
  if (c.data_path == DataPath::Kernel)
    return fail("data_path",
                "kernel needs ferry built with libbpf, clang and bpftool (this build has no kernel fast "
                "path); use user or auto");
#endif
  for (size_t i = 0; i < c.listeners.size(); ++i)
    for (size_t j = 0; j < i; ++j)
      if (c.listeners[i] == c.listeners[j])
        return fail("listeners", "listed twice: " + c.listeners[i].address.to_string() + "/" +
                                     std::string(to_string(c.listeners[i].transport)));
  for (const auto& l : c.listeners) {
    if ((l.transport == Transport::Tls || l.transport == Transport::Dtls) && (c.tls.cert.empty() || c.tls.key.empty()))
      return fail("listeners", "the " + std::string(to_string(l.transport)) + " listener on " + l.address.to_string() +
                                   " needs tls.cert and tls.key");
  }
  if (c.tls.cert.empty() != c.tls.key.empty())
    return fail(c.tls.cert.empty() ? "tls.key" : "tls.cert", "tls.cert and tls.key go together: set both or neither");

  // RFC 7635 keys come from auth.oauth_keys or the database; auth.oauth with neither offers a
  // mechanism no token could pass.
  if (c.auth.oauth_enabled && c.auth.oauth_keys.empty() && c.database.url.empty())
    return fail("auth.oauth", "needs auth.oauth_keys or database.url (ferryctl oauthkey) to find AS-RS keys");
  if (c.relay.addresses.empty()) return fail("relay.addresses", "needs at least one address");
  for (const auto& r : c.relay.addresses) {
    if (r.external && r.external->family != r.address.family)
      return fail("relay.addresses", "external address " + r.external->ip_string() + " is not the same IP family as " +
                                         r.address.ip_string());
    if (r.external && r.external->ip == stun::TransportAddress::parse_ip(r.external->is_v4() ? "0.0.0.0" : "::")->ip)
      return fail("relay.addresses", "external address must be a concrete address, not " + r.external->ip_string());
  }
  if (c.relay.port_min > c.relay.port_max) {
    auto key = blame("relay.port_min", "relay.port_max");
    return fail(key, "relay.port_min (" + std::to_string(c.relay.port_min) + ") must not be above relay.port_max (" +
                         std::to_string(c.relay.port_max) + ")");
  }
  if (c.limits.default_lifetime > c.limits.max_lifetime) {
    auto key = blame("limits.default_lifetime", "limits.max_lifetime");
    return fail(key, "limits.default_lifetime (" + std::to_string(c.limits.default_lifetime) +
                         ") must not be above limits.max_lifetime (" + std::to_string(c.limits.max_lifetime) + ")");
  }
  if (c.limits.max_allocations != 0 && c.limits.max_allocations_per_user > c.limits.max_allocations) {
    auto key = blame("limits.max_allocations_per_user", "limits.max_allocations");
    return fail(key, "limits.max_allocations_per_user (" + std::to_string(c.limits.max_allocations_per_user) +
                         ") must not be above limits.max_allocations (" + std::to_string(c.limits.max_allocations) +
                         ")");
  }
  if (c.http.credential_ttl > c.http.max_credential_ttl) {
    auto key = blame("http.credential_ttl", "http.max_credential_ttl");
    return fail(key, "http.credential_ttl (" + std::to_string(c.http.credential_ttl) +
                         ") must not be above http.max_credential_ttl (" + std::to_string(c.http.max_credential_ttl) +
                         ")");
  }
  for (size_t i = 0; i < c.http.api_keys.size(); ++i)
    for (size_t j = 0; j < i; ++j)
      if (c.http.api_keys[i].name == c.http.api_keys[j].name)
        return fail("http.api_keys", "duplicate API key name '" + c.http.api_keys[i].name + "'");
  std::set<std::string> names;
  for (const auto& u : c.auth.users)
    if (!names.insert(u.name).second) return fail("auth.users", "duplicate user '" + u.name + "'");
  std::optional<NatDiscoveryPlan> plan;
  if (auto d = plan_nat_discovery(c, plan); !d.empty())
    return fail(c.nat_discovery.other_address ? "nat_discovery.other_address" : "nat_discovery.other_port", d);
  return std::nullopt;
}

std::string plan_nat_discovery(const Config& c, std::optional<NatDiscoveryPlan>& out) {
  out.reset();
  const NatDiscoveryConfig& nd = c.nat_discovery;
  if (!nd.enabled()) return "";
  // RFC 5780 §6: without a second address and a second port there is no OTHER-ADDRESS to give.
  if (!nd.other_address) return "needs nat_discovery.other_address too: RFC 5780 needs a second IP and a second port";
  if (nd.other_port == 0) return "needs nat_discovery.other_port too: RFC 5780 needs a second IP and a second port";
  const stun::TransportAddress a2 = nd.other_address->with_port(nd.other_port);
  if (is_unspecified(a2)) return "must be a concrete address, not " + a2.ip_string();
  // The primary is the udp listener of A2's family on another IP and another port.
  std::vector<const ListenerConfig*> primaries;
  for (const auto& l : c.listeners)
    if (l.transport == Transport::Udp && l.address.family == a2.family && l.address.ip != a2.ip &&
        l.address.port != a2.port)
      primaries.push_back(&l);
  const std::string family = a2.is_v4() ? "IPv4" : "IPv6";
  if (primaries.empty())
    return "needs a udp " + family + " listener on another address and port to pair with " + a2.to_string();
  if (primaries.size() > 1)
    return "pairs with one udp " + family + " listener, but there are several (" + primaries[0]->address.to_string() +
           ", " + primaries[1]->address.to_string() + ")";
  const stun::TransportAddress a1 = primaries[0]->address;
  // RFC 5780 §6.1: RESPONSE-ORIGIN names the address a response leaves from; a wildcard cannot.
  if (is_unspecified(a1))
    return "the udp listener " + a1.to_string() + " it pairs with must be on a concrete address, not a wildcard";
  NatDiscoveryPlan plan{a1, a2, {}};
  for (const auto& address : {a2.with_port(a1.port), a1.with_port(a2.port), a2}) {
    ListenerConfig l{address, Transport::Udp, true};
    bool configured = false;
    for (const auto& existing : c.listeners)
      configured = configured || (existing.transport == Transport::Udp && existing.address == address);
    if (!configured) plan.added.push_back(l);
  }
  out = std::move(plan);
  return "";
}

ConfigResult load_config_string(std::string_view yaml, std::string_view source_name, const Environment& env) {
  auto r = parse_config_string(yaml, source_name);
  if (!r) return r;
  Config c = std::move(r).value();
  if (auto e = apply_environment(c, env)) return *e;
  if (auto e = validate_config(c)) return *e;
  return c;
}

ConfigResult load_config_file(const std::string& path, const Environment& env) {
  auto r = parse_config_file(path);
  if (!r) return r;
  Config c = std::move(r).value();
  if (auto e = apply_environment(c, env)) return *e;
  if (auto e = validate_config(c)) return *e;
  return c;
}
}  // namespace ferry::server
