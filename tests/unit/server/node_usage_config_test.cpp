// The node.* and usage.* keys (issue 15) and the node id a fleet knows this instance by.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <unistd.h>

#include "server/config/config.h"
#include "server/config/node_id.h"

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
  EXPECT_THAT(r.error().message, HasSubstr("spaces"));
  r = load_config_string("usage: {queue_size: 0}\n", "ferry.yaml");
  ASSERT_FALSE(r);
  EXPECT_THAT(r.error().message, HasSubstr("usage.queue_size"));
  r = load_config_string("usage: {top_users: 1000}\n", "ferry.yaml");
  ASSERT_FALSE(r);
  EXPECT_THAT(r.error().message, HasSubstr("usage.top_users"));
}

TEST(NodeId, ConfiguredOrHostnameAndFirstListenerPort) {
  Config c;
  c.node.id = "relay-7";
  EXPECT_EQ(resolved_node_id(c), "relay-7");
  c.node.id.clear();
  char host[256] = {};
  ASSERT_EQ(gethostname(host, sizeof host - 1), 0);
  ASSERT_FALSE(c.listeners.empty());
  EXPECT_EQ(resolved_node_id(c), std::string(host) + "-" + std::to_string(c.listeners.front().address.port));
  EXPECT_EQ(resolved_node_id(c), resolved_node_id(c));  // stable
}

}  // namespace
}  // namespace ferry::server
