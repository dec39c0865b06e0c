// Reading YAML into a Config: where a node is ("ferry.yaml:12"), errors naming the key, and the
// helpers list hooks (config_lists.cpp) use for their items. Internal to server/config.
#pragma once

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "server/config/config.h"
#include "server/config/config_values.h"

namespace ferry::server {

class YamlReader {
 public:
  YamlReader(std::string source, std::string base_dir, Config& config)
      : source_(std::move(source)), base_dir_(std::move(base_dir)), config_(config) {}

  Config& config() { return config_; }
  const std::string& base_dir() const { return base_dir_; }

  std::string at(const YAML::Mark& m) const {
    if (m.line < 0) return source_;
    return source_ + ":" + std::to_string(m.line + 1);
  }
  ConfigError error(const YAML::Mark& m, std::string_view key, std::string_view detail) const {
    return ConfigError{at(m) + ": " + std::string(key) + ": " + std::string(detail)};
  }
  // "ferry.yaml:3: unknown key 'prot' in listeners[0] (did you mean 'port'?)", or the known keys.
  ConfigError unknown_key(const YAML::Mark& m, const std::string& name, const std::string& where,
                          const std::vector<std::string>& known) const {
    std::string msg = at(m) + ": unknown key " + detail::quote(name);
    if (!where.empty()) msg += " in " + where;
    if (auto s = detail::suggest(name, known); !s.empty()) {
      msg += " (did you mean " + detail::quote(s) + "?)";
    } else {
      msg += " (known keys:";
      for (const auto& k : known) msg += " " + k;
      msg += ")";
    }
    return ConfigError{msg};
  }

  static std::string kind(const YAML::Node& n) {
    if (n.IsSequence()) return "a list";
    if (n.IsMap()) return "a mapping";
    return "a value";
  }

  // The text of a scalar (null = ""), or an error when the node is a list or a mapping.
  std::optional<ConfigError> scalar_text(const YAML::Node& n, const YAML::Mark& m, std::string_view key,
                                         std::string& out) const {
    if (n.IsNull()) {
      out.clear();
      return std::nullopt;
    }
    if (!n.IsScalar()) return error(m, key, "must be a single value, not " + kind(n));
    out = n.Scalar();
    return std::nullopt;
  }

  // Reads a mapping item of a list: calls `on_key(name, text, mark, path)` for each key after
  // checking it is one of `allowed`. Keys in `read_by_caller` (list values) are only checked for
  // being allowed and unique; the caller reads their nodes itself.
  template <class F>
  std::optional<ConfigError> each_key(const YAML::Node& item, const std::string& item_path,
                                      const std::vector<std::string>& allowed, F&& on_key,
                                      const std::vector<std::string>& read_by_caller = {}) const {
    std::set<std::string> seen;
    for (auto it = item.begin(); it != item.end(); ++it) {
      const YAML::Mark m = it->first.Mark();
      if (!it->first.IsScalar()) return ConfigError{at(m) + ": keys must be plain names"};
      std::string name = it->first.Scalar();
      std::string path = item_path + "." + name;
      if (std::find(allowed.begin(), allowed.end(), name) == allowed.end())
        return unknown_key(m, name, item_path, allowed);
      if (!seen.insert(name).second) return error(m, path, "duplicate key");
      if (std::find(read_by_caller.begin(), read_by_caller.end(), name) != read_by_caller.end()) continue;
      std::string text;
      if (auto e = scalar_text(it->second, m, path, text)) return e;
      if (auto e = on_key(name, text, m, path)) return e;
    }
    return std::nullopt;
  }

  // A mapping of schema keys under `prefix` ("" = the top level).
  std::optional<ConfigError> load_map(const YAML::Node& node, const std::string& prefix);

 private:
  std::optional<ConfigError> check_exclusive(const YAML::Node& node, const std::string& prefix) const;

  std::string source_;
  std::string base_dir_;
  Config& config_;
};

}  // namespace ferry::server
