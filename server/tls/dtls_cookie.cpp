#include "server/tls/dtls_cookie.h"

#include <cstring>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/ssl.h>

#include "auth/nonce.h"

namespace ferry::server {

namespace {

constexpr size_t kStampSize = 4;
constexpr size_t kMacSize = DtlsCookieKey::kSize - kStampSize;

void put_u32(uint8_t* p, uint32_t v) {
  p[0] = static_cast<uint8_t>(v >> 24);
  p[1] = static_cast<uint8_t>(v >> 16);
  p[2] = static_cast<uint8_t>(v >> 8);
  p[3] = static_cast<uint8_t>(v);
}

const DtlsCookieSubject* subject_of(SSL* ssl) { return static_cast<const DtlsCookieSubject*>(SSL_get_app_data(ssl)); }

int generate_cookie(SSL* ssl, unsigned char* cookie, unsigned int* len) {
  const DtlsCookieSubject* s = subject_of(ssl);
  if (s == nullptr || s->key == nullptr) return 0;
  uint8_t out[DtlsCookieKey::kSize];
  s->key->make(s->client, out);
  std::memcpy(cookie, out, sizeof out);  // OpenSSL's buffer holds DTLS1_COOKIE_LENGTH (255) bytes
  *len = sizeof out;
  return 1;
}

int verify_cookie(SSL* ssl, const unsigned char* cookie, unsigned int len) {
  const DtlsCookieSubject* s = subject_of(ssl);
  return s != nullptr && s->key != nullptr && s->key->verify(s->client, cookie, len) ? 1 : 0;
}

}  // namespace

DtlsCookieKey::DtlsCookieKey(const Clock& clock) : clock_(clock), key_(auth::random_key()) {}

uint32_t DtlsCookieKey::now() const { return static_cast<uint32_t>(monotonic_ms(clock_) / 1000); }

void DtlsCookieKey::make_at(const stun::TransportAddress& client, uint32_t issued_at, uint8_t (&out)[kSize]) const {
  // issued_at || family || port || ip: everything that names the client.
  uint8_t input[kStampSize + 1 + 2 + 16];
  put_u32(input, issued_at);
  input[4] = static_cast<uint8_t>(client.family);
  input[5] = static_cast<uint8_t>(client.port >> 8);
  input[6] = static_cast<uint8_t>(client.port);
  std::memcpy(input + 7, client.ip.data(), 16);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned mac_len = 0;
  HMAC(EVP_sha256(), key_.data(), static_cast<int>(key_.size()), input, sizeof input, mac, &mac_len);
  put_u32(out, issued_at);
  std::memcpy(out + kStampSize, mac, kMacSize);
}

bool DtlsCookieKey::verify(const stun::TransportAddress& client, const uint8_t* cookie, size_t len) const {
  if (len != kSize) return false;
  const uint32_t issued_at =
      (uint32_t{cookie[0]} << 24) | (uint32_t{cookie[1]} << 16) | (uint32_t{cookie[2]} << 8) | cookie[3];
  const uint32_t t = now();
  if (issued_at > t || t - issued_at > static_cast<uint32_t>(kLifetime.count())) return false;
  uint8_t expected[kSize];
  make_at(client, issued_at, expected);
  return CRYPTO_memcmp(expected, cookie, kSize) == 0;
}

void install_dtls_cookie_callbacks(SSL_CTX* ctx) {
  SSL_CTX_set_cookie_generate_cb(ctx, &generate_cookie);
  SSL_CTX_set_cookie_verify_cb(ctx, &verify_cookie);
}

}  // namespace ferry::server
