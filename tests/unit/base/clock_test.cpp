#include "base/clock.h"

#include <gtest/gtest.h>

#include <memory>

namespace ferry {
namespace {

using namespace std::chrono_literals;

TEST(FakeClockTest, StartsAtDefaults) {
  FakeClock c;
  EXPECT_EQ(c.now(), FakeClock::kDefaultStart);
  EXPECT_EQ(c.unix_seconds(), FakeClock::kDefaultUnixSeconds);
  EXPECT_NE(c.now(), Instant{});
}

TEST(FakeClockTest, AdvanceMovesBothClocks) {
  FakeClock c(Instant{} + 100s, 5000);
  c.advance(300s);
  EXPECT_EQ(c.now(), Instant{} + 400s);
  EXPECT_EQ(c.unix_seconds(), 5300u);
}

TEST(FakeClockTest, SubSecondAdvancesAccumulateInWallClock) {
  FakeClock c(Instant{}, 10);
  c.advance(500ms);
  EXPECT_EQ(c.unix_seconds(), 10u);
  c.advance(499ms);
  EXPECT_EQ(c.unix_seconds(), 10u);
  c.advance(1ms);
  EXPECT_EQ(c.unix_seconds(), 11u);
  EXPECT_EQ(c.now(), Instant{} + 1s);
}

TEST(FakeClockTest, NegativeAdvanceIsIgnored) {
  FakeClock c;
  auto before = c.now();
  c.advance(-5s);
  EXPECT_EQ(c.now(), before);
  EXPECT_EQ(c.unix_seconds(), FakeClock::kDefaultUnixSeconds);
}

TEST(FakeClockTest, SetUnixSecondsLeavesSteadyTimeAlone) {
  FakeClock c;
  auto before = c.now();
  c.set_unix_seconds(42);
  EXPECT_EQ(c.unix_seconds(), 42u);
  EXPECT_EQ(c.now(), before);
  c.advance(2s);
  EXPECT_EQ(c.unix_seconds(), 44u);
}

TEST(FakeClockTest, UsableThroughClockInterface) {
  auto fake = std::make_unique<FakeClock>();
  FakeClock* raw = fake.get();
  std::unique_ptr<Clock> clock = std::move(fake);
  auto t0 = clock->now();
  raw->advance(1s);
  EXPECT_EQ(clock->now() - t0, 1s);
}

TEST(SteadyClockTest, IsMonotonicAndWallClockIsPlausible) {
  SteadyClock c;
  auto a = c.now();
  auto b = c.now();
  EXPECT_LE(a, b);
  EXPECT_GT(c.unix_seconds(), 1'600'000'000u);  // after 2020
}

}  // namespace
}  // namespace ferry
