// Several credential stores asked in order — typically static users, then shared-secret tokens,
// then PostgreSQL. The first Found wins. NotFound moves on to the next store; so does Unavailable,
// but it is remembered: if no later store finds the user the answer is Unavailable (500, "try
// again"), not NotFound (401), because the store that could not answer might have known the user.
//
// Asynchronous members are fine: when a member returns nullopt the chain continues from its
// callback, and the whole lookup answers through `done` (on the same loop). When every member
// answers at once, so does the chain.
#pragma once

#include <memory>
#include <vector>

#include "auth/credential_store.h"

namespace ferry::auth {

class ChainedStore final : public CredentialStore {
 public:
  ChainedStore() = default;
  explicit ChainedStore(std::vector<std::shared_ptr<CredentialStore>> stores);

  // Appends a store (asked after those already present). Lookups in flight keep the list they
  // started with; null pointers are ignored.
  void add(std::shared_ptr<CredentialStore> store);
  // Replaces the whole list (e.g. on a configuration reload).
  void set(std::vector<std::shared_ptr<CredentialStore>> stores);
  size_t size() const { return stores_->size(); }

  std::optional<LookupResult> lookup(std::string_view username, std::string_view realm, Callback done) override;
  // The first member that maps the hash to a name.
  std::optional<std::string> username_for_hash(std::span<const uint8_t, 32> hash, std::string_view realm) override;
  // Members in order; a member that answers later is waited for and, if it knows no name, the
  // walk goes on from the next member.
  HashLookup resolve_userhash(std::span<const uint8_t, 32> hash, std::string_view realm, NameCallback done) override;

 private:
  using List = std::vector<std::shared_ptr<CredentialStore>>;
  std::shared_ptr<const List> stores_ = std::make_shared<const List>();
};

}  // namespace ferry::auth
