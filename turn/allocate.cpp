// Allocate (RFC 8656 §7.2) and Refresh (§7.3): the request checks, the quotas, the relay legs
// taken from the port pools (EVEN-PORT, RESERVATION-TOKEN, dual stack) and the granted lifetime.
#include "turn/server_core.h"

#include <algorithm>

#include "stun/attributes.h"

namespace ferry::turn {

using stun::Bytes;
using stun::Class;
using stun::MessageBuilder;
using stun::MessageView;
using stun::Method;
using stun::TransportAddress;
namespace attr = stun::attr;
namespace code = stun::code;

namespace {
constexpr int kOpenAttempts = 16;  // ports to try when another process holds the one we picked

std::optional<uint32_t> lifetime_attr(const MessageView& msg, bool* malformed) {
  auto a = msg.find(attr::Lifetime);
  if (!a) return std::nullopt;
  auto v = stun::decode_u32(a->value);
  if (!v) {
    *malformed = true;
    return std::nullopt;
  }
  return *v;
}
}  // namespace

// ---- Allocate (RFC 8656 §7.2) -----------------------------------------------------------------------

uint32_t ServerCore::lifetime_for(std::optional<uint32_t> requested) const {
  if (!requested) return config_.default_lifetime;
  return std::clamp(*requested, config_.default_lifetime, config_.max_lifetime);
}

// RFC 8656 §7.2/§7.3 grant min(requested, maximum); under strict_expiry the credential's
// remaining life is a third bound, so no Refresh keeps an allocation past the credential's expiry.
uint32_t ServerCore::grant_lifetime(Allocation& a, uint32_t granted) {
  const Instant now = clock_.now();
  a.expires = now + std::chrono::seconds(granted);
  if (!config_.strict_expiry || !a.credential_expires || *a.credential_expires >= a.expires) return granted;
  a.expires = *a.credential_expires;
  // Rounded up, so that a credential with under a second left is not answered LIFETIME 0 (which
  // would read as "deleted"); the allocation still ends exactly at the credential's expiry.
  const auto left = std::chrono::ceil<std::chrono::seconds>(a.expires - now).count();
  return static_cast<uint32_t>(std::max<int64_t>(left, 0));
}

bool ServerCore::credential_expired(const Allocation& a, Instant now) const {
  return config_.strict_expiry && a.credential_expires && *a.credential_expires <= now;
}

RelayId ServerCore::new_relay_slot(Allocation* owner) {
  if (!free_relays_.empty()) {
    RelayId id = free_relays_.back();
    free_relays_.pop_back();
    relay_owner_[id] = owner;
    return id;
  }
  relay_owner_.push_back(owner);
  return static_cast<RelayId>(relay_owner_.size() - 1);
}

std::optional<RelayLeg> ServerCore::open_leg(stun::Family family, bool tcp, bool dont_fragment, bool even_port,
                                             bool reserve_next, std::optional<uint64_t> token, uint64_t* reserved_token,
                                             uint16_t* error) {
  *error = code::AddressFamilyNotSupported;
  for (size_t i = 0; i < config_.relays.size(); ++i) {
    const RelayAddress& ra = config_.relays[i];
    if (ra.local.family != family) continue;
    RelayPortPool& pool = *pools_[i];
    *error = code::InsufficientCapacity;
    for (int attempt = 0; attempt < kOpenAttempts; ++attempt) {
      std::optional<uint16_t> port;
      std::optional<EvenPortPair> pair;
      if (token) {
        auto it = reservations_.find(*token);
        if (it == reservations_.end() || it->second.first != i) break;
        ReservationToken t;
        for (int k = 0; k < 8; ++k) t[k] = static_cast<uint8_t>(*token >> (56 - 8 * k));
        port = pool.redeem(t, clock_.now());
        reservations_.erase(it);
        if (!port) break;
      } else if (even_port && reserve_next) {
        pair = pool.acquire_even_pair(clock_.now());
        if (pair) port = pair->port;
      } else if (even_port) {
        port = pool.acquire_even();
      } else {
        port = pool.acquire();
      }
      if (!port) break;  // the pool is exhausted
      RelayLeg leg;
      leg.local = ra.local.with_port(*port);
      leg.advertised = (ra.external ? *ra.external : ra.local).with_port(*port);
      leg.pool = &pool;
      leg.id = new_relay_slot(nullptr);
      // A TCP allocation's relayed address is a TCP listener at a port of the same pool (RFC 6062 §5.1).
      const OpenRelayResult r =
          tcp ? io_.open_tcp_relay(leg.id, leg.local) : io_.open_relay(leg.id, leg.local, dont_fragment);
      if (r == OpenRelayResult::Opened) {
        if (pair) {
          uint64_t t = 0;
          for (uint8_t byte : pair->token) t = (t << 8) | byte;
          reservations_[t] = {i, pair->reserved_port};
          *reserved_token = t;
        }
        return leg;
      }
      relay_owner_[leg.id] = nullptr;
      free_relays_.push_back(leg.id);
      // Give the port back (and the reserved one: release() drops its reservation too).
      pool.release(*port);
      if (pair) pool.release(pair->reserved_port);
      if (r == OpenRelayResult::NoResources) return std::nullopt;
      if (token) break;  // a redeemed port is the only one the client may have
      // Otherwise the port was taken by another process: try another random one.
    }
  }
  return std::nullopt;
}

void ServerCore::close_leg(RelayLeg& leg) {
  io_.close_relay(leg.id);
  if (leg.id < relay_owner_.size()) {
    relay_owner_[leg.id] = nullptr;
    free_relays_.push_back(leg.id);
  }
  if (leg.pool) leg.pool->release(leg.local.port);
}

void ServerCore::handle_allocate(const FiveTuple& from, const MessageView& msg, const Auth& auth) {
  if (auto it = allocations_.find(from); it != allocations_.end()) {
    Allocation& existing = *it->second;
    // §7.2: a retransmission of the request that created it gets the same success answer.
    if (existing.username == auth.username &&
        std::equal(existing.allocate_txid.begin(), existing.allocate_txid.end(), msg.transaction_id().begin())) {
      // A dual request whose IPv6 leg failed said why in ADDRESS-ERROR-CODE; open_leg()'s answer
      // depends only on the configuration (440 without an IPv6 relay, else 508), so say it again.
      uint16_t v6_error = 0;
      if (msg.has(attr::AdditionalAddressFamily) && !existing.v6) {
        const bool have_v6 = std::any_of(config_.relays.begin(), config_.relays.end(),
                                         [](const RelayAddress& r) { return r.local.family == stun::Family::V6; });
        v6_error = have_v6 ? code::InsufficientCapacity : code::AddressFamilyNotSupported;
      }
      send_allocate_success(from, msg, existing, v6_error);
      return;
    }
    send_error(from, msg, code::AllocationMismatch, &auth);
    return;
  }
  if (draining_) {
    // RFC 8656 §7.2 lets a server send the client elsewhere with 300 (Try Alternate); RFC 8489
    // §10 wants ALTERNATE-SERVER of the request's family, and the answer authenticated like the
    // request so that nobody else can redirect the client.
    if (alternate_server_ && alternate_server_->family == from.client.family) {
      auto b = start_response(msg, Class::Error);
      b.add_error_code(code::TryAlternate, "Server is draining");
      b.add_address(attr::AlternateServer, *alternate_server_);
      finish_and_send(from, msg, b, &auth);
      stats_.errors_sent[code::TryAlternate].add();
      stats_.allocations_refused[code::TryAlternate].add();
    } else {
      send_error(from, msg, code::InsufficientCapacity, &auth, "Server is draining");
    }
    return;
  }
  if (uint16_t err = check_mobility_allocate(from, msg); err != 0) {
    send_error(from, msg, err, &auth,
               err == code::MobilityForbidden ? "Mobility is off, or not over this transport"
                                              : "MOBILITY-TICKET must be empty in Allocate");
    return;
  }
  auto transport = msg.find(attr::RequestedTransport);
  if (!transport) {
    send_error(from, msg, code::BadRequest, &auth, "Missing REQUESTED-TRANSPORT");
    return;
  }
  auto proto = stun::decode_requested_transport(transport->value);
  if (!proto) {
    send_error(from, msg, code::BadRequest, &auth);
    return;
  }
  const bool tcp = *proto == stun::kTransportTcp && config_.tcp_relay;
  if (*proto != stun::kTransportUdp && !tcp) {
    send_error(from, msg, code::UnsupportedTransportProtocol, &auth);
    return;
  }
  if (tcp) {
    if (uint16_t err = check_tcp_allocate(from, msg); err != 0) {
      send_error(from, msg, err, &auth,
                 "TCP allocations need a TCP/TLS client and no DONT-FRAGMENT, EVEN-PORT or RESERVATION-TOKEN");
      return;
    }
  }
  const bool dont_fragment = msg.has(attr::DontFragment);
  auto even_attr = msg.find(attr::EvenPort);
  auto token_attr = msg.find(attr::ReservationToken);
  auto family_attr = msg.find(attr::RequestedAddressFamily);
  auto additional_attr = msg.find(attr::AdditionalAddressFamily);
  bool even = false, reserve = false;
  if (even_attr) {
    auto r = stun::decode_even_port(even_attr->value);
    if (!r) {
      send_error(from, msg, code::BadRequest, &auth);
      return;
    }
    even = true;
    reserve = *r;
  }
  std::optional<uint64_t> token;
  if (token_attr) {
    auto t = stun::decode_reservation_token(token_attr->value);
    // §7.2: RESERVATION-TOKEN excludes EVEN-PORT, REQUESTED-ADDRESS-FAMILY and ADDITIONAL-ADDRESS-FAMILY.
    if (!t || even_attr || family_attr || additional_attr) {
      send_error(from, msg, code::BadRequest, &auth);
      return;
    }
    token = *t;
  }
  stun::Family family = stun::Family::V4;
  bool dual = false;
  if (family_attr) {
    if (additional_attr) {
      send_error(from, msg, code::BadRequest, &auth, "REQUESTED- and ADDITIONAL-ADDRESS-FAMILY together");
      return;
    }
    auto f = stun::decode_address_family(family_attr->value);
    if (!f) {
      send_error(from, msg, f.error() == stun::Error::BadFamily ? code::AddressFamilyNotSupported : code::BadRequest,
                 &auth);
      return;
    }
    family = *f;
  }
  if (additional_attr) {
    auto f = stun::decode_address_family(additional_attr->value);
    // §7.2: ADDITIONAL-ADDRESS-FAMILY may only ask for IPv6 (the IPv4 one is implied).
    if (!f || *f != stun::Family::V6) {
      send_error(from, msg, code::BadRequest, &auth, "ADDITIONAL-ADDRESS-FAMILY must be IPv6");
      return;
    }
    dual = true;
  }
  bool malformed = false;
  auto requested_lifetime = lifetime_attr(msg, &malformed);
  if (malformed) {
    send_error(from, msg, code::BadRequest, &auth);
    return;
  }
  // Quotas: the user's (486), counting the rest of the fleet as last seen, then the server's (508).
  auto user_count = per_user_.find(auth.username);
  const size_t used = user_count == per_user_.end() ? 0 : user_count->second;
  const size_t cred_quota =
      auth.quota.max_allocations != 0 ? auth.quota.max_allocations : config_.max_allocations_per_user;
  if (user_quota_reached(used, remote_per_user_.empty() ? 0 : count_for(remote_per_user_, auth.username), cred_quota)) {
    send_error(from, msg, code::AllocationQuotaReached, &auth);
    return;
  }
  if (config_.max_allocations != 0 && allocations_.size() >= config_.max_allocations) {
    send_error(from, msg, code::InsufficientCapacity, &auth);
    return;
  }

  auto alloc = std::make_unique<Allocation>(config_.max_permissions, config_.max_channels);
  uint64_t reserved_token = 0;
  uint16_t err = 0;
  if (token) {
    // The token names the pool and port; its family is the pool's.
    auto it = reservations_.find(*token);
    if (it == reservations_.end()) {
      send_error(from, msg, code::InsufficientCapacity, &auth, "Unknown or expired RESERVATION-TOKEN");
      return;
    }
    family = config_.relays[it->second.first].local.family;
  }
  auto leg = open_leg(family, tcp, dont_fragment, even, reserve, token, &reserved_token, &err);
  if (!leg) {
    send_error(from, msg, err, &auth);
    return;
  }
  (family == stun::Family::V4 ? alloc->v4 : alloc->v6) = *leg;
  uint16_t v6_error = 0;
  if (dual) {
    uint64_t unused = 0;
    auto leg6 = open_leg(stun::Family::V6, tcp, dont_fragment, false, false, std::nullopt, &unused, &v6_error);
    if (leg6) {
      alloc->v6 = *leg6;
      v6_error = 0;
    }
  }
  alloc->tuple = from;
  alloc->tcp = tcp;
  alloc->username = auth.username;
  alloc->key = auth.key;
  alloc->sha256 = auth.sha256;
  alloc->access_token = auth.access_token;
  if (auth.expires_unix != 0) {
    // Wall-clock expiry onto the steady clock once, here: a later NTP step moves neither.
    const uint64_t unix_now = clock_.unix_seconds();
    const uint64_t left = auth.expires_unix > unix_now ? auth.expires_unix - unix_now : 0;
    alloc->credential_expires = clock_.now() + std::chrono::seconds(left);
  }
  alloc->granted_lifetime = grant_lifetime(*alloc, lifetime_for(requested_lifetime));
  alloc->allocate_txid = msg.transaction_id_copy();
  alloc->usage.serial = ++allocation_serial_;
  alloc->usage.started = clock_.now();
  if (reserved_token != 0) alloc->reservation_token = reserved_token;
  if (msg.has(attr::MobilityTicket)) enable_mobility(*alloc);
  const uint64_t rate =
      auth.quota.bandwidth_bytes_per_sec != 0 ? auth.quota.bandwidth_bytes_per_sec : config_.bandwidth_per_allocation;
  if (rate != 0) {
    // One second of burst: enough for a video keyframe, not for a flood.
    alloc->bandwidth.reconfigure(rate, rate, clock_.now());
  }
  Allocation& a = *alloc;
  if (a.v4) relay_owner_[a.v4->id] = &a;
  if (a.v6) relay_owner_[a.v6->id] = &a;
  allocations_.emplace(from, std::move(alloc));
  ++per_user_[auth.username];
  stats_.allocations_created.add();
  active_gauge(a).add();

  send_allocate_success(from, msg, a, dual ? v6_error : 0);
}

// Also answers retransmissions of the Allocate, which must get the very same response (RFC 8489
// §6.3.1): same attributes in the same order, and the LIFETIME granted rather than what is left.
void ServerCore::send_allocate_success(const FiveTuple& to, const MessageView& req, const Allocation& a,
                                       uint16_t v6_error) {
  auto b = start_response(req, Class::Success);
  if (a.v4) b.add_xor_address(attr::XorRelayedAddress, a.v4->advertised);
  if (a.v6) b.add_xor_address(attr::XorRelayedAddress, a.v6->advertised);
  if (v6_error != 0) b.add_address_error_code(stun::Family::V6, v6_error);
  b.add_u32(attr::Lifetime, a.granted_lifetime);
  if (a.reservation_token) b.add_reservation_token(*a.reservation_token);
  b.add_xor_address(attr::XorMappedAddress, to.client);
  add_ticket(b, a);
  Auth auth{a.username, a.key, a.sha256, {}};
  finish_and_send(to, req, b, &auth);
}

// ---- Refresh (§7.3) -------------------------------------------------------------------------------------

void ServerCore::handle_refresh(const FiveTuple& from, const MessageView& msg, const Auth& auth, Allocation& a) {
  const bool ticket = msg.has(attr::MobilityTicket);
  if (ticket) {
    std::string_view reason;
    if (uint16_t err = check_ticket(msg, a, auth, &reason); err != 0) {
      send_error(from, msg, err, &auth, reason);
      return;
    }
  }
  bool malformed = false;
  auto requested = lifetime_attr(msg, &malformed);
  if (malformed) {
    send_error(from, msg, code::BadRequest, &auth);
    return;
  }
  if (auto fam_attr = msg.find(attr::RequestedAddressFamily)) {
    auto f = stun::decode_address_family(fam_attr->value);
    if (!f) {
      send_error(from, msg, code::BadRequest, &auth);
      return;
    }
    // §7.3: the family must be one the allocation has; with a dual allocation, LIFETIME 0 and a
    // family removes just that family's relayed address.
    if (!a.leg_for(*f)) {
      send_error(from, msg, code::PeerAddressFamilyMismatch, &auth);
      return;
    }
    if (requested && *requested == 0 && a.v4 && a.v6) {
      auto& leg = *f == stun::Family::V4 ? a.v4 : a.v6;
      active_gauge(a).sub();
      close_leg(*leg);
      leg.reset();
      active_gauge(a).add();
      auto b = start_response(msg, Class::Success);
      const auto left = std::chrono::duration_cast<std::chrono::seconds>(a.expires - clock_.now()).count();
      b.add_u32(attr::Lifetime, static_cast<uint32_t>(std::max<int64_t>(left, 0)));
      finish_and_send(from, msg, b, &auth);
      return;
    }
  }
  if (requested && *requested == 0) {
    auto b = start_response(msg, Class::Success);
    b.add_u32(attr::Lifetime, 0);
    finish_and_send(from, msg, b, &auth);
    stats_.allocations_deleted.add();
    destroy(a);
    return;
  }
  if (credential_expired(a, clock_.now())) {
    // The credential ran out before the tick got to the allocation: it is over all the same.
    stats_.allocations_expired.add();
    destroy(a);
    send_error(from, msg, code::AllocationMismatch, &auth, "Allocation ended with its credential");
    return;
  }
  // §7.3: min(requested, maximum), but never below the default, exactly as for Allocate (and, under
  // strict_expiry, never past the credential's expiry).
  const uint32_t granted = grant_lifetime(a, lifetime_for(requested));
  a.granted_lifetime = granted;
  sync_fast_path(a);  // the allocation's expiry caps its channels' deadlines
  auto b = start_response(msg, Class::Success);
  b.add_u32(attr::Lifetime, granted);
  if (ticket) {
    // RFC 8016 §3.2: every Refresh with a ticket is answered with a new one.
    ++a.mobility_counter;
    add_ticket(b, a);
  }
  finish_and_send(from, msg, b, &auth);
}

}  // namespace ferry::turn
