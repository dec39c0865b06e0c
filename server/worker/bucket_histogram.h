// A histogram with fixed buckets, written by one thread (a worker's loop) and read by the metrics
// scrape: relaxed atomic counters, no lock, nothing shared per sample. `Buckets` names the upper
// bounds (Prometheus' `le`, in whole `Unit`s), so the scrape can print every histogram the same way.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>

#include "base/counter.h"

namespace ferry::server {

template <class Buckets>
class BucketHistogram {
 public:
  using Unit = typename Buckets::Unit;
  static constexpr auto kBounds = Buckets::kBounds;  // ascending upper bounds, in Units
  static constexpr double kUnitSeconds = std::chrono::duration<double>(Unit(1)).count();
  static constexpr size_t kBuckets = kBounds.size() + 1;  // the last one is +Inf

  // A negative duration (a clock that stepped) counts as 0.
  void observe(Unit d) {
    const uint64_t v = d.count() < 0 ? 0 : static_cast<uint64_t>(d.count());
    size_t i = 0;
    while (i < kBounds.size() && v > kBounds[i]) ++i;  // le: a sample on a bound counts in it
    buckets_[i].add();
    sum_.add(v);
  }

  struct Snapshot {
    std::array<uint64_t, kBuckets> counts{};  // per bucket, not cumulative
    uint64_t sum = 0;                         // in Units
    uint64_t count() const {
      uint64_t n = 0;
      for (uint64_t c : counts) n += c;
      return n;
    }
    Snapshot& operator+=(const Snapshot& o) {
      for (size_t i = 0; i < kBuckets; ++i) counts[i] += o.counts[i];
      sum += o.sum;
      return *this;
    }
  };
  Snapshot snapshot() const {
    Snapshot s;
    for (size_t i = 0; i < kBuckets; ++i) s.counts[i] = buckets_[i].get();
    s.sum = sum_.get();
    return s;
  }

 private:
  std::array<Counter, kBuckets> buckets_;
  Counter sum_;
};

// Database queries, submission to answer: 0.5 ms to 10 s, roughly 1-2.5-5 per decade.
struct QueryLatencyBuckets {
  static constexpr std::array<uint64_t, 14> kBounds = {500,    1000,   2500,   5000,    10000,   25000,   50000,
                                                       100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000};
  using Unit = std::chrono::microseconds;
};
using LatencyHistogram = BucketHistogram<QueryLatencyBuckets>;

// How long allocations lived: from a failed call setup (seconds) to a day-long session.
struct AllocationDurationBuckets {
  static constexpr std::array<uint64_t, 11> kBounds = {1000,    10000,   30000,   60000,    300000,  600000,
                                                       1800000, 3600000, 7200000, 21600000, 86400000};
  using Unit = std::chrono::milliseconds;
};
using DurationHistogram = BucketHistogram<AllocationDurationBuckets>;

// One turn of a worker's loop, the work between two waits for I/O: 25 µs (a handful of packets)
// to 100 ms (a stall every packet behind it waits out).
struct LoopBusyBuckets {
  static constexpr std::array<uint64_t, 12> kBounds = {25,   50,   100,   250,   500,   1000,
                                                       2500, 5000, 10000, 25000, 50000, 100000};
  using Unit = std::chrono::microseconds;
};
using LoopBusyHistogram = BucketHistogram<LoopBusyBuckets>;

}  // namespace ferry::server
