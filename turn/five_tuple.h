// The client's 5-tuple (RFC 8656 §2): what identifies an allocation.
#pragma once

#include <cstdint>
#include <string>

#include "stun/transport_address.h"

namespace ferry::turn {

enum class Transport : uint8_t { Udp = 0, Tcp = 1, Tls = 2, Dtls = 3 };

constexpr const char* to_string(Transport t) {
  switch (t) {
    case Transport::Udp: return "udp";
    case Transport::Tcp: return "tcp";
    case Transport::Tls: return "tls";
    case Transport::Dtls: return "dtls";
  }
  return "?";
}
constexpr bool is_stream(Transport t) { return t == Transport::Tcp || t == Transport::Tls; }

struct FiveTuple {
  stun::TransportAddress client;  // the client's address as the server sees it
  stun::TransportAddress server;  // the listener address it reached
  Transport transport = Transport::Udp;

  friend bool operator==(const FiveTuple&, const FiveTuple&) = default;
  std::string to_string() const;
  // A stable byte encoding (41 bytes at most) used to bind nonces to the tuple.
  size_t encode(uint8_t* out) const;
};

struct FiveTupleHash {
  size_t operator()(const FiveTuple& t) const noexcept {
    stun::TransportAddressHash h;
    return h(t.client) * 31 + h(t.server) * 7 + static_cast<size_t>(t.transport);
  }
};

}  // namespace ferry::turn
