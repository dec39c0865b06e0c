// Counters kept by one ServerCore. Each core runs on one loop thread, which alone writes them;
// the metrics endpoint reads them from another thread. Relaxed atomics written with load+store
// (no read-modify-write) compile to plain moves on x86: no lock, no contention on the data path.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>

namespace ferry::turn {

class Counter {
 public:
  void add(uint64_t n = 1) { v_.store(v_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed); }
  uint64_t get() const { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> v_{0};
};

enum class DropReason : uint8_t { NoAllocation, NoPermission, Policy, Bandwidth, Malformed, NoChannel, RateLimited, Count };
enum class AuthFailure : uint8_t { Missing, BadNonce, UnknownUser, BadIntegrity, StoreUnavailable, WrongUser, Count };
enum class Direction : uint8_t { ClientToPeer, PeerToClient, Count };

struct ServerStats {
  Counter binding_requests;
  Counter allocations_created;
  Counter allocations_expired;
  Counter allocations_deleted;
  std::array<Counter, 700> errors_sent;  // by STUN error code
  std::array<Counter, static_cast<size_t>(DropReason::Count)> dropped;
  std::array<Counter, static_cast<size_t>(AuthFailure::Count)> auth_failures;
  std::array<Counter, static_cast<size_t>(Direction::Count)> relayed_packets;
  std::array<Counter, static_cast<size_t>(Direction::Count)> relayed_bytes;
  Counter requests;
  Counter permissions_created;
  Counter channels_bound;

  void drop(DropReason r) { dropped[static_cast<size_t>(r)].add(); }
  void auth_failed(AuthFailure r) { auth_failures[static_cast<size_t>(r)].add(); }
  void relayed(Direction d, uint64_t bytes) {
    relayed_packets[static_cast<size_t>(d)].add();
    relayed_bytes[static_cast<size_t>(d)].add(bytes);
  }
};

}  // namespace ferry::turn
