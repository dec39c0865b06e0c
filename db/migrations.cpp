#include "db/migrations.h"

#include <libpq-fe.h>

#include <algorithm>
#include <memory>

#include "db/pg_connection.h"

namespace ferry::db {

namespace {

using Result = PgResultPtr;

std::string error_of(PGconn* conn, const PGresult* r) {
  const char* m = r ? PQresultErrorMessage(r) : nullptr;
  if (!m || !*m) m = PQerrorMessage(conn);
  return one_line(m ? m : "unknown database error");
}

bool ok(const PGresult* r) {
  auto s = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
  return s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK;
}

}  // namespace

int latest_migration_version() {
  auto all = migrations();
  return all.empty() ? 0 : all.back().version;
}

bool applied_versions(PGconn* conn, std::vector<int>& out, std::string& error) {
  out.clear();
  Result exists(PQexecParams(conn, "SELECT to_regclass('schema_migrations') IS NOT NULL", 0, nullptr, nullptr, nullptr,
                             nullptr, 0));
  if (!ok(exists.get())) {
    error = error_of(conn, exists.get());
    return false;
  }
  if (std::string_view(PQgetvalue(exists.get(), 0, 0)) != "t") return true;
  Result r(PQexecParams(conn, "SELECT version FROM schema_migrations ORDER BY version", 0, nullptr, nullptr, nullptr,
                        nullptr, 0));
  if (!ok(r.get())) {
    error = error_of(conn, r.get());
    return false;
  }
  for (int i = 0; i < PQntuples(r.get()); ++i) out.push_back(std::atoi(PQgetvalue(r.get(), i, 0)));
  return true;
}

MigrateResult migrate(PGconn* conn) {
  MigrateResult res;
  auto exec = [&](const char* sql) {
    Result r(PQexecParams(conn, sql, 0, nullptr, nullptr, nullptr, nullptr, 0));
    if (!ok(r.get())) {
      res.error = error_of(conn, r.get());
      return false;
    }
    return true;
  };
  auto rollback = [&] {
    Result r(PQexec(conn, "ROLLBACK"));
    return res;
  };

  if (!exec("BEGIN")) return res;
  {
    std::string key = std::to_string(kMigrationLockKey);
    const char* params[] = {key.c_str()};
    Result r(PQexecParams(conn, "SELECT pg_advisory_xact_lock($1::bigint)", 1, nullptr, params, nullptr, nullptr, 0));
    if (!ok(r.get())) {
      res.error = error_of(conn, r.get());
      return rollback();
    }
  }
  if (!exec("CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, name text NOT NULL, "
            "applied_at timestamptz NOT NULL DEFAULT now())")) {
    return rollback();
  }
  std::vector<int> have;
  if (!applied_versions(conn, have, res.error)) return rollback();

  for (const Migration& m : migrations()) {
    if (std::find(have.begin(), have.end(), m.version) != have.end()) continue;
    // The migration text is part of the binary, not input: a plain multi-statement exec is right here.
    std::string sql(m.sql);
    Result r(PQexec(conn, sql.c_str()));
    if (!ok(r.get())) {
      res.error =
          "migration " + std::to_string(m.version) + " (" + std::string(m.name) + "): " + error_of(conn, r.get());
      return rollback();
    }
    std::string v = std::to_string(m.version);
    std::string n(m.name);
    const char* params[] = {v.c_str(), n.c_str()};
    Result ins(PQexecParams(conn, "INSERT INTO schema_migrations (version, name) VALUES ($1::integer, $2)", 2, nullptr,
                            params, nullptr, nullptr, 0));
    if (!ok(ins.get())) {
      res.error = error_of(conn, ins.get());
      return rollback();
    }
    res.applied.push_back(m.version);
  }
  if (!exec("COMMIT")) return rollback();

  std::vector<int> after;
  if (!applied_versions(conn, after, res.error)) return res;
  for (int v : after) {
    bool known =
        std::any_of(migrations().begin(), migrations().end(), [v](const Migration& m) { return m.version == v; });
    if (!known) res.unknown.push_back(v);
  }
  res.current_version = after.empty() ? 0 : after.back();
  res.ok = true;
  return res;
}

}  // namespace ferry::db
