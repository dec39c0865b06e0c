#include "bench/loadgen/latency_histogram.h"

#include <algorithm>
#include <bit>
#include <cmath>

namespace ferry::bench {

size_t LatencyHistogram::index(uint64_t v) {
  if (v < kExact) return static_cast<size_t>(v);
  const int msb = 63 - std::countl_zero(v);  // >= 7
  const int shift = msb - 6;                 // keeps 7 significant bits: 64..127
  const uint64_t sub = v >> shift;
  return kExact + static_cast<size_t>(shift - 1) * kSubBuckets + static_cast<size_t>(sub - kSubBuckets);
}

uint64_t LatencyHistogram::lower_bound(size_t i) {
  if (i < kExact) return i;
  const size_t shift = (i - kExact) / kSubBuckets + 1;
  const uint64_t sub = (i - kExact) % kSubBuckets + kSubBuckets;
  return sub << shift;
}

void LatencyHistogram::record(uint64_t ns) {
  ++counts_[index(ns)];
  ++count_;
  max_ = std::max(max_, ns);
}

void LatencyHistogram::merge(const LatencyHistogram& other) {
  for (size_t i = 0; i < kBuckets; ++i) counts_[i] += other.counts_[i];
  count_ += other.count_;
  max_ = std::max(max_, other.max_);
}

uint64_t LatencyHistogram::quantile(double q) const {
  if (count_ == 0) return 0;
  const auto rank = static_cast<uint64_t>(std::ceil(std::clamp(q, 0.0, 1.0) * static_cast<double>(count_)));
  uint64_t seen = 0;
  for (size_t i = 0; i < kBuckets; ++i) {
    seen += counts_[i];
    if (seen >= std::max<uint64_t>(rank, 1)) return std::min(lower_bound(i), max_);
  }
  return max_;
}

}  // namespace ferry::bench
