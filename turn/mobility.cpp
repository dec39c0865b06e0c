// RFC 8016 mobility tickets (see mobility.h for the layout and why).
#include "turn/mobility.h"

#include <openssl/hmac.h>

#include <string>

#include "stun/integrity.h"

namespace ferry::turn {

namespace {
constexpr std::string_view kKeyLabel = "ferry mobility ticket key v1";

void store_u64(uint8_t* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<uint8_t>(v >> (56 - 8 * i));
}
uint64_t load_u64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | p[i];
  return v;
}
}  // namespace

MobilityTickets::MobilityTickets(const std::array<uint8_t, 32>& server_key) {
  unsigned len = 0;
  HMAC(EVP_sha256(), server_key.data(), static_cast<int>(server_key.size()),
       reinterpret_cast<const uint8_t*>(kKeyLabel.data()), kKeyLabel.size(), key_.data(), &len);
}

std::array<uint8_t, 16> MobilityTickets::mac(const Fields& f, std::string_view username) const {
  // HMAC(key, id || counter || username): one-shot, on the Allocate/Refresh path only.
  std::string input(16, '\0');
  store_u64(reinterpret_cast<uint8_t*>(input.data()), f.allocation_id);
  store_u64(reinterpret_cast<uint8_t*>(input.data()) + 8, f.counter);
  input += username;
  uint8_t full[32];
  unsigned len = 0;
  HMAC(EVP_sha256(), key_.data(), static_cast<int>(key_.size()), reinterpret_cast<const uint8_t*>(input.data()),
       input.size(), full, &len);
  std::array<uint8_t, 16> out{};
  std::copy(full, full + out.size(), out.begin());
  return out;
}

MobilityTickets::Ticket MobilityTickets::seal(const Fields& f, std::string_view username) const {
  Ticket t{};
  t[0] = kVersion;
  store_u64(t.data() + 4, f.allocation_id);
  store_u64(t.data() + 12, f.counter);
  const auto m = mac(f, username);
  std::copy(m.begin(), m.end(), t.begin() + 20);
  return t;
}

std::optional<MobilityTickets::Fields> MobilityTickets::parse(stun::Bytes ticket) {
  if (ticket.size() != kSize || ticket[0] != kVersion || ticket[1] != 0 || ticket[2] != 0 || ticket[3] != 0) {
    return std::nullopt;
  }
  return Fields{load_u64(ticket.data() + 4), load_u64(ticket.data() + 12)};
}

bool MobilityTickets::verify(stun::Bytes ticket, std::string_view username) const {
  auto f = parse(ticket);
  if (!f) return false;
  const auto m = mac(*f, username);
  return stun::equal_ct(ticket.subspan(20, 16), stun::Bytes(m.data(), m.size()));
}

}  // namespace ferry::turn
