#include "turn/token_bucket.h"

#include <gtest/gtest.h>

#include <limits>

namespace ferry::turn {
namespace {

using namespace std::chrono_literals;

const Instant kStart = Instant{} + 1000s;

TEST(TokenBucketTest, DefaultIsUnlimited) {
  TokenBucket b;
  EXPECT_TRUE(b.unlimited());
  EXPECT_TRUE(b.try_consume(std::numeric_limits<uint64_t>::max(), kStart));
  EXPECT_EQ(b.available(kStart), std::numeric_limits<uint64_t>::max());
}

TEST(TokenBucketTest, RateZeroIsUnlimited) {
  TokenBucket b(0, 10, kStart);
  EXPECT_TRUE(b.unlimited());
  for (int i = 0; i < 1000; ++i) EXPECT_TRUE(b.try_consume(1'000'000, kStart));
}

TEST(TokenBucketTest, StartsFullAndDrains) {
  TokenBucket b(1000, 1500, kStart);
  EXPECT_EQ(b.available(kStart), 1500u);
  EXPECT_TRUE(b.try_consume(1000, kStart));
  EXPECT_TRUE(b.try_consume(500, kStart));
  EXPECT_FALSE(b.try_consume(1, kStart));
  EXPECT_EQ(b.available(kStart), 0u);
}

TEST(TokenBucketTest, FailedConsumeTakesNothing) {
  TokenBucket b(1000, 100, kStart);
  EXPECT_FALSE(b.try_consume(101, kStart));  // more than burst: never
  EXPECT_EQ(b.available(kStart), 100u);
  EXPECT_TRUE(b.try_consume(60, kStart));
  EXPECT_FALSE(b.try_consume(41, kStart));
  EXPECT_EQ(b.available(kStart), 40u);
  EXPECT_TRUE(b.try_consume(40, kStart));
}

TEST(TokenBucketTest, RefillsAtRateExactly) {
  TokenBucket b(1000, 1000, kStart);
  ASSERT_TRUE(b.try_consume(1000, kStart));
  EXPECT_FALSE(b.try_consume(1, kStart + 999us));  // 0.999 tokens
  EXPECT_TRUE(b.try_consume(1, kStart + 1ms));     // exactly 1
  EXPECT_FALSE(b.try_consume(1, kStart + 1ms));
  EXPECT_TRUE(b.try_consume(10, kStart + 11ms));
  EXPECT_EQ(b.available(kStart + 11ms), 0u);
}

TEST(TokenBucketTest, FractionalTokensAreKept) {
  TokenBucket b(3, 3, kStart);  // one token every 333.33 ms
  ASSERT_TRUE(b.try_consume(3, kStart));
  Instant t = kStart;
  int granted = 0;
  for (int i = 0; i < 3000; ++i) {  // 3000 x 1 ms = 3 s = 9 tokens, with no rounding loss
    t += 1ms;
    if (b.try_consume(1, t)) ++granted;
  }
  EXPECT_EQ(granted, 9);
}

TEST(TokenBucketTest, NeverExceedsBurst) {
  TokenBucket b(1000, 50, kStart);
  EXPECT_EQ(b.available(kStart + 1h), 50u);
  EXPECT_TRUE(b.try_consume(50, kStart + 1h));
  EXPECT_FALSE(b.try_consume(1, kStart + 1h));
}

TEST(TokenBucketTest, StaleTimestampsEarnNothing) {
  TokenBucket b(1000, 1000, kStart);
  ASSERT_TRUE(b.try_consume(1000, kStart + 1s));
  EXPECT_FALSE(b.try_consume(1, kStart));  // older than the last refill
  EXPECT_FALSE(b.try_consume(1, kStart + 1s));
  EXPECT_TRUE(b.try_consume(1, kStart + 1s + 1ms));
}

TEST(TokenBucketTest, BurstZeroMeansOneSecondOfRate) {
  TokenBucket b(200, 0, kStart);
  EXPECT_EQ(b.burst(), 200u);
  EXPECT_EQ(b.available(kStart), 200u);
}

TEST(TokenBucketTest, HugeValuesDoNotOverflow) {
  const uint64_t max = std::numeric_limits<uint64_t>::max();
  TokenBucket b(max, max, kStart);
  EXPECT_EQ(b.burst(), TokenBucket::kMaxBurst);
  EXPECT_TRUE(b.try_consume(TokenBucket::kMaxBurst, kStart));
  EXPECT_EQ(b.available(kStart), 0u);
  EXPECT_EQ(b.available(kStart + 1ns), TokenBucket::kMaxBurst);
  EXPECT_EQ(b.available(kStart + std::chrono::hours(24 * 365 * 100)), TokenBucket::kMaxBurst);

  TokenBucket slow(1, TokenBucket::kMaxBurst, kStart);
  ASSERT_TRUE(slow.try_consume(TokenBucket::kMaxBurst, kStart));
  EXPECT_EQ(slow.available(kStart + std::chrono::hours(24 * 365 * 100)), 100u * 365 * 24 * 3600);
}

TEST(TokenBucketTest, ReconfigureKeepsEarnedTokensUpToNewBurst) {
  TokenBucket b(1000, 1000, kStart);
  ASSERT_TRUE(b.try_consume(800, kStart));  // 200 left
  b.reconfigure(10, 100, kStart + 100ms);   // 200 + 100 earned, capped to 100
  EXPECT_EQ(b.available(kStart + 100ms), 100u);
  ASSERT_TRUE(b.try_consume(100, kStart + 100ms));
  b.reconfigure(1000, 5000, kStart + 100ms);  // no free refill on reload
  EXPECT_EQ(b.available(kStart + 100ms), 0u);
  EXPECT_EQ(b.available(kStart + 200ms), 100u);
}

TEST(TokenBucketTest, ReconfigureFromUnlimitedStartsFull) {
  TokenBucket b;
  b.reconfigure(100, 10, kStart);
  EXPECT_FALSE(b.unlimited());
  EXPECT_EQ(b.available(kStart), 10u);
  b.reconfigure(0, 0, kStart);
  EXPECT_TRUE(b.unlimited());
  EXPECT_TRUE(b.try_consume(1'000'000, kStart));
}

}  // namespace
}  // namespace ferry::turn
