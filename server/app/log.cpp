#include "server/app/log.h"

#include <spdlog/logger.h>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <ctime>
#include <string_view>

namespace ferry::server {

namespace {

constexpr const char* kTextPattern = "[%Y-%m-%d %H:%M:%S.%e] [%^%l%$] %v";

void append(spdlog::memory_buf_t& dest, std::string_view s) { dest.append(s.data(), s.data() + s.size()); }

// Length of the valid UTF-8 sequence starting at s[i], or 0 if it is not valid.
size_t utf8_sequence(std::string_view s, size_t i) {
  auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  unsigned char c = b(i);
  size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
  if (n == 0 || i + n > s.size()) return 0;
  for (size_t k = 1; k < n; ++k)
    if ((b(i + k) & 0xC0) != 0x80) return 0;
  if (n == 2 && c < 0xC2) return 0;                       // overlong
  if (n == 3 && c == 0xE0 && b(i + 1) < 0xA0) return 0;   // overlong
  if (n == 3 && c == 0xED && b(i + 1) >= 0xA0) return 0;  // surrogate
  if (n == 4 && (c > 0xF4 || (c == 0xF0 && b(i + 1) < 0x90) || (c == 0xF4 && b(i + 1) >= 0x90))) return 0;
  return n;
}

// JSON string body: escapes quotes, backslashes and control characters; invalid UTF-8 becomes
// U+FFFD so every line stays valid JSON whatever bytes a peer sent.
void append_json_escaped(spdlog::memory_buf_t& dest, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  for (size_t i = 0; i < s.size();) {
    auto c = static_cast<unsigned char>(s[i]);
    switch (c) {
      case '"':
        append(dest, "\\\"");
        ++i;
        continue;
      case '\\':
        append(dest, "\\\\");
        ++i;
        continue;
      case '\n':
        append(dest, "\\n");
        ++i;
        continue;
      case '\r':
        append(dest, "\\r");
        ++i;
        continue;
      case '\t':
        append(dest, "\\t");
        ++i;
        continue;
      default: break;
    }
    if (c < 0x20 || c == 0x7f) {
      char u[] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 0xF]};
      append(dest, std::string_view(u, sizeof u));
      ++i;
      continue;
    }
    size_t n = utf8_sequence(s, i);
    if (n == 0) {
      append(dest, "\\ufffd");
      ++i;
      continue;
    }
    append(dest, s.substr(i, n));
    i += n;
  }
}

std::string_view level_name(spdlog::level::level_enum l) {
  switch (l) {
    case spdlog::level::trace: return "trace";
    case spdlog::level::debug: return "debug";
    case spdlog::level::info: return "info";
    case spdlog::level::warn: return "warn";
    case spdlog::level::err: return "error";
    case spdlog::level::critical: return "critical";
    default: return "off";
  }
}

class JsonFormatter final : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    using namespace std::chrono;
    auto since_epoch = msg.time.time_since_epoch();
    auto secs = duration_cast<seconds>(since_epoch);
    auto millis = duration_cast<milliseconds>(since_epoch - secs).count();
    std::time_t t = static_cast<std::time_t>(secs.count());
    std::tm tm{};
    gmtime_r(&t, &tm);
    char ts[40];
    size_t n = std::strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
    n += static_cast<size_t>(std::snprintf(ts + n, sizeof ts - n, ".%03dZ", static_cast<int>(millis)));

    append(dest, "{\"ts\":\"");
    append(dest, std::string_view(ts, n));
    append(dest, "\",\"level\":\"");
    append(dest, level_name(msg.level));
    append(dest, "\",\"msg\":\"");
    append_json_escaped(dest, std::string_view(msg.payload.data(), msg.payload.size()));
    append(dest, "\"");
    if (msg.logger_name.size() != 0) {
      append(dest, ",\"logger\":\"");
      append_json_escaped(dest, std::string_view(msg.logger_name.data(), msg.logger_name.size()));
      append(dest, "\"");
    }
    append(dest, "}\n");
  }
  std::unique_ptr<spdlog::formatter> clone() const override { return std::make_unique<JsonFormatter>(); }
};

}  // namespace

spdlog::level::level_enum to_spdlog(LogLevel level) {
  switch (level) {
    case LogLevel::Trace: return spdlog::level::trace;
    case LogLevel::Debug: return spdlog::level::debug;
    case LogLevel::Info: return spdlog::level::info;
    case LogLevel::Warn: return spdlog::level::warn;
    case LogLevel::Error: return spdlog::level::err;
    case LogLevel::Off: return spdlog::level::off;
  }
  return spdlog::level::info;
}

std::unique_ptr<spdlog::formatter> make_json_formatter() { return std::make_unique<JsonFormatter>(); }

void setup_logging(LogLevel level, LogFormat format, std::shared_ptr<spdlog::sinks::sink> sink) {
  if (!sink) {
    if (format == LogFormat::Json) sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();  // no colour codes in JSON
    else sink = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();  // colours only when stderr is a terminal
  }
  if (format == LogFormat::Json) sink->set_formatter(make_json_formatter());
  else sink->set_formatter(std::make_unique<spdlog::pattern_formatter>(kTextPattern));
  auto logger = std::make_shared<spdlog::logger>("", std::move(sink));
  logger->set_level(to_spdlog(level));
  logger->flush_on(spdlog::level::warn);
  spdlog::set_default_logger(std::move(logger));
  spdlog::set_level(to_spdlog(level));
}

void set_log_level(LogLevel level) { spdlog::set_level(to_spdlog(level)); }

}  // namespace ferry::server
