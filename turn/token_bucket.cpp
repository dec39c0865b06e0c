#include "turn/token_bucket.h"

#include <algorithm>
#include <chrono>
#include <limits>

namespace ferry::turn {

uint64_t TokenBucket::level_at(Instant now) const {
  // Times older than the last refill earn nothing: callers may pass slightly stale timestamps.
  if (now <= last_) return level_;
  uint64_t cap = burst_ * kScale;
  uint64_t room = cap - level_;
  if (room == 0) return level_;
  auto ns = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(now - last_).count());
  // Nanoseconds needed to fill up; below that, ns * rate_ <= room cannot overflow.
  uint64_t to_full = room / rate_ + (room % rate_ != 0 ? 1 : 0);
  if (ns >= to_full) return cap;
  return level_ + ns * rate_;
}

bool TokenBucket::try_consume(uint64_t n, Instant now) {
  if (rate_ == 0) return true;
  level_ = level_at(now);
  last_ = std::max(last_, now);
  if (n > burst_) return false;
  uint64_t want = n * kScale;
  if (level_ < want) return false;
  level_ -= want;
  return true;
}

uint64_t TokenBucket::available(Instant now) const {
  if (rate_ == 0) return std::numeric_limits<uint64_t>::max();
  return level_at(now) / kScale;
}

void TokenBucket::reconfigure(uint64_t rate_per_second, uint64_t burst, Instant now) {
  bool was_limited = rate_ != 0;
  if (was_limited) { level_ = level_at(now); }
  rate_ = rate_per_second;
  burst_ = std::min(burst == 0 ? rate_per_second : burst, kMaxBurst);
  uint64_t cap = burst_ * kScale;
  level_ = was_limited ? std::min(level_, cap) : cap;
  last_ = was_limited ? std::max(last_, now) : now;
}

}  // namespace ferry::turn
