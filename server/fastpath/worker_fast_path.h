// One worker's share of the kernel fast path: the map entries of the channels its core installed
// (turn::Io::fast_path_install/remove), their counter slots, and the reading back of what the
// kernel relayed (harvest, about once a second, on the worker's loop). Control path only.
#pragma once

#include <cstdint>
#include <unordered_map>

#include "server/fastpath/kernel_fast_path.h"
#include "server/fastpath/route_lookup.h"
#include "turn/five_tuple.h"
#include "turn/io.h"

namespace ferry::server::fastpath {

class WorkerFastPath {
 public:
  explicit WorkerFastPath(KernelFastPath& kernel) : kernel_(kernel) {}
  ~WorkerFastPath();  // removes every entry it still holds
  WorkerFastPath(const WorkerFastPath&) = delete;
  WorkerFastPath& operator=(const WorkerFastPath&) = delete;

  // Installs, or moves the deadline of, (c.client, c.channel). A channel the kernel cannot take
  // (IPv6, a full map) is left to user space, counted in refused().
  void install(const turn::FastPathChannel& c);
  // Removes it; returns what the kernel relayed for it since the last harvest.
  turn::FastPathUsage remove(const turn::FiveTuple& client, uint16_t channel);
  // Calls f(const FiveTuple& client, const FastPathUsage&) with what each channel relayed since
  // the last call (channels that relayed nothing are skipped).
  template <class F>
  void harvest(F&& f) {
    for (auto& [key, entry] : entries_) {
      const turn::FastPathUsage delta = take(entry);
      if (delta.packets[0] != 0 || delta.packets[1] != 0) f(key.client, delta);
    }
  }

  size_t size() const { return entries_.size(); }
  uint64_t refused() const { return refused_; }

 private:
  struct Key {
    turn::FiveTuple client;
    uint16_t channel = 0;
    friend bool operator==(const Key&, const Key&) = default;
  };
  struct KeyHash {
    size_t operator()(const Key& k) const noexcept { return turn::FiveTupleHash{}(k.client) * 31 + k.channel; }
  };
  struct Entry {
    ChannelEntries maps;
    turn::FastPathUsage seen;  // the slots' counts at the last read
  };
  turn::FastPathUsage take(Entry& e);  // the counts since the last read

  KernelFastPath& kernel_;
  RouteLookup routes_;  // this worker's own netlink socket
  std::unordered_map<Key, Entry, KeyHash> entries_;
  uint64_t refused_ = 0;
};

}  // namespace ferry::server::fastpath
