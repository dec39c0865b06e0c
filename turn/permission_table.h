// The permissions of one allocation (RFC 8656 §9): which peer IPs may send to the relayed
// address and receive from it. Keyed by IP only; the peer's port is ignored.
#pragma once

#include <chrono>
#include <cstddef>
#include <optional>
#include <span>
#include <vector>

#include "stun/transport_address.h"
#include "base/clock.h"

namespace ferry::turn {

using stun::TransportAddress;

// RFC 8656 §9: "The Permission Lifetime MUST be 300 seconds (= 5 minutes)."
inline constexpr std::chrono::seconds kPermissionLifetime{300};
inline constexpr size_t kDefaultMaxPermissions = 64;

enum class PermissionInstall : uint8_t {
  Installed,  // a new permission
  Refreshed,  // an existing, unexpired one got a fresh 300 s
  Full,       // at the limit: answer 508 Insufficient Capacity
};

class PermissionTable {
 public:
  explicit PermissionTable(size_t max_permissions = kDefaultMaxPermissions) : max_(max_permissions) {}

  // Installs or refreshes the permission for peer's IP until now + 300 s. Expired entries
  // are reclaimed first, so stale permissions never make the table look full.
  PermissionInstall install(const TransportAddress& peer, Instant now);
  // CreatePermission with several XOR-PEER-ADDRESS is all-or-nothing (RFC 8656 §10.2):
  // true when installing every peer (duplicates counted once) would fit.
  bool can_install_all(std::span<const TransportAddress> peers, Instant now) const;

  // Data path: a permission lives while now < installed + 300 s, so at exactly 300 s it is gone.
  bool allows(const TransportAddress& peer, Instant now) const;
  std::optional<Instant> expiry(const TransportAddress& peer) const;

  // Drops expired permissions; returns how many. Lookups are already exact without it.
  size_t expire(Instant now);
  // The earliest expiry, for scheduling the next expire() call.
  std::optional<Instant> next_expiry() const;

  size_t size() const { return entries_.size(); }  // includes expired, not yet reclaimed
  size_t max_size() const { return max_; }
  bool empty() const { return entries_.empty(); }

 private:
  struct Entry {
    TransportAddress ip;  // port zeroed
    Instant expires;
  };
  const Entry* find(const TransportAddress& peer) const;
  Entry* find(const TransportAddress& peer);
  size_t live_count(Instant now) const;

  std::vector<Entry> entries_;
  size_t max_;
};

}  // namespace ferry::turn
