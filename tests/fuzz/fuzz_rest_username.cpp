// libFuzzer target: TURN REST API (shared-secret) usernames, "<expiry>:<user-id>".
//
// parse_rest_username must accept exactly the digit-expiry forms and never overflow; the store must
// answer every username at once, Found only for well-formed unexpired names, and the password it
// implies must be what rest_password computes (so minting and checking agree).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "tests/fuzz/fuzz_check.h"
#include "auth/shared_secret.h"
#include "stun/integrity.h"
#include "base/clock.h"

using namespace ferry;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view name(reinterpret_cast<const char*>(data), size);
  auto parsed = auth::parse_rest_username(name);
  if (parsed) {
    // Round trip: the expiry printed back is the digits we were given (without leading zeros).
    const auto colon = name.find(':');
    std::string_view digits = name.substr(0, colon);
    FUZZ_CHECK(!digits.empty() && digits.size() <= 19);
    for (char c : digits) FUZZ_CHECK(c >= '0' && c <= '9');
    FUZZ_CHECK(parsed->user_id == (colon == std::string_view::npos ? std::string_view() : name.substr(colon + 1)));
    FUZZ_CHECK(colon == std::string_view::npos || !parsed->user_id.empty());
  }

  static const FakeClock clock;  // unix time 1'700'000'000
  auth::SharedSecretStore store("fuzz.example", clock, {"first-secret-value", "second-secret-value"});
  bool called = false;
  auto r = store.lookup(name, "fuzz.example", [&](auth::LookupResult) { called = true; });
  FUZZ_CHECK(r.has_value() && !called);  // always answers at once
  if (r->status == auth::LookupStatus::Found) {
    FUZZ_CHECK(parsed && parsed->expires_unix > clock.unix_seconds());
    const std::string pw = auth::rest_password("first-secret-value", name);
    FUZZ_CHECK(r->credential->key_md5 == stun::long_term_key_md5(name, "fuzz.example", pw));
    FUZZ_CHECK(r->credential->alternates.size() == 1);
  } else {
    FUZZ_CHECK(!parsed || parsed->expires_unix <= clock.unix_seconds());
  }
  return 0;
}
