#include "auth/oauth_keys.h"

namespace ferry::auth {

void OAuthKeyRing::set(std::vector<OAuthKey> keys) {
  keys_.clear();
  for (auto& k : keys) keys_[k.kid] = std::move(k);
}

std::optional<OAuthKeyResult> OAuthKeyRing::lookup(std::string_view kid, Callback done) {
  if (auto it = keys_.find(kid); it != keys_.end()) return OAuthKeyResult{LookupStatus::Found, it->second};
  if (next_) return next_->lookup(kid, std::move(done));
  return OAuthKeyResult{};
}

}  // namespace ferry::auth
