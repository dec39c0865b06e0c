#include "server/ops/ice_servers.h"

#include <algorithm>
#include <cctype>
#include <charconv>

#include <nlohmann/json.hpp>

#include "server/config/local_addresses.h"

namespace ferry::server {

std::optional<stun::TransportAddress> advertised_address(const ListenerConfig& l,
                                                         const std::vector<RelayAddressConfig>& relays) {
  if (l.nat_alternate) return std::nullopt;  // for RFC 5780 clients, who learn it from OTHER-ADDRESS
  if (!is_unspecified(l.address)) return l.address;
  for (const auto& r : relays)
    if (r.external && r.external->family == l.address.family) return r.external->with_port(l.address.port);
  return std::nullopt;
}

std::vector<std::pair<Transport, stun::TransportAddress>> advertised_addresses(
    const std::vector<ListenerConfig>& listeners, const std::vector<RelayAddressConfig>& relays) {
  std::vector<std::pair<Transport, stun::TransportAddress>> out;
  for (const auto& l : listeners) {
    auto host = advertised_address(l, relays);
    if (!host) continue;
    const bool seen = std::any_of(out.begin(), out.end(), [&](const auto& p) { return p.first == l.transport; });
    if (!seen) out.emplace_back(l.transport, *host);
  }
  return out;
}

std::vector<std::string> derive_ice_urls(const std::vector<ListenerConfig>& listeners,
                                         const std::vector<RelayAddressConfig>& relays) {
  std::vector<std::string> out;
  auto add = [&](std::string url) {
    if (std::find(out.begin(), out.end(), url) == out.end()) out.push_back(std::move(url));
  };
  for (const auto& l : listeners) {
    std::optional<stun::TransportAddress> host = advertised_address(l, relays);
    if (!host) continue;
    const std::string hp = host->to_string();  // "1.2.3.4:3478" or "[2001:db8::1]:3478"
    std::string url;
    switch (l.transport) {
      case Transport::Udp:
        url = "stun:";
        url += hp;
        add(url);
        url = "turn:";
        url += hp;
        url += "?transport=udp";
        add(url);
        break;
      case Transport::Tcp:
        url = "turn:";
        url += hp;
        url += "?transport=tcp";
        add(url);
        break;
      case Transport::Tls:
        url = "turns:";
        url += hp;
        url += "?transport=tcp";
        add(url);
        break;
      case Transport::Dtls: break;  // browsers do not speak TURN over DTLS
    }
  }
  return out;
}

std::optional<uint64_t> parse_ttl(std::optional<std::string_view> text, uint64_t fallback, uint64_t max) {
  if (!text) return std::min(fallback, max);
  uint64_t v = 0;
  auto [p, ec] = std::from_chars(text->data(), text->data() + text->size(), v);
  if (text->empty() || p != text->data() + text->size()) return std::nullopt;
  if (ec == std::errc::result_out_of_range) return max;
  if (ec != std::errc{} || v == 0) return std::nullopt;
  return std::min(v, max);
}

bool valid_user_id(std::string_view user) {
  if (user.empty() || user.size() > 64) return false;
  return std::all_of(user.begin(), user.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.' || c == '@';
  });
}

std::string ice_servers_json(const std::vector<std::string>& urls, const auth::MintedCredential& credential) {
  return fleet_ice_servers_json({urls}, credential);
}

std::string fleet_ice_servers_json(const std::vector<std::vector<std::string>>& nodes,
                                   const auth::MintedCredential& credential) {
  nlohmann::json servers = nlohmann::json::array();
  for (const auto& urls : nodes)
    servers.push_back({{"urls", urls}, {"username", credential.username}, {"credential", credential.password}});
  nlohmann::json body = {
      {"iceServers", servers}, {"ttl", credential.ttl_seconds}, {"expires", credential.expires_unix}};
  return body.dump();
}

}  // namespace ferry::server
