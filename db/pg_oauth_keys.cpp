#include "db/pg_oauth_keys.h"

#include <cstdlib>

namespace ferry::db {

namespace {
constexpr const char* kKeyLookupName = "ferry_oauth_key";
constexpr const char* kKeyLookupSql =
    "SELECT encode(key, 'hex'), lifetime_max, as_url FROM oauth_keys WHERE kid = $1 AND algorithm = 'A256GCM'";

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}
}  // namespace

PgOAuthKeys::PgOAuthKeys(PgPool& pool, const Clock& clock, PgOAuthKeysOptions opts)
    : pool_(pool), clock_(clock), opts_(opts) {}

PgOAuthKeys::~PgOAuthKeys() { alive_.end(); }

std::optional<auth::OAuthKeyResult> PgOAuthKeys::lookup(std::string_view kid, Callback done) {
  auto it = cache_.find(kid);
  if (it != cache_.end() && clock_.now() < it->second.fresh_until) return it->second.result;
  if (!pool_.available()) {
    // Down: a key we knew keeps working (it was valid when last seen).
    if (it != cache_.end() && it->second.result.status == auth::LookupStatus::Found) return it->second.result;
    return auth::OAuthKeyResult{auth::LookupStatus::Unavailable, std::nullopt};
  }
  std::string name(kid);
  auto& waiters = waiting_[name];
  waiters.push_back(std::move(done));
  if (waiters.size() > 1) return std::nullopt;  // already being fetched

  Query q;
  q.name = kKeyLookupName;
  q.sql = kKeyLookupSql;
  q.params = {name};
  auto alive = alive_.watch();
  auto s = pool_.query(std::move(q), [this, alive, name](QueryResult r) {
    if (alive.expired()) return;
    if (!r.ok()) {
      auto stale = cache_.find(name);
      if (stale != cache_.end() && stale->second.result.status == auth::LookupStatus::Found) {
        answer(name, stale->second.result);
      } else {
        answer(name, {auth::LookupStatus::Unavailable, std::nullopt});
      }
      return;
    }
    auth::OAuthKeyResult res;
    if (r.rows() == 1) {
      std::string_view hex = r.value(0, 0);
      auth::OAuthKey k;
      k.kid = name;
      bool ok = hex.size() == 2 * k.key.size();
      for (size_t i = 0; ok && i < k.key.size(); ++i) {
        const int hi = hex_digit(hex[2 * i]), lo = hex_digit(hex[2 * i + 1]);
        ok = hi >= 0 && lo >= 0;
        if (ok) k.key[i] = static_cast<uint8_t>(hi << 4 | lo);
      }
      k.lifetime_max = static_cast<uint32_t>(std::strtoul(std::string(r.value(0, 1)).c_str(), nullptr, 10));
      k.as_url = std::string(r.value(0, 2));
      if (ok) res = {auth::LookupStatus::Found, std::move(k)};
    }
    if (cache_.size() >= opts_.max_entries) cache_.clear();  // bounded; rebuilt on demand
    cache_[name] =
        Entry{res, clock_.now() + (res.status == auth::LookupStatus::Found ? opts_.positive_ttl : opts_.negative_ttl)};
    answer(name, std::move(res));
  });
  if (s != PgPool::Submit::Queued) {
    waiting_.erase(name);
    return auth::OAuthKeyResult{auth::LookupStatus::Unavailable, std::nullopt};
  }
  return std::nullopt;
}

void PgOAuthKeys::answer(const std::string& kid, auth::OAuthKeyResult r) {
  auto it = waiting_.find(kid);
  if (it == waiting_.end()) return;
  auto callbacks = std::move(it->second);
  waiting_.erase(it);
  for (auto& cb : callbacks)
    if (cb) cb(r);
}

}  // namespace ferry::db
