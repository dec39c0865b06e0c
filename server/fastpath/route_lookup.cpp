#include "server/fastpath/route_lookup.h"

#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <optional>

namespace ferry::server::fastpath {

namespace {

struct Route {
  uint32_t ifindex = 0;
  uint32_t source = 0;  // preferred source address, network order
};

// The answer to request `seq`; anything else the socket holds (none is expected: every lookup
// reads its own answer) is skipped. Only unicast routes count; local, broadcast, unreachable...
// give nullopt.
std::optional<Route> read_answer(int fd, uint32_t seq) {
  alignas(nlmsghdr) char buf[4096];
  for (int reads = 0; reads < 8; ++reads) {  // bounded: never loop on a socket full of noise
    const ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n <= 0) return std::nullopt;  // EAGAIN included: no answer is no route
    auto* nh = reinterpret_cast<nlmsghdr*>(buf);
    for (int left = static_cast<int>(n); NLMSG_OK(nh, left); nh = NLMSG_NEXT(nh, left)) {
      if (nh->nlmsg_seq != seq) continue;
      if (nh->nlmsg_type != RTM_NEWROUTE) return std::nullopt;  // NLMSG_ERROR: no route
      auto* rt = static_cast<rtmsg*>(NLMSG_DATA(nh));
      if (rt->rtm_type != RTN_UNICAST) return std::nullopt;
      Route r;
      int len = static_cast<int>(RTM_PAYLOAD(nh));
      for (auto* a = RTM_RTA(rt); RTA_OK(a, len); a = RTA_NEXT(a, len)) {
        if (a->rta_type == RTA_OIF) std::memcpy(&r.ifindex, RTA_DATA(a), 4);
        if (a->rta_type == RTA_PREFSRC) std::memcpy(&r.source, RTA_DATA(a), 4);
      }
      if (r.ifindex == 0) return std::nullopt;
      return r;
    }
  }
  return std::nullopt;
}

// RTM_GETROUTE for dst (from src, when not 0).
std::optional<Route> route_get(int fd, uint32_t seq, uint32_t dst, uint32_t src) {
  struct {
    nlmsghdr nh;
    rtmsg rt;
    char attrs[2 * RTA_SPACE(4)];
  } req{};
  req.nh.nlmsg_len = NLMSG_LENGTH(sizeof(rtmsg));
  req.nh.nlmsg_type = RTM_GETROUTE;
  req.nh.nlmsg_flags = NLM_F_REQUEST;
  req.nh.nlmsg_seq = seq;
  req.rt.rtm_family = AF_INET;
  auto add = [&](unsigned short type, uint32_t value) {
    auto* rta = reinterpret_cast<rtattr*>(reinterpret_cast<char*>(&req) + NLMSG_ALIGN(req.nh.nlmsg_len));
    rta->rta_type = type;
    rta->rta_len = RTA_LENGTH(4);
    std::memcpy(RTA_DATA(rta), &value, 4);
    req.nh.nlmsg_len = NLMSG_ALIGN(req.nh.nlmsg_len) + RTA_SPACE(4);
  };
  add(RTA_DST, dst);
  req.rt.rtm_dst_len = 32;
  if (src != 0) {
    add(RTA_SRC, src);
    req.rt.rtm_src_len = 32;
  }
  if (send(fd, &req, req.nh.nlmsg_len, MSG_DONTWAIT) < 0) return std::nullopt;
  return read_answer(fd, seq);
}

}  // namespace

RouteLookup::RouteLookup() : fd_(socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_ROUTE)) {}

RouteLookup::~RouteLookup() {
  if (fd_ >= 0) close(fd_);
}

bool RouteLookup::fill(ChannelEntries& e) {
  if (fd_ < 0) return false;
  auto to_peer = route_get(fd_, ++seq_, e.c2p.peer_ip, e.c2p.relay_ip);
  auto to_client = route_get(fd_, ++seq_, e.p2c.to.client_ip, e.p2c.to.listen_ip);
  if (!to_peer || !to_client) return false;
  e.c2p.ifindex = to_peer->ifindex;
  e.p2c.ifindex = to_client->ifindex;
  if (e.p2c.to.listen_ip == 0) {
    if (to_client->source == 0) return false;
    e.p2c.to.listen_ip = to_client->source;
  }
  return true;
}

}  // namespace ferry::server::fastpath
