// A sans-I/O STUN/TURN client (RFC 8489, RFC 8656): it builds requests and indications into a
// caller-supplied buffer and interprets what the server sends back. No sockets, no timers, no
// retransmission: the caller owns those (a UDP client resends the very same bytes on its RTO).
//
// Long-term credentials (RFC 8489 §9.2): the first request goes out without credentials; its
// 401 teaches REALM and NONCE (and PASSWORD-ALGORITHMS), on_response() answers Outcome::Retry and
// retry() rebuilds the same request, now authenticated, under a new transaction id. A 438 gives a
// new nonce and the same Retry. After that every request is signed with the key learned.
//
// Used by the load generator (bench/), the examples and the tests; one TurnClient per 5-tuple.
#pragma once

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "stun/bytes.h"
#include "stun/constants.h"
#include "stun/integrity.h"
#include "stun/message.h"
#include "stun/message_builder.h"
#include "stun/result.h"
#include "stun/transport_address.h"

namespace ferry::client {

using stun::Bytes;
using stun::Family;
using stun::MutableBytes;
using stun::TransactionId;
using stun::TransportAddress;

enum class UsernameMode : uint8_t {
  Auto,      // RFC 8489 §9.2.5: USERHASH when the nonce cookie sets "username anonymity", else USERNAME
  Username,  // always USERNAME
  Userhash,  // always USERHASH (§14.4)
};

struct TurnClientConfig {
  std::string username;
  std::string password;
  std::string software;  // SOFTWARE in every request; empty: none
  // Password algorithms the client supports (RFC 8489 §9.2.2): MD5 always, SHA-256 when set. Of the
  // server's PASSWORD-ALGORITHMS the first supported one is used (§9.2.5); with SHA-256 requests
  // carry MESSAGE-INTEGRITY-SHA256 instead of MESSAGE-INTEGRITY.
  bool sha256 = false;
  UsernameMode username_mode = UsernameMode::Auto;
  bool fingerprint = false;       // FINGERPRINT on every request and indication
  unsigned max_auth_retries = 3;  // 401/438 retries of one request before giving up
  // RFC 8489 §9.2.5 discards responses to authenticated requests that lack MESSAGE-INTEGRITY. Servers
  // answer some errors before authenticating (400 for a malformed request, 420, 500); with this set
  // such error responses are reported (Response::authenticated false) instead of discarded. Success
  // responses without integrity are always discarded.
  bool accept_unauthenticated_errors = true;
};

struct AllocateOptions {
  std::optional<uint32_t> lifetime;                        // LIFETIME (seconds)
  bool even_port = false;                                  // EVEN-PORT
  bool reserve_next = false;                               // EVEN-PORT with R=1: keep port+1 for a RESERVATION-TOKEN
  std::optional<Family> requested_family;                  // REQUESTED-ADDRESS-FAMILY
  std::optional<Family> additional_family;                 // ADDITIONAL-ADDRESS-FAMILY (IPv6: dual allocation)
  bool dont_fragment = false;                              // DONT-FRAGMENT
  std::optional<uint64_t> reservation_token;               // RESERVATION-TOKEN from an earlier EVEN-PORT R=1
  std::optional<uint8_t> transport = stun::kTransportUdp;  // REQUESTED-TRANSPORT; nullopt omits it
};

enum class Outcome : uint8_t {
  Success,    // a success response (integrity verified when the request was authenticated)
  Error,      // a final error response: see error_code
  Retry,      // 401/438: credentials or nonce learned; call retry() with this transaction id
  Discarded,  // not a response to a pending request, or integrity/fingerprint failed: ignore it
};
std::string_view to_string(Outcome o);

struct AddressError {
  Family family = Family::V4;
  uint16_t code = 0;
  std::string reason;
};

// Everything on_response() decoded; owns its data (nothing points into the packet).
struct Response {
  Outcome outcome = Outcome::Discarded;
  stun::Method method = stun::Method::Binding;
  TransactionId transaction_id{};
  bool authenticated = false;              // MESSAGE-INTEGRITY(-SHA256) present and verified with our key
  uint16_t error_code = 0;                 // ERROR-CODE of an error response (also set for Retry)
  std::string reason;                      // its reason phrase; for Discarded, why
  std::vector<TransportAddress> relayed;   // XOR-RELAYED-ADDRESS, one or two (dual allocation)
  std::optional<TransportAddress> mapped;  // XOR-MAPPED-ADDRESS, or MAPPED-ADDRESS without it
  std::optional<uint32_t> lifetime;
  std::optional<uint64_t> reservation_token;
  std::optional<uint32_t> connection_id;      // CONNECTION-ID of a Connect success (RFC 6062 §4.3)
  std::optional<AddressError> address_error;  // ADDRESS-ERROR-CODE (dual allocation, RFC 8656 §18.4)
  std::vector<uint16_t> unknown_attributes;   // UNKNOWN-ATTRIBUTES of a 420
  std::optional<TransportAddress> response_origin;
  std::optional<TransportAddress> other_address;
  std::string realm;  // REALM / NONCE, when the response carried them
  std::string nonce;
  std::string software;
};

// Data from a peer, relayed by the server (RFC 8656 §10.3, §12.6).
struct PeerData {
  std::optional<uint16_t> channel;       // set for ChannelData
  std::optional<TransportAddress> peer;  // Data indication: XOR-PEER-ADDRESS; ChannelData: the bound peer if known
  Bytes data;                            // points into the packet given to on_peer_data()
};

enum class PacketKind : uint8_t { Stun, ChannelData, Other };
// RFC 8656 §12: demultiplexes by the first two bits.
PacketKind classify(Bytes packet);

// What the client learned from the server's challenges; copyable between clients (tests, or a
// load generator sharing one realm).
struct AuthState {
  std::string realm;
  std::string nonce;
  std::vector<uint8_t> password_algorithms;  // the server's PASSWORD-ALGORITHMS value, echoed verbatim
  bool use_sha256 = false;                   // PASSWORD-ALGORITHM SHA-256 chosen
  bool use_userhash = false;
};

class TurnClient {
 public:
  // Adds the method's attributes to a request under construction (the client adds the rest).
  using Body = std::function<void(stun::MessageBuilder&)>;

  explicit TurnClient(TurnClientConfig config);

  // ---- requests (each gets a fresh random transaction id and is remembered until answered) ----
  stun::Result<Bytes> binding_request(MutableBytes out);
  stun::Result<Bytes> allocate_request(MutableBytes out, const AllocateOptions& options = {});
  // LIFETIME 0 deletes the allocation; `family` (REQUESTED-ADDRESS-FAMILY) picks one leg of a dual one.
  stun::Result<Bytes> refresh_request(MutableBytes out, std::optional<uint32_t> lifetime = std::nullopt,
                                      std::optional<Family> family = std::nullopt);
  stun::Result<Bytes> create_permission_request(MutableBytes out, std::span<const TransportAddress> peers);
  stun::Result<Bytes> create_permission_request(MutableBytes out, std::initializer_list<TransportAddress> peers) {
    return create_permission_request(out, std::span<const TransportAddress>(peers.begin(), peers.size()));
  }
  stun::Result<Bytes> channel_bind_request(MutableBytes out, uint16_t channel, const TransportAddress& peer);
  // RFC 6062 TCP allocations: Connect asks the server to open a TCP connection to `peer` (§4.3; its
  // success carries Response::connection_id); ConnectionBind, sent on a new connection to the server,
  // makes that connection the data connection of `connection_id` (§4.4). A client for the data
  // connection can start from the control connection's client's auth_state().
  stun::Result<Bytes> connect_request(MutableBytes out, const TransportAddress& peer);
  stun::Result<Bytes> connection_bind_request(MutableBytes out, uint32_t connection_id);
  // Any request: `body` writes the method's attributes; then come SOFTWARE, the credentials (once a
  // realm is known and `authenticate` is set), MESSAGE-INTEGRITY(-SHA256) and FINGERPRINT.
  stun::Result<Bytes> request(MutableBytes out, stun::Method method, Body body, bool authenticate = true);
  // Rebuilds the request answered by `previous` (after Outcome::Retry) with the current realm, nonce
  // and key, under a new transaction id. Error::Missing when `previous` is not pending.
  stun::Result<Bytes> retry(MutableBytes out, const TransactionId& previous);

  // ---- indications and channel data (never answered, never pending) ----
  stun::Result<Bytes> send_indication(MutableBytes out, const TransportAddress& peer, Bytes data,
                                      bool dont_fragment = false);
  // `pad`: round the frame up to a multiple of 4, as TCP/TLS require (RFC 8656 §12.5).
  static stun::Result<Bytes> channel_data(MutableBytes out, uint16_t channel, Bytes data, bool pad = false);

  // ---- from the server ----
  // A STUN response. Verifies FINGERPRINT and integrity, handles 401/438 (see Outcome::Retry) and
  // remembers what it learned (relayed/mapped addresses, lifetime, channel bindings).
  Response on_response(Bytes packet);
  // A Data indication or ChannelData frame; nullopt for anything else.
  std::optional<PeerData> on_peer_data(Bytes packet) const;

  // ---- state ----
  bool is_pending(const TransactionId& txid) const { return pending_.count(txid) != 0; }
  size_t pending_count() const { return pending_.size(); }
  void cancel(const TransactionId& txid) { pending_.erase(txid); }
  const TransactionId& last_transaction_id() const { return last_txid_; }

  bool has_credentials() const { return !auth_.realm.empty() && !auth_.nonce.empty(); }
  const AuthState& auth_state() const { return auth_; }
  void set_auth_state(AuthState state);
  const stun::Key& key() const { return key_; }  // the long-term key in use (empty before a realm is known)
  const TurnClientConfig& config() const { return config_; }

  const std::vector<TransportAddress>& relayed() const { return relayed_; }
  const std::optional<TransportAddress>& mapped() const { return mapped_; }
  std::optional<uint32_t> lifetime() const { return lifetime_; }
  std::optional<uint64_t> reservation_token() const { return reservation_token_; }
  std::optional<TransportAddress> channel_peer(uint16_t channel) const;
  std::optional<uint16_t> channel_of(const TransportAddress& peer) const;

 private:
  struct Pending {
    stun::Method method = stun::Method::Binding;
    Body body;
    bool authenticate = true;
    bool signed_request = false;  // carried credentials
    bool sha256 = false;          // signed with MESSAGE-INTEGRITY-SHA256
    stun::Key key;                // the key it was signed with
    std::string realm;            // the realm it was signed for
    unsigned retries = 0;
    std::optional<std::pair<uint16_t, TransportAddress>> channel;  // ChannelBind: remembered on success
    std::optional<uint32_t> refresh_lifetime;                      // Refresh: 0 forgets the allocation
  };

  stun::Result<Bytes> build(MutableBytes out, Pending p);
  void learn_challenge(const stun::MessageView& msg, Response& r, const Pending& p);
  void recompute_key();
  void record_success(const Pending& p, const Response& r);

  TurnClientConfig config_;
  AuthState auth_;
  stun::Key key_;
  std::map<TransactionId, Pending> pending_;
  TransactionId last_txid_{};
  std::vector<TransportAddress> relayed_;
  std::optional<TransportAddress> mapped_;
  std::optional<uint32_t> lifetime_;
  std::optional<uint64_t> reservation_token_;
  std::map<uint16_t, TransportAddress> channels_;
};

// 12 random bytes from OpenSSL's CSPRNG (RFC 8489 §6: transaction ids must be unpredictable).
TransactionId random_transaction_id();

}  // namespace ferry::client
