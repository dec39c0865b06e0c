// libFuzzer target: the YAML config parser and validator (server/config/config.cpp over yaml-cpp).
//
// Any text must give a Config or a ConfigError naming a line — never a crash, a hang or an
// exception escaping. A config that loads must dump (dump_effective, secrets masked) to text that
// loads again and dumps the same: --check-config output is itself a valid config.
// Inputs naming files (*_file keys, tls paths) are skipped: the fuzzer must not read the machine's
// files, and path handling has its own unit tests.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "server/config/config.h"

using namespace ferry::server;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 8192) return 0;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  if (text.find("file") != std::string_view::npos || text.find("tls") != std::string_view::npos) return 0;
  ConfigResult r = load_config_string(text, "fuzz.yaml");
  if (!r.ok()) {
    if (r.error().message.empty()) {
      std::fprintf(stderr, "empty config error\n");
      std::abort();
    }
    return 0;
  }
  const std::string dump = dump_effective(*r);
  ConfigResult again = load_config_string(dump, "dump.yaml");
  if (!again.ok()) {
    std::fprintf(stderr, "dump does not load: %s\n--- dump ---\n%s\n", again.error().message.c_str(), dump.c_str());
    std::abort();
  }
  Config c = again.value();
  c.origins = r->origins;  // origins name the source, which differs
  const std::string dump2 = dump_effective(c);
  if (dump2 != dump) {
    std::fprintf(stderr, "dump changed on reload\n--- first ---\n%s\n--- second ---\n%s\n", dump.c_str(),
                 dump2.c_str());
    std::abort();
  }
  return 0;
}
