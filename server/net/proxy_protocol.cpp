#include "server/net/proxy_protocol.h"

#include <algorithm>
#include <array>
#include <cstring>

namespace ferry::server {
namespace {

constexpr uint8_t kV2Signature[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
constexpr std::string_view kV1Prefix = "PROXY ";

ProxyParse invalid(std::string_view why) { return {ProxyParseStatus::Invalid, {}, why}; }

bool is_prefix_of(stun::Bytes data, const uint8_t* whole, size_t whole_len) {
  const size_t n = std::min(data.size(), whole_len);
  return std::memcmp(data.data(), whole, n) == 0;
}

// "0".."65535", decimal, no sign and no leading zero (spec §2.1).
std::optional<uint16_t> parse_port(std::string_view s) {
  if (s.empty() || s.size() > 5 || (s.size() > 1 && s[0] == '0')) return std::nullopt;
  uint32_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + static_cast<uint32_t>(c - '0');
  }
  if (v > 65535) return std::nullopt;
  return static_cast<uint16_t>(v);
}

// Splits at single spaces; false when there are not exactly `n` fields.
template <size_t N>
bool split_fields(std::string_view line, std::array<std::string_view, N>& out) {
  size_t i = 0;
  while (i < N) {
    const size_t sp = line.find(' ');
    out[i++] = line.substr(0, sp);
    if (out[i - 1].empty()) return false;
    if (sp == std::string_view::npos) break;
    line.remove_prefix(sp + 1);
    if (i == N) return false;  // more fields than expected
  }
  return i == N;
}

ProxyParse parse_v1(stun::Bytes data) {
  const std::string_view text(reinterpret_cast<const char*>(data.data()), std::min(data.size(), kProxyV1MaxLength));
  const size_t crlf = text.find("\r\n");
  if (crlf == std::string_view::npos) {
    if (data.size() >= kProxyV1MaxLength) return invalid("PROXY v1 line longer than 107 bytes");
    if (text.find('\n') != std::string_view::npos) return invalid("PROXY v1 line not ended by CRLF");
    return {ProxyParseStatus::NeedMore, {}, {}};
  }
  ProxyParse p{ProxyParseStatus::Complete, {}, {}};
  p.header.version = ProxyVersion::V1;
  p.header.length = crlf + 2;
  const std::string_view line = text.substr(kV1Prefix.size(), crlf - kV1Prefix.size());
  // §2.1: with UNKNOWN the receiver ignores the rest of the line and uses the real addresses.
  if (line == "UNKNOWN" || line.starts_with("UNKNOWN ")) return p;
  std::array<std::string_view, 5> f;
  if (!split_fields(line, f)) return invalid("PROXY v1 line does not have 5 fields after PROXY");
  const bool v4 = f[0] == "TCP4";
  if (!v4 && f[0] != "TCP6") return invalid("PROXY v1 protocol is not TCP4, TCP6 or UNKNOWN");
  auto src = stun::TransportAddress::parse_ip(f[1]);
  auto dst = stun::TransportAddress::parse_ip(f[2]);
  if (!src || !dst || src->is_v4() != v4 || dst->is_v4() != v4) {
    return invalid(v4 ? "PROXY v1 TCP4 address is not IPv4" : "PROXY v1 TCP6 address is not IPv6");
  }
  auto sport = parse_port(f[3]);
  auto dport = parse_port(f[4]);
  if (!sport || !dport) return invalid("PROXY v1 port is not 0-65535");
  p.header.source = src->with_port(*sport);
  p.header.destination = dst->with_port(*dport);
  return p;
}

uint16_t be16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }

ProxyParse parse_v2(stun::Bytes data) {
  if (data.size() < kProxyV2HeaderLength) return {ProxyParseStatus::NeedMore, {}, {}};
  const uint8_t ver_cmd = data[12];
  if ((ver_cmd >> 4) != 2) return invalid("PROXY v2 signature with a version other than 2");
  const uint8_t command = ver_cmd & 0x0F;
  if (command > 1) return invalid("PROXY v2 command is neither LOCAL nor PROXY");
  const uint8_t family = data[13] >> 4, protocol = data[13] & 0x0F;
  if (family > 3 || protocol > 2) return invalid("PROXY v2 unknown address family or protocol");
  const size_t length = kProxyV2HeaderLength + be16(data.data() + 14);
  if (length > kProxyMaxLength) return invalid("PROXY v2 header longer than 1024 bytes");
  if (data.size() < length) return {ProxyParseStatus::NeedMore, {}, {}};
  ProxyParse p{ProxyParseStatus::Complete, {}, {}};
  p.header.version = ProxyVersion::V2;
  p.header.length = length;
  // §2.2: LOCAL (the proxy's own connection, e.g. a health check) and UNSPEC/UNIX keep the real
  // addresses; the address block must still fit in the length.
  if (command == 0 || family == 0 || family == 3) return p;
  const uint8_t* a = data.data() + kProxyV2HeaderLength;
  const size_t body = length - kProxyV2HeaderLength;
  if (family == 1) {
    if (body < 12) return invalid("PROXY v2 IPv4 address block shorter than 12 bytes");
    auto ip4 = [](const uint8_t* b) {
      return uint32_t{b[0]} << 24 | uint32_t{b[1]} << 16 | uint32_t{b[2]} << 8 | b[3];
    };
    p.header.source = stun::TransportAddress::v4(ip4(a), be16(a + 8));
    p.header.destination = stun::TransportAddress::v4(ip4(a + 4), be16(a + 10));
    return p;
  }
  if (body < 36) return invalid("PROXY v2 IPv6 address block shorter than 36 bytes");
  std::array<uint8_t, 16> src{}, dst{};
  std::memcpy(src.data(), a, 16);
  std::memcpy(dst.data(), a + 16, 16);
  p.header.source = stun::TransportAddress::v6(src, be16(a + 32));
  p.header.destination = stun::TransportAddress::v6(dst, be16(a + 34));
  return p;
}

}  // namespace

ProxyParse parse_proxy_header(stun::Bytes data) {
  if (data.empty()) return {ProxyParseStatus::NeedMore, {}, {}};
  if (is_prefix_of(data, kV2Signature, sizeof(kV2Signature))) {
    return data.size() < sizeof(kV2Signature) ? ProxyParse{ProxyParseStatus::NeedMore, {}, {}} : parse_v2(data);
  }
  if (is_prefix_of(data, reinterpret_cast<const uint8_t*>(kV1Prefix.data()), kV1Prefix.size())) {
    return data.size() < kV1Prefix.size() ? ProxyParse{ProxyParseStatus::NeedMore, {}, {}} : parse_v1(data);
  }
  return invalid("no PROXY protocol header");
}

}  // namespace ferry::server
