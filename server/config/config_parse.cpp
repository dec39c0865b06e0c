// YAML file -> Config, walking the schema table: single values through their row's setter, lists
// through their row's hook, sections recursively; anything else is an unknown key with a
// suggestion. Every error names file:line and the key.
#include <yaml-cpp/yaml.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "server/config/config.h"
#include "server/config/config_schema.h"
#include "server/config/config_yaml.h"

namespace ferry::server {

using detail::quote;

std::optional<ConfigError> YamlReader::load_map(const YAML::Node& node, const std::string& prefix) {
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

    const ConfigKey* key = find_config_key(path);
    if (key != nullptr && key->shape == KeyShape::Scalar) {
      std::string text;
      if (auto e = scalar_text(v, m, path, text)) return e;
      if (auto detail = key->set(config_, text, base_dir_); !detail.empty()) return error(m, path, detail);
      config_.origins[path] = at(m);
    } else if (key != nullptr) {
      if (v.IsNull()) {
        if (auto e = key->parse_yaml(*this, YAML::Node(YAML::NodeType::Sequence), m)) return e;
      } else if (!v.IsSequence()) {
        return error(m, path, "must be a list, not " + kind(v));
      } else if (auto e = key->parse_yaml(*this, v, m)) {
        return e;
      }
      config_.origins[path] = at(m);
    } else if (prefix.empty() && is_config_section(path)) {
      if (v.IsNull()) continue;  // "limits:" with nothing under it
      if (!v.IsMap()) return error(m, path, "must be a mapping of keys, not " + kind(v));
      if (auto e = load_map(v, path)) return e;
    } else {
      return unknown_key(m, name, prefix, config_children(prefix));
    }
  }
  return std::nullopt;
}

// Before reading anything (a *_file key reads a file): keys that may not appear together.
std::optional<ConfigError> YamlReader::check_exclusive(const YAML::Node& node, const std::string& prefix) const {
  for (const auto& key : config_schema()) {
    if (key.excludes.empty() || key.section() != prefix) continue;
    const std::string ka(key.name());
    const std::string kb = key.excludes;
    std::optional<YAML::Mark> mark_b;
    bool have_a = false;
    for (auto it = node.begin(); it != node.end(); ++it) {
      if (!it->first.IsScalar()) continue;
      if (it->first.Scalar() == ka) have_a = true;
      if (it->first.Scalar() == kb) mark_b = it->first.Mark();
    }
    const std::string path_b = prefix.empty() ? kb : prefix + "." + kb;
    if (have_a && mark_b) return error(*mark_b, path_b, "set either " + ka + " or " + kb + ", not both");
  }
  return std::nullopt;
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
  } catch (const YAML::Exception& e) { return ConfigError{source + ": invalid YAML: " + e.what()}; }
  if (root.IsNull()) return config;  // empty file: defaults
  if (!root.IsMap())
    return ConfigError{source + ":" + std::to_string(root.Mark().line + 1) +
                       ": the top level must be a mapping of keys (like 'realm: example.org'), not " +
                       YamlReader::kind(root)};
  YamlReader reader{source, std::string(base_dir), config};
  try {
    if (auto e = reader.load_map(root, "")) return *e;
  } catch (const YAML::Exception& e) {
    return ConfigError{source + ":" + std::to_string(e.mark.line + 1) + ": " + e.msg};
  }
  return config;
}

ConfigResult parse_config_file(const std::string& path, const Config& base) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return ConfigError{"config file " + quote(path) + " does not exist"};
  if (std::filesystem::is_directory(path, ec))
    return ConfigError{"config file " + quote(path) + " is a directory, not a file"};
  std::ifstream in(path, std::ios::binary);
  if (!in) return ConfigError{"cannot read config file " + quote(path) + ": " + std::strerror(errno)};
  std::ostringstream buf;
  buf << in.rdbuf();
  if (in.bad()) return ConfigError{"cannot read config file " + quote(path)};
  auto dir = std::filesystem::path(path).parent_path().string();
  return parse_config_string(buf.str(), path, base, dir);
}

}  // namespace ferry::server
