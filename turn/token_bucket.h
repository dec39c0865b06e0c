// A token bucket: `rate` tokens per second refill a bucket holding at most `burst`. Used for
// relayed bandwidth per allocation (tokens = bytes) and request rates per source (tokens =
// requests). Time comes in as an argument, so it costs no clock read and tests need no sleep.
#pragma once

#include <cstdint>

#include "base/clock.h"

namespace ferry::turn {

class TokenBucket {
 public:
  // burst is capped here so the nanotoken arithmetic below cannot overflow 64 bits.
  static constexpr uint64_t kMaxBurst = uint64_t{1} << 34;  // ~17 G tokens

  TokenBucket() = default;  // unlimited
  // rate 0 = unlimited. burst 0 = one second's worth of rate. Starts full.
  TokenBucket(uint64_t rate_per_second, uint64_t burst, Instant now) { reconfigure(rate_per_second, burst, now); }

  // Takes n tokens if they are all there; otherwise takes none. n > burst never succeeds, so
  // for bandwidth set burst to at least the largest datagram.
  bool try_consume(uint64_t n, Instant now);
  // Whole tokens available at `now` (UINT64_MAX when unlimited).
  uint64_t available(Instant now) const;

  // Keeps the tokens earned so far (up to the new burst), so a config reload is not a free refill.
  void reconfigure(uint64_t rate_per_second, uint64_t burst, Instant now);

  bool unlimited() const { return rate_ == 0; }
  uint64_t rate() const { return rate_; }
  uint64_t burst() const { return burst_; }

 private:
  // Tokens are kept in nanotokens (1e-9 token) so refills over any nanosecond interval are exact.
  static constexpr uint64_t kScale = 1'000'000'000;
  uint64_t level_at(Instant now) const;

  uint64_t rate_ = 0;
  uint64_t burst_ = 0;
  uint64_t level_ = 0;  // nanotokens, <= burst_ * kScale
  Instant last_{};
};

}  // namespace ferry::turn
