// Counters written by one loop thread and read by another (metrics, health). Relaxed atomics
// written with load+store (no read-modify-write) compile to plain moves on x86: no lock, no
// contention on the data path. Each loop owns its own; the scrape sums them.
#pragma once

#include <atomic>
#include <cstdint>

namespace ferry {

class Counter {
 public:
  void add(uint64_t n = 1) { v_.store(v_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed); }
  uint64_t get() const { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> v_{0};
};

// A level that goes up and down (active allocations, ...), with the same single-writer rule.
class Gauge {
 public:
  void add(int64_t n = 1) { v_.store(v_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed); }
  void sub(int64_t n = 1) { add(-n); }
  void set(int64_t v) { v_.store(v, std::memory_order_relaxed); }
  int64_t get() const { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<int64_t> v_{0};
};

}  // namespace ferry
