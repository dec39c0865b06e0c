// libFuzzer target: RFC 7635 ACCESS-TOKEN values (nonce_length | nonce | sealed block | tag).
//
// Opening must never read past the value, and may only succeed for what seal_access_token made
// with the same key and server name: a random input essentially never passes the GCM tag, so the
// target also seals a token from the input's bytes and checks that it opens to the same fields and
// that any one flipped byte makes it fail.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "auth/access_token.h"
#include "stun/attributes.h"
#include "tests/fuzz/fuzz_check.h"

using namespace ferry;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auth::AsRsKey key{};
  for (size_t i = 0; i < key.size(); ++i) key[i] = static_cast<uint8_t>(i * 7 + 1);
  // An exactly-sized heap copy, so ASan sees any read past the end.
  std::unique_ptr<uint8_t[]> copy(new uint8_t[size == 0 ? 1 : size]);
  std::copy(data, data + size, copy.get());
  auth::TokenError err{};
  auto opened = auth::open_access_token(key, "fuzz.example", stun::Bytes(copy.get(), size), &err);
  if (opened) FUZZ_CHECK(opened->mac_key.size > 0);

  // Seal the input's first bytes as a mac_key and check the round trip.
  if (size == 0) return 0;
  auth::AccessToken t;
  t.mac_key = stun::Key::from(stun::Bytes(data, std::min<size_t>(size, 64)));
  t.timestamp = static_cast<uint64_t>(size) << 16 | data[0];
  t.lifetime = data[size - 1];
  const std::array<uint8_t, auth::kGcmNonceBytes> nonce = {data[0], 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
  auto wire = auth::seal_access_token(key, "fuzz.example", nonce, t);
  FUZZ_CHECK(!wire.empty());
  auto back = auth::open_access_token(key, "fuzz.example", stun::Bytes(wire));
  FUZZ_CHECK(back && back->mac_key == t.mac_key && back->timestamp == t.timestamp && back->lifetime == t.lifetime);
  const size_t at = 2 + data[0] % (wire.size() - 2);
  wire[at] ^= 0x01;
  FUZZ_CHECK(!auth::open_access_token(key, "fuzz.example", stun::Bytes(wire)));
  return 0;
}
