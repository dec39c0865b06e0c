// The usage.* keys (issue 15), beside the node.* keys they go with (node_id and the registry are
// tested in fleet_nodes_test.cpp).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "server/config/config.h"

namespace ferry::server {
namespace {

using ::testing::HasSubstr;

TEST(NodeUsageConfig, Defaults) {
  Config c;
  EXPECT_EQ(c.node.id, "");
  EXPECT_EQ(c.node.heartbeat_interval, 5u);
  EXPECT_EQ(c.usage.interval, 60u);
  EXPECT_EQ(c.usage.queue_size, 10000u);
  EXPECT_EQ(c.usage.top_users, 10u);
}

TEST(NodeUsageConfig, ReadFromYamlAndEnvironment) {
  auto r = load_config_string("node: {id: relay-eu-1, heartbeat_interval: 2}\nusage: {interval: 5, queue_size: 7}\n",
                              "ferry.yaml", {{"FERRY_USAGE_TOP_USERS", "0"}});
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->node.id, "relay-eu-1");
  EXPECT_EQ(r->node.heartbeat_interval, 2u);
  EXPECT_EQ(r->usage.interval, 5u);
  EXPECT_EQ(r->usage.queue_size, 7u);
  EXPECT_EQ(r->usage.top_users, 0u);
}

TEST(NodeUsageConfig, BadValuesNameTheKey) {
  auto r = load_config_string("node: {id: \"two words\"}\n", "ferry.yaml");
  ASSERT_FALSE(r);
  EXPECT_THAT(r.error().message, HasSubstr("node.id"));
  r = load_config_string("usage: {queue_size: 0}\n", "ferry.yaml");
  ASSERT_FALSE(r);
  EXPECT_THAT(r.error().message, HasSubstr("usage.queue_size"));
  r = load_config_string("usage: {top_users: 1000}\n", "ferry.yaml");
  ASSERT_FALSE(r);
  EXPECT_THAT(r.error().message, HasSubstr("usage.top_users"));
}

}  // namespace
}  // namespace ferry::server
