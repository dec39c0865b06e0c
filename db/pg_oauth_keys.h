// RFC 7635 AS-RS keys from PostgreSQL (table oauth_keys, migration 0006), looked up by kid on the
// worker's loop without blocking, with a small cache: a found kid is served for `positive_ttl`,
// an unknown one remembered for `negative_ttl`. While the database is down a cached key keeps
// working; an uncached kid gets Unavailable (500, "try again").
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "auth/oauth_keys.h"
#include "base/clock.h"
#include "base/lifetime.h"
#include "db/pg_connection.h"

namespace ferry::db {

struct PgOAuthKeysOptions {
  std::chrono::seconds positive_ttl{60};
  std::chrono::seconds negative_ttl{10};
  size_t max_entries = 10000;
};

class PgOAuthKeys final : public auth::OAuthKeyStore {
 public:
  // `pool` and `clock` must outlive the store.
  PgOAuthKeys(PgPool& pool, const Clock& clock, PgOAuthKeysOptions opts = {});
  ~PgOAuthKeys() override;

  std::optional<auth::OAuthKeyResult> lookup(std::string_view kid, Callback done) override;

 private:
  struct Entry {
    auth::OAuthKeyResult result;
    Instant fresh_until{};
  };
  void answer(const std::string& kid, auth::OAuthKeyResult r);

  PgPool& pool_;
  const Clock& clock_;
  PgOAuthKeysOptions opts_;
  std::map<std::string, Entry, std::less<>> cache_;
  std::map<std::string, std::vector<Callback>, std::less<>> waiting_;
  Lifetime alive_;  // guards query callbacks that outlive the store
};

}  // namespace ferry::db
