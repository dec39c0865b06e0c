// Value parsers behind the schema table (config_schema.cpp) and the list hooks: text in, a field
// out, "" on success or the detail of what is wrong. Internal to server/config.
#pragma once

#include <array>
#include <charconv>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "server/config/config.h"

namespace ferry::server::detail {

std::string lower(std::string_view s);
std::string quote(std::string_view s);  // 'text', with \n and \t shown escaped

template <class T>
std::string parse_uint(T& out, std::string_view text, uint64_t min, uint64_t max) {
  if (text.empty()) return "needs a value (a whole number)";
  if (text.front() == '-') return "must not be negative (got " + std::string(text) + ")";
  uint64_t v = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec == std::errc::result_out_of_range)
    return "must be at most " + std::to_string(max) + " (got " + std::string(text) + ")";
  if (ec != std::errc{} || p != text.data() + text.size()) return "must be a whole number (got " + quote(text) + ")";
  if (v < min) return "must be at least " + std::to_string(min) + " (got " + std::to_string(v) + ")";
  if (v > max) return "must be at most " + std::to_string(max) + " (got " + std::to_string(v) + ")";
  out = static_cast<T>(v);
  return "";
}

std::string parse_bool(bool& out, std::string_view text);
// REALM and SOFTWARE text (RFC 8489 §14.9, §14.14).
std::string parse_stun_text(std::string& out, std::string_view text, bool allow_empty);
std::string resolve_path(std::string_view path, std::string_view base_dir);
std::string parse_path(std::string& out, std::string_view text, std::string_view base_dir);
// Reads a secret from a file: one trailing newline (\n or \r\n) is dropped, the rest is the secret.
// An A256GCM AS-RS key in base64 (trailing newline allowed); a kid's syntax.
std::string parse_oauth_key_base64(std::array<uint8_t, 32>& out, std::string_view text);
std::string check_oauth_kid(std::string_view kid);
std::string read_secret_file(std::string& out, std::string& path_out, std::string_view text, std::string_view base_dir);
std::string parse_ip_into(stun::TransportAddress& out, std::string_view text);
std::string parse_http_address(std::optional<stun::TransportAddress>& out, std::string_view text);
std::string parse_optional_address(std::optional<stun::TransportAddress>& out, std::string_view text);
std::string check_api_key_name(std::string_view name);
std::string parse_sha256_hex(std::array<uint8_t, 32>& out, std::string_view text);
std::string parse_database_url(std::string& out, std::string_view text);
uint16_t default_port(Transport t);
std::string parse_key_hex(std::optional<std::array<uint8_t, 16>>& out, std::string_view text);

// The entry of `known` closest to `wrong` by edit distance, or "" when none is close.
std::string suggest(std::string_view wrong, const std::vector<std::string>& known);

}  // namespace ferry::server::detail
