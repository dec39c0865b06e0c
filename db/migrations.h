// The schema migrations (db/migrations/NNNN_name.sql), embedded at build time, and the runner that
// applies them. The runner uses blocking libpq: it is for ferryctl and for server start-up, never
// for the event loop.
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <vector>

// From <libpq-fe.h> (not included here so the generated table compiles without libpq headers).
typedef struct pg_conn PGconn;

namespace ferry::db {

struct Migration {
  int version;            // NNNN
  std::string_view name;  // the part after "NNNN_"
  std::string_view sql;
};

// In ascending version order. Defined in the generated migrations_embedded.cpp.
std::span<const Migration> migrations();

// Highest version this binary knows.
int latest_migration_version();

struct MigrateResult {
  bool ok = false;
  std::string error;         // one line, when !ok
  std::vector<int> applied;  // versions applied by this call
  int current_version = 0;   // highest version recorded afterwards
  std::vector<int> unknown;  // versions in the database this binary does not know (newer)
};

// Applies every embedded migration not yet recorded in schema_migrations, in order, in a single
// transaction holding a transaction-level advisory lock (concurrent runners wait, then find nothing
// to do). Idempotent. `conn` must be an open connection in blocking mode.
MigrateResult migrate(PGconn* conn);

// The versions recorded in schema_migrations (empty when the table does not exist).
// Returns false (and sets `error`) on a database error.
bool applied_versions(PGconn* conn, std::vector<int>& out, std::string& error);

// The advisory lock key used by migrate(): "ferrymig" as a 64-bit number.
inline constexpr long long kMigrationLockKey = 0x6665727279'6d6967LL;

}  // namespace ferry::db
