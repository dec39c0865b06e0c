#include "auth/static_users.h"

namespace ferry::auth {

void StaticUsers::add_password(const std::string& username, std::string_view password) {
  Credential c;
  c.username = username;
  c.key_md5 = stun::long_term_key_md5(username, realm_, password);
  c.key_sha256 = stun::long_term_key_sha256(username, realm_, password);
  users_[username] = std::move(c);
  by_hash_[stun::userhash(username, realm_)] = username;
}

void StaticUsers::add_key_md5(const std::string& username, const stun::Key& key) {
  Credential c;
  c.username = username;
  c.key_md5 = key;
  users_[username] = std::move(c);
  by_hash_[stun::userhash(username, realm_)] = username;
}

void StaticUsers::remove(const std::string& username) {
  users_.erase(username);
  by_hash_.erase(stun::userhash(username, realm_));
}

std::optional<LookupResult> StaticUsers::lookup(std::string_view username, std::string_view realm, Callback) {
  if (realm != realm_) return LookupResult::not_found();
  auto it = users_.find(std::string(username));
  if (it == users_.end()) return LookupResult::not_found();
  return LookupResult::found(it->second);
}

std::optional<std::string> StaticUsers::username_for_hash(std::span<const uint8_t, 32> hash, std::string_view realm) {
  if (realm != realm_) return std::nullopt;
  std::array<uint8_t, 32> h;
  std::copy(hash.begin(), hash.end(), h.begin());
  auto it = by_hash_.find(h);
  if (it == by_hash_.end()) return std::nullopt;
  return it->second;
}

}  // namespace ferry::auth
