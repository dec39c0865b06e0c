#include "stun/transport_address.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <charconv>

namespace ferry::stun {

TransportAddress TransportAddress::v4(uint32_t host_order_ip, uint16_t port) {
  TransportAddress a;
  a.family = Family::V4;
  a.port = port;
  a.ip[0] = static_cast<uint8_t>(host_order_ip >> 24);
  a.ip[1] = static_cast<uint8_t>(host_order_ip >> 16);
  a.ip[2] = static_cast<uint8_t>(host_order_ip >> 8);
  a.ip[3] = static_cast<uint8_t>(host_order_ip);
  return a;
}

TransportAddress TransportAddress::v6(const std::array<uint8_t, 16>& ip, uint16_t port) {
  TransportAddress a;
  a.family = Family::V6;
  a.port = port;
  a.ip = ip;
  return a;
}

uint32_t TransportAddress::v4_host_order() const {
  return (uint32_t{ip[0]} << 24) | (uint32_t{ip[1]} << 16) | (uint32_t{ip[2]} << 8) | ip[3];
}

std::optional<TransportAddress> TransportAddress::parse_ip(std::string_view text) {
  std::string s(text);
  TransportAddress a;
  if (inet_pton(AF_INET, s.c_str(), a.ip.data()) == 1) {
    a.family = Family::V4;
    return a;
  }
  if (inet_pton(AF_INET6, s.c_str(), a.ip.data()) == 1) {
    a.family = Family::V6;
    return a;
  }
  return std::nullopt;
}

std::optional<TransportAddress> TransportAddress::parse(std::string_view text, std::optional<uint16_t> default_port) {
  std::string_view host = text;
  std::string_view port_text;
  if (!text.empty() && text.front() == '[') {
    auto close = text.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    host = text.substr(1, close - 1);
    auto rest = text.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return std::nullopt;
      port_text = rest.substr(1);
    }
  } else if (auto colon = text.rfind(':'); colon != std::string_view::npos && text.find(':') == colon) {
    host = text.substr(0, colon);
    port_text = text.substr(colon + 1);
  }
  auto a = parse_ip(host);
  if (!a) return std::nullopt;
  if (port_text.empty()) {
    if (!default_port) return std::nullopt;
    a->port = *default_port;
    return a;
  }
  unsigned value = 0;
  auto [p, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), value);
  if (ec != std::errc{} || p != port_text.data() + port_text.size() || value > 65535) return std::nullopt;
  a->port = static_cast<uint16_t>(value);
  return a;
}

std::optional<TransportAddress> TransportAddress::from_sockaddr(const sockaddr* sa) {
  if (sa == nullptr) return std::nullopt;
  TransportAddress a;
  if (sa->sa_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(sa);
    a.family = Family::V4;
    a.port = ntohs(in->sin_port);
    std::memcpy(a.ip.data(), &in->sin_addr, 4);
    return a;
  }
  if (sa->sa_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
    a.family = Family::V6;
    a.port = ntohs(in6->sin6_port);
    std::memcpy(a.ip.data(), &in6->sin6_addr, 16);
    return a;
  }
  return std::nullopt;
}

unsigned TransportAddress::to_sockaddr(sockaddr_storage& out) const {
  std::memset(&out, 0, sizeof(out));
  if (family == Family::V4) {
    auto* in = reinterpret_cast<sockaddr_in*>(&out);
    in->sin_family = AF_INET;
    in->sin_port = htons(port);
    std::memcpy(&in->sin_addr, ip.data(), 4);
    return sizeof(sockaddr_in);
  }
  auto* in6 = reinterpret_cast<sockaddr_in6*>(&out);
  in6->sin6_family = AF_INET6;
  in6->sin6_port = htons(port);
  std::memcpy(&in6->sin6_addr, ip.data(), 16);
  return sizeof(sockaddr_in6);
}

std::string TransportAddress::ip_string() const {
  char buf[INET6_ADDRSTRLEN] = {};
  inet_ntop(family == Family::V4 ? AF_INET : AF_INET6, ip.data(), buf, sizeof(buf));
  return buf;
}

std::string TransportAddress::to_string() const {
  // Built with += : GCC 12 warns falsely (-Wrestrict) on chained std::string operator+.
  std::string s;
  if (family == Family::V6) s += '[';
  s += ip_string();
  if (family == Family::V6) s += ']';
  s += ':';
  s += std::to_string(port);
  return s;
}

}  // namespace ferry::stun
