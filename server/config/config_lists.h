// Hooks of the list keys in the schema table: YAML sequences in (config_lists.cpp), YAML out
// (config_dump.cpp). Internal to server/config.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "server/config/config.h"
#include "server/config/config_yaml.h"

namespace ferry::server {

// peers.allow, peers.deny, http.ice_urls: scalars, each passed through `check`.
std::optional<ConfigError> parse_string_list_yaml(YamlReader& r, const YAML::Node& seq, const std::string& path,
                                                  std::string (*check)(std::string_view),
                                                  std::vector<std::string>& out);
std::optional<ConfigError> parse_listeners_yaml(YamlReader& r, const YAML::Node& seq, const YAML::Mark& list_mark);
std::optional<ConfigError> parse_relay_addresses_yaml(YamlReader& r, const YAML::Node& seq,
                                                      const YAML::Mark& list_mark);
std::optional<ConfigError> parse_users_yaml(YamlReader& r, const YAML::Node& seq, const YAML::Mark& list_mark);
std::optional<ConfigError> parse_api_keys_yaml(YamlReader& r, const YAML::Node& seq, const YAML::Mark& list_mark);
std::optional<ConfigError> parse_shared_secrets_yaml(YamlReader& r, const YAML::Node& seq, const YAML::Mark& list_mark);
std::optional<ConfigError> parse_oauth_keys_yaml(YamlReader& r, const YAML::Node& seq, const YAML::Mark& list_mark);

// The sequences of --check-config's dump, secrets masked.
void dump_listeners(YAML::Emitter& out, const Config& c);
void dump_relay_addresses(YAML::Emitter& out, const Config& c);
void dump_users(YAML::Emitter& out, const Config& c);
void dump_shared_secrets(YAML::Emitter& out, const Config& c);
void dump_api_keys(YAML::Emitter& out, const Config& c);
void dump_oauth_keys(YAML::Emitter& out, const Config& c);
void dump_strings(YAML::Emitter& out, const std::vector<std::string>& items);

}  // namespace ferry::server
