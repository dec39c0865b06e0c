#include "turn/peer_policy.h"

#include <algorithm>
#include <charconv>

namespace ferry::turn {
namespace {

constexpr size_t bits_of(Family f) { return f == Family::V4 ? 32 : 128; }

bool prefix_matches(const std::array<uint8_t, 16>& net, uint8_t prefix_len, const std::array<uint8_t, 16>& ip) {
  size_t full = prefix_len / 8;
  for (size_t i = 0; i < full; ++i) {
    if (net[i] != ip[i]) return false;
  }
  unsigned rest = prefix_len % 8;
  if (rest == 0) return true;
  auto mask = static_cast<uint8_t>(0xFF << (8 - rest));
  return (net[full] & mask) == (ip[full] & mask);
}

struct ClassEntry {
  Cidr cidr;
  PeerVerdict verdict;
};

constexpr ClassEntry v4(uint8_t a, uint8_t b, uint8_t c, uint8_t d, uint8_t len, PeerVerdict v) {
  return {Cidr{Family::V4, len, {a, b, c, d}}, v};
}
constexpr ClassEntry v6(std::array<uint8_t, 16> ip, uint8_t len, PeerVerdict v) {
  return {Cidr{Family::V6, len, ip}, v};
}

// Most specific first where ranges nest (broadcast inside 240/4).
constexpr std::array kV4Classes = {
    v4(0, 0, 0, 0, 8, PeerVerdict::Unspecified),  // RFC 1122 "this network"
    v4(127, 0, 0, 0, 8, PeerVerdict::Loopback),        v4(10, 0, 0, 0, 8, PeerVerdict::Private),
    v4(172, 16, 0, 0, 12, PeerVerdict::Private),       v4(192, 168, 0, 0, 16, PeerVerdict::Private),
    v4(100, 64, 0, 0, 10, PeerVerdict::SharedAddress), v4(169, 254, 0, 0, 16, PeerVerdict::LinkLocal),
    v4(224, 0, 0, 0, 4, PeerVerdict::Multicast),       v4(255, 255, 255, 255, 32, PeerVerdict::Broadcast),
    v4(240, 0, 0, 0, 4, PeerVerdict::Reserved),
};

constexpr std::array kV6Classes = {
    v6({}, 128, PeerVerdict::Unspecified),
    v6({0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, 128, PeerVerdict::Loopback),
    v6({0xfc}, 7, PeerVerdict::UniqueLocal),
    v6({0xfe, 0x80}, 10, PeerVerdict::LinkLocal),
    v6({0xff}, 8, PeerVerdict::Multicast),
    v6({0x01, 0x00}, 64, PeerVerdict::DiscardOnly),
    v6({0x00, 0x64, 0xff, 0x9b, 0x00, 0x01}, 48, PeerVerdict::Nat64LocalUse),
};

// IPv6 forms that deliver to an IPv4 address, with where the IPv4 bytes sit.
struct Embedding {
  Cidr prefix;
  uint8_t offset;
};
constexpr std::array kEmbeddings = {
    Embedding{{Family::V6, 96, {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff}}, 12},  // IPv4-mapped
    Embedding{{Family::V6, 96, {}}, 12},                                          // IPv4-compatible
    Embedding{{Family::V6, 96, {0x00, 0x64, 0xff, 0x9b}}, 12},                    // RFC 6052 NAT64
    Embedding{{Family::V6, 16, {0x20, 0x02}}, 2},                                 // RFC 3056 6to4
};

}  // namespace

std::optional<Cidr> Cidr::parse(std::string_view text) {
  auto slash = text.find('/');
  auto ip = TransportAddress::parse_ip(text.substr(0, slash));
  if (!ip) return std::nullopt;
  size_t len = bits_of(ip->family);
  if (slash != std::string_view::npos) {
    auto digits = text.substr(slash + 1);
    unsigned value = 0;
    auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
    if (digits.empty() || ec != std::errc{} || end != digits.data() + digits.size() || value > len) {
      return std::nullopt;
    }
    len = value;
  }
  return of(*ip, static_cast<uint8_t>(len));
}

Cidr Cidr::of(const TransportAddress& addr, uint8_t prefix_len) {
  Cidr c;
  c.family = addr.family;
  c.prefix_len = static_cast<uint8_t>(std::min<size_t>(prefix_len, bits_of(addr.family)));
  for (size_t bit = 0; bit < c.prefix_len; bit += 8) {
    size_t i = bit / 8;
    unsigned keep = c.prefix_len - bit >= 8 ? 8 : c.prefix_len - bit;
    c.ip[i] = static_cast<uint8_t>(addr.ip[i] & (0xFF << (8 - keep)));
  }
  return c;
}

bool Cidr::contains(const TransportAddress& addr) const {
  return addr.family == family && prefix_matches(ip, prefix_len, addr.ip);
}

std::string Cidr::to_string() const {
  TransportAddress a;
  a.family = family;
  a.ip = ip;
  return a.ip_string() + "/" + std::to_string(prefix_len);
}

std::string_view to_string(PeerVerdict v) {
  switch (v) {
    case PeerVerdict::Allowed: return "allowed";
    case PeerVerdict::InvalidPort: return "invalid_port";
    case PeerVerdict::DeniedByConfig: return "denied_by_config";
    case PeerVerdict::OwnAddress: return "own_address";
    case PeerVerdict::Unspecified: return "unspecified";
    case PeerVerdict::Loopback: return "loopback";
    case PeerVerdict::Private: return "private";
    case PeerVerdict::SharedAddress: return "shared_address";
    case PeerVerdict::LinkLocal: return "link_local";
    case PeerVerdict::Multicast: return "multicast";
    case PeerVerdict::Reserved: return "reserved";
    case PeerVerdict::Broadcast: return "broadcast";
    case PeerVerdict::UniqueLocal: return "unique_local";
    case PeerVerdict::DiscardOnly: return "discard_only";
    case PeerVerdict::Nat64LocalUse: return "nat64_local_use";
  }
  return "unknown";
}

PeerVerdict PeerPolicy::default_class(const TransportAddress& ip) {
  if (ip.family == Family::V4) {
    for (const auto& e : kV4Classes) {
      if (e.cidr.contains(ip)) return e.verdict;
    }
  } else {
    for (const auto& e : kV6Classes) {
      if (e.cidr.contains(ip)) return e.verdict;
    }
  }
  return PeerVerdict::Allowed;
}

std::optional<TransportAddress> PeerPolicy::embedded_v4(const TransportAddress& ip) {
  if (ip.family != Family::V6) return std::nullopt;
  for (const auto& e : kEmbeddings) {
    if (!e.prefix.contains(ip)) continue;
    // :: and ::1 sit inside ::/96 but are IPv6's own unspecified/loopback (RFC 4291 §2.5.5.1).
    if (e.prefix.ip == std::array<uint8_t, 16>{} && ip.ip[12] == 0 && ip.ip[13] == 0 && ip.ip[14] == 0 &&
        ip.ip[15] <= 1) {
      return std::nullopt;
    }
    TransportAddress v4;
    v4.family = Family::V4;
    v4.port = ip.port;
    for (size_t i = 0; i < 4; ++i) v4.ip[i] = ip.ip[e.offset + i];
    return v4;
  }
  return std::nullopt;
}

void PeerPolicy::add_own_address(const TransportAddress& a) {
  TransportAddress ip = a.with_port(0);
  for (const auto& o : own_) {
    if (o.same_ip(ip)) return;
  }
  own_.push_back(ip);
}

bool PeerPolicy::any_contains(const std::vector<Cidr>& list, const TransportAddress& a) {
  for (const auto& c : list) {
    if (c.contains(a)) return true;
  }
  return false;
}

bool PeerPolicy::is_own(const TransportAddress& a) const {
  for (const auto& o : own_) {
    if (o.same_ip(a)) return true;
  }
  return false;
}

PeerVerdict PeerPolicy::check(const TransportAddress& peer) const {
  if (peer.port == 0) return PeerVerdict::InvalidPort;
  // Everything below is on the stack: this runs for every CreatePermission/ChannelBind/Send.
  std::optional<TransportAddress> inner = embedded_v4(peer);

  if (any_contains(deny_, peer) || (inner && any_contains(deny_, *inner))) return PeerVerdict::DeniedByConfig;
  if (any_contains(allow_, peer) || (inner && any_contains(allow_, *inner))) return PeerVerdict::Allowed;
  if (is_own(peer) || (inner && is_own(*inner))) return PeerVerdict::OwnAddress;

  if (auto v = default_class(peer); v != PeerVerdict::Allowed) return v;
  if (inner) return default_class(*inner);
  return PeerVerdict::Allowed;
}

}  // namespace ferry::turn
