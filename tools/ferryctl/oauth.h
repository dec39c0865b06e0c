// `ferryctl oauthkey`: the RFC 7635 AS-RS keys in PostgreSQL (table oauth_keys, migration 0006).
//
//   ferryctl oauthkey add KID [--key-stdin] [--as-url URL] [--lifetime-max SECONDS]
//   ferryctl oauthkey list
//   ferryctl oauthkey remove KID
//
// add without --key-stdin makes a random 32-byte A256GCM key and prints it once, in base64, on
// stdout (for the authorization server); with --key-stdin it reads the AS's key (base64) from
// stdin. Keys never come from argv and list never shows them.
#pragma once

#include <string>

#include <CLI/CLI.hpp>

namespace ferry::ferryctl {

// Adds the `oauthkey` subcommand; like probe it runs from its parse callback and ends the parse
// with CLI::RuntimeError carrying the exit status. `database` is the --database value (may be
// empty: FERRY_DATABASE_URL), read when the command runs.
void add_oauthkey_command(CLI::App& app, const std::string& database);

}  // namespace ferry::ferryctl
