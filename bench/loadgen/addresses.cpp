#include "bench/loadgen/addresses.h"

#include <algorithm>
#include <array>

namespace ferry::bench {

bool is_loopback(const stun::TransportAddress& a) {
  if (a.is_v4()) return a.ip[0] == 127;
  static constexpr std::array<uint8_t, 16> kV6Loopback{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  if (a.ip == kV6Loopback) return true;
  const bool mapped = std::all_of(a.ip.begin(), a.ip.begin() + 10, [](uint8_t b) { return b == 0; }) &&
                      a.ip[10] == 0xFF && a.ip[11] == 0xFF;
  return mapped && a.ip[12] == 127;
}

stun::TransportAddress client_source(const Options& o, uint32_t i) {
  if (o.target.is_v4()) {
    if (is_loopback(o.target) && o.client_ips > 1) {
      return stun::TransportAddress::v4(0x7F000001u + i % std::min<uint32_t>(o.client_ips, 254), 0);
    }
    if (is_loopback(o.target)) return stun::TransportAddress::v4(0x7F000001u, 0);
    return stun::TransportAddress::v4(0, 0);
  }
  if (is_loopback(o.target)) return o.target.with_port(0);
  return stun::TransportAddress::v6({}, 0);
}

}  // namespace ferry::bench
