// Counters kept by one ServerCore. Each core runs on one loop thread, which alone writes them;
// the metrics endpoint reads them from another thread. Relaxed atomics written with load+store
// (no read-modify-write) compile to plain moves on x86: no lock, no contention on the data path.
// The scrape sums them over the workers; nothing here is shared between loops.
#pragma once

#include <array>
#include <cstdint>

#include "base/counter.h"

namespace ferry::turn {

enum class DropReason : uint8_t {
  NoAllocation,
  NoPermission,
  Policy,
  Bandwidth,
  Malformed,
  NoChannel,
  RateLimited,
  Count
};
// BadToken: an RFC 7635 ACCESS-TOKEN that did not open (unknown kid, bad tag, expired, malformed).
enum class AuthFailure : uint8_t {
  Missing,
  BadNonce,
  UnknownUser,
  BadIntegrity,
  StoreUnavailable,
  WrongUser,
  BadToken,
  Count
};
enum class Direction : uint8_t { ClientToPeer, PeerToClient, Count };
// The relayed address families of an allocation: one, or both for a dual allocation (RFC 8656 §7.2).
enum class AllocationFamily : uint8_t { V4, V6, Dual, Count };
// The methods the core answers; anything else is Other.
enum class RequestMethod : uint8_t { Binding, Allocate, Refresh, CreatePermission, ChannelBind, Other, Count };
enum class RequestResult : uint8_t { Success, Error, Count };
inline constexpr size_t kTransportCount = 4;  // turn::Transport: udp, tcp, tls, dtls

template <class E>
constexpr size_t idx(E e) {
  return static_cast<size_t>(e);
}

struct ServerStats {
  Counter binding_requests;
  Counter allocations_created;
  Counter allocations_expired;
  Counter allocations_deleted;
  Counter allocations_moved;             // RFC 8016: re-keyed to a client's new 5-tuple by its MOBILITY-TICKET
  std::array<Counter, 700> errors_sent;  // by STUN error code
  std::array<Counter, static_cast<size_t>(DropReason::Count)> dropped;
  std::array<Counter, static_cast<size_t>(AuthFailure::Count)> auth_failures;
  std::array<Counter, static_cast<size_t>(Direction::Count)> relayed_packets;
  std::array<Counter, static_cast<size_t>(Direction::Count)> relayed_bytes;
  // The part of relayed_packets/relayed_bytes the kernel fast path relayed (added when read back).
  std::array<Counter, static_cast<size_t>(Direction::Count)> fast_path_packets;
  std::array<Counter, static_cast<size_t>(Direction::Count)> fast_path_bytes;
  Gauge fast_path_channels;  // channels installed in the kernel now
  Counter requests;
  Counter permissions_created;
  Counter channels_bound;

  // Responses sent, by the request's method and whether it succeeded.
  std::array<std::array<Counter, idx(RequestResult::Count)>, idx(RequestMethod::Count)> responses;
  // Allocate requests answered with an error, by code; the 401/438 challenges of the normal
  // authentication exchange are not refusals and are not counted here.
  std::array<Counter, 700> allocations_refused;

  // Levels, kept on the control path where allocations, permissions and channels come and go.
  // Indexed by the client's transport (turn::Transport) and the relayed families.
  std::array<std::array<Gauge, idx(AllocationFamily::Count)>, kTransportCount> allocations_active;
  Gauge permissions_active;  // exact (per-table size deltas), expired ones leave on the next tick
  Gauge channels_active;     // live bindings; recounted every tick
  // RFC 6062 peer data connections: established (Connect succeeded, or a peer with a permission
  // connected to a TCP relay), and those the core tracks now (connecting, waiting for their
  // ConnectionBind, or bound).
  Counter tcp_connections_opened;
  Gauge tcp_connections_active;

  void drop(DropReason r) { dropped[static_cast<size_t>(r)].add(); }
  void auth_failed(AuthFailure r) { auth_failures[static_cast<size_t>(r)].add(); }
  void relayed(Direction d, uint64_t bytes) {
    relayed_packets[static_cast<size_t>(d)].add();
    relayed_bytes[static_cast<size_t>(d)].add(bytes);
  }
  int64_t active_allocations() const {
    int64_t n = 0;
    for (const auto& by_family : allocations_active)
      for (const auto& g : by_family) n += g.get();
    return n;
  }
};

}  // namespace ferry::turn
