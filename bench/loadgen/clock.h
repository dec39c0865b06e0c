// The one clock of the load generator: CLOCK_MONOTONIC in nanoseconds. Sender and sink run in one
// process, so a timestamp written by one thread and read by another measures one-way latency.
#pragma once

#include <time.h>

#include <cstdint>

namespace ferry::bench {

inline uint64_t now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<uint64_t>(ts.tv_nsec);
}

constexpr uint64_t kNsPerSecond = 1'000'000'000u;
constexpr uint64_t seconds_to_ns(double s) { return s <= 0 ? 0 : static_cast<uint64_t>(s * 1e9); }

// Sleeps about `ns` (the caller sets a 1 µs timer slack, see main.cpp).
void sleep_ns(uint64_t ns);

}  // namespace ferry::bench
