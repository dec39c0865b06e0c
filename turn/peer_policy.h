// Which peer addresses a relay may talk to. A TURN server is an open proxy into whatever network
// it sits in, so by default it refuses internal, special-purpose and its own addresses
// (RFC 8656 §21.2.3 / §9, and the coturn CVE-2020-26262 lesson: 0.0.0.0 and [::] reach loopback,
// and IPv4-mapped/NAT64 IPv6 forms reach the embedded IPv4 address).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "stun/transport_address.h"

namespace ferry::turn {

using stun::Family;
using stun::TransportAddress;

// An address prefix: "10.0.0.0/8", "fd00::/8"; a bare address is a /32 or /128.
struct Cidr {
  Family family = Family::V4;
  uint8_t prefix_len = 0;
  std::array<uint8_t, 16> ip{};  // host bits are always zero

  // Host bits in the text ("10.1.2.3/8") are cleared rather than rejected.
  static std::optional<Cidr> parse(std::string_view text);
  static Cidr of(const TransportAddress& ip, uint8_t prefix_len);

  // False for the other family: an IPv4 prefix never matches an IPv6 address (embedded forms
  // are PeerPolicy's business, not Cidr's).
  bool contains(const TransportAddress& addr) const;
  std::string to_string() const;  // "10.0.0.0/8"

  friend bool operator==(const Cidr&, const Cidr&) = default;
};

// Why a peer was (not) allowed; to_string() gives a stable label for logs and metrics.
enum class PeerVerdict : uint8_t {
  Allowed,
  InvalidPort,     // port 0 cannot be sent to
  DeniedByConfig,  // matched an operator deny prefix
  OwnAddress,      // one of this server's listener or relay IPs (relay loops, hairpinning)
  Unspecified,     // 0.0.0.0/8, :: (0.0.0.0 reaches the local host on Linux)
  Loopback,        // 127.0.0.0/8, ::1
  Private,         // RFC 1918: 10/8, 172.16/12, 192.168/16
  SharedAddress,   // RFC 6598 carrier-grade NAT: 100.64/10
  LinkLocal,       // 169.254/16 (cloud metadata endpoints live here), fe80::/10
  Multicast,       // 224/4, ff00::/8
  Reserved,        // 240/4
  Broadcast,       // 255.255.255.255
  UniqueLocal,     // fc00::/7
  DiscardOnly,     // 100::/64 (RFC 6666)
  Nat64LocalUse,   // 64:ff9b:1::/48 (RFC 8215): embedding length is site-chosen, so deny it whole
};

std::string_view to_string(PeerVerdict v);

class PeerPolicy {
 public:
  // Decision order, first match wins:
  //   1. port 0                                      -> InvalidPort
  //   2. configured deny (address or embedded IPv4)  -> DeniedByConfig
  //   3. configured allow (address or embedded IPv4) -> Allowed
  //   4. own address (address or embedded IPv4)      -> OwnAddress
  //   5. default classes for the address, then for its embedded IPv4
  //   6.                                             -> Allowed
  // "Embedded IPv4" is the IPv4 address inside ::ffff:a.b.c.d (mapped), ::a.b.c.d (compatible),
  // 64:ff9b::a.b.c.d (RFC 6052 well-known NAT64) and 2002:AABB:CCDD:: (6to4): such a peer is
  // denied exactly when its IPv4 address would be, with the IPv4 reason (::ffff:127.0.0.1 is
  // Loopback). Public embedded addresses stay reachable.
  PeerVerdict check(const TransportAddress& peer) const;
  bool allows(const TransportAddress& peer) const { return check(peer) == PeerVerdict::Allowed; }

  // Configuration happens before the policy is shared; check() is const and allocation-free,
  // so one policy can be read by every worker thread.
  void allow(const Cidr& c) { allow_.push_back(c); }
  void deny(const Cidr& c) { deny_.push_back(c); }
  // Listener and relay addresses; the port is ignored (any port on our IP is us).
  void add_own_address(const TransportAddress& a);

  const std::vector<Cidr>& allowed() const { return allow_; }
  const std::vector<Cidr>& denied() const { return deny_; }
  const std::vector<TransportAddress>& own_addresses() const { return own_; }

  // The default class of an address alone, ignoring configuration and own addresses
  // (Allowed if it is in none); exposed for tests and diagnostics.
  static PeerVerdict default_class(const TransportAddress& ip);
  // The IPv4 address embedded in an IPv6 mapped/compatible/NAT64/6to4 form, if any.
  static std::optional<TransportAddress> embedded_v4(const TransportAddress& ip);

 private:
  static bool any_contains(const std::vector<Cidr>& list, const TransportAddress& a);
  bool is_own(const TransportAddress& a) const;

  std::vector<Cidr> allow_;
  std::vector<Cidr> deny_;
  std::vector<TransportAddress> own_;
};

}  // namespace ferry::turn
