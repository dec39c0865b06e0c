// The one time source of every layer (base/: what all layers share).
// Time as an injected dependency: the TURN state machine never reads a clock itself, so every
// timer (permissions, channels, allocations, nonces) is testable by advancing a FakeClock.
#pragma once

#include <chrono>
#include <cstdint>

namespace ferry {

// Monotonic time for lifetimes and rate limits; never jumps with NTP or the operator.
using Instant = std::chrono::steady_clock::time_point;
using Duration = std::chrono::steady_clock::duration;

class Clock {
 public:
  virtual ~Clock() = default;
  virtual Instant now() const = 0;
  // Wall-clock seconds since the Unix epoch, for values that leave the process and must
  // mean the same thing elsewhere: shared-secret usernames (expiry timestamp) and nonces.
  virtual uint64_t unix_seconds() const = 0;
};

class SteadyClock final : public Clock {
 public:
  Instant now() const override { return std::chrono::steady_clock::now(); }
  uint64_t unix_seconds() const override {
    auto s = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch());
    return s.count() < 0 ? 0 : static_cast<uint64_t>(s.count());
  }
};

// Settable clock for tests. advance() moves monotonic and wall time together, so code that
// mixes both (e.g. a nonce stamped with unix_seconds and a timer on now()) stays consistent.
class FakeClock final : public Clock {
 public:
  // Starts well past the epoch so "Instant{}" can still serve as a "never" sentinel in callers.
  static constexpr Instant kDefaultStart = Instant{} + std::chrono::hours(24 * 365);
  static constexpr uint64_t kDefaultUnixSeconds = 1'700'000'000;  // 2023-11-14, arbitrary

  explicit FakeClock(Instant start = kDefaultStart, uint64_t unix_seconds = kDefaultUnixSeconds)
      : now_(start), unix_(std::chrono::seconds(unix_seconds)) {}

  Instant now() const override { return now_; }
  uint64_t unix_seconds() const override {
    return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::seconds>(unix_).count());
  }

  // Negative durations are ignored: a steady clock never goes backwards.
  void advance(Duration d) {
    if (d < Duration::zero()) return;
    now_ += d;
    unix_ += d;
  }
  // Moves only the wall clock, e.g. to simulate an NTP step; steady time is unaffected.
  void set_unix_seconds(uint64_t s) { unix_ = std::chrono::seconds(s); }

 private:
  Instant now_;
  Duration unix_;  // sub-second precision so two half-second advances add up to one second
};

// Monotonic milliseconds of `clock`, for deadlines kept as plain integers (stream idle and
// handshake timeouts, worker heartbeats). Comparable only with other values of the same clock.
inline uint64_t monotonic_ms(const Clock& clock) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(clock.now().time_since_epoch()).count();
  return ms < 0 ? 0 : static_cast<uint64_t>(ms);
}

// The process's SteadyClock, for code outside a worker that has no Clock handed to it (the HTTP
// threads, the DTLS cookie stamp): the same time source, not a second one.
inline const Clock& steady_clock() {
  static const SteadyClock clock;
  return clock;
}

}  // namespace ferry
