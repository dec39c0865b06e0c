// ferryctl: operator tool for ferry's PostgreSQL credential store.
//
//   ferryctl [--database URL] db migrate|status
//   ferryctl user add NAME [--realm R] [--max-allocations N] [--bandwidth B] [--password-stdin]
//   ferryctl user passwd NAME [--realm R] [--password-stdin]
//   ferryctl user disable|enable|del NAME [--realm R]
//   ferryctl user list [--realm R]
//   ferryctl user quota NAME [--realm R] --max-allocations N --bandwidth B
//   ferryctl secret add [--realm R] [--expires 30d|12h|3600|2030-01-01T00:00Z] [--secret-stdin]
//   ferryctl secret list [--realm R]
//   ferryctl secret revoke ID
//   ferryctl token USER --ttl SECONDS [--realm R] [--secret-stdin] [--url turn:...]...
//   ferryctl apikey add NAME | list | revoke NAME      (keys for ferry's GET /v1/ice-servers)
//   ferryctl nodes [--json] | drain NODE [--deadline S] | undrain NODE   (the fleet: fleet.h)
//   ferryctl sessions [--user U] [--node N] [--json] | kill --user U | --allocation NODE/ID
//   ferryctl usage [--user U] [--since T] [--json]     (tools/ferryctl/usage.cpp)
//   ferryctl oauthkey add KID [--key-stdin] | list | remove KID   (RFC 7635 AS-RS keys, oauth.cpp)
//
// The database comes from --database or FERRY_DATABASE_URL (prefer the variable, or ~/.pgpass: a
// password in argv shows in `ps`). Passwords and secrets are never taken from argv: they are read
// from the terminal with echo off, or from stdin with --password-stdin / --secret-stdin. Passwords
// are not stored: only the RFC 8489 long-term keys MD5/SHA-256(user:realm:password).
//
// Errors are one line on stderr ("ferryctl: ...") and a non-zero exit status. This is a CLI, so it
// uses blocking libpq.

#include <libpq-fe.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <termios.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <ctime>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <regex>
#include <string>
#include <vector>

#include "auth/shared_secret.h"
#include "base/secret_mask.h"
#include "db/migrations.h"
#include "db/pg_connection.h"
#include "stun/integrity.h"
#include "tools/ferryctl/oauth.h"
#include "tools/ferryctl/fleet.h"
#include "tools/ferryctl/probe.h"
#include "tools/ferryctl/usage.h"

namespace {

struct Failure {
  std::string message;
  int code = 1;
};

[[noreturn]] void fail(std::string message, int code = 1) { throw Failure{std::move(message), code}; }

using ferry::db::one_line;

std::string hex(const uint8_t* p, size_t n) {
  static const char* d = "0123456789abcdef";
  std::string s;
  for (size_t i = 0; i < n; ++i) {
    s += d[p[i] >> 4];
    s += d[p[i] & 15];
  }
  return s;
}

std::string bytea_hex(const ferry::stun::Key& k) { return "\\x" + hex(k.bytes.data(), k.size); }

void wipe(std::string& s) {
  volatile char* p = s.data();
  for (size_t i = 0; i < s.size(); ++i) p[i] = 0;
  s.clear();
}

// ------------------------------------------------------------------------------------------------
// Database

struct ResultDeleter {
  void operator()(PGresult* r) const { PQclear(r); }
};
using Result = std::unique_ptr<PGresult, ResultDeleter>;

class Db {
 public:
  explicit Db(const std::string& url) {
    const char* keys[] = {"fallback_application_name", "connect_timeout", "dbname", nullptr};
    const char* vals[] = {"ferryctl", "10", url.c_str(), nullptr};
    conn_ = PQconnectdbParams(keys, vals, 1);
    if (!conn_) fail("cannot connect to the database: out of memory");
    if (PQstatus(conn_) != CONNECTION_OK) {
      std::string msg = ferry::scrub_conninfo(one_line(PQerrorMessage(conn_)), url);
      PQfinish(conn_);
      conn_ = nullptr;
      fail("cannot connect to the database: " + msg);
    }
    PQsetNoticeProcessor(
        conn_, [](void*, const char*) {}, nullptr);
  }
  ~Db() {
    if (conn_) PQfinish(conn_);
  }
  PGconn* get() { return conn_; }

  // Parameterized; throws Failure on error unless `sqlstate` is given (then returns null and sets it).
  Result exec(const std::string& sql, const std::vector<std::optional<std::string>>& params = {},
              std::string* sqlstate = nullptr, std::string* error = nullptr) {
    std::vector<const char*> v;
    for (const auto& p : params) v.push_back(p ? p->c_str() : nullptr);
    Result r(PQexecParams(conn_, sql.c_str(), static_cast<int>(v.size()), nullptr, v.data(), nullptr, nullptr, 0));
    auto st = r ? PQresultStatus(r.get()) : PGRES_FATAL_ERROR;
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) return r;
    std::string code =
        r && PQresultErrorField(r.get(), PG_DIAG_SQLSTATE) ? PQresultErrorField(r.get(), PG_DIAG_SQLSTATE) : "";
    std::string msg = one_line(r ? PQresultErrorMessage(r.get()) : PQerrorMessage(conn_));
    if (msg.empty()) msg = one_line(PQerrorMessage(conn_));
    if (sqlstate) {
      *sqlstate = code;
      if (error) *error = msg;
      return nullptr;
    }
    if (code == "42P01" || code == "42883") fail("database error: " + msg + " (run `ferryctl db migrate` first)");
    fail("database error: " + msg);
  }

 private:
  PGconn* conn_ = nullptr;
};

// ------------------------------------------------------------------------------------------------
// Secrets from the terminal or stdin

std::string read_line_stdin(const char* what) {
  std::string line;
  if (!std::getline(std::cin, line) && line.empty()) fail(std::string("no ") + what + " on stdin");
  while (!line.empty() && (line.back() == '\r' || line.back() == '\n')) line.pop_back();
  if (line.empty()) fail(std::string("empty ") + what + " on stdin");
  return line;
}

std::string prompt_hidden(const char* prompt) {
  FILE* tty = std::fopen("/dev/tty", "r+");
  if (!tty) fail("no terminal to prompt on; pass the value on stdin with --password-stdin");
  int fd = fileno(tty);
  termios old{};
  bool restore = tcgetattr(fd, &old) == 0;
  if (restore) {
    termios t = old;
    t.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    tcsetattr(fd, TCSAFLUSH, &t);
  }
  std::fputs(prompt, tty);
  std::fflush(tty);
  std::string line;
  int c;
  while ((c = std::fgetc(tty)) != EOF && c != '\n') line += static_cast<char>(c);
  if (restore) tcsetattr(fd, TCSAFLUSH, &old);
  std::fputs("\n", tty);
  std::fclose(tty);
  if (!line.empty() && line.back() == '\r') line.pop_back();
  return line;
}

std::string get_password(bool from_stdin) {
  if (from_stdin) return read_line_stdin("password");
  if (!isatty(STDIN_FILENO)) fail("stdin is not a terminal: use --password-stdin to read the password from it");
  std::string a = prompt_hidden("Password: ");
  if (a.empty()) fail("empty password");
  std::string b = prompt_hidden("Repeat password: ");
  if (a != b) {
    wipe(a);
    wipe(b);
    fail("passwords do not match");
  }
  wipe(b);
  return a;
}

// ------------------------------------------------------------------------------------------------

struct Globals {
  std::string database;
  std::string realm;
};

std::string database_url(const Globals& g) {
  if (!g.database.empty()) return g.database;
  if (const char* e = std::getenv("FERRY_DATABASE_URL"); e && *e) return e;
  fail("no database given: use --database URL or set FERRY_DATABASE_URL");
}

std::string default_realm() {
  const char* e = std::getenv("FERRY_REALM");
  return e && *e ? e : "ferry";
}

void ensure_realm(Db& db, const std::string& realm) {
  db.exec("INSERT INTO realms (name) VALUES ($1) ON CONFLICT (name) DO NOTHING", {realm});
}

void require_one(const Result& r, const std::string& user, const std::string& realm) {
  if (std::string_view(PQcmdTuples(r.get())) == "0") fail("user '" + user + "' not found in realm '" + realm + "'");
}

int cmd_db_migrate(Db& db) {
  auto res = ferry::db::migrate(db.get());
  if (!res.ok) fail("migration failed: " + res.error);
  if (res.applied.empty()) {
    std::cout << "database schema is up to date (version " << res.current_version << ")\n";
  } else {
    for (int v : res.applied) {
      for (const auto& m : ferry::db::migrations()) {
        if (m.version == v) std::cout << "applied " << v << " " << m.name << "\n";
      }
    }
    std::cout << "database schema is at version " << res.current_version << "\n";
  }
  if (!res.unknown.empty()) {
    std::cerr << "ferryctl: warning: the database has " << res.unknown.size()
              << " migration(s) newer than this ferryctl knows\n";
  }
  return 0;
}

int cmd_db_status(Db& db) {
  std::vector<int> have;
  std::string err;
  if (!ferry::db::applied_versions(db.get(), have, err)) fail("database error: " + err);
  int pending = 0;
  for (const auto& m : ferry::db::migrations()) {
    bool applied = std::find(have.begin(), have.end(), m.version) != have.end();
    std::cout << (applied ? "applied  " : "pending  ") << m.version << " " << m.name << "\n";
    pending += applied ? 0 : 1;
  }
  return pending ? 3 : 0;
}

struct UserArgs {
  std::string name;
  std::optional<uint32_t> max_allocations;
  std::optional<uint64_t> bandwidth;
  bool password_stdin = false;
};

int cmd_user_add(Db& db, const std::string& realm, const UserArgs& a) {
  std::string password = get_password(a.password_stdin);
  auto md5 = ferry::stun::long_term_key_md5(a.name, realm, password);
  auto sha = ferry::stun::long_term_key_sha256(a.name, realm, password);
  wipe(password);
  db.exec("BEGIN");
  ensure_realm(db, realm);
  std::string state, err;
  auto r = db.exec(
      "INSERT INTO users (realm, name, key_md5, key_sha256, max_allocations, bandwidth) "
      "VALUES ($1, $2, $3::bytea, $4::bytea, $5::integer, $6::bigint)",
      {realm, a.name, bytea_hex(md5), bytea_hex(sha), std::to_string(a.max_allocations.value_or(0)),
       std::to_string(a.bandwidth.value_or(0))},
      &state, &err);
  if (!r) {
    db.exec("ROLLBACK");
    if (state == "23505") fail("user '" + a.name + "' already exists in realm '" + realm + "'");
    if (state == "23514") fail("invalid user: " + err);
    if (state == "42P01") fail("database error: " + err + " (run `ferryctl db migrate` first)");
    fail("database error: " + err);
  }
  db.exec("COMMIT");
  std::cout << "added user '" << a.name << "' in realm '" << realm << "'\n";
  return 0;
}

int cmd_user_passwd(Db& db, const std::string& realm, const UserArgs& a) {
  // Check first, so an unknown name fails before asking for a password.
  auto exists = db.exec("SELECT 1 FROM users WHERE realm = $1 AND name = $2", {realm, a.name});
  if (PQntuples(exists.get()) == 0) fail("user '" + a.name + "' not found in realm '" + realm + "'");
  std::string password = get_password(a.password_stdin);
  auto md5 = ferry::stun::long_term_key_md5(a.name, realm, password);
  auto sha = ferry::stun::long_term_key_sha256(a.name, realm, password);
  wipe(password);
  auto r = db.exec("UPDATE users SET key_md5 = $3::bytea, key_sha256 = $4::bytea WHERE realm = $1 AND name = $2",
                   {realm, a.name, bytea_hex(md5), bytea_hex(sha)});
  require_one(r, a.name, realm);
  std::cout << "changed the password of '" << a.name << "'\n";
  return 0;
}

int cmd_user_enable(Db& db, const std::string& realm, const std::string& name, bool enable) {
  auto r = db.exec("UPDATE users SET enabled = $3::boolean WHERE realm = $1 AND name = $2",
                   {realm, name, enable ? "true" : "false"});
  require_one(r, name, realm);
  std::cout << (enable ? "enabled" : "disabled") << " user '" << name << "'\n";
  return 0;
}

int cmd_user_del(Db& db, const std::string& realm, const std::string& name) {
  auto r = db.exec("DELETE FROM users WHERE realm = $1 AND name = $2", {realm, name});
  require_one(r, name, realm);
  std::cout << "deleted user '" << name << "'\n";
  return 0;
}

int cmd_user_quota(Db& db, const std::string& realm, const UserArgs& a) {
  if (!a.max_allocations && !a.bandwidth) fail("nothing to change: give --max-allocations and/or --bandwidth");
  std::optional<std::string> ma, bw;
  if (a.max_allocations) ma = std::to_string(*a.max_allocations);
  if (a.bandwidth) bw = std::to_string(*a.bandwidth);
  auto r = db.exec(
      "UPDATE users SET max_allocations = COALESCE($3::integer, max_allocations), "
      "bandwidth = COALESCE($4::bigint, bandwidth) WHERE realm = $1 AND name = $2",
      {realm, a.name, ma, bw});
  require_one(r, a.name, realm);
  std::cout << "updated the quota of '" << a.name << "'\n";
  return 0;
}

int cmd_user_list(Db& db, const std::optional<std::string>& realm) {
  auto r = db.exec(
      "SELECT name, realm, CASE WHEN enabled THEN 'yes' ELSE 'no' END, max_allocations, bandwidth, "
      "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') "
      "FROM users WHERE $1::text IS NULL OR realm = $1 ORDER BY realm, name",
      {realm});
  const char* headers[] = {"NAME", "REALM", "ENABLED", "MAX_ALLOCATIONS", "BANDWIDTH", "CREATED"};
  std::vector<size_t> w(6);
  for (int c = 0; c < 6; ++c) w[c] = std::strlen(headers[c]);
  for (int i = 0; i < PQntuples(r.get()); ++i)
    for (int c = 0; c < 6; ++c) w[c] = std::max<size_t>(w[c], std::strlen(PQgetvalue(r.get(), i, c)));
  auto row = [&](auto get) {
    std::string line;
    for (int c = 0; c < 6; ++c) {
      std::string v = get(c);
      line += v;
      if (c < 5) line += std::string(w[c] - v.size() + 2, ' ');
    }
    std::cout << line << "\n";
  };
  row([&](int c) { return std::string(headers[c]); });
  for (int i = 0; i < PQntuples(r.get()); ++i) row([&](int c) { return std::string(PQgetvalue(r.get(), i, c)); });
  return 0;
}

std::string generate_secret() {
  unsigned char buf[32];
  if (RAND_bytes(buf, sizeof buf) != 1) fail("no randomness available");
  std::string s = ferry::auth::base64_encode(std::string_view(reinterpret_cast<char*>(buf), sizeof buf));
  while (!s.empty() && s.back() == '=') s.pop_back();
  return s;
}

std::string fingerprint(const std::string& value) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_Digest(value.data(), value.size(), md, &n, EVP_sha256(), nullptr);
  return hex(md, 4);
}

// "30d" "12h" "15m" "3600" "3600s" "2w" -> an interval; anything else is handed to PostgreSQL as a timestamp.
std::pair<std::optional<std::string>, std::optional<std::string>> parse_expires(const std::string& e) {
  static const std::regex dur(R"(^([0-9]{1,9})([smhdw]?)$)");
  std::smatch m;
  if (std::regex_match(e, m, dur)) {
    uint64_t n = std::stoull(m[1]);
    char unit = m[2].length() ? m[2].str()[0] : 's';
    uint64_t mult = unit == 'm' ? 60 : unit == 'h' ? 3600 : unit == 'd' ? 86400 : unit == 'w' ? 604800 : 1;
    return {std::to_string(n * mult), std::nullopt};
  }
  return {std::nullopt, e};
}

int cmd_secret_add(Db& db, const std::string& realm, const std::string& expires, bool from_stdin) {
  std::string value = from_stdin ? read_line_stdin("secret") : generate_secret();
  if (value.size() < 16) fail("the secret is too short (at least 16 characters)");
  auto [seconds, stamp] =
      expires.empty() ? std::pair<std::optional<std::string>, std::optional<std::string>>{} : parse_expires(expires);
  db.exec("BEGIN");
  ensure_realm(db, realm);
  std::string state, err;
  auto r = db.exec(
      "INSERT INTO shared_secrets (realm, value, expires_at) VALUES ($1, $2, "
      "COALESCE(now() + make_interval(secs => $3::bigint), $4::timestamptz)) RETURNING id, "
      "COALESCE(to_char(expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), 'never')",
      {realm, value, seconds, stamp}, &state, &err);
  if (!r) {
    db.exec("ROLLBACK");
    if (state.rfind("22", 0) == 0) fail("invalid --expires '" + expires + "': " + err);
    fail("database error: " + err);
  }
  db.exec("COMMIT");
  std::cerr << "added shared secret " << PQgetvalue(r.get(), 0, 0) << " for realm '" << realm << "' (expires "
            << PQgetvalue(r.get(), 0, 1) << ", fingerprint " << fingerprint(value) << ")\n";
  // A generated secret must be shown once, for the web application's configuration; only on stdout.
  if (!from_stdin) std::cout << value << "\n";
  wipe(value);
  return 0;
}

int cmd_secret_list(Db& db, const std::optional<std::string>& realm) {
  auto r = db.exec(
      "SELECT id, realm, value, "
      "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "
      "COALESCE(to_char(expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), 'never'), "
      "CASE WHEN revoked_at IS NOT NULL THEN 'revoked' WHEN expires_at IS NOT NULL AND expires_at <= now() "
      "THEN 'expired' ELSE 'active' END "
      "FROM shared_secrets WHERE $1::text IS NULL OR realm = $1 ORDER BY id",
      {realm});
  std::printf("%-6s %-16s %-10s %-21s %-21s %s\n", "ID", "REALM", "SHA256", "CREATED", "EXPIRES", "STATE");
  for (int i = 0; i < PQntuples(r.get()); ++i) {
    std::printf("%-6s %-16s %-10s %-21s %-21s %s\n", PQgetvalue(r.get(), i, 0), PQgetvalue(r.get(), i, 1),
                fingerprint(PQgetvalue(r.get(), i, 2)).c_str(), PQgetvalue(r.get(), i, 3), PQgetvalue(r.get(), i, 4),
                PQgetvalue(r.get(), i, 5));
  }
  return 0;
}

int cmd_secret_revoke(Db& db, const std::string& id) {
  if (id.empty() || id.find_first_not_of("0123456789") != std::string::npos) fail("secret id must be a number");
  auto r = db.exec("UPDATE shared_secrets SET revoked_at = now() WHERE id = $1::bigint AND revoked_at IS NULL", {id});
  if (std::string_view(PQcmdTuples(r.get())) == "0") {
    auto e = db.exec("SELECT 1 FROM shared_secrets WHERE id = $1::bigint", {id});
    if (PQntuples(e.get()) == 0) fail("shared secret " + id + " not found");
    std::cout << "shared secret " << id << " was already revoked\n";
    return 0;
  }
  std::cout << "revoked shared secret " << id << "\n";
  return 0;
}

// ---- API keys for GET /v1/ice-servers (only SHA-256 of each key is stored) ----

bool valid_key_name(const std::string& name) {
  static const std::regex re(R"(^[A-Za-z0-9._@-]{1,64}$)");
  return std::regex_match(name, re);
}

int cmd_apikey_add(Db& db, const std::string& name) {
  if (!valid_key_name(name)) fail("API key name must be 1-64 letters, digits or - _ . @");
  unsigned char raw[32];
  if (RAND_bytes(raw, sizeof raw) != 1) fail("no randomness available");
  std::string key = hex(raw, sizeof raw);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_Digest(key.data(), key.size(), md, &n, EVP_sha256(), nullptr);
  std::string state, err;
  auto r =
      db.exec("INSERT INTO api_keys (name, sha256) VALUES ($1, decode($2, 'hex'))", {name, hex(md, n)}, &state, &err);
  if (!r) {
    wipe(key);
    if (state == "23505") fail("an active API key named '" + name + "' already exists (revoke it first)");
    if (state == "42P01") fail("database error: " + err + " (run `ferryctl db migrate` first)");
    fail("database error: " + err);
  }
  std::cerr << "added API key '" << name << "' (sha256 " << hex(md, 4)
            << "...); it is shown once, below: give it to the web application\n";
  std::cout << key << "\n";
  wipe(key);
  return 0;
}

int cmd_apikey_list(Db& db) {
  auto r = db.exec(
      "SELECT name, encode(substring(sha256 from 1 for 4), 'hex'), "
      "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "
      "CASE WHEN revoked_at IS NULL THEN 'active' ELSE 'revoked' END FROM api_keys ORDER BY id");
  std::printf("%-24s %-10s %-21s %s\n", "NAME", "SHA256", "CREATED", "STATE");
  for (int i = 0; i < PQntuples(r.get()); ++i)
    std::printf("%-24s %-10s %-21s %s\n", PQgetvalue(r.get(), i, 0), PQgetvalue(r.get(), i, 1),
                PQgetvalue(r.get(), i, 2), PQgetvalue(r.get(), i, 3));
  return 0;
}

int cmd_apikey_revoke(Db& db, const std::string& name) {
  auto r = db.exec("UPDATE api_keys SET revoked_at = now() WHERE name = $1 AND revoked_at IS NULL", {name});
  if (std::string_view(PQcmdTuples(r.get())) == "0") fail("no active API key named '" + name + "'");
  std::cout << "revoked API key '" << name << "' (servers stop accepting it within a minute)\n";
  return 0;
}

int cmd_token(const Globals& g, const std::string& realm, const std::string& user, uint64_t ttl, bool secret_stdin,
              std::vector<std::string> urls) {
  if (ttl == 0) fail("--ttl must be positive");
  std::string secret;
  if (secret_stdin) {
    secret = read_line_stdin("secret");
  } else {
    Db db(database_url(g));
    auto r = db.exec(
        "SELECT value FROM shared_secrets WHERE realm = $1 AND revoked_at IS NULL "
        "AND (expires_at IS NULL OR expires_at > now()) ORDER BY created_at DESC, id DESC LIMIT 1",
        {realm});
    if (PQntuples(r.get()) == 0) fail("no active shared secret for realm '" + realm + "' (ferryctl secret add)");
    secret = PQgetvalue(r.get(), 0, 0);
  }
  if (user.find(':') != std::string::npos) fail("the user id must not contain ':'");
  auto m = ferry::auth::mint(secret, user, ttl, static_cast<uint64_t>(std::time(nullptr)));
  wipe(secret);
  if (urls.empty()) urls.push_back("turn:localhost:3478?transport=udp");
  nlohmann::json server = {{"urls", urls}, {"username", m.username}, {"credential", m.password}};
  nlohmann::json out = {
      {"iceServers", nlohmann::json::array({server})}, {"ttl", m.ttl_seconds}, {"expires", m.expires_unix}};
  std::cout << out.dump(2) << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"ferryctl: manage ferry's TURN users, shared secrets and fleet in PostgreSQL"};
  app.require_subcommand(1);
  Globals g;
  app.add_option("--database", g.database,
                 "libpq connection string or postgresql:// URL (default: $FERRY_DATABASE_URL; "
                 "keep passwords out of argv: use the variable or ~/.pgpass)");
  std::string realm = default_realm();
  std::optional<std::string> realm_filter;

  auto* db = app.add_subcommand("db", "database schema")->require_subcommand(1);
  auto* db_migrate = db->add_subcommand("migrate", "create or upgrade the schema (idempotent)");
  auto* db_status = db->add_subcommand("status", "list applied and pending migrations (exit 3 if pending)");

  auto* user = app.add_subcommand("user", "long-term TURN users")->require_subcommand(1);
  UserArgs ua;
  auto add_realm = [&](CLI::App* c) { c->add_option("--realm", realm, "realm (default: $FERRY_REALM or 'ferry')"); };
  auto* u_add = user->add_subcommand("add", "add a user; the password is prompted for, or read from stdin");
  u_add->add_option("name", ua.name, "user name")->required();
  add_realm(u_add);
  u_add->add_option("--max-allocations", ua.max_allocations, "at most N allocations at once (0: server default)");
  u_add->add_option("--bandwidth", ua.bandwidth, "bytes per second (0: server default)");
  u_add->add_flag("--password-stdin", ua.password_stdin, "read the password from stdin (one line)");
  auto* u_passwd = user->add_subcommand("passwd", "set a new password");
  u_passwd->add_option("name", ua.name)->required();
  add_realm(u_passwd);
  u_passwd->add_flag("--password-stdin", ua.password_stdin, "read the password from stdin (one line)");
  auto* u_disable = user->add_subcommand("disable", "refuse the user (live allocations are closed)");
  u_disable->add_option("name", ua.name)->required();
  add_realm(u_disable);
  auto* u_enable = user->add_subcommand("enable", "accept the user again");
  u_enable->add_option("name", ua.name)->required();
  add_realm(u_enable);
  auto* u_del = user->add_subcommand("del", "delete the user (live allocations are closed)");
  u_del->add_option("name", ua.name)->required();
  add_realm(u_del);
  auto* u_list = user->add_subcommand("list", "list users");
  u_list->add_option("--realm", realm_filter, "only this realm");
  auto* u_quota = user->add_subcommand("quota", "set a user's limits");
  u_quota->add_option("name", ua.name)->required();
  add_realm(u_quota);
  u_quota->add_option("--max-allocations", ua.max_allocations, "at most N allocations at once (0: server default)");
  u_quota->add_option("--bandwidth", ua.bandwidth, "bytes per second (0: server default)");

  auto* secret = app.add_subcommand("secret", "shared secrets for TURN REST API credentials")->require_subcommand(1);
  std::string expires, secret_id;
  bool secret_stdin = false;
  auto* s_add = secret->add_subcommand("add", "add a secret: read from stdin, or generated and printed once");
  add_realm(s_add);
  s_add->add_option("--expires", expires, "after a duration (30d, 12h, 15m, 3600) or at a timestamp");
  s_add->add_flag("--secret-stdin", secret_stdin, "read the secret from stdin instead of generating one");
  auto* s_list = secret->add_subcommand("list", "list secrets (values are not shown, only a fingerprint)");
  s_list->add_option("--realm", realm_filter, "only this realm");
  auto* s_revoke = secret->add_subcommand("revoke", "revoke a secret; credentials made with it stop working");
  s_revoke->add_option("id", secret_id, "secret id (see `secret list`)")->required();

  auto* token = app.add_subcommand("token", "print a TURN REST credential as WebRTC iceServers JSON");
  std::string token_user;
  uint64_t ttl = 86400;
  std::vector<std::string> urls;
  bool token_secret_stdin = false;
  token->add_option("user", token_user, "user id to embed in the username")->required();
  token->add_option("--ttl", ttl, "lifetime in seconds (default 86400)");
  add_realm(token);
  token->add_flag("--secret-stdin", token_secret_stdin, "read the shared secret from stdin (no database needed)");
  token->add_option("--url", urls, "TURN URL(s) for the iceServers entry (default turn:localhost:3478?transport=udp)");

  auto* apikey = app.add_subcommand("apikey", "API keys for ferry's GET /v1/ice-servers")->require_subcommand(1);
  std::string key_name;
  auto* k_add = apikey->add_subcommand("add", "add a key: generated, printed once on stdout, stored as SHA-256");
  k_add->add_option("name", key_name, "the key's name (the user part of the credentials it gets)")->required();
  auto* k_list = apikey->add_subcommand("list", "list keys (names and hash prefixes, never keys)");
  auto* k_revoke = apikey->add_subcommand("revoke", "revoke the active key of this name");
  k_revoke->add_option("name", key_name)->required();

  ferry::ferryctl::add_probe_command(app);  // runs from its own parse callback
  const ferry::ferryctl::FleetCommands fleet(app);
  ferry::ferryctl::add_usage_command(app, g.database);
  ferry::ferryctl::add_oauthkey_command(app, g.database);  // tools/ferryctl/oauth.cpp

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) { return app.exit(e); }

  try {
    if (!g.database.empty() && g.database.find('@') != std::string::npos &&
        (g.database.find("password=") != std::string::npos ||
         std::regex_search(g.database, std::regex(R"(://[^/@:]*:[^/@]*@)")))) {
      std::cerr << "ferryctl: warning: a password in --database is visible to other users (ps); "
                   "prefer FERRY_DATABASE_URL or ~/.pgpass\n";
    }
    if (*token) return cmd_token(g, realm, token_user, ttl, token_secret_stdin, urls);
    Db conn(database_url(g));
    if (auto rc = fleet.run(conn.get())) return *rc;
    if (*db_migrate) return cmd_db_migrate(conn);
    if (*db_status) return cmd_db_status(conn);
    if (*u_add) return cmd_user_add(conn, realm, ua);
    if (*u_passwd) return cmd_user_passwd(conn, realm, ua);
    if (*u_disable) return cmd_user_enable(conn, realm, ua.name, false);
    if (*u_enable) return cmd_user_enable(conn, realm, ua.name, true);
    if (*u_del) return cmd_user_del(conn, realm, ua.name);
    if (*u_list) return cmd_user_list(conn, realm_filter);
    if (*u_quota) return cmd_user_quota(conn, realm, ua);
    if (*s_add) return cmd_secret_add(conn, realm, expires, secret_stdin);
    if (*s_list) return cmd_secret_list(conn, realm_filter);
    if (*s_revoke) return cmd_secret_revoke(conn, secret_id);
    if (*k_add) return cmd_apikey_add(conn, key_name);
    if (*k_list) return cmd_apikey_list(conn);
    if (*k_revoke) return cmd_apikey_revoke(conn, key_name);
    fail("unknown command", 2);
  } catch (const Failure& f) {
    std::cerr << "ferryctl: " << f.message << "\n";
    return f.code;
  } catch (const std::exception& e) {
    std::cerr << "ferryctl: " << e.what() << "\n";
    return 1;
  }
}
