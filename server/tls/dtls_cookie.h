// Stateless DTLS cookies (RFC 6347 §4.2.1): a new client's first ClientHello is answered with a
// HelloVerifyRequest carrying a cookie that only the client at that address can echo back, so a
// spoofed source costs the server one HMAC and one datagram, never a session.
//
// cookie = issued_at (4 bytes, seconds of the steady clock) || HMAC-SHA256(key, issued_at ||
// client address and port)[0..16). Valid for kCookieLifetime.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>

#include "base/clock.h"
#include "stun/transport_address.h"

typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_st SSL;

namespace ferry::server {

class DtlsCookieKey {
 public:
  static constexpr size_t kSize = 20;
  static constexpr std::chrono::seconds kLifetime{60};

  // A random key. `clock` stamps and checks the cookies; it must outlive the key.
  explicit DtlsCookieKey(const Clock& clock = steady_clock());

  void make(const stun::TransportAddress& client, uint8_t (&out)[kSize]) const { make_at(client, now(), out); }
  bool verify(const stun::TransportAddress& client, const uint8_t* cookie, size_t len) const;

  // For tests: a cookie issued at a given time.
  void make_at(const stun::TransportAddress& client, uint32_t issued_at, uint8_t (&out)[kSize]) const;
  uint32_t now() const;  // seconds of the clock, as cookies carry them

 private:
  const Clock& clock_;
  std::array<uint8_t, 32> key_{};
};

// What the cookie callbacks of a DTLS SSL_CTX read through SSL_get_app_data(ssl): the key and the
// address of the client whose ClientHello is being handled.
struct DtlsCookieSubject {
  const DtlsCookieKey* key = nullptr;
  stun::TransportAddress client;
};

// Sets the generate/verify callbacks on a DTLS server context. Every SSL made from it must have a
// DtlsCookieSubject as its app data while a ClientHello is processed.
void install_dtls_cookie_callbacks(SSL_CTX* ctx);

}  // namespace ferry::server
