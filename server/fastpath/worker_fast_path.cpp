#include "server/fastpath/worker_fast_path.h"

#include <cstring>

namespace ferry::server::fastpath {

WorkerFastPath::~WorkerFastPath() {
  for (auto& [key, e] : entries_) {
    kernel_.erase(e.maps);
    kernel_.free_slot(e.maps.c2p.slot);
    kernel_.free_slot(e.maps.p2c.slot);
  }
}

void WorkerFastPath::install(const turn::FastPathChannel& c) {
  const Key key{c.client, c.channel};
  if (auto it = entries_.find(key); it != entries_.end()) {
    auto maps = channel_entries(c, it->second.maps.c2p.slot, it->second.maps.p2c.slot);
    if (!maps) return;           // cannot happen: the same channel was accepted before
    if (!routes_.fill(*maps)) {  // the route went away: user space relays it from now on
      kernel_.erase(it->second.maps);
      ++refused_;
      return;
    }
    if (std::memcmp(&maps->p2c_key, &it->second.maps.p2c_key, sizeof maps->p2c_key) != 0)
      kernel_.erase_p2c(it->second.maps.p2c_key);
    // On failure put() erased both entries: user space relays the channel; its slots stay ours
    // until remove(), so what the kernel relayed before is still read back.
    if (!kernel_.put(*maps, nullptr)) ++refused_;
    it->second.maps = *maps;
    return;
  }
  auto c2p_slot = kernel_.take_slot();
  auto p2c_slot = c2p_slot ? kernel_.take_slot() : std::nullopt;
  auto maps = p2c_slot ? channel_entries(c, *c2p_slot, *p2c_slot) : std::nullopt;
  if (!maps || !routes_.fill(*maps) || !kernel_.put(*maps, nullptr)) {
    if (c2p_slot) kernel_.free_slot(*c2p_slot);
    if (p2c_slot) kernel_.free_slot(*p2c_slot);
    ++refused_;
    return;
  }
  entries_.emplace(key, Entry{*maps, {}});
}

turn::FastPathUsage WorkerFastPath::remove(const turn::FiveTuple& client, uint16_t channel) {
  auto it = entries_.find(Key{client, channel});
  if (it == entries_.end()) return {};
  kernel_.erase(it->second.maps);  // first, so what is counted below is final
  const turn::FastPathUsage delta = take(it->second);
  kernel_.free_slot(it->second.maps.c2p.slot);
  kernel_.free_slot(it->second.maps.p2c.slot);
  entries_.erase(it);
  return delta;
}

turn::FastPathUsage WorkerFastPath::take(Entry& e) {
  const turn::FastPathUsage now = kernel_.read(e.maps.c2p.slot, e.maps.p2c.slot);
  turn::FastPathUsage delta;
  for (size_t d = 0; d < 2; ++d) {
    delta.packets[d] = now.packets[d] - e.seen.packets[d];
    delta.bytes[d] = now.bytes[d] - e.seen.bytes[d];
  }
  e.seen = now;
  return delta;
}

}  // namespace ferry::server::fastpath
