// A fixed-size log-linear histogram of nanosecond values: exact below 128 ns, then 64 buckets per
// power of two (at most 1.6% relative error). Recording is an increment, so the sink can record
// every packet; percentiles are read once at the end.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

namespace ferry::bench {

class LatencyHistogram {
 public:
  void record(uint64_t ns);
  void merge(const LatencyHistogram& other);
  uint64_t count() const { return count_; }
  uint64_t max() const { return max_; }
  // The smallest recorded bucket value v such that a fraction `q` (0..1) of the samples is <= v;
  // 0 when empty.
  uint64_t quantile(double q) const;

 private:
  static constexpr size_t kExact = 128;
  static constexpr size_t kSubBuckets = 64;
  static constexpr size_t kBuckets = kExact + 57 * kSubBuckets;
  static size_t index(uint64_t v);
  static uint64_t lower_bound(size_t i);

  std::array<uint64_t, kBuckets> counts_{};
  uint64_t count_ = 0;
  uint64_t max_ = 0;
};

}  // namespace ferry::bench
