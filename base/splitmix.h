// SplitMix64 (Steele, Lea, Flood 2014): a small, seedable mixer for ids and port choices that must
// be hard to guess but need no cryptographic strength (none of them guards anything on its own).
#pragma once

#include <cstdint>

namespace ferry {

constexpr uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

}  // namespace ferry
