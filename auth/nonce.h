// Stateless nonces (RFC 8489 §9.2): "obMatJos2" + security-feature bits, then an expiry and an HMAC
// over the client's 5-tuple under a server key. Nothing is stored per client until a request
// authenticates, so a flood from spoofed sources costs no memory; a nonce seen from another
// 5-tuple or past its expiry fails the check and the client gets 438 with a fresh one.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "stun/bytes.h"

namespace ferry::auth {

inline constexpr std::string_view kNonceCookie = "obMatJos2";

enum class NonceCheck { Valid, Stale, Invalid };

class NonceCodec {
 public:
  // `binding` passed to make/check is an opaque byte string naming the 5-tuple.
  NonceCodec(std::array<uint8_t, 32> key, uint32_t lifetime_seconds, bool username_anonymity);

  std::string make(stun::Bytes binding, uint64_t now_unix) const;
  NonceCheck check(std::string_view nonce, stun::Bytes binding, uint64_t now_unix) const;
  // Whether a nonce we issued announced PASSWORD-ALGORITHMS support (bit 0 of the feature set),
  // which arms the bid-down protection of RFC 8489 §9.2.4.
  static bool announces_password_algorithms(std::string_view nonce);
  uint32_t lifetime_seconds() const { return lifetime_; }

 private:
  std::string mac_hex(stun::Bytes binding, uint64_t expiry) const;
  std::array<uint8_t, 32> key_;
  uint32_t lifetime_;
  std::string features_;  // 4 base64 characters
};

// 32 random bytes from the OS for the nonce key (a fresh key per process start is fine:
// clients just get one 438 after a restart).
std::array<uint8_t, 32> random_key();

}  // namespace ferry::auth
