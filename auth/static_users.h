// Users listed in the configuration file: the embedded default mechanism. Keys are derived once
// at load and the plaintext is dropped.
#pragma once

#include <array>
#include <map>
#include <string>
#include <unordered_map>

#include "auth/credential_store.h"

namespace ferry::auth {

class StaticUsers final : public CredentialStore {
 public:
  explicit StaticUsers(std::string realm) : realm_(std::move(realm)) {}

  void add_password(const std::string& username, std::string_view password);
  // A precomputed MD5 long-term key (16 bytes), as coturn's `turnadmin -k` prints.
  void add_key_md5(const std::string& username, const stun::Key& key);
  void remove(const std::string& username);
  size_t size() const { return users_.size(); }

  std::optional<LookupResult> lookup(std::string_view username, std::string_view realm, Callback done) override;
  std::optional<std::string> username_for_hash(std::span<const uint8_t, 32> hash, std::string_view realm) override;

 private:
  std::string realm_;
  std::unordered_map<std::string, Credential> users_;
  std::map<std::array<uint8_t, 32>, std::string> by_hash_;
};

}  // namespace ferry::auth
