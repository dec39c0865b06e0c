#include "turn/relay_port_pool.h"

#include <algorithm>

#include "base/splitmix.h"

namespace ferry::turn {

RelayPortPool::RelayPortPool(uint16_t min_port, uint16_t max_port, uint64_t seed)
    : min_(std::max<uint16_t>(min_port, 1)), max_(max_port), rng_(seed) {
  if (min_ <= max_) {
    state_.assign(size_t{max_} - min_ + 1, State::Free);
    free_ = state_.size();
  }
}

uint64_t RelayPortPool::next_random() {
  const uint64_t z = splitmix64(rng_);  // the usual SplitMix64 stream: state advances by the golden gamma
  rng_ += 0x9E3779B97F4A7C15ull;
  return z;
}

void RelayPortPool::take(uint16_t port, State s) {
  state_of(port) = s;
  --free_;
}

template <class Fits>
std::optional<uint16_t> RelayPortPool::scan(uint32_t first, uint32_t step, uint32_t count, Fits fits) {
  if (count == 0) return std::nullopt;
  auto start = static_cast<uint32_t>(next_random() % count);
  for (uint32_t i = 0; i < count; ++i) {
    auto port = static_cast<uint16_t>(first + step * ((start + i) % count));
    if (fits(port)) return port;
  }
  return std::nullopt;
}

std::optional<uint16_t> RelayPortPool::acquire() {
  if (free_ == 0) return std::nullopt;
  auto port =
      scan(min_, 1, static_cast<uint32_t>(state_.size()), [&](uint16_t p) { return state_of(p) == State::Free; });
  if (port) take(*port, State::InUse);
  return port;
}

std::optional<uint16_t> RelayPortPool::acquire_even() {
  if (free_ == 0) return std::nullopt;
  uint32_t first = min_ + (min_ & 1u);
  uint32_t count = first <= max_ ? (max_ - first) / 2 + 1 : 0;
  auto port = scan(first, 2, count, [&](uint16_t p) { return state_of(p) == State::Free; });
  if (port) take(*port, State::InUse);
  return port;
}

std::optional<EvenPortPair> RelayPortPool::acquire_even_pair(Instant now) {
  if (free_ < 2) return std::nullopt;
  uint32_t first = min_ + (min_ & 1u);
  // Even ports whose odd neighbour is still inside the range.
  uint32_t count = first + 1 <= max_ ? (max_ - 1 - first) / 2 + 1 : 0;
  auto port = scan(first, 2, count, [&](uint16_t p) {
    return state_of(p) == State::Free && state_of(static_cast<uint16_t>(p + 1)) == State::Free;
  });
  if (!port) return std::nullopt;
  auto reserved = static_cast<uint16_t>(*port + 1);
  take(*port, State::InUse);
  take(reserved, State::Reserved);
  EvenPortPair pair{*port, reserved, new_token()};
  reservations_.push_back({pair.token, reserved, now + kReservationLifetime});
  return pair;
}

ReservationToken RelayPortPool::new_token() {
  for (;;) {
    uint64_t v = next_random();
    ReservationToken t;
    for (size_t i = 0; i < t.size(); ++i) t[i] = static_cast<uint8_t>(v >> (56 - 8 * i));
    // Tokens must identify one reservation; an all-zero token looks like "absent" in logs.
    bool clash = v == 0 || std::any_of(reservations_.begin(), reservations_.end(),
                                       [&](const Reservation& r) { return r.token == t; });
    if (!clash) return t;
  }
}

std::optional<uint16_t> RelayPortPool::redeem(const ReservationToken& token, Instant now) {
  auto it =
      std::find_if(reservations_.begin(), reservations_.end(), [&](const Reservation& r) { return r.token == token; });
  if (it == reservations_.end() || now >= it->expires) return std::nullopt;
  uint16_t port = it->port;
  reservations_.erase(it);
  state_of(port) = State::InUse;
  return port;
}

bool RelayPortPool::acquire_specific(uint16_t port) {
  if (!in_range(port) || state_of(port) != State::Free) return false;
  take(port, State::InUse);
  return true;
}

bool RelayPortPool::release(uint16_t port) {
  if (!in_range(port) || state_of(port) == State::Free) return false;
  if (state_of(port) == State::Reserved) {
    std::erase_if(reservations_, [&](const Reservation& r) { return r.port == port; });
  }
  state_of(port) = State::Free;
  ++free_;
  return true;
}

size_t RelayPortPool::expire(Instant now) {
  size_t removed = 0;
  std::erase_if(reservations_, [&](const Reservation& r) {
    if (now < r.expires) return false;
    state_of(r.port) = State::Free;
    ++free_;
    ++removed;
    return true;
  });
  return removed;
}

std::optional<Instant> RelayPortPool::next_expiry() const {
  std::optional<Instant> earliest;
  for (const auto& r : reservations_) {
    if (!earliest || r.expires < *earliest) earliest = r.expires;
  }
  return earliest;
}

bool RelayPortPool::is_free(uint16_t port) const { return in_range(port) && state_of(port) == State::Free; }

}  // namespace ferry::turn
