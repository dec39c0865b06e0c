// MESSAGE-INTEGRITY (HMAC-SHA1), MESSAGE-INTEGRITY-SHA256, FINGERPRINT (CRC-32) and the
// long-term key derivations of RFC 8489 §9.2.2 and §18.5.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "stun/bytes.h"
#include "stun/constants.h"
#include "stun/message.h"

namespace ferry::stun {

inline constexpr uint32_t kFingerprintXor = 0x5354554e;  // RFC 8489 §14.7

// Up to 32 bytes: 16 for MD5 keys, 32 for SHA-256 keys, any length for short-term passwords
// (short-term keys longer than 32 bytes are hashed inside HMAC anyway, so we keep the raw bytes).
struct Key {
  std::array<uint8_t, 64> bytes{};
  size_t size = 0;
  Bytes view() const { return Bytes(bytes.data(), size); }
  static Key from(Bytes b);
  friend bool operator==(const Key& a, const Key& b) {
    return a.view().size() == b.view().size() && std::equal(a.view().begin(), a.view().end(), b.view().begin());
  }
};

uint32_t crc32(Bytes data, uint32_t crc = 0);

// RFC 8489 §9.2.2: MD5(username ":" OpaqueString(realm) ":" OpaqueString(password)).
Key long_term_key_md5(std::string_view username, std::string_view realm, std::string_view password);
// RFC 8489 §9.2.2 for PASSWORD-ALGORITHM SHA-256.
Key long_term_key_sha256(std::string_view username, std::string_view realm, std::string_view password);
// RFC 8489 §9.1: the short-term key is OpaqueString(password).
Key short_term_key(std::string_view password);
// RFC 8489 §14.4: USERHASH = SHA-256(OpaqueString(username) ":" OpaqueString(realm)).
std::array<uint8_t, 32> userhash(std::string_view username, std::string_view realm);

// A practical subset of RFC 8265 OpaqueString / RFC 4013 SASLprep: maps non-ASCII spaces to U+0020,
// removes characters "commonly mapped to nothing" (soft hyphen, zero-width joiners, ...), and applies
// the compatibility decompositions found in real passwords (ª º ¹²³ Roman numerals, fullwidth forms).
// ASCII input is returned unchanged.
std::string opaque_string(std::string_view s);

// Verify the integrity attributes of a parsed message. Each covers the message up to its own start,
// with the header length rewritten to end just after it (RFC 8489 §14.5, §14.6).
bool verify_message_integrity(const MessageView& msg, Bytes key);
bool verify_message_integrity_sha256(const MessageView& msg, Bytes key);
bool verify_fingerprint(const MessageView& msg);

// HMAC over `prefix_with_adjusted_header` = msg[0:attr_offset] where bytes 2..3 are replaced by
// `adjusted_length`. Used by the builder and the verifiers.
enum class Hmac { Sha1, Sha256 };
size_t hmac_message_prefix(Hmac alg, Bytes key, Bytes message, size_t attr_offset, uint16_t adjusted_length,
                           uint8_t* out /* 20 or 32 bytes */);
uint32_t fingerprint_of_prefix(Bytes message, size_t attr_offset, uint16_t adjusted_length);

// Constant-time comparison for MACs.
bool equal_ct(Bytes a, Bytes b);

}  // namespace ferry::stun
