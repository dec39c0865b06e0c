// The one asynchronous interface every credential mechanism implements (static users, shared-secret
// tokens, PostgreSQL). The TURN core asks it for a user's long-term keys; it never sees passwords.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "stun/integrity.h"

namespace ferry::auth {

struct Quota {
  uint32_t max_allocations = 0;          // 0: no per-user limit beyond the server's
  uint64_t bandwidth_bytes_per_sec = 0;  // 0: the server's default
};

// What the server may know about a user: the RFC 8489 §9.2.2 keys, never the password.
struct Credential {
  std::string username;
  stun::Key key_md5;                    // MD5(username:realm:password)
  std::optional<stun::Key> key_sha256;  // SHA-256(username:realm:password), when known
  // Further keys that are equally valid: with shared-secret credentials each active secret (during a
  // rotation there are several) yields its own password and so its own key. Tried in order.
  struct Alternate {
    stun::Key key_md5;
    std::optional<stun::Key> key_sha256;
  };
  std::vector<Alternate> alternates;
  Quota quota;
  // A shared-secret username carries its own expiry (unix seconds); 0 means none.
  uint64_t expires_unix = 0;
};

enum class LookupStatus {
  Found,
  NotFound,     // unknown, disabled or expired: 401
  Unavailable,  // the backing store cannot answer now (database down, not cached): 500
};

struct LookupResult {
  LookupStatus status = LookupStatus::NotFound;
  std::optional<Credential> credential;  // set when Found

  static LookupResult found(Credential c) { return {LookupStatus::Found, std::move(c)}; }
  static LookupResult not_found() { return {LookupStatus::NotFound, std::nullopt}; }
  static LookupResult unavailable() { return {LookupStatus::Unavailable, std::nullopt}; }
};

class CredentialStore {
 public:
  using Callback = std::function<void(LookupResult)>;
  virtual ~CredentialStore() = default;

  // Answers at once when it can (static users, a warm cache): returns the result and does not call
  // `done`. Otherwise returns nullopt and calls `done` later on the same event loop.
  virtual std::optional<LookupResult> lookup(std::string_view username, std::string_view realm, Callback done) = 0;

  // USERHASH (RFC 8489 §14.4): the store maps SHA-256(username:realm) back to a username when it can.
  virtual std::optional<std::string> username_for_hash(std::span<const uint8_t, 32> /*hash*/,
                                                       std::string_view /*realm*/) {
    return std::nullopt;
  }

  // USERHASH for stores that may have to ask elsewhere (PostgreSQL): answers now (pending false,
  // `username` set or not) or, pending, calls `done` later on the same event loop with the name or
  // nullopt. The default is username_for_hash, answered now.
  struct HashLookup {
    bool pending = false;
    std::optional<std::string> username;
  };
  using NameCallback = std::function<void(std::optional<std::string>)>;
  virtual HashLookup resolve_userhash(std::span<const uint8_t, 32> hash, std::string_view realm,
                                      NameCallback /*done*/) {
    return {false, username_for_hash(hash, realm)};
  }
};

}  // namespace ferry::auth
