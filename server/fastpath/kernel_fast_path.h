// The kernel fast path, process-wide: the BPF program (bpf/channel_relay.bpf.c) loaded once and
// attached at TC ingress of the machine's interfaces, and its maps. Workers share it through
// WorkerFastPath, each keeping its own entries; map updates are system calls and thread-safe, the
// counter slots are handed out under a mutex (control path only).
//
// Built only with libbpf (FERRY_HAVE_BPF); without it open() says so and ferry relays in user space.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "server/fastpath/fast_path_keys.h"
#include "turn/io.h"

namespace ferry::server::fastpath {

// Whether this build has the kernel fast path at all.
bool built_with_bpf();

class KernelFastPath {
 public:
  // Loads the program and attaches it at TC ingress (clsact, direct action) of every interface that
  // is up, not loopback and has an IPv4 address. nullptr with the reason: no libbpf in this build,
  // no CAP_BPF/CAP_NET_ADMIN, a kernel that refuses the program, no interface.
  static std::unique_ptr<KernelFastPath> open(std::string* why);
  ~KernelFastPath();  // detaches from every interface (and removes the clsact qdiscs it created)
  KernelFastPath(const KernelFastPath&) = delete;
  KernelFastPath& operator=(const KernelFastPath&) = delete;

  const std::vector<std::string>& interfaces() const;

  // A free counter slot, zeroed, or nullopt when all are taken.
  std::optional<uint32_t> take_slot();
  void free_slot(uint32_t slot);
  // Inserts or replaces both entries of a channel. false with errno's text in *why on failure.
  bool put(const ChannelEntries& e, std::string* why);
  // Deletes both entries (missing ones are fine).
  void erase(const ChannelEntries& e);
  void erase_p2c(const ferry_fp_p2c_key& key);
  // What the kernel relayed so far through the two slots (summed over CPUs): packets/bytes
  // [0] client to peer (c2p_slot), [1] peer to client (p2c_slot).
  turn::FastPathUsage read(uint32_t c2p_slot, uint32_t p2c_slot) const;

 private:
  struct Impl;
  explicit KernelFastPath(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace ferry::server::fastpath
