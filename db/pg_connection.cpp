#include "db/pg_connection.h"

#include "base/secret_mask.h"

#include <arpa/inet.h>
#include <netdb.h>

#include <algorithm>
#include <cstdio>

namespace ferry::db {

namespace {

using SteadyClock = std::chrono::steady_clock;

template <class H>
H* new_handle() {
  return new H{};
}

template <class H>
void close_handle(H*& h) {
  if (!h) return;
  auto* base = reinterpret_cast<uv_handle_t*>(h);
  base->data = nullptr;  // callbacks already queued for this iteration see no owner
  if (!uv_is_closing(base)) {
    uv_close(base, [](uv_handle_t* x) { delete reinterpret_cast<H*>(x); });
  }
  h = nullptr;
}

std::string conn_error(PGconn* c) { return one_line(c ? PQerrorMessage(c) : "out of memory"); }

std::chrono::microseconds since(SteadyClock::time_point t) {
  return std::chrono::duration_cast<std::chrono::microseconds>(SteadyClock::now() - t);
}

// Host names need a DNS lookup, which PQconnectStart would do blocking (libpq docs, PQconnectStartParams).
// Returns the name to resolve, or "" when libpq needs none (IP literal, unix socket, hostaddr given,
// several hosts — which we leave to libpq — or no host at all).
std::string host_to_resolve(const std::string& conninfo, std::string& parse_error) {
  char* err = nullptr;
  PQconninfoOption* opts = PQconninfoParse(conninfo.c_str(), &err);
  if (!opts) {
    parse_error = one_line(err ? err : "invalid connection string");
    if (err) PQfreemem(err);
    return "";
  }
  std::string host, hostaddr;
  for (PQconninfoOption* o = opts; o->keyword; ++o) {
    if (!o->val) continue;
    if (std::string_view(o->keyword) == "host") host = o->val;
    if (std::string_view(o->keyword) == "hostaddr") hostaddr = o->val;
  }
  PQconninfoFree(opts);
  if (host.empty() || !hostaddr.empty()) return "";
  if (host[0] == '/' || host[0] == '@' || host.find(',') != std::string::npos) return "";
  unsigned char buf[sizeof(in6_addr)];
  if (inet_pton(AF_INET, host.c_str(), buf) == 1 || inet_pton(AF_INET6, host.c_str(), buf) == 1) return "";
  return host;
}

}  // namespace

std::string one_line(std::string_view message) {
  std::string out(message);
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ' || out.back() == '\r')) out.pop_back();
  std::replace(out.begin(), out.end(), '\n', ' ');
  std::replace(out.begin(), out.end(), '\r', ' ');
  return out;
}

LogFn stderr_logger() {
  return [](LogLevel level, std::string_view msg) {
    static const char* names[] = {"debug", "info", "warning", "error"};
    if (level == LogLevel::Debug) return;
    std::fprintf(stderr, "[db] %s: %.*s\n", names[static_cast<int>(level)], static_cast<int>(msg.size()), msg.data());
  };
}

const char* to_string(QueryStatus s) {
  switch (s) {
    case QueryStatus::Ok: return "ok";
    case QueryStatus::Error: return "error";
    case QueryStatus::Timeout: return "timeout";
    case QueryStatus::Unavailable: return "unavailable";
  }
  return "?";
}

// ---------------------------------------------------------------------------------------------
// PgConnection

PgConnection::PgConnection(uv_loop_t* loop, Options opts, Hooks hooks)
    : loop_(loop), opts_(std::move(opts)), hooks_(std::move(hooks)), backoff_(opts_.backoff_initial) {
  if (!opts_.log) opts_.log = stderr_logger();
  jitter_state_ = static_cast<uint32_t>(reinterpret_cast<uintptr_t>(this) >> 4) ^
                  static_cast<uint32_t>(SteadyClock::now().time_since_epoch().count());
  timer_ = new_handle<uv_timer_t>();
  uv_timer_init(loop_, timer_);
  timer_->data = this;
}

PgConnection::~PgConnection() {
  alive_.end();
  teardown();
  close_handle(timer_);
}

void PgConnection::log(LogLevel level, std::string_view msg) const {
  if (opts_.log) opts_.log(level, msg);
}

void PgConnection::close() {
  teardown();
  uv_timer_stop(timer_);
  done_ = nullptr;
  query_.reset();
  state_ = State::Closed;
}

void PgConnection::teardown() {
  close_handle(poll_);  // before PQfinish closes the socket (libuv: never close a polled fd)
  poll_fd_ = -1;
  poll_events_ = 0;
  if (conn_) {
    PQfinish(conn_);
    conn_ = nullptr;
  }
  prepared_.clear();
  last_.reset();
  phase_ = Phase::None;
  flush_pending_ = false;
}

void PgConnection::connect() {
  if (state_ != State::Down) return;
  uv_timer_stop(timer_);
  std::string parse_error;
  std::string host = host_to_resolve(opts_.conninfo, parse_error);
  if (!parse_error.empty()) {
    state_ = State::Connecting;
    defer_fail("invalid connection string: " + parse_error);
    return;
  }
  if (host.empty()) {
    start_connect("");
    return;
  }
  state_ = State::Resolving;
  uv_timer_start(
      timer_,
      [](uv_timer_t* t) {
    if (t->data) static_cast<PgConnection*>(t->data)->on_timer();
      },
      static_cast<uint64_t>(opts_.connect_timeout.count()), 0);
  struct Req {
    uv_getaddrinfo_t req;
    ferry::Lifetime::Watch alive;
    PgConnection* self;
  };
  auto* r = new Req{{}, alive_.watch(), this};
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  int rc = uv_getaddrinfo(
      loop_, &r->req,
      [](uv_getaddrinfo_t* req, int status, addrinfo* res) {
    auto* r = reinterpret_cast<Req*>(req);
    std::unique_ptr<Req> owner(r);
    std::string addr;
    if (status == 0 && res) {
      char buf[INET6_ADDRSTRLEN] = {};
      if (res->ai_family == AF_INET) {
        uv_ip4_name(reinterpret_cast<sockaddr_in*>(res->ai_addr), buf, sizeof buf);
      } else if (res->ai_family == AF_INET6) {
        uv_ip6_name(reinterpret_cast<sockaddr_in6*>(res->ai_addr), buf, sizeof buf);
      }
      addr = buf;
    }
    if (res) uv_freeaddrinfo(res);
    if (r->alive.expired()) return;
    PgConnection* self = r->self;
    if (self->state_ != State::Resolving) return;  // timed out meanwhile
    if (addr.empty()) {
      self->fail(std::string("could not resolve the database host: ") + (status ? uv_strerror(status) : "no address"));
      return;
    }
    self->start_connect(addr);
      },
      host.c_str(), nullptr, &hints);
  if (rc != 0) {
    delete r;
    defer_fail(std::string("could not resolve the database host: ") + uv_strerror(rc));
  }
}

void PgConnection::start_connect(const std::string& hostaddr) {
  // Our defaults come before "dbname" (which expands the caller's string) so the caller's win.
  std::vector<const char*> keys = {"fallback_application_name", "keepalives",       "keepalives_idle",
                                   "keepalives_interval",       "keepalives_count", "dbname"};
  std::vector<const char*> vals = {"ferry", "1", "30", "10", "3", opts_.conninfo.c_str()};
  if (!hostaddr.empty()) {
    keys.push_back("hostaddr");
    vals.push_back(hostaddr.c_str());
  }
  keys.push_back(nullptr);
  vals.push_back(nullptr);
  state_ = State::Connecting;
  conn_ = PQconnectStartParams(keys.data(), vals.data(), 1);
  if (!conn_ || PQstatus(conn_) == CONNECTION_BAD) {
    defer_fail(conn_error(conn_));
    return;
  }
  PQsetNoticeProcessor(
      conn_,
      [](void* arg, const char* message) {
    auto* self = static_cast<PgConnection*>(arg);
    self->log(LogLevel::Debug, "server notice: " + one_line(message));
      },
      this);
  uv_timer_start(
      timer_,
      [](uv_timer_t* t) {
    if (t->data) static_cast<PgConnection*>(t->data)->on_timer();
      },
      static_cast<uint64_t>(opts_.connect_timeout.count()), 0);
  // libpq: after PQconnectStart, act as if PQconnectPoll had returned PGRES_POLLING_WRITING.
  rearm_poll(UV_WRITABLE, true);
}

void PgConnection::rearm_poll(int events, bool recreate) {
  int fd = conn_ ? PQsocket(conn_) : -1;
  if (fd < 0) {
    fail("database connection has no socket");
    return;
  }
  // While connecting libpq may close its socket and open another (next address or host) that can
  // get the same number; a fresh poll handle each step keeps libuv's epoll state right.
  if (recreate || fd != poll_fd_) close_handle(poll_);
  if (!poll_) {
    poll_ = new_handle<uv_poll_t>();
    int rc = uv_poll_init(loop_, poll_, fd);
    if (rc != 0) {
      delete poll_;
      poll_ = nullptr;
      fail(std::string("uv_poll_init: ") + uv_strerror(rc));
      return;
    }
    poll_->data = this;
    poll_fd_ = fd;
    poll_events_ = 0;
  }
  if (events == poll_events_) return;
  poll_events_ = events;
  uv_poll_start(poll_, events, [](uv_poll_t* h, int status, int ev) {
    if (h->data) static_cast<PgConnection*>(h->data)->on_io(status, ev);
  });
}

void PgConnection::connect_step() {
  switch (PQconnectPoll(conn_)) {
    case PGRES_POLLING_READING: rearm_poll(UV_READABLE, true); return;
    case PGRES_POLLING_WRITING: rearm_poll(UV_WRITABLE, true); return;
    case PGRES_POLLING_FAILED: fail(conn_error(conn_)); return;
    case PGRES_POLLING_OK: break;
    default:  // PGRES_POLLING_ACTIVE: unused since 9.x
      rearm_poll(UV_WRITABLE, true);
      return;
  }
  uv_timer_stop(timer_);
  if (PQsetnonblocking(conn_, 1) != 0) {
    fail("PQsetnonblocking: " + conn_error(conn_));
    return;
  }
  backoff_ = opts_.backoff_initial;
  rearm_poll(UV_READABLE, true);
  if (!poll_) return;
  if (!opts_.listen_channels.empty()) {
    std::string sql;
    for (const auto& ch : opts_.listen_channels) {
      // LISTEN takes an identifier, not a parameter: quote it properly.
      char* id = PQescapeIdentifier(conn_, ch.c_str(), ch.size());
      if (!id) {
        fail("PQescapeIdentifier: " + conn_error(conn_));
        return;
      }
      sql += "LISTEN ";
      sql += id;
      sql += ";";
      PQfreemem(id);
    }
    state_ = State::Setup;
    phase_ = Phase::Listen;
    if (!PQsendQuery(conn_, sql.c_str())) {
      fail(conn_error(conn_));
      return;
    }
    uv_timer_start(
        timer_,
        [](uv_timer_t* t) {
      if (t->data) static_cast<PgConnection*>(t->data)->on_timer();
        },
        static_cast<uint64_t>(opts_.connect_timeout.count()), 0);
    flush_output();
    return;
  }
  state_ = State::Ready;
  auto alive = alive_.watch();
  if (hooks_.up) hooks_.up();
  if (alive.expired() || state_ != State::Ready) return;
  if (hooks_.idle) hooks_.idle();
}

void PgConnection::on_io(int status, int events) {
  if (status < 0) {
    fail(std::string("socket error: ") + uv_strerror(status));
    return;
  }
  switch (state_) {
    case State::Connecting: connect_step(); return;
    case State::Setup:
    case State::Ready:
    case State::Busy:
      if (flush_pending_ && (events & (UV_WRITABLE | UV_READABLE))) {
        flush_output();
        if (!conn_) return;
      }
      if (events & UV_READABLE) read_input();
      return;
    default: return;
  }
}

void PgConnection::flush_output() {
  int r = PQflush(conn_);
  if (r < 0) {
    fail(conn_error(conn_));
    return;
  }
  flush_pending_ = (r == 1);
  rearm_poll(UV_READABLE | (flush_pending_ ? UV_WRITABLE : 0), false);
}

void PgConnection::read_input() {
  if (!PQconsumeInput(conn_)) {
    fail(conn_error(conn_));
    return;
  }
  if (!drain_notifies()) return;
  if (state_ == State::Setup || state_ == State::Busy) {
    step_results();
    return;
  }
  if (PQstatus(conn_) == CONNECTION_BAD) fail(conn_error(conn_));
}

bool PgConnection::drain_notifies() {
  auto alive = alive_.watch();
  while (conn_) {
    PGnotify* n = PQnotifies(conn_);
    if (!n) break;
    std::string channel = n->relname ? n->relname : "";
    std::string payload = n->extra ? n->extra : "";
    PQfreemem(n);
    if (hooks_.notify) hooks_.notify(channel, payload);
    if (alive.expired()) return false;
  }
  return conn_ != nullptr;
}

void PgConnection::step_results() {
  while (conn_ && !PQisBusy(conn_)) {
    PGresult* r = PQgetResult(conn_);
    if (!r) {
      phase_complete();
      return;
    }
    // Keep the first error if several results arrive; otherwise the last one.
    auto st = PQresultStatus(r);
    bool is_error = st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK;
    bool have_error =
        last_ && PQresultStatus(last_.get()) != PGRES_COMMAND_OK && PQresultStatus(last_.get()) != PGRES_TUPLES_OK;
    if (have_error && !is_error) {
      PQclear(r);
    } else {
      last_.reset(r);
    }
  }
}

void PgConnection::phase_complete() {
  PgResultPtr r = std::move(last_);
  if (PQstatus(conn_) == CONNECTION_BAD) {
    fail(r ? one_line(PQresultErrorMessage(r.get())) : conn_error(conn_));
    return;
  }
  auto st = r ? PQresultStatus(r.get()) : PGRES_FATAL_ERROR;
  bool ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
  switch (phase_) {
    case Phase::Listen: {
      if (!ok) {
        fail("LISTEN failed: " + (r ? one_line(PQresultErrorMessage(r.get())) : conn_error(conn_)));
        return;
      }
      uv_timer_stop(timer_);
      phase_ = Phase::None;
      state_ = State::Ready;
      auto alive = alive_.watch();
      if (hooks_.up) hooks_.up();
      if (alive.expired() || state_ != State::Ready) return;
      if (hooks_.idle) hooks_.idle();
      return;
    }
    case Phase::Prepare:
      if (ok) {
        prepared_.insert(query_->name);
        send_exec();
        return;
      }
      [[fallthrough]];
    case Phase::Execute: {
      QueryResult res;
      if (ok) {
        res.status = QueryStatus::Ok;
      } else {
        res.status = QueryStatus::Error;
        res.error = r ? one_line(PQresultErrorMessage(r.get())) : "no result";
        const char* code = r ? PQresultErrorField(r.get(), PG_DIAG_SQLSTATE) : nullptr;
        res.sqlstate = code ? code : "";
      }
      res.result = std::move(r);
      finish_query(std::move(res));
      return;
    }
    case Phase::None: return;
  }
}

void PgConnection::run(std::shared_ptr<const Query> q, std::chrono::milliseconds timeout, Done done) {
  query_ = std::move(q);
  done_ = std::move(done);
  state_ = State::Busy;
  uv_timer_start(
      timer_,
      [](uv_timer_t* t) {
    if (t->data) static_cast<PgConnection*>(t->data)->on_timer();
      },
      static_cast<uint64_t>(std::max<int64_t>(timeout.count(), 1)), 0);
  if (!query_->name.empty() && !prepared_.count(query_->name)) {
    int n = static_cast<int>(query_->params.size());
    phase_ = Phase::Prepare;
    if (!PQsendPrepare(conn_, query_->name.c_str(), query_->sql.c_str(), n, nullptr)) {
      defer_fail(conn_error(conn_));
      return;
    }
    flush_output();
    return;
  }
  send_exec();
}

void PgConnection::send_exec() {
  std::vector<const char*> values;
  values.reserve(query_->params.size());
  for (const auto& p : query_->params) values.push_back(p ? p->c_str() : nullptr);
  int n = static_cast<int>(values.size());
  phase_ = Phase::Execute;
  int ok = query_->name.empty()
               ? PQsendQueryParams(conn_, query_->sql.c_str(), n, nullptr, values.data(), nullptr, nullptr, 0)
               : PQsendQueryPrepared(conn_, query_->name.c_str(), n, values.data(), nullptr, nullptr, 0);
  if (!ok) {
    defer_fail(conn_error(conn_));
    return;
  }
  flush_output();
}

void PgConnection::finish_query(QueryResult r) {
  uv_timer_stop(timer_);
  phase_ = Phase::None;
  state_ = State::Ready;
  query_.reset();
  Done done = std::move(done_);
  done_ = nullptr;
  auto alive = alive_.watch();
  if (done) done(std::move(r), false);
  if (alive.expired() || state_ != State::Ready) return;
  if (hooks_.idle) hooks_.idle();
}

void PgConnection::on_timer() {
  if (deferred_error_) {
    std::string e = std::move(*deferred_error_);
    deferred_error_.reset();
    fail(std::move(e));
    return;
  }
  switch (state_) {
    case State::Down: connect(); return;
    case State::Resolving:
    case State::Connecting: fail("timed out connecting to the database"); return;
    case State::Setup: fail("timed out setting up the database connection"); return;
    case State::Busy: {
      // PQcancel would block (it opens a connection synchronously), so the connection is dropped
      // instead; the server abandons the statement when it notices.
      Done done = std::move(done_);
      done_ = nullptr;
      QueryResult r;
      r.status = QueryStatus::Timeout;
      r.error = "query timed out";
      auto alive = alive_.watch();
      if (done) done(std::move(r), false);
      if (alive.expired()) return;
      fail("query timed out; reconnecting");
      return;
    }
    default: return;
  }
}

void PgConnection::defer_fail(std::string error) {
  deferred_error_ = std::move(error);
  uv_timer_start(
      timer_,
      [](uv_timer_t* t) {
    if (t->data) static_cast<PgConnection*>(t->data)->on_timer();
      },
      0, 0);
}

void PgConnection::fail(std::string error) {
  if (state_ == State::Closed || state_ == State::Down) return;
  error = scrub_conninfo(std::move(error), opts_.conninfo);
  bool was_connected = connected();
  Done done = std::move(done_);
  done_ = nullptr;
  query_.reset();
  teardown();
  deferred_error_.reset();
  state_ = State::Down;
  // Reconnect: at once after losing a working connection, else after a growing, jittered delay.
  std::chrono::milliseconds delay{0};
  if (!was_connected) {
    jitter_state_ = jitter_state_ * 1664525u + 1013904223u;
    double factor = 0.8 + 0.4 * static_cast<double>(jitter_state_ >> 8) / static_cast<double>(1u << 24);
    delay = std::chrono::milliseconds(static_cast<int64_t>(static_cast<double>(backoff_.count()) * factor));
    backoff_ = std::min(backoff_ * 2, opts_.backoff_max);
  }
  uv_timer_start(
      timer_,
      [](uv_timer_t* t) {
    if (t->data) static_cast<PgConnection*>(t->data)->on_timer();
      },
      static_cast<uint64_t>(delay.count()), 0);
  auto alive = alive_.watch();
  if (done) {
    QueryResult r;
    r.status = QueryStatus::Unavailable;
    r.error = error;
    done(std::move(r), true);
    if (alive.expired()) return;
  }
  if (hooks_.down) hooks_.down(error, was_connected);
}

// ---------------------------------------------------------------------------------------------
// PgPool

PgPool::PgPool(uv_loop_t* loop, PgPoolOptions opts) : loop_(loop), opts_(std::move(opts)) {
  if (!opts_.log) opts_.log = stderr_logger();
  if (opts_.size == 0) opts_.size = 1;
  for (size_t i = 0; i < opts_.size; ++i) {
    PgConnection::Hooks hooks;
    hooks.up = [this] { on_up(); };
    hooks.idle = [this] { dispatch(); };
    hooks.down = [this](const std::string& e, bool) { on_down(e); };
    conns_.push_back(std::make_unique<PgConnection>(loop_, connection_options(), std::move(hooks)));
  }
  sweep_timer_ = new_handle<uv_timer_t>();
  uv_timer_init(loop_, sweep_timer_);
  sweep_timer_->data = this;
}

PgPool::~PgPool() {
  alive_.end();
  stop();
  close_handle(sweep_timer_);
}

PgConnection::Options PgPool::connection_options() const {
  PgConnection::Options o;
  o.conninfo = opts_.conninfo;
  o.connect_timeout = opts_.connect_timeout;
  o.backoff_initial = opts_.backoff_initial;
  o.backoff_max = opts_.backoff_max;
  o.log = opts_.log;
  return o;
}

void PgPool::start() {
  if (started_) return;
  started_ = true;
  for (auto& c : conns_) c->connect();
  if (listener_) listener_->connect();
  auto interval = static_cast<uint64_t>(std::clamp<int64_t>(opts_.query_timeout.count() / 4, 10, 250));
  uv_timer_start(
      sweep_timer_,
      [](uv_timer_t* t) {
    if (t->data) static_cast<PgPool*>(t->data)->sweep();
      },
      interval, interval);
  uv_unref(reinterpret_cast<uv_handle_t*>(sweep_timer_));
}

void PgPool::stop() {
  for (auto& c : conns_) c->close();
  if (listener_) listener_->close();
  if (sweep_timer_) uv_timer_stop(sweep_timer_);
  queue_.clear();
  started_ = false;
}

void PgPool::listen(std::vector<std::string> channels, NotifyFn on_notify, std::function<void(bool)> on_state) {
  on_notify_ = std::move(on_notify);
  on_listen_state_ = std::move(on_state);
  PgConnection::Options o = connection_options();
  o.listen_channels = std::move(channels);
  PgConnection::Hooks hooks;
  hooks.up = [this] {
    on_up();
    if (on_listen_state_) on_listen_state_(true);
  };
  hooks.down = [this](const std::string& e, bool was_connected) {
    auto alive = alive_.watch();
    if (was_connected && on_listen_state_) on_listen_state_(false);
    if (alive.expired()) return;
    on_down(e);
  };
  hooks.notify = [this](std::string_view ch, std::string_view payload) {
    if (on_notify_) on_notify_(ch, payload);
  };
  listener_ = std::make_unique<PgConnection>(loop_, std::move(o), std::move(hooks));
  if (started_) listener_->connect();
}

size_t PgPool::connected_count() const {
  size_t n = 0;
  for (const auto& c : conns_) n += c->connected() ? 1 : 0;
  if (listener_ && listener_->connected()) ++n;
  return n;
}

PgPool::Submit PgPool::query(Query q, Callback cb) {
  if (!started_ || !available()) {
    ++stats_.refused;
    return Submit::Unavailable;
  }
  if (queue_.size() >= opts_.max_queue) {
    ++stats_.refused;
    return Submit::QueueFull;
  }
  ++stats_.submitted;
  auto p = std::make_unique<Pending>();
  p->query = std::make_shared<const Query>(std::move(q));
  p->cb = std::move(cb);
  p->enqueued = SteadyClock::now();
  queue_.push_back(std::move(p));
  dispatch();
  return Submit::Queued;
}

void PgPool::dispatch() {
  for (auto& c : conns_) {
    if (queue_.empty()) return;
    if (!c->ready()) continue;
    std::unique_ptr<Pending> p = std::move(queue_.front());
    queue_.pop_front();
    auto started = SteadyClock::now();
    auto remaining = opts_.query_timeout - std::chrono::duration_cast<std::chrono::milliseconds>(started - p->enqueued);
    if (remaining <= std::chrono::milliseconds(0)) {
      QueryResult r;
      r.status = QueryStatus::Timeout;
      r.error = "query timed out waiting for a database connection";
      answer(std::move(p), std::move(r), started);
      continue;  // `c` is still ready
    }
    auto query = p->query;
    // Owned by the callback: if the connection is closed without answering, it is freed with it.
    auto holder = std::make_shared<std::unique_ptr<Pending>>(std::move(p));
    c->run(std::move(query), remaining, [this, holder, started](QueryResult r, bool lost) {
      std::unique_ptr<Pending> p = std::move(*holder);
      if (!p) return;
      if (lost && !p->retried && p->query->retry_on_connection_loss && available()) {
        p->retried = true;
        ++stats_.retries;
        queue_.push_front(std::move(p));
        dispatch();  // another connection may be idle; else the next one to become idle takes it
        return;
      }
      answer(std::move(p), std::move(r), started);
    });
  }
}

void PgPool::answer(std::unique_ptr<Pending> p, QueryResult r, SteadyClock::time_point started) {
  r.latency = since(p->enqueued);
  switch (r.status) {
    case QueryStatus::Ok: ++stats_.ok; break;
    case QueryStatus::Error: ++stats_.errors; break;
    case QueryStatus::Timeout: ++stats_.timeouts; break;
    case QueryStatus::Unavailable: ++stats_.unavailable; break;
  }
  if (hook_) {
    QueryStats s{p->query->name, r.status, std::chrono::duration_cast<std::chrono::microseconds>(started - p->enqueued),
                 r.latency};
    hook_(s);
  }
  if (p->cb) p->cb(std::move(r));
}

void PgPool::on_up() {
  if (outage_) {
    outage_ = false;
    auto secs = std::chrono::duration_cast<std::chrono::seconds>(SteadyClock::now() - outage_since_).count();
    opts_.log(LogLevel::Info, "database available again after " + std::to_string(secs) + " s");
  }
}

void PgPool::on_down(const std::string& error) {
  if (connected_count() > 0) {
    opts_.log(LogLevel::Debug, "database connection lost: " + error);
    return;
  }
  if (!outage_) {
    outage_ = true;
    outage_since_ = SteadyClock::now();
    ++stats_.outages;
    opts_.log(LogLevel::Warn, "database unavailable: " + error + " (retrying in the background)");
  } else {
    opts_.log(LogLevel::Debug, "database still unavailable: " + error);
  }
  fail_queue(QueryStatus::Unavailable, "database unavailable: " + error);
}

void PgPool::fail_queue(QueryStatus status, const std::string& error) {
  std::deque<std::unique_ptr<Pending>> q;
  q.swap(queue_);
  auto alive = alive_.watch();
  auto now = SteadyClock::now();
  for (auto& p : q) {
    QueryResult r;
    r.status = status;
    r.error = error;
    answer(std::move(p), std::move(r), now);
    if (alive.expired()) return;
  }
}

void PgPool::sweep() {
  auto now = SteadyClock::now();
  std::vector<std::unique_ptr<Pending>> expired;
  for (auto it = queue_.begin(); it != queue_.end();) {
    if (now - (*it)->enqueued >= opts_.query_timeout) {
      expired.push_back(std::move(*it));
      it = queue_.erase(it);
    } else {
      ++it;
    }
  }
  auto alive = alive_.watch();
  for (auto& p : expired) {
    QueryResult r;
    r.status = QueryStatus::Timeout;
    r.error = "query timed out waiting for a database connection";
    answer(std::move(p), std::move(r), now);
    if (alive.expired()) return;
  }
}

}  // namespace ferry::db
