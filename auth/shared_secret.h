// TURN REST API credentials ("A REST API For Access To TURN Services", draft-uberti-behave-turn-rest):
// a web application that knows a secret shared with the TURN server hands each browser
//   username = "<expiry-unix-seconds>:<user-id>"   (coturn also accepts a bare "<expiry>")
//   password = base64(HMAC-SHA1(secret, username))
// and the server recomputes the password from the username, so nothing is stored per user.
// Several secrets may be active at once (rotation): the first yields the credential's keys, the
// others its `alternates`. Usernames whose expiry has passed, or that are malformed, are refused.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "auth/credential_store.h"
#include "base/clock.h"

namespace ferry::auth {

// Standard base64 (RFC 4648 §4) with padding.
std::string base64_encode(std::string_view bytes);

// base64(HMAC-SHA1(secret, username)): the password a TURN client presents for `username`.
std::string rest_password(std::string_view secret, std::string_view username);

// The parts of a TURN REST username. user_id is empty for the bare "<expiry>" form.
struct RestUsername {
  uint64_t expires_unix = 0;
  std::string user_id;
};
// "<digits>" or "<digits>:<user-id>" (the user id is everything after the first ':' and must not be
// empty). Rejects signs, spaces, non-digits, more than 19 digits, and anything overflowing 64 bits.
std::optional<RestUsername> parse_rest_username(std::string_view username);

struct MintedCredential {
  std::string username;  // "<expiry>:<user>" (or "<expiry>" when user is empty)
  std::string password;
  uint64_t expires_unix = 0;
  uint64_t ttl_seconds = 0;
};
// What ferryctl and the ICE-servers endpoint hand out: a credential valid for `ttl_seconds` from
// `now_unix`. `user` must not contain ':' only by convention; it is used verbatim.
MintedCredential mint(std::string_view secret, std::string_view user, uint64_t ttl_seconds, uint64_t now_unix);

class SharedSecretStore final : public CredentialStore {
 public:
  // `clock` must outlive the store; its unix_seconds() decides expiry.
  SharedSecretStore(std::string realm, const Clock& clock, std::vector<std::string> secrets = {});

  // Replaces the active secrets (configuration reload on SIGHUP, or a DB change). The first one is
  // the primary; order matters only for which key is tried first. Empty strings are dropped.
  // Lookups already answered are unaffected; the next lookup sees the new list.
  void set_secrets(std::vector<std::string> secrets);
  size_t secret_count() const { return secrets_->size(); }

  // Refuse usernames whose expiry lies further ahead than this many seconds (0: no limit). Guards
  // against a leaked secret being used to mint a credential that never expires.
  void set_max_ttl(uint64_t seconds) { max_ttl_ = seconds; }

  // Always answers at once: Found, or NotFound for wrong realm / malformed / expired usernames and
  // when no secret is configured.
  std::optional<LookupResult> lookup(std::string_view username, std::string_view realm, Callback done) override;

 private:
  std::string realm_;
  const Clock& clock_;
  std::shared_ptr<const std::vector<std::string>> secrets_;
  uint64_t max_ttl_ = 0;
};

}  // namespace ferry::auth
