// The usage records' bounded queue (db/usage_queue.h) and the batch statement the writer sends
// (db/usage_writer.h), without a database; the writer itself against a database that is down.
#include <gtest/gtest.h>

#include <uv.h>

#include <chrono>
#include <string>

#include "db/usage_queue.h"
#include "db/usage_writer.h"

using namespace ferry;
using namespace std::chrono_literals;
using db::UsageQueue;
using db::UsageRecord;

namespace {

UsageRecord rec(const std::string& id, uint64_t bytes_in = 0, bool final = false) {
  UsageRecord r;
  r.allocation_id = id;
  r.username = "alice";
  r.bytes_in = bytes_in;
  r.final = final;
  return r;
}

TEST(UsageQueue, HoldsAtMostItsCapacityAndCountsDrops) {
  UsageQueue q(3);
  EXPECT_EQ(q.push(rec("a")), UsageQueue::Push::Queued);
  EXPECT_EQ(q.push(rec("b")), UsageQueue::Push::Queued);
  EXPECT_EQ(q.push(rec("c")), UsageQueue::Push::Queued);
  EXPECT_EQ(q.push(rec("d")), UsageQueue::Push::Dropped);
  EXPECT_EQ(q.push(rec("e")), UsageQueue::Push::Dropped);
  EXPECT_EQ(q.size(), 3u);
  EXPECT_EQ(q.dropped(), 2u);
  // A record for an allocation already waiting replaces it even when full: it costs no slot.
  EXPECT_EQ(q.push(rec("b", 99)), UsageQueue::Push::Replaced);
  EXPECT_EQ(q.size(), 3u);
  auto batch = q.take(10);
  ASSERT_EQ(batch.size(), 3u);
  EXPECT_EQ(batch[0].allocation_id, "a");
  EXPECT_EQ(batch[1].allocation_id, "b");
  EXPECT_EQ(batch[1].bytes_in, 99u);  // in b's place: order by first arrival
  EXPECT_EQ(batch[2].allocation_id, "c");
}

TEST(UsageQueue, AReplacedRecordStaysFinal) {
  UsageQueue q(4);
  q.push(rec("a", 10, /*final=*/true));
  q.push(rec("a", 5, /*final=*/false));  // an interim record made after (cannot happen; harmless)
  auto batch = q.take(4);
  ASSERT_EQ(batch.size(), 1u);
  EXPECT_TRUE(batch[0].final);
  EXPECT_EQ(q.replaced(), 1u);
}

TEST(UsageQueue, BatchesFromTheFrontAndRetriesAFailedOneUnchanged) {
  UsageQueue q(100);
  for (int i = 0; i < 7; ++i) q.push(rec(std::string("r") + std::to_string(i), i));
  auto first = q.take(3);
  ASSERT_EQ(first.size(), 3u);
  EXPECT_EQ(first[0].allocation_id, "r0");
  EXPECT_EQ(q.in_flight(), 3u);
  EXPECT_EQ(q.size(), 7u);  // in flight still counts against the capacity
  // Records in flight are not replaced: the newer one waits behind.
  EXPECT_EQ(q.push(rec("r1", 1000)), UsageQueue::Push::Queued);
  EXPECT_EQ(q.size(), 8u);

  q.done(false);           // the database did not take it
  auto again = q.take(5);  // the same batch, not a bigger one
  ASSERT_EQ(again.size(), 3u);
  EXPECT_EQ(again[0].allocation_id, "r0");
  EXPECT_EQ(again[1].bytes_in, 1u);
  q.done(true);
  EXPECT_EQ(q.size(), 5u);
  EXPECT_EQ(q.in_flight(), 0u);

  auto rest = q.take(10);
  ASSERT_EQ(rest.size(), 5u);
  EXPECT_EQ(rest[0].allocation_id, "r3");
  EXPECT_EQ(rest[4].allocation_id, "r1");
  EXPECT_EQ(rest[4].bytes_in, 1000u);
  q.done(true);
  EXPECT_TRUE(q.empty());
  EXPECT_TRUE(q.take(10).empty());
  // Once taken, an id is free again for a new waiting record.
  EXPECT_EQ(q.push(rec("r1", 2000)), UsageQueue::Push::Queued);
}

TEST(UsageUpsert, OneStatementPerBatchWithEveryValueAsAParameter) {
  std::vector<UsageRecord> batch{rec("n/b/0/1", 5), rec("n/b/0/2", 7, true)};
  batch[1].peer_list = {"192.0.2.1", "2001:db8::1", "we\"ird\\"};
  batch[1].peers = 3;
  batch[0].username = "bob'); DROP TABLE usage_records; --";
  const db::Query q = db::usage_upsert_query(batch);
  EXPECT_TRUE(q.name.empty());
  EXPECT_TRUE(q.retry_on_connection_loss);  // safe: the upsert keeps the larger values
  ASSERT_EQ(q.params.size(), 30u);
  EXPECT_NE(q.sql.find("$30::text[]"), std::string::npos);
  EXPECT_EQ(q.sql.find("$31"), std::string::npos);
  EXPECT_NE(q.sql.find("ON CONFLICT (allocation_id) DO UPDATE"), std::string::npos);
  EXPECT_NE(q.sql.find("GREATEST(usage_records.bytes_in, EXCLUDED.bytes_in)"), std::string::npos);
  EXPECT_EQ(q.sql.find("DROP TABLE"), std::string::npos);  // values travel as parameters only
  EXPECT_EQ(*q.params[0], "n/b/0/1");
  EXPECT_EQ(*q.params[1], "bob'); DROP TABLE usage_records; --");
  EXPECT_EQ(*q.params[9], "5");
  EXPECT_EQ(*q.params[15 + 8], "true");
  EXPECT_EQ(*q.params[15 + 14], R"({"192.0.2.1","2001:db8::1","we\"ird\\"})");
  EXPECT_EQ(*q.params[14], "{}");
}

// The writer with a database that refuses connections: push never blocks, records stay buffered
// up to the bound, the rest are dropped and counted, failed batches are counted, one warning.
TEST(UsageWriter, BuffersWhileTheDatabaseIsDown) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  std::vector<std::string> logs;
  {
    db::PgPoolOptions po;
    po.conninfo = "postgresql://postgres@127.0.0.1:1/postgres?connect_timeout=1";
    po.size = 1;
    po.backoff_initial = 20ms;
    po.backoff_max = 100ms;
    po.log = [](db::LogLevel, std::string_view) {};
    db::PgPool pool(&loop, po);
    db::UsageWriterOptions wo;
    wo.capacity = 3;
    wo.batch_size = 2;
    wo.flush_interval = 10ms;
    wo.retry_interval = 50ms;
    wo.log = [&](db::LogLevel, std::string_view m) { logs.emplace_back(m); };
    db::UsageWriter writer(&loop, pool, wo);
    pool.start();
    writer.start();
    const auto t0 = std::chrono::steady_clock::now();
    int kept = 0;
    for (int i = 0; i < 5; ++i) kept += writer.push(rec(std::string("x") + std::to_string(i), 10)) ? 1 : 0;
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 5ms) << "push must not wait for the database";
    EXPECT_EQ(kept, 3);
    const auto end = std::chrono::steady_clock::now() + 600ms;
    while (std::chrono::steady_clock::now() < end) uv_run(&loop, UV_RUN_ONCE);
    EXPECT_EQ(writer.stats().dropped.get(), 2u);
    EXPECT_EQ(writer.stats().queued.get(), 3);
    EXPECT_EQ(writer.stats().written.get(), 0u);
    EXPECT_GT(writer.stats().failed_batches.get(), 1u);   // retried
    EXPECT_LT(writer.stats().failed_batches.get(), 30u);  // but at the retry interval, not in a spin
    writer.stop();
    pool.stop();
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  EXPECT_EQ(uv_loop_close(&loop), 0);
  ASSERT_EQ(logs.size(), 1u) << "one warning per outage";
  EXPECT_NE(logs[0].find("usage records not written"), std::string::npos) << logs[0];
}

}  // namespace
