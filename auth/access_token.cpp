#include "auth/access_token.h"

#include <openssl/evp.h>

#include <memory>

#include "stun/attributes.h"

namespace ferry::auth {

namespace {

using CipherCtx = std::unique_ptr<EVP_CIPHER_CTX, decltype(&EVP_CIPHER_CTX_free)>;

// The block's fixed part besides mac_key: key_length (2), timestamp (8), lifetime (4).
constexpr size_t kBlockFixed = 2 + 8 + 4;

uint64_t load_be(const uint8_t* p, size_t n) {
  uint64_t v = 0;
  for (size_t i = 0; i < n; ++i) v = v << 8 | p[i];
  return v;
}

void store_be(std::vector<uint8_t>& out, uint64_t v, size_t n) {
  for (size_t i = n; i-- > 0;) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
}

}  // namespace

std::string_view to_string(TokenError e) {
  switch (e) {
    case TokenError::Malformed: return "malformed token";
    case TokenError::BadTag: return "token does not authenticate";
    case TokenError::Expired: return "token expired";
    case TokenError::NotYetValid: return "token not yet valid";
    case TokenError::TooLong: return "token lifetime beyond the key's limit";
  }
  return "token error";
}

std::optional<AccessToken> open_access_token(const AsRsKey& key, std::string_view server_name, stun::Bytes value,
                                             TokenError* error) {
  auto fail = [&](TokenError e) -> std::optional<AccessToken> {
    if (error != nullptr) *error = e;
    return std::nullopt;
  };
  auto parts = stun::decode_access_token(value);
  if (!parts || parts->nonce.size() > 64 || parts->sealed.size() < kGcmTagBytes + kBlockFixed)
    return fail(TokenError::Malformed);
  const stun::Bytes cipher = parts->sealed.first(parts->sealed.size() - kGcmTagBytes);
  const stun::Bytes tag = parts->sealed.last(kGcmTagBytes);

  CipherCtx ctx(EVP_CIPHER_CTX_new(), &EVP_CIPHER_CTX_free);
  int len = 0;
  std::vector<uint8_t> plain(cipher.size() + 16);
  // RFC 7635 §6.2 / RFC 5116 AEAD_AES_256_GCM: the nonce is the IV, the server name the AAD.
  if (!ctx || EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, nullptr, nullptr) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_IVLEN, static_cast<int>(parts->nonce.size()), nullptr) != 1 ||
      EVP_DecryptInit_ex(ctx.get(), nullptr, nullptr, key.data(), parts->nonce.data()) != 1 ||
      EVP_DecryptUpdate(ctx.get(), nullptr, &len, reinterpret_cast<const unsigned char*>(server_name.data()),
                        static_cast<int>(server_name.size())) != 1 ||
      EVP_DecryptUpdate(ctx.get(), plain.data(), &len, cipher.data(), static_cast<int>(cipher.size())) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, static_cast<int>(kGcmTagBytes),
                          const_cast<uint8_t*>(tag.data())) != 1)
    return fail(TokenError::Malformed);
  int tail = 0;
  if (EVP_DecryptFinal_ex(ctx.get(), plain.data() + len, &tail) != 1) return fail(TokenError::BadTag);
  const size_t n = static_cast<size_t>(len + tail);

  // An authentic block of the wrong shape is still refused: the AS made a mistake.
  const size_t key_len = load_be(plain.data(), 2);
  if (n != kBlockFixed + key_len || key_len == 0 || key_len > sizeof(stun::Key::bytes))
    return fail(TokenError::Malformed);
  AccessToken t;
  t.mac_key = stun::Key::from(stun::Bytes(plain.data() + 2, key_len));
  t.timestamp = load_be(plain.data() + 2 + key_len, 8);
  t.lifetime = static_cast<uint32_t>(load_be(plain.data() + 10 + key_len, 4));
  std::fill(plain.begin(), plain.end(), 0);
  return t;
}

std::vector<uint8_t> seal_access_token(const AsRsKey& key, std::string_view server_name,
                                       std::span<const uint8_t, kGcmNonceBytes> nonce, const AccessToken& token) {
  std::vector<uint8_t> block;
  store_be(block, token.mac_key.size, 2);
  block.insert(block.end(), token.mac_key.bytes.begin(), token.mac_key.bytes.begin() + token.mac_key.size);
  store_be(block, token.timestamp, 8);
  store_be(block, token.lifetime, 4);

  std::vector<uint8_t> sealed(block.size() + kGcmTagBytes);
  CipherCtx ctx(EVP_CIPHER_CTX_new(), &EVP_CIPHER_CTX_free);
  int len = 0, tail = 0;
  if (!ctx || EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, nullptr, nullptr) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_IVLEN, static_cast<int>(nonce.size()), nullptr) != 1 ||
      EVP_EncryptInit_ex(ctx.get(), nullptr, nullptr, key.data(), nonce.data()) != 1 ||
      EVP_EncryptUpdate(ctx.get(), nullptr, &len, reinterpret_cast<const unsigned char*>(server_name.data()),
                        static_cast<int>(server_name.size())) != 1 ||
      EVP_EncryptUpdate(ctx.get(), sealed.data(), &len, block.data(), static_cast<int>(block.size())) != 1 ||
      EVP_EncryptFinal_ex(ctx.get(), sealed.data() + len, &tail) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, static_cast<int>(kGcmTagBytes),
                          sealed.data() + len + tail) != 1)
    return {};
  std::fill(block.begin(), block.end(), 0);
  std::vector<uint8_t> out(2 + nonce.size() + sealed.size());
  stun::encode_access_token(stun::Bytes(nonce.data(), nonce.size()), stun::Bytes(sealed), out.data());
  return out;
}

std::optional<TokenError> check_token_time(const AccessToken& t, uint64_t now_unix, uint32_t skew_seconds,
                                           uint32_t lifetime_max) {
  if (lifetime_max != 0 && t.lifetime > lifetime_max) return TokenError::TooLong;
  if (t.issued_unix() > now_unix + skew_seconds) return TokenError::NotYetValid;
  if (t.expires_unix() + skew_seconds <= now_unix) return TokenError::Expired;
  return std::nullopt;
}

std::optional<std::vector<uint8_t>> base64_decode(std::string_view text) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  while (!text.empty() && text.back() == '=') text.remove_suffix(1);
  if (text.size() % 4 == 1) return std::nullopt;
  std::vector<uint8_t> out;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : text) {
    const int v = value(c);
    if (v < 0) return std::nullopt;
    acc = acc << 6 | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<uint8_t>(acc >> bits));
    }
  }
  return out;
}

}  // namespace ferry::auth
