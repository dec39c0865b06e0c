#include "server/ops/api_keys.h"

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
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_' || c == '~' || c == '+' ||
           c == '/';
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

ApiKeyRing::ApiKeyRing(std::vector<ApiKeyConfig> keys, uint32_t rate_per_second, const Clock& clock) : clock_(clock) {
  set_keys(std::move(keys), rate_per_second);
}

turn::TokenBucket ApiKeyRing::new_bucket(Instant now) const {
  return rate_ == 0 ? turn::TokenBucket() : turn::TokenBucket(rate_, 0, now);
}

void ApiKeyRing::set_keys(std::vector<ApiKeyConfig> keys, uint32_t rate_per_second) {
  std::lock_guard lock(mutex_);
  const auto now = clock_.now();
  rate_ = rate_per_second;
  std::vector<Entry> next;
  auto keep_bucket = [&](Entry& e, const Entry* old) {
    if (rate_ == 0) e.bucket = turn::TokenBucket();
    else if (old == nullptr || old->bucket.unlimited()) e.bucket = new_bucket(now);
    else e.bucket.reconfigure(rate_, 0, now);
  };
  for (auto& k : keys) {
    auto old =
        std::find_if(entries_.begin(), entries_.end(), [&](const Entry& e) { return !e.valid_until && e.key == k; });
    Entry e{std::move(k), old != entries_.end() ? old->bucket : turn::TokenBucket(), std::nullopt};
    keep_bucket(e, old != entries_.end() ? &*old : nullptr);
    next.push_back(std::move(e));
  }
  for (auto& e : entries_) {
    if (!e.valid_until) continue;
    keep_bucket(e, &e);
    next.push_back(std::move(e));
  }
  entries_ = std::move(next);
}

size_t ApiKeyRing::size() const {
  std::lock_guard lock(mutex_);
  return static_cast<size_t>(
      std::count_if(entries_.begin(), entries_.end(), [](const Entry& e) { return !e.valid_until; }));
}

void ApiKeyRing::set_lookup(ApiKeyLookupFn lookup, Duration cache) {
  std::lock_guard lock(mutex_);
  lookup_ = std::move(lookup);
  cache_ = cache;
}

ApiKeyCheck ApiKeyRing::take(Entry& e, Instant now) {
  if (!e.bucket.unlimited() && !e.bucket.try_consume(1, now)) return {ApiKeyVerdict::RateLimited, e.key.name};
  return {ApiKeyVerdict::Allowed, e.key.name};
}

ApiKeyCheck ApiKeyRing::check(std::string_view presented) {
  const auto hash = sha256(presented);
  ApiKeyLookupFn lookup;
  {
    std::lock_guard lock(mutex_);
    const auto now = clock_.now();
    Entry* match = nullptr;
    for (auto& e : entries_) {
      // No early exit: every key is compared, whichever matches.
      const bool equal = CRYPTO_memcmp(e.key.sha256.data(), hash.data(), hash.size()) == 0;
      if (equal && match == nullptr) match = &e;
    }
    if (match != nullptr && (!match->valid_until || *match->valid_until > now)) return take(*match, now);
    if (!lookup_) return {ApiKeyVerdict::Unknown, ""};
    lookup = lookup_;
  }
  // Not known (or its cached lookup is stale): ask the store, without holding the lock.
  const ApiKeyLookup found = lookup(hash);
  std::lock_guard lock(mutex_);
  const auto now = clock_.now();
  auto cached = std::find_if(entries_.begin(), entries_.end(), [&](const Entry& e) {
    return e.valid_until && CRYPTO_memcmp(e.key.sha256.data(), hash.data(), hash.size()) == 0;
  });
  if (found.status == ApiKeyLookup::Status::Unavailable) return {ApiKeyVerdict::Unavailable, ""};
  if (found.status == ApiKeyLookup::Status::NotFound) {
    if (cached != entries_.end()) entries_.erase(cached);  // revoked
    return {ApiKeyVerdict::Unknown, ""};
  }
  if (cached == entries_.end()) {
    entries_.push_back(Entry{ApiKeyConfig{found.name, hash}, new_bucket(now), std::nullopt});
    cached = entries_.end() - 1;
  }
  cached->key.name = found.name;
  cached->valid_until = now + cache_;  // the bucket of a revalidated key is kept: no free refill
  return take(*cached, now);
}

}  // namespace ferry::server
