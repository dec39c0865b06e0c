// The credential stores of one worker loop, and how changes to them reach that worker's core:
//   static users (config) -> shared secrets (config + database) -> PostgreSQL users
// asked in that order; beside them the RFC 7635 AS-RS keys (config, then the oauth_keys table).
// Everything here lives on the worker's loop; nothing is shared with other workers, which hold
// their own copies (and their own database connections), so a revocation NOTIFY reaches every
// worker of every ferry instance on its own LISTEN connection.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <uv.h>

#include "base/lifetime.h"
#include "auth/chained_store.h"
#include "auth/oauth_keys.h"
#include "auth/shared_secret.h"
#include "auth/static_users.h"
#include "db/pg_connection.h"
#include "db/pg_credential_store.h"
#include "db/pg_oauth_keys.h"
#include "base/clock.h"
#include "server/net/uv_handle.h"
#include "turn/server_core.h"

namespace ferry::server {

struct DatabaseSettings {
  std::string url;  // empty: no database. A secret: never logged.
  size_t pool_size = 2;
  std::chrono::seconds cache_ttl{60};
  std::chrono::seconds negative_cache_ttl{10};
  std::chrono::seconds max_stale{86400};
  std::chrono::seconds secrets_refresh{60};
};

struct CredentialSettings {
  std::string realm;
  std::shared_ptr<const auth::StaticUsers> users;  // shared read-only; each worker copies it
  std::vector<std::string> secrets;                // from the config file
  std::vector<auth::OAuthKey> oauth_keys;          // RFC 7635 AS-RS keys from the config file
  DatabaseSettings database;
};

class WorkerCredentials {
 public:
  // `loop` and `clock` must outlive this object.
  WorkerCredentials(uv_loop_t* loop, const Clock& clock, const CredentialSettings& settings);
  ~WorkerCredentials();
  WorkerCredentials(const WorkerCredentials&) = delete;
  WorkerCredentials& operator=(const WorkerCredentials&) = delete;

  auth::CredentialStore& store() { return chain_; }
  // RFC 7635 AS-RS keys: the configured ones, then PostgreSQL's.
  auth::OAuthKeyStore& oauth_keys() { return *oauth_; }

  // Revocations and secret changes now act on `core`'s allocations. Starts the database
  // connections, if any. On the loop thread.
  void start(turn::ServerCore& core);
  // Closes the database connections (their handles), so the loop can end.
  void stop();

  // A configuration reload: new static users and configured secrets. Allocations whose user lost
  // access are closed. On the loop thread.
  void reload(const CredentialSettings& settings);

  bool has_database() const { return pool_ != nullptr; }
  // A query connection and the LISTEN connection are up (always true without a database).
  bool database_ready() const;
  const db::PgPool* database_pool() const { return pool_.get(); }
  db::PgPool* database_pool() { return pool_.get(); }
  size_t database_pool_size() const { return pool_size_; }
  const db::PgCredentialStore* database_store() const { return db_store_.get(); }

 private:
  void rebuild_secrets();
  void load_database_secrets(bool revalidate_after);

  uv_loop_t* loop_;
  const Clock& clock_;
  std::string realm_;
  auth::ChainedStore chain_;
  std::shared_ptr<auth::StaticUsers> users_;
  std::shared_ptr<auth::SharedSecretStore> secrets_;
  std::shared_ptr<auth::OAuthKeyRing> oauth_ = std::make_shared<auth::OAuthKeyRing>();
  std::vector<std::string> config_secrets_;
  std::vector<std::string> database_secrets_;
  std::unique_ptr<db::PgPool> pool_;
  std::shared_ptr<db::PgCredentialStore> db_store_;
  std::shared_ptr<db::PgOAuthKeys> db_oauth_;
  UvHandle<uv_timer_t> secrets_timer_;
  std::chrono::seconds secrets_refresh_{60};
  size_t pool_size_ = 0;
  turn::ServerCore* core_ = nullptr;
  ferry::Lifetime alive_;
};

}  // namespace ferry::server
