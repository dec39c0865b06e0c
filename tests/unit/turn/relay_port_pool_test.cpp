#include "turn/relay_port_pool.h"

#include <gtest/gtest.h>

#include <set>

namespace ferry::turn {
namespace {

using namespace std::chrono_literals;

const Instant t0 = Instant{} + 1000s;

TEST(RelayPortPoolTest, AcquireEveryPortOnceThenExhausted) {
  RelayPortPool pool(50000, 50009, 1);
  EXPECT_EQ(pool.capacity(), 10u);
  std::set<uint16_t> got;
  for (int i = 0; i < 10; ++i) {
    auto p = pool.acquire();
    ASSERT_TRUE(p);
    EXPECT_GE(*p, 50000);
    EXPECT_LE(*p, 50009);
    EXPECT_TRUE(got.insert(*p).second) << *p;
  }
  EXPECT_EQ(pool.free_count(), 0u);
  EXPECT_FALSE(pool.acquire());
  EXPECT_FALSE(pool.acquire_even());
  EXPECT_FALSE(pool.acquire_even_pair(t0));
}

TEST(RelayPortPoolTest, ReleaseMakesPortAvailableAgain) {
  RelayPortPool pool(50000, 50000, 1);
  auto p = pool.acquire();
  ASSERT_EQ(p, 50000);
  EXPECT_FALSE(pool.acquire());
  EXPECT_TRUE(pool.release(50000));
  EXPECT_FALSE(pool.release(50000));  // already free
  EXPECT_FALSE(pool.release(49999));  // out of range
  EXPECT_EQ(pool.acquire(), 50000);
}

TEST(RelayPortPoolTest, SeedDeterminesOrderAndOrderIsNotSequential) {
  RelayPortPool a(49152, 65535, 42);
  RelayPortPool b(49152, 65535, 42);
  RelayPortPool c(49152, 65535, 43);
  bool differs = false;
  bool sequential = true;
  std::optional<uint16_t> prev;
  for (int i = 0; i < 20; ++i) {
    auto pa = a.acquire();
    auto pb = b.acquire();
    auto pc = c.acquire();
    EXPECT_EQ(pa, pb);
    differs |= pa != pc;
    if (prev && *pa != *prev + 1) sequential = false;
    prev = pa;
  }
  EXPECT_TRUE(differs);
  EXPECT_FALSE(sequential);
}

TEST(RelayPortPoolTest, DegenerateRanges) {
  RelayPortPool empty(60000, 59999, 1);
  EXPECT_EQ(empty.capacity(), 0u);
  EXPECT_FALSE(empty.acquire());
  EXPECT_FALSE(empty.acquire_specific(60000));
  EXPECT_FALSE(empty.release(60000));
  EXPECT_FALSE(empty.is_free(60000));

  RelayPortPool zero(0, 0, 1);  // port 0 is never handed out
  EXPECT_EQ(zero.capacity(), 0u);
  EXPECT_FALSE(zero.acquire());

  RelayPortPool from_zero(0, 3, 1);
  EXPECT_EQ(from_zero.min_port(), 1);
  EXPECT_EQ(from_zero.capacity(), 3u);

  RelayPortPool top(65534, 65535, 1);
  EXPECT_EQ(top.capacity(), 2u);
  auto pair = top.acquire_even_pair(t0);
  ASSERT_TRUE(pair);
  EXPECT_EQ(pair->port, 65534);
  EXPECT_EQ(pair->reserved_port, 65535);
}

TEST(RelayPortPoolTest, AcquireSpecific) {
  RelayPortPool pool(50000, 50009, 1);
  EXPECT_TRUE(pool.acquire_specific(50005));
  EXPECT_FALSE(pool.acquire_specific(50005));
  EXPECT_FALSE(pool.acquire_specific(49999));
  EXPECT_FALSE(pool.acquire_specific(50010));
  EXPECT_FALSE(pool.is_free(50005));
  EXPECT_EQ(pool.free_count(), 9u);
  for (int i = 0; i < 9; ++i) EXPECT_NE(pool.acquire(), 50005);
}

TEST(RelayPortPoolTest, AcquireEvenGivesEvenPortsOnly) {
  RelayPortPool pool(50001, 50006, 7);  // evens: 50002, 50004, 50006
  std::set<uint16_t> got;
  for (int i = 0; i < 3; ++i) {
    auto p = pool.acquire_even();
    ASSERT_TRUE(p);
    EXPECT_EQ(*p % 2, 0);
    got.insert(*p);
  }
  EXPECT_EQ(got, (std::set<uint16_t>{50002, 50004, 50006}));
  EXPECT_FALSE(pool.acquire_even());
  EXPECT_EQ(pool.free_count(), 3u);  // the odd ones
  EXPECT_TRUE(pool.acquire());
}

TEST(RelayPortPoolTest, EvenPairReservesNextPort) {
  RelayPortPool pool(50000, 50009, 3);
  auto pair = pool.acquire_even_pair(t0);
  ASSERT_TRUE(pair);
  EXPECT_EQ(pair->port % 2, 0);
  EXPECT_EQ(pair->reserved_port, pair->port + 1);
  EXPECT_FALSE(pool.is_free(pair->port));
  EXPECT_FALSE(pool.is_free(pair->reserved_port));
  EXPECT_EQ(pool.reservation_count(), 1u);
  EXPECT_EQ(pool.free_count(), 8u);
  EXPECT_NE(pair->token, ReservationToken{});
  // Nobody else can take the reserved port.
  EXPECT_FALSE(pool.acquire_specific(pair->reserved_port));
  for (int i = 0; i < 8; ++i) EXPECT_NE(pool.acquire(), pair->reserved_port);
  EXPECT_FALSE(pool.acquire());
}

TEST(RelayPortPoolTest, EvenPairNeedsBothPortsFree) {
  RelayPortPool pool(50000, 50003, 3);  // pairs: 50000/1, 50002/3
  ASSERT_TRUE(pool.acquire_specific(50001));
  ASSERT_TRUE(pool.acquire_specific(50002));
  EXPECT_EQ(pool.free_count(), 2u);
  EXPECT_FALSE(pool.acquire_even_pair(t0));  // 50000 and 50003 free, but not as a pair
  EXPECT_EQ(pool.free_count(), 2u);
  pool.release(50002);
  auto pair = pool.acquire_even_pair(t0);
  ASSERT_TRUE(pair);
  EXPECT_EQ(pair->port, 50002);
}

TEST(RelayPortPoolTest, EvenPairSkipsEvenPortAtTopOfRange) {
  RelayPortPool pool(50001, 50004, 9);  // 50004 is even but 50005 is outside
  for (int i = 0; i < 5; ++i) {
    auto pair = pool.acquire_even_pair(t0);
    if (!pair) break;
    EXPECT_EQ(pair->port, 50002);
  }
  EXPECT_TRUE(pool.is_free(50004));
}

TEST(RelayPortPoolTest, RedeemTokenOnce) {
  RelayPortPool pool(50000, 50009, 5);
  auto pair = pool.acquire_even_pair(t0);
  ASSERT_TRUE(pair);
  EXPECT_FALSE(pool.redeem(ReservationToken{1, 2, 3}, t0));
  EXPECT_EQ(pool.redeem(pair->token, t0 + 29s), pair->reserved_port);
  EXPECT_EQ(pool.reservation_count(), 0u);
  EXPECT_FALSE(pool.is_free(pair->reserved_port));
  EXPECT_FALSE(pool.redeem(pair->token, t0 + 29s));  // one use
  EXPECT_TRUE(pool.release(pair->reserved_port));
  EXPECT_TRUE(pool.is_free(pair->reserved_port));
}

TEST(RelayPortPoolTest, ReservationExpiresAtThirtySeconds) {
  RelayPortPool pool(50000, 50009, 5);
  auto pair = pool.acquire_even_pair(t0);
  ASSERT_TRUE(pair);
  EXPECT_EQ(pool.next_expiry(), t0 + 30s);
  EXPECT_EQ(pool.expire(t0 + 30s - 1ns), 0u);
  EXPECT_FALSE(pool.redeem(pair->token, t0 + 30s));  // exact even before expire()
  EXPECT_EQ(pool.expire(t0 + 30s), 1u);
  EXPECT_TRUE(pool.is_free(pair->reserved_port));
  EXPECT_FALSE(pool.is_free(pair->port));  // the allocation's own port stays in use
  EXPECT_EQ(pool.free_count(), 9u);
  EXPECT_FALSE(pool.next_expiry());
  EXPECT_FALSE(pool.redeem(pair->token, t0 + 30s));
}

TEST(RelayPortPoolTest, ReleasingReservedPortDropsReservation) {
  RelayPortPool pool(50000, 50009, 5);
  auto pair = pool.acquire_even_pair(t0);
  ASSERT_TRUE(pair);
  EXPECT_TRUE(pool.release(pair->reserved_port));
  EXPECT_EQ(pool.reservation_count(), 0u);
  EXPECT_FALSE(pool.redeem(pair->token, t0));
  EXPECT_EQ(pool.free_count(), 9u);
}

TEST(RelayPortPoolTest, TokensAreDistinct) {
  RelayPortPool pool(40000, 49999, 11);
  std::set<ReservationToken> tokens;
  for (int i = 0; i < 1000; ++i) {
    auto pair = pool.acquire_even_pair(t0);
    ASSERT_TRUE(pair);
    EXPECT_TRUE(tokens.insert(pair->token).second);
  }
  EXPECT_EQ(pool.reservation_count(), 1000u);
  EXPECT_EQ(pool.free_count(), 10000u - 2000u);
}

TEST(RelayPortPoolTest, FreeCountStaysConsistent) {
  RelayPortPool pool(50000, 50099, 17);
  size_t in_use = 0;
  std::set<uint16_t> held;
  for (int round = 0; round < 5; ++round) {
    while (auto p = pool.acquire()) {
      held.insert(*p);
      ++in_use;
    }
    EXPECT_EQ(in_use, 100u);
    EXPECT_EQ(pool.free_count(), 0u);
    // Release every other one.
    for (auto it = held.begin(); it != held.end();) {
      if (*it % 2 == 0) {
        EXPECT_TRUE(pool.release(*it));
        it = held.erase(it);
        --in_use;
      } else {
        ++it;
      }
    }
    EXPECT_EQ(pool.free_count(), 50u);
  }
}

}  // namespace
}  // namespace ferry::turn
