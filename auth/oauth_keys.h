// Where the AS-RS keys of RFC 7635 come from: the configuration (OAuthKeyRing, here) and
// PostgreSQL (db::PgOAuthKeys). Shaped like CredentialStore: answers at once when it can, else
// later through the callback, on the same loop.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "auth/access_token.h"
#include "auth/credential_store.h"

namespace ferry::auth {

// An AS-RS key (RFC 7635 §4.1) under its key id.
struct OAuthKey {
  std::string kid;
  AsRsKey key{};
  uint32_t lifetime_max = 0;  // seconds; tokens with a longer lifetime are refused. 0: no cap
  std::string as_url;         // the authorization server using it, for operators only
};

struct OAuthKeyResult {
  LookupStatus status = LookupStatus::NotFound;
  std::optional<OAuthKey> key;
};

class OAuthKeyStore {
 public:
  using Callback = std::function<void(OAuthKeyResult)>;
  virtual ~OAuthKeyStore() = default;
  virtual std::optional<OAuthKeyResult> lookup(std::string_view kid, Callback done) = 0;
};

// Keys from the configuration, then (for kids it does not hold) an optional further store.
class OAuthKeyRing final : public OAuthKeyStore {
 public:
  void set(std::vector<OAuthKey> keys);
  void set_fallback(std::shared_ptr<OAuthKeyStore> next) { next_ = std::move(next); }
  size_t size() const { return keys_.size(); }
  bool empty() const { return keys_.empty() && !next_; }

  std::optional<OAuthKeyResult> lookup(std::string_view kid, Callback done) override;

 private:
  std::map<std::string, OAuthKey, std::less<>> keys_;
  std::shared_ptr<OAuthKeyStore> next_;
};

}  // namespace ferry::auth
