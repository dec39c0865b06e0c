// Asynchronous PostgreSQL on a libuv loop: libpq in non-blocking mode, driven by a uv_poll on
// PQsocket(). Nothing here blocks the loop: connecting (PQconnectStartParams/PQconnectPoll, with
// the host name resolved beforehand by uv_getaddrinfo), sending (PQsendQueryParams /
// PQsendPrepare + PQsendQueryPrepared, PQflush), and reading (PQconsumeInput, PQisBusy,
// PQgetResult, PQnotifies).
//
// PgPool keeps N connections and a FIFO of queued queries, enforces a per-query timeout, reconnects
// with exponential backoff and jitter, logs an outage once when it starts and once when it ends,
// and reports each query's latency to a hook (for a histogram). While every connection is down,
// query() refuses at once (Submit::Unavailable) so callers can answer "try later" without waiting.
// An optional extra connection LISTENs on channels and delivers NOTIFY payloads.
//
// Only parameterized queries: parameters are passed separately from the SQL text, never spliced.
// The connection string is a secret (it may hold a password): it is never logged.
#pragma once

#include "base/lifetime.h"

#include <libpq-fe.h>
#include <uv.h>

#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

namespace ferry::db {

enum class LogLevel { Debug, Info, Warn, Error };
using LogFn = std::function<void(LogLevel, std::string_view message)>;
// Writes "[db] <level>: message" to stderr; the server replaces it with spdlog.
LogFn stderr_logger();

// libpq's messages end in newlines and may span lines; logs and CLI errors want one line.
std::string one_line(std::string_view message);

struct PgResultDeleter {
  void operator()(PGresult* r) const { PQclear(r); }
};
using PgResultPtr = std::unique_ptr<PGresult, PgResultDeleter>;

enum class QueryStatus {
  Ok,           // the statement ran (PGRES_TUPLES_OK / PGRES_COMMAND_OK)
  Error,        // the server refused it (SQL error: see sqlstate)
  Timeout,      // no answer within the query timeout (queued or running)
  Unavailable,  // no connection (database down, connection lost, queue full)
};
const char* to_string(QueryStatus s);

struct QueryResult {
  QueryStatus status = QueryStatus::Unavailable;
  PgResultPtr result;                    // set when Ok (and for Error, the error result)
  std::string error;                     // one line, when not Ok
  std::string sqlstate;                  // when Error, e.g. "23505"
  std::chrono::microseconds latency{0};  // from query() to the answer

  bool ok() const { return status == QueryStatus::Ok; }
  int rows() const { return result ? PQntuples(result.get()) : 0; }
  bool is_null(int row, int col) const { return PQgetisnull(result.get(), row, col) != 0; }
  std::string_view value(int row, int col) const {
    return std::string_view(PQgetvalue(result.get(), row, col), PQgetlength(result.get(), row, col));
  }
};

struct Query {
  // Non-empty: prepared once per connection under this name (PQsendPrepare) and then executed with
  // PQsendQueryPrepared. Empty: PQsendQueryParams (the unnamed statement).
  std::string name;
  std::string sql;
  std::vector<std::optional<std::string>> params;  // text format; nullopt is NULL
  // Send it again (once) on another connection when the connection dies under it. Right for
  // reads; leave false for statements that must not run twice.
  bool retry_on_connection_loss = true;
};

struct QueryStats {
  std::string_view name;  // the statement name ("" for unnamed)
  QueryStatus status;
  std::chrono::microseconds queued;  // waiting for a free connection
  std::chrono::microseconds total;   // query() to answer
};

// One libpq connection driven by the loop. Used by PgPool; usable alone.
class PgConnection {
 public:
  enum class State { Down, Resolving, Connecting, Setup, Ready, Busy, Closed };
  struct Options {
    std::string conninfo;
    std::chrono::milliseconds connect_timeout{5000};
    std::chrono::milliseconds backoff_initial{250};
    std::chrono::milliseconds backoff_max{30000};
    std::vector<std::string> listen_channels;  // LISTENed after each (re)connect
    LogFn log;
  };
  struct Hooks {
    std::function<void()> up;    // connected (and LISTENing, if asked)
    std::function<void()> idle;  // ready for run(): after `up` and after each query
    // Connecting failed or an established connection was lost. A reconnect is already scheduled.
    std::function<void(const std::string& error, bool was_connected)> down;
    std::function<void(std::string_view channel, std::string_view payload)> notify;
  };
  // The answer to run(); `connection_lost` tells a dead connection from a real SQL error/timeout.
  using Done = std::function<void(QueryResult, bool connection_lost)>;

  PgConnection(uv_loop_t* loop, Options opts, Hooks hooks);
  ~PgConnection();
  PgConnection(const PgConnection&) = delete;
  PgConnection& operator=(const PgConnection&) = delete;

  void connect();  // from Down; afterwards it reconnects by itself until close()
  void close();    // Closed for good; a query running gets no answer
  State state() const { return state_; }
  bool ready() const { return state_ == State::Ready; }
  bool connected() const { return state_ == State::Setup || state_ == State::Ready || state_ == State::Busy; }
  std::chrono::milliseconds next_backoff() const { return backoff_; }

  // Requires ready(). `done` is always called later from the loop, never from inside run().
  void run(std::shared_ptr<const Query> q, std::chrono::milliseconds timeout, Done done);

 private:
  enum class Phase { None, Listen, Prepare, Execute };
  void start_connect(const std::string& hostaddr);
  void connect_step();
  void rearm_poll(int events, bool recreate);
  void on_io(int status, int events);
  void on_timer();
  void flush_output();
  void read_input();
  bool drain_notifies();  // false when this object went away in a callback
  void step_results();
  void phase_complete();
  void send_exec();
  void finish_query(QueryResult r);
  void fail(std::string error);
  void defer_fail(std::string error);
  void teardown();
  void log(LogLevel level, std::string_view msg) const;

  uv_loop_t* loop_;
  Options opts_;
  Hooks hooks_;
  PGconn* conn_ = nullptr;
  uv_poll_t* poll_ = nullptr;
  int poll_fd_ = -1;
  int poll_events_ = 0;
  uv_timer_t* timer_ = nullptr;
  State state_ = State::Down;
  Phase phase_ = Phase::None;
  bool flush_pending_ = false;
  std::optional<std::string> deferred_error_;
  std::shared_ptr<const Query> query_;
  Done done_;
  PgResultPtr last_;
  std::unordered_set<std::string> prepared_;
  std::chrono::milliseconds backoff_;
  uint32_t jitter_state_;
  ferry::Lifetime alive_;
};

struct PgPoolOptions {
  std::string conninfo;  // libpq keyword/value string or postgresql:// URI. Secret: never logged.
  size_t size = 2;       // query connections (the LISTEN connection comes on top)
  std::chrono::milliseconds query_timeout{2000};  // from query() to answer, queueing included
  std::chrono::milliseconds connect_timeout{5000};
  std::chrono::milliseconds backoff_initial{250};
  std::chrono::milliseconds backoff_max{30000};
  size_t max_queue = 1024;  // beyond this query() refuses (Submit::QueueFull)
  LogFn log;                // default: stderr_logger()
};

class PgPool {
 public:
  enum class Submit { Queued, Unavailable, QueueFull };
  using Callback = std::function<void(QueryResult)>;
  using NotifyFn = std::function<void(std::string_view channel, std::string_view payload)>;

  PgPool(uv_loop_t* loop, PgPoolOptions opts);
  ~PgPool();  // closes every connection; queued callbacks are dropped, not called
  PgPool(const PgPool&) = delete;
  PgPool& operator=(const PgPool&) = delete;

  // Starts connecting. Queries submitted before the first connection succeeds are queued.
  void start();
  void stop();

  // Queued: `cb` will be called exactly once, later, from the loop. Otherwise `cb` is not called.
  Submit query(Query q, Callback cb);

  // Opens a dedicated connection that LISTENs on `channels` (again after every reconnect).
  // `on_state(true)` each time it is (re)established — notifications sent while it was down are
  // lost, so a cache should be flushed then — and `on_state(false)` when it is lost.
  void listen(std::vector<std::string> channels, NotifyFn on_notify, std::function<void(bool up)> on_state);

  // Per-query latency (for a histogram); called for every answered query.
  void set_query_hook(std::function<void(const QueryStats&)> hook) { hook_ = std::move(hook); }

  // False while every connection is down (after a failed attempt): query() refuses then.
  bool available() const { return !outage_ || connected_count() > 0; }
  size_t connected_count() const;
  size_t queued() const { return queue_.size(); }

  struct Stats {
    uint64_t submitted = 0, ok = 0, errors = 0, timeouts = 0, unavailable = 0, refused = 0, retries = 0;
    uint64_t outages = 0;
  };
  const Stats& stats() const { return stats_; }

 private:
  struct Pending {
    std::shared_ptr<const Query> query;
    Callback cb;
    std::chrono::steady_clock::time_point enqueued;
    bool retried = false;
  };
  void dispatch();
  void answer(std::unique_ptr<Pending> p, QueryResult r, std::chrono::steady_clock::time_point started);
  void on_up();
  void on_down(const std::string& error);
  void fail_queue(QueryStatus status, const std::string& error);
  void sweep();
  PgConnection::Options connection_options() const;

  uv_loop_t* loop_;
  PgPoolOptions opts_;
  std::vector<std::unique_ptr<PgConnection>> conns_;
  std::unique_ptr<PgConnection> listener_;
  NotifyFn on_notify_;
  std::function<void(bool)> on_listen_state_;
  std::deque<std::unique_ptr<Pending>> queue_;
  std::function<void(const QueryStats&)> hook_;
  uv_timer_t* sweep_timer_ = nullptr;
  bool started_ = false;
  bool outage_ = false;
  std::chrono::steady_clock::time_point outage_since_;
  Stats stats_;
  ferry::Lifetime alive_;
};

}  // namespace ferry::db
