#include "tools/ferryctl/usage.h"

#include <libpq-fe.h>

#include <nlohmann/json.hpp>

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <optional>
#include <regex>
#include <string>
#include <vector>

#include "base/secret_mask.h"
#include "db/pg_connection.h"

namespace ferry::ferryctl {

// Named, not anonymous: ferryctl's other commands share ferry::ferryctl (and a unity build puts
// their files in one translation unit).
namespace usage_command {

struct UsageArgs {
  std::optional<std::string> user;
  std::string since;
  bool json = false;
};

struct UsageError {
  std::string message;
};

using db::one_line;

struct UsageResultDeleter {
  void operator()(PGresult* r) const { PQclear(r); }
};
struct UsageConnDeleter {
  void operator()(PGconn* c) const { PQfinish(c); }
};

// "--since": a duration back from now (90, 90s, 15m, 12h, 30d) or anything PostgreSQL reads as a
// timestamptz ("2030-01-01", "2030-01-01T00:00Z").
struct Since {
  std::optional<std::string> timestamp;
  std::optional<std::string> seconds_ago;
};

Since parse_since(const std::string& text) {
  Since s;
  if (text.empty()) return s;
  std::smatch m;
  if (std::regex_match(text, m, std::regex(R"((\d{1,9})([smhd]?))"))) {
    long long n = std::stoll(m[1].str());
    const std::string unit = m[2].str();
    if (unit == "m") n *= 60;
    if (unit == "h") n *= 3600;
    if (unit == "d") n *= 86400;
    s.seconds_ago = std::to_string(n);
  } else {
    s.timestamp = text;
  }
  return s;
}

int run_usage(const std::string& database_flag, const UsageArgs& a) {
  std::string url = database_flag;
  if (url.empty())
    if (const char* e = std::getenv("FERRY_DATABASE_URL"); e && *e) url = e;
  if (url.empty()) throw UsageError{"no database given: use --database URL or set FERRY_DATABASE_URL"};

  const char* keys[] = {"fallback_application_name", "connect_timeout", "dbname", nullptr};
  const char* vals[] = {"ferryctl", "10", url.c_str(), nullptr};
  std::unique_ptr<PGconn, UsageConnDeleter> conn(PQconnectdbParams(keys, vals, 1));
  if (!conn) throw UsageError{"cannot connect to the database: out of memory"};
  if (PQstatus(conn.get()) != CONNECTION_OK)
    throw UsageError{"cannot connect to the database: " + scrub_conninfo(one_line(PQerrorMessage(conn.get())), url)};
  PQsetNoticeProcessor(
      conn.get(), [](void*, const char*) {}, nullptr);

  const Since since = parse_since(a.since);
  // Rows are per allocation and hold its totals (final or interim), so plain sums are exact.
  const char* sql =
      "SELECT username, count(*), COALESCE(sum(bytes_in), 0), COALESCE(sum(bytes_out), 0), "
      "COALESCE(sum(packets_in), 0), COALESCE(sum(packets_out), 0), count(*) FILTER (WHERE NOT final), "
      "to_char(min(started_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "
      "to_char(max(ended_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') "
      "FROM usage_records WHERE ($1::text IS NULL OR username = $1) "
      "AND ($2::timestamptz IS NULL OR started_at >= $2::timestamptz) "
      "AND ($3::bigint IS NULL OR started_at >= now() - $3::bigint * interval '1 second') "
      "GROUP BY username ORDER BY username";
  const char* params[] = {a.user ? a.user->c_str() : nullptr, since.timestamp ? since.timestamp->c_str() : nullptr,
                          since.seconds_ago ? since.seconds_ago->c_str() : nullptr};
  std::unique_ptr<PGresult, UsageResultDeleter> r(
      PQexecParams(conn.get(), sql, 3, nullptr, params, nullptr, nullptr, 0));
  if (!r || PQresultStatus(r.get()) != PGRES_TUPLES_OK) {
    const char* state = r ? PQresultErrorField(r.get(), PG_DIAG_SQLSTATE) : nullptr;
    const std::string code = state ? state : "";
    const std::string msg = one_line(r ? PQresultErrorMessage(r.get()) : PQerrorMessage(conn.get()));
    if (code == "42P01") throw UsageError{"database error: " + msg + " (run `ferryctl db migrate` first)"};
    if (code.rfind("22", 0) == 0 && since.timestamp)
      throw UsageError{"invalid --since '" + a.since + "': use a duration (90s, 15m, 12h, 30d) or a timestamp (" + msg +
                       ")"};
    throw UsageError{"database error: " + msg};
  }

  auto num = [&](int row, int col) { return std::strtoull(PQgetvalue(r.get(), row, col), nullptr, 10); };
  const int rows = PQntuples(r.get());
  if (a.json) {
    nlohmann::json out = nlohmann::json::array();
    for (int i = 0; i < rows; ++i) {
      out.push_back({{"user", PQgetvalue(r.get(), i, 0)},
                     {"allocations", num(i, 1)},
                     {"bytes_in", num(i, 2)},
                     {"bytes_out", num(i, 3)},
                     {"packets_in", num(i, 4)},
                     {"packets_out", num(i, 5)},
                     {"live", num(i, 6)},
                     {"first_started", PQgetvalue(r.get(), i, 7)},
                     {"last_ended", PQgetvalue(r.get(), i, 8)}});
    }
    std::cout << out.dump(2) << "\n";
    return 0;
  }
  std::printf("%-24s %11s %15s %15s %12s %12s %5s  %-20s %-20s\n", "USER", "ALLOCATIONS", "BYTES_IN", "BYTES_OUT",
              "PACKETS_IN", "PACKETS_OUT", "LIVE", "FIRST_STARTED", "LAST_ENDED");
  for (int i = 0; i < rows; ++i) {
    std::printf("%-24s %11llu %15llu %15llu %12llu %12llu %5llu  %-20s %-20s\n", PQgetvalue(r.get(), i, 0), num(i, 1),
                num(i, 2), num(i, 3), num(i, 4), num(i, 5), num(i, 6), PQgetvalue(r.get(), i, 7),
                PQgetvalue(r.get(), i, 8));
  }
  return 0;
}

}  // namespace usage_command

void add_usage_command(CLI::App& app, const std::string& database_flag) {
  auto args = std::make_shared<usage_command::UsageArgs>();
  auto* cmd = app.add_subcommand(
      "usage",
      "sum the usage records of ended and live allocations per user (bytes_in: from clients to peers, "
      "bytes_out: from peers to clients)");
  cmd->add_option("--user", args->user, "only this user");
  cmd->add_option("--since", args->since,
                  "only allocations started since: a duration back from now (90s, 15m, 12h, 30d) or a timestamp "
                  "(2030-01-01T00:00Z)");
  cmd->add_flag("--json", args->json,
                "a JSON array of {user, allocations, bytes_in, bytes_out, packets_in, packets_out, live, "
                "first_started, last_ended}");
  cmd->callback([args, &database_flag] {
    int rc = 1;
    try {
      rc = usage_command::run_usage(database_flag, *args);
    } catch (const usage_command::UsageError& e) {
      std::cerr << "ferryctl: " << e.message << "\n";
    } catch (const std::exception& e) { std::cerr << "ferryctl: " << e.what() << "\n"; }
    std::cout.flush();
    throw CLI::RuntimeError(rc);
  });
}

}  // namespace ferry::ferryctl
