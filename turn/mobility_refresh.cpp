// RFC 8016 mobility in the core: the ticket handed out with Allocate (§3.1) and each Refresh that
// carries one (§3.2), and the Refresh from a new 5-tuple whose ticket moves the allocation there,
// relayed addresses, permissions and channels included. Tickets themselves: mobility.cpp.
#include <algorithm>

#include "base/splitmix.h"
#include "stun/attributes.h"
#include "turn/server_core.h"

namespace ferry::turn {

using stun::MessageView;
namespace attr = stun::attr;
namespace code = stun::code;

uint16_t ServerCore::check_mobility_allocate(const FiveTuple& from, const MessageView& msg) const {
  auto t = msg.find(attr::MobilityTicket);
  if (!t) return 0;
  // §3.1: a server that does not offer mobility refuses with 405. A stream's allocation ends with
  // its connection (RFC 8656 §3.1), so there is nothing a ticket could move.
  if (!config_.mobility || is_stream(from.transport)) return code::MobilityForbidden;
  if (!t->value.empty()) return code::BadRequest;  // §3.1: the client's MOBILITY-TICKET is empty
  return 0;
}

void ServerCore::enable_mobility(Allocation& a) {
  // Per core from its seed (distinct per worker): a ticket minted by another worker names nothing
  // here, whatever its MAC.
  uint64_t id = 0;
  do {
    id = splitmix64(config_.seed ^ splitmix64(++mobility_id_counter_));
  } while (id == 0 || by_mobility_id_.count(id));
  a.mobility_id = id;
  a.mobility_counter = 0;
  by_mobility_id_[id] = &a;
}

void ServerCore::forget_mobility(const Allocation& a) {
  if (a.mobility_id != 0) by_mobility_id_.erase(a.mobility_id);
}

void ServerCore::add_ticket(stun::MessageBuilder& b, const Allocation& a) const {
  if (a.mobility_id == 0) return;
  const auto t = tickets_.seal({a.mobility_id, a.mobility_counter}, a.username);
  b.add(attr::MobilityTicket, stun::Bytes(t.data(), t.size()));
}

uint16_t ServerCore::check_ticket(const MessageView& msg, const Allocation& a, const Auth& auth,
                                  std::string_view* reason) const {
  if (!config_.mobility) {
    *reason = "Mobility is off";
    return code::MobilityForbidden;
  }
  auto value = stun::decode_mobility_ticket(msg.find(attr::MobilityTicket)->value);
  auto fields = value ? MobilityTickets::parse(*value) : std::nullopt;
  // The allocation the ticket names, if its MAC is right for that allocation's user: the MAC
  // binds the ticket to the user who made it, so a forged or garbled ticket names nothing.
  const Allocation* owner = nullptr;
  if (fields) {
    if (auto it = by_mobility_id_.find(fields->allocation_id); it != by_mobility_id_.end()) owner = it->second;
    if (owner != nullptr && !tickets_.verify(*value, owner->username)) owner = nullptr;
  }
  if (owner == nullptr) {
    if (a.mobility_id == 0) {
      *reason = "The allocation was made without MOBILITY-TICKET";
      return code::MobilityForbidden;
    }
    *reason = "Invalid MOBILITY-TICKET";  // §3.2: a ticket the server cannot validate
    return code::BadRequest;
  }
  // A genuine ticket presented by someone else (stolen): 441, as for any request of another user
  // on an allocation (RFC 8656 §5).
  if (owner->username != auth.username) {
    *reason = "MOBILITY-TICKET of another user";
    return code::WrongCredentials;
  }
  if (owner != &a) {
    *reason = "MOBILITY-TICKET of another allocation";
    return code::BadRequest;
  }
  // Only the newest ticket, or the one before it (its Refresh's answer may have been lost).
  if (fields->counter != a.mobility_counter && fields->counter + 1 != a.mobility_counter) {
    *reason = "Stale MOBILITY-TICKET";
    return code::BadRequest;
  }
  return 0;
}

void ServerCore::handle_mobility_refresh(const FiveTuple& from, const MessageView& msg, const Auth& auth) {
  if (!config_.mobility) {
    send_error(from, msg, code::MobilityForbidden, &auth, "Mobility is off");
    return;
  }
  auto value = stun::decode_mobility_ticket(msg.find(attr::MobilityTicket)->value);
  auto fields = value ? MobilityTickets::parse(*value) : std::nullopt;
  if (!fields) {
    send_error(from, msg, code::BadRequest, &auth, "Malformed MOBILITY-TICKET");
    return;
  }
  auto it = by_mobility_id_.find(fields->allocation_id);
  if (it == by_mobility_id_.end()) {
    // Expired, deleted, or held by another worker loop or server: nothing here to move.
    send_error(from, msg, code::AllocationMismatch, &auth, "No allocation for this MOBILITY-TICKET");
    return;
  }
  Allocation& a = *it->second;
  std::string_view reason;
  if (uint16_t err = check_ticket(msg, a, auth, &reason); err != 0) {
    if (err == code::WrongCredentials) stats_.auth_failed(AuthFailure::WrongUser);
    send_error(from, msg, err, &auth, reason);
    return;
  }
  if (from.transport != a.tuple.transport) {
    send_error(from, msg, code::BadRequest, &auth, "MOBILITY-TICKET from another transport");
    return;
  }
  // Re-key the allocation under its new 5-tuple; everything else (relays, permissions, channels,
  // lifetime, counters) stays as it is. From now on the old 5-tuple has no allocation.
  clear_fast_path(a);  // keyed by the old 5-tuple; the Refresh below installs them under the new one
  auto node = allocations_.extract(a.tuple);
  node.key() = from;
  a.tuple = from;
  a.key = auth.key;  // the same user, perhaps another algorithm now
  a.sha256 = auth.sha256;
  allocations_.insert(std::move(node));
  stats_.allocations_moved.add();
  handle_refresh(from, msg, auth, a);  // LIFETIME, and the next ticket
}

}  // namespace ferry::turn
