// --check-config's dump: YAML of the effective config in schema order, secrets masked, each value
// not from the defaults followed by a comment saying where it came from. It loads back to the same
// config (tests/fuzz/fuzz_config.cpp checks that).
#include <yaml-cpp/yaml.h>

#include "base/secret_mask.h"
#include "server/config/config.h"
#include "server/config/config_lists.h"
#include "server/config/config_schema.h"

namespace ferry::server {

namespace {
void flow_if_empty(YAML::Emitter& out, bool empty) {
  if (empty) out << YAML::Flow;
}
}  // namespace

void dump_strings(YAML::Emitter& out, const std::vector<std::string>& items) {
  flow_if_empty(out, items.empty());
  out << items;
}

void dump_listeners(YAML::Emitter& out, const Config& c) {
  flow_if_empty(out, c.listeners.empty());
  out << YAML::BeginSeq;
  for (const auto& l : c.listeners) {
    out << YAML::BeginMap << YAML::Key << "address" << YAML::Value << l.address.ip_string() << YAML::Key << "port"
        << YAML::Value << l.address.port << YAML::Key << "transport" << YAML::Value
        << std::string(to_string(l.transport));
    if (l.proxy_protocol != ProxyProtocol::Off) {
      out << YAML::Key << "proxy_protocol" << YAML::Value << std::string(to_string(l.proxy_protocol));
      out << YAML::Key << "trusted_proxies" << YAML::Value << YAML::Flow << l.trusted_proxies;
    }
    out << YAML::EndMap;
  }
  out << YAML::EndSeq;
}

void dump_relay_addresses(YAML::Emitter& out, const Config& c) {
  flow_if_empty(out, c.relay.addresses.empty());
  out << YAML::BeginSeq;
  for (const auto& r : c.relay.addresses) {
    out << YAML::BeginMap << YAML::Key << "address" << YAML::Value << r.address.ip_string();
    if (r.external) out << YAML::Key << "external" << YAML::Value << r.external->ip_string();
    out << YAML::EndMap;
  }
  out << YAML::EndSeq;
}

void dump_users(YAML::Emitter& out, const Config& c) {
  flow_if_empty(out, c.auth.users.empty());
  out << YAML::BeginSeq;
  for (const auto& u : c.auth.users) {
    out << YAML::BeginMap << YAML::Key << "name" << YAML::Value << u.name;
    if (!u.password_file.empty()) out << YAML::Key << "password_file" << YAML::Value << u.password_file;
    else if (u.key) out << YAML::Key << "key" << YAML::Value << std::string(kMasked);
    else out << YAML::Key << "password" << YAML::Value << std::string(kMasked);
    out << YAML::EndMap;
  }
  out << YAML::EndSeq;
}

void dump_shared_secrets(YAML::Emitter& out, const Config& c) {
  flow_if_empty(out, c.auth.shared_secrets.empty());
  out << YAML::BeginSeq;
  for (const auto& s : c.auth.shared_secrets) {
    if (!s.secret_file.empty())
      out << YAML::BeginMap << YAML::Key << "secret_file" << YAML::Value << s.secret_file << YAML::EndMap;
    else out << std::string(kMasked);
  }
  out << YAML::EndSeq;
}

void dump_oauth_keys(YAML::Emitter& out, const Config& c) {
  flow_if_empty(out, c.auth.oauth_keys.empty());
  out << YAML::BeginSeq;
  for (const auto& k : c.auth.oauth_keys) {
    out << YAML::BeginMap << YAML::Key << "kid" << YAML::Value << k.kid;
    if (!k.key_file.empty()) out << YAML::Key << "key_file" << YAML::Value << k.key_file;
    else out << YAML::Key << "key" << YAML::Value << std::string(kMasked);
    if (k.lifetime_max != 0) out << YAML::Key << "lifetime_max" << YAML::Value << k.lifetime_max;
    if (!k.as_url.empty()) out << YAML::Key << "as_url" << YAML::Value << k.as_url;
    out << YAML::EndMap;
  }
  out << YAML::EndSeq;
}

void dump_api_keys(YAML::Emitter& out, const Config& c) {
  flow_if_empty(out, c.http.api_keys.empty());
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
}

std::string dump_effective(const Config& c) {
  YAML::Emitter out;
  auto origin = [&](const std::string& key) {
    if (auto it = c.origins.find(key); it != c.origins.end()) out << YAML::Comment("from " + it->second);
  };
  out << YAML::BeginMap;
  std::string_view open;  // the section whose mapping is open, "" = none
  for (const auto& key : config_schema()) {
    if (key.section() != open) {
      if (!open.empty()) out << YAML::EndMap;
      open = key.section();
      if (!open.empty()) out << YAML::Key << std::string(open) << YAML::Value << YAML::BeginMap;
    }
    if (key.shown && !key.shown(c)) continue;
    const std::string name(key.name());
    if (key.shape == KeyShape::List) {
      out << YAML::Key << name;
      origin(key.key);
      out << YAML::Value;
      key.dump_list(out, c);
      continue;
    }
    std::string value = key.get(c);
    if (key.secret == Secrecy::Masked) value = std::string(kMasked);
    if (key.secret == Secrecy::Conninfo) value = mask_conninfo(value);
    out << YAML::Key << name << YAML::Value << value;
    origin(key.key);
  }
  if (!open.empty()) out << YAML::EndMap;
  out << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

}  // namespace ferry::server
