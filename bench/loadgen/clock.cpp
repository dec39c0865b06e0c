#include "bench/loadgen/clock.h"

#include <cerrno>

namespace ferry::bench {

void sleep_ns(uint64_t ns) {
  timespec ts{static_cast<time_t>(ns / kNsPerSecond), static_cast<long>(ns % kNsPerSecond)};
  // One retry on EINTR is enough: every caller re-reads the clock and decides again.
  if (nanosleep(&ts, &ts) != 0 && errno == EINTR) nanosleep(&ts, nullptr);
}

}  // namespace ferry::bench
