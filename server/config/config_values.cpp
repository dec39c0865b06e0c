// Value parsers shared by the schema table, the YAML list hooks and the FERRY_* lists: each turns
// text into a field and returns "" or the detail of what is wrong, which callers prefix with the
// location and the key ("ferry.yaml:12: limits.max_lifetime: must be at most 3600 (got 7200)").
#include "server/config/config_values.h"

#include "auth/access_token.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>

namespace ferry::server {

namespace detail {
std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}
}  // namespace detail

using namespace detail;

std::string_view to_string(Transport t) {
  switch (t) {
    case Transport::Udp: return "udp";
    case Transport::Tcp: return "tcp";
    case Transport::Tls: return "tls";
    case Transport::Dtls: return "dtls";
  }
  return "udp";
}

std::string_view to_string(ProxyProtocol p) {
  switch (p) {
    case ProxyProtocol::Off: return "off";
    case ProxyProtocol::V1: return "v1";
    case ProxyProtocol::V2: return "v2";
  }
  return "off";
}

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

std::string_view to_string(DataPath d) {
  switch (d) {
    case DataPath::User: return "user";
    case DataPath::Kernel: return "kernel";
    case DataPath::Auto: return "auto";
  }
  return "user";
}

std::optional<DataPath> parse_data_path(std::string_view text) {
  auto t = lower(text);
  if (t == "user") return DataPath::User;
  if (t == "kernel") return DataPath::Kernel;
  if (t == "auto") return DataPath::Auto;
  return std::nullopt;
}

std::string_view to_string(LogFormat f) { return f == LogFormat::Json ? "json" : "text"; }

std::optional<LogFormat> parse_log_format(std::string_view text) {
  auto t = lower(text);
  if (t == "text") return LogFormat::Text;
  if (t == "json") return LogFormat::Json;
  return std::nullopt;
}

namespace detail {

std::string quote(std::string_view s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\n') out += "\\n";
    else if (c == '\t') out += "\\t";
    else out += c;
  }
  return out + "'";
}

std::string parse_bool(bool& out, std::string_view text) {
  auto t = lower(text);
  if (t == "true" || t == "yes" || t == "on" || t == "1") {
    out = true;
    return "";
  }
  if (t == "false" || t == "no" || t == "off" || t == "0") {
    out = false;
    return "";
  }
  return "must be true or false (got " + quote(text) + ")";
}

static size_t utf8_chars(std::string_view s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

// REALM and SOFTWARE: fewer than 128 characters, at most 763 bytes (RFC 8489 §14.9, §14.14).
// Well-formed UTF-8 (RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF) and no
// control characters: what RFC 8489 allows in REALM and SOFTWARE (quoted-string text).
static bool is_utf8_text(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      if (c < 0x20 || c == 0x7F) return false;
      ++i;
      continue;
    }
    size_t n = 0;
    uint32_t cp = 0;
    if ((c & 0xE0) == 0xC0) {
      n = 1;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      n = 2;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      n = 3;
      cp = c & 0x07;
    } else return false;
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
  if (utf8_chars(text) >= 128 || text.size() > 763)
    return "must be fewer than 128 characters (got " + std::to_string(utf8_chars(text)) + ")";
  out = std::string(text);
  return "";
}

std::string resolve_path(std::string_view path, std::string_view base_dir) {
  std::filesystem::path p{std::string(path)};
  if (p.is_relative() && !base_dir.empty())
    return (std::filesystem::path(std::string(base_dir)) / p).lexically_normal().string();
  return std::string(path);
}

std::string parse_path(std::string& out, std::string_view text, std::string_view base_dir) {
  out = text.empty() ? std::string() : resolve_path(text, base_dir);
  return "";
}

// Reads a secret from a file: one trailing newline (\n or \r\n) is dropped, the rest is the secret.
std::string read_secret_file(std::string& out, std::string& path_out, std::string_view text,
                             std::string_view base_dir) {
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
  if (text.empty() || lower(text) == "off") {
    out.reset();
    return "";
  }
  auto a = stun::TransportAddress::parse(text);
  if (!a || a->port == 0)
    return "must be IP:PORT like 127.0.0.1:9641 or [::1]:9641, or \"\" or off to disable (got " + quote(text) + ")";
  out = *a;
  return "";
}

std::string parse_optional_address(std::optional<stun::TransportAddress>& out, std::string_view text) {
  if (text.empty()) {
    out.reset();
    return "";
  }
  auto a = stun::TransportAddress::parse(text, 3478);
  if (!a || a->port == 0)
    return "must be IP[:PORT] like 192.0.2.7:3478 or [2001:db8::7]:3478, or \"\" for none (got " + quote(text) + ")";
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
  if (text.size() != 64)
    return "must be 64 hex digits, the SHA-256 of the key (got " + std::to_string(text.size()) + " characters)";
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
    if (scheme != "postgres" && scheme != "postgresql")
      return "must be a postgresql:// URL or a libpq key=value string (got scheme '" + scheme + "')";
  }
  out = std::string(text);
  return "";
}

uint16_t default_port(Transport t) { return (t == Transport::Tls || t == Transport::Dtls) ? 5349 : 3478; }

std::string parse_key_hex(std::optional<std::array<uint8_t, 16>>& out, std::string_view text) {
  if (text.size() != 32)
    return "must be 32 hex digits, MD5(name:realm:password) (got " + std::to_string(text.size()) + " characters)";
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

static size_t edit_distance(std::string_view a, std::string_view b) {
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
    if (d < best_d) {
      best_d = d;
      best = k;
    }
  }
  if (best.empty()) return "";
  size_t limit = std::max<size_t>(2, best.size() / 3);
  return best_d <= limit ? best : "";
}

}  // namespace detail

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

std::string detail::parse_oauth_key_base64(std::array<uint8_t, 32>& out, std::string_view text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' ')) text.remove_suffix(1);
  auto bytes = auth::base64_decode(text);
  if (!bytes) return "must be base64";
  if (bytes->size() != out.size())
    return "must be 32 bytes (A256GCM) once decoded, got " + std::to_string(bytes->size());
  std::copy(bytes->begin(), bytes->end(), out.begin());
  return "";
}

std::string detail::check_oauth_kid(std::string_view kid) {
  if (kid.empty()) return "kid must not be empty";
  if (kid.size() > 128) return "kid must be at most 128 bytes";
  for (char c : kid)
    if (static_cast<unsigned char>(c) < 0x21 || c == 0x7f) return "kid must be printable, without spaces";
  return "";
}

std::string parse_oauth_key_spec(std::string_view text, std::vector<OAuthKeyConfig>& out) {
  auto colon = text.find(':');
  if (colon == std::string_view::npos) return "must be KID:BASE64KEY";
  OAuthKeyConfig k;
  k.kid = std::string(text.substr(0, colon));
  if (auto d = check_oauth_kid(k.kid); !d.empty()) return d;
  if (auto d = parse_oauth_key_base64(k.key, text.substr(colon + 1)); !d.empty()) return "key " + d;
  for (const auto& prev : out)
    if (prev.kid == k.kid) return "duplicate kid '" + k.kid + "'";
  out.push_back(std::move(k));
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
  return "must be a stun:, stuns:, turn: or turns: URL like turn:turn.example.org:3478?transport=udp (got " +
         quote(text) + ")";
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

}  // namespace ferry::server
