// libFuzzer target: PROXY protocol v1/v2 headers (server/net/proxy_protocol).
//
// parse_proxy_header must never read past its input, a Complete header must fit in the input and
// in the limits of its version, and the verdict must be monotonic in the bytes seen: every prefix
// of a Complete or Invalid input is NeedMore or the same verdict, never a different header.
#include <cstddef>
#include <cstdint>

#include "server/net/proxy_protocol.h"
#include "tests/fuzz/fuzz_check.h"

using namespace ferry;
using server::ProxyParseStatus;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto whole = server::parse_proxy_header(stun::Bytes(data, size));
  if (whole.status == ProxyParseStatus::Complete) {
    FUZZ_CHECK(whole.header.length > 0 && whole.header.length <= size);
    FUZZ_CHECK(whole.header.length <= server::kProxyMaxLength);
    if (whole.header.version == server::ProxyVersion::V1) FUZZ_CHECK(whole.header.length <= server::kProxyV1MaxLength);
    FUZZ_CHECK(whole.header.source.has_value() == whole.header.destination.has_value());
    // The header alone parses to the same header.
    const auto alone = server::parse_proxy_header(stun::Bytes(data, whole.header.length));
    FUZZ_CHECK(alone.status == ProxyParseStatus::Complete && alone.header.length == whole.header.length);
    FUZZ_CHECK(alone.header.source == whole.header.source);
  }
  if (whole.status == ProxyParseStatus::Invalid) FUZZ_CHECK(!whole.error.empty());
  // A shorter prefix never completes a header the whole input does not.
  for (size_t n = 0; n < size && n <= server::kProxyMaxLength; n += 1 + n / 8) {
    const auto part = server::parse_proxy_header(stun::Bytes(data, n));
    if (part.status == ProxyParseStatus::Complete) {
      FUZZ_CHECK(whole.status == ProxyParseStatus::Complete && whole.header.length == part.header.length);
    }
  }
  return 0;
}
