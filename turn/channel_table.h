// The channel bindings of one allocation (RFC 8656 §12): a 16-bit channel number standing in
// for a peer's full transport address, so ChannelData carries 4 bytes of header instead of 36.
#pragma once

#include <chrono>
#include <compare>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include "stun/transport_address.h"
#include "base/clock.h"

namespace ferry::turn {

using stun::TransportAddress;

// RFC 8656 §12: channel numbers 0x4000-0x4FFF; the rest of 0x4000-0x7FFF is reserved.
class ChannelNumber {
 public:
  static constexpr uint16_t kMin = 0x4000;
  static constexpr uint16_t kMax = 0x4FFF;

  static constexpr uint16_t kMaxRfc5766 = 0x7FFF;
  static constexpr bool valid(uint16_t v, uint16_t max = kMax) { return v >= kMin && v <= max; }
  static constexpr std::optional<ChannelNumber> from(uint16_t v, uint16_t max = kMax) {
    if (!valid(v, max)) return std::nullopt;
    return ChannelNumber(v);
  }
  constexpr uint16_t value() const { return v_; }
  friend constexpr auto operator<=>(ChannelNumber, ChannelNumber) = default;

 private:
  constexpr explicit ChannelNumber(uint16_t v) : v_(v) {}
  uint16_t v_;
};

// RFC 8656 §12: "A channel binding lasts for 10 minutes unless refreshed."
inline constexpr std::chrono::seconds kChannelLifetime{600};
// RFC 8656 §12: for 5 minutes after a binding expires, neither its number nor its peer may be
// bound to anything else (late ChannelData would otherwise reach the wrong peer).
inline constexpr std::chrono::seconds kChannelQuarantine{300};
inline constexpr size_t kDefaultMaxChannels = 64;

enum class ChannelBind : uint8_t {
  Bound,                    // a new binding
  Refreshed,                // same channel and peer again: lifetime reset to 600 s
  ChannelBoundToOtherPeer,  // 400 (RFC 8656 §11.2)
  PeerBoundToOtherChannel,  // 400
  ChannelQuarantined,       // 400: the number's old binding expired less than 5 minutes ago
  PeerQuarantined,          // 400: the peer's old binding expired less than 5 minutes ago
  Full,                     // 508 Insufficient Capacity
};

// The STUN error code to answer with, 0 on success.
constexpr uint16_t error_code(ChannelBind r) {
  switch (r) {
    case ChannelBind::Bound:
    case ChannelBind::Refreshed: return 0;
    case ChannelBind::Full: return 508;
    default: return 400;
  }
}
constexpr bool succeeded(ChannelBind r) { return r == ChannelBind::Bound || r == ChannelBind::Refreshed; }

class ChannelTable {
 public:
  explicit ChannelTable(size_t max_channels = kDefaultMaxChannels) : max_(max_channels) {}

  // RFC 8656 §11.2 rules. Rebinding the same pair, even during its quarantine, revives it.
  // Bindings in quarantine still occupy a slot: that bounds memory per allocation.
  ChannelBind bind(ChannelNumber channel, const TransportAddress& peer, Instant now);

  // Data path, both directions. A binding is live while now < bound/refreshed + 600 s.
  std::optional<TransportAddress> peer_of(ChannelNumber channel, Instant now) const;
  std::optional<ChannelNumber> channel_of(const TransportAddress& peer, Instant now) const;
  std::optional<Instant> expiry(ChannelNumber channel) const;  // of the live period

  // Forgets bindings whose quarantine is over (now >= expiry + 300 s); returns how many.
  size_t expire(Instant now);
  // When the next binding expires or leaves quarantine, for scheduling expire().
  std::optional<Instant> next_deadline(Instant now) const;

  size_t live_count(Instant now) const;
  // Calls f(ChannelNumber, const TransportAddress& peer, Instant expires) for each live binding.
  template <class F>
  void for_each_live(Instant now, F&& f) const {
    for (const Entry& e : entries_)
      if (now < e.expires) f(e.channel, e.peer, e.expires);
  }
  size_t size() const { return entries_.size(); }  // live + quarantined (+ not yet reclaimed)
  size_t max_size() const { return max_; }

 private:
  struct Entry {
    ChannelNumber channel;
    TransportAddress peer;
    Instant expires;  // end of the live period; quarantine runs to expires + 300 s
  };

  std::vector<Entry> entries_;  // tiny and scanned linearly: a few bindings per allocation
  size_t max_;
};

}  // namespace ferry::turn
