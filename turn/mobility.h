// RFC 8016 mobility tickets: what MOBILITY-TICKET carries. A ticket names one allocation of one
// ServerCore and is only good for the user who made it: version(1) reserved(3) allocation-id(8)
// counter(8) MAC(16), the MAC being HMAC-SHA256 under a key derived from the server's random nonce
// key over the id, the counter and the username. The id is random-looking and per core (drawn
// from the core's seed), so a ticket from another worker or server names nothing here. The
// counter moves on with every ticket the server hands out; the current ticket and the one before
// it are accepted (the one before: a Refresh whose answer was lost), older ones are not.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string_view>

#include "stun/bytes.h"

namespace ferry::turn {

class MobilityTickets {
 public:
  static constexpr size_t kSize = 36;
  static constexpr uint8_t kVersion = 1;
  using Ticket = std::array<uint8_t, kSize>;

  struct Fields {
    uint64_t allocation_id = 0;
    uint64_t counter = 0;
  };

  // `server_key`: the core's nonce key (random per process, the same for all its workers); the
  // ticket key is derived from it, so a nonce never verifies as a ticket or the other way round.
  explicit MobilityTickets(const std::array<uint8_t, 32>& server_key);

  Ticket seal(const Fields& f, std::string_view username) const;
  // The id and counter of a well-formed ticket (size and version), MAC not yet checked.
  static std::optional<Fields> parse(stun::Bytes ticket);
  // Whether `ticket` was sealed by this server for `username`.
  bool verify(stun::Bytes ticket, std::string_view username) const;

 private:
  std::array<uint8_t, 16> mac(const Fields& f, std::string_view username) const;
  std::array<uint8_t, 32> key_{};
};

}  // namespace ferry::turn
