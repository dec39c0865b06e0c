#include "auth/shared_secret.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <charconv>

#include "stun/integrity.h"

namespace ferry::auth {

std::string base64_encode(std::string_view bytes) {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  size_t i = 0;
  auto byte = [&](size_t k) { return static_cast<uint32_t>(static_cast<uint8_t>(bytes[k])); };
  for (; i + 3 <= bytes.size(); i += 3) {
    uint32_t v = byte(i) << 16 | byte(i + 1) << 8 | byte(i + 2);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += kAlphabet[v & 63];
  }
  size_t rest = bytes.size() - i;
  if (rest == 1) {
    uint32_t v = byte(i) << 16;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += "==";
  } else if (rest == 2) {
    uint32_t v = byte(i) << 16 | byte(i + 1) << 8;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += '=';
  }
  return out;
}

std::string rest_password(std::string_view secret, std::string_view username) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha1(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(username.data()), username.size(), mac, &len);
  return base64_encode(std::string_view(reinterpret_cast<const char*>(mac), len));
}

std::optional<RestUsername> parse_rest_username(std::string_view username) {
  size_t colon = username.find(':');
  std::string_view ts = username.substr(0, colon);
  if (ts.empty() || ts.size() > 19) return std::nullopt;
  for (char c : ts) {
    if (c < '0' || c > '9') return std::nullopt;
  }
  RestUsername r;
  auto [ptr, ec] = std::from_chars(ts.data(), ts.data() + ts.size(), r.expires_unix);
  if (ec != std::errc() || ptr != ts.data() + ts.size()) return std::nullopt;
  if (colon != std::string_view::npos) {
    r.user_id = std::string(username.substr(colon + 1));
    if (r.user_id.empty()) return std::nullopt;
  }
  return r;
}

MintedCredential mint(std::string_view secret, std::string_view user, uint64_t ttl_seconds, uint64_t now_unix) {
  MintedCredential m;
  m.expires_unix = now_unix + ttl_seconds;
  m.ttl_seconds = ttl_seconds;
  m.username = std::to_string(m.expires_unix);
  if (!user.empty()) {
    m.username += ':';
    m.username += user;
  }
  m.password = rest_password(secret, m.username);
  return m;
}

SharedSecretStore::SharedSecretStore(std::string realm, const Clock& clock, std::vector<std::string> secrets)
    : realm_(std::move(realm)), clock_(clock) {
  set_secrets(std::move(secrets));
}

void SharedSecretStore::set_secrets(std::vector<std::string> secrets) {
  std::erase_if(secrets, [](const std::string& s) { return s.empty(); });
  secrets_ = std::make_shared<const std::vector<std::string>>(std::move(secrets));
}

std::optional<LookupResult> SharedSecretStore::lookup(std::string_view username, std::string_view realm, Callback) {
  if (realm != realm_) return LookupResult::not_found();
  auto secrets = secrets_;  // a snapshot: set_secrets() during this call cannot pull it away
  if (secrets->empty()) return LookupResult::not_found();
  auto parsed = parse_rest_username(username);
  if (!parsed) return LookupResult::not_found();
  uint64_t now = clock_.unix_seconds();
  // Valid while now < expiry: a credential minted with ttl T works for T seconds.
  if (parsed->expires_unix <= now) return LookupResult::not_found();
  if (max_ttl_ != 0 && parsed->expires_unix - now > max_ttl_) return LookupResult::not_found();

  Credential c;
  c.username = std::string(username);
  c.expires_unix = parsed->expires_unix;
  for (size_t i = 0; i < secrets->size(); ++i) {
    std::string password = rest_password((*secrets)[i], username);
    stun::Key md5 = stun::long_term_key_md5(username, realm_, password);
    stun::Key sha = stun::long_term_key_sha256(username, realm_, password);
    if (i == 0) {
      c.key_md5 = md5;
      c.key_sha256 = sha;
    } else {
      c.alternates.push_back({md5, sha});
    }
    // Wipe the derived password; it is as good as the key for this username.
    std::fill(password.begin(), password.end(), '\0');
  }
  return LookupResult::found(std::move(c));
}

}  // namespace ferry::auth
