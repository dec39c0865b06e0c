// The first bytes of every payload the generator sends: which stream (allocation) sent it, its
// sequence number and when it was sent. The sink reads them back to count arrivals per stream and
// measure latency. Host byte order: writer and reader are the same process.
#pragma once

#include <cstdint>
#include <cstring>
#include <optional>

namespace ferry::bench {

struct Stamp {
  uint32_t stream = 0;
  uint64_t seq = 0;
  uint64_t sent_ns = 0;
};

constexpr uint32_t kStampMagic = 0x46724265;  // "FrBe"
constexpr size_t kStampSize = 24;             // magic, stream, seq, sent_ns
constexpr size_t kStampSeqOffset = 8;
constexpr size_t kStampTimeOffset = 16;

inline void write_stamp(uint8_t* p, const Stamp& s) {
  std::memcpy(p, &kStampMagic, 4);
  std::memcpy(p + 4, &s.stream, 4);
  std::memcpy(p + kStampSeqOffset, &s.seq, 8);
  std::memcpy(p + kStampTimeOffset, &s.sent_ns, 8);
}

// Only the two fields that change per packet; the rest stays as written once.
inline void update_stamp(uint8_t* p, uint64_t seq, uint64_t sent_ns) {
  std::memcpy(p + kStampSeqOffset, &seq, 8);
  std::memcpy(p + kStampTimeOffset, &sent_ns, 8);
}

inline std::optional<Stamp> read_stamp(const uint8_t* p, size_t n) {
  if (n < kStampSize) return std::nullopt;
  uint32_t magic;
  std::memcpy(&magic, p, 4);
  if (magic != kStampMagic) return std::nullopt;
  Stamp s;
  std::memcpy(&s.stream, p + 4, 4);
  std::memcpy(&s.seq, p + kStampSeqOffset, 8);
  std::memcpy(&s.sent_ns, p + kStampTimeOffset, 8);
  return s;
}

}  // namespace ferry::bench
