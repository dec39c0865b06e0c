// FERRY_* environment variables and --set: every single-value key of the schema table has a
// variable (dots become underscores, upper case); list keys with a set_items hook take
// comma-separated items.
#include <algorithm>
#include <cctype>

#include "server/config/config.h"
#include "server/config/config_schema.h"
#include "server/config/config_values.h"

extern char** environ;

namespace ferry::server {

using detail::lower;
using detail::suggest;

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

// Keys with a variable, single values first (their variables are listed in that order).
std::vector<const ConfigKey*> environment_keys() {
  std::vector<const ConfigKey*> out;
  for (const auto& k : config_schema())
    if (k.shape == KeyShape::Scalar) out.push_back(&k);
  for (const auto& k : config_schema())
    if (k.shape == KeyShape::List && k.set_items) out.push_back(&k);
  return out;
}
}  // namespace

std::string env_var_for(std::string_view dotted_key) {
  std::string out = "FERRY_";
  for (char c : dotted_key) out += c == '.' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

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
  for (const ConfigKey* k : environment_keys()) out.emplace_back(env_var_for(k->key), k->key);
  return out;
}

std::optional<ConfigError> apply_environment(Config& config, const Environment& env) {
  for (const ConfigKey* k : environment_keys()) {
    auto var = env_var_for(k->key);
    auto it = env.find(var);
    if (it == env.end()) continue;
    const std::string detail =
        k->shape == KeyShape::Scalar ? k->set(config, it->second, "") : k->set_items(config, split_commas(it->second));
    if (!detail.empty()) return ConfigError{var + ": " + k->key + ": " + detail};
    config.origins[k->key] = var;
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
      out.push_back("environment variable " + var + " is not a ferry setting and is ignored (did you mean " + upper +
                    "?)");
    }
  }
  return out;
}

std::string set_config_value(Config& config, std::string_view dotted_key, std::string_view text,
                             std::string_view origin) {
  const ConfigKey* k = find_config_key(dotted_key);
  if (k == nullptr || k->shape != KeyShape::Scalar) return "not a setting that takes a single value";
  if (auto d = k->set(config, text, ""); !d.empty()) return d;
  config.origins[std::string(dotted_key)] = std::string(origin);
  return "";
}

}  // namespace ferry::server
