// Writes usage records (db/usage_record.h) to PostgreSQL for one worker loop, off the data path:
// the loop pushes records into a bounded UsageQueue (never blocking, dropping and counting when
// full), and a timer on the same loop sends them in batches, one multi-row upsert at a time, through
// the worker's PgPool (non-blocking libpq). While the database is down the records stay queued and
// the batch is retried every retry interval; they are written when it is back.
//
// Each row carries the allocation's totals, and the upsert keeps the larger of the stored and the
// sent value of every counter, so a batch sent twice (a retry after an answer was lost) or an
// interim record arriving after the final one changes nothing: sums over rows stay exact.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <span>

#include <uv.h>

#include "base/counter.h"
#include "db/pg_connection.h"
#include "db/usage_queue.h"

namespace ferry::db {

struct UsageWriterOptions {
  size_t capacity = 10000;  // records buffered at most (waiting and in flight)
  size_t batch_size = 200;  // rows per statement
  std::chrono::milliseconds flush_interval{500};
  std::chrono::milliseconds retry_interval{1000};  // after a failed batch
  LogFn log;                                       // default: stderr_logger()
};

// Single writer: the writer's loop; read by the metrics scrape from another thread.
struct UsageStats {
  Counter written;         // records the database has
  Counter dropped;         // records lost because the queue was full
  Counter failed_batches;  // batches the database did not take (down, timeout, SQL error)
  Gauge queued;            // records buffered now
};

// The statement for `batch` (exposed for tests): one INSERT ... VALUES (...), (...) ON CONFLICT.
Query usage_upsert_query(std::span<const UsageRecord> batch);

class UsageWriter {
 public:
  // `loop` and `pool` must outlive the writer; call start() on the loop thread.
  UsageWriter(uv_loop_t* loop, PgPool& pool, UsageWriterOptions opts);
  ~UsageWriter();
  UsageWriter(const UsageWriter&) = delete;
  UsageWriter& operator=(const UsageWriter&) = delete;

  void start();
  void stop();  // closes the timer; records still queued are lost

  // On the loop thread. Never blocks; false when the queue was full and the record was dropped.
  bool push(UsageRecord r);
  // Sends a batch now if none is in flight (the timer also does).
  void flush();

  const UsageStats& stats() const { return stats_; }
  const UsageQueue& queue() const { return queue_; }

 private:
  void on_answer(size_t rows, bool ok, const std::string& error);
  void log(LogLevel level, std::string_view msg) const;

  uv_loop_t* loop_;
  PgPool& pool_;
  UsageWriterOptions opts_;
  UsageQueue queue_;
  uv_timer_t* timer_ = nullptr;  // freed by its close callback
  bool sending_ = false;
  bool failing_ = false;  // an outage is being logged: once when it starts, once when it ends
  std::chrono::steady_clock::time_point retry_after_{};
  UsageStats stats_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace ferry::db
