#include "server/api_keys.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <algorithm>
#include <cctype>

namespace ferry::server {

std::optional<std::string_view> parse_bearer(std::string_view authorization) {
  constexpr std::string_view kScheme = "bearer";
  if (authorization.size() <= kScheme.size() + 1) return std::nullopt;
  for (size_t i = 0; i < kScheme.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(authorization[i])) != kScheme[i]) return std::nullopt;
  std::string_view rest = authorization.substr(kScheme.size());
  if (rest.front() != ' ') return std::nullopt;
  while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
  while (!rest.empty() && rest.back() == ' ') rest.remove_suffix(1);
  if (rest.empty() || rest.size() > 512) return std::nullopt;
  // b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
  size_t i = 0;
  auto token_char = [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/';
  };
  while (i < rest.size() && token_char(rest[i])) ++i;
  if (i == 0) return std::nullopt;
  while (i < rest.size() && rest[i] == '=') ++i;
  if (i != rest.size()) return std::nullopt;
  return rest;
}

std::array<uint8_t, 32> sha256(std::string_view data) {
  std::array<uint8_t, 32> out{};
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), out.data(), &len, EVP_sha256(), nullptr);
  return out;
}

std::string to_hex(const uint8_t* data, size_t size) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(size * 2);
  for (size_t i = 0; i < size; ++i) {
    out += kHex[data[i] >> 4];
    out += kHex[data[i] & 15];
  }
  return out;
}

ApiKeyRing::ApiKeyRing(std::vector<ApiKeyConfig> keys, uint32_t rate_per_second, const turn::Clock& clock)
    : clock_(clock) {
  set_keys(std::move(keys), rate_per_second);
}

void ApiKeyRing::set_keys(std::vector<ApiKeyConfig> keys, uint32_t rate_per_second) {
  std::lock_guard lock(mutex_);
  const auto now = clock_.now();
  std::vector<Entry> next;
  for (auto& k : keys) {
    auto old = std::find_if(entries_.begin(), entries_.end(), [&](const Entry& e) { return e.key == k; });
    Entry e{std::move(k), old != entries_.end() ? old->bucket : turn::TokenBucket()};
    if (rate_per_second == 0) e.bucket = turn::TokenBucket();
    else if (old == entries_.end() || e.bucket.unlimited()) e.bucket = turn::TokenBucket(rate_per_second, 0, now);
    else e.bucket.reconfigure(rate_per_second, 0, now);
    next.push_back(std::move(e));
  }
  entries_ = std::move(next);
}

size_t ApiKeyRing::size() const {
  std::lock_guard lock(mutex_);
  return entries_.size();
}

ApiKeyCheck ApiKeyRing::check(std::string_view presented) {
  const auto hash = sha256(presented);
  std::lock_guard lock(mutex_);
  Entry* match = nullptr;
  for (auto& e : entries_) {
    // No early exit: every key is compared, whichever matches.
    const bool equal = CRYPTO_memcmp(e.key.sha256.data(), hash.data(), hash.size()) == 0;
    if (equal && match == nullptr) match = &e;
  }
  if (match == nullptr) return {ApiKeyVerdict::Unknown, ""};
  if (!match->bucket.unlimited() && !match->bucket.try_consume(1, clock_.now()))
    return {ApiKeyVerdict::RateLimited, match->key.name};
  return {ApiKeyVerdict::Allowed, match->key.name};
}

}  // namespace ferry::server
