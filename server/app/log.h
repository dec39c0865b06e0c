// Logging setup. After setup_logging() use spdlog directly (spdlog::info("..."), SPDLOG_DEBUG, ...):
// it installs the default logger. Text goes to stderr as
//   [2024-05-01 12:00:00.123] [info] message
// JSON goes to stderr as one object per line:
//   {"ts":"2024-05-01T12:00:00.123Z","level":"info","msg":"message"}
// Never pass a secret (password, key, shared secret, database URL) to a log call; log
// ferry::mask_conninfo(url) (base/secret_mask.h) instead of the URL.
#pragma once

#include <memory>

#include <spdlog/common.h>
#include <spdlog/formatter.h>

#include "server/config/config.h"

namespace spdlog::sinks {
class sink;
}

namespace ferry::server {

spdlog::level::level_enum to_spdlog(LogLevel level);

// Replaces the default logger. `sink` is for tests (e.g. an ostream_sink); nullptr = stderr.
// Safe to call again (e.g. on SIGHUP with a new format); loggers made before keep their sinks.
void setup_logging(LogLevel level, LogFormat format, std::shared_ptr<spdlog::sinks::sink> sink = nullptr);

// Changes the level of every logger at run time; thread-safe (spdlog levels are atomic).
void set_log_level(LogLevel level);

// The formatter behind LogFormat::Json, for sinks added elsewhere.
std::unique_ptr<spdlog::formatter> make_json_formatter();

}  // namespace ferry::server
