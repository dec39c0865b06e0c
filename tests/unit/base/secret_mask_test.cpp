// The one secret masker serves config dumps, logs and PostgreSQL errors alike.
#include "base/secret_mask.h"

#include <gtest/gtest.h>

namespace ferry {
namespace {

TEST(SecretMask, ConnectionStringForms) {
  EXPECT_EQ(mask_conninfo("postgresql://u:secret@h:5432/db"), "postgresql://u:***@h:5432/db");
  EXPECT_EQ(mask_conninfo("postgresql://u@h/db"), "postgresql://u@h/db");
  EXPECT_EQ(mask_conninfo("postgresql://h/db?user=u&password=secret&sslmode=require"),
            "postgresql://h/db?user=u&password=***&sslmode=require");
  EXPECT_EQ(mask_conninfo("host=h password=secret user=u"), "host=h password=*** user=u");
  EXPECT_EQ(mask_conninfo("host=h password='se cr\\'et' user=u"), "host=h password=*** user=u");
  EXPECT_EQ(scrub_conninfo("bad URI: \"postgresql://u:pw@[x\"", "postgresql://u:pw@[x"),
            "bad URI: \"postgresql://u:***@[x\"");
}

TEST(SecretMask, ConfigDatabaseUrls) {
  EXPECT_EQ(mask_conninfo("postgresql://ferry:hunter2@db:5432/ferry"), "postgresql://ferry:***@db:5432/ferry");
  EXPECT_EQ(mask_conninfo("postgresql://ferry@db/ferry"), "postgresql://ferry@db/ferry");
  EXPECT_EQ(mask_conninfo("postgresql://db/ferry?user=a&password=hunter2&sslmode=require"),
            "postgresql://db/ferry?user=a&password=***&sslmode=require");
  EXPECT_EQ(mask_conninfo("host=db user=ferry password=hunter2 dbname=ferry"),
            "host=db user=ferry password=*** dbname=ferry");
  EXPECT_EQ(mask_conninfo("host=db password = 'hun ter2' dbname=x"), "host=db password = *** dbname=x");
  EXPECT_EQ(mask_conninfo(""), "");
}

}  // namespace
}  // namespace ferry
