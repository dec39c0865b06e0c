// One TURN allocation (RFC 8656 §5): its 5-tuple, its user, its relayed addresses (one per family,
// two for a dual allocation, §7.2), its permissions and channels, and its expiry.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "stun/integrity.h"
#include "stun/message.h"
#include "stun/transport_address.h"
#include "turn/channel_table.h"
#include "base/clock.h"
#include "turn/five_tuple.h"
#include "turn/io.h"
#include "turn/permission_table.h"
#include "turn/token_bucket.h"

namespace ferry::turn {

class RelayPortPool;

struct RelayLeg {
  RelayId id = 0;
  stun::TransportAddress local;       // where the socket is bound
  stun::TransportAddress advertised;  // XOR-RELAYED-ADDRESS (the external address behind 1:1 NAT)
  RelayPortPool* pool = nullptr;      // to return the port
};

// What one allocation used, for usage records and per-user metrics. Written by the core on its loop
// (the byte and packet counts beside ServerStats' own on the data path: two plain additions),
// read by the shell on the same loop when the allocation ends (Io::allocation_ended) or when it
// walks the live ones (ServerCore::for_each_allocation).
struct AllocationUsage {
  // Distinct peer IPs kept by value up to this many; more are only counted.
  static constexpr size_t kPeerList = 16;

  uint64_t serial = 0;  // unique among this core's allocations, from 1
  Instant started{};
  std::array<uint64_t, 2> bytes{};                // payload bytes, by turn::Direction (client_to_peer, peer_to_client)
  std::array<uint64_t, 2> packets{};              // the same, in packets
  std::vector<stun::TransportAddress> peer_list;  // distinct peer IPs given a permission (port 0)
  uint32_t more_peers = 0;                        // permissions installed beyond a full peer_list
  uint32_t peers() const { return static_cast<uint32_t>(peer_list.size()) + more_peers; }
};

struct Allocation {
  Allocation(size_t max_permissions, size_t max_channels) : permissions(max_permissions), channels(max_channels) {}

  FiveTuple tuple;
  std::string username;
  stun::Key key;        // the key the client authenticated with; signs our responses
  bool sha256 = false;  // the client used MESSAGE-INTEGRITY-SHA256
  // RFC 7635: made with an ACCESS-TOKEN; `username` is the kid and `key` the token's mac_key, so
  // later requests may be signed with it without the token, and revalidation leaves it alone.
  bool access_token = false;
  std::optional<RelayLeg> v4;
  std::optional<RelayLeg> v6;
  Instant expires{};
  // When the credential it was made with expires (a TURN REST username's timestamp, taken onto the
  // steady clock at Allocate); with strict_expiry the allocation ends then, refreshed or not.
  std::optional<Instant> credential_expires;
  PermissionTable permissions;
  ChannelTable channels;
  TokenBucket bandwidth;                      // client-to-peer and peer-to-client bytes together
  stun::TransactionId allocate_txid{};        // to answer a retransmitted Allocate the same way (§7.2)
  std::optional<uint64_t> reservation_token;  // returned in the success response, if any
  uint32_t granted_lifetime = 0;
  // RFC 6062: REQUESTED-TRANSPORT TCP. The legs are then TCP listeners, data flows only over
  // peer data connections (no Send, no ChannelData), and these are its connections' ids.
  bool tcp = false;
  std::vector<ConnectionId> tcp_connections;
  AllocationUsage usage;
  // RFC 8016: made with MOBILITY-TICKET. The ticket names the allocation by mobility_id (0: no
  // mobility) and carries mobility_counter, which moves on with every ticket handed out.
  uint64_t mobility_id = 0;
  uint64_t mobility_counter = 0;
  // The channels the kernel fast path relays for it (Io::fast_path_install), with the deadline
  // it was given. Empty unless ServerCoreConfig::fast_path.
  struct FastPathEntry {
    uint16_t channel = 0;
    Instant deadline{};
  };
  std::vector<FastPathEntry> fast_path;

  const RelayLeg* leg_for(stun::Family f) const {
    const auto& leg = f == stun::Family::V4 ? v4 : v6;
    return leg ? &*leg : nullptr;
  }
};

}  // namespace ferry::turn
