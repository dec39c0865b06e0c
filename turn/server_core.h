// The sans-I/O STUN/TURN server: every request, indication and ChannelData frame from clients and
// every datagram from peers goes through here. It owns allocations and their timers, talks to the
// I/O shell only through `Io`, reads time only from `Clock`, and gets keys from a CredentialStore.
// One ServerCore per event loop; nothing in it is shared across threads.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <functional>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "base/lifetime.h"
#include "auth/credential_store.h"
#include "auth/oauth_keys.h"
#include "auth/nonce.h"
#include "stun/message.h"
#include "stun/message_builder.h"
#include "turn/allocation.h"
#include "base/clock.h"
#include "turn/five_tuple.h"
#include "turn/io.h"
#include "turn/mobility.h"
#include "turn/nat_discovery.h"
#include "turn/peer_policy.h"
#include "turn/relay_port_pool.h"
#include "turn/server_stats.h"
#include "turn/tcp_connection.h"
#include "turn/user_quota.h"

namespace ferry::turn {

struct RelayAddress {
  stun::TransportAddress local;                    // a concrete address to bind relay sockets on
  std::optional<stun::TransportAddress> external;  // advertised instead of `local` (1:1 NAT)
};

struct ServerCoreConfig {
  std::string realm = "ferry";
  std::string software;  // SOFTWARE in responses; empty: none
  std::vector<RelayAddress> relays;
  uint16_t port_min = 49152;
  uint16_t port_max = 65535;
  uint32_t default_lifetime = 600;  // RFC 8656 §7.2
  uint32_t max_lifetime = 3600;
  uint32_t nonce_lifetime = 600;
  size_t max_allocations = 0;           // 0: unlimited; beyond it 508
  size_t max_allocations_per_user = 0;  // 0: unlimited; beyond it 486
  size_t max_permissions = 32;
  size_t max_channels = 32;
  // Highest CHANNEL-NUMBER accepted: 0x4FFF per RFC 8656 §12, or 0x7FFF for RFC 5766 clients (libwebrtc).
  uint16_t max_channel_number = ChannelNumber::kMax;
  uint64_t bandwidth_per_allocation = 0;  // bytes/s, 0 unlimited
  bool userhash = true;
  // RFC 5780: when set, Binding requests that reach one of its four UDP addresses are answered
  // with RESPONSE-ORIGIN and OTHER-ADDRESS, and CHANGE-REQUEST, RESPONSE-PORT and PADDING are
  // honoured; without it those three attributes get 420 (RFC 5780 §6.1).
  std::optional<NatDiscovery> nat_discovery;
  std::array<uint8_t, 32> nonce_key{};
  uint64_t seed = 0;  // for the relay port pools
  // Answers given before authentication (401/438 challenges, 400, 420) per source IP over UDP/DTLS,
  // whose source may be spoofed: beyond this rate they are dropped, so ferry cannot be used to
  // reflect traffic at someone. 0: unlimited. Bursts of twice the rate are allowed.
  uint32_t unauth_requests_per_second = 0;
  // RFC 6062 TCP allocations (REQUESTED-TRANSPORT TCP from TCP/TLS clients); false: 442 as for
  // any other unsupported transport.
  bool tcp_relay = true;
  // Peer data connections of one TCP allocation that are connecting or waiting for their
  // ConnectionBind. Bound ones each hold a client connection, which the per-source connection
  // limit of the shell already bounds.
  size_t max_pending_tcp_connections = 16;
  // auth.strict_expiry: an allocation made with a credential that expires (a TURN REST username's
  // timestamp) ends when it does; Allocate and Refresh grant no lifetime past it.
  bool strict_expiry = false;
  // turn.mobility (RFC 8016): an Allocate with MOBILITY-TICKET gets a ticket, and a Refresh with it
  // from a new 5-tuple (UDP, DTLS) moves the allocation there. Off: MOBILITY-TICKET gets 405.
  bool mobility = false;
  // RFC 7635 third-party authorization: the STUN server name sent in THIRD-PARTY-AUTHORIZATION
  // and expected as the tokens' associated data. Empty: off (ACCESS-TOKEN is not looked at).
  // Tokens are accepted up to `oauth_clock_skew` seconds before their timestamp or after expiry.
  std::string oauth_server_name;
  uint32_t oauth_clock_skew = 5;
  // data_path kernel (server/fastpath/): tell the shell, through Io::fast_path_install/remove,
  // which channels the kernel may relay. Off: no call is made and nothing changes.
  bool fast_path = false;
};

class ServerCore {
 public:
  // Headroom the shell must leave in front of a peer datagram so it can be framed in place, and
  // tailroom after it for stream padding.
  static constexpr size_t kPeerHeadroom = 64;
  static constexpr size_t kPeerTailroom = 4;
  // The largest response the core builds.
  static constexpr size_t kResponseCapacity = 2048;

  ServerCore(ServerCoreConfig config, const Clock& clock, Io& io, auth::CredentialStore& credentials,
             PeerPolicy policy);
  ~ServerCore();
  ServerCore(const ServerCore&) = delete;
  ServerCore& operator=(const ServerCore&) = delete;

  // One datagram, or one complete stream frame, from a client. `scratch`, when at least
  // kResponseCapacity bytes, is where the answer to this packet is built instead of the core's own
  // buffer: a shell that lends memory which stays put until it flushes can then send the answers of
  // a whole receive batch together. Only an answer given during this call uses it.
  void on_client_packet(const FiveTuple& from, stun::Bytes packet, stun::MutableBytes scratch = {});
  // A datagram that arrived on relay socket `relay` from `peer`. The payload sits at
  // buffer[kPeerHeadroom, kPeerHeadroom + len) and the buffer holds kPeerTailroom more bytes.
  void on_peer_packet(RelayId relay, const stun::TransportAddress& peer, uint8_t* buffer, size_t len);
  // A stream client went away: its allocation dies with it.
  void on_client_closed(const FiveTuple& client);
  // RFC 6062 §5.2: the outcome of Io::connect_peer. On failure the shell has already let go of
  // the connection; the client gets 447.
  void on_peer_connected(ConnectionId id, bool connected);
  // RFC 6062 §5.3: `peer` connected to the TCP relay `relay`. Returns the id the shell keeps the
  // connection under (the client has been sent a ConnectionAttempt), or nullopt: close it now.
  std::optional<ConnectionId> on_peer_connection(RelayId relay, const stun::TransportAddress& peer);
  // Peer data connection `id` ended on either side, or its connect was abandoned by the shell.
  void on_peer_connection_closed(ConnectionId id);
  // Expires allocations, permissions, channels and port reservations. Call about once a second.
  // With parts > 1 it walks only the allocations of part `part` (hash buckets part, part + parts,
  // ...) and leaves the once-a-second work (connection timers, port reservations) to part 0: a
  // shell calling tick(i % parts, parts) `parts` times a second spreads the walk, so no single
  // call holds the loop for long. tick() walks everything at once.
  void tick(uint32_t part = 0, uint32_t parts = 1);
  // Ends the allocations of a user (revocation). Returns how many were closed.
  size_t close_user(std::string_view username);
  // Ends every allocation (a fleet drain's deadline). Returns how many were closed.
  size_t close_all();
  // Ends the allocations `pred(const Allocation&)` picks (`ferryctl kill`). Returns how many.
  size_t close_if(const std::function<bool(const Allocation&)>& pred);
  // Looks up the user of every allocation again and closes the allocations whose key the store no
  // longer vouches for: user deleted or disabled, password changed, shared secret revoked. A user
  // the store cannot answer for now (database down) keeps its allocations. Answers may come later;
  // returns how many allocations were closed at once.
  size_t revalidate_users();
  // Draining (SIGTERM): existing allocations go on, new Allocates are refused with 300 Try
  // Alternate and ALTERNATE-SERVER when `alternate` is set and of the client's family (RFC 8656
  // §7.2, RFC 8489 §10), else 508 Insufficient Capacity. false: back to normal.
  void set_draining(bool draining, std::optional<stun::TransportAddress> alternate = std::nullopt);
  // A configuration reload: takes the limits of `limits` (lifetimes, allocation quotas,
  // permission/channel/bandwidth limits of new allocations, the unauthenticated rate, whether TCP
  // allocations are offered, strict_expiry, mobility) and ignores
  // its other fields. Open allocations keep the permission/channel/bandwidth limits they got.
  void set_limits(const ServerCoreConfig& limits);
  // What the kernel fast path relayed for the allocation of `client` since it was last read
  // (the shell reads it about once a second): added to the allocation's usage and the server's
  // relayed counters, as if the core had relayed it. Unknown clients are ignored.
  void add_fast_path_usage(const FiveTuple& client, const FastPathUsage& u);
  // What the other nodes of the fleet hold per username (their last published sessions); a
  // per-user quota counts them with this core's own (user_quota.h). Empty: this core alone.
  void set_remote_user_counts(UserCounts counts) { remote_per_user_ = std::move(counts); }
  // The AS-RS keys of RFC 7635 (null: none). `keys` must outlive the core. Tokens are only looked
  // at while config().oauth_server_name is set too.
  void set_oauth_keys(auth::OAuthKeyStore* keys) { oauth_keys_ = keys; }
  bool draining() const { return draining_; }

  size_t allocation_count() const { return allocations_.size(); }
  const Allocation* find_allocation(const FiveTuple& t) const;
  // Calls f(const Allocation&) for every live allocation, in no order (interim usage records,
  // per-user metrics). Control path: a walk of the table.
  template <class F>
  void for_each_allocation(F&& f) const {
    for (const auto& [tuple, a] : allocations_) f(*a);
  }
  // The allocations of part `part` of `parts`, by hash bucket as tick() walks them, so that a walk
  // spread over the tick's parts visits each allocation once a round and no turn of the loop pays
  // for all of them. A rehash between two parts (new allocations) may make one round visit an
  // allocation twice or not at all.
  template <class F>
  void for_each_allocation_in_part(uint32_t part, uint32_t parts, F&& f) const {
    if (parts == 0) parts = 1;
    for (size_t b = part % parts; b < allocations_.bucket_count(); b += parts)
      for (auto it = allocations_.begin(b); it != allocations_.end(b); ++it) f(*it->second);
  }
  const ServerStats& stats() const { return stats_; }
  const ServerCoreConfig& config() const { return config_; }
  size_t open_relay_count() const;
  size_t tcp_connection_count() const { return tcp_connections_.size(); }
  const TcpConnection* find_tcp_connection(ConnectionId id) const {
    auto it = tcp_connections_.find(id);
    return it == tcp_connections_.end() ? nullptr : &it->second;
  }

 private:
  struct Request;  // a request in flight, with its authentication state
  struct Auth {
    std::string username;
    stun::Key key;
    bool sha256 = false;
    auth::Quota quota;          // the user's own limits, where the store has them
    uint64_t expires_unix = 0;  // the credential's own expiry (unix seconds), 0: none
    bool access_token = false;  // RFC 7635: USERNAME is a kid, `key` the token's mac_key
  };

  // Member functions are defined by method group: server_core.cpp (entry points, dispatch,
  // lifetimes, responses), request_auth.cpp, binding.cpp, allocate.cpp, permission.cpp, data.cpp
  // and tcp_relay.cpp.

  // server_core.cpp
  void handle_stun(const FiveTuple& from, const stun::MessageView& msg);
  void dispatch(const FiveTuple& from, const stun::MessageView& msg, const Auth& auth);
  void destroy(Allocation& a, bool connection_gone = false);
  size_t close_unvouched(const std::string& username, const auth::LookupResult& r);
  bool unauthenticated_answer_allowed(const FiveTuple& to);
  Gauge& active_gauge(const Allocation& a);  // allocations_active for a's transport and families
  // Responses. `auth` null: unauthenticated (no MESSAGE-INTEGRITY).
  stun::MessageBuilder start_response(const stun::MessageView& req, stun::Class cls);
  void finish_and_send(const FiveTuple& to, const stun::MessageView& req, stun::MessageBuilder& b, const Auth* auth);
  void finish_and_send(const FiveTuple& to, bool fingerprint, stun::MessageBuilder& b, const Auth* auth);
  void send_error(const FiveTuple& to, const stun::MessageView& req, uint16_t code, const Auth* auth,
                  std::string_view reason = {});

  // request_auth.cpp (RFC 8489 §9.2)
  void authenticate(const FiveTuple& from, const stun::MessageView& msg);
  void lookup_user(const FiveTuple& from, const stun::MessageView& msg, const std::string& username);
  bool oauth_enabled() const { return oauth_keys_ != nullptr && !config_.oauth_server_name.empty(); }
  void authenticate_token(const FiveTuple& from, const stun::MessageView& msg, const std::string& kid);
  void continue_token(const FiveTuple& from, const stun::MessageView& msg, const auth::OAuthKeyResult& r,
                      const std::string& kid);
  bool authenticate_by_allocation(const FiveTuple& from, const stun::MessageView& msg, const std::string& kid);
  void continue_authenticated(const FiveTuple& from, const stun::MessageView& msg, const auth::LookupResult& r,
                              const std::string& username);
  void send_challenge(const FiveTuple& to, const stun::MessageView& req, uint16_t code);  // 401 / 438
  std::string nonce_for(const FiveTuple& t) const;

  // binding.cpp (RFC 8489 §7.3, RFC 5780)
  void handle_binding(const FiveTuple& from, const stun::MessageView& msg);

  // allocate.cpp (RFC 8656 §7.2, §7.3)
  void handle_allocate(const FiveTuple& from, const stun::MessageView& msg, const Auth& auth);
  void handle_refresh(const FiveTuple& from, const stun::MessageView& msg, const Auth& auth, Allocation& a);
  void send_allocate_success(const FiveTuple& to, const stun::MessageView& req, const Allocation& a,
                             uint16_t v6_error);  // v6_error: ADDRESS-ERROR-CODE for IPv6, 0 none
  std::optional<RelayLeg> open_leg(stun::Family family, bool tcp, bool dont_fragment, bool even_port, bool reserve_next,
                                   std::optional<uint64_t> token, uint64_t* reserved_token, uint16_t* error);
  void close_leg(RelayLeg& leg);
  RelayId new_relay_slot(Allocation* owner);
  uint32_t lifetime_for(std::optional<uint32_t> requested) const;
  // Sets a.expires to `granted` seconds from now, cut at the credential's expiry under
  // strict_expiry; returns the LIFETIME to answer.
  uint32_t grant_lifetime(Allocation& a, uint32_t granted);
  bool credential_expired(const Allocation& a, Instant now) const;

  // mobility_refresh.cpp (RFC 8016)
  // Allocate: 0 when the request may have a ticket (or asks none), else the error to answer.
  uint16_t check_mobility_allocate(const FiveTuple& from, const stun::MessageView& msg) const;
  void enable_mobility(Allocation& a);
  void forget_mobility(const Allocation& a);
  // Refresh carrying MOBILITY-TICKET: 0 if the ticket is this allocation's and this user's, else
  // the error code, with `reason`.
  uint16_t check_ticket(const stun::MessageView& msg, const Allocation& a, const Auth& auth,
                        std::string_view* reason) const;
  // A Refresh from a 5-tuple without an allocation: with a good ticket the allocation it names
  // moves to `from` and the Refresh goes on there (§3.2); false: answered with an error.
  void handle_mobility_refresh(const FiveTuple& from, const stun::MessageView& msg, const Auth& auth);
  void add_ticket(stun::MessageBuilder& b, const Allocation& a) const;

  // permission.cpp (RFC 8656 §9, §11)
  void handle_create_permission(const FiveTuple& from, const stun::MessageView& msg, const Auth& auth, Allocation& a);
  void handle_channel_bind(const FiveTuple& from, const stun::MessageView& msg, const Auth& auth, Allocation& a);
  bool peer_allowed(const stun::TransportAddress& peer) const;
  void note_peer(Allocation& a, const stun::TransportAddress& peer);  // a permission installed: usage.peer_list

  // data.cpp (RFC 8656 §10, §12): the per-packet path, which allocates nothing
  void handle_send(const FiveTuple& from, const stun::MessageView& msg);
  void handle_channel_data(const FiveTuple& from, stun::Bytes packet);
  void relay_to_peer(Allocation& a, const stun::TransportAddress& peer, stun::Bytes data);
  void count_relayed(Allocation& a, Direction d, uint64_t bytes) {  // the server's and a's counters
    stats_.relayed(d, bytes);
    ++a.usage.packets[idx(d)];
    a.usage.bytes[idx(d)] += bytes;
  }

  // fast_path.cpp (ServerCoreConfig::fast_path)
  bool fast_path_eligible(const Allocation& a) const;
  void sync_fast_path(Allocation& a);                 // (re)install a's live channels with their deadlines
  void clear_fast_path(Allocation& a);                // remove them all, their last counts into a's usage
  void expire_fast_path(Allocation& a, Instant now);  // remove those past their deadline
  // Removes a.fast_path's entries from `first` on, their last counts into a's usage.
  void remove_fast_path(Allocation& a, std::vector<Allocation::FastPathEntry>::iterator first);
  void count_fast_path(Allocation& a, const FastPathUsage& u);

  // tcp_relay.cpp (RFC 6062)
  uint16_t check_tcp_allocate(const FiveTuple& from, const stun::MessageView& msg) const;
  void handle_connect(const FiveTuple& from, const stun::MessageView& msg, const Auth& auth, Allocation& a);
  void handle_connection_bind(const FiveTuple& from, const stun::MessageView& msg, const Auth& auth);
  bool connection_bind_nonce_valid(const stun::MessageView& msg, std::string_view nonce) const;
  TcpConnection* new_tcp_connection(Allocation& a, const stun::TransportAddress& peer);
  size_t pending_tcp_connections(const Allocation& a) const;
  void answer_connect(TcpConnection& c, uint16_t error);  // error 0: success with CONNECTION-ID
  void close_tcp_connection(ConnectionId id, bool tell_shell);
  void expire_tcp_connections(Instant now);

  ServerCoreConfig config_;
  const Clock& clock_;
  Io& io_;
  auth::CredentialStore& credentials_;
  auth::OAuthKeyStore* oauth_keys_ = nullptr;
  PeerPolicy policy_;
  auth::NonceCodec nonces_;
  std::vector<std::unique_ptr<RelayPortPool>> pools_;  // one per config_.relays entry
  std::unordered_map<FiveTuple, std::unique_ptr<Allocation>, FiveTupleHash> allocations_;
  std::unordered_map<std::string, size_t> per_user_;
  UserCounts remote_per_user_;            // the rest of the fleet's, from set_remote_user_counts
  std::vector<Allocation*> relay_owner_;  // indexed by RelayId; null = free slot
  std::vector<RelayId> free_relays_;
  std::unordered_map<uint64_t, std::pair<size_t, uint16_t>> reservations_;  // token -> (pool, port)
  // Where the next response is built: the lent scratch once, else out_.
  stun::MutableBytes response_buffer();
  std::array<uint8_t, kResponseCapacity> out_{};  // responses are built here
  stun::MutableBytes scratch_;                    // lent by on_client_packet for its answer
  // Per-source buckets for unauthenticated answers, indexed by a keyed hash of the source IP: a
  // fixed table (no allocation per source; sources that collide share a bucket).
  static constexpr size_t kUnauthBuckets = 4096;
  std::vector<TokenBucket> unauth_buckets_;
  ferry::Lifetime alive_;  // guards async credential callbacks
  uint64_t indication_counter_ = 0;
  std::unordered_map<ConnectionId, TcpConnection> tcp_connections_;  // RFC 6062 peer data connections
  uint64_t connection_id_counter_ = 0;
  uint64_t allocation_serial_ = 0;  // AllocationUsage::serial of the last allocation made
  MobilityTickets tickets_;
  std::unordered_map<uint64_t, Allocation*> by_mobility_id_;  // RFC 8016 tickets name allocations by id
  uint64_t mobility_id_counter_ = 0;
  bool draining_ = false;
  std::optional<stun::TransportAddress> alternate_server_;
  ServerStats stats_;
  // tick(): permissions and live channels counted so far in this round of parts, and the
  // allocations a walk found expired.
  std::pair<int64_t, int64_t> round_counts_{0, 0};
  std::vector<Allocation*> expired_scratch_;
};

}  // namespace ferry::turn
