// The long-term credential mechanism (RFC 8489 §9.2) for every TURN request: the 401/438
// challenges, the nonce, realm, username/userhash and PASSWORD-ALGORITHM checks (§9.2.4), the key
// lookup (answered now or later by the CredentialStore) and MESSAGE-INTEGRITY(-SHA256).
#include "turn/server_core.h"

#include <algorithm>

#include "stun/attributes.h"
#include "stun/integrity.h"

namespace ferry::turn {

using stun::Bytes;
using stun::Class;
using stun::MessageBuilder;
using stun::MessageView;
using stun::Method;
using stun::TransportAddress;
namespace attr = stun::attr;
namespace code = stun::code;

namespace {
constexpr stun::PasswordAlgorithm kAlgorithms[] = {stun::PasswordAlgorithm::Sha256, stun::PasswordAlgorithm::Md5};
}  // namespace

// ---- authentication (RFC 8489 §9.2.4) ---------------------------------------------------------------

std::string ServerCore::nonce_for(const FiveTuple& t) const {
  uint8_t binding[48];
  const size_t n = t.encode(binding);
  return nonces_.make(Bytes(binding, n), clock_.unix_seconds());
}

void ServerCore::send_challenge(const FiveTuple& to, const MessageView& req, uint16_t c) {
  if (!unauthenticated_answer_allowed(to)) return;
  auto b = start_response(req, Class::Error);
  b.add_error_code(c);
  b.add_text(attr::Realm, config_.realm);
  b.add_text(attr::Nonce, nonce_for(to));
  b.add_password_algorithms(kAlgorithms);
  // RFC 7635 §4.1: offer third-party authorization, naming this server for the AS.
  if (oauth_enabled()) b.add_text(attr::ThirdPartyAuthorization, config_.oauth_server_name);
  finish_and_send(to, req, b, nullptr);
  stats_.errors_sent[c].add();
}

void ServerCore::authenticate(const FiveTuple& from, const MessageView& msg) {
  const bool has_mi = msg.message_integrity().has_value();
  const bool has_mi256 = msg.message_integrity_sha256().has_value();
  if (!has_mi && !has_mi256) {
    stats_.auth_failed(AuthFailure::Missing);
    send_challenge(from, msg, code::Unauthenticated);
    return;
  }
  auto username_attr = msg.find(attr::Username);
  auto userhash_attr = msg.find(attr::Userhash);
  auto realm_attr = msg.find(attr::Realm);
  auto nonce_attr = msg.find(attr::Nonce);
  if ((!username_attr && !userhash_attr) || !realm_attr || !nonce_attr) {
    send_error(from, msg, code::BadRequest, nullptr, "Missing USERNAME, REALM or NONCE");
    return;
  }
  auto nonce = stun::decode_text(nonce_attr->value, stun::kMaxNonceBytes);
  auto realm = stun::decode_text(realm_attr->value, stun::kMaxRealmBytes);
  if (!nonce || !realm) {
    send_error(from, msg, code::BadRequest, nullptr);
    return;
  }
  uint8_t binding[48];
  const size_t bn = from.encode(binding);
  if (nonces_.check(*nonce, Bytes(binding, bn), clock_.unix_seconds()) != auth::NonceCheck::Valid &&
      !connection_bind_nonce_valid(msg, *nonce)) {
    stats_.auth_failed(AuthFailure::BadNonce);
    send_challenge(from, msg, code::StaleNonce);
    return;
  }
  // §9.2.4 bid-down protection: our nonces announce PASSWORD-ALGORITHMS, so a client that names an
  // algorithm must echo the list we sent, unchanged; a client that sends neither uses MD5.
  auto algs_attr = msg.find(attr::PasswordAlgorithms);
  auto alg_attr = msg.find(attr::PasswordAlgorithm);
  if (algs_attr || alg_attr) {
    if (!algs_attr || !alg_attr) {
      send_error(from, msg, code::BadRequest, nullptr, "PASSWORD-ALGORITHM and PASSWORD-ALGORITHMS go together");
      return;
    }
    // The list we send: SHA-256 then MD5, each with empty parameters.
    static constexpr uint8_t kExpected[] = {0x00, 0x02, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00};
    if (!std::equal(algs_attr->value.begin(), algs_attr->value.end(), std::begin(kExpected), std::end(kExpected))) {
      send_error(from, msg, code::BadRequest, nullptr, "PASSWORD-ALGORITHMS does not match");
      return;
    }
    auto alg = stun::decode_password_algorithm(alg_attr->value);
    if (!alg || (alg->algorithm != static_cast<uint16_t>(stun::PasswordAlgorithm::Md5) &&
                 alg->algorithm != static_cast<uint16_t>(stun::PasswordAlgorithm::Sha256))) {
      send_error(from, msg, code::BadRequest, nullptr, "Unsupported PASSWORD-ALGORITHM");
      return;
    }
  }
  if (*realm != config_.realm) {
    stats_.auth_failed(AuthFailure::UnknownUser);
    send_challenge(from, msg, code::Unauthenticated);
    return;
  }
  std::string username;
  if (username_attr) {
    auto u = stun::decode_text(username_attr->value, stun::kMaxUsernameBytes);
    if (!u) {
      send_error(from, msg, code::BadRequest, nullptr);
      return;
    }
    username.assign(u->begin(), u->end());
    // RFC 7635 §5: with ACCESS-TOKEN, USERNAME is the kid of the AS-RS key that sealed it.
    if (oauth_enabled()) {
      if (msg.has(attr::AccessToken)) {
        authenticate_token(from, msg, username);
        return;
      }
      if (authenticate_by_allocation(from, msg, username)) return;
    }
  } else {
    // USERHASH (§14.4): the store names the user now, or later (PostgreSQL), as for the key lookup.
    auto h = stun::decode_userhash(userhash_attr->value);
    auth::CredentialStore::HashLookup found;
    auto pending = std::make_shared<std::vector<uint8_t>>();
    if (h) {
      auto alive = alive_.watch();
      found =
          credentials_.resolve_userhash(*h, config_.realm, [this, alive, pending, from](std::optional<std::string> n) {
            if (alive.expired() || pending->empty()) return;
            auto again = MessageView::parse(Bytes(pending->data(), pending->size()));
            if (!again) return;
            if (n) {
              lookup_user(from, *again, *n);
            } else {
              stats_.auth_failed(AuthFailure::UnknownUser);
              send_challenge(from, *again, code::Unauthenticated);
            }
          });
    }
    if (found.pending) {
      pending->assign(msg.bytes().begin(), msg.bytes().end());
      return;
    }
    if (!found.username) {
      stats_.auth_failed(AuthFailure::UnknownUser);
      send_challenge(from, msg, code::Unauthenticated);
      return;
    }
    username = std::move(*found.username);
  }
  lookup_user(from, msg, username);
}

void ServerCore::lookup_user(const FiveTuple& from, const MessageView& msg, const std::string& username) {
  // The store may answer now (static users, cache) or later (database). Only in the latter case is
  // the request copied, to be parsed again when the answer comes.
  auto pending = std::make_shared<std::vector<uint8_t>>();
  auto alive = alive_.watch();
  auto immediate =
      credentials_.lookup(username, config_.realm, [this, alive, pending, from, username](auth::LookupResult r) {
        if (alive.expired() || pending->empty()) return;
        auto again = MessageView::parse(Bytes(pending->data(), pending->size()));
        if (again) continue_authenticated(from, *again, r, username);
      });
  if (immediate) {
    continue_authenticated(from, msg, *immediate, username);
  } else {
    pending->assign(msg.bytes().begin(), msg.bytes().end());
  }
}

void ServerCore::continue_authenticated(const FiveTuple& from, const MessageView& msg, const auth::LookupResult& r,
                                        const std::string& username) {
  if (r.status == auth::LookupStatus::Unavailable) {
    stats_.auth_failed(AuthFailure::StoreUnavailable);
    send_error(from, msg, code::ServerError, nullptr, "Credential store unavailable");
    return;
  }
  if (r.status != auth::LookupStatus::Found || !r.credential) {
    stats_.auth_failed(AuthFailure::UnknownUser);
    send_challenge(from, msg, code::Unauthenticated);
    return;
  }
  const auth::Credential& cred = *r.credential;
  if (cred.expires_unix != 0 && cred.expires_unix <= clock_.unix_seconds()) {
    stats_.auth_failed(AuthFailure::UnknownUser);
    send_challenge(from, msg, code::Unauthenticated);
    return;
  }
  // Which key: PASSWORD-ALGORITHM SHA-256 selects the SHA-256 key, otherwise MD5 (§9.2.2).
  bool sha256_key = false;
  if (auto alg_attr = msg.find(attr::PasswordAlgorithm)) {
    auto alg = stun::decode_password_algorithm(alg_attr->value);
    sha256_key = alg && alg->algorithm == static_cast<uint16_t>(stun::PasswordAlgorithm::Sha256);
  }
  // MESSAGE-INTEGRITY-SHA256 is checked when present; otherwise MESSAGE-INTEGRITY (§9.2.4).
  const bool use_sha256 = msg.message_integrity_sha256().has_value();
  auto verifies = [&](const stun::Key& k) {
    return use_sha256 ? stun::verify_message_integrity_sha256(msg, k.view())
                      : stun::verify_message_integrity(msg, k.view());
  };
  // The primary key, then any alternates (shared secrets being rotated), in order.
  const stun::Key* key = nullptr;
  auto pick = [&](const stun::Key& md5, const std::optional<stun::Key>& sha) {
    const stun::Key* k = sha256_key ? (sha ? &*sha : nullptr) : &md5;
    if (k != nullptr && verifies(*k)) key = k;
    return key != nullptr;
  };
  if (!pick(cred.key_md5, cred.key_sha256)) {
    for (const auto& alt : cred.alternates) {
      if (pick(alt.key_md5, alt.key_sha256)) break;
    }
  }
  if (key == nullptr) {
    stats_.auth_failed(AuthFailure::BadIntegrity);
    send_challenge(from, msg, code::Unauthenticated);
    return;
  }
  Auth a{username, *key, use_sha256, cred.quota, cred.expires_unix};
  dispatch(from, msg, a);
}

// ---- third-party authorization (RFC 7635) ----------------------------------------------------------

void ServerCore::authenticate_token(const FiveTuple& from, const MessageView& msg, const std::string& kid) {
  auto pending = std::make_shared<std::vector<uint8_t>>();
  auto alive = alive_.watch();
  auto immediate = oauth_keys_->lookup(kid, [this, alive, pending, from, kid](auth::OAuthKeyResult r) {
    if (alive.expired() || pending->empty()) return;
    auto again = MessageView::parse(Bytes(pending->data(), pending->size()));
    if (again) continue_token(from, *again, r, kid);
  });
  if (immediate) {
    continue_token(from, msg, *immediate, kid);
  } else {
    pending->assign(msg.bytes().begin(), msg.bytes().end());
  }
}

void ServerCore::continue_token(const FiveTuple& from, const MessageView& msg, const auth::OAuthKeyResult& r,
                                const std::string& kid) {
  if (r.status == auth::LookupStatus::Unavailable) {
    stats_.auth_failed(AuthFailure::StoreUnavailable);
    send_error(from, msg, code::ServerError, nullptr, "Key store unavailable");
    return;
  }
  // Unknown kid, a token that does not open or is out of its time: 401 with a fresh challenge,
  // so the client can fetch a new token (RFC 7635 §5).
  auto token_attr = msg.find(attr::AccessToken);
  std::optional<auth::AccessToken> token;
  if (r.status == auth::LookupStatus::Found && r.key && token_attr) {
    token = auth::open_access_token(r.key->key, config_.oauth_server_name, token_attr->value);
    if (token && auth::check_token_time(*token, clock_.unix_seconds(), config_.oauth_clock_skew, r.key->lifetime_max))
      token.reset();
  }
  if (!token) {
    stats_.auth_failed(AuthFailure::BadToken);
    send_challenge(from, msg, code::Unauthenticated);
    return;
  }
  // §5: the session key (mac_key) is the HMAC key, used as is.
  const bool use_sha256 = msg.message_integrity_sha256().has_value();
  const bool ok = use_sha256 ? stun::verify_message_integrity_sha256(msg, token->mac_key.view())
                             : stun::verify_message_integrity(msg, token->mac_key.view());
  if (!ok) {
    stats_.auth_failed(AuthFailure::BadIntegrity);
    send_challenge(from, msg, code::Unauthenticated);
    return;
  }
  Auth a{kid, token->mac_key, use_sha256, {}, token->expires_unix(), true};
  dispatch(from, msg, a);
}

// A request without ACCESS-TOKEN on an allocation made with one: signed with that token's mac_key
// (RFC 7635 §5 ties the session key to the allocation), valid until the token's expiry.
bool ServerCore::authenticate_by_allocation(const FiveTuple& from, const MessageView& msg, const std::string& kid) {
  const Allocation* a = find_allocation(from);
  if (a == nullptr || !a->access_token || a->username != kid) return false;
  const bool use_sha256 = msg.message_integrity_sha256().has_value();
  const bool ok = use_sha256 ? stun::verify_message_integrity_sha256(msg, a->key.view())
                             : stun::verify_message_integrity(msg, a->key.view());
  const bool live = !a->credential_expires || clock_.now() < *a->credential_expires;
  if (!ok || !live) {
    stats_.auth_failed(ok ? AuthFailure::BadToken : AuthFailure::BadIntegrity);
    send_challenge(from, msg, code::Unauthenticated);
    return true;
  }
  uint64_t expires = 0;
  if (a->credential_expires) {
    const auto left = std::chrono::duration_cast<std::chrono::seconds>(*a->credential_expires - clock_.now());
    expires = clock_.unix_seconds() + static_cast<uint64_t>(left.count());
  }
  Auth auth{a->username, a->key, use_sha256, {}, expires, true};
  dispatch(from, msg, auth);
  return true;
}

}  // namespace ferry::turn
