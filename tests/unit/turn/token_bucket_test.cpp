#include "turn/token_bucket.h"

#include <gtest/gtest.h>

#include <limits>

namespace ferry::turn {
namespace {

using namespace std::chrono_literals;

const Instant t0 = Instant{} + 1000s;

TEST(TokenBucketTest, DefaultIsUnlimited) {
  TokenBucket b;
  EXPECT_TRUE(b.unlimited());
  EXPECT_TRUE(b.try_consume(std::numeric_limits<uint64_t>::max(), t0));
  EXPECT_EQ(b.available(t0), std::numeric_limits<uint64_t>::max());
}

TEST(TokenBucketTest, RateZeroIsUnlimited) {
  TokenBucket b(0, 10, t0);
  EXPECT_TRUE(b.unlimited());
  for (int i = 0; i < 1000; ++i) EXPECT_TRUE(b.try_consume(1'000'000, t0));
}

TEST(TokenBucketTest, StartsFullAndDrains) {
  TokenBucket b(1000, 1500, t0);
  EXPECT_EQ(b.available(t0), 1500u);
  EXPECT_TRUE(b.try_consume(1000, t0));
  EXPECT_TRUE(b.try_consume(500, t0));
  EXPECT_FALSE(b.try_consume(1, t0));
  EXPECT_EQ(b.available(t0), 0u);
}

TEST(TokenBucketTest, FailedConsumeTakesNothing) {
  TokenBucket b(1000, 100, t0);
  EXPECT_FALSE(b.try_consume(101, t0));  // more than burst: never
  EXPECT_EQ(b.available(t0), 100u);
  EXPECT_TRUE(b.try_consume(60, t0));
  EXPECT_FALSE(b.try_consume(41, t0));
  EXPECT_EQ(b.available(t0), 40u);
  EXPECT_TRUE(b.try_consume(40, t0));
}

TEST(TokenBucketTest, RefillsAtRateExactly) {
  TokenBucket b(1000, 1000, t0);
  ASSERT_TRUE(b.try_consume(1000, t0));
  EXPECT_FALSE(b.try_consume(1, t0 + 999us));  // 0.999 tokens
  EXPECT_TRUE(b.try_consume(1, t0 + 1ms));     // exactly 1
  EXPECT_FALSE(b.try_consume(1, t0 + 1ms));
  EXPECT_TRUE(b.try_consume(10, t0 + 11ms));
  EXPECT_EQ(b.available(t0 + 11ms), 0u);
}

TEST(TokenBucketTest, FractionalTokensAreKept) {
  TokenBucket b(3, 3, t0);  // one token every 333.33 ms
  ASSERT_TRUE(b.try_consume(3, t0));
  Instant t = t0;
  int granted = 0;
  for (int i = 0; i < 3000; ++i) {  // 3000 x 1 ms = 3 s = 9 tokens, with no rounding loss
    t += 1ms;
    if (b.try_consume(1, t)) ++granted;
  }
  EXPECT_EQ(granted, 9);
}

TEST(TokenBucketTest, NeverExceedsBurst) {
  TokenBucket b(1000, 50, t0);
  EXPECT_EQ(b.available(t0 + 1h), 50u);
  EXPECT_TRUE(b.try_consume(50, t0 + 1h));
  EXPECT_FALSE(b.try_consume(1, t0 + 1h));
}

TEST(TokenBucketTest, StaleTimestampsEarnNothing) {
  TokenBucket b(1000, 1000, t0);
  ASSERT_TRUE(b.try_consume(1000, t0 + 1s));
  EXPECT_FALSE(b.try_consume(1, t0));  // older than the last refill
  EXPECT_FALSE(b.try_consume(1, t0 + 1s));
  EXPECT_TRUE(b.try_consume(1, t0 + 1s + 1ms));
}

TEST(TokenBucketTest, BurstZeroMeansOneSecondOfRate) {
  TokenBucket b(200, 0, t0);
  EXPECT_EQ(b.burst(), 200u);
  EXPECT_EQ(b.available(t0), 200u);
}

TEST(TokenBucketTest, HugeValuesDoNotOverflow) {
  const uint64_t max = std::numeric_limits<uint64_t>::max();
  TokenBucket b(max, max, t0);
  EXPECT_EQ(b.burst(), TokenBucket::kMaxBurst);
  EXPECT_TRUE(b.try_consume(TokenBucket::kMaxBurst, t0));
  EXPECT_EQ(b.available(t0), 0u);
  EXPECT_EQ(b.available(t0 + 1ns), TokenBucket::kMaxBurst);
  EXPECT_EQ(b.available(t0 + std::chrono::hours(24 * 365 * 100)), TokenBucket::kMaxBurst);

  TokenBucket slow(1, TokenBucket::kMaxBurst, t0);
  ASSERT_TRUE(slow.try_consume(TokenBucket::kMaxBurst, t0));
  EXPECT_EQ(slow.available(t0 + std::chrono::hours(24 * 365 * 100)), 100u * 365 * 24 * 3600);
}

TEST(TokenBucketTest, ReconfigureKeepsEarnedTokensUpToNewBurst) {
  TokenBucket b(1000, 1000, t0);
  ASSERT_TRUE(b.try_consume(800, t0));  // 200 left
  b.reconfigure(10, 100, t0 + 100ms);   // 200 + 100 earned, capped to 100
  EXPECT_EQ(b.available(t0 + 100ms), 100u);
  ASSERT_TRUE(b.try_consume(100, t0 + 100ms));
  b.reconfigure(1000, 5000, t0 + 100ms);  // no free refill on reload
  EXPECT_EQ(b.available(t0 + 100ms), 0u);
  EXPECT_EQ(b.available(t0 + 200ms), 100u);
}

TEST(TokenBucketTest, ReconfigureFromUnlimitedStartsFull) {
  TokenBucket b;
  b.reconfigure(100, 10, t0);
  EXPECT_FALSE(b.unlimited());
  EXPECT_EQ(b.available(t0), 10u);
  b.reconfigure(0, 0, t0);
  EXPECT_TRUE(b.unlimited());
  EXPECT_TRUE(b.try_consume(1'000'000, t0));
}

}  // namespace
}  // namespace ferry::turn
