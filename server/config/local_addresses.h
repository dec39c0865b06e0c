// This host's interface addresses, and the concrete relay addresses derived from them: a relayed
// transport address goes to clients and peers, so "0.0.0.0" / "::" must become a real IP.
#pragma once

#include <string>
#include <vector>

#include "server/config/config.h"
#include "stun/transport_address.h"
#include "turn/server_core.h"

namespace ferry::server {

struct InterfaceAddress {
  std::string interface;      // "eth0"
  stun::TransportAddress ip;  // port 0
};

// From uv_interface_addresses(), in the order the OS lists them; empty if that fails.
std::vector<InterfaceAddress> interface_addresses();

bool is_unspecified(const stun::TransportAddress& ip);

struct ResolvedRelays {
  std::vector<turn::RelayAddress> relays;
  std::vector<std::string> warnings;  // families dropped for want of an address
};

// Each unspecified relay address becomes the first interface address of its family that is
// neither loopback nor link-local, else the first loopback one; a family with neither is dropped.
// Concrete addresses pass through; duplicates are removed.
ResolvedRelays resolve_relay_addresses(const std::vector<RelayAddressConfig>& configured,
                                       const std::vector<InterfaceAddress>& interfaces);

}  // namespace ferry::server
