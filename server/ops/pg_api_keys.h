// API keys kept in PostgreSQL (table api_keys, db/migrations/0002_api_keys.sql, managed with
// `ferryctl apikey`), looked up from the HTTP threads with a blocking libpq connection of their
// own: the HTTP threads are not a packet path, and the workers' pools stay untouched.
#pragma once

#include <libpq-fe.h>

#include <array>
#include <cstdint>
#include <mutex>
#include <string>

#include "base/clock.h"
#include "server/ops/api_keys.h"

namespace ferry::server {

class PgApiKeys {
 public:
  // `clock` paces the reconnection attempts; it must outlive this object.
  PgApiKeys(std::string conninfo, const Clock& clock) : conninfo_(std::move(conninfo)), clock_(clock) {}
  ~PgApiKeys();
  PgApiKeys(const PgApiKeys&) = delete;
  PgApiKeys& operator=(const PgApiKeys&) = delete;

  // Thread-safe (one query at a time). Connects on first use and again after a failure, at most
  // every few seconds; Unavailable meanwhile.
  ApiKeyLookup lookup(const std::array<uint8_t, 32>& sha256);

 private:
  bool connect_locked();

  std::string conninfo_;  // a secret: never logged
  const Clock& clock_;
  std::mutex mutex_;
  PGconn* conn_ = nullptr;
  Instant next_attempt_{};
  bool warned_ = false;
};

}  // namespace ferry::server
