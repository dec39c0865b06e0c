#include "db/usage_writer.h"

#include <string>

namespace ferry::db {

namespace {

constexpr int kUsageColumns = 15;

// A text[] literal. Peer entries are IP addresses (digits, hex letters, '.', ':'), but quote and
// escape anyway so nothing in a value can change the array's shape.
std::string usage_text_array(const std::vector<std::string>& items) {
  std::string out = "{";
  for (size_t i = 0; i < items.size(); ++i) {
    if (i) out += ',';
    out += '"';
    for (char c : items[i]) {
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
    out += '"';
  }
  return out + "}";
}

}  // namespace

Query usage_upsert_query(std::span<const UsageRecord> batch) {
  Query q;
  q.name.clear();  // the row count varies: the unnamed statement
  // Sent again after a lost connection: the upsert below makes a second run change nothing.
  q.retry_on_connection_loss = true;
  std::string sql =
      "INSERT INTO usage_records (allocation_id, username, realm, node, transport, client, started_at, ended_at, "
      "final, bytes_in, bytes_out, packets_in, packets_out, peers, peer_list) VALUES ";
  // Placeholders $1.. with their casts, row by row (appended piecewise: no temporaries).
  static constexpr const char* kRow[kUsageColumns] = {"",         "",         "",         "",          "",
                                                      "",         "::bigint", "::bigint", "::boolean", "::bigint",
                                                      "::bigint", "::bigint", "::bigint", "::integer", "::text[]"};
  int p = 0;
  for (size_t i = 0; i < batch.size(); ++i) {
    const UsageRecord& r = batch[i];
    sql.append(i ? ", (" : "(");
    for (int c = 0; c < kUsageColumns; ++c) {
      if (c) sql.append(", ");
      const bool time = c == 6 || c == 7;  // unix milliseconds
      if (time) sql.append("to_timestamp(");
      sql.append("$").append(std::to_string(++p)).append(kRow[c]);
      if (time) sql.append(" / 1000.0)");
    }
    sql.append(")");
    q.params.insert(
        q.params.end(),
        {r.allocation_id, r.username, r.realm, r.node, r.transport, r.client, std::to_string(r.started_unix_ms),
         std::to_string(r.ended_unix_ms), std::string(r.final ? "true" : "false"), std::to_string(r.bytes_in),
         std::to_string(r.bytes_out), std::to_string(r.packets_in), std::to_string(r.packets_out),
         std::to_string(r.peers), usage_text_array(r.peer_list)});
  }
  sql +=
      " ON CONFLICT (allocation_id) DO UPDATE SET "
      "ended_at = GREATEST(usage_records.ended_at, EXCLUDED.ended_at), "
      "final = usage_records.final OR EXCLUDED.final, "
      "bytes_in = GREATEST(usage_records.bytes_in, EXCLUDED.bytes_in), "
      "bytes_out = GREATEST(usage_records.bytes_out, EXCLUDED.bytes_out), "
      "packets_in = GREATEST(usage_records.packets_in, EXCLUDED.packets_in), "
      "packets_out = GREATEST(usage_records.packets_out, EXCLUDED.packets_out), "
      "peer_list = CASE WHEN EXCLUDED.peers >= usage_records.peers THEN EXCLUDED.peer_list "
      "ELSE usage_records.peer_list END, "
      "peers = GREATEST(usage_records.peers, EXCLUDED.peers), "
      "recorded_at = now()";
  q.sql = std::move(sql);
  return q;
}

UsageWriter::UsageWriter(uv_loop_t* loop, PgPool& pool, UsageWriterOptions opts)
    : loop_(loop), pool_(pool), opts_(std::move(opts)), queue_(opts_.capacity) {
  if (!opts_.log) opts_.log = stderr_logger();
  if (opts_.batch_size == 0) opts_.batch_size = 1;
}

UsageWriter::~UsageWriter() {
  *alive_ = false;
  stop();
}

void UsageWriter::start() {
  if (timer_ != nullptr) return;
  timer_ = new uv_timer_t{};
  uv_timer_init(loop_, timer_);
  timer_->data = this;
  const auto every = static_cast<uint64_t>(opts_.flush_interval.count() > 0 ? opts_.flush_interval.count() : 1);
  uv_timer_start(
      timer_,
      [](uv_timer_t* t) {
    if (t->data != nullptr) static_cast<UsageWriter*>(t->data)->flush();
      },
      every, every);
}

void UsageWriter::stop() {
  if (timer_ == nullptr) return;
  timer_->data = nullptr;
  uv_close(reinterpret_cast<uv_handle_t*>(timer_), [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
  timer_ = nullptr;
}

void UsageWriter::log(LogLevel level, std::string_view msg) const {
  if (opts_.log) opts_.log(level, msg);
}

bool UsageWriter::push(UsageRecord r) {
  const bool kept = queue_.push(std::move(r)) != UsageQueue::Push::Dropped;
  if (!kept) stats_.dropped.add();
  stats_.queued.set(static_cast<int64_t>(queue_.size()));
  return kept;
}

void UsageWriter::flush() {
  if (sending_ || queue_.empty()) return;
  if (failing_ && std::chrono::steady_clock::now() < retry_after_) return;
  auto batch = queue_.take(opts_.batch_size);
  const size_t rows = batch.size();
  std::weak_ptr<bool> alive = alive_;
  sending_ = true;
  const auto submit = pool_.query(usage_upsert_query(batch), [this, alive, rows](QueryResult r) {
    if (alive.expired()) return;
    on_answer(rows, r.ok(), r.error);
  });
  if (submit != PgPool::Submit::Queued)
    on_answer(rows, false, submit == PgPool::Submit::Unavailable ? "database unavailable" : "query queue full");
}

void UsageWriter::on_answer(size_t rows, bool ok, const std::string& error) {
  sending_ = false;
  queue_.done(ok);
  stats_.queued.set(static_cast<int64_t>(queue_.size()));
  if (!ok) {
    stats_.failed_batches.add();
    retry_after_ = std::chrono::steady_clock::now() + opts_.retry_interval;
    if (!failing_) {
      log(LogLevel::Warn, "usage records not written (" + error + "); keeping up to " +
                              std::to_string(queue_.capacity()) + " buffered and retrying");
    }
    failing_ = true;
    return;
  }
  stats_.written.add(rows);
  if (failing_) {
    log(LogLevel::Info, "usage records written again; " + std::to_string(queue_.size()) + " still buffered");
    failing_ = false;
  }
  // More waiting: the next batch at once (this runs from the pool's callback, not from push()).
  if (queue_.size() >= opts_.batch_size) flush();
}

}  // namespace ferry::db
