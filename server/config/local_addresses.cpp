#include "server/config/local_addresses.h"

#include <algorithm>
#include <optional>

#include <uv.h>

namespace ferry::server {

namespace {

bool is_loopback(const stun::TransportAddress& a) {
  if (a.is_v4()) return a.ip[0] == 127;
  static constexpr std::array<uint8_t, 16> kLoopback6{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  return a.ip == kLoopback6;
}

bool is_link_local(const stun::TransportAddress& a) {
  if (a.is_v4()) return a.ip[0] == 169 && a.ip[1] == 254;
  return a.ip[0] == 0xfe && (a.ip[1] & 0xc0) == 0x80;
}

std::optional<stun::TransportAddress> pick(stun::Family family, const std::vector<InterfaceAddress>& interfaces) {
  std::optional<stun::TransportAddress> loopback;
  for (const auto& i : interfaces) {
    if (i.ip.family != family || is_unspecified(i.ip)) continue;
    if (is_loopback(i.ip)) {
      if (!loopback) loopback = i.ip;
      continue;
    }
    if (!is_link_local(i.ip)) return i.ip;
  }
  return loopback;
}

}  // namespace

std::vector<InterfaceAddress> interface_addresses() {
  std::vector<InterfaceAddress> out;
  uv_interface_address_t* list = nullptr;
  int count = 0;
  if (uv_interface_addresses(&list, &count) != 0) return out;
  for (int k = 0; k < count; ++k) {
    auto ip = stun::TransportAddress::from_sockaddr(reinterpret_cast<const sockaddr*>(&list[k].address));
    if (ip) out.push_back({list[k].name, ip->with_port(0)});
  }
  uv_free_interface_addresses(list, count);
  return out;
}

bool is_unspecified(const stun::TransportAddress& ip) {
  return std::all_of(ip.ip.begin(), ip.ip.begin() + static_cast<long>(ip.ip_size()), [](uint8_t b) { return b == 0; });
}

ResolvedRelays resolve_relay_addresses(const std::vector<RelayAddressConfig>& configured,
                                       const std::vector<InterfaceAddress>& interfaces) {
  ResolvedRelays out;
  for (const auto& c : configured) {
    turn::RelayAddress r{c.address.with_port(0), c.external};
    if (is_unspecified(r.local)) {
      auto ip = pick(r.local.family, interfaces);
      if (!ip) {
        out.warnings.push_back("relay address " + r.local.ip_string() + ": no " + (r.local.is_v4() ? "IPv4" : "IPv6") +
                               " interface address, relaying over " + (r.local.is_v4() ? "IPv4" : "IPv6") +
                               " disabled");
        continue;
      }
      r.local = *ip;
    }
    const bool dup = std::any_of(out.relays.begin(), out.relays.end(),
                                 [&](const turn::RelayAddress& o) { return o.local == r.local; });
    if (!dup) out.relays.push_back(r);
  }
  return out;
}

}  // namespace ferry::server
