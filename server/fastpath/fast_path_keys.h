// The kernel fast path's map entries for one channel (bpf/channel_relay_maps.h), built from what
// the core tells the shell (turn::FastPathChannel). Pure: no BPF, no system call; tested alone.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "base/clock.h"
#include "server/fastpath/bpf/channel_relay_maps.h"
#include "turn/io.h"

namespace ferry::server::fastpath {

struct ChannelEntries {
  ferry_fp_client c2p_key{};
  ferry_fp_c2p_value c2p{};
  ferry_fp_p2c_key p2c_key{};
  ferry_fp_p2c_value p2c{};
};

// `deadline` on the steady clock as bpf_ktime_get_ns() counts: CLOCK_MONOTONIC nanoseconds, which
// std::chrono::steady_clock is on Linux. Past instants give 0 (already expired).
uint64_t monotonic_ns(Instant deadline);

// The two entries for `c`, with counter slots c2p_slot and p2c_slot, or why the kernel cannot
// relay it: an IPv6 client, listener, relay or peer, a client that is not UDP, a relay bound to a
// wildcard address. A wildcard listener (0.0.0.0) is kept as 0 in the client-to-peer key (the
// program then matches any destination address); the egress devices (ifindex) and a wildcard
// listener's answer source are left 0 for RouteLookup::fill to fill in.
std::optional<ChannelEntries> channel_entries(const turn::FastPathChannel& c, uint32_t c2p_slot, uint32_t p2c_slot,
                                              std::string* why = nullptr);

}  // namespace ferry::server::fastpath
