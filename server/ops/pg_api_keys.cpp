#include "server/ops/pg_api_keys.h"

#include <spdlog/spdlog.h>

#include "base/secret_mask.h"
#include "db/pg_connection.h"

namespace ferry::server {

namespace {
constexpr auto kRetryAfter = std::chrono::seconds(5);
constexpr char kQuery[] = "SELECT name FROM api_keys WHERE sha256 = decode($1, 'hex') AND revoked_at IS NULL";
}  // namespace

PgApiKeys::~PgApiKeys() {
  if (conn_ != nullptr) PQfinish(conn_);
}

bool PgApiKeys::connect_locked() {
  if (conn_ != nullptr && PQstatus(conn_) == CONNECTION_OK) return true;
  const Instant now = clock_.now();
  if (now < next_attempt_) return false;
  next_attempt_ = now + kRetryAfter;
  if (conn_ != nullptr) PQfinish(conn_);
  const char* keys[] = {"dbname", "connect_timeout", "fallback_application_name", nullptr};
  const char* values[] = {conninfo_.c_str(), "3", "ferry-http", nullptr};
  conn_ = PQconnectdbParams(keys, values, 1);
  if (conn_ == nullptr || PQstatus(conn_) != CONNECTION_OK) {
    if (!warned_) {
      spdlog::warn("api keys: cannot reach the database: {}",
                   scrub_conninfo(conn_ != nullptr ? PQerrorMessage(conn_) : "out of memory", conninfo_));
      warned_ = true;
    }
    return false;
  }
  PQsetNoticeProcessor(
      conn_, [](void*, const char*) {}, nullptr);
  if (warned_) spdlog::info("api keys: database reachable again");
  warned_ = false;
  return true;
}

ApiKeyLookup PgApiKeys::lookup(const std::array<uint8_t, 32>& sha256) {
  std::lock_guard lock(mutex_);
  if (!connect_locked()) return {ApiKeyLookup::Status::Unavailable, ""};
  const std::string hex = to_hex(sha256.data(), sha256.size());
  const char* params[] = {hex.c_str()};
  db::PgResultPtr r(PQexecParams(conn_, kQuery, 1, nullptr, params, nullptr, nullptr, 0));
  if (!r || PQresultStatus(r.get()) != PGRES_TUPLES_OK) {
    const char* state = r ? PQresultErrorField(r.get(), PG_DIAG_SQLSTATE) : nullptr;
    if (state != nullptr && std::string_view(state) == "42P01") {
      // No api_keys table: the schema predates migration 0002. Nothing to find there.
      if (!warned_) spdlog::warn("api keys: no api_keys table in the database (run `ferryctl db migrate`)");
      warned_ = true;
      return {ApiKeyLookup::Status::NotFound, ""};
    }
    if (PQstatus(conn_) != CONNECTION_OK) {
      PQfinish(conn_);
      conn_ = nullptr;
    }
    return {ApiKeyLookup::Status::Unavailable, ""};
  }
  if (PQntuples(r.get()) == 0) return {ApiKeyLookup::Status::NotFound, ""};
  return {ApiKeyLookup::Status::Found, PQgetvalue(r.get(), 0, 0)};
}

}  // namespace ferry::server
