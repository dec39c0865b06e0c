#include "auth/chained_store.h"

#include <array>

namespace ferry::auth {

namespace {

// One lookup walking the chain. Shared by the callbacks of asynchronous members, so it outlives
// the ChainedStore if need be (the member stores are held by shared_ptr in `stores`).
struct Walk : std::enable_shared_from_this<Walk> {
  std::shared_ptr<const std::vector<std::shared_ptr<CredentialStore>>> stores;
  std::string username;
  std::string realm;
  CredentialStore::Callback done;
  size_t next = 0;
  bool saw_unavailable = false;

  // Asks members from `next` on. Returns the final result when it is known without waiting;
  // nullopt when a member went asynchronous (its callback resumes the walk and calls `done`).
  std::optional<LookupResult> run() {
    while (next < stores->size()) {
      CredentialStore& store = *(*stores)[next++];
      auto self = shared_from_this();
      auto answered_async = std::make_shared<bool>(false);
      std::optional<LookupResult> r = store.lookup(username, realm, [self, answered_async](LookupResult res) {
        if (*answered_async) return;  // a member calling back twice is ignored
        *answered_async = true;
        self->resume(std::move(res));
      });
      if (!r || *answered_async) return std::nullopt;  // resumes (or already resumed) from the callback
      *answered_async = true;                          // the member answered at once; ignore any stray callback
      if (auto final = consider(std::move(*r))) return final;
    }
    return finish();
  }

 private:
  // Found ends the walk; NotFound/Unavailable continue it.
  std::optional<LookupResult> consider(LookupResult r) {
    if (r.status == LookupStatus::Found) return r;
    if (r.status == LookupStatus::Unavailable) saw_unavailable = true;
    return std::nullopt;
  }
  LookupResult finish() const { return saw_unavailable ? LookupResult::unavailable() : LookupResult::not_found(); }

  void resume(LookupResult r) {
    auto final = consider(std::move(r));
    if (!final) final = run();
    if (final) {
      auto cb = std::move(done);
      if (cb) cb(std::move(*final));
    }
  }
};

}  // namespace

ChainedStore::ChainedStore(std::vector<std::shared_ptr<CredentialStore>> stores) { set(std::move(stores)); }

void ChainedStore::add(std::shared_ptr<CredentialStore> store) {
  if (!store) return;
  auto list = std::make_shared<List>(*stores_);
  list->push_back(std::move(store));
  stores_ = std::move(list);
}

void ChainedStore::set(std::vector<std::shared_ptr<CredentialStore>> stores) {
  std::erase_if(stores, [](const auto& s) { return !s; });
  stores_ = std::make_shared<const List>(std::move(stores));
}

std::optional<LookupResult> ChainedStore::lookup(std::string_view username, std::string_view realm, Callback done) {
  auto walk = std::make_shared<Walk>();
  walk->stores = stores_;
  walk->username = std::string(username);
  walk->realm = std::string(realm);
  walk->done = std::move(done);
  return walk->run();
}

namespace {
// Walks `stores` from `from` on; returns the answer when every member asked answered at once.
CredentialStore::HashLookup resolve_from(std::shared_ptr<const std::vector<std::shared_ptr<CredentialStore>>> stores,
                                         size_t from, std::array<uint8_t, 32> hash, std::string realm,
                                         CredentialStore::NameCallback done) {
  for (size_t i = from; i < stores->size(); ++i) {
    auto next = [stores, i, hash, realm, done](std::optional<std::string> name) {
      if (name) {
        done(std::move(name));
        return;
      }
      auto r = resolve_from(stores, i + 1, hash, realm, done);
      if (!r.pending) done(std::move(r.username));
    };
    auto r = (*stores)[i]->resolve_userhash(hash, realm, next);
    if (r.pending || r.username) return r;
  }
  return {};
}
}  // namespace

CredentialStore::HashLookup ChainedStore::resolve_userhash(std::span<const uint8_t, 32> hash, std::string_view realm,
                                                           NameCallback done) {
  std::array<uint8_t, 32> h{};
  std::copy(hash.begin(), hash.end(), h.begin());
  return resolve_from(stores_, 0, h, std::string(realm), std::move(done));
}

std::optional<std::string> ChainedStore::username_for_hash(std::span<const uint8_t, 32> hash, std::string_view realm) {
  auto stores = stores_;
  for (const auto& s : *stores) {
    if (auto name = s->username_for_hash(hash, realm)) return name;
  }
  return std::nullopt;
}

}  // namespace ferry::auth
