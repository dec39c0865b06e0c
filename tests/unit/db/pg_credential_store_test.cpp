// db/pg_connection + db/pg_credential_store against a real, throwaway PostgreSQL server: initdb and
// pg_ctl in a temp dir on a free port (as the `postgres` system user when running as root). Skipped
// with a message only when the PostgreSQL server binaries are not installed.
//
// The loop runs on this thread; a 5 ms uv_timer measures the longest gap between its ticks while
// the loop runs, which must stay small: nothing in the store or the pool may block the loop.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "db/migrations.h"
#include "db/pg_connection.h"
#include "db/pg_credential_store.h"
#include "db/usage_writer.h"
#include "stun/integrity.h"
#include "base/clock.h"

using namespace ferry;
using namespace std::chrono_literals;
using auth::LookupResult;
using auth::LookupStatus;
using WallTimer = std::chrono::steady_clock;  // real time, for waiting on the database
namespace fs = std::filesystem;

// Named, not anonymous: the fixture is a base of every TEST_F, and in a unity build this file is
// included, where gcc warns about bases with internal linkage (-Wsubobject-linkage).
namespace pg_store_test {

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') out += "'\\''";
    else out += c;
  }
  return out + "'";
}

std::string find_pg_bindir() {
  if (const char* e = std::getenv("FERRY_PG_BINDIR"); e && fs::exists(fs::path(e) / "initdb")) return e;
  std::vector<fs::path> found;
  std::error_code ec;
  for (const auto& d : fs::directory_iterator("/usr/lib/postgresql", ec)) {
    if (fs::exists(d.path() / "bin" / "initdb") && fs::exists(d.path() / "bin" / "pg_ctl"))
      found.push_back(d.path() / "bin");
  }
  std::sort(found.begin(), found.end());
  if (!found.empty()) return found.back().string();
  for (const char* d : {"/usr/local/bin", "/usr/bin"}) {
    if (fs::exists(fs::path(d) / "initdb") && fs::exists(fs::path(d) / "pg_ctl")) return d;
  }
  return "";
}

int free_port() {
  int s = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  getsockname(s, reinterpret_cast<sockaddr*>(&a), &len);
  close(s);
  return ntohs(a.sin_port);
}

// A throwaway PostgreSQL server.
class PgServer {
 public:
  bool init(std::string& error) {
    bindir_ = find_pg_bindir();
    if (bindir_.empty()) {
      error = "PostgreSQL server binaries (initdb, pg_ctl) not found";
      return false;
    }
    char tmpl[] = "/tmp/ferry-pgtest-XXXXXX";
    if (!mkdtemp(tmpl)) {
      error = "mkdtemp failed";
      return false;
    }
    dir_ = tmpl;
    if (geteuid() == 0) {
      passwd* pw = getpwnam("postgres");
      if (!pw) {
        error = "running as root and there is no 'postgres' user to run the server as";
        return false;
      }
      if (chown(dir_.c_str(), pw->pw_uid, pw->pw_gid) != 0) {
        error = "chown of the temp dir failed";
        return false;
      }
      prefix_ = "runuser -u postgres -- ";
    }
    port_ = free_port();
    if (!run(bin("initdb") + " -D " + shell_quote(dir_ + "/data") +
                 " -A trust -U postgres -E UTF8 --no-sync --no-instructions",
             error)) {
      return false;
    }
    return start(error);
  }
  bool start(std::string& error) {
    std::string opts = "-p " + std::to_string(port_) + " -k " + dir_ +
                       " -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off";
    return run(bin("pg_ctl") + " -D " + shell_quote(dir_ + "/data") + " -l " + shell_quote(dir_ + "/log") +
                   " -w -t 30 -o " + shell_quote(opts) + " start",
               error);
  }
  bool stop(std::string& error) {
    return run(bin("pg_ctl") + " -D " + shell_quote(dir_ + "/data") + " -m fast -w -t 30 stop", error);
  }
  void destroy() {
    if (dir_.empty()) return;
    std::string ignored;
    if (fs::exists(dir_ + "/data/postmaster.pid")) {
      run(bin("pg_ctl") + " -D " + shell_quote(dir_ + "/data") + " -m immediate -w -t 30 stop", ignored);
    }
    std::error_code ec;
    fs::remove_all(dir_, ec);
    dir_.clear();
  }
  std::string url() const {
    return "postgresql://postgres@127.0.0.1:" + std::to_string(port_) + "/postgres?sslmode=disable&gssencmode=disable";
  }

 private:
  std::string bin(const char* name) const { return prefix_ + shell_quote(bindir_ + "/" + name); }
  bool run(const std::string& cmd, std::string& error) const {
    std::string full = "cd / && " + cmd + " > " + shell_quote(dir_ + "/cmd.out") + " 2>&1";
    int rc = std::system(full.c_str());
    if (rc != 0) {
      std::ifstream in(dir_ + "/cmd.out");
      std::stringstream ss;
      ss << in.rdbuf();
      error = "`" + cmd + "` failed (" + std::to_string(rc) + "): " + ss.str();
      return false;
    }
    return true;
  }
  std::string bindir_, dir_, prefix_;
  int port_ = 0;
};

PgServer* g_server = nullptr;
std::string g_skip;

// Blocking admin connection for setting up rows (the test thread; the loop is not running then).
class Admin {
 public:
  explicit Admin(const std::string& url) { conn_ = PQconnectdb(url.c_str()); }
  ~Admin() { PQfinish(conn_); }
  bool ok() const { return PQstatus(conn_) == CONNECTION_OK; }
  std::string error() const { return PQerrorMessage(conn_); }
  void exec(const std::string& sql, const std::vector<std::string>& params = {}) {
    std::vector<const char*> v;
    for (const auto& p : params) v.push_back(p.c_str());
    PGresult* r = PQexecParams(conn_, sql.c_str(), static_cast<int>(v.size()), nullptr, v.data(), nullptr, nullptr, 0);
    auto st = PQresultStatus(r);
    EXPECT_TRUE(st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) << sql << ": " << PQresultErrorMessage(r);
    PQclear(r);
  }
  void add_user(const std::string& name, const std::string& password, const std::string& realm = "ferry") {
    auto md5 = stun::long_term_key_md5(name, realm, password);
    auto sha = stun::long_term_key_sha256(name, realm, password);
    exec("INSERT INTO realms (name) VALUES ($1) ON CONFLICT DO NOTHING", {realm});
    exec(
        "INSERT INTO users (realm, name, key_md5, key_sha256, max_allocations, bandwidth) "
        "VALUES ($1, $2, decode($3, 'hex'), decode($4, 'hex'), 3, 64000)",
        {realm, name, hex(md5), hex(sha)});
  }
  PGconn* get() { return conn_; }
  static std::string hex(const stun::Key& k) {
    static const char* d = "0123456789abcdef";
    std::string s;
    for (size_t i = 0; i < k.size; ++i) {
      s += d[k.bytes[i] >> 4];
      s += d[k.bytes[i] & 15];
    }
    return s;
  }

 private:
  PGconn* conn_;
};

bool apply_schema(const std::string& url, std::string& error) {
  Admin a(url);
  if (!a.ok()) {
    error = a.error();
    return false;
  }
#ifdef FERRY_DB_MIGRATIONS_EMBEDDED
  auto r = db::migrate(a.get());
  if (!r.ok) error = r.error;
  if (r.ok && r.applied.empty()) error = "migrate applied nothing on an empty database";
  if (!error.empty()) return false;
  auto again = db::migrate(a.get());  // idempotent
  if (!again.ok || !again.applied.empty()) {
    error = "second migrate was not a no-op: " + again.error;
    return false;
  }
  return true;
#else
  // The embedded table is not linked into ferry_db yet (db/CMakeLists.txt has to include
  // db/migrations/embed.cmake): apply the .sql files the same way, from the source tree.
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(fs::path(FERRY_SOURCE_DIR) / "db" / "migrations")) {
    if (e.path().extension() == ".sql") files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  for (const auto& f : files) {
    std::ifstream in(f);
    std::stringstream ss;
    ss << in.rdbuf();
    PGresult* r = PQexec(a.get(), ss.str().c_str());
    bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok) error = f.string() + ": " + PQresultErrorMessage(r);
    PQclear(r);
    if (!ok) return false;
  }
  return true;
#endif
}

class PgEnvironment : public ::testing::Environment {
 public:
  void TearDown() override {
    if (g_server) {
      g_server->destroy();
      delete g_server;
      g_server = nullptr;
    }
  }
};
[[maybe_unused]] auto* const g_env = ::testing::AddGlobalTestEnvironment(new PgEnvironment);

class PgStoreTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (g_server || !g_skip.empty()) return;
    auto* s = new PgServer;
    std::string error;
    if (!s->init(error)) {
      bool missing = find_pg_bindir().empty();
      s->destroy();
      delete s;
      g_skip = missing ? error : "";
      if (!missing) g_setup_error = error;
      return;
    }
    g_server = s;
    if (!apply_schema(g_server->url(), error)) g_setup_error = "schema: " + error;
  }

  void SetUp() override {
    if (!g_skip.empty()) GTEST_SKIP() << g_skip << " (set FERRY_PG_BINDIR or install postgresql)";
    ASSERT_TRUE(g_setup_error.empty()) << g_setup_error;
    ASSERT_TRUE(g_server);
    admin_ = std::make_unique<Admin>(g_server->url());
    ASSERT_TRUE(admin_->ok()) << admin_->error();
    admin_->exec("TRUNCATE users, shared_secrets");
    uv_loop_init(&loop_);
    uv_timer_init(&loop_, &ticker_);
    ticker_.data = this;
    uv_timer_start(
        &ticker_, [](uv_timer_t* t) { static_cast<PgStoreTest*>(t->data)->tick(); }, 5, 5);
  }

  void TearDown() override {
    if (!loop_ready()) return;
    store_.reset();
    pool_.reset();
    uv_close(reinterpret_cast<uv_handle_t*>(&ticker_), nullptr);
    uv_run(&loop_, UV_RUN_DEFAULT);
    EXPECT_EQ(uv_loop_close(&loop_), 0);
    EXPECT_LT(max_gap_, 150ms) << "the loop was blocked for " << max_gap_.count() / 1000 << " ms";
    std::printf("[   info   ] longest loop stall: %.1f ms\n", max_gap_.count() / 1000.0);
  }
  bool loop_ready() const { return ticker_.data == this; }

  void make_store(db::PgCredentialStoreOptions so = {}) {
    db::PgPoolOptions po;
    po.conninfo = g_server->url();
    po.size = 2;
    po.query_timeout = 2s;
    po.connect_timeout = 2s;
    po.backoff_initial = 50ms;
    po.backoff_max = 400ms;
    po.log = [this](db::LogLevel l, std::string_view m) {
      logs_.push_back(std::string(l == db::LogLevel::Warn   ? "warn: "
                                  : l == db::LogLevel::Info ? "info: "
                                                            : "") +
                      std::string(m));
    };
    pool_ = std::make_unique<db::PgPool>(&loop_, po);
    pool_->set_query_hook([this](const db::QueryStats& s) { query_latencies_.push_back(s.total); });
    so.realm = "ferry";
    so.log = po.log;
    store_ = std::make_unique<db::PgCredentialStore>(*pool_, clock_, so);
    store_->set_revocation_callback([this](const std::string& u) {
      revoked_.push_back(u);
      revoked_at_ = WallTimer::now();
    });
    store_->start_listening();
    pool_->start();
    ASSERT_TRUE(run_until([&] { return store_->listening(); }, 5s)) << "LISTEN connection did not come up";
  }

  void tick() {
    auto now = WallTimer::now();
    if (last_tick_ != WallTimer::time_point{}) {
      max_gap_ = std::max(max_gap_, std::chrono::duration_cast<std::chrono::microseconds>(now - last_tick_));
    }
    last_tick_ = now;
  }

  // Runs the loop until pred() or the timeout; stalls are measured only while the loop runs.
  template <class Pred>
  bool run_until(Pred pred, std::chrono::milliseconds timeout) {
    auto end = WallTimer::now() + timeout;
    last_tick_ = WallTimer::now();
    while (!pred()) {
      if (WallTimer::now() > end) {
        last_tick_ = {};
        return false;
      }
      uv_run(&loop_, UV_RUN_ONCE);
    }
    last_tick_ = {};
    return true;
  }

  struct Answer {
    bool immediate = false;
    LookupResult result;
    std::chrono::nanoseconds latency{0};
  };
  Answer lookup(const std::string& name, std::string_view realm = "ferry") {
    Answer a;
    bool called = false;
    auto t0 = WallTimer::now();
    auto r = store_->lookup(name, realm, [&](LookupResult res) {
      called = true;
      a.result = std::move(res);
      a.latency = WallTimer::now() - t0;
    });
    if (r) {
      a.latency = WallTimer::now() - t0;
      a.immediate = true;
      a.result = std::move(*r);
      return a;
    }
    EXPECT_TRUE(run_until([&] { return called; }, 5s)) << "no answer for " << name;
    return a;
  }

  static std::string g_setup_error;
  uv_loop_t loop_{};
  uv_timer_t ticker_{};
  WallTimer::time_point last_tick_{};
  std::chrono::microseconds max_gap_{0};
  FakeClock clock_;
  std::unique_ptr<Admin> admin_;
  std::unique_ptr<db::PgPool> pool_;
  std::unique_ptr<db::PgCredentialStore> store_;
  std::vector<std::string> revoked_;
  WallTimer::time_point revoked_at_{};
  std::vector<std::string> logs_;
  std::vector<std::chrono::microseconds> query_latencies_;
};
std::string PgStoreTest::g_setup_error;

double ms(std::chrono::nanoseconds d) { return std::chrono::duration<double, std::milli>(d).count(); }
double us(std::chrono::nanoseconds d) { return std::chrono::duration<double, std::micro>(d).count(); }

}  // namespace pg_store_test
using namespace pg_store_test;

TEST_F(PgStoreTest, ColdLookupIsAsyncWarmLookupIsImmediate) {
  admin_->add_user("alice", "alice-pw");
  make_store();
  auto cold = lookup("alice");
  EXPECT_FALSE(cold.immediate);
  ASSERT_EQ(cold.result.status, LookupStatus::Found);
  const auto& c = *cold.result.credential;
  EXPECT_EQ(c.username, "alice");
  EXPECT_EQ(c.key_md5, stun::long_term_key_md5("alice", "ferry", "alice-pw"));
  ASSERT_TRUE(c.key_sha256);
  EXPECT_EQ(*c.key_sha256, stun::long_term_key_sha256("alice", "ferry", "alice-pw"));
  EXPECT_EQ(c.quota.max_allocations, 3u);
  EXPECT_EQ(c.quota.bandwidth_bytes_per_sec, 64000u);

  // A second cold lookup (connection and prepared statement now warm), then warm ones.
  admin_->add_user("alice2", "pw");
  // Let the INSERT's notification arrive first: one arriving while alice2's query runs marks it
  // stale and the store (rightly) asks again.
  ASSERT_TRUE(run_until([&] { return store_->stats().notifications == 1; }, 1s));
  auto cold2 = lookup("alice2");
  EXPECT_FALSE(cold2.immediate);
  std::chrono::nanoseconds warm_total{0};
  const int kWarm = 1000;
  for (int i = 0; i < kWarm; ++i) {
    auto warm = lookup("alice");
    ASSERT_TRUE(warm.immediate);
    ASSERT_EQ(warm.result.status, LookupStatus::Found);
    warm_total += warm.latency;
  }
  EXPECT_EQ(store_->stats().queries, 2u);
  std::printf(
      "[   info   ] cold lookup: first %.3f ms (connection fresh, statement prepared), second %.3f ms; "
      "warm lookup: %.2f us average over %d\n",
      ms(cold.latency), ms(cold2.latency), us(warm_total / kWarm), kWarm);
}

// USERHASH (RFC 8489 §14.4) for PostgreSQL users: users.userhash (migration 0005, a generated
// column) answers a cold hash with one query; names found by hash or by name are then answered at
// once; a rename or a disable (their NOTIFY) takes the old mapping away.
TEST_F(PgStoreTest, UserhashResolvesThroughTheDatabase) {
  admin_->add_user("alice", "alice-pw");
  admin_->add_user("bob", "bob-pw");
  make_store();
  auto resolve = [&](const std::string& name) -> std::pair<bool, std::optional<std::string>> {
    const auto h = stun::userhash(name, "ferry");
    bool called = false;
    std::optional<std::string> got;
    auto r = store_->resolve_userhash(h, "ferry", [&](std::optional<std::string> n) {
      called = true;
      got = std::move(n);
    });
    if (!r.pending) return {true, r.username};
    EXPECT_TRUE(run_until([&] { return called; }, 5s)) << "no answer for the hash of " << name;
    return {false, got};
  };
  auto cold = resolve("alice");
  EXPECT_FALSE(cold.first);
  EXPECT_EQ(cold.second, "alice");
  auto warm = resolve("alice");
  EXPECT_TRUE(warm.first);
  EXPECT_EQ(warm.second, "alice");
  EXPECT_EQ(store_->stats().hash_queries, 1u);
  EXPECT_EQ(store_->username_for_hash(stun::userhash("alice", "ferry"), "ferry"), "alice");

  // A name lookup teaches the hash too.
  EXPECT_EQ(lookup("bob").result.status, LookupStatus::Found);
  EXPECT_EQ(store_->username_for_hash(stun::userhash("bob", "ferry"), "ferry"), "bob");

  EXPECT_EQ(resolve("nobody").second, std::nullopt);
  EXPECT_EQ(resolve("alice").second, "alice");
  EXPECT_EQ(resolve("bob").second, "bob");

  // Renamed in SQL: the generated column follows, the NOTIFY drops the old mapping.
  const uint64_t n0 = store_->stats().notifications;
  admin_->exec("UPDATE users SET name = 'carol' WHERE name = 'alice'");
  ASSERT_TRUE(run_until([&] { return store_->stats().notifications > n0; }, 2s));
  EXPECT_EQ(resolve("alice").second, std::nullopt);
  EXPECT_EQ(resolve("carol").second, "carol");
  // Disabled: unknown by hash.
  const uint64_t n1 = store_->stats().notifications;
  admin_->exec("UPDATE users SET enabled = false WHERE name = 'bob'");
  ASSERT_TRUE(run_until([&] { return store_->stats().notifications > n1; }, 2s));
  EXPECT_EQ(resolve("bob").second, std::nullopt);
}

TEST_F(PgStoreTest, UnknownNamesAreCoalescedAndNegativelyCached) {
  make_store();
  int answers = 0, not_found = 0;
  for (int i = 0; i < 200; ++i) {
    auto r = store_->lookup("mallory", "ferry", [&](LookupResult res) {
      ++answers;
      not_found += res.status == LookupStatus::NotFound;
    });
    EXPECT_FALSE(r);
  }
  EXPECT_EQ(store_->stats().queries, 1u) << "a flood of one name must cost one query";
  ASSERT_TRUE(run_until([&] { return answers == 200; }, 5s));
  EXPECT_EQ(not_found, 200);

  auto again = lookup("mallory");
  EXPECT_TRUE(again.immediate);
  EXPECT_EQ(again.result.status, LookupStatus::NotFound);
  EXPECT_EQ(store_->stats().queries, 1u) << "negative cache: no second query";

  clock_.advance(11s);  // past negative_ttl (10 s)
  auto later = lookup("mallory");
  EXPECT_FALSE(later.immediate);
  EXPECT_EQ(later.result.status, LookupStatus::NotFound);
  EXPECT_EQ(store_->stats().queries, 2u);

  // Other realm, same name: a different entry.
  admin_->add_user("mallory", "pw", "other");
  auto other = lookup("mallory", "other");
  EXPECT_EQ(other.result.status, LookupStatus::Found);
}

TEST_F(PgStoreTest, PositiveTtlThenStaleWhileRefreshing) {
  admin_->add_user("bob", "bob-pw");
  make_store();
  ASSERT_EQ(lookup("bob").result.status, LookupStatus::Found);
  clock_.advance(61s);  // past positive_ttl: still served at once, refreshed in the background
  auto stale = lookup("bob");
  EXPECT_TRUE(stale.immediate);
  EXPECT_EQ(stale.result.status, LookupStatus::Found);
  EXPECT_EQ(store_->stats().stale_hits, 1u);
  ASSERT_TRUE(run_until([&] { return store_->stats().queries == 2 && pool_->stats().ok == 2; }, 5s));
  auto fresh = lookup("bob");
  EXPECT_TRUE(fresh.immediate);
  EXPECT_EQ(store_->stats().hits, 1u);
}

TEST_F(PgStoreTest, NotifyOnDisableDropsCacheAndRevokesWithinOneSecond) {
  admin_->add_user("carol", "carol-pw");
  admin_->add_user("dave", "dave-pw");
  make_store();
  ASSERT_EQ(lookup("carol").result.status, LookupStatus::Found);
  ASSERT_EQ(lookup("dave").result.status, LookupStatus::Found);
  ASSERT_TRUE(lookup("carol").immediate);

  auto t0 = WallTimer::now();
  admin_->exec("UPDATE users SET enabled = false WHERE name = 'carol'");
  ASSERT_TRUE(run_until([&] { return !revoked_.empty(); }, 1s)) << "no revocation within 1 s";
  EXPECT_EQ(revoked_, std::vector<std::string>{"carol"});
  std::printf("[   info   ] NOTIFY -> revocation callback: %.2f ms after COMMIT returned\n", ms(revoked_at_ - t0));
  auto after = lookup("carol");
  EXPECT_FALSE(after.immediate) << "cache entry must be dropped";
  EXPECT_EQ(after.result.status, LookupStatus::NotFound);

  // A quota change refreshes the cache but revokes nothing.
  admin_->exec("UPDATE users SET max_allocations = 7 WHERE name = 'dave'");
  ASSERT_TRUE(run_until([&] { return store_->stats().notifications >= 2; }, 1s));
  auto dave = lookup("dave");
  EXPECT_FALSE(dave.immediate);
  ASSERT_EQ(dave.result.status, LookupStatus::Found);
  EXPECT_EQ(dave.result.credential->quota.max_allocations, 7u);
  EXPECT_EQ(revoked_.size(), 1u);

  // Password change and delete revoke; a newly added user is visible at once despite the negative cache.
  admin_->exec("UPDATE users SET key_md5 = decode(repeat('00', 16), 'hex') WHERE name = 'dave'");
  ASSERT_TRUE(run_until([&] { return revoked_.size() == 2; }, 1s));
  ASSERT_EQ(lookup("erin").result.status, LookupStatus::NotFound);
  admin_->add_user("erin", "erin-pw");
  ASSERT_TRUE(run_until([&] { return store_->stats().notifications >= 4; }, 1s));
  EXPECT_EQ(lookup("erin").result.status, LookupStatus::Found);
  admin_->exec("DELETE FROM users WHERE name = 'erin'");
  ASSERT_TRUE(run_until([&] { return revoked_.size() == 3; }, 1s));
  EXPECT_EQ(revoked_.back(), "erin");
  // Other realms are not this server's business.
  admin_->add_user("erin", "pw", "elsewhere");
  admin_->exec("DELETE FROM users WHERE realm = 'elsewhere'");
  ASSERT_TRUE(run_until([&] { return store_->stats().notifications >= 7; }, 1s));
  EXPECT_EQ(revoked_.size(), 3u);
}

TEST_F(PgStoreTest, DatabaseDownServesCachedUsersAndRecovers) {
  admin_->add_user("frank", "frank-pw");
  admin_->add_user("grace", "grace-pw");
  make_store();
  ASSERT_EQ(lookup("frank").result.status, LookupStatus::Found);
  admin_.reset();

  std::string error;
  ASSERT_TRUE(g_server->stop(error)) << error;
  ASSERT_TRUE(run_until([&] { return !pool_->available(); }, 3s)) << "the pool did not notice the outage";
  EXPECT_FALSE(store_->listening());

  auto cached = lookup("frank");
  EXPECT_TRUE(cached.immediate);
  EXPECT_EQ(cached.result.status, LookupStatus::Found);
  auto uncached = lookup("grace");
  EXPECT_EQ(uncached.result.status, LookupStatus::Unavailable);
  EXPECT_LT(ms(uncached.latency), 5.0) << "an outage must be answered at once, not after a timeout";
  clock_.advance(120s);  // past positive_ttl: a stale entry still serves while the refresh fails
  EXPECT_EQ(lookup("frank").result.status, LookupStatus::Found);
  // Let the loop spin through several reconnect attempts: one outage line, not one per attempt.
  run_until([] { return false; }, 1s);
  int outage_lines = 0;
  for (const auto& l : logs_) outage_lines += l.rfind("warn: database unavailable", 0) == 0;
  EXPECT_EQ(outage_lines, 1);

  ASSERT_TRUE(g_server->start(error)) << error;
  ASSERT_TRUE(run_until([&] { return pool_->available() && store_->listening(); }, 5s))
      << "did not reconnect after the database came back";
  auto back = lookup("grace");
  EXPECT_EQ(back.result.status, LookupStatus::Found);
  int recovery_lines = 0;
  for (const auto& l : logs_) recovery_lines += l.rfind("info: database available again", 0) == 0;
  EXPECT_EQ(recovery_lines, 1);
  for (const auto& l : logs_) EXPECT_EQ(l.find("postgresql://"), std::string::npos) << "URL leaked into a log: " << l;
}

TEST_F(PgStoreTest, QueryTimeoutDoesNotBlockAndConnectionRecovers) {
  make_store();
  db::Query q;
  q.sql = "SELECT pg_sleep(5)";
  q.retry_on_connection_loss = false;
  std::optional<db::QueryResult> res;
  auto t0 = WallTimer::now();
  ASSERT_EQ(pool_->query(std::move(q), [&](db::QueryResult r) { res = std::move(r); }), db::PgPool::Submit::Queued);
  ASSERT_TRUE(run_until([&] { return res.has_value(); }, 4s));
  EXPECT_EQ(res->status, db::QueryStatus::Timeout);
  EXPECT_GE(WallTimer::now() - t0, 1900ms);
  admin_->add_user("heidi", "pw");
  EXPECT_EQ(lookup("heidi").result.status, LookupStatus::Found);
}

TEST_F(PgStoreTest, SqlErrorsAreReportedNotFatal) {
  make_store();
  db::Query q;
  q.sql = "SELECT * FROM no_such_table WHERE x = $1";
  q.params = {std::string("1")};
  std::optional<db::QueryResult> res;
  ASSERT_EQ(pool_->query(std::move(q), [&](db::QueryResult r) { res = std::move(r); }), db::PgPool::Submit::Queued);
  ASSERT_TRUE(run_until([&] { return res.has_value(); }, 3s));
  EXPECT_EQ(res->status, db::QueryStatus::Error);
  EXPECT_EQ(res->sqlstate, "42P01");
  // Parameters are data, never SQL.
  admin_->add_user("ivan", "pw");
  EXPECT_EQ(lookup("ivan' OR '1'='1").result.status, LookupStatus::NotFound);
}

TEST_F(PgStoreTest, LoadsActiveSharedSecretsNewestFirst) {
  admin_->exec("INSERT INTO realms (name) VALUES ('ferry') ON CONFLICT DO NOTHING");
  admin_->exec(
      "INSERT INTO shared_secrets (realm, value, created_at) VALUES ('ferry', 'old-secret-0123456789', now() - "
      "interval '1 day')");
  admin_->exec("INSERT INTO shared_secrets (realm, value) VALUES ('ferry', 'new-secret-0123456789')");
  admin_->exec(
      "INSERT INTO shared_secrets (realm, value, revoked_at) VALUES ('ferry', 'revoked-secret-0123456789', now())");
  admin_->exec(
      "INSERT INTO shared_secrets (realm, value, expires_at) VALUES ('ferry', 'expired-secret-0123456789', now() - "
      "interval '1 s')");
  make_store();
  std::optional<std::optional<std::vector<std::string>>> got;
  store_->load_shared_secrets("ferry", [&](std::optional<std::vector<std::string>> s) { got = std::move(s); });
  ASSERT_TRUE(run_until([&] { return got.has_value(); }, 3s));
  ASSERT_TRUE(got->has_value());
  EXPECT_EQ(**got, (std::vector<std::string>{"new-secret-0123456789", "old-secret-0123456789"}));

  bool changed = false, revoke = false;
  store_->set_secrets_changed_callback([&](bool r) {
    changed = true;
    revoke = r;
  });
  admin_->exec("UPDATE shared_secrets SET revoked_at = now() WHERE value = 'old-secret-0123456789'");
  ASSERT_TRUE(run_until([&] { return changed; }, 1s));
  EXPECT_TRUE(revoke);
}

// ---- usage records (db/usage_writer.h) on the same server: batching, idempotent upserts, an outage ----

std::string scalar(Admin& a, const std::string& sql) {
  PGresult* r = PQexec(a.get(), sql.c_str());
  std::string v = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0 ? PQgetvalue(r, 0, 0) : "?";
  if (PQresultStatus(r) != PGRES_TUPLES_OK) ADD_FAILURE() << sql << ": " << PQresultErrorMessage(r);
  PQclear(r);
  return v;
}

db::UsageRecord usage(int i, uint64_t bytes_in, bool final) {
  db::UsageRecord r;
  r.allocation_id = "node-a/boot/0/" + std::to_string(i);
  r.username = i % 2 ? "odd" : "even";
  r.realm = "ferry";
  r.node = "node-a";
  r.transport = "udp";
  r.client = "192.0.2.1:" + std::to_string(1000 + i);
  r.started_unix_ms = 1'700'000'000'000 + i;
  r.ended_unix_ms = r.started_unix_ms + 5000;
  r.final = final;
  r.bytes_in = bytes_in;
  r.bytes_out = 2 * bytes_in;
  r.packets_in = 1;
  r.packets_out = 2;
  r.peers = 1;
  r.peer_list = {"198.51.100.7"};
  return r;
}

TEST_F(PgStoreTest, UsageWriterWritesInBatchesAndUpsertsIdempotently) {
  admin_->exec("TRUNCATE usage_records");
  make_store();
  db::UsageWriterOptions wo;
  wo.batch_size = 100;
  wo.flush_interval = 20ms;
  wo.log = [this](db::LogLevel, std::string_view m) { logs_.emplace_back(m); };
  auto writer = std::make_unique<db::UsageWriter>(&loop_, *pool_, wo);
  writer->start();
  const size_t queries_before = query_latencies_.size();
  for (int i = 0; i < 250; ++i) ASSERT_TRUE(writer->push(usage(i, 100 + i, /*final=*/true)));
  ASSERT_TRUE(run_until([&] { return writer->stats().written.get() == 250; }, 5s))
      << writer->stats().written.get() << " written";
  EXPECT_EQ(query_latencies_.size() - queries_before, 3u) << "250 records in batches of 100: three statements";
  EXPECT_EQ(writer->stats().failed_batches.get(), 0u);
  EXPECT_EQ(scalar(*admin_, "SELECT count(*) FROM usage_records"), "250");
  // sum(100..349) = 56,125
  EXPECT_EQ(scalar(*admin_, "SELECT sum(bytes_in) FROM usage_records"), "56125");
  EXPECT_EQ(scalar(*admin_, "SELECT sum(bytes_out) FROM usage_records WHERE username = 'even'"),
            "56000");  // twice the even i's: 2 * (125 * 100 + 2 * (0 + 1 + ... + 124))

  // The same records again (a retry after a lost answer) and a stale interim record: no change.
  writer->push(usage(0, 100, true));
  writer->push(usage(1, 50, /*final=*/false));
  ASSERT_TRUE(run_until([&] { return writer->stats().written.get() == 252; }, 5s));
  EXPECT_EQ(scalar(*admin_, "SELECT count(*) FROM usage_records"), "250");
  EXPECT_EQ(scalar(*admin_, "SELECT sum(bytes_in) FROM usage_records"), "56125");
  EXPECT_EQ(scalar(*admin_,
                   "SELECT final::text || ' ' || bytes_in FROM usage_records WHERE allocation_id = "
                   "'node-a/boot/0/1'"),
            "true 101");
  // An interim record, then the final one with larger totals: the row follows.
  writer->push(usage(900, 10, false));
  ASSERT_TRUE(run_until([&] { return writer->stats().written.get() == 253; }, 5s));
  writer->push(usage(900, 40, true));
  ASSERT_TRUE(run_until([&] { return writer->stats().written.get() == 254; }, 5s));
  EXPECT_EQ(scalar(*admin_,
                   "SELECT final::text || ' ' || bytes_in || ' ' || array_to_string(peer_list, ',') "
                   "FROM usage_records WHERE allocation_id = 'node-a/boot/0/900'"),
            "true 40 198.51.100.7");
  writer.reset();
}

TEST_F(PgStoreTest, UsageWriterKeepsRecordsThroughAnOutage) {
  admin_->exec("TRUNCATE usage_records");
  make_store();
  db::UsageWriterOptions wo;
  wo.batch_size = 10;
  wo.flush_interval = 20ms;
  wo.retry_interval = 100ms;
  wo.log = [this](db::LogLevel l, std::string_view m) {
    logs_.push_back(std::string(l == db::LogLevel::Warn ? "warn: " : "info: ") + std::string(m));
  };
  auto writer = std::make_unique<db::UsageWriter>(&loop_, *pool_, wo);
  writer->start();
  admin_.reset();
  std::string error;
  ASSERT_TRUE(g_server->stop(error)) << error;
  for (int i = 0; i < 25; ++i) writer->push(usage(i, 1000, true));
  run_until([] { return false; }, 700ms);
  EXPECT_EQ(writer->stats().written.get(), 0u);
  EXPECT_EQ(writer->stats().queued.get(), 25);
  EXPECT_GT(writer->stats().failed_batches.get(), 0u);

  ASSERT_TRUE(g_server->start(error)) << error;
  ASSERT_TRUE(run_until([&] { return writer->stats().written.get() == 25; }, 10s))
      << "buffered records not written after the database came back: " << writer->stats().written.get();
  EXPECT_EQ(writer->stats().queued.get(), 0);
  admin_ = std::make_unique<Admin>(g_server->url());
  EXPECT_EQ(scalar(*admin_, "SELECT count(*) || ' ' || sum(bytes_in) FROM usage_records"), "25 25000");
  int warn = 0, info = 0;
  for (const auto& l : logs_) {
    warn += l.rfind("warn: usage records not written", 0) == 0;
    info += l.rfind("info: usage records written again", 0) == 0;
  }
  EXPECT_EQ(warn, 1);
  EXPECT_EQ(info, 1);
  writer.reset();
}

TEST(PgConninfo, MalformedConnectionStringIsLoggedMaskedAndRefused) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  std::vector<std::string> logs;
  {
    db::PgPoolOptions po;
    po.conninfo = "postgresql://u:hunter2@[broken";
    po.backoff_initial = 10ms;
    po.log = [&](db::LogLevel, std::string_view m) { logs.emplace_back(m); };
    db::PgPool pool(&loop, po);
    pool.start();
    auto end = WallTimer::now() + 2s;
    while (pool.available() && WallTimer::now() < end) uv_run(&loop, UV_RUN_ONCE);
    EXPECT_FALSE(pool.available());
    EXPECT_EQ(pool.query(db::Query{"", "SELECT 1", {}, true}, [](db::QueryResult) {}), db::PgPool::Submit::Unavailable);
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  EXPECT_EQ(uv_loop_close(&loop), 0);
  ASSERT_FALSE(logs.empty());
  for (const auto& l : logs) EXPECT_EQ(l.find("hunter2"), std::string::npos) << l;
}
