// Long-term TURN users kept in PostgreSQL (db/migrations/0001_initial.sql), behind an in-memory
// cache, for the event loop:
//  * a cached user answers at once; an uncached one is fetched with one prepared statement through
//    PgPool and answered via the callback. Lookups of the same name while its query runs share it
//    (a flood of one unknown name costs one query), and unknown names are remembered for a while
//    (negative cache) in an LRU of their own, so a flood of random names cannot evict real users.
//  * positive entries are fresh for `positive_ttl`; after that they are still served at once while
//    a background query refreshes them, for up to `max_stale` — so cached users keep working while
//    the database is down. An uncached user while the database is down is Unavailable (500).
//  * a LISTEN connection receives the triggers' NOTIFYs on 'ferry_credentials': the user's entries
//    are dropped at once and, when the change takes access away (disabled, deleted, new password,
//    renamed), the revocation callback runs so the server can close that user's allocations.
//    Whenever the LISTEN connection is (re)established the cache is dropped (notifications sent
//    while it was down are lost) and the resync callback runs.
#pragma once

#include <chrono>
#include <functional>
#include <list>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "base/lifetime.h"
#include "auth/credential_store.h"
#include "db/pg_connection.h"
#include "base/clock.h"

namespace ferry::db {

inline constexpr std::string_view kCredentialsChannel = "ferry_credentials";

struct PgCredentialStoreOptions {
  std::string realm;  // revocations for other realms are ignored; empty: all realms
  std::chrono::seconds positive_ttl{60};
  std::chrono::seconds negative_ttl{10};
  std::chrono::seconds max_stale{24 * 3600};  // serve a cached user this long past positive_ttl
  size_t max_entries = 100000;                // known users cached
  size_t max_negative_entries = 10000;        // unknown names remembered
  size_t max_inflight = 1024;                 // distinct names being fetched; beyond: Unavailable
  LogFn log;                                  // default: stderr_logger()
};

class PgCredentialStore final : public auth::CredentialStore {
 public:
  using RevokeFn = std::function<void(const std::string& username)>;

  // `pool` and `clock` must outlive the store. Call start_listening() once (before or after
  // pool.start()) to receive revocations.
  PgCredentialStore(PgPool& pool, const Clock& clock, PgCredentialStoreOptions opts = {});
  ~PgCredentialStore() override;

  void start_listening();
  bool listening() const { return listening_; }

  // A user's access was taken away (on any instance, via NOTIFY; or found missing on refresh).
  void set_revocation_callback(RevokeFn fn) { on_revoke_ = std::move(fn); }
  // Every user may have changed (users truncated, or LISTEN re-established after a gap): the server
  // should re-check its users (e.g. look each allocation's user up again).
  void set_resync_callback(std::function<void()> fn) { on_resync_ = std::move(fn); }
  // shared_secrets changed; `revoke`: a secret was revoked/deleted/shortened. Reload with
  // load_shared_secrets().
  void set_secrets_changed_callback(std::function<void(bool revoke)> fn) { on_secrets_changed_ = std::move(fn); }

  std::optional<auth::LookupResult> lookup(std::string_view username, std::string_view realm, Callback done) override;

  // The realm's usable shared secrets, newest first; nullopt when the database cannot answer.
  // `done` is called later from the loop (or at once with nullopt when the pool refuses).
  void load_shared_secrets(const std::string& realm, std::function<void(std::optional<std::vector<std::string>>)> done);

  void invalidate(std::string_view realm, std::string_view username);
  void clear();

  struct Stats {
    uint64_t hits = 0, stale_hits = 0, negative_hits = 0, misses = 0, coalesced = 0;
    uint64_t queries = 0, unavailable = 0, notifications = 0, revocations = 0, resyncs = 0;
  };
  const Stats& stats() const { return stats_; }
  size_t cached_users() const { return positive_.size(); }
  size_t cached_unknown() const { return negative_.size(); }

 private:
  template <class V>
  class Lru {
   public:
    explicit Lru(size_t cap) : cap_(cap ? cap : 1) {}
    V* get(const std::string& k) {
      auto it = map_.find(k);
      if (it == map_.end()) return nullptr;
      order_.splice(order_.begin(), order_, it->second);
      return &it->second->second;
    }
    void put(const std::string& k, V v) {
      if (auto* old = get(k)) {
        *old = std::move(v);
        return;
      }
      order_.emplace_front(k, std::move(v));
      map_[k] = order_.begin();
      while (map_.size() > cap_) {
        map_.erase(order_.back().first);
        order_.pop_back();
      }
    }
    bool erase(const std::string& k) {
      auto it = map_.find(k);
      if (it == map_.end()) return false;
      order_.erase(it->second);
      map_.erase(it);
      return true;
    }
    void clear() {
      map_.clear();
      order_.clear();
    }
    size_t size() const { return map_.size(); }

   private:
    size_t cap_;
    std::list<std::pair<std::string, V>> order_;
    std::unordered_map<std::string, typename std::list<std::pair<std::string, V>>::iterator> map_;
  };

  struct Positive {
    auth::Credential credential;
    Instant fresh_until;
  };
  struct Inflight {
    std::string username, realm;
    std::vector<Callback> waiters;
    bool dirty = false;  // invalidated while the query ran: its answer may predate the change
    int requeries = 0;
  };

  static std::string key_of(std::string_view realm, std::string_view username);
  bool submit(const std::string& key);
  void on_result(const std::string& key, QueryResult r);
  void on_notify(std::string_view payload);
  void on_listen_state(bool up);
  void revoke(const std::string& realm, const std::string& username);
  void log(LogLevel level, std::string_view msg) const;

  PgPool& pool_;
  const Clock& clock_;
  PgCredentialStoreOptions opts_;
  Lru<Positive> positive_;
  Lru<Instant> negative_;
  std::unordered_map<std::string, Inflight> inflight_;
  RevokeFn on_revoke_;
  std::function<void()> on_resync_;
  std::function<void(bool)> on_secrets_changed_;
  bool listening_ = false;
  bool listened_before_ = false;
  std::string last_error_;
  Stats stats_;
  ferry::Lifetime alive_;
};

}  // namespace ferry::db
