#include "server/ops/fleet_nodes.h"

#include <algorithm>
#include <tuple>

#include <nlohmann/json.hpp>

namespace ferry::server {

bool less_loaded(const FleetNode& a, const FleetNode& b) {
  return std::tie(a.allocations, a.relayed_bps, a.id) < std::tie(b.allocations, b.relayed_bps, b.id);
}

std::vector<const FleetNode*> pick_active(const std::vector<FleetNode>& nodes, std::string_view exclude, size_t n) {
  std::vector<const FleetNode*> out;
  for (const auto& node : nodes)
    if (node.status == "active" && node.id != exclude) out.push_back(&node);
  std::sort(out.begin(), out.end(), [](const FleetNode* a, const FleetNode* b) { return less_loaded(*a, *b); });
  if (out.size() > n) out.resize(n);
  return out;
}

std::optional<stun::TransportAddress> choose_alternate(const std::vector<FleetNode>& nodes, std::string_view self) {
  for (const FleetNode* node : pick_active(nodes, self, nodes.size())) {
    for (Transport t : {Transport::Udp, Transport::Tcp, Transport::Tls, Transport::Dtls})
      for (const auto& [transport, address] : node->addresses)
        if (transport == t) return address;
  }
  return std::nullopt;
}

std::string urls_json(const std::vector<std::string>& urls) { return nlohmann::json(urls).dump(); }

std::string addresses_json(const std::vector<std::pair<Transport, stun::TransportAddress>>& addresses) {
  nlohmann::json out = nlohmann::json::object();
  for (const auto& [transport, address] : addresses) out[std::string(to_string(transport))] = address.to_string();
  return out.dump();
}

std::vector<std::string> parse_urls_json(std::string_view text) {
  std::vector<std::string> out;
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (!j.is_array()) return out;
  for (const auto& u : j)
    if (u.is_string()) out.push_back(u.get<std::string>());
  return out;
}

std::vector<std::pair<Transport, stun::TransportAddress>> parse_addresses_json(std::string_view text) {
  std::vector<std::pair<Transport, stun::TransportAddress>> out;
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (!j.is_object()) return out;
  for (const auto& [key, value] : j.items()) {
    auto transport = parse_transport(key);
    if (!transport || !value.is_string()) continue;
    auto address = stun::TransportAddress::parse(value.get<std::string>());
    if (address && address->port != 0) out.emplace_back(*transport, *address);
  }
  return out;
}

}  // namespace ferry::server
