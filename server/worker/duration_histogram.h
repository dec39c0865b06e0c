// How long allocations lived, observed by the worker's loop when one ends (Io::allocation_ended)
// and read by the metrics scrape: fixed buckets of relaxed atomics, like LatencyHistogram.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>

#include "base/counter.h"

namespace ferry::server {

class DurationHistogram {
 public:
  // Upper bounds in seconds: from a failed call setup (seconds) to a day-long session.
  static constexpr std::array<uint64_t, 11> kBoundsS = {1, 10, 30, 60, 300, 600, 1800, 3600, 7200, 21600, 86400};
  static constexpr size_t kBuckets = kBoundsS.size() + 1;  // the last one is +Inf

  void observe(std::chrono::milliseconds d) {
    const uint64_t ms = d.count() < 0 ? 0 : static_cast<uint64_t>(d.count());
    size_t i = 0;
    while (i < kBoundsS.size() && ms > kBoundsS[i] * 1000) ++i;  // le: a sample on a bound counts in it
    buckets_[i].add();
    sum_ms_.add(ms);
  }

  struct Snapshot {
    std::array<uint64_t, kBuckets> counts{};  // per bucket, not cumulative
    uint64_t sum_ms = 0;
    Snapshot& operator+=(const Snapshot& o) {
      for (size_t i = 0; i < kBuckets; ++i) counts[i] += o.counts[i];
      sum_ms += o.sum_ms;
      return *this;
    }
  };
  Snapshot snapshot() const {
    Snapshot s;
    for (size_t i = 0; i < kBuckets; ++i) s.counts[i] = buckets_[i].get();
    s.sum_ms = sum_ms_.get();
    return s;
  }

 private:
  std::array<Counter, kBuckets> buckets_;
  Counter sum_ms_;
};

}  // namespace ferry::server
