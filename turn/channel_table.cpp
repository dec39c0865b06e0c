#include "turn/channel_table.h"

#include <algorithm>

namespace ferry::turn {

ChannelBind ChannelTable::bind(ChannelNumber channel, const TransportAddress& peer, Instant now) {
  // Entries past their quarantine block nothing; dropping them first also keeps each channel
  // number and peer in at most one entry.
  expire(now);
  Entry* same = nullptr;
  for (auto& e : entries_) {
    bool live = now < e.expires;
    bool channel_match = e.channel == channel;
    bool peer_match = e.peer == peer;
    if (channel_match && peer_match) {
      same = &e;
    } else if (channel_match) {
      return live ? ChannelBind::ChannelBoundToOtherPeer : ChannelBind::ChannelQuarantined;
    } else if (peer_match) {
      return live ? ChannelBind::PeerBoundToOtherChannel : ChannelBind::PeerQuarantined;
    }
  }
  if (same != nullptr) {
    bool live = now < same->expires;
    same->expires = now + kChannelLifetime;
    return live ? ChannelBind::Refreshed : ChannelBind::Bound;
  }
  if (entries_.size() >= max_) return ChannelBind::Full;
  entries_.push_back({channel, peer, now + kChannelLifetime});
  return ChannelBind::Bound;
}

std::optional<TransportAddress> ChannelTable::peer_of(ChannelNumber channel, Instant now) const {
  for (const auto& e : entries_) {
    if (e.channel == channel && now < e.expires) return e.peer;
  }
  return std::nullopt;
}

std::optional<ChannelNumber> ChannelTable::channel_of(const TransportAddress& peer, Instant now) const {
  for (const auto& e : entries_) {
    if (e.peer == peer && now < e.expires) return e.channel;
  }
  return std::nullopt;
}

std::optional<Instant> ChannelTable::expiry(ChannelNumber channel) const {
  for (const auto& e : entries_) {
    if (e.channel == channel) return e.expires;
  }
  return std::nullopt;
}

size_t ChannelTable::expire(Instant now) {
  auto dead = std::remove_if(entries_.begin(), entries_.end(),
                             [&](const Entry& e) { return now >= e.expires + kChannelQuarantine; });
  auto removed = static_cast<size_t>(entries_.end() - dead);
  entries_.erase(dead, entries_.end());
  return removed;
}

std::optional<Instant> ChannelTable::next_deadline(Instant now) const {
  std::optional<Instant> earliest;
  for (const auto& e : entries_) {
    Instant d = now < e.expires ? e.expires : e.expires + kChannelQuarantine;
    if (!earliest || d < *earliest) earliest = d;
  }
  return earliest;
}

size_t ChannelTable::live_count(Instant now) const {
  return static_cast<size_t>(
      std::count_if(entries_.begin(), entries_.end(), [&](const Entry& e) { return now < e.expires; }));
}

}  // namespace ferry::turn
