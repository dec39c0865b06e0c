#include "server/config/config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>

#include "base/secret_mask.h"
#include "server/config/local_addresses.h"

extern char** environ;

namespace ferry::server {

// ---------------------------------------------------------------------------------------------
// Enums
// ---------------------------------------------------------------------------------------------

std::string_view to_string(Transport t) {
  switch (t) {
    case Transport::Udp: return "udp";
    case Transport::Tcp: return "tcp";
    case Transport::Tls: return "tls";
    case Transport::Dtls: return "dtls";
  }
  return "udp";
}

namespace {
std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}
}  // namespace

std::optional<Transport> parse_transport(std::string_view text) {
  auto t = lower(text);
  if (t == "udp") return Transport::Udp;
  if (t == "tcp") return Transport::Tcp;
  if (t == "tls") return Transport::Tls;
  if (t == "dtls") return Transport::Dtls;
  return std::nullopt;
}

std::string_view to_string(LogLevel l) {
  switch (l) {
    case LogLevel::Trace: return "trace";
    case LogLevel::Debug: return "debug";
    case LogLevel::Info: return "info";
    case LogLevel::Warn: return "warn";
    case LogLevel::Error: return "error";
    case LogLevel::Off: return "off";
  }
  return "info";
}

std::optional<LogLevel> parse_log_level(std::string_view text) {
  auto t = lower(text);
  if (t == "trace") return LogLevel::Trace;
  if (t == "debug") return LogLevel::Debug;
  if (t == "info") return LogLevel::Info;
  if (t == "warn" || t == "warning") return LogLevel::Warn;
  if (t == "error") return LogLevel::Error;
  if (t == "off") return LogLevel::Off;
  return std::nullopt;
}

std::string_view to_string(LogFormat f) { return f == LogFormat::Json ? "json" : "text"; }

std::optional<LogFormat> parse_log_format(std::string_view text) {
  auto t = lower(text);
  if (t == "text") return LogFormat::Text;
  if (t == "json") return LogFormat::Json;
  return std::nullopt;
}

// ---------------------------------------------------------------------------------------------
// Defaults
// ---------------------------------------------------------------------------------------------

namespace {
stun::TransportAddress ip(std::string_view text, uint16_t port = 0) {
  auto a = stun::TransportAddress::parse_ip(text);
  a->port = port;
  return *a;
}
}  // namespace

Config::Config() {
  listeners = {
      {ip("0.0.0.0", 3478), Transport::Udp},
      {ip("::", 3478), Transport::Udp},
      {ip("0.0.0.0", 3478), Transport::Tcp},
      {ip("::", 3478), Transport::Tcp},
  };
  relay.addresses = {{ip("0.0.0.0"), std::nullopt}, {ip("::"), std::nullopt}};
}

// ---------------------------------------------------------------------------------------------
// Value parsers. Each returns "" on success or the detail of what is wrong, which callers prefix
// with the location and key.
// ---------------------------------------------------------------------------------------------

namespace {

std::string quote(std::string_view s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\n') out += "\\n";
    else if (c == '\t') out += "\\t";
    else out += c;
  }
  return out + "'";
}

template <class T>
std::string parse_uint(T& out, std::string_view text, uint64_t min, uint64_t max) {
  if (text.empty()) return "needs a value (a whole number)";
  if (text.front() == '-') return "must not be negative (got " + std::string(text) + ")";
  uint64_t v = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec == std::errc::result_out_of_range) return "must be at most " + std::to_string(max) + " (got " + std::string(text) + ")";
  if (ec != std::errc{} || p != text.data() + text.size()) return "must be a whole number (got " + quote(text) + ")";
  if (v < min) return "must be at least " + std::to_string(min) + " (got " + std::to_string(v) + ")";
  if (v > max) return "must be at most " + std::to_string(max) + " (got " + std::to_string(v) + ")";
  out = static_cast<T>(v);
  return "";
}

std::string parse_bool(bool& out, std::string_view text) {
  auto t = lower(text);
  if (t == "true" || t == "yes" || t == "on" || t == "1") { out = true; return ""; }
  if (t == "false" || t == "no" || t == "off" || t == "0") { out = false; return ""; }
  return "must be true or false (got " + quote(text) + ")";
}

size_t utf8_chars(std::string_view s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

// REALM and SOFTWARE: fewer than 128 characters, at most 763 bytes (RFC 8489 §14.9, §14.14).
// Well-formed UTF-8 (RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF) and no
// control characters: what RFC 8489 allows in REALM and SOFTWARE (quoted-string text).
bool is_utf8_text(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      if (c < 0x20 || c == 0x7F) return false;
      ++i;
      continue;
    }
    size_t n = 0;
    uint32_t cp = 0;
    if ((c & 0xE0) == 0xC0) { n = 1; cp = c & 0x1F; }
    else if ((c & 0xF0) == 0xE0) { n = 2; cp = c & 0x0F; }
    else if ((c & 0xF8) == 0xF0) { n = 3; cp = c & 0x07; }
    else return false;
    for (size_t k = 1; k <= n; ++k) {
      if (i + k >= s.size()) return false;
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    static constexpr uint32_t kMin[] = {0, 0x80, 0x800, 0x10000};
    if (cp < kMin[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF) || (cp >= 0x80 && cp < 0xA0)) return false;
    i += n + 1;
  }
  return true;
}

std::string parse_stun_text(std::string& out, std::string_view text, bool allow_empty) {
  if (text.empty() && !allow_empty) return "must not be empty";
  if (!is_utf8_text(text)) return "must be UTF-8 text without control characters";
  if (utf8_chars(text) >= 128 || text.size() > 763) return "must be fewer than 128 characters (got " + std::to_string(utf8_chars(text)) + ")";
  out = std::string(text);
  return "";
}

std::string resolve_path(std::string_view path, std::string_view base_dir) {
  std::filesystem::path p{std::string(path)};
  if (p.is_relative() && !base_dir.empty()) return (std::filesystem::path(std::string(base_dir)) / p).lexically_normal().string();
  return std::string(path);
}

std::string parse_path(std::string& out, std::string_view text, std::string_view base_dir) {
  out = text.empty() ? std::string() : resolve_path(text, base_dir);
  return "";
}

// Reads a secret from a file: one trailing newline (\n or \r\n) is dropped, the rest is the secret.
std::string read_secret_file(std::string& out, std::string& path_out, std::string_view text, std::string_view base_dir) {
  if (text.empty()) return "needs a file path";
  std::string path = resolve_path(text, base_dir);
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return "cannot read " + quote(path) + ": no such file";
  if (std::filesystem::is_directory(path, ec)) return "cannot read " + quote(path) + ": it is a directory";
  std::ifstream in(path, std::ios::binary);
  if (!in) return "cannot read " + quote(path) + ": " + std::strerror(errno);
  std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) return "cannot read " + quote(path);
  if (!data.empty() && data.back() == '\n') data.pop_back();
  if (!data.empty() && data.back() == '\r') data.pop_back();
  if (data.empty()) return "file " + quote(path) + " is empty";
  out = std::move(data);
  path_out = std::move(path);
  return "";
}

std::string parse_ip_into(stun::TransportAddress& out, std::string_view text) {
  if (text.empty()) return "needs an IP address";
  auto a = stun::TransportAddress::parse_ip(text);
  if (!a) return "must be an IPv4 or IPv6 address (got " + quote(text) + ")";
  out = *a;
  return "";
}

std::string parse_http_address(std::optional<stun::TransportAddress>& out, std::string_view text) {
  if (text.empty() || lower(text) == "off") { out.reset(); return ""; }
  auto a = stun::TransportAddress::parse(text);
  if (!a || a->port == 0) return "must be IP:PORT like 127.0.0.1:9641 or [::1]:9641, or \"\" or off to disable (got " + quote(text) + ")";
  out = *a;
  return "";
}

std::string parse_optional_address(std::optional<stun::TransportAddress>& out, std::string_view text) {
  if (text.empty()) { out.reset(); return ""; }
  auto a = stun::TransportAddress::parse(text, 3478);
  if (!a || a->port == 0) return "must be IP[:PORT] like 192.0.2.7:3478 or [2001:db8::7]:3478, or \"\" for none (got " + quote(text) + ")";
  out = *a;
  return "";
}

std::string check_api_key_name(std::string_view name) {
  if (name.empty()) return "needs a name";
  if (name.size() > 64) return "name must be at most 64 characters";
  for (char c : name)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.' && c != '@')
      return "name may hold only letters, digits and - _ . @ (got " + quote(name) + ")";
  return "";
}

std::string parse_sha256_hex(std::array<uint8_t, 32>& out, std::string_view text) {
  if (text.size() != 64) return "must be 64 hex digits, the SHA-256 of the key (got " + std::to_string(text.size()) + " characters)";
  for (size_t i = 0; i < 32; ++i) {
    unsigned v = 0;
    auto [p, ec] = std::from_chars(text.data() + 2 * i, text.data() + 2 * i + 2, v, 16);
    if (ec != std::errc{} || p != text.data() + 2 * i + 2) return "must be 64 hex digits, the SHA-256 of the key";
    out[i] = static_cast<uint8_t>(v);
  }
  return "";
}

std::string parse_database_url(std::string& out, std::string_view text) {
  auto scheme_end = text.find("://");
  if (scheme_end != std::string_view::npos) {
    auto scheme = lower(text.substr(0, scheme_end));
    if (scheme != "postgres" && scheme != "postgresql") return "must be a postgresql:// URL or a libpq key=value string (got scheme '" + scheme + "')";
  }
  out = std::string(text);
  return "";
}

uint16_t default_port(Transport t) { return (t == Transport::Tls || t == Transport::Dtls) ? 5349 : 3478; }

std::string parse_key_hex(std::optional<std::array<uint8_t, 16>>& out, std::string_view text) {
  if (text.size() != 32) return "must be 32 hex digits, MD5(name:realm:password) (got " + std::to_string(text.size()) + " characters)";
  std::array<uint8_t, 16> key{};
  for (size_t i = 0; i < 16; ++i) {
    unsigned v = 0;
    auto [p, ec] = std::from_chars(text.data() + 2 * i, text.data() + 2 * i + 2, v, 16);
    if (ec != std::errc{} || p != text.data() + 2 * i + 2) return "must be 32 hex digits, MD5(name:realm:password)";
    key[i] = static_cast<uint8_t>(v);
  }
  out = key;
  return "";
}

size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j)
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

std::string suggest(std::string_view wrong, const std::vector<std::string>& known) {
  std::string best;
  size_t best_d = std::numeric_limits<size_t>::max();
  auto w = lower(wrong);
  for (const auto& k : known) {
    size_t d = edit_distance(w, k);
    if (d < best_d) { best_d = d; best = k; }
  }
  if (best.empty()) return "";
  size_t limit = std::max<size_t>(2, best.size() / 3);
  return best_d <= limit ? best : "";
}

}  // namespace

std::string check_cidr(std::string_view text) {
  if (text.empty()) return "needs an address or CIDR like 10.0.0.0/8";
  auto slash = text.find('/');
  auto addr = stun::TransportAddress::parse_ip(text.substr(0, slash));
  if (!addr) return "must be an address or CIDR like 10.0.0.0/8 or fc00::/7 (got " + quote(text) + ")";
  if (slash == std::string_view::npos) return "";
  auto prefix_text = text.substr(slash + 1);
  unsigned prefix = 0;
  auto [p, ec] = std::from_chars(prefix_text.data(), prefix_text.data() + prefix_text.size(), prefix);
  unsigned max = addr->is_v4() ? 32 : 128;
  if (prefix_text.empty() || ec != std::errc{} || p != prefix_text.data() + prefix_text.size() || prefix > max)
    return "prefix length must be 0-" + std::to_string(max) + " (got " + quote(text) + ")";
  return "";
}


std::string env_var_for(std::string_view dotted_key) {
  std::string out = "FERRY_";
  for (char c : dotted_key) out += c == '.' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

// ---------------------------------------------------------------------------------------------
// The schema: scalar keys (settable from YAML and FERRY_* alike) and list keys.
// ---------------------------------------------------------------------------------------------

namespace {

using Setter = std::string (*)(Config&, std::string_view text, std::string_view base_dir);

struct ScalarField {
  const char* path;
  Setter set;
};

#define FERRY_UINT(PATH, MEMBER, MIN, MAX) \
  ScalarField{PATH, [](Config& c, std::string_view t, std::string_view) { return parse_uint(c.MEMBER, t, MIN, MAX); }}

const std::vector<ScalarField>& scalar_fields() {
  static const std::vector<ScalarField> fields = {
      {"realm", [](Config& c, std::string_view t, std::string_view) { return parse_stun_text(c.realm, t, false); }},
      {"software", [](Config& c, std::string_view t, std::string_view) { return parse_stun_text(c.software, t, true); }},
      FERRY_UINT("workers", workers, 0, 1024),
      FERRY_UINT("relay.port_min", relay.port_min, 1, 65535),
      FERRY_UINT("relay.port_max", relay.port_max, 1, 65535),
      {"relay.strict_channel_numbers", [](Config& c, std::string_view t, std::string_view) { return parse_bool(c.relay.strict_channel_numbers, t); }},
      {"relay.tcp_allocations", [](Config& c, std::string_view t, std::string_view) { return parse_bool(c.relay.tcp_allocations, t); }},
      FERRY_UINT("auth.nonce_lifetime", auth.nonce_lifetime, 1, 86400),
      {"auth.userhash", [](Config& c, std::string_view t, std::string_view) { return parse_bool(c.auth.userhash, t); }},
      FERRY_UINT("limits.max_allocations", limits.max_allocations, 0, UINT32_MAX),
      FERRY_UINT("limits.max_allocations_per_user", limits.max_allocations_per_user, 0, UINT32_MAX),
      FERRY_UINT("limits.max_permissions_per_allocation", limits.max_permissions_per_allocation, 1, 65535),
      FERRY_UINT("limits.max_channels_per_allocation", limits.max_channels_per_allocation, 1, 4096),
      FERRY_UINT("limits.bandwidth_per_allocation", limits.bandwidth_per_allocation, 0, UINT64_MAX),
      FERRY_UINT("limits.default_lifetime", limits.default_lifetime, 1, 3600),
      FERRY_UINT("limits.max_lifetime", limits.max_lifetime, 1, 3600),
      FERRY_UINT("limits.unauth_requests_per_second", limits.unauth_requests_per_second, 0, 1000000),
      FERRY_UINT("limits.max_connections", limits.max_connections, 0, UINT32_MAX),
      FERRY_UINT("limits.max_connections_per_ip", limits.max_connections_per_ip, 0, UINT32_MAX),
      FERRY_UINT("limits.handshake_timeout", limits.handshake_timeout, 1, 300),
      FERRY_UINT("limits.connection_idle_timeout", limits.connection_idle_timeout, 1, 86400),
      FERRY_UINT("limits.connection_write_budget", limits.connection_write_budget, 4096, 1ull << 30),
      {"tls.cert", [](Config& c, std::string_view t, std::string_view d) { return parse_path(c.tls.cert, t, d); }},
      {"tls.key", [](Config& c, std::string_view t, std::string_view d) { return parse_path(c.tls.key, t, d); }},
      {"tls.ciphers", [](Config& c, std::string_view t, std::string_view) { c.tls.ciphers = std::string(t); return std::string(); }},
      {"tls.ciphersuites", [](Config& c, std::string_view t, std::string_view) { c.tls.ciphersuites = std::string(t); return std::string(); }},
      {"tls.min_version", [](Config& c, std::string_view t, std::string_view) -> std::string {
         if (t != "1.2" && t != "1.3") return "must be 1.2 or 1.3 (got " + quote(t) + ")";
         c.tls.min_version = std::string(t);
         return "";
       }},
      FERRY_UINT("tls.reload_interval", tls.reload_interval, 0, 86400),
      {"log.level", [](Config& c, std::string_view t, std::string_view) -> std::string {
         auto l = parse_log_level(t);
         if (!l) return "must be one of trace, debug, info, warn, error, off (got " + quote(t) + ")";
         c.log.level = *l;
         return "";
       }},
      {"log.format", [](Config& c, std::string_view t, std::string_view) -> std::string {
         auto f = parse_log_format(t);
         if (!f) return "must be text or json (got " + quote(t) + ")";
         c.log.format = *f;
         return "";
       }},
      {"http.address", [](Config& c, std::string_view t, std::string_view) { return parse_http_address(c.http.address, t); }},
      FERRY_UINT("http.api_requests_per_second", http.api_requests_per_second, 0, 1000000),
      FERRY_UINT("http.credential_ttl", http.credential_ttl, 1, 31536000),
      FERRY_UINT("http.max_credential_ttl", http.max_credential_ttl, 1, 31536000),
      FERRY_UINT("drain.timeout", drain.timeout, 0, 86400),
      {"drain.alternate_server", [](Config& c, std::string_view t, std::string_view) { return parse_optional_address(c.drain.alternate_server, t); }},
      {"database.url", [](Config& c, std::string_view t, std::string_view) {
         c.database.url_file.clear();
         return parse_database_url(c.database.url, t);
       }},
      {"database.url_file", [](Config& c, std::string_view t, std::string_view d) -> std::string {
         std::string url, path;
         if (auto e = read_secret_file(url, path, t, d); !e.empty()) return e;
         if (auto e = parse_database_url(c.database.url, url); !e.empty()) return "contents: " + e;
         c.database.url_file = path;
         return "";
       }},
      FERRY_UINT("database.pool_size", database.pool_size, 1, 64),
      FERRY_UINT("database.cache_ttl", database.cache_ttl, 1, 86400),
      FERRY_UINT("database.negative_cache_ttl", database.negative_cache_ttl, 0, 3600),
      FERRY_UINT("database.max_stale", database.max_stale, 0, 30 * 86400),
      FERRY_UINT("database.secrets_refresh", database.secrets_refresh, 1, 86400),
      {"nat_discovery.other_address", [](Config& c, std::string_view t, std::string_view) -> std::string {
         if (t.empty()) { c.nat_discovery.other_address.reset(); return ""; }
         stun::TransportAddress a;
         if (auto d = parse_ip_into(a, t); !d.empty()) return d + ", or \"\" for none";
         c.nat_discovery.other_address = a;
         return "";
       }},
      FERRY_UINT("nat_discovery.other_port", nat_discovery.other_port, 0, 65535),
  };
  return fields;
}
#undef FERRY_UINT

const ScalarField* find_scalar(std::string_view path) {
  for (const auto& f : scalar_fields())
    if (path == f.path) return &f;
  return nullptr;
}

// Keys holding a list; everything else that is not a scalar is a section (a mapping).
const std::vector<std::string>& list_keys() {
  static const std::vector<std::string> keys = {"listeners",   "relay.addresses", "auth.users",    "auth.shared_secrets",
                                                "peers.allow", "peers.deny",      "http.api_keys", "http.ice_urls"};
  return keys;
}
const std::vector<std::string>& section_keys() {
  static const std::vector<std::string> keys = {"relay", "auth", "peers", "limits", "tls", "log", "http", "drain", "database", "nat_discovery"};
  return keys;
}
// Pairs that may not both appear in one mapping.
const std::vector<std::pair<std::string, std::string>>& exclusive_keys() {
  static const std::vector<std::pair<std::string, std::string>> pairs = {{"database.url", "database.url_file"}};
  return pairs;
}

bool is_list(std::string_view path) { return std::find(list_keys().begin(), list_keys().end(), path) != list_keys().end(); }
bool is_section(std::string_view path) {
  return std::find(section_keys().begin(), section_keys().end(), path) != section_keys().end();
}

// The names directly under `prefix` ("" = top level), in schema order.
std::vector<std::string> children_of(std::string_view prefix) {
  std::vector<std::string> out;
  auto add = [&](std::string_view path) {
    std::string_view name;
    if (prefix.empty()) {
      name = path.substr(0, path.find('.'));
    } else {
      if (path.size() <= prefix.size() + 1 || path.substr(0, prefix.size()) != prefix || path[prefix.size()] != '.') return;
      name = path.substr(prefix.size() + 1);
      name = name.substr(0, name.find('.'));
    }
    if (std::find(out.begin(), out.end(), name) == out.end()) out.emplace_back(name);
  };
  for (const auto& f : scalar_fields()) add(f.path);
  for (const auto& k : list_keys()) add(k);
  for (const auto& k : section_keys()) add(k);
  return out;
}

// ---------------------------------------------------------------------------------------------
// YAML loading
// ---------------------------------------------------------------------------------------------

struct Loader {
  std::string source;
  std::string base_dir;
  Config& config;

  std::string at(const YAML::Node& n) const { return at(n.Mark()); }
  std::string at(const YAML::Mark& m) const {
    if (m.line < 0) return source;
    return source + ":" + std::to_string(m.line + 1);
  }
  ConfigError error(const YAML::Mark& m, std::string_view key, std::string_view detail) const {
    return ConfigError{at(m) + ": " + std::string(key) + ": " + std::string(detail)};
  }

  static std::string kind(const YAML::Node& n) {
    if (n.IsSequence()) return "a list";
    if (n.IsMap()) return "a mapping";
    return "a value";
  }

  // The text of a scalar (null = ""), or an error when the node is a list or a mapping.
  std::optional<ConfigError> scalar_text(const YAML::Node& n, const YAML::Mark& m, std::string_view key, std::string& out) const {
    if (n.IsNull()) { out.clear(); return std::nullopt; }
    if (!n.IsScalar()) return error(m, key, "must be a single value, not " + kind(n));
    out = n.Scalar();
    return std::nullopt;
  }

  std::optional<ConfigError> load_map(const YAML::Node& node, const std::string& prefix) {
    if (auto e = check_exclusive(node, prefix)) return e;
    std::map<std::string, int> seen;  // key -> line
    for (auto it = node.begin(); it != node.end(); ++it) {
      // Copies: it-> yields a temporary proxy, references into it would dangle.
      const YAML::Node k = it->first;
      const YAML::Node v = it->second;
      const YAML::Mark m = k.Mark();
      if (!k.IsScalar()) return ConfigError{at(m) + ": keys must be plain names"};
      std::string name = k.Scalar();
      std::string path = prefix.empty() ? name : prefix + "." + name;
      if (auto prev = seen.find(name); prev != seen.end())
        return error(m, path, "duplicate key (first set on line " + std::to_string(prev->second) + ")");
      seen[name] = m.line + 1;

      if (const ScalarField* f = find_scalar(path)) {
        std::string text;
        if (auto e = scalar_text(v, m, path, text)) return e;
        if (auto detail = f->set(config, text, base_dir); !detail.empty()) return error(m, path, detail);
        config.origins[path] = at(m);
      } else if (is_list(path)) {
        if (v.IsNull()) {
          if (auto e = load_list(path, YAML::Node(YAML::NodeType::Sequence), m)) return e;
        } else if (!v.IsSequence()) {
          return error(m, path, "must be a list, not " + kind(v));
        } else if (auto e = load_list(path, v, m)) {
          return e;
        }
        config.origins[path] = at(m);
      } else if (is_section(path)) {
        if (v.IsNull()) continue;  // "limits:" with nothing under it
        if (!v.IsMap()) return error(m, path, "must be a mapping of keys, not " + kind(v));
        if (auto e = load_map(v, path)) return e;
      } else {
        auto known = children_of(prefix);
        std::string msg = at(m) + ": unknown key " + quote(name);
        if (!prefix.empty()) msg += " in " + prefix;
        if (auto s = suggest(name, known); !s.empty()) msg += " (did you mean " + quote(s) + "?)";
        else {
          msg += " (known keys:";
          for (const auto& kk : known) msg += " " + kk;
          msg += ")";
        }
        return ConfigError{msg};
      }
    }
    return std::nullopt;
  }

  // Before reading anything (a *_file key reads a file): keys that may not appear together.
  std::optional<ConfigError> check_exclusive(const YAML::Node& node, const std::string& prefix) const {
    for (const auto& [a, b] : exclusive_keys()) {
      std::string pa = prefix.empty() ? "" : prefix + ".";
      if (a.rfind(pa, 0) != 0 || a.find('.', pa.size()) != std::string::npos) continue;
      std::string ka = a.substr(pa.size()), kb = b.substr(pa.size());
      std::optional<YAML::Mark> mark_b;
      bool have_a = false;
      for (auto it = node.begin(); it != node.end(); ++it) {
        if (!it->first.IsScalar()) continue;
        if (it->first.Scalar() == ka) have_a = true;
        if (it->first.Scalar() == kb) mark_b = it->first.Mark();
      }
      if (have_a && mark_b) return error(*mark_b, b, "set either " + ka + " or " + kb + ", not both");
    }
    return std::nullopt;
  }

  // Reads a mapping item of a list: calls `on_key(name, value, mark, path)` for each key after
  // checking it is one of `allowed`.
  template <class F>
  std::optional<ConfigError> each_key(const YAML::Node& item, const std::string& item_path,
                                      const std::vector<std::string>& allowed, F&& on_key) {
    std::set<std::string> seen;
    for (auto it = item.begin(); it != item.end(); ++it) {
      const YAML::Mark m = it->first.Mark();
      if (!it->first.IsScalar()) return ConfigError{at(m) + ": keys must be plain names"};
      std::string name = it->first.Scalar();
      std::string path = item_path + "." + name;
      if (std::find(allowed.begin(), allowed.end(), name) == allowed.end()) {
        std::string msg = at(m) + ": unknown key " + quote(name) + " in " + item_path;
        if (auto s = suggest(name, allowed); !s.empty()) msg += " (did you mean " + quote(s) + "?)";
        else {
          msg += " (known keys:";
          for (const auto& kk : allowed) msg += " " + kk;
          msg += ")";
        }
        return ConfigError{msg};
      }
      if (!seen.insert(name).second) return error(m, path, "duplicate key");
      std::string text;
      if (auto e = scalar_text(it->second, m, path, text)) return e;
      if (auto e = on_key(name, text, m, path)) return e;
    }
    return std::nullopt;
  }

  std::optional<ConfigError> load_list(const std::string& path, const YAML::Node& seq, const YAML::Mark& list_mark) {
    if (path == "listeners") return load_listeners(seq, list_mark);
    if (path == "relay.addresses") return load_relay_addresses(seq, list_mark);
    if (path == "auth.users") return load_users(seq);
    if (path == "auth.shared_secrets") return load_shared_secrets(seq);
    if (path == "http.api_keys") return load_api_keys(seq);
    if (path == "http.ice_urls") {
      std::vector<std::string> urls;
      for (size_t i = 0; i < seq.size(); ++i) {
        std::string item_path = path + "[" + std::to_string(i) + "]";
        std::string text;
        if (auto e = scalar_text(seq[i], seq[i].Mark(), item_path, text)) return e;
        if (auto d = check_ice_url(text); !d.empty()) return error(seq[i].Mark(), item_path, d);
        urls.push_back(text);
      }
      config.http.ice_urls = std::move(urls);
      return std::nullopt;
    }
    // peers.allow / peers.deny
    std::vector<std::string> out;
    for (size_t i = 0; i < seq.size(); ++i) {
      std::string item_path = path + "[" + std::to_string(i) + "]";
      std::string text;
      if (auto e = scalar_text(seq[i], seq[i].Mark(), item_path, text)) return e;
      if (auto d = check_cidr(text); !d.empty()) return error(seq[i].Mark(), item_path, d);
      out.push_back(text);
    }
    (path == "peers.allow" ? config.peers.allow : config.peers.deny) = std::move(out);
    return std::nullopt;
  }

  std::optional<ConfigError> load_listeners(const YAML::Node& seq, const YAML::Mark& list_mark) {
    std::vector<ListenerConfig> out;
    for (size_t i = 0; i < seq.size(); ++i) {
      const YAML::Node item = seq[i];
      std::string item_path = "listeners[" + std::to_string(i) + "]";
      if (item.IsScalar()) {  // shorthand: "0.0.0.0:3478/udp"
        std::vector<ListenerConfig> parsed;
        if (auto d = parse_listener_spec(item.Scalar(), parsed); !d.empty()) return error(item.Mark(), item_path, d);
        out.insert(out.end(), parsed.begin(), parsed.end());
        continue;
      }
      if (!item.IsMap()) return error(item.Mark(), item_path, "must be a mapping with address, port, transport, or \"IP:PORT/TRANSPORT\"");
      ListenerConfig l;
      bool have_address = false;
      std::optional<uint16_t> port;
      if (auto e = each_key(item, item_path, {"address", "port", "transport"},
                            [&](const std::string& name, const std::string& text, const YAML::Mark& m,
                                const std::string& key) -> std::optional<ConfigError> {
                              std::string d;
                              if (name == "address") {
                                d = parse_ip_into(l.address, text);
                                have_address = true;
                              } else if (name == "port") {
                                uint16_t p = 0;
                                d = parse_uint(p, text, 1, 65535);
                                port = p;
                              } else {
                                auto t = parse_transport(text);
                                if (!t) d = "must be one of udp, tcp, tls, dtls (got " + quote(text) + ")";
                                else l.transport = *t;
                              }
                              if (!d.empty()) return error(m, key, d);
                              return std::nullopt;
                            }))
        return e;
      if (!have_address) return error(item.Mark(), item_path, "needs an address (0.0.0.0 or :: for all)");
      l.address.port = port.value_or(default_port(l.transport));
      out.push_back(l);
    }
    if (out.empty()) return error(list_mark, "listeners", "needs at least one listener");
    config.listeners = std::move(out);
    return std::nullopt;
  }

  std::optional<ConfigError> load_relay_addresses(const YAML::Node& seq, const YAML::Mark& list_mark) {
    std::vector<RelayAddressConfig> out;
    for (size_t i = 0; i < seq.size(); ++i) {
      const YAML::Node item = seq[i];
      std::string item_path = "relay.addresses[" + std::to_string(i) + "]";
      RelayAddressConfig r;
      if (item.IsScalar()) {  // shorthand: just the address
        if (auto d = parse_ip_into(r.address, item.Scalar()); !d.empty()) return error(item.Mark(), item_path, d);
        out.push_back(r);
        continue;
      }
      if (!item.IsMap()) return error(item.Mark(), item_path, "must be an IP address or a mapping with address and external");
      bool have_address = false;
      YAML::Mark external_mark;
      if (auto e = each_key(item, item_path, {"address", "external"},
                            [&](const std::string& name, const std::string& text, const YAML::Mark& m,
                                const std::string& key) -> std::optional<ConfigError> {
                              std::string d;
                              if (name == "address") {
                                d = parse_ip_into(r.address, text);
                                have_address = true;
                              } else if (!text.empty()) {
                                stun::TransportAddress ext;
                                d = parse_ip_into(ext, text);
                                r.external = ext;
                                external_mark = m;
                              }
                              if (!d.empty()) return error(m, key, d);
                              return std::nullopt;
                            }))
        return e;
      if (!have_address) return error(item.Mark(), item_path, "needs an address");
      out.push_back(r);
    }
    if (out.empty()) return error(list_mark, "relay.addresses", "needs at least one address");
    config.relay.addresses = std::move(out);
    return std::nullopt;
  }

  std::optional<ConfigError> load_users(const YAML::Node& seq) {
    std::vector<UserConfig> out;
    std::map<std::string, int> names;
    for (size_t i = 0; i < seq.size(); ++i) {
      const YAML::Node item = seq[i];
      std::string item_path = "auth.users[" + std::to_string(i) + "]";
      if (!item.IsMap()) return error(item.Mark(), item_path, "must be a mapping with name and one of password, key, password_file");
      UserConfig u;
      int credentials = 0;
      std::string first_credential;
      if (auto e = each_key(item, item_path, {"name", "password", "key", "password_file"},
                            [&](const std::string& name, const std::string& text, const YAML::Mark& m,
                                const std::string& key) -> std::optional<ConfigError> {
                              std::string d;
                              if (name == "name") {
                                if (text.empty()) d = "must not be empty";
                                if (text.size() > 508) d = "must be at most 508 bytes";  // RFC 8489 §14.3
                                u.name = text;
                              } else {
                                if (++credentials > 1)
                                  return error(m, key, "set only one of password, key, password_file (already have " + first_credential + ")");
                                first_credential = name;
                                if (name == "password") {
                                  if (text.empty()) d = "must not be empty";
                                  u.password = text;
                                } else if (name == "key") {
                                  d = parse_key_hex(u.key, text);
                                } else {
                                  d = read_secret_file(u.password, u.password_file, text, base_dir);
                                }
                              }
                              if (!d.empty()) return error(m, key, d);
                              return std::nullopt;
                            }))
        return e;
      if (u.name.empty()) return error(item.Mark(), item_path, "needs a name");
      if (credentials == 0) return error(item.Mark(), item_path, "user '" + u.name + "' needs one of password, key, password_file");
      if (auto prev = names.find(u.name); prev != names.end())
        return error(item.Mark(), item_path + ".name", "duplicate user '" + u.name + "' (first on line " + std::to_string(prev->second) + ")");
      names[u.name] = item.Mark().line + 1;
      out.push_back(std::move(u));
    }
    config.auth.users = std::move(out);
    return std::nullopt;
  }

  std::optional<ConfigError> load_api_keys(const YAML::Node& seq) {
    std::vector<ApiKeyConfig> out;
    for (size_t i = 0; i < seq.size(); ++i) {
      const YAML::Node item = seq[i];
      std::string item_path = "http.api_keys[" + std::to_string(i) + "]";
      if (!item.IsMap()) return error(item.Mark(), item_path, "must be a mapping with name and sha256");
      ApiKeyConfig k;
      bool have_hash = false;
      if (auto e = each_key(item, item_path, {"name", "sha256"},
                            [&](const std::string& name, const std::string& text, const YAML::Mark& m,
                                const std::string& key) -> std::optional<ConfigError> {
                              std::string d;
                              if (name == "name") {
                                d = check_api_key_name(text);
                                k.name = text;
                              } else {
                                d = parse_sha256_hex(k.sha256, text);
                                have_hash = true;
                              }
                              if (!d.empty()) return error(m, key, d);
                              return std::nullopt;
                            }))
        return e;
      if (k.name.empty()) return error(item.Mark(), item_path, "needs a name");
      if (!have_hash) return error(item.Mark(), item_path, "key '" + k.name + "' needs sha256 (the SHA-256 of the key, in hex)");
      for (const auto& prev : out)
        if (prev.name == k.name) return error(item.Mark(), item_path + ".name", "duplicate API key name '" + k.name + "'");
      out.push_back(k);
    }
    config.http.api_keys = std::move(out);
    return std::nullopt;
  }

  std::optional<ConfigError> load_shared_secrets(const YAML::Node& seq) {
    std::vector<SharedSecretConfig> out;
    for (size_t i = 0; i < seq.size(); ++i) {
      const YAML::Node item = seq[i];
      std::string item_path = "auth.shared_secrets[" + std::to_string(i) + "]";
      SharedSecretConfig s;
      if (item.IsScalar()) {
        if (item.Scalar().empty()) return error(item.Mark(), item_path, "must not be empty");
        s.secret = item.Scalar();
        out.push_back(std::move(s));
        continue;
      }
      if (!item.IsMap()) return error(item.Mark(), item_path, "must be a string or a mapping with secret or secret_file");
      int n = 0;
      if (auto e = each_key(item, item_path, {"secret", "secret_file"},
                            [&](const std::string& name, const std::string& text, const YAML::Mark& m,
                                const std::string& key) -> std::optional<ConfigError> {
                              if (++n > 1) return error(m, key, "set only one of secret, secret_file");
                              std::string d;
                              if (name == "secret") {
                                if (text.empty()) d = "must not be empty";
                                s.secret = text;
                              } else {
                                d = read_secret_file(s.secret, s.secret_file, text, base_dir);
                              }
                              if (!d.empty()) return error(m, key, d);
                              return std::nullopt;
                            }))
        return e;
      if (n == 0) return error(item.Mark(), item_path, "needs secret or secret_file");
      out.push_back(std::move(s));
    }
    config.auth.shared_secrets = std::move(out);
    return std::nullopt;
  }
};

}  // namespace

std::string set_config_value(Config& config, std::string_view dotted_key, std::string_view text, std::string_view origin) {
  const ScalarField* f = find_scalar(dotted_key);
  if (f == nullptr) return "not a setting that takes a single value";
  if (auto d = f->set(config, text, ""); !d.empty()) return d;
  config.origins[std::string(dotted_key)] = std::string(origin);
  return "";
}

std::string parse_listener_spec(std::string_view text, std::vector<ListenerConfig>& out) {
  std::string_view addr = text;
  std::vector<Transport> transports = {Transport::Udp, Transport::Tcp};
  if (auto slash = text.rfind('/'); slash != std::string_view::npos) {
    auto t = parse_transport(text.substr(slash + 1));
    if (!t) return "transport after '/' must be udp, tcp, tls or dtls (got " + quote(text.substr(slash + 1)) + ")";
    transports = {*t};
    addr = text.substr(0, slash);
  }
  auto a = stun::TransportAddress::parse(addr, default_port(transports.front()));
  if (!a || a->port == 0)
    return "must be IP[:PORT][/TRANSPORT] like 0.0.0.0:3478/udp or [::]:5349/tls (got " + quote(text) + ")";
  for (auto t : transports) out.push_back({*a, t});
  return "";
}

std::string parse_api_key_spec(std::string_view text, std::vector<ApiKeyConfig>& out) {
  auto colon = text.rfind(':');
  if (colon == std::string_view::npos) return "must be NAME:SHA256HEX (got " + quote(text) + ")";
  ApiKeyConfig k;
  k.name = std::string(text.substr(0, colon));
  if (auto d = check_api_key_name(k.name); !d.empty()) return d;
  if (auto d = parse_sha256_hex(k.sha256, text.substr(colon + 1)); !d.empty()) return d;
  out.push_back(k);
  return "";
}

std::string check_ice_url(std::string_view text) {
  for (const char* scheme : {"stun:", "stuns:", "turn:", "turns:"}) {
    std::string_view s(scheme);
    if (text.size() > s.size() && lower(text.substr(0, s.size())) == s) {
      for (char c : text)
        if (std::isspace(static_cast<unsigned char>(c)) || c == '"' || c == ',')
          return "must not contain spaces, quotes or commas (got " + quote(text) + ")";
      return "";
    }
  }
  return "must be a stun:, stuns:, turn: or turns: URL like turn:turn.example.org:3478?transport=udp (got " + quote(text) + ")";
}

std::string parse_relay_spec(std::string_view text, std::vector<RelayAddressConfig>& out) {
  RelayAddressConfig r;
  auto eq = text.find('=');
  if (auto d = parse_ip_into(r.address, text.substr(0, eq)); !d.empty()) return d;
  if (eq != std::string_view::npos) {
    stun::TransportAddress ext;
    if (auto d = parse_ip_into(ext, text.substr(eq + 1)); !d.empty()) return "external: " + d;
    r.external = ext;
  }
  out.push_back(r);
  return "";
}

ConfigResult parse_config_string(std::string_view yaml, std::string_view source_name, const Config& base,
                                 std::string_view base_dir) {
  Config config = base;
  std::string source(source_name);
  YAML::Node root;
  try {
    root = YAML::Load(std::string(yaml));
  } catch (const YAML::ParserException& e) {
    return ConfigError{source + ":" + std::to_string(e.mark.line + 1) + ": invalid YAML: " + e.msg};
  } catch (const YAML::Exception& e) {
    return ConfigError{source + ": invalid YAML: " + e.what()};
  }
  if (root.IsNull()) return config;  // empty file: defaults
  if (!root.IsMap()) return ConfigError{source + ":" + std::to_string(root.Mark().line + 1) + ": the top level must be a mapping of keys (like 'realm: example.org'), not " + Loader::kind(root)};
  Loader loader{source, std::string(base_dir), config};
  try {
    if (auto e = loader.load_map(root, "")) return *e;
  } catch (const YAML::Exception& e) {
    return ConfigError{source + ":" + std::to_string(e.mark.line + 1) + ": " + e.msg};
  }
  return config;
}

ConfigResult parse_config_file(const std::string& path, const Config& base) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return ConfigError{"config file " + quote(path) + " does not exist"};
  if (std::filesystem::is_directory(path, ec)) return ConfigError{"config file " + quote(path) + " is a directory, not a file"};
  std::ifstream in(path, std::ios::binary);
  if (!in) return ConfigError{"cannot read config file " + quote(path) + ": " + std::strerror(errno)};
  std::ostringstream buf;
  buf << in.rdbuf();
  if (in.bad()) return ConfigError{"cannot read config file " + quote(path)};
  auto dir = std::filesystem::path(path).parent_path().string();
  return parse_config_string(buf.str(), path, base, dir);
}

// ---------------------------------------------------------------------------------------------
// Environment
// ---------------------------------------------------------------------------------------------

namespace {
const char* const kConfigPathVar = "FERRY_CONFIG";  // read by the CLI, not a config key

std::vector<std::string> split_commas(std::string_view text) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= text.size()) {
    auto comma = text.find(',', start);
    auto piece = text.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start);
    while (!piece.empty() && std::isspace(static_cast<unsigned char>(piece.front()))) piece.remove_prefix(1);
    while (!piece.empty() && std::isspace(static_cast<unsigned char>(piece.back()))) piece.remove_suffix(1);
    if (!piece.empty()) out.emplace_back(piece);
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return out;
}

// The lists settable from the environment, as comma-separated values.
const std::vector<std::string>& env_list_keys() {
  static const std::vector<std::string> keys = {"listeners",  "relay.addresses", "auth.shared_secrets", "peers.allow",
                                                "peers.deny", "http.api_keys",   "http.ice_urls"};
  return keys;
}
}  // namespace

Environment process_environment() {
  Environment env;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    std::string_view entry(*e);
    if (entry.rfind("FERRY_", 0) != 0) continue;
    auto eq = entry.find('=');
    if (eq == std::string_view::npos) continue;
    env.emplace(std::string(entry.substr(0, eq)), std::string(entry.substr(eq + 1)));
  }
  return env;
}

std::vector<std::pair<std::string, std::string>> environment_variables() {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& f : scalar_fields()) out.emplace_back(env_var_for(f.path), f.path);
  for (const auto& k : env_list_keys()) out.emplace_back(env_var_for(k), k);
  return out;
}

std::optional<ConfigError> apply_environment(Config& config, const Environment& env) {
  auto fail = [](const std::string& var, const std::string& key, const std::string& detail) {
    return ConfigError{var + ": " + key + ": " + detail};
  };
  for (const auto& f : scalar_fields()) {
    auto var = env_var_for(f.path);
    auto it = env.find(var);
    if (it == env.end()) continue;
    if (auto d = f.set(config, it->second, ""); !d.empty()) return fail(var, f.path, d);
    config.origins[f.path] = var;
  }
  for (const auto& key : env_list_keys()) {
    auto var = env_var_for(key);
    auto it = env.find(var);
    if (it == env.end()) continue;
    auto items = split_commas(it->second);
    if (key == "listeners") {
      std::vector<ListenerConfig> out;
      for (const auto& i : items)
        if (auto d = parse_listener_spec(i, out); !d.empty()) return fail(var, key, d);
      config.listeners = std::move(out);
    } else if (key == "relay.addresses") {
      std::vector<RelayAddressConfig> out;
      for (const auto& i : items)
        if (auto d = parse_relay_spec(i, out); !d.empty()) return fail(var, key, d);
      config.relay.addresses = std::move(out);
    } else if (key == "auth.shared_secrets") {
      config.auth.shared_secrets.clear();
      for (auto& i : items) config.auth.shared_secrets.push_back({std::move(i), ""});
    } else if (key == "http.api_keys") {
      std::vector<ApiKeyConfig> out;
      for (const auto& i : items)
        if (auto d = parse_api_key_spec(i, out); !d.empty()) return fail(var, key, d);
      config.http.api_keys = std::move(out);
    } else if (key == "http.ice_urls") {
      for (const auto& i : items)
        if (auto d = check_ice_url(i); !d.empty()) return fail(var, key, d);
      config.http.ice_urls = std::move(items);
    } else {
      for (const auto& i : items)
        if (auto d = check_cidr(i); !d.empty()) return fail(var, key, d);
      (key == "peers.allow" ? config.peers.allow : config.peers.deny) = std::move(items);
    }
    config.origins[key] = var;
  }
  return std::nullopt;
}

std::vector<std::string> environment_warnings(const Environment& env) {
  std::vector<std::string> known;
  for (const auto& [var, key] : environment_variables()) known.push_back(var);
  std::vector<std::string> out;
  for (const auto& [var, value] : env) {
    if (var.rfind("FERRY_", 0) != 0 || var == kConfigPathVar) continue;
    if (std::find(known.begin(), known.end(), var) != known.end()) continue;
    std::vector<std::string> lowered;
    for (const auto& k : known) lowered.push_back(lower(k));
    if (auto s = suggest(var, lowered); !s.empty()) {
      std::string upper = s;
      for (auto& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      out.push_back("environment variable " + var + " is not a ferry setting and is ignored (did you mean " + upper + "?)");
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Cross-key validation
// ---------------------------------------------------------------------------------------------

std::optional<ConfigError> validate_config(const Config& c) {
  auto where = [&](const std::string& key) -> std::string {
    auto it = c.origins.find(key);
    return it == c.origins.end() ? "" : it->second + ": ";
  };
  auto fail = [&](const std::string& key, const std::string& detail) { return ConfigError{where(key) + key + ": " + detail}; };
  // Blame whichever of two keys was set last by the user (the one with an origin).
  auto blame = [&](const std::string& a, const std::string& b) { return c.origins.count(a) ? a : (c.origins.count(b) ? b : a); };

  if (c.listeners.empty()) return fail("listeners", "needs at least one listener");
  for (size_t i = 0; i < c.listeners.size(); ++i)
    for (size_t j = 0; j < i; ++j)
      if (c.listeners[i] == c.listeners[j])
        return fail("listeners", "listed twice: " + c.listeners[i].address.to_string() + "/" + std::string(to_string(c.listeners[i].transport)));
  for (const auto& l : c.listeners) {
    if ((l.transport == Transport::Tls || l.transport == Transport::Dtls) && (c.tls.cert.empty() || c.tls.key.empty()))
      return fail("listeners", "the " + std::string(to_string(l.transport)) + " listener on " + l.address.to_string() +
                                   " needs tls.cert and tls.key");
  }
  if (c.tls.cert.empty() != c.tls.key.empty())
    return fail(c.tls.cert.empty() ? "tls.key" : "tls.cert", "tls.cert and tls.key go together: set both or neither");

  if (c.relay.addresses.empty()) return fail("relay.addresses", "needs at least one address");
  for (const auto& r : c.relay.addresses) {
    if (r.external && r.external->family != r.address.family)
      return fail("relay.addresses", "external address " + r.external->ip_string() + " is not the same IP family as " + r.address.ip_string());
    if (r.external && r.external->ip == stun::TransportAddress::parse_ip(r.external->is_v4() ? "0.0.0.0" : "::")->ip)
      return fail("relay.addresses", "external address must be a concrete address, not " + r.external->ip_string());
  }
  if (c.relay.port_min > c.relay.port_max) {
    auto key = blame("relay.port_min", "relay.port_max");
    return fail(key, "relay.port_min (" + std::to_string(c.relay.port_min) + ") must not be above relay.port_max (" +
                         std::to_string(c.relay.port_max) + ")");
  }
  if (c.limits.default_lifetime > c.limits.max_lifetime) {
    auto key = blame("limits.default_lifetime", "limits.max_lifetime");
    return fail(key, "limits.default_lifetime (" + std::to_string(c.limits.default_lifetime) +
                         ") must not be above limits.max_lifetime (" + std::to_string(c.limits.max_lifetime) + ")");
  }
  if (c.limits.max_allocations != 0 && c.limits.max_allocations_per_user > c.limits.max_allocations) {
    auto key = blame("limits.max_allocations_per_user", "limits.max_allocations");
    return fail(key, "limits.max_allocations_per_user (" + std::to_string(c.limits.max_allocations_per_user) +
                         ") must not be above limits.max_allocations (" + std::to_string(c.limits.max_allocations) + ")");
  }
  if (c.http.credential_ttl > c.http.max_credential_ttl) {
    auto key = blame("http.credential_ttl", "http.max_credential_ttl");
    return fail(key, "http.credential_ttl (" + std::to_string(c.http.credential_ttl) +
                         ") must not be above http.max_credential_ttl (" + std::to_string(c.http.max_credential_ttl) + ")");
  }
  for (size_t i = 0; i < c.http.api_keys.size(); ++i)
    for (size_t j = 0; j < i; ++j)
      if (c.http.api_keys[i].name == c.http.api_keys[j].name)
        return fail("http.api_keys", "duplicate API key name '" + c.http.api_keys[i].name + "'");
  std::set<std::string> names;
  for (const auto& u : c.auth.users)
    if (!names.insert(u.name).second) return fail("auth.users", "duplicate user '" + u.name + "'");
  std::optional<NatDiscoveryPlan> plan;
  if (auto d = plan_nat_discovery(c, plan); !d.empty())
    return fail(c.nat_discovery.other_address ? "nat_discovery.other_address" : "nat_discovery.other_port", d);
  return std::nullopt;
}

std::string plan_nat_discovery(const Config& c, std::optional<NatDiscoveryPlan>& out) {
  out.reset();
  const NatDiscoveryConfig& nd = c.nat_discovery;
  if (!nd.enabled()) return "";
  // RFC 5780 §6: without a second address and a second port there is no OTHER-ADDRESS to give.
  if (!nd.other_address) return "needs nat_discovery.other_address too: RFC 5780 needs a second IP and a second port";
  if (nd.other_port == 0) return "needs nat_discovery.other_port too: RFC 5780 needs a second IP and a second port";
  const stun::TransportAddress a2 = nd.other_address->with_port(nd.other_port);
  if (is_unspecified(a2)) return "must be a concrete address, not " + a2.ip_string();
  // The primary is the udp listener of A2's family on another IP and another port.
  std::vector<const ListenerConfig*> primaries;
  for (const auto& l : c.listeners)
    if (l.transport == Transport::Udp && l.address.family == a2.family && l.address.ip != a2.ip && l.address.port != a2.port)
      primaries.push_back(&l);
  const std::string family = a2.is_v4() ? "IPv4" : "IPv6";
  if (primaries.empty())
    return "needs a udp " + family + " listener on another address and port to pair with " + a2.to_string();
  if (primaries.size() > 1)
    return "pairs with one udp " + family + " listener, but there are several (" + primaries[0]->address.to_string() +
           ", " + primaries[1]->address.to_string() + ")";
  const stun::TransportAddress a1 = primaries[0]->address;
  // RFC 5780 §6.1: RESPONSE-ORIGIN names the address a response leaves from; a wildcard cannot.
  if (is_unspecified(a1))
    return "the udp listener " + a1.to_string() + " it pairs with must be on a concrete address, not a wildcard";
  NatDiscoveryPlan plan{a1, a2, {}};
  for (const auto& address : {a2.with_port(a1.port), a1.with_port(a2.port), a2}) {
    ListenerConfig l{address, Transport::Udp, true};
    bool configured = false;
    for (const auto& existing : c.listeners)
      configured = configured || (existing.transport == Transport::Udp && existing.address == address);
    if (!configured) plan.added.push_back(l);
  }
  out = std::move(plan);
  return "";
}

ConfigResult load_config_string(std::string_view yaml, std::string_view source_name, const Environment& env) {
  auto r = parse_config_string(yaml, source_name);
  if (!r) return r;
  Config c = std::move(r).value();
  if (auto e = apply_environment(c, env)) return *e;
  if (auto e = validate_config(c)) return *e;
  return c;
}

ConfigResult load_config_file(const std::string& path, const Environment& env) {
  auto r = parse_config_file(path);
  if (!r) return r;
  Config c = std::move(r).value();
  if (auto e = apply_environment(c, env)) return *e;
  if (auto e = validate_config(c)) return *e;
  return c;
}

// ---------------------------------------------------------------------------------------------
// Dump
// ---------------------------------------------------------------------------------------------

std::string dump_effective(const Config& c) {
  YAML::Emitter out;
  auto origin = [&](const std::string& key) {
    if (auto it = c.origins.find(key); it != c.origins.end()) out << YAML::Comment("from " + it->second);
  };
  auto scalar = [&](const char* name, const std::string& key, const auto& value) {
    out << YAML::Key << name << YAML::Value << value;
    origin(key);
  };
  auto list_key = [&](const char* name, const std::string& key, bool empty) {
    out << YAML::Key << name;
    origin(key);
    out << YAML::Value;
    if (empty) out << YAML::Flow;
  };

  out << YAML::BeginMap;
  scalar("realm", "realm", c.realm);
  scalar("software", "software", c.software);
  scalar("workers", "workers", c.workers);

  list_key("listeners", "listeners", c.listeners.empty());
  out << YAML::BeginSeq;
  for (const auto& l : c.listeners)
    out << YAML::BeginMap << YAML::Key << "address" << YAML::Value << l.address.ip_string() << YAML::Key << "port"
        << YAML::Value << l.address.port << YAML::Key << "transport" << YAML::Value << std::string(to_string(l.transport))
        << YAML::EndMap;
  out << YAML::EndSeq;

  out << YAML::Key << "relay" << YAML::Value << YAML::BeginMap;
  list_key("addresses", "relay.addresses", c.relay.addresses.empty());
  out << YAML::BeginSeq;
  for (const auto& r : c.relay.addresses) {
    out << YAML::BeginMap << YAML::Key << "address" << YAML::Value << r.address.ip_string();
    if (r.external) out << YAML::Key << "external" << YAML::Value << r.external->ip_string();
    out << YAML::EndMap;
  }
  out << YAML::EndSeq;
  scalar("port_min", "relay.port_min", c.relay.port_min);
  scalar("port_max", "relay.port_max", c.relay.port_max);
  scalar("strict_channel_numbers", "relay.strict_channel_numbers", c.relay.strict_channel_numbers);
  scalar("tcp_allocations", "relay.tcp_allocations", c.relay.tcp_allocations);
  out << YAML::EndMap;

  out << YAML::Key << "auth" << YAML::Value << YAML::BeginMap;
  scalar("nonce_lifetime", "auth.nonce_lifetime", c.auth.nonce_lifetime);
  scalar("userhash", "auth.userhash", c.auth.userhash);
  list_key("users", "auth.users", c.auth.users.empty());
  out << YAML::BeginSeq;
  for (const auto& u : c.auth.users) {
    out << YAML::BeginMap << YAML::Key << "name" << YAML::Value << u.name;
    if (!u.password_file.empty()) out << YAML::Key << "password_file" << YAML::Value << u.password_file;
    else if (u.key) out << YAML::Key << "key" << YAML::Value << std::string(kMasked);
    else out << YAML::Key << "password" << YAML::Value << std::string(kMasked);
    out << YAML::EndMap;
  }
  out << YAML::EndSeq;
  list_key("shared_secrets", "auth.shared_secrets", c.auth.shared_secrets.empty());
  out << YAML::BeginSeq;
  for (const auto& s : c.auth.shared_secrets) {
    if (!s.secret_file.empty()) out << YAML::BeginMap << YAML::Key << "secret_file" << YAML::Value << s.secret_file << YAML::EndMap;
    else out << std::string(kMasked);
  }
  out << YAML::EndSeq;
  out << YAML::EndMap;

  out << YAML::Key << "peers" << YAML::Value << YAML::BeginMap;
  list_key("allow", "peers.allow", c.peers.allow.empty());
  out << c.peers.allow;
  list_key("deny", "peers.deny", c.peers.deny.empty());
  out << c.peers.deny;
  out << YAML::EndMap;

  out << YAML::Key << "limits" << YAML::Value << YAML::BeginMap;
  scalar("max_allocations", "limits.max_allocations", c.limits.max_allocations);
  scalar("max_allocations_per_user", "limits.max_allocations_per_user", c.limits.max_allocations_per_user);
  scalar("max_permissions_per_allocation", "limits.max_permissions_per_allocation", c.limits.max_permissions_per_allocation);
  scalar("max_channels_per_allocation", "limits.max_channels_per_allocation", c.limits.max_channels_per_allocation);
  scalar("bandwidth_per_allocation", "limits.bandwidth_per_allocation", c.limits.bandwidth_per_allocation);
  scalar("default_lifetime", "limits.default_lifetime", c.limits.default_lifetime);
  scalar("max_lifetime", "limits.max_lifetime", c.limits.max_lifetime);
  scalar("unauth_requests_per_second", "limits.unauth_requests_per_second", c.limits.unauth_requests_per_second);
  scalar("max_connections", "limits.max_connections", c.limits.max_connections);
  scalar("max_connections_per_ip", "limits.max_connections_per_ip", c.limits.max_connections_per_ip);
  scalar("handshake_timeout", "limits.handshake_timeout", c.limits.handshake_timeout);
  scalar("connection_idle_timeout", "limits.connection_idle_timeout", c.limits.connection_idle_timeout);
  scalar("connection_write_budget", "limits.connection_write_budget", c.limits.connection_write_budget);
  out << YAML::EndMap;

  out << YAML::Key << "tls" << YAML::Value << YAML::BeginMap;
  scalar("cert", "tls.cert", c.tls.cert);
  scalar("key", "tls.key", c.tls.key);  // a path, not the key itself
  scalar("ciphers", "tls.ciphers", c.tls.ciphers);
  scalar("ciphersuites", "tls.ciphersuites", c.tls.ciphersuites);
  scalar("min_version", "tls.min_version", c.tls.min_version);
  scalar("reload_interval", "tls.reload_interval", c.tls.reload_interval);
  out << YAML::EndMap;

  out << YAML::Key << "log" << YAML::Value << YAML::BeginMap;
  scalar("level", "log.level", std::string(to_string(c.log.level)));
  scalar("format", "log.format", std::string(to_string(c.log.format)));
  out << YAML::EndMap;

  out << YAML::Key << "http" << YAML::Value << YAML::BeginMap;
  scalar("address", "http.address", c.http.address ? c.http.address->to_string() : std::string());
  list_key("api_keys", "http.api_keys", c.http.api_keys.empty());
  out << YAML::BeginSeq;
  for (const auto& k : c.http.api_keys) {
    static constexpr char kHex[] = "0123456789abcdef";
    std::string hex;
    for (uint8_t b : k.sha256) {
      hex += kHex[b >> 4];
      hex += kHex[b & 15];
    }
    // A hash of a random key, not the key: shown, so an operator can tell the keys apart.
    out << YAML::Flow << YAML::BeginMap << YAML::Key << "name" << YAML::Value << k.name << YAML::Key << "sha256"
        << YAML::Value << hex << YAML::EndMap;
  }
  out << YAML::EndSeq;
  scalar("api_requests_per_second", "http.api_requests_per_second", c.http.api_requests_per_second);
  list_key("ice_urls", "http.ice_urls", c.http.ice_urls.empty());
  out << c.http.ice_urls;
  scalar("credential_ttl", "http.credential_ttl", c.http.credential_ttl);
  scalar("max_credential_ttl", "http.max_credential_ttl", c.http.max_credential_ttl);
  out << YAML::EndMap;

  out << YAML::Key << "drain" << YAML::Value << YAML::BeginMap;
  scalar("timeout", "drain.timeout", c.drain.timeout);
  scalar("alternate_server", "drain.alternate_server",
         c.drain.alternate_server ? c.drain.alternate_server->to_string() : std::string());
  out << YAML::EndMap;

  out << YAML::Key << "database" << YAML::Value << YAML::BeginMap;
  if (!c.database.url_file.empty()) scalar("url_file", "database.url_file", c.database.url_file);
  else scalar("url", "database.url", mask_conninfo(c.database.url));
  scalar("pool_size", "database.pool_size", c.database.pool_size);
  scalar("cache_ttl", "database.cache_ttl", c.database.cache_ttl);
  scalar("negative_cache_ttl", "database.negative_cache_ttl", c.database.negative_cache_ttl);
  scalar("max_stale", "database.max_stale", c.database.max_stale);
  scalar("secrets_refresh", "database.secrets_refresh", c.database.secrets_refresh);
  out << YAML::EndMap;

  out << YAML::Key << "nat_discovery" << YAML::Value << YAML::BeginMap;
  scalar("other_address", "nat_discovery.other_address",
         c.nat_discovery.other_address ? c.nat_discovery.other_address->ip_string() : std::string());
  scalar("other_port", "nat_discovery.other_port", c.nat_discovery.other_port);
  out << YAML::EndMap;

  out << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

}  // namespace ferry::server
