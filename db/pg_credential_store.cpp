#include "db/pg_credential_store.h"

#include <nlohmann/json.hpp>

#include <charconv>

#include "stun/integrity.h"

namespace ferry::db {

namespace {

constexpr const char* kLookupName = "ferry_user_lookup";
constexpr const char* kLookupSql =
    "SELECT key_md5, key_sha256, max_allocations, bandwidth FROM users "
    "WHERE realm = $1 AND name = $2 AND enabled";
constexpr const char* kHashName = "ferry_userhash_lookup";
constexpr const char* kHashSql = "SELECT name FROM users WHERE realm = $1 AND userhash = $2::bytea AND enabled";
constexpr const char* kSecretsName = "ferry_secrets_load";
constexpr const char* kSecretsSql =
    "SELECT value FROM shared_secrets WHERE realm = $1 AND revoked_at IS NULL "
    "AND (expires_at IS NULL OR expires_at > now()) ORDER BY created_at DESC, id DESC";

// bytea in text format: "\x" followed by hex digits.
std::optional<stun::Key> parse_bytea_key(std::string_view v, size_t expected) {
  if (v.size() != 2 + 2 * expected || v[0] != '\\' || v[1] != 'x') return std::nullopt;
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  stun::Key k;
  k.size = expected;
  for (size_t i = 0; i < expected; ++i) {
    int hi = nibble(v[2 + 2 * i]), lo = nibble(v[3 + 2 * i]);
    if (hi < 0 || lo < 0) return std::nullopt;
    k.bytes[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return k;
}

template <class T>
bool parse_uint(std::string_view v, T& out) {
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
  return ec == std::errc() && p == v.data() + v.size();
}

}  // namespace

PgCredentialStore::PgCredentialStore(PgPool& pool, const Clock& clock, PgCredentialStoreOptions opts)
    : pool_(pool),
      clock_(clock),
      opts_(std::move(opts)),
      positive_(opts_.max_entries),
      negative_(opts_.max_negative_entries),
      by_hash_(opts_.max_entries) {
  if (!opts_.log) opts_.log = stderr_logger();
}

PgCredentialStore::~PgCredentialStore() { alive_.end(); }

void PgCredentialStore::log(LogLevel level, std::string_view msg) const { opts_.log(level, msg); }

std::string PgCredentialStore::key_of(std::string_view realm, std::string_view username) {
  std::string k = std::to_string(realm.size());
  k += ':';
  k += realm;
  k += username;
  return k;
}

std::string PgCredentialStore::hash_key_of(std::string_view realm, std::span<const uint8_t, 32> hash) {
  std::string k = key_of(realm, "");
  k.append(reinterpret_cast<const char*>(hash.data()), hash.size());
  return k;
}

void PgCredentialStore::remember_hash(std::string_view realm, const std::string& username) {
  const auto h = stun::userhash(username, realm);
  by_hash_.put(hash_key_of(realm, h), username);
}

std::optional<std::string> PgCredentialStore::username_for_hash(std::span<const uint8_t, 32> hash,
                                                                std::string_view realm) {
  if (std::string* name = by_hash_.get(hash_key_of(realm, hash))) {
    ++stats_.hash_hits;
    return *name;
  }
  return std::nullopt;
}

auth::CredentialStore::HashLookup PgCredentialStore::resolve_userhash(std::span<const uint8_t, 32> hash,
                                                                      std::string_view realm, NameCallback done) {
  if (auto name = username_for_hash(hash, realm)) return {false, std::move(name)};
  std::string key = hash_key_of(realm, hash);
  if (auto it = hash_inflight_.find(key); it != hash_inflight_.end()) {
    it->second.push_back(std::move(done));  // the same hash asked for already: share the query
    return {true, std::nullopt};
  }
  if (hash_inflight_.size() >= opts_.max_inflight) return {false, std::nullopt};
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex = "\\x";
  for (uint8_t b : hash) {
    hex += kHex[b >> 4];
    hex += kHex[b & 15];
  }
  Query q;
  q.name = kHashName;
  q.sql = kHashSql;
  q.params = {std::string(realm), std::move(hex)};
  auto alive = alive_.watch();
  std::string r(realm);
  hash_inflight_[key].push_back(std::move(done));
  auto s = pool_.query(std::move(q), [this, alive, key, r](QueryResult res) {
    if (alive.expired()) return;
    auto it = hash_inflight_.find(key);
    if (it == hash_inflight_.end()) return;
    std::vector<NameCallback> waiters = std::move(it->second);
    hash_inflight_.erase(it);
    std::optional<std::string> name;
    if (res.ok() && res.rows() == 1) {
      name = std::string(res.value(0, 0));
      remember_hash(r, *name);
    }
    for (auto& w : waiters) {
      if (w) w(name);
      if (alive.expired()) return;
    }
  });
  if (s != PgPool::Submit::Queued) {
    hash_inflight_.erase(key);
    return {false, std::nullopt};
  }
  ++stats_.hash_queries;
  return {true, std::nullopt};
}

void PgCredentialStore::start_listening() {
  auto alive = alive_.watch();
  pool_.listen(
      {std::string(kCredentialsChannel)},
      [this, alive](std::string_view channel, std::string_view payload) {
    if (alive.expired() || channel != kCredentialsChannel) return;
    on_notify(payload);
      },
      [this, alive](bool up) {
    if (!alive.expired()) on_listen_state(up);
  });
}

void PgCredentialStore::on_listen_state(bool up) {
  listening_ = up;
  if (!up) return;
  // Changes made while we were not listening went unannounced: forget everything cached. The first
  // time too, since lookups may have been cached before LISTEN took effect.
  clear();
  bool again = listened_before_;
  listened_before_ = true;
  if (again) {
    ++stats_.resyncs;
    if (on_resync_) on_resync_();
  }
}

std::optional<auth::LookupResult> PgCredentialStore::lookup(std::string_view username, std::string_view realm,
                                                            Callback done) {
  std::string key = key_of(realm, username);
  auto now = clock_.now();
  if (Positive* p = positive_.get(key)) {
    if (now < p->fresh_until) {
      ++stats_.hits;
      return auth::LookupResult::found(p->credential);
    }
    if (now - p->fresh_until < opts_.max_stale) {
      // Serve it, and refresh in the background (unless a query for it already runs).
      ++stats_.stale_hits;
      auth::Credential c = p->credential;
      if (!inflight_.count(key) && inflight_.size() < opts_.max_inflight) {
        inflight_[key] = Inflight{std::string(username), std::string(realm), {}, false, 0};
        if (!submit(key)) inflight_.erase(key);
      }
      return auth::LookupResult::found(std::move(c));
    }
    positive_.erase(key);
  }
  if (Instant* until = negative_.get(key)) {
    if (now < *until) {
      ++stats_.negative_hits;
      return auth::LookupResult::not_found();
    }
    negative_.erase(key);
  }
  ++stats_.misses;
  if (auto it = inflight_.find(key); it != inflight_.end()) {
    ++stats_.coalesced;
    it->second.waiters.push_back(std::move(done));
    return std::nullopt;
  }
  if (inflight_.size() >= opts_.max_inflight) {
    ++stats_.unavailable;
    return auth::LookupResult::unavailable();
  }
  inflight_[key] = Inflight{std::string(username), std::string(realm), {}, false, 0};
  if (!submit(key)) {
    inflight_.erase(key);
    ++stats_.unavailable;
    return auth::LookupResult::unavailable();
  }
  inflight_[key].waiters.push_back(std::move(done));
  return std::nullopt;
}

bool PgCredentialStore::submit(const std::string& key) {
  const Inflight& f = inflight_.at(key);
  Query q;
  q.name = kLookupName;
  q.sql = kLookupSql;
  q.params = {f.realm, f.username};
  auto alive = alive_.watch();
  auto s = pool_.query(std::move(q), [this, alive, key](QueryResult r) {
    if (!alive.expired()) on_result(key, std::move(r));
  });
  if (s != PgPool::Submit::Queued) return false;
  ++stats_.queries;
  return true;
}

void PgCredentialStore::on_result(const std::string& key, QueryResult r) {
  auto it = inflight_.find(key);
  if (it == inflight_.end()) return;
  auto alive = alive_.watch();
  Inflight& f = it->second;
  if (f.dirty && r.ok() && f.requeries < 3) {
    // Changed while we asked: ask again, the answer must not predate the change.
    f.dirty = false;
    ++f.requeries;
    if (submit(key)) return;
  }
  auto now = clock_.now();
  auth::LookupResult res = auth::LookupResult::unavailable();
  if (r.ok()) {
    if (!last_error_.empty()) last_error_.clear();
    if (r.rows() == 0) {
      res = auth::LookupResult::not_found();
      negative_.put(key, now + opts_.negative_ttl);
      if (positive_.erase(key)) {
        // Known before, gone now (its NOTIFY was missed): treat as revoked.
        revoke(f.realm, f.username);
        if (alive.expired()) return;
        it = inflight_.find(key);
        if (it == inflight_.end()) return;
      }
    } else {
      auto md5 = parse_bytea_key(r.value(0, 0), 16);
      std::optional<stun::Key> sha;
      bool ok = md5.has_value();
      if (ok && !r.is_null(0, 1)) {
        sha = parse_bytea_key(r.value(0, 1), 32);
        ok = sha.has_value();
      }
      auth::Credential c;
      ok = ok && parse_uint(r.value(0, 2), c.quota.max_allocations) &&
           parse_uint(r.value(0, 3), c.quota.bandwidth_bytes_per_sec);
      if (!ok) {
        log(LogLevel::Error, "users row for a user has malformed keys or quota; treating the user as unknown");
        res = auth::LookupResult::not_found();
        negative_.put(key, now + opts_.negative_ttl);
      } else {
        c.username = f.username;
        remember_hash(f.realm, f.username);
        c.key_md5 = *md5;
        c.key_sha256 = sha;
        positive_.put(key, Positive{c, now + opts_.positive_ttl});
        negative_.erase(key);
        res = auth::LookupResult::found(std::move(c));
      }
    }
  } else {
    ++stats_.unavailable;
    if (r.status == QueryStatus::Error && r.error != last_error_) {
      // A SQL error (schema missing, permissions) will not fix itself: say so, once per message.
      last_error_ = r.error;
      log(LogLevel::Error, "user lookup failed: " + r.error + " (is the schema migrated? `ferryctl db migrate`)");
    }
    if (Positive* p = positive_.get(key)) res = auth::LookupResult::found(p->credential);  // stale but usable
  }
  Inflight& cur = it->second;
  std::vector<Callback> waiters = std::move(cur.waiters);
  inflight_.erase(it);
  for (auto& w : waiters) {
    if (w) w(res);
    if (alive.expired()) return;
  }
}

void PgCredentialStore::invalidate(std::string_view realm, std::string_view username) {
  std::string key = key_of(realm, username);
  positive_.erase(key);
  negative_.erase(key);
  by_hash_.erase(hash_key_of(realm, stun::userhash(username, realm)));
  if (auto it = inflight_.find(key); it != inflight_.end()) it->second.dirty = true;
}

void PgCredentialStore::clear() {
  positive_.clear();
  negative_.clear();
  by_hash_.clear();
  for (auto& [k, f] : inflight_) f.dirty = true;
}

void PgCredentialStore::revoke(const std::string& realm, const std::string& username) {
  if (!opts_.realm.empty() && realm != opts_.realm) return;
  ++stats_.revocations;
  if (on_revoke_) on_revoke_(username);
}

void PgCredentialStore::on_notify(std::string_view payload) {
  ++stats_.notifications;
  nlohmann::json j = nlohmann::json::parse(payload, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) {
    log(LogLevel::Warn, "ignoring a malformed notification on ferry_credentials");
    return;
  }
  auto str = [&](const char* k) { return j.contains(k) && j[k].is_string() ? j[k].get<std::string>() : std::string(); };
  bool revoke_flag = j.contains("revoke") && j["revoke"].is_boolean() && j["revoke"].get<bool>();
  std::string table = str("table"), op = str("op");
  auto alive = alive_.watch();
  if (table == "users") {
    if (op == "truncate") {
      clear();
      ++stats_.resyncs;
      if (on_resync_) on_resync_();
      return;
    }
    std::string realm = str("realm"), name = str("name");
    std::string old_realm = str("old_realm"), old_name = str("old_name");
    invalidate(realm, name);
    if (!old_name.empty() || !old_realm.empty()) {
      invalidate(old_realm.empty() ? realm : old_realm, old_name.empty() ? name : old_name);
    }
    if (!revoke_flag) return;
    if (!old_name.empty() || !old_realm.empty()) {
      revoke(old_realm.empty() ? realm : old_realm, old_name.empty() ? name : old_name);
      if (alive.expired()) return;
    }
    revoke(realm, name);
    return;
  }
  if (table == "shared_secrets") {
    if (on_secrets_changed_) on_secrets_changed_(revoke_flag);
  }
}

void PgCredentialStore::load_shared_secrets(const std::string& realm,
                                            std::function<void(std::optional<std::vector<std::string>>)> done) {
  Query q;
  q.name = kSecretsName;
  q.sql = kSecretsSql;
  q.params = {realm};
  auto cb = std::make_shared<decltype(done)>(std::move(done));
  auto s = pool_.query(std::move(q), [cb](QueryResult r) {
    if (!r.ok()) {
      (*cb)(std::nullopt);
      return;
    }
    std::vector<std::string> out;
    for (int i = 0; i < r.rows(); ++i) out.emplace_back(r.value(i, 0));
    (*cb)(std::move(out));
  });
  if (s != PgPool::Submit::Queued) (*cb)(std::nullopt);
}

}  // namespace ferry::db
