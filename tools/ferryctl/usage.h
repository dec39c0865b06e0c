// `ferryctl usage [--user U] [--since T] [--json]`: sums of the usage records ferry nodes write
// (table usage_records, db/migrations/0004_usage.sql), per user.
#pragma once

#include <string>

#include <CLI/CLI.hpp>

namespace ferry::ferryctl {

// Adds the `usage` subcommand to `app`. It runs from its own callback once the command line is
// parsed and ends the parse with CLI::RuntimeError carrying its exit status (0 included), as
// `probe` does, so main() needs nothing else. `database_flag` is the value of ferryctl's
// --database (read when the command runs); empty: $FERRY_DATABASE_URL.
void add_usage_command(CLI::App& app, const std::string& database_flag);

}  // namespace ferry::ferryctl
