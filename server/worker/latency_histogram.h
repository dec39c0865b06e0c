// A latency histogram with fixed buckets, written by one thread (a worker's loop, for database
// queries) and read by the metrics scrape: relaxed atomics, no lock, nothing shared per sample.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>

#include "turn/server_stats.h"

namespace ferry::server {

class LatencyHistogram {
 public:
  // Upper bounds in microseconds: 0.5 ms to 10 s, roughly 1-2.5-5 per decade (Prometheus' usual).
  static constexpr std::array<uint64_t, 14> kBoundsUs = {500,    1000,   2500,   5000,    10000,   25000,   50000,
                                                         100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000};
  static constexpr size_t kBuckets = kBoundsUs.size() + 1;  // the last one is +Inf

  void observe(std::chrono::microseconds d) {
    const uint64_t us = d.count() < 0 ? 0 : static_cast<uint64_t>(d.count());
    size_t i = 0;
    while (i < kBoundsUs.size() && us > kBoundsUs[i]) ++i;  // le: a sample on a bound counts in it
    buckets_[i].add();
    sum_us_.add(us);
  }

  struct Snapshot {
    std::array<uint64_t, kBuckets> counts{};  // per bucket, not cumulative
    uint64_t sum_us = 0;
    uint64_t count() const {
      uint64_t n = 0;
      for (uint64_t c : counts) n += c;
      return n;
    }
    Snapshot& operator+=(const Snapshot& o) {
      for (size_t i = 0; i < kBuckets; ++i) counts[i] += o.counts[i];
      sum_us += o.sum_us;
      return *this;
    }
  };
  Snapshot snapshot() const {
    Snapshot s;
    for (size_t i = 0; i < kBuckets; ++i) s.counts[i] = buckets_[i].get();
    s.sum_us = sum_us_.get();
    return s;
  }

 private:
  std::array<Counter, kBuckets> buckets_;
  Counter sum_us_;
};

}  // namespace ferry::server
