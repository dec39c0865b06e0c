#include "server/fastpath/fast_path_keys.h"

#include <arpa/inet.h>

#include <chrono>
#include <cstring>

namespace ferry::server::fastpath {

namespace {
uint32_t ip_of(const stun::TransportAddress& a) {  // network byte order, as in the packet
  uint32_t v = 0;
  std::memcpy(&v, a.ip.data(), sizeof v);
  return v;
}
}  // namespace

uint64_t monotonic_ns(Instant deadline) {
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(deadline.time_since_epoch()).count();
  return ns > 0 ? static_cast<uint64_t>(ns) : 0;
}

std::optional<ChannelEntries> channel_entries(const turn::FastPathChannel& c, uint32_t c2p_slot, uint32_t p2c_slot,
                                              std::string* why) {
  auto refuse = [&](const char* reason) -> std::optional<ChannelEntries> {
    if (why != nullptr) *why = reason;
    return std::nullopt;
  };
  if (c.client.transport != turn::Transport::Udp) return refuse("not a UDP client");
  if (!c.client.client.is_v4() || !c.client.server.is_v4() || !c.relay_local.is_v4() || !c.peer.is_v4())
    return refuse("IPv6 (the kernel path relays IPv4 only)");
  if (ip_of(c.relay_local) == 0) return refuse("relay bound to a wildcard address");
  ChannelEntries e;
  e.c2p_key.client_ip = ip_of(c.client.client);
  e.c2p_key.listen_ip = ip_of(c.client.server);
  e.c2p_key.client_port = htons(c.client.client.port);
  e.c2p_key.listen_port = htons(c.client.server.port);
  e.c2p_key.channel = c.channel;
  e.c2p.relay_ip = ip_of(c.relay_local);
  e.c2p.peer_ip = ip_of(c.peer);
  e.c2p.relay_port = htons(c.relay_local.port);
  e.c2p.peer_port = htons(c.peer.port);
  e.c2p.slot = c2p_slot;
  e.c2p.deadline_ns = monotonic_ns(c.deadline);
  e.p2c_key.peer_ip = e.c2p.peer_ip;
  e.p2c_key.relay_ip = e.c2p.relay_ip;
  e.p2c_key.peer_port = e.c2p.peer_port;
  e.p2c_key.relay_port = e.c2p.relay_port;
  e.p2c.to = e.c2p_key;  // answers go to the client the channel belongs to
  e.p2c.slot = p2c_slot;
  e.p2c.deadline_ns = e.c2p.deadline_ns;
  return e;
}

}  // namespace ferry::server::fastpath
