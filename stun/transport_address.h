// An IP address and port, the value carried by every STUN/TURN address attribute and the
// key of every 5-tuple. Plain data: no sockets here, only conversion to and from sockaddr.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

struct sockaddr;
struct sockaddr_storage;

namespace ferry::stun {

enum class Family : uint8_t { V4 = 0x01, V6 = 0x02 };  // RFC 8489 §14.1 family codes

struct TransportAddress {
  Family family = Family::V4;
  uint16_t port = 0;
  std::array<uint8_t, 16> ip{};  // IPv4 uses the first 4 bytes, the rest stay zero

  static TransportAddress v4(uint32_t host_order_ip, uint16_t port);
  static TransportAddress v6(const std::array<uint8_t, 16>& ip, uint16_t port);
  // "1.2.3.4:5", "[::1]:5"; also a bare address when default_port is given.
  static std::optional<TransportAddress> parse(std::string_view text, std::optional<uint16_t> default_port = {});
  // Just an IP, port 0.
  static std::optional<TransportAddress> parse_ip(std::string_view text);
  static std::optional<TransportAddress> from_sockaddr(const sockaddr* sa);

  size_t ip_size() const { return family == Family::V4 ? 4 : 16; }
  uint32_t v4_host_order() const;
  bool is_v4() const { return family == Family::V4; }
  // Fills `out`, returns the sockaddr length.
  unsigned to_sockaddr(sockaddr_storage& out) const;
  std::string ip_string() const;
  std::string to_string() const;  // "1.2.3.4:5" / "[::1]:5"
  TransportAddress with_port(uint16_t p) const {
    TransportAddress a = *this;
    a.port = p;
    return a;
  }
  bool same_ip(const TransportAddress& o) const { return family == o.family && ip == o.ip; }

  friend bool operator==(const TransportAddress&, const TransportAddress&) = default;
};

struct TransportAddressHash {
  size_t operator()(const TransportAddress& a) const noexcept {
    // FNV-1a over the meaningful bytes; cheap and good enough for hash tables keyed by address.
    uint64_t h = 1469598103934665603ull;
    auto mix = [&](uint8_t b) {
      h ^= b;
      h *= 1099511628211ull;
    };
    mix(static_cast<uint8_t>(a.family));
    mix(static_cast<uint8_t>(a.port >> 8));
    mix(static_cast<uint8_t>(a.port));
    for (size_t i = 0; i < a.ip_size(); ++i) mix(a.ip[i]);
    return static_cast<size_t>(h);
  }
};

}  // namespace ferry::stun
