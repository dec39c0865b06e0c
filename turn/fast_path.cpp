// The core's side of the kernel fast path (ServerCoreConfig::fast_path, server/fastpath/): which
// channels the kernel may relay, until when, and folding what it relayed back into the counters.
// The rule: an entry exists only for a live channel of a UDP allocation whose peer passed the peer
// policy at ChannelBind, with a deadline no later than the channel's, the permission's and the
// allocation's expiry; every event that shortens or ends one of those removes or moves it.
#include <algorithm>

#include "turn/server_core.h"

namespace ferry::turn {

bool ServerCore::fast_path_eligible(const Allocation& a) const {
  // A bandwidth limit is a token bucket the kernel does not keep: such allocations stay in user space.
  return config_.fast_path && a.tuple.transport == Transport::Udp && !a.tcp && a.bandwidth.unlimited();
}

void ServerCore::sync_fast_path(Allocation& a) {
  if (!fast_path_eligible(a)) return;
  const Instant now = clock_.now();
  Instant cap = a.expires;
  if (config_.strict_expiry && a.credential_expires) cap = std::min(cap, *a.credential_expires);
  a.channels.for_each_live(now, [&](ChannelNumber ch, const TransportAddress& peer, Instant expires) {
    const RelayLeg* leg = a.leg_for(peer.family);
    const auto permission = a.permissions.expiry(peer);
    if (leg == nullptr || !permission || *permission <= now) return;
    const Instant deadline = std::min({expires, *permission, cap});
    auto it = std::find_if(a.fast_path.begin(), a.fast_path.end(),
                           [&](const Allocation::FastPathEntry& e) { return e.channel == ch.value(); });
    if (it != a.fast_path.end() && it->deadline == deadline) return;
    io_.fast_path_install(FastPathChannel{a.tuple, ch.value(), leg->local, peer, deadline});
    if (it == a.fast_path.end()) {
      a.fast_path.push_back({ch.value(), deadline});
      stats_.fast_path_channels.add();
    } else {
      it->deadline = deadline;
    }
  });
}

void ServerCore::clear_fast_path(Allocation& a) { remove_fast_path(a, a.fast_path.begin()); }

void ServerCore::expire_fast_path(Allocation& a, Instant now) {
  // The kernel already hands these channels' packets to the core; this frees their entries.
  remove_fast_path(a, std::partition(a.fast_path.begin(), a.fast_path.end(),
                                     [&](const Allocation::FastPathEntry& e) { return now < e.deadline; }));
}

void ServerCore::remove_fast_path(Allocation& a, std::vector<Allocation::FastPathEntry>::iterator first) {
  for (auto it = first; it != a.fast_path.end(); ++it) count_fast_path(a, io_.fast_path_remove(a.tuple, it->channel));
  stats_.fast_path_channels.sub(static_cast<int64_t>(a.fast_path.end() - first));
  a.fast_path.erase(first, a.fast_path.end());
}

void ServerCore::count_fast_path(Allocation& a, const FastPathUsage& u) {
  for (size_t d = 0; d < u.packets.size(); ++d) {
    stats_.relayed_packets[d].add(u.packets[d]);
    stats_.relayed_bytes[d].add(u.bytes[d]);
    stats_.fast_path_packets[d].add(u.packets[d]);
    stats_.fast_path_bytes[d].add(u.bytes[d]);
    a.usage.packets[d] += u.packets[d];
    a.usage.bytes[d] += u.bytes[d];
  }
}

void ServerCore::add_fast_path_usage(const FiveTuple& client, const FastPathUsage& u) {
  auto it = allocations_.find(client);
  if (it != allocations_.end()) count_fast_path(*it->second, u);
}

}  // namespace ferry::turn
