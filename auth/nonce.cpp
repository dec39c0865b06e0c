#include "auth/nonce.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <charconv>

#include "stun/integrity.h"

namespace ferry::auth {

namespace {
constexpr size_t kExpiryHex = 12;  // 48 bits of unix seconds
constexpr size_t kMacHex = 24;     // 96 bits of HMAC-SHA256
constexpr char kHex[] = "0123456789abcdef";
}  // namespace

NonceCodec::NonceCodec(std::array<uint8_t, 32> key, uint32_t lifetime_seconds, bool username_anonymity)
    : key_(key), lifetime_(lifetime_seconds) {
  // RFC 8489 §9.2 / §18.1: 24 feature bits, bit 0 (the most significant) = password algorithms,
  // bit 1 = username anonymity, encoded as 4 base64 characters.
  uint8_t bits[3] = {static_cast<uint8_t>(0x80 | (username_anonymity ? 0x40 : 0)), 0, 0};
  unsigned char b64[8] = {};
  EVP_EncodeBlock(b64, bits, 3);
  features_.assign(reinterpret_cast<char*>(b64), 4);
}

std::string NonceCodec::mac_hex(stun::Bytes binding, uint64_t expiry) const {
  uint8_t msg[8];
  for (int i = 0; i < 8; ++i) msg[i] = static_cast<uint8_t>(expiry >> (56 - 8 * i));
  // HMAC(key, expiry || binding); one-shot, on the authentication path only.
  std::string input(reinterpret_cast<const char*>(msg), 8);
  input.append(reinterpret_cast<const char*>(binding.data()), binding.size());
  uint8_t mac[32];
  unsigned len = 0;
  HMAC(EVP_sha256(), key_.data(), static_cast<int>(key_.size()), reinterpret_cast<const uint8_t*>(input.data()),
       input.size(), mac, &len);
  std::string out(kMacHex, '0');
  for (size_t i = 0; i < kMacHex / 2; ++i) {
    out[2 * i] = kHex[mac[i] >> 4];
    out[2 * i + 1] = kHex[mac[i] & 0xF];
  }
  return out;
}

std::string NonceCodec::make(stun::Bytes binding, uint64_t now_unix) const {
  const uint64_t expiry = (now_unix + lifetime_) & 0xFFFFFFFFFFFFull;
  std::string n(kNonceCookie);
  n += features_;
  for (int i = static_cast<int>(kExpiryHex) - 1; i >= 0; --i) n += kHex[(expiry >> (4 * i)) & 0xF];
  n += mac_hex(binding, expiry);
  return n;
}

NonceCheck NonceCodec::check(std::string_view nonce, stun::Bytes binding, uint64_t now_unix) const {
  const size_t prefix = kNonceCookie.size() + 4;
  if (nonce.size() != prefix + kExpiryHex + kMacHex || nonce.substr(0, kNonceCookie.size()) != kNonceCookie) {
    return NonceCheck::Invalid;
  }
  uint64_t expiry = 0;
  auto digits = nonce.substr(prefix, kExpiryHex);
  auto [p, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), expiry, 16);
  if (ec != std::errc{} || p != digits.data() + digits.size()) return NonceCheck::Invalid;
  const std::string expected = mac_hex(binding, expiry);
  const auto given = nonce.substr(prefix + kExpiryHex);
  if (!stun::equal_ct(stun::Bytes(reinterpret_cast<const uint8_t*>(expected.data()), expected.size()),
                      stun::Bytes(reinterpret_cast<const uint8_t*>(given.data()), given.size()))) {
    return NonceCheck::Invalid;
  }
  if (expiry <= now_unix) return NonceCheck::Stale;
  // A nonce from a previous configuration with a longer lifetime is still honoured until it ends.
  return NonceCheck::Valid;
}

bool NonceCodec::announces_password_algorithms(std::string_view nonce) {
  if (nonce.size() < kNonceCookie.size() + 4 || nonce.substr(0, kNonceCookie.size()) != kNonceCookie) return false;
  unsigned char bits[4] = {};
  const auto b64 = nonce.substr(kNonceCookie.size(), 4);
  if (EVP_DecodeBlock(bits, reinterpret_cast<const unsigned char*>(b64.data()), 4) != 3) return false;
  return (bits[0] & 0x80) != 0;
}

std::array<uint8_t, 32> random_key() {
  std::array<uint8_t, 32> k{};
  RAND_bytes(k.data(), static_cast<int>(k.size()));
  return k;
}

}  // namespace ferry::auth
