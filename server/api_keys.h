// API keys for GET /v1/ice-servers: a bearer token (RFC 6750 §2.1) checked against SHA-256 hashes
// from the configuration, with a token bucket per key. Used from the HTTP threads (never from a
// worker loop), hence the mutex.
#pragma once

#include <array>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "server/config.h"
#include "turn/clock.h"
#include "turn/token_bucket.h"

namespace ferry::server {

// The token of an Authorization header value "Bearer <token>" (scheme case-insensitive, RFC 6750
// §2.1 b64token characters only); nullopt for anything else.
std::optional<std::string_view> parse_bearer(std::string_view authorization);

std::array<uint8_t, 32> sha256(std::string_view data);
std::string to_hex(const uint8_t* data, size_t size);

enum class ApiKeyVerdict { Allowed, Unknown, RateLimited };

struct ApiKeyCheck {
  ApiKeyVerdict verdict = ApiKeyVerdict::Unknown;
  std::string name;  // the key's name when known
};

class ApiKeyRing {
 public:
  // rate_per_second 0 = unlimited; the burst is one second's worth (at least 1).
  ApiKeyRing(std::vector<ApiKeyConfig> keys, uint32_t rate_per_second, const turn::Clock& clock);

  // Hashes the presented key and compares it with every configured hash, each comparison in
  // constant time and all of them every time, so timing tells nothing about which keys exist.
  // An allowed request takes a token from its key's bucket.
  ApiKeyCheck check(std::string_view presented);

  // Replaces the keys and rate (configuration reload); buckets of keys that stay are kept.
  void set_keys(std::vector<ApiKeyConfig> keys, uint32_t rate_per_second);
  size_t size() const;

 private:
  struct Entry {
    ApiKeyConfig key;
    turn::TokenBucket bucket;
  };
  const turn::Clock& clock_;
  mutable std::mutex mutex_;
  std::vector<Entry> entries_;
};

}  // namespace ferry::server
