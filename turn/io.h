// What the TURN core asks of the I/O shell. The core decides; the shell owns sockets and executes.
#pragma once

#include <cstdint>

#include "stun/bytes.h"
#include "stun/transport_address.h"
#include "turn/five_tuple.h"

namespace ferry::turn {

// Index of a relay socket, chosen by the core (a slot in its relay table) and used by the shell to
// name the socket when a peer's datagram arrives on it.
using RelayId = uint32_t;

enum class OpenRelayResult { Opened, PortInUse, NoResources };

class Io {
 public:
  virtual ~Io() = default;
  // A STUN message or ChannelData frame to the client at `to` (for streams: its connection). Over
  // UDP it leaves from the listener bound at `to.server`: usually where the client's packet
  // arrived, another of the server's addresses when a Binding asks for it (RFC 5780 CHANGE-REQUEST).
  virtual void send_to_client(const FiveTuple& to, stun::Bytes bytes) = 0;
  // A datagram from relay socket `relay` to `peer`.
  virtual void send_to_peer(RelayId relay, const stun::TransportAddress& peer, stun::Bytes bytes) = 0;
  // Binds a UDP relay socket at exactly `local` (port included). DONT-FRAGMENT asks for DF set.
  virtual OpenRelayResult open_relay(RelayId relay, const stun::TransportAddress& local, bool dont_fragment) = 0;
  virtual void close_relay(RelayId relay) = 0;
  // The allocation of a stream client ended; the shell may close the connection.
  virtual void allocation_closed(const FiveTuple& /*client*/) {}
};

}  // namespace ferry::turn
