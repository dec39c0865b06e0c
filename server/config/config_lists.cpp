// The YAML hooks of the list keys (listeners, relay.addresses, auth.users, ...): each reads its
// sequence item by item, checks the keys of mapping items and names file:line and the item in
// every error ("ferry.yaml:7: auth.users[1].password: must not be empty").
#include "server/config/config_lists.h"

#include <algorithm>
#include <map>

#include "server/config/config_values.h"

namespace ferry::server {

using namespace detail;

std::optional<ConfigError> parse_string_list_yaml(YamlReader& r, const YAML::Node& seq, const std::string& path,
                                                  std::string (*check)(std::string_view),
                                                  std::vector<std::string>& out) {
  std::vector<std::string> items;
  for (size_t i = 0; i < seq.size(); ++i) {
    std::string item_path = path + "[" + std::to_string(i) + "]";
    std::string text;
    if (auto e = r.scalar_text(seq[i], seq[i].Mark(), item_path, text)) return e;
    if (auto d = check(text); !d.empty()) return r.error(seq[i].Mark(), item_path, d);
    items.push_back(text);
  }
  out = std::move(items);
  return std::nullopt;
}

std::optional<ConfigError> parse_listeners_yaml(YamlReader& r, const YAML::Node& seq, const YAML::Mark& list_mark) {
  std::vector<ListenerConfig> out;
  for (size_t i = 0; i < seq.size(); ++i) {
    const YAML::Node item = seq[i];
    std::string item_path = "listeners[" + std::to_string(i) + "]";
    if (item.IsScalar()) {  // shorthand: "0.0.0.0:3478/udp"
      std::vector<ListenerConfig> parsed;
      if (auto d = parse_listener_spec(item.Scalar(), parsed); !d.empty()) return r.error(item.Mark(), item_path, d);
      out.insert(out.end(), parsed.begin(), parsed.end());
      continue;
    }
    if (!item.IsMap())
      return r.error(item.Mark(), item_path,
                     "must be a mapping with address, port, transport, or \"IP:PORT/TRANSPORT\"");
    ListenerConfig l;
    bool have_address = false;
    std::optional<uint16_t> port;
    // trusted_proxies is a list (or one comma-separated string): read here, not by each_key.
    if (const YAML::Node tp = item["trusted_proxies"]; tp) {
      const std::string key = item_path + ".trusted_proxies";
      if (tp.IsSequence()) {
        if (auto e = parse_string_list_yaml(r, tp, key, check_cidr, l.trusted_proxies)) return e;
      } else {
        std::string text;
        if (auto e = r.scalar_text(tp, tp.Mark(), key, text)) return e;
        for (size_t start = 0; start <= text.size();) {  // "10.0.0.0/8, 127.0.0.1"
          size_t comma = std::min(text.find(',', start), text.size());
          std::string part = text.substr(start, comma - start);
          part.erase(0, part.find_first_not_of(' '));
          part.erase(part.find_last_not_of(' ') + 1);
          start = comma + 1;
          if (part.empty()) continue;
          if (auto d = check_cidr(part); !d.empty()) return r.error(tp.Mark(), key, d);
          l.trusted_proxies.push_back(part);
        }
      }
    }
    YAML::Mark proxy_mark = item.Mark();
    if (auto e = r.each_key(item, item_path, {"address", "port", "transport", "proxy_protocol", "trusted_proxies"},
                            [&](const std::string& name, const std::string& text, const YAML::Mark& m,
                                const std::string& key) -> std::optional<ConfigError> {
                              std::string d;
                              if (name == "proxy_protocol") {
                                proxy_mark = m;
                                if (text == "off" || text == "false") l.proxy_protocol = ProxyProtocol::Off;
                                else if (text == "v1") l.proxy_protocol = ProxyProtocol::V1;
                                else if (text == "v2") l.proxy_protocol = ProxyProtocol::V2;
                                else d = "must be one of off, v1, v2 (got " + quote(text) + ")";
                              } else if (name == "address") {
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
                              if (!d.empty()) return r.error(m, key, d);
                              return std::nullopt;
                            },
                            {"trusted_proxies"}))
      return e;
    if (!have_address) return r.error(item.Mark(), item_path, "needs an address (0.0.0.0 or :: for all)");
    if (l.proxy_protocol != ProxyProtocol::Off) {
      if (l.transport != Transport::Tcp && l.transport != Transport::Tls)
        return r.error(proxy_mark, item_path + ".proxy_protocol", "works on tcp and tls listeners only");
      if (l.trusted_proxies.empty())
        return r.error(proxy_mark, item_path + ".trusted_proxies",
                       "needs the addresses of the proxies allowed to send the header (CIDR list)");
    } else if (!l.trusted_proxies.empty()) {
      return r.error(item.Mark(), item_path + ".trusted_proxies", "only means something with proxy_protocol v1 or v2");
    }
    l.address.port = port.value_or(default_port(l.transport));
    out.push_back(l);
  }
  if (out.empty()) return r.error(list_mark, "listeners", "needs at least one listener");
  r.config().listeners = std::move(out);
  return std::nullopt;
}

std::optional<ConfigError> parse_relay_addresses_yaml(YamlReader& r, const YAML::Node& seq,
                                                      const YAML::Mark& list_mark) {
  std::vector<RelayAddressConfig> out;
  for (size_t i = 0; i < seq.size(); ++i) {
    const YAML::Node item = seq[i];
    std::string item_path = "relay.addresses[" + std::to_string(i) + "]";
    RelayAddressConfig ra;
    if (item.IsScalar()) {  // shorthand: just the address
      if (auto d = parse_ip_into(ra.address, item.Scalar()); !d.empty()) return r.error(item.Mark(), item_path, d);
      out.push_back(ra);
      continue;
    }
    if (!item.IsMap())
      return r.error(item.Mark(), item_path, "must be an IP address or a mapping with address and external");
    bool have_address = false;
    YAML::Mark external_mark;
    if (auto e = r.each_key(item, item_path, {"address", "external"},
                            [&](const std::string& name, const std::string& text, const YAML::Mark& m,
                                const std::string& key) -> std::optional<ConfigError> {
                              std::string d;
                              if (name == "address") {
                                d = parse_ip_into(ra.address, text);
                                have_address = true;
                              } else if (!text.empty()) {
                                stun::TransportAddress ext;
                                d = parse_ip_into(ext, text);
                                ra.external = ext;
                                external_mark = m;
                              }
                              if (!d.empty()) return r.error(m, key, d);
                              return std::nullopt;
                            }))
      return e;
    if (!have_address) return r.error(item.Mark(), item_path, "needs an address");
    out.push_back(ra);
  }
  if (out.empty()) return r.error(list_mark, "relay.addresses", "needs at least one address");
  r.config().relay.addresses = std::move(out);
  return std::nullopt;
}

std::optional<ConfigError> parse_users_yaml(YamlReader& r, const YAML::Node& seq, const YAML::Mark&) {
  std::vector<UserConfig> out;
  std::map<std::string, int> names;
  for (size_t i = 0; i < seq.size(); ++i) {
    const YAML::Node item = seq[i];
    std::string item_path = "auth.users[" + std::to_string(i) + "]";
    if (!item.IsMap())
      return r.error(item.Mark(), item_path, "must be a mapping with name and one of password, key, password_file");
    UserConfig u;
    int credentials = 0;
    std::string first_credential;
    if (auto e = r.each_key(item, item_path, {"name", "password", "key", "password_file"},
                            [&](const std::string& name, const std::string& text, const YAML::Mark& m,
                                const std::string& key) -> std::optional<ConfigError> {
                              std::string d;
                              if (name == "name") {
                                if (text.empty()) d = "must not be empty";
                                if (text.size() > 508) d = "must be at most 508 bytes";  // RFC 8489 §14.3
                                u.name = text;
                              } else {
                                if (++credentials > 1)
                                  return r.error(m, key,
                                                 "set only one of password, key, password_file (already have " +
                                                     first_credential + ")");
                                first_credential = name;
                                if (name == "password") {
                                  if (text.empty()) d = "must not be empty";
                                  u.password = text;
                                } else if (name == "key") {
                                  d = parse_key_hex(u.key, text);
                                } else {
                                  d = read_secret_file(u.password, u.password_file, text, r.base_dir());
                                }
                              }
                              if (!d.empty()) return r.error(m, key, d);
                              return std::nullopt;
                            }))
      return e;
    if (u.name.empty()) return r.error(item.Mark(), item_path, "needs a name");
    if (credentials == 0)
      return r.error(item.Mark(), item_path, "user '" + u.name + "' needs one of password, key, password_file");
    if (auto prev = names.find(u.name); prev != names.end())
      return r.error(item.Mark(), item_path + ".name",
                     "duplicate user '" + u.name + "' (first on line " + std::to_string(prev->second) + ")");
    names[u.name] = item.Mark().line + 1;
    out.push_back(std::move(u));
  }
  r.config().auth.users = std::move(out);
  return std::nullopt;
}

std::optional<ConfigError> parse_api_keys_yaml(YamlReader& r, const YAML::Node& seq, const YAML::Mark&) {
  std::vector<ApiKeyConfig> out;
  for (size_t i = 0; i < seq.size(); ++i) {
    const YAML::Node item = seq[i];
    std::string item_path = "http.api_keys[" + std::to_string(i) + "]";
    if (!item.IsMap()) return r.error(item.Mark(), item_path, "must be a mapping with name and sha256");
    ApiKeyConfig k;
    bool have_hash = false;
    if (auto e = r.each_key(item, item_path, {"name", "sha256"},
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
                              if (!d.empty()) return r.error(m, key, d);
                              return std::nullopt;
                            }))
      return e;
    if (k.name.empty()) return r.error(item.Mark(), item_path, "needs a name");
    if (!have_hash)
      return r.error(item.Mark(), item_path, "key '" + k.name + "' needs sha256 (the SHA-256 of the key, in hex)");
    for (const auto& prev : out)
      if (prev.name == k.name)
        return r.error(item.Mark(), item_path + ".name", "duplicate API key name '" + k.name + "'");
    out.push_back(k);
  }
  r.config().http.api_keys = std::move(out);
  return std::nullopt;
}

std::optional<ConfigError> parse_shared_secrets_yaml(YamlReader& r, const YAML::Node& seq, const YAML::Mark&) {
  std::vector<SharedSecretConfig> out;
  for (size_t i = 0; i < seq.size(); ++i) {
    const YAML::Node item = seq[i];
    std::string item_path = "auth.shared_secrets[" + std::to_string(i) + "]";
    SharedSecretConfig s;
    if (item.IsScalar()) {
      if (item.Scalar().empty()) return r.error(item.Mark(), item_path, "must not be empty");
      s.secret = item.Scalar();
      out.push_back(std::move(s));
      continue;
    }
    if (!item.IsMap())
      return r.error(item.Mark(), item_path, "must be a string or a mapping with secret or secret_file");
    int n = 0;
    if (auto e = r.each_key(item, item_path, {"secret", "secret_file"},
                            [&](const std::string& name, const std::string& text, const YAML::Mark& m,
                                const std::string& key) -> std::optional<ConfigError> {
                              if (++n > 1) return r.error(m, key, "set only one of secret, secret_file");
                              std::string d;
                              if (name == "secret") {
                                if (text.empty()) d = "must not be empty";
                                s.secret = text;
                              } else {
                                d = read_secret_file(s.secret, s.secret_file, text, r.base_dir());
                              }
                              if (!d.empty()) return r.error(m, key, d);
                              return std::nullopt;
                            }))
      return e;
    if (n == 0) return r.error(item.Mark(), item_path, "needs secret or secret_file");
    out.push_back(std::move(s));
  }
  r.config().auth.shared_secrets = std::move(out);
  return std::nullopt;
}

std::optional<ConfigError> parse_oauth_keys_yaml(YamlReader& r, const YAML::Node& seq, const YAML::Mark&) {
  std::vector<OAuthKeyConfig> out;
  for (size_t i = 0; i < seq.size(); ++i) {
    const YAML::Node item = seq[i];
    std::string item_path = "auth.oauth_keys[" + std::to_string(i) + "]";
    if (!item.IsMap()) return r.error(item.Mark(), item_path, "must be a mapping with kid and key or key_file");
    OAuthKeyConfig k;
    int keys = 0;
    if (auto e = r.each_key(item, item_path, {"kid", "key", "key_file", "lifetime_max", "as_url"},
                            [&](const std::string& name, const std::string& text, const YAML::Mark& m,
                                const std::string& key) -> std::optional<ConfigError> {
                              std::string d;
                              if (name == "kid") {
                                d = check_oauth_kid(text);
                                k.kid = text;
                              } else if (name == "key" || name == "key_file") {
                                if (++keys > 1) return r.error(m, key, "set only one of key, key_file");
                                std::string b64 = text;
                                if (name == "key_file") d = read_secret_file(b64, k.key_file, text, r.base_dir());
                                if (d.empty()) d = parse_oauth_key_base64(k.key, b64);
                                std::fill(b64.begin(), b64.end(), '\0');
                              } else if (name == "lifetime_max") {
                                d = parse_uint(k.lifetime_max, text, 0, 86400 * 365);
                              } else {
                                k.as_url = text;
                              }
                              if (!d.empty()) return r.error(m, key, d);
                              return std::nullopt;
                            }))
      return e;
    if (k.kid.empty()) return r.error(item.Mark(), item_path, "needs a kid");
    if (keys == 0) return r.error(item.Mark(), item_path, "kid '" + k.kid + "' needs key or key_file");
    for (const auto& prev : out)
      if (prev.kid == k.kid) return r.error(item.Mark(), item_path + ".kid", "duplicate kid '" + k.kid + "'");
    out.push_back(std::move(k));
  }
  r.config().auth.oauth_keys = std::move(out);
  return std::nullopt;
}

}  // namespace ferry::server
