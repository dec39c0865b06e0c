#include "server/worker/worker_credentials.h"

#include <spdlog/spdlog.h>

namespace ferry::server {

namespace {

// The database code logs through a plain function; route it to spdlog. Messages never carry the
// connection string (PgPool scrubs it).
db::LogFn spdlog_logger() {
  return [](db::LogLevel level, std::string_view msg) {
    switch (level) {
      case db::LogLevel::Debug: spdlog::debug("database: {}", msg); break;
      case db::LogLevel::Info: spdlog::info("database: {}", msg); break;
      case db::LogLevel::Warn: spdlog::warn("database: {}", msg); break;
      case db::LogLevel::Error: spdlog::error("database: {}", msg); break;
    }
  };
}

}  // namespace

WorkerCredentials::WorkerCredentials(uv_loop_t* loop, const Clock& clock, const CredentialSettings& settings)
    : loop_(loop), clock_(clock), realm_(settings.realm), secrets_refresh_(settings.database.secrets_refresh) {
  users_ = std::make_shared<auth::StaticUsers>(settings.users ? *settings.users : auth::StaticUsers(realm_));
  config_secrets_ = settings.secrets;
  secrets_ = std::make_shared<auth::SharedSecretStore>(realm_, clock_, config_secrets_);
  oauth_->set(settings.oauth_keys);
  std::vector<std::shared_ptr<auth::CredentialStore>> stores{users_, secrets_};
  if (!settings.database.url.empty()) {
    db::PgPoolOptions po;
    po.conninfo = settings.database.url;
    po.size = settings.database.pool_size;
    pool_size_ = po.size;
    po.log = spdlog_logger();
    pool_ = std::make_unique<db::PgPool>(loop_, std::move(po));
    db::PgCredentialStoreOptions so;
    so.realm = realm_;
    so.positive_ttl = settings.database.cache_ttl;
    so.negative_ttl = settings.database.negative_cache_ttl;
    so.max_stale = settings.database.max_stale;
    so.log = spdlog_logger();
    db_store_ = std::make_shared<db::PgCredentialStore>(*pool_, clock_, std::move(so));
    stores.push_back(db_store_);
    // RFC 7635 AS-RS keys not in the config are looked up in oauth_keys, with the same cache times.
    db_oauth_ = std::make_shared<db::PgOAuthKeys>(
        *pool_, clock_, db::PgOAuthKeysOptions{settings.database.cache_ttl, settings.database.negative_cache_ttl});
    oauth_->set_fallback(db_oauth_);
  }
  chain_.set(std::move(stores));
}

WorkerCredentials::~WorkerCredentials() {
  alive_.end();
  stop();
  oauth_->set_fallback(nullptr);
  db_oauth_.reset();
  db_store_.reset();
  pool_.reset();
}

void WorkerCredentials::start(turn::ServerCore& core) {
  core_ = &core;
  core.set_oauth_keys(oauth_.get());  // looked at only when the core has an oauth_server_name
  if (!pool_) return;
  auto alive = alive_.watch();
  // §4 of the credentials design: a revoked user loses its open allocations at once.
  db_store_->set_revocation_callback([this, alive](const std::string& username) {
    if (alive.expired() || core_ == nullptr) return;
    if (size_t n = core_->close_user(username); n > 0)
      spdlog::info("closed {} allocation{} of revoked user {}", n, n == 1 ? "" : "s", username);
  });
  // Changes may have gone unannounced (LISTEN was down): check every allocation's user again.
  db_store_->set_resync_callback([this, alive] {
    if (alive.expired()) return;
    load_database_secrets(true);
  });
  db_store_->set_secrets_changed_callback([this, alive](bool revoke) {
    if (!alive.expired()) load_database_secrets(revoke);
  });
  db_store_->start_listening();
  pool_->start();
  load_database_secrets(false);

  if (secrets_timer_.init(loop_, this, uv_timer_init) != 0) return;
  const uint64_t every = static_cast<uint64_t>(secrets_refresh_.count()) * 1000;
  uv_timer_start(
      secrets_timer_.get(),
      [](uv_timer_t* t) { UvHandle<uv_timer_t>::owner_of<WorkerCredentials>(t)->load_database_secrets(false); }, every,
      every);
}

void WorkerCredentials::stop() {
  secrets_timer_.close();
  if (pool_) pool_->stop();
  core_ = nullptr;
}

void WorkerCredentials::reload(const CredentialSettings& settings) {
  *users_ = settings.users ? *settings.users : auth::StaticUsers(realm_);
  config_secrets_ = settings.secrets;
  oauth_->set(settings.oauth_keys);
  rebuild_secrets();
  if (core_ != nullptr) core_->revalidate_users();
}

bool WorkerCredentials::database_ready() const {
  if (!pool_) return true;
  return pool_->connected_count() > 0 && db_store_->listening();
}

void WorkerCredentials::rebuild_secrets() {
  // Configured secrets first: the first secret is the one tried first.
  std::vector<std::string> all = config_secrets_;
  all.insert(all.end(), database_secrets_.begin(), database_secrets_.end());
  secrets_->set_secrets(std::move(all));
}

void WorkerCredentials::load_database_secrets(bool revalidate_after) {
  if (!db_store_) return;
  auto alive = alive_.watch();
  db_store_->load_shared_secrets(realm_, [this, alive, revalidate_after](std::optional<std::vector<std::string>> s) {
    if (alive.expired()) return;
    // Unreachable database: keep the secrets we had (they were valid when last seen).
    if (s) {
      database_secrets_ = std::move(*s);
      rebuild_secrets();
    }
    if (revalidate_after && core_ != nullptr) {
      if (size_t n = core_->revalidate_users(); n > 0)
        spdlog::info("closed {} allocation{} whose credentials were revoked", n, n == 1 ? "" : "s");
    }
  });
}

}  // namespace ferry::server
