// Where a channel's packets leave the machine: the routing table's output device for the peer and
// for the client, and a wildcard listener's answer source (what `ip route get` says). One per
// worker, each with its own NETLINK_ROUTE socket, so workers share nothing and never wait on each
// other; the socket is non-blocking: rtnetlink answers RTM_GETROUTE inside the send, so the answer
// is queued before recv and a lookup never waits on the loop (ChannelBind, control path only).
#pragma once

#include "server/fastpath/fast_path_keys.h"

namespace ferry::server::fastpath {

class RouteLookup {
 public:
  RouteLookup();  // without BPF, or when the socket cannot be opened, fill() always says false
  ~RouteLookup();
  RouteLookup(const RouteLookup&) = delete;
  RouteLookup& operator=(const RouteLookup&) = delete;

  // Fills in e's egress devices (ifindex) and, for a wildcard listener, its answer source. false:
  // a destination that is local or has no unicast route, or no answer; the channel stays in user
  // space.
  bool fill(ChannelEntries& e);

 private:
  int fd_ = -1;
  uint32_t seq_ = 0;
};

}  // namespace ferry::server::fastpath
