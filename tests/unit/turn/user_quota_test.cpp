// The fleet-wide per-user quota: this core's count plus the rest of the fleet's (RFC 8656 §7.2).
#include "turn/user_quota.h"

#include <gtest/gtest.h>

#include <vector>

#include "tests/unit/fixtures/turn_core_fixture.h"

namespace ferry::turn {
namespace {

using namespace ferry::turn::testing;

TEST(UserQuota, CountsLocalAndRemote) {
  EXPECT_FALSE(user_quota_reached(0, 0, 2));
  EXPECT_FALSE(user_quota_reached(1, 0, 2));
  EXPECT_FALSE(user_quota_reached(0, 1, 2));
  EXPECT_TRUE(user_quota_reached(1, 1, 2));
  EXPECT_TRUE(user_quota_reached(0, 2, 2));
  EXPECT_TRUE(user_quota_reached(2, 0, 2));
  EXPECT_TRUE(user_quota_reached(0, 5, 2));  // the fleet already overshot: still refused
}

TEST(UserQuota, ZeroIsUnlimited) { EXPECT_FALSE(user_quota_reached(100, 100, 0)); }

TEST(UserQuota, CountForMissingUserIsZero) {
  UserCounts c{{"alice", 3}};
  EXPECT_EQ(count_for(c, "alice"), 3u);
  EXPECT_EQ(count_for(c, "bob"), 0u);
  EXPECT_EQ(count_for({}, "alice"), 0u);
}

TEST_F(TurnCoreTest, PerUserQuotaCountsTheRestOfTheFleet) {
  config.max_allocations_per_user = 2;
  TurnClient a1 = alice(), a2 = alice(), a3 = alice(), b = bob();
  server().set_remote_user_counts({{"alice", 1}});
  allocate_ok(a1, tuple(1));  // 1 here + 1 elsewhere = 2: the quota
  expect_error(allocate(a2, tuple(2)), code::AllocationQuotaReached);
  allocate_ok(b, tuple(3));  // bob holds nothing elsewhere
  // The other node freed alice's allocation: the next heartbeat says so.
  server().set_remote_user_counts({});
  allocate_ok(a2, tuple(2));
  expect_error(allocate(a3, tuple(4)), code::AllocationQuotaReached);  // 2 here
}

TEST(UserQuota, EachWorkerCountsOtherNodesAndItsSiblings) {
  const UserCounts other_nodes{{"alice", 2}, {"carol", 1}};
  const std::vector<UserCounts> workers{{{"alice", 1}, {"bob", 3}}, {{"alice", 4}}, {}};
  auto r = remote_counts_per_worker(other_nodes, workers);
  ASSERT_EQ(r.size(), 3u);
  EXPECT_EQ(r[0], (UserCounts{{"alice", 6}, {"carol", 1}}));              // 2 + 4; bob only here
  EXPECT_EQ(r[1], (UserCounts{{"alice", 3}, {"bob", 3}, {"carol", 1}}));  // 2 + 1
  EXPECT_EQ(r[2], (UserCounts{{"alice", 7}, {"bob", 3}, {"carol", 1}}));  // everything else
  // local + remote is the fleet's total on every worker
  for (size_t i = 0; i < workers.size(); ++i)
    EXPECT_EQ(count_for(workers[i], "alice") + count_for(r[i], "alice"), 7u) << i;
}

TEST(UserQuota, NoOtherNodesNoSiblings) {
  EXPECT_TRUE(remote_counts_per_worker({}, {}).empty());
  auto r = remote_counts_per_worker({}, {{{"alice", 2}}});
  ASSERT_EQ(r.size(), 1u);
  EXPECT_TRUE(r[0].empty());  // a user only on this worker is counted by its core alone
  r = remote_counts_per_worker({{"alice", 1}}, {{}});
  EXPECT_EQ(r[0], (UserCounts{{"alice", 1}}));
}

}  // namespace
}  // namespace ferry::turn
