// docs/CONFIG.md from the schema table. A unit test fails when the file in the tree differs, so
// the reference cannot drift from the code; regenerate with `ferry --config-reference`.
#include <string>

#include "server/config/config.h"
#include "server/config/config_schema.h"

namespace ferry::server {

namespace {
// A table cell: code-quoted, with the pipes Markdown would split on escaped.
std::string cell(std::string_view text, bool code) {
  std::string out;
  for (char c : text) {
    if (c == '|') out += "\\|";
    else out += c;
  }
  if (!code) return out;
  return out.empty() ? std::string("`\"\"`") : "`" + out + "`";
}
}  // namespace

std::string config_reference_markdown() {
  std::string md =
      "# Configuration reference\n"
      "\n"
      "<!-- Generated from server/config/config_schema.cpp by `ferry --config-reference > docs/CONFIG.md`;\n"
      "     do not edit by hand (a unit test compares the two). -->\n"
      "\n"
      "Settings, later wins: built-in defaults < config file (`--config FILE`, YAML) < `FERRY_*`\n"
      "environment variables < command-line flags. Every single-value key has a variable: dots become\n"
      "underscores, upper case (`limits.max_lifetime` -> `FERRY_LIMITS_MAX_LIFETIME`), and can be set\n"
      "with `--set KEY=VALUE`; lists marked *env* take comma-separated items from their variable.\n"
      "Secrets (marked *secret*) are never taken as flags and are masked by `--check-config`.\n"
      "*Reload* says whether SIGHUP applies a change to a running server; other keys need a restart.\n"
      "An annotated example is `examples/ferry.yaml`.\n";
  std::string_view section = "-";
  for (const auto& k : config_schema()) {
    if (k.section() != section) {
      section = k.section();
      md += "\n## ";
      md += section.empty() ? std::string("Top level") : cell(section, true);
      md += "\n\n";
      md += "| Key | Type | Default | Reload | Description |\n";
      md += "|-----|------|---------|--------|-------------|\n";
    }
    std::string type = cell(k.type, false);
    if (k.shape == KeyShape::List && k.set_items) type += ", env";
    if (k.secret != Secrecy::None) type += ", secret";
    const std::string& def = k.doc_default.empty() ? k.default_value : k.doc_default;
    md += "| " + cell(k.key, true) + " | " + type + " | " + cell(def, true) + " | " + (k.reloadable ? "yes" : "no") +
          " | " + cell(k.doc, false) + " |\n";
  }
  return md;
}

}  // namespace ferry::server
