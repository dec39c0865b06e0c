#include "tools/ferryctl/oauth.h"

#include <libpq-fe.h>
#include <openssl/rand.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "auth/access_token.h"
#include "auth/shared_secret.h"
#include "base/secret_mask.h"
#include "db/pg_connection.h"

namespace ferry::ferryctl {

// Named, not anonymous: ferryctl's unity build puts this file in one unit with main.cpp and the
// other commands, whose internals have names like these.
namespace oauthkey_command {

struct Failure {
  std::string message;
  int code = 1;
};
[[noreturn]] void fail(std::string message, int code = 1) { throw Failure{std::move(message), code}; }

struct ResultDeleter {
  void operator()(PGresult* r) const { PQclear(r); }
};
using Result = std::unique_ptr<PGresult, ResultDeleter>;

// A blocking connection (this is a CLI); errors never carry the connection string.
class Conn {
 public:
  explicit Conn(const std::string& url) {
    const char* keys[] = {"fallback_application_name", "connect_timeout", "dbname", nullptr};
    const char* vals[] = {"ferryctl", "10", url.c_str(), nullptr};
    conn_ = PQconnectdbParams(keys, vals, 1);
    if (!conn_ || PQstatus(conn_) != CONNECTION_OK) {
      std::string msg = conn_ ? ferry::scrub_conninfo(db::one_line(PQerrorMessage(conn_)), url) : "out of memory";
      if (conn_) PQfinish(conn_);
      conn_ = nullptr;
      fail("cannot connect to the database: " + msg);
    }
    PQsetNoticeProcessor(
        conn_, [](void*, const char*) {}, nullptr);
  }
  ~Conn() {
    if (conn_) PQfinish(conn_);
  }
  // Returns null and sets `state` on an error when `state` is given; otherwise fails.
  Result exec(const char* sql, const std::vector<std::string>& params, std::string* state = nullptr) {
    std::vector<const char*> v;
    for (const auto& p : params) v.push_back(p.c_str());
    Result r(PQexecParams(conn_, sql, static_cast<int>(v.size()), nullptr, v.data(), nullptr, nullptr, 0));
    auto st = r ? PQresultStatus(r.get()) : PGRES_FATAL_ERROR;
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) return r;
    std::string code =
        r && PQresultErrorField(r.get(), PG_DIAG_SQLSTATE) ? PQresultErrorField(r.get(), PG_DIAG_SQLSTATE) : "";
    std::string msg = db::one_line(r ? PQresultErrorMessage(r.get()) : PQerrorMessage(conn_));
    if (state != nullptr && code == "23505") {
      *state = code;
      return nullptr;
    }
    if (code == "42P01") fail("database error: " + msg + " (run `ferryctl db migrate` first)");
    fail("database error: " + msg);
  }

 private:
  PGconn* conn_ = nullptr;
};

struct Options {
  const std::string* database = nullptr;
  std::string kid;
  bool key_stdin = false;
  std::string as_url;
  uint32_t lifetime_max = 0;
};

std::string database_url(const Options& o) {
  if (!o.database->empty()) return *o.database;
  if (const char* e = std::getenv("FERRY_DATABASE_URL"); e && *e) return e;
  fail("no database given: use --database URL or set FERRY_DATABASE_URL");
}

void check_kid(const std::string& kid) {
  if (kid.empty() || kid.size() > 128) fail("the kid must be 1-128 characters");
  for (char c : kid)
    if (static_cast<unsigned char>(c) < 0x21 || static_cast<unsigned char>(c) > 0x7e)
      fail("the kid must be printable ASCII without spaces");
}

std::string hex(const uint8_t* p, size_t n) {
  static const char* d = "0123456789abcdef";
  std::string s;
  for (size_t i = 0; i < n; ++i) {
    s += d[p[i] >> 4];
    s += d[p[i] & 15];
  }
  return s;
}

void wipe(std::string& s) {
  volatile char* p = s.data();
  for (size_t i = 0; i < s.size(); ++i) p[i] = 0;
  s.clear();
}

int add(const Options& o) {
  check_kid(o.kid);
  auth::AsRsKey key{};
  if (o.key_stdin) {
    std::string line;
    if (!std::getline(std::cin, line)) fail("no key on stdin (one line of base64)");
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
    auto bytes = auth::base64_decode(line);
    wipe(line);
    if (!bytes) fail("the key on stdin is not base64");
    if (bytes->size() != key.size())
      fail("the key must be 32 bytes (A256GCM) once decoded, got " + std::to_string(bytes->size()));
    std::copy(bytes->begin(), bytes->end(), key.begin());
    std::fill(bytes->begin(), bytes->end(), 0);
  } else if (RAND_bytes(key.data(), static_cast<int>(key.size())) != 1) {
    fail("no randomness available");
  }
  Conn db(database_url(o));
  std::string key_hex = hex(key.data(), key.size());
  std::string state;
  auto r =
      db.exec("INSERT INTO oauth_keys (kid, key, lifetime_max, as_url) VALUES ($1, decode($2, 'hex'), $3::integer, $4)",
              {o.kid, key_hex, std::to_string(o.lifetime_max), o.as_url}, &state);
  wipe(key_hex);
  if (!r) fail("a key with kid '" + o.kid + "' already exists (remove it first)");
  if (o.key_stdin) {
    std::cout << "added AS-RS key '" << o.kid << "'\n";
  } else {
    std::cerr << "added AS-RS key '" << o.kid
              << "'; it is shown once, below (base64, A256GCM): give it to the authorization server\n";
    std::string b64 = auth::base64_encode(std::string_view(reinterpret_cast<const char*>(key.data()), key.size()));
    std::cout << b64 << "\n";
    wipe(b64);
  }
  key.fill(0);
  return 0;
}

int list(const Options& o) {
  Conn db(database_url(o));
  auto r = db.exec(
      "SELECT kid, algorithm, lifetime_max, as_url, "
      "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') FROM oauth_keys ORDER BY kid",
      {});
  std::printf("%-24s %-8s %-12s %-21s %s\n", "KID", "ALG", "LIFETIME_MAX", "CREATED", "AS_URL");
  for (int i = 0; i < PQntuples(r.get()); ++i)
    std::printf("%-24s %-8s %-12s %-21s %s\n", PQgetvalue(r.get(), i, 0), PQgetvalue(r.get(), i, 1),
                PQgetvalue(r.get(), i, 2), PQgetvalue(r.get(), i, 4), PQgetvalue(r.get(), i, 3));
  return 0;
}

int remove(const Options& o) {
  check_kid(o.kid);
  Conn db(database_url(o));
  auto r = db.exec("DELETE FROM oauth_keys WHERE kid = $1", {o.kid});
  if (std::string_view(PQcmdTuples(r.get())) == "0") fail("no AS-RS key with kid '" + o.kid + "'");
  std::cout << "removed AS-RS key '" << o.kid
            << "' (servers stop opening its tokens once their cache expires, database.cache_ttl)\n";
  return 0;
}

int run(const Options& o, int (*cmd)(const Options&)) {
  try {
    return cmd(o);
  } catch (const Failure& f) {
    std::cerr << "ferryctl: " << f.message << "\n";
    return f.code;
  }
}

}  // namespace oauthkey_command

void add_oauthkey_command(CLI::App& app, const std::string& database) {
  auto o = std::make_shared<oauthkey_command::Options>();
  o->database = &database;
  auto* cmd =
      app.add_subcommand("oauthkey", "RFC 7635 AS-RS keys (third-party authorization tokens)")->require_subcommand(1);
  auto* a = cmd->add_subcommand("add", "add a key: read from stdin (base64), or generated and printed once");
  a->add_option("kid", o->kid, "key id (the USERNAME clients send with their token)")->required();
  a->add_flag("--key-stdin", o->key_stdin, "read the 32-byte key, base64, from stdin (one line)");
  a->add_option("--as-url", o->as_url, "the authorization server using the key (informational)");
  a->add_option("--lifetime-max", o->lifetime_max, "refuse tokens with a longer lifetime (seconds; 0: no cap)");
  a->callback([o] { throw CLI::RuntimeError(oauthkey_command::run(*o, oauthkey_command::add)); });
  auto* l = cmd->add_subcommand("list", "list keys (kids and settings, never keys)");
  l->callback([o] { throw CLI::RuntimeError(oauthkey_command::run(*o, oauthkey_command::list)); });
  auto* r = cmd->add_subcommand("remove", "remove a key; its tokens stop working");
  r->add_option("kid", o->kid, "key id")->required();
  r->callback([o] { throw CLI::RuntimeError(oauthkey_command::run(*o, oauthkey_command::remove)); });
}

}  // namespace ferry::ferryctl
