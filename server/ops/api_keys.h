// API keys for GET /v1/ice-servers: a bearer token (RFC 6750 §2.1) checked against SHA-256 hashes
// from the configuration, with a token bucket per key. Used from the HTTP threads (never from a
// worker loop), hence the mutex.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "server/config/config.h"
#include "base/clock.h"
#include "turn/token_bucket.h"

namespace ferry::server {

// The token of an Authorization header value "Bearer <token>" (scheme case-insensitive, RFC 6750
// §2.1 b64token characters only); nullopt for anything else.
std::optional<std::string_view> parse_bearer(std::string_view authorization);

std::array<uint8_t, 32> sha256(std::string_view data);
std::string to_hex(const uint8_t* data, size_t size);

enum class ApiKeyVerdict { Allowed, Unknown, RateLimited, Unavailable };

struct ApiKeyCheck {
  ApiKeyVerdict verdict = ApiKeyVerdict::Unknown;
  std::string name;  // the key's name when known
};

// A second source of keys (PostgreSQL): the key's name for a hash, or why not.
struct ApiKeyLookup {
  enum class Status { Found, NotFound, Unavailable };
  Status status = Status::NotFound;
  std::string name;
};
using ApiKeyLookupFn = std::function<ApiKeyLookup(const std::array<uint8_t, 32>& sha256)>;

class ApiKeyRing {
 public:
  // rate_per_second 0 = unlimited; the burst is one second's worth (at least 1).
  ApiKeyRing(std::vector<ApiKeyConfig> keys, uint32_t rate_per_second, const Clock& clock);

  // Hashes the presented key and compares it with every configured hash, each comparison in
  // constant time and all of them every time, so timing tells nothing about which keys exist.
  // An allowed request takes a token from its key's bucket.
  ApiKeyCheck check(std::string_view presented);

  // Replaces the configured keys and the rate (configuration reload); buckets of keys that stay
  // are kept, and so are keys found through the lookup.
  void set_keys(std::vector<ApiKeyConfig> keys, uint32_t rate_per_second);
  size_t size() const;  // configured keys

  // Keys not in the configuration are asked of `lookup` (called without the lock held, from the
  // HTTP thread); a hit is remembered for `cache` and then asked again, so a revoked key stops
  // working within that time. Set before serving.
  void set_lookup(ApiKeyLookupFn lookup, Duration cache);

 private:
  struct Entry {
    ApiKeyConfig key;
    turn::TokenBucket bucket;
    std::optional<Instant> valid_until;  // set for keys from the lookup
  };
  turn::TokenBucket new_bucket(Instant now) const;
  ApiKeyCheck take(Entry& e, Instant now);
  const Clock& clock_;
  mutable std::mutex mutex_;
  std::vector<Entry> entries_;  // configured keys, then cached lookups
  uint32_t rate_ = 0;
  ApiKeyLookupFn lookup_;
  Duration cache_{};
};

}  // namespace ferry::server
