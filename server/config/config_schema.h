// The configuration schema: one table (config_schema.cpp) with a row per key. Everything about a
// key comes from its row: the default Config() applies, how YAML, FERRY_* variables and --set read
// it, the unknown-key suggestions, the --check-config dump and docs/CONFIG.md.
//
// Sections (relay, limits, ...) are the prefixes before the dot; keys are at most two deep.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "server/config/config.h"

namespace YAML {
class Node;
class Emitter;
struct Mark;
}  // namespace YAML

namespace ferry::server {

class YamlReader;  // config_yaml.h

enum class KeyShape {
  Scalar,  // one value: from YAML, FERRY_* and --set alike
  List,    // a YAML sequence, read by a hook; from FERRY_* as comma-separated items if set_items
};

enum class Secrecy {
  None,
  Masked,    // dumped as ferry::kMasked (list hooks mask their items themselves)
  Conninfo,  // a libpq connection string: dumped through ferry::mask_conninfo
};

struct ConfigKey {
  std::string key;  // dotted: "limits.max_lifetime"
  KeyShape shape = KeyShape::Scalar;
  std::string type;           // for the docs: "integer 1-3600", "boolean", "list of CIDR", ...
  std::string default_value;  // as YAML or FERRY_* would give it (lists: comma-separated); "" = zero value
  std::string doc;            // one line for docs/CONFIG.md
  Secrecy secret = Secrecy::None;
  bool reloadable = false;  // SIGHUP applies a change without a restart
  std::string excludes;     // a sibling key that may not be set in the same mapping
  std::string doc_default;  // shown in the docs instead of default_value, when that would mislead

  // Scalars: set from text (error detail or ""), and the text the dump shows.
  std::function<std::string(Config&, std::string_view text, std::string_view base_dir)> set;
  std::function<std::string(const Config&)> get;
  // Lists: the YAML hook, the FERRY_* / default hook (null = not from the environment), the dump.
  std::function<std::optional<ConfigError>(YamlReader&, const YAML::Node& seq, const YAML::Mark& list_mark)> parse_yaml;
  std::function<std::string(Config&, const std::vector<std::string>& items)> set_items;
  std::function<void(YAML::Emitter&, const Config&)> dump_list;  // after Key and Value: the sequence
  // Dumped only when this says so (null = always): database.url and url_file show one of the two.
  std::function<bool(const Config&)> shown;

  std::string_view section() const;  // "limits" ("" at the top level)
  std::string_view name() const;     // "max_lifetime"
};

// Every key, in dump order.
const std::vector<ConfigKey>& config_schema();
const ConfigKey* find_config_key(std::string_view dotted_key);
bool is_config_section(std::string_view name);  // "limits", "relay", ...
// The names directly under `prefix` ("" = top level): single values, then lists, then sections.
std::vector<std::string> config_children(std::string_view prefix);

}  // namespace ferry::server
