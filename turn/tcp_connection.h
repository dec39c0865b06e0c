// A peer data connection of an RFC 6062 TCP allocation as the core tracks it: from the Connect (or
// the peer's own connection to the relayed address) until the client binds a data connection to
// it, and then until either side closes. The bytes themselves never pass through the core.
#pragma once

#include <array>
#include <cstdint>

#include "stun/transport_address.h"
#include "base/clock.h"
#include "turn/io.h"

namespace ferry::turn {

struct Allocation;

// RFC 6062 §5.2: a connect attempt is given up after at least 30 s (447), and §5.2/§5.3: a peer
// data connection nobody binds within 30 s is closed.
inline constexpr std::chrono::seconds kTcpConnectTimeout{30};
inline constexpr std::chrono::seconds kTcpBindTimeout{30};

struct TcpConnection {
  enum class State : uint8_t {
    Connecting,    // Connect sent to the shell, no answer yet
    AwaitingBind,  // peer connected; waits for a ConnectionBind with its CONNECTION-ID
    Bound,         // piped to a client data connection by the shell
  };
  ConnectionId id = 0;
  Allocation* owner = nullptr;
  stun::TransportAddress peer;
  State state = State::Connecting;
  Instant deadline{};  // Connecting and AwaitingBind only
  // To answer the Connect once the shell reports: its magic cookie and transaction id, and
  // whether it carried FINGERPRINT (the answer then does too).
  std::array<uint8_t, 16> connect_request{};
  bool connect_fingerprint = false;
};

}  // namespace ferry::turn
