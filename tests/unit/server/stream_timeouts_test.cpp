// The deadlines every stream transport shares (StreamSweep), apart from the listeners that use
// them (the DTLS tests drive them through DtlsServer), and the clock helpers of base/clock.h.
#include <gtest/gtest.h>

#include <vector>

#include "base/clock.h"
#include "server/net/stream_timeouts.h"
#include "server/tls/dtls_cookie.h"

namespace ferry::server {
namespace {

struct Conn {
  int id = 0;
  StreamDeadlines d;
  bool exempt = false;
};

ConnectionLimits limits() {
  ConnectionLimits l;
  l.handshake_timeout_ms = 1000;
  l.idle_timeout_ms = 5000;
  return l;
}

std::vector<int> sweep(std::vector<Conn>& conns, uint64_t now, ConnectionStats& stats, int* exempt_asked = nullptr) {
  const ConnectionLimits l = limits();
  StreamSweep<Conn> s(now, l);
  for (Conn& c : conns)
    s.check(c, c.d, [&] {
      if (exempt_asked != nullptr) ++*exempt_asked;
      return c.exempt;
    });
  std::vector<int> closed;
  s.close_expired(stats, [&](Conn& c) { closed.push_back(c.id); });
  return closed;
}

TEST(StreamSweepTest, HandshakeDeadlineUntilTheFirstFrame) {
  std::vector<Conn> conns(2);
  conns[0].id = 1;
  conns[0].d.open(100);
  conns[1].id = 2;
  conns[1].d.open(100);
  conns[1].d.established = true;
  ConnectionStats stats;
  EXPECT_TRUE(sweep(conns, 1099, stats).empty());
  EXPECT_EQ(sweep(conns, 1100, stats), std::vector<int>{1});  // >= the deadline
  EXPECT_EQ(stats.handshake_timeouts.get(), 1u);
  EXPECT_EQ(stats.idle_timeouts.get(), 0u);
}

TEST(StreamSweepTest, IdleDeadlineFromTheLastReadUnlessExempt) {
  std::vector<Conn> conns(3);
  for (int i = 0; i < 3; ++i) {
    conns[i].id = i + 1;
    conns[i].d.open(0);
    conns[i].d.established = true;
  }
  conns[1].d.read(3000);   // read later: its deadline moves
  conns[2].exempt = true;  // e.g. holds an allocation
  ConnectionStats stats;
  int asked = 0;
  EXPECT_TRUE(sweep(conns, 4999, stats, &asked).empty());
  EXPECT_EQ(asked, 0);  // only connections past the idle deadline are asked
  EXPECT_EQ(sweep(conns, 5000, stats, &asked), std::vector<int>{1});
  EXPECT_EQ(asked, 2);
  EXPECT_EQ(stats.idle_timeouts.get(), 1u);
}

TEST(StreamSweepTest, LateOnesCloseBeforeIdleOnes) {
  std::vector<Conn> conns(2);
  conns[0].id = 1;
  conns[0].d.open(0);
  conns[0].d.established = true;  // idle at 5000
  conns[1].id = 2;
  conns[1].d.open(4500);  // late at 5500
  ConnectionStats stats;
  EXPECT_EQ(sweep(conns, 6000, stats), (std::vector<int>{2, 1}));
  EXPECT_EQ(stats.handshake_timeouts.get(), 1u);
  EXPECT_EQ(stats.idle_timeouts.get(), 1u);
}

TEST(ClockTest, MonotonicMillisecondsFollowTheClock) {
  FakeClock clock;
  const uint64_t t0 = monotonic_ms(clock);
  clock.advance(std::chrono::milliseconds(1500));
  EXPECT_EQ(monotonic_ms(clock) - t0, 1500u);
  EXPECT_GE(monotonic_ms(steady_clock()), 0u);
}

// The DTLS cookie's stamp comes from the injected clock: a cookie expires after kLifetime of it.
TEST(ClockTest, DtlsCookieExpiresOnTheInjectedClock) {
  FakeClock clock;
  DtlsCookieKey key(clock);
  const auto a = stun::TransportAddress::v4(0x7F000001, 40000);
  uint8_t cookie[DtlsCookieKey::kSize];
  key.make(a, cookie);
  EXPECT_TRUE(key.verify(a, cookie, sizeof cookie));
  clock.advance(DtlsCookieKey::kLifetime + std::chrono::seconds(1));
  EXPECT_FALSE(key.verify(a, cookie, sizeof cookie));
}

}  // namespace
}  // namespace ferry::server
