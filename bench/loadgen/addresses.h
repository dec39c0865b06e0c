// Where the generator may send and which local addresses its sockets use.
#pragma once

#include <cstdint>

#include "bench/loadgen/options.h"
#include "stun/transport_address.h"

namespace ferry::bench {

// 127.0.0.0/8 or ::1 (also ::ffff:127.0.0.0/104).
bool is_loopback(const stun::TransportAddress& a);

// The local address (port 0) for socket `i`: with a loopback IPv4 target, spread over
// 127.0.0.1 .. 127.0.0.<client_ips> so that servers steering by source IP use all their threads;
// otherwise the wildcard of the target's family.
stun::TransportAddress client_source(const Options& o, uint32_t i);

}  // namespace ferry::bench
