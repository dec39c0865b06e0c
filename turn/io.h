// What the TURN core asks of the I/O shell. The core decides; the shell owns sockets and executes.
#pragma once

#include <array>
#include <cstdint>

#include "base/clock.h"
#include "stun/bytes.h"
#include "stun/transport_address.h"
#include "turn/five_tuple.h"

namespace ferry::turn {

struct Allocation;

// Index of a relay socket, chosen by the core (a slot in its relay table) and used by the shell to
// name the socket when a peer's datagram arrives on it.
using RelayId = uint32_t;

enum class OpenRelayResult { Opened, PortInUse, NoResources };

// RFC 6062 §6.2.1 CONNECTION-ID: names one peer data connection of a TCP allocation. Chosen by the
// core, unique among its open connections and hard to guess (a client binds to it by value).
using ConnectionId = uint32_t;

// A channel the kernel may relay on the core's behalf (ServerCoreConfig::fast_path): ChannelData
// `channel` from `client` leaves from `relay_local` to `peer`, and the peer's datagrams to
// `relay_local` go back to `client` as that channel, until `deadline` (the earliest of the
// channel's, the permission's and the allocation's expiry) and no later.
struct FastPathChannel {
  FiveTuple client;
  uint16_t channel = 0;
  stun::TransportAddress relay_local;
  stun::TransportAddress peer;
  Instant deadline{};
};

// What the kernel relayed for one channel since it was last read, by turn::Direction.
struct FastPathUsage {
  std::array<uint64_t, 2> packets{};
  std::array<uint64_t, 2> bytes{};
};

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
  // Any allocation ends (expiry, Refresh 0, its connection closed, revocation), told just before
  // it is freed, with its usage final. Not called for the allocations a destroyed core drops.
  // Control path; the shell must not call back into the core from here.
  virtual void allocation_ended(const Allocation& /*a*/) {}

  // ---- The kernel fast path. Only called when ServerCoreConfig::fast_path is set. ----
  // Installs `c`, or moves its deadline (or peer) when (client, channel) is installed already.
  // Told after a ChannelBind the peer policy allowed, and again whenever a Refresh,
  // CreatePermission or ChannelBind moves its deadline. Past the deadline the kernel must hand the
  // packets to the core again.
  virtual void fast_path_install(const FastPathChannel& /*c*/) {}
  // Removes (client, channel) and returns what the kernel relayed for it since it was last read
  // (the core adds it to the allocation's usage). Told when the deadline passed, and when the
  // allocation ends or moves (expiry, Refresh 0, revocation, kill, drain, mobility).
  virtual FastPathUsage fast_path_remove(const FiveTuple& /*client*/, uint16_t /*channel*/) { return {}; }

  // ---- RFC 6062 TCP allocations. The defaults refuse, for shells without TCP relays. ----
  // Listens for TCP at exactly `local` (the relayed address of a TCP allocation, §5.1);
  // close_relay(relay) stops it. Peers that connect are offered to ServerCore::on_peer_connection.
  virtual OpenRelayResult open_tcp_relay(RelayId /*relay*/, const stun::TransportAddress& /*local*/) {
    return OpenRelayResult::NoResources;
  }
  // Starts connecting from the relayed address of `relay` to `peer` (§5.2) and reports the outcome
  // later (never from inside this call) through ServerCore::on_peer_connected(id, ...). false: it
  // could not even start. The core owns the timeout: it calls close_peer_connection(id) then.
  virtual bool connect_peer(ConnectionId /*id*/, RelayId /*relay*/, const stun::TransportAddress& /*peer*/) {
    return false;
  }
  // §5.4: peer data connection `id` and the stream client connection `client` become one pipe; from
  // now on the shell moves bytes between them as they are (no STUN framing, no core on the way) and
  // reports the end of either through ServerCore::on_peer_connection_closed(id). Peer data that
  // waited for the bind comes first.
  virtual void bind_data_connection(ConnectionId /*id*/, const FiveTuple& /*client*/) {}
  // Closes peer data connection `id`, its client data connection once bound, or abandons the
  // connect in progress. No callback into the core follows.
  virtual void close_peer_connection(ConnectionId /*id*/) {}
};

}  // namespace ferry::turn
