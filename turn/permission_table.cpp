#include "turn/permission_table.h"

#include <algorithm>
#include <utility>

namespace ferry::turn {

const PermissionTable::Entry* PermissionTable::find(const TransportAddress& peer) const {
  for (const auto& e : entries_) {
    if (e.ip.same_ip(peer)) return &e;
  }
  return nullptr;
}

PermissionTable::Entry* PermissionTable::find(const TransportAddress& peer) {
  return const_cast<Entry*>(std::as_const(*this).find(peer));
}

size_t PermissionTable::live_count(Instant now) const {
  return static_cast<size_t>(
      std::count_if(entries_.begin(), entries_.end(), [&](const Entry& e) { return now < e.expires; }));
}

PermissionInstall PermissionTable::install(const TransportAddress& peer, Instant now) {
  if (Entry* e = find(peer)) {
    bool live = now < e->expires;
    e->expires = now + kPermissionLifetime;
    return live ? PermissionInstall::Refreshed : PermissionInstall::Installed;
  }
  if (entries_.size() >= max_) {
    expire(now);
    if (entries_.size() >= max_) return PermissionInstall::Full;
  }
  entries_.push_back({peer.with_port(0), now + kPermissionLifetime});
  return PermissionInstall::Installed;
}

bool PermissionTable::can_install_all(std::span<const TransportAddress> peers, Instant now) const {
  size_t needed = 0;
  for (size_t i = 0; i < peers.size(); ++i) {
    const Entry* e = find(peers[i]);
    if (e && now < e->expires) continue;  // a refresh takes no slot
    bool seen = false;
    for (size_t j = 0; j < i && !seen; ++j) seen = peers[j].same_ip(peers[i]);
    // New or expired-and-revived: either way one more live permission.
    if (!seen) ++needed;
  }
  return live_count(now) + needed <= max_;
}

bool PermissionTable::allows(const TransportAddress& peer, Instant now) const {
  const Entry* e = find(peer);
  return e != nullptr && now < e->expires;
}

std::optional<Instant> PermissionTable::expiry(const TransportAddress& peer) const {
  const Entry* e = find(peer);
  if (e == nullptr) return std::nullopt;
  return e->expires;
}

size_t PermissionTable::expire(Instant now) {
  auto dead = std::remove_if(entries_.begin(), entries_.end(), [&](const Entry& e) { return now >= e.expires; });
  auto removed = static_cast<size_t>(entries_.end() - dead);
  entries_.erase(dead, entries_.end());
  return removed;
}

std::optional<Instant> PermissionTable::next_expiry() const {
  std::optional<Instant> earliest;
  for (const auto& e : entries_) {
    if (!earliest || e.expires < *earliest) earliest = e.expires;
  }
  return earliest;
}

}  // namespace ferry::turn
