// The body of GET /v1/ice-servers: the server's stun:/turn:/turns: URLs (RFC 7064, RFC 7065) and
// a fresh TURN REST credential (auth/shared_secret.h), as an RTCConfiguration's iceServers.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "auth/shared_secret.h"
#include "server/config/config.h"

namespace ferry::server {

// URLs from the listeners as bound: host = the listener's IP, or for a wildcard listener the
// external address of a relay address of its family (the server's public face); wildcard
// listeners with neither are left out. udp -> stun: and turn:?transport=udp, tcp ->
// turn:?transport=tcp, tls -> turns:?transport=tcp. No duplicates, in listener order.
// The address a listener is reached at (its IP, or for a wildcard the external address of a relay
// address of its family); nullopt when there is none to advertise or it is an RFC 5780 extra.
std::optional<stun::TransportAddress> advertised_address(const ListenerConfig& listener,
                                                         const std::vector<RelayAddressConfig>& relays);
// The first advertised address of each transport, in listener order (the node registry's
// `addresses`, which other nodes send clients to as ALTERNATE-SERVER).
std::vector<std::pair<Transport, stun::TransportAddress>> advertised_addresses(
    const std::vector<ListenerConfig>& listeners, const std::vector<RelayAddressConfig>& relays);

std::vector<std::string> derive_ice_urls(const std::vector<ListenerConfig>& listeners,
                                         const std::vector<RelayAddressConfig>& relays);

// ?ttl=: absent -> `fallback`; whole seconds >= 1, capped at `max`; nullopt when malformed.
std::optional<uint64_t> parse_ttl(std::optional<std::string_view> text, uint64_t fallback, uint64_t max);

// A user id a caller may ask for with ?user=: 1-64 of letters, digits and - _ . @ (no ':', which
// separates the expiry in TURN REST usernames).
bool valid_user_id(std::string_view user);

// {"iceServers":[{"urls":[...],"username":"...","credential":"..."}],"ttl":N,"expires":UNIX}
std::string ice_servers_json(const std::vector<std::string>& urls, const auth::MintedCredential& credential);
// A fleet: one iceServers entry per node, in the order given, all with the same credential (the
// nodes share the secret, so it is valid on each).
std::string fleet_ice_servers_json(const std::vector<std::vector<std::string>>& nodes,
                                   const auth::MintedCredential& credential);

}  // namespace ferry::server
