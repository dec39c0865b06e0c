// The kernel fast path's map entries (server/fastpath/fast_path_keys.*): byte order, the two
// directions' agreement, deadlines on CLOCK_MONOTONIC, and what is refused.
#include "server/fastpath/fast_path_keys.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <time.h>

#include <cstring>

namespace ferry::server::fastpath {
namespace {

using stun::TransportAddress;
using namespace std::chrono_literals;

TransportAddress at(const char* text) { return TransportAddress::parse(text).value(); }

uint32_t ip(const char* text) {
  in_addr a{};
  EXPECT_EQ(inet_pton(AF_INET, text, &a), 1);
  return a.s_addr;  // network order, as the packet has it
}

turn::FastPathChannel channel() {
  turn::FastPathChannel c;
  c.client = turn::FiveTuple{at("203.0.113.5:40001"), at("198.51.100.1:3478"), turn::Transport::Udp};
  c.channel = 0x4001;
  c.relay_local = at("198.51.100.10:50000");
  c.peer = at("192.0.2.7:5000");
  c.deadline = Instant{} + 1234s;
  return c;
}

TEST(FastPathKeys, BothDirectionsInNetworkOrder) {
  auto e = channel_entries(channel(), 7, 8);
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->c2p_key.client_ip, ip("203.0.113.5"));
  EXPECT_EQ(e->c2p_key.listen_ip, ip("198.51.100.1"));
  EXPECT_EQ(e->c2p_key.client_port, htons(40001));
  EXPECT_EQ(e->c2p_key.listen_port, htons(3478));
  EXPECT_EQ(e->c2p_key.channel, 0x4001);  // host order: the program assembles it byte by byte
  EXPECT_EQ(e->c2p_key.pad, 0);
  EXPECT_EQ(e->c2p.relay_ip, ip("198.51.100.10"));
  EXPECT_EQ(e->c2p.peer_ip, ip("192.0.2.7"));
  EXPECT_EQ(e->c2p.relay_port, htons(50000));
  EXPECT_EQ(e->c2p.peer_port, htons(5000));
  EXPECT_EQ(e->c2p.slot, 7u);
  EXPECT_EQ(e->c2p.ifindex, 0u);  // filled in by RouteLookup::fill
  // Peer to client: keyed by what the peer's datagram carries, answering the same client.
  EXPECT_EQ(e->p2c_key.peer_ip, e->c2p.peer_ip);
  EXPECT_EQ(e->p2c_key.relay_ip, e->c2p.relay_ip);
  EXPECT_EQ(e->p2c_key.peer_port, e->c2p.peer_port);
  EXPECT_EQ(e->p2c_key.relay_port, e->c2p.relay_port);
  EXPECT_EQ(e->p2c.to.client_ip, e->c2p_key.client_ip);
  EXPECT_EQ(e->p2c.to.listen_ip, e->c2p_key.listen_ip);
  EXPECT_EQ(e->p2c.to.client_port, e->c2p_key.client_port);
  EXPECT_EQ(e->p2c.to.listen_port, e->c2p_key.listen_port);
  EXPECT_EQ(e->p2c.to.channel, 0x4001);
  EXPECT_EQ(e->p2c.slot, 8u);
  EXPECT_EQ(e->c2p.deadline_ns, 1234'000'000'000u);
  EXPECT_EQ(e->p2c.deadline_ns, e->c2p.deadline_ns);
}

TEST(FastPathKeys, DeadlineIsOnTheClockTheKernelReads) {
  // steady_clock is CLOCK_MONOTONIC, which bpf_ktime_get_ns() counts too.
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  const uint64_t kernel_now = static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<uint64_t>(ts.tv_nsec);
  const uint64_t ours = monotonic_ns(std::chrono::steady_clock::now());
  EXPECT_GE(ours, kernel_now);
  EXPECT_LT(ours - kernel_now, 1'000'000'000u);
  EXPECT_EQ(monotonic_ns(Instant{} - 5s), 0u);
}

TEST(FastPathKeys, WildcardListenerKeepsZero) {
  auto c = channel();
  c.client.server = at("0.0.0.0:3478");
  auto e = channel_entries(c, 1, 2);
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->c2p_key.listen_ip, 0u);
  EXPECT_EQ(e->p2c.to.listen_ip, 0u);  // the route's source, filled in by RouteLookup::fill
}

TEST(FastPathKeys, RefusesWhatTheKernelDoesNotRelay) {
  std::string why;
  auto c = channel();
  c.peer = at("[2001:db8::7]:5000");
  EXPECT_FALSE(channel_entries(c, 1, 2, &why).has_value());
  EXPECT_NE(why.find("IPv6"), std::string::npos);
  c = channel();
  c.client.transport = turn::Transport::Tcp;
  EXPECT_FALSE(channel_entries(c, 1, 2, &why).has_value());
  c = channel();
  c.relay_local = at("0.0.0.0:50000");
  EXPECT_FALSE(channel_entries(c, 1, 2, &why).has_value());
  EXPECT_NE(why.find("wildcard"), std::string::npos);
}

TEST(FastPathKeys, KeysHaveNoUninitialisedPadding) {
  // The kernel compares keys bytewise and the program reads values by offset: no implicit padding.
  EXPECT_EQ(sizeof(ferry_fp_client), 16u);
  EXPECT_EQ(sizeof(ferry_fp_p2c_key), 12u);
  EXPECT_EQ(sizeof(ferry_fp_c2p_value), 32u);
  EXPECT_EQ(sizeof(ferry_fp_p2c_value), 32u);
}

}  // namespace
}  // namespace ferry::server::fastpath
