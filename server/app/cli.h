// Command line: ferry [--config FILE | --check-config FILE] [flags...]
//
// Layers, later wins: built-in defaults < config file < FERRY_* environment variables < flags.
// There are no flags for secrets (they would show in `ps` and shell history): passwords, keys,
// shared secrets and the database URL come from the config file, from files it points at
// (password_file, secret_file, url_file) or from FERRY_* variables.
//
// main() does:
//   auto r = ferry::server::parse_command_line(argc, argv, ferry::server::process_environment());
//   if (auto* exit = std::get_if<ferry::server::ExitNow>(&r)) {
//     std::fputs(exit->text.c_str(), exit->code == 0 ? stdout : stderr);
//     return exit->code;
//   }
//   auto& run = std::get<ferry::server::RunConfig>(r);
//   ferry::server::setup_logging(run.config.log.level, run.config.log.format);
//   for (auto& w : run.warnings) spdlog::warn("{}", w);
#pragma once

#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "server/config/config.h"

namespace ferry::server {

// Start the server with this.
struct RunConfig {
  Config config;                           // validated
  std::optional<std::string> config_path;  // the file loaded (--config or FERRY_CONFIG), if any; for SIGHUP reloads
  std::vector<std::string> warnings;       // to log once logging is up (e.g. misspelt FERRY_* variables)
};

// Print `text` (stdout when code is 0, stderr otherwise) and exit with `code`:
// --help, --version, --check-config, and every error (code 2).
struct ExitNow {
  int code = 0;
  std::string text;  // ends with a newline
};

using CommandLineResult = std::variant<RunConfig, ExitNow>;

// `env` is the FERRY_* environment (process_environment() in main; a map in tests).
// Calling it again with the same argv re-reads the file the way startup did (for SIGHUP): on an
// ExitNow{2, message} keep running with the old config.
CommandLineResult parse_command_line(int argc, const char* const* argv, const Environment& env);

// The --help text.
std::string help_text();

}  // namespace ferry::server
