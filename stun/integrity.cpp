#include "stun/integrity.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include <algorithm>
#include <cstring>
#include <memory>

namespace ferry::stun {

Key Key::from(Bytes b) {
  Key k;
  k.size = std::min(b.size(), k.bytes.size());
  std::copy_n(b.begin(), k.size, k.bytes.begin());
  return k;
}

namespace {

struct Crc32Table {
  uint32_t t[256];
  constexpr Crc32Table() : t{} {
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? (0xEDB88320u ^ (c >> 1)) : (c >> 1);
      t[i] = c;
    }
  }
};
constexpr Crc32Table kCrcTable;

uint32_t crc32_update(uint32_t crc, Bytes data) {
  for (uint8_t b : data) crc = kCrcTable.t[(crc ^ b) & 0xFF] ^ (crc >> 8);
  return crc;
}

// One EVP_MAC_CTX per thread and algorithm, re-keyed per use: no allocation per message.
EVP_MAC_CTX* mac_ctx(Hmac alg) {
  struct Holder {
    EVP_MAC* mac = nullptr;
    EVP_MAC_CTX* ctx[2] = {nullptr, nullptr};
    Holder() {
      mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
      ctx[0] = EVP_MAC_CTX_new(mac);
      ctx[1] = EVP_MAC_CTX_new(mac);
    }
    ~Holder() {
      EVP_MAC_CTX_free(ctx[0]);
      EVP_MAC_CTX_free(ctx[1]);
      EVP_MAC_free(mac);
    }
  };
  thread_local Holder holder;
  return holder.ctx[alg == Hmac::Sha1 ? 0 : 1];
}

void digest(const EVP_MD* md, std::initializer_list<std::string_view> parts, Key& out) {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_DigestInit_ex(ctx, md, nullptr);
  for (auto p : parts) EVP_DigestUpdate(ctx, p.data(), p.size());
  unsigned len = 0;
  EVP_DigestFinal_ex(ctx, out.bytes.data(), &len);
  out.size = len;
  EVP_MD_CTX_free(ctx);
}

// Appends the UTF-8 encoding of code point cp.
void put_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

// Decodes one UTF-8 sequence; on malformed input returns the byte itself so the caller passes it through.
uint32_t next_code_point(std::string_view s, size_t& i) {
  const auto b0 = static_cast<uint8_t>(s[i]);
  auto cont = [&](size_t k) { return i + k < s.size() && (static_cast<uint8_t>(s[i + k]) & 0xC0) == 0x80; };
  auto cb = [&](size_t k) { return static_cast<uint32_t>(static_cast<uint8_t>(s[i + k]) & 0x3F); };
  if (b0 < 0x80) {
    i += 1;
    return b0;
  }
  if ((b0 & 0xE0) == 0xC0 && cont(1)) {
    uint32_t cp = ((b0 & 0x1Fu) << 6) | cb(1);
    i += 2;
    return cp;
  }
  if ((b0 & 0xF0) == 0xE0 && cont(1) && cont(2)) {
    uint32_t cp = ((b0 & 0x0Fu) << 12) | (cb(1) << 6) | cb(2);
    i += 3;
    return cp;
  }
  if ((b0 & 0xF8) == 0xF0 && cont(1) && cont(2) && cont(3)) {
    uint32_t cp = ((b0 & 0x07u) << 18) | (cb(1) << 12) | (cb(2) << 6) | cb(3);
    i += 4;
    return cp;
  }
  i += 1;
  return 0xFFFFFFFF;  // marker: raw byte
}

}  // namespace

uint32_t crc32(Bytes data, uint32_t crc) { return ~crc32_update(~crc, data); }

std::string opaque_string(std::string_view s) {
  if (std::all_of(s.begin(), s.end(), [](char c) { return static_cast<uint8_t>(c) < 0x80; })) return std::string(s);
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    const size_t start = i;
    const uint32_t cp = next_code_point(s, i);
    if (cp == 0xFFFFFFFF) {
      out += s[start];
      continue;
    }
    // RFC 3454 B.1: commonly mapped to nothing.
    if (cp == 0x00AD || cp == 0x034F || cp == 0x1806 || (cp >= 0x180B && cp <= 0x180D) || cp == 0x200B ||
        cp == 0x200C || cp == 0x200D || cp == 0x2060 || (cp >= 0xFE00 && cp <= 0xFE0F) || cp == 0xFEFF) {
      continue;
    }
    // RFC 3454 C.1.2: non-ASCII spaces map to SPACE.
    if (cp == 0x00A0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x202F || cp == 0x205F ||
        cp == 0x3000) {
      out += ' ';
      continue;
    }
    // NFKC compatibility mappings seen in passwords.
    if (cp == 0x00AA) {
      out += 'a';
      continue;
    }
    if (cp == 0x00BA) {
      out += 'o';
      continue;
    }
    if (cp == 0x00B9) {
      out += '1';
      continue;
    }
    if (cp == 0x00B2) {
      out += '2';
      continue;
    }
    if (cp == 0x00B3) {
      out += '3';
      continue;
    }
    if (cp >= 0x2160 && cp <= 0x217F) {  // Roman numerals
      static constexpr const char* kRoman[16] = {"I",  "II", "III", "IV",  "V", "VI", "VII", "VIII",
                                                 "IX", "X",  "XI",  "XII", "L", "C",  "D",   "M"};
      std::string r = kRoman[(cp - 0x2160) % 16];
      if (cp >= 0x2170)
        std::transform(r.begin(), r.end(), r.begin(), [](char c) { return static_cast<char>(c - 'A' + 'a'); });
      out += r;
      continue;
    }
    if (cp >= 0xFF01 && cp <= 0xFF5E) {
      out += static_cast<char>(cp - 0xFF01 + 0x21);
      continue;
    }  // fullwidth ASCII
    put_utf8(out, cp);
  }
  return out;
}

Key long_term_key_md5(std::string_view username, std::string_view realm, std::string_view password) {
  Key k;
  const std::string r = opaque_string(realm), p = opaque_string(password);
  digest(EVP_md5(), {username, ":", r, ":", p}, k);
  return k;
}

Key long_term_key_sha256(std::string_view username, std::string_view realm, std::string_view password) {
  Key k;
  const std::string r = opaque_string(realm), p = opaque_string(password);
  digest(EVP_sha256(), {username, ":", r, ":", p}, k);
  return k;
}

Key short_term_key(std::string_view password) {
  const std::string p = opaque_string(password);
  return Key::from(Bytes(reinterpret_cast<const uint8_t*>(p.data()), p.size()));
}

std::array<uint8_t, 32> userhash(std::string_view username, std::string_view realm) {
  Key k;
  const std::string u = opaque_string(username), r = opaque_string(realm);
  digest(EVP_sha256(), {u, ":", r}, k);
  std::array<uint8_t, 32> out{};
  std::copy_n(k.bytes.begin(), 32, out.begin());
  return out;
}

size_t hmac_message_prefix(Hmac alg, Bytes key, Bytes message, size_t attr_offset, uint16_t adjusted_length,
                           uint8_t* out) {
  EVP_MAC_CTX* ctx = mac_ctx(alg);
  char digest_name[8];
  std::strcpy(digest_name, alg == Hmac::Sha1 ? "SHA1" : "SHA256");
  OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest_name, 0),
                         OSSL_PARAM_construct_end()};
  // HMAC needs a non-null key pointer even for an empty key.
  static const uint8_t kEmpty[1] = {0};
  if (EVP_MAC_init(ctx, key.empty() ? kEmpty : key.data(), key.size(), params) != 1) return 0;
  uint8_t header[4];
  std::memcpy(header, message.data(), 2);
  store_u16(header + 2, adjusted_length);
  EVP_MAC_update(ctx, header, 4);
  EVP_MAC_update(ctx, message.data() + 4, attr_offset - 4);
  size_t len = 0;
  EVP_MAC_final(ctx, out, &len, 32);
  return len;
}

uint32_t fingerprint_of_prefix(Bytes message, size_t attr_offset, uint16_t adjusted_length) {
  uint8_t header[4];
  std::memcpy(header, message.data(), 2);
  store_u16(header + 2, adjusted_length);
  uint32_t c = crc32_update(0xFFFFFFFFu, Bytes(header, 4));
  c = crc32_update(c, message.subspan(4, attr_offset - 4));
  return ~c ^ kFingerprintXor;
}

bool equal_ct(Bytes a, Bytes b) { return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0; }

bool verify_message_integrity(const MessageView& msg, Bytes key) {
  auto mi = msg.message_integrity();
  if (!mi || mi->value.size() != 20) return false;
  uint8_t mac[32];
  const auto adjusted = static_cast<uint16_t>(mi->offset + 4 + 20 - kHeaderSize);
  if (hmac_message_prefix(Hmac::Sha1, key, msg.bytes(), mi->offset, adjusted, mac) != 20) return false;
  return equal_ct(Bytes(mac, 20), mi->value);
}

bool verify_message_integrity_sha256(const MessageView& msg, Bytes key) {
  auto mi = msg.message_integrity_sha256();
  // §14.6: 16 to 32 bytes, a multiple of 4 (a truncated HMAC).
  if (!mi || mi->value.size() < 16 || mi->value.size() > 32 || mi->value.size() % 4 != 0) return false;
  uint8_t mac[32];
  const auto adjusted = static_cast<uint16_t>(mi->offset + 4 + mi->value.size() - kHeaderSize);
  if (hmac_message_prefix(Hmac::Sha256, key, msg.bytes(), mi->offset, adjusted, mac) != 32) return false;
  return equal_ct(Bytes(mac, mi->value.size()), mi->value);
}

bool verify_fingerprint(const MessageView& msg) {
  auto fp = msg.fingerprint();
  if (!fp || fp->value.size() != 4) return false;
  const auto adjusted = static_cast<uint16_t>(fp->offset + 8 - kHeaderSize);
  return fingerprint_of_prefix(msg.bytes(), fp->offset, adjusted) == load_u32(fp->value.data());
}

}  // namespace ferry::stun
