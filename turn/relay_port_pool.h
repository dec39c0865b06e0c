// Bookkeeping of the relay ports of one relay address (RFC 8656 §7.2): which are free, in use,
// or held for a RESERVATION-TOKEN. No sockets: the I/O shell binds the port it is given and
// calls release() if the bind fails.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include "base/clock.h"

namespace ferry::turn {

using ReservationToken = std::array<uint8_t, 8>;  // RFC 8656 §18.9: 8 opaque bytes

// RFC 8656 §7.2: the reserved port+1 is kept "for about 30 seconds".
inline constexpr std::chrono::seconds kReservationLifetime{30};

struct EvenPortPair {
  uint16_t port;           // even, now in use by the new allocation
  uint16_t reserved_port;  // port + 1, held until redeemed or kReservationLifetime passes
  ReservationToken token;
};

class RelayPortPool {
 public:
  // Ports [min_port, max_port]; port 0 is never handed out, and min > max makes an empty pool.
  // `seed` drives port choice and reservation tokens; give it real entropy (RAND_bytes) in
  // production so tokens are not guessable across restarts.
  RelayPortPool(uint16_t min_port, uint16_t max_port, uint64_t seed);

  // A free port from a random starting point, so relay ports are hard to predict.
  std::optional<uint16_t> acquire();
  // EVEN-PORT with R = 0: any free even port.
  std::optional<uint16_t> acquire_even();
  // EVEN-PORT with R = 1: an even port for this allocation plus port + 1 held under a token.
  std::optional<EvenPortPair> acquire_even_pair(Instant now);
  // RESERVATION-TOKEN: the held port, now in use; nullopt if unknown or expired.
  std::optional<uint16_t> redeem(const ReservationToken& token, Instant now);
  // Takes one particular port if it is free (reserved ports only go through redeem()).
  bool acquire_specific(uint16_t port);
  // Frees a port in use or held (dropping its reservation); false if it was neither.
  bool release(uint16_t port);

  // Returns reservations older than 30 s to the free pool; returns how many.
  size_t expire(Instant now);
  std::optional<Instant> next_expiry() const;

  bool is_free(uint16_t port) const;
  size_t free_count() const { return free_; }
  size_t capacity() const { return state_.size(); }
  size_t reservation_count() const { return reservations_.size(); }
  uint16_t min_port() const { return min_; }
  uint16_t max_port() const { return max_; }

 private:
  enum class State : uint8_t { Free, InUse, Reserved };
  struct Reservation {
    ReservationToken token;
    uint16_t port;
    Instant expires;
  };

  bool in_range(uint16_t port) const { return !state_.empty() && port >= min_ && port <= max_; }
  State& state_of(uint16_t port) { return state_[port - min_]; }
  State state_of(uint16_t port) const { return state_[port - min_]; }
  void take(uint16_t port, State s);
  // Scans `count` candidates first + step*k from a random k, returning the first that fits.
  template <class Fits>
  std::optional<uint16_t> scan(uint32_t first, uint32_t step, uint32_t count, Fits fits);
  ReservationToken new_token();
  uint64_t next_random();  // splitmix64: small, seedable, no global state

  uint16_t min_;
  uint16_t max_;
  std::vector<State> state_;
  size_t free_ = 0;
  std::vector<Reservation> reservations_;
  uint64_t rng_;
};

}  // namespace ferry::turn
