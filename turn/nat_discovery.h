// RFC 5780 NAT behaviour discovery: which of the server's four UDP addresses answers a Binding
// request, and which one it names as OTHER-ADDRESS. The server listens on two IPs (A1, A2) and two
// ports (P1, P2) in all four combinations; the shell opens the sockets, this only does the sums.
#pragma once

#include <array>

#include "stun/transport_address.h"

namespace ferry::turn {

struct NatDiscovery {
  stun::TransportAddress primary;    // A1:P1, the configured UDP listener
  stun::TransportAddress alternate;  // A2:P2, OTHER-ADDRESS as seen from A1:P1

  // A1:P1, A2:P1, A1:P2, A2:P2.
  std::array<stun::TransportAddress, 4> addresses() const {
    return {primary, alternate.with_port(primary.port), primary.with_port(alternate.port), alternate};
  }
  // Whether a request that reached `local` can be answered per RFC 5780 (it is one of the four).
  bool serves(const stun::TransportAddress& local) const {
    for (const auto& a : addresses())
      if (a == local) return true;
    return false;
  }
  // RFC 5780 §6.1, Table 1: for a request that reached Da:Dp (one of the four), the response leaves
  // from Ca instead of Da when "change IP" is set and from Cp instead of Dp when "change port" is;
  // OTHER-ADDRESS is Ca:Cp, the address that differs in both.
  stun::TransportAddress source(const stun::TransportAddress& local, bool change_ip, bool change_port) const {
    stun::TransportAddress out = local;
    if (change_ip) out.ip = (local.ip == primary.ip ? alternate : primary).ip;
    if (change_port) out.port = local.port == primary.port ? alternate.port : primary.port;
    return out;
  }
  stun::TransportAddress other(const stun::TransportAddress& local) const { return source(local, true, true); }
};

}  // namespace ferry::turn
