// RFC 7635 self-contained access tokens (§6.2, Appendix B). An authorization server (AS) and this
// TURN server share an AS-RS key per key id (kid); the AS hands the client a token sealed with it:
//   token = nonce_length (16) | nonce | AES-256-GCM(encrypted_block) | tag (16 bytes)
//   encrypted_block = key_length (16) | mac_key | timestamp (64) | lifetime (32)
// with the STUN server name as the GCM associated data, so a token is good for one server only.
// The client puts the kid in USERNAME and signs its requests with mac_key (the session key is the
// HMAC key, §5). The timestamp is 48 bits of unix seconds and 16 bits of 1/64000 s.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "stun/bytes.h"
#include "stun/integrity.h"

namespace ferry::auth {

inline constexpr size_t kAsRsKeyBytes = 32;  // A256GCM
inline constexpr size_t kGcmNonceBytes = 12;
inline constexpr size_t kGcmTagBytes = 16;
using AsRsKey = std::array<uint8_t, kAsRsKeyBytes>;

// What a token carries once opened.
struct AccessToken {
  stun::Key mac_key;       // the session key: HMAC key of MESSAGE-INTEGRITY(-SHA256)
  uint64_t timestamp = 0;  // raw: seconds << 16 | 1/64000 fractions
  uint32_t lifetime = 0;   // seconds from the timestamp
  uint64_t issued_unix() const { return timestamp >> 16; }
  uint64_t expires_unix() const { return issued_unix() + lifetime; }
};

enum class TokenError {
  Malformed,  // not nonce_length | nonce | block | tag, or a block of the wrong shape
  BadTag,     // not sealed with this key for this server name (or altered)
  Expired,    // timestamp + lifetime has passed (beyond the allowed skew)
  NotYetValid,
  TooLong,  // a lifetime beyond what the key allows
};
std::string_view to_string(TokenError e);

// Opens an ACCESS-TOKEN value with `key`, the AAD being `server_name`. No time check.
std::optional<AccessToken> open_access_token(const AsRsKey& key, std::string_view server_name, stun::Bytes value,
                                             TokenError* error = nullptr);

// Seals a token (what an AS does; used by tests and tools). `nonce` is 12 bytes.
std::vector<uint8_t> seal_access_token(const AsRsKey& key, std::string_view server_name,
                                       std::span<const uint8_t, kGcmNonceBytes> nonce, const AccessToken& token);

// RFC 7635 §5: a token is accepted while issued <= now + skew and now < expiry + skew; a key may
// cap the lifetime it vouches for (`lifetime_max`, 0: no cap).
std::optional<TokenError> check_token_time(const AccessToken& t, uint64_t now_unix, uint32_t skew_seconds,
                                           uint32_t lifetime_max);

// Standard base64 (RFC 4648 §4) back to bytes; nullopt on anything else. Padding optional.
std::optional<std::vector<uint8_t>> base64_decode(std::string_view text);

}  // namespace ferry::auth
