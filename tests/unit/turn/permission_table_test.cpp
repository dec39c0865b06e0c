#include "turn/permission_table.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>
#include "tests/unit/fixtures/addresses.h"

namespace ferry::turn {
namespace {

using test::addr;

using namespace std::chrono_literals;

TEST(PermissionTableTest, LifetimeIsFiveMinutes) { EXPECT_EQ(kPermissionLifetime, 300s); }

TEST(PermissionTableTest, EmptyAllowsNothing) {
  FakeClock clock;
  PermissionTable t;
  EXPECT_TRUE(t.empty());
  EXPECT_FALSE(t.allows(addr("192.0.2.1:1"), clock.now()));
  EXPECT_FALSE(t.expiry(addr("192.0.2.1:1")));
  EXPECT_FALSE(t.next_expiry());
}

TEST(PermissionTableTest, KeyedByIpPortIgnored) {
  FakeClock clock;
  PermissionTable t;
  EXPECT_EQ(t.install(addr("192.0.2.1:1000"), clock.now()), PermissionInstall::Installed);
  EXPECT_TRUE(t.allows(addr("192.0.2.1:1000"), clock.now()));
  EXPECT_TRUE(t.allows(addr("192.0.2.1:2000"), clock.now()));
  EXPECT_FALSE(t.allows(addr("192.0.2.2:1000"), clock.now()));
  // Another port of the same IP refreshes rather than adding.
  EXPECT_EQ(t.install(addr("192.0.2.1:3000"), clock.now()), PermissionInstall::Refreshed);
  EXPECT_EQ(t.size(), 1u);
}

TEST(PermissionTableTest, FamiliesAreDistinct) {
  FakeClock clock;
  PermissionTable t;
  t.install(addr("[2001:db8::1]:1"), clock.now());
  EXPECT_TRUE(t.allows(addr("[2001:db8::1]:9"), clock.now()));
  EXPECT_FALSE(t.allows(addr("[::ffff:192.0.2.1]:1"), clock.now()));
  t.install(addr("192.0.2.1:1"), clock.now());
  EXPECT_FALSE(t.allows(addr("[::ffff:192.0.2.1]:1"), clock.now()));
  EXPECT_EQ(t.size(), 2u);
}

TEST(PermissionTableTest, ExpiresAtExactlyThreeHundredSeconds) {
  FakeClock clock;
  PermissionTable t;
  auto peer = addr("192.0.2.1:1");
  t.install(peer, clock.now());
  EXPECT_EQ(t.expiry(peer), clock.now() + 300s);
  clock.advance(300s - 1ns);
  EXPECT_TRUE(t.allows(peer, clock.now()));
  clock.advance(1ns);
  EXPECT_FALSE(t.allows(peer, clock.now()));  // lookups are exact even before expire()
  EXPECT_EQ(t.size(), 1u);
  EXPECT_EQ(t.expire(clock.now()), 1u);
  EXPECT_TRUE(t.empty());
}

TEST(PermissionTableTest, RefreshRestartsLifetime) {
  FakeClock clock;
  PermissionTable t;
  auto peer = addr("192.0.2.1:1");
  t.install(peer, clock.now());
  clock.advance(200s);
  EXPECT_EQ(t.install(peer, clock.now()), PermissionInstall::Refreshed);
  clock.advance(299s);  // 499 s after the first install
  EXPECT_TRUE(t.allows(peer, clock.now()));
  clock.advance(1s);
  EXPECT_FALSE(t.allows(peer, clock.now()));
}

TEST(PermissionTableTest, ReinstallAfterExpiryCountsAsNew) {
  FakeClock clock;
  PermissionTable t;
  auto peer = addr("192.0.2.1:1");
  t.install(peer, clock.now());
  clock.advance(300s);
  EXPECT_EQ(t.install(peer, clock.now()), PermissionInstall::Installed);
  EXPECT_TRUE(t.allows(peer, clock.now()));
  EXPECT_EQ(t.size(), 1u);
}

TEST(PermissionTableTest, ExpireRemovesOnlyExpired) {
  FakeClock clock;
  PermissionTable t;
  t.install(addr("192.0.2.1:1"), clock.now());
  clock.advance(100s);
  t.install(addr("192.0.2.2:1"), clock.now());
  EXPECT_EQ(t.next_expiry(), clock.now() + 200s);
  clock.advance(200s);
  EXPECT_EQ(t.expire(clock.now()), 1u);
  EXPECT_EQ(t.size(), 1u);
  EXPECT_FALSE(t.allows(addr("192.0.2.1:1"), clock.now()));
  EXPECT_TRUE(t.allows(addr("192.0.2.2:1"), clock.now()));
  EXPECT_EQ(t.next_expiry(), clock.now() + 100s);
  EXPECT_EQ(t.expire(clock.now()), 0u);
}

TEST(PermissionTableTest, FullAtMaxAndReclaimsExpired) {
  FakeClock clock;
  PermissionTable t(2);
  EXPECT_EQ(t.max_size(), 2u);
  EXPECT_EQ(t.install(addr("192.0.2.1:1"), clock.now()), PermissionInstall::Installed);
  clock.advance(10s);
  EXPECT_EQ(t.install(addr("192.0.2.2:1"), clock.now()), PermissionInstall::Installed);
  EXPECT_EQ(t.install(addr("192.0.2.3:1"), clock.now()), PermissionInstall::Full);
  EXPECT_FALSE(t.allows(addr("192.0.2.3:1"), clock.now()));
  // Refreshing an existing one still works when full.
  EXPECT_EQ(t.install(addr("192.0.2.2:1"), clock.now()), PermissionInstall::Refreshed);
  // Once the first expires its slot is reclaimed on install.
  clock.advance(290s);
  EXPECT_EQ(t.install(addr("192.0.2.3:1"), clock.now()), PermissionInstall::Installed);
  EXPECT_EQ(t.size(), 2u);
  EXPECT_FALSE(t.allows(addr("192.0.2.1:1"), clock.now()));
}

TEST(PermissionTableTest, ZeroMaxRefusesEverything) {
  FakeClock clock;
  PermissionTable t(0);
  EXPECT_EQ(t.install(addr("192.0.2.1:1"), clock.now()), PermissionInstall::Full);
}

TEST(PermissionTableTest, CanInstallAllIsAllOrNothingCheck) {
  FakeClock clock;
  PermissionTable t(3);
  t.install(addr("192.0.2.1:1"), clock.now());
  t.install(addr("192.0.2.2:1"), clock.now());
  std::vector<TransportAddress> refresh_and_one_new = {addr("192.0.2.1:5"), addr("192.0.2.9:1"),
                                                       addr("192.0.2.9:2")};  // duplicate IP counted once
  EXPECT_TRUE(t.can_install_all(refresh_and_one_new, clock.now()));
  std::vector<TransportAddress> two_new = {addr("192.0.2.8:1"), addr("192.0.2.9:1")};
  EXPECT_FALSE(t.can_install_all(two_new, clock.now()));
  // After expiry the old ones no longer count.
  clock.advance(300s);
  EXPECT_TRUE(t.can_install_all(two_new, clock.now()));
  std::vector<TransportAddress> four = {addr("192.0.2.1:1"), addr("192.0.2.2:1"), addr("192.0.2.3:1"),
                                        addr("192.0.2.4:1")};
  EXPECT_FALSE(t.can_install_all(four, clock.now()));
  EXPECT_TRUE(t.can_install_all({}, clock.now()));
}

TEST(PermissionTableTest, CanInstallAllAgreesWithInstall) {
  FakeClock clock;
  PermissionTable t(2);
  t.install(addr("192.0.2.1:1"), clock.now());
  clock.advance(300s);  // expired, still stored
  t.install(addr("192.0.2.2:1"), clock.now());
  std::vector<TransportAddress> revive = {addr("192.0.2.1:1")};
  ASSERT_TRUE(t.can_install_all(revive, clock.now()));
  EXPECT_EQ(t.install(revive[0], clock.now()), PermissionInstall::Installed);
  std::vector<TransportAddress> one_more = {addr("192.0.2.3:1")};
  EXPECT_FALSE(t.can_install_all(one_more, clock.now()));
  EXPECT_EQ(t.install(one_more[0], clock.now()), PermissionInstall::Full);
}

}  // namespace
}  // namespace ferry::turn
