// The PROXY protocol header (HAProxy's "PROXY protocol" specification, versions 1 and 2) that a
// load balancer puts in front of a TCP stream to say whom it accepted the connection from. Sans-I/O:
// bytes in, a verdict out. The listener (tcp_listener.cpp) reads the header before anything else
// (before TLS, for a TLS listener) and from then on treats the connection as coming from `source`.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

#include "stun/bytes.h"
#include "stun/transport_address.h"

namespace ferry::server {

enum class ProxyVersion : uint8_t { V1 = 1, V2 = 2 };

enum class ProxyParseStatus : uint8_t {
  NeedMore,  // a valid beginning of a header: read more
  Complete,  // `header` is set; `length` bytes belong to it, the rest is the stream
  Invalid,   // not a PROXY header, or a malformed one: `error` says why
};

struct ProxyHeader {
  ProxyVersion version = ProxyVersion::V1;
  size_t length = 0;  // header bytes, including v2's TLVs
  // The client and the address it connected to, as the proxy saw them. Unset for v1 "UNKNOWN",
  // v2 LOCAL (the proxy's own health checks) and v2 address families other than TCP/UDP over IPv4
  // and IPv6: the connection then stands for itself.
  std::optional<stun::TransportAddress> source;
  std::optional<stun::TransportAddress> destination;
};

struct ProxyParse {
  ProxyParseStatus status = ProxyParseStatus::NeedMore;
  ProxyHeader header;
  std::string_view error;  // static text, for Invalid
};

// v1: "PROXY TCP4|TCP6|UNKNOWN ...\r\n", at most 107 bytes. v2: the 12-byte signature, then
// version/command, family/protocol, a 16-bit length and that many address and TLV bytes.
inline constexpr size_t kProxyV1MaxLength = 107;
inline constexpr size_t kProxyV2HeaderLength = 16;
// Longer v2 headers (TLVs) are refused: what load balancers send fits comfortably.
inline constexpr size_t kProxyMaxLength = 1024;

// Reads the header at the start of `data`, of either version.
ProxyParse parse_proxy_header(stun::Bytes data);

}  // namespace ferry::server
