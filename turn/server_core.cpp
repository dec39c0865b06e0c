#include "turn/server_core.h"

#include <algorithm>
#include <cstring>

#include "stun/attributes.h"
#include "stun/channel_data.h"
#include "stun/integrity.h"

namespace ferry::turn {

using stun::Bytes;
using stun::Class;
using stun::Method;
using stun::MessageBuilder;
using stun::MessageView;
using stun::TransportAddress;
namespace attr = stun::attr;
namespace code = stun::code;

namespace {
constexpr int kOpenAttempts = 16;  // ports to try when another process holds the one we picked
constexpr stun::PasswordAlgorithm kAlgorithms[] = {stun::PasswordAlgorithm::Sha256, stun::PasswordAlgorithm::Md5};

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
RequestMethod method_index(Method m) {
  switch (m) {
    case Method::Binding: return RequestMethod::Binding;
    case Method::Allocate: return RequestMethod::Allocate;
    case Method::Refresh: return RequestMethod::Refresh;
    case Method::CreatePermission: return RequestMethod::CreatePermission;
    case Method::ChannelBind: return RequestMethod::ChannelBind;
    default: return RequestMethod::Other;
  }
}

AllocationFamily family_of(const Allocation& a) {
  if (a.v4 && a.v6) return AllocationFamily::Dual;
  return a.v6 ? AllocationFamily::V6 : AllocationFamily::V4;
}
}  // namespace

ServerCore::ServerCore(ServerCoreConfig config, const Clock& clock, Io& io, auth::CredentialStore& credentials,
                       PeerPolicy policy)
    : config_(std::move(config)),
      clock_(clock),
      io_(io),
      credentials_(credentials),
      policy_(std::move(policy)),
      nonces_(config_.nonce_key, config_.nonce_lifetime, config_.userhash) {
  uint64_t seed = config_.seed;
  for (const auto& r : config_.relays) {
    pools_.push_back(std::make_unique<RelayPortPool>(config_.port_min, config_.port_max, ++seed));
    // The server's own addresses are never valid peers (loops through the relay, CVE-2020-26262).
    policy_.add_own_address(r.local);
    if (r.external) policy_.add_own_address(*r.external);
  }
  if (config_.unauth_requests_per_second != 0) {
    const uint64_t rate = config_.unauth_requests_per_second;
    unauth_buckets_.assign(kUnauthBuckets, TokenBucket(rate, 2 * rate, clock_.now()));
  }
}

bool ServerCore::unauthenticated_answer_allowed(const FiveTuple& to) {
  if (unauth_buckets_.empty() || is_stream(to.transport)) return true;  // a stream's source is not spoofed
  stun::TransportAddress ip = to.client;
  ip.port = 0;
  const size_t slot = (stun::TransportAddressHash{}(ip) ^ config_.seed) * 0x9E3779B97F4A7C15ull >> 52;
  if (unauth_buckets_[slot % kUnauthBuckets].try_consume(1, clock_.now())) return true;
  stats_.drop(DropReason::RateLimited);
  return false;
}

ServerCore::~ServerCore() {
  *alive_ = false;
  for (auto& [id, c] : tcp_connections_) io_.close_peer_connection(id);
  for (auto& [tuple, a] : allocations_) {
    if (a->v4) close_leg(*a->v4);
    if (a->v6) close_leg(*a->v6);
  }
}

size_t ServerCore::open_relay_count() const {
  return static_cast<size_t>(std::count_if(relay_owner_.begin(), relay_owner_.end(), [](auto* p) { return p != nullptr; }));
}

const Allocation* ServerCore::find_allocation(const FiveTuple& t) const {
  auto it = allocations_.find(t);
  return it == allocations_.end() ? nullptr : it->second.get();
}

// ---- entry points -------------------------------------------------------------------------------

stun::MutableBytes ServerCore::response_buffer() {
  // One answer per lent buffer: a second message built during the same packet must not overwrite
  // the first, which the shell may not have sent yet.
  if (scratch_.empty()) return out_;
  return std::exchange(scratch_, stun::MutableBytes{});
}

void ServerCore::on_client_packet(const FiveTuple& from, Bytes packet, stun::MutableBytes scratch) {
  scratch_ = scratch.size() >= kResponseCapacity ? scratch.first(kResponseCapacity) : stun::MutableBytes{};
  struct Unlend {
    stun::MutableBytes& s;
    ~Unlend() { s = {}; }  // answers given later (an asynchronous credential lookup) use out_
  } unlend{scratch_};
  if (stun::looks_like_channel_data(packet)) {
    handle_channel_data(from, packet);
    return;
  }
  auto msg = MessageView::parse(packet);
  if (!msg) {
    // Not STUN at all: drop silently. STUN-shaped but malformed: a request gets 400 when we can
    // read its header (RFC 8489 §6.3), anything else is dropped.
    stats_.drop(DropReason::Malformed);
    if (packet.size() >= stun::kHeaderSize && (packet[0] & 0xC0) == 0 &&
        stun::load_u32(packet.data() + 4) == stun::kMagicCookie &&
        stun::class_of(stun::load_u16(packet.data())) == Class::Request) {
      // Build a minimal 400 from the header alone.
      MessageBuilder b(response_buffer(), stun::make_type(stun::method_of(stun::load_u16(packet.data())), Class::Error),
                       std::span<const uint8_t, stun::kTransactionIdSize>(packet.data() + 8, stun::kTransactionIdSize));
      b.add_error_code(code::BadRequest, "Malformed message");
      if (!config_.software.empty()) b.add_text(attr::Software, config_.software);
      if (auto bytes = b.finish()) io_.send_to_client(from, *bytes);
      stats_.errors_sent[code::BadRequest].add();
      stats_.responses[idx(method_index(stun::method_of(stun::load_u16(packet.data()))))][idx(RequestResult::Error)].add();
    }
    return;
  }
  handle_stun(from, *msg);
}

void ServerCore::handle_stun(const FiveTuple& from, const MessageView& msg) {
  const Class cls = msg.cls();
  if (cls == Class::Success || cls == Class::Error) return;  // we never sent a request
  if (msg.method() == Method::Binding) {
    handle_binding(from, msg);
    return;
  }
  if (!msg.has_cookie()) return;  // TURN needs RFC 5389+ clients
  if (cls == Class::Indication) {
    if (msg.method() == Method::Send) handle_send(from, msg);
    return;  // other indications are ignored (§6.3.2)
  }
  stats_.requests.add();
  // FINGERPRINT, when present, must be right (RFC 8489 §7.3): a wrong one means "not STUN".
  if (msg.fingerprint() && !stun::verify_fingerprint(msg)) {
    stats_.drop(DropReason::Malformed);
    return;
  }
  // §7.3.1: unknown comprehension-required attributes get 420 listing them.
  uint16_t unknown[16];
  if (size_t n = msg.unknown_required(unknown); n > 0) {
    auto b = start_response(msg, Class::Error);
    b.add_error_code(code::UnknownAttribute).add_unknown_attributes(std::span<const uint16_t>(unknown, n));
    finish_and_send(from, msg, b, nullptr);
    stats_.errors_sent[code::UnknownAttribute].add();
    return;
  }
  switch (msg.method()) {
    case Method::Allocate:
    case Method::Refresh:
    case Method::CreatePermission:
    case Method::ChannelBind:
    case Method::Connect:         // RFC 6062 §5.2
    case Method::ConnectionBind:  // RFC 6062 §5.4
      authenticate(from, msg);
      return;
    default:
      send_error(from, msg, code::BadRequest, nullptr, "Unsupported method");
      return;
  }
}

// ---- Binding (RFC 8489 §7.3, RFC 5780 §6) ---------------------------------------------------------

namespace {
// The RFC 5780 attributes of a Binding request.
struct NatRequest {
  bool change_ip = false;
  bool change_port = false;
  std::optional<uint16_t> response_port;
  bool padding = false;
};

// Reads them; returns why the request gets 400, or "" when it is fine. A response over a TCP or TLS
// connection can come neither from another address nor to another port, and DTLS answers on its
// session, so CHANGE-REQUEST (with a flag set) and RESPONSE-PORT need UDP; PADDING needs datagrams.
std::string_view read_nat_request(const MessageView& msg, Transport transport, NatRequest& out) {
  if (auto a = msg.find(attr::ChangeRequest)) {
    auto cr = stun::decode_change_request(a->value);
    if (!cr) return "Malformed CHANGE-REQUEST";
    out.change_ip = cr->change_ip;
    out.change_port = cr->change_port;
    if ((out.change_ip || out.change_port) && transport != Transport::Udp) return "CHANGE-REQUEST needs UDP";
  }
  if (auto a = msg.find(attr::ResponsePort)) {
    if (a->value.size() != 4 || stun::load_u16(a->value.data()) == 0) return "Malformed RESPONSE-PORT";
    if (transport != Transport::Udp) return "RESPONSE-PORT needs UDP";
    out.response_port = stun::load_u16(a->value.data());
  }
  if (msg.has(attr::Padding)) {
    if (is_stream(transport)) return "PADDING needs UDP or DTLS";
    out.padding = true;
  }
  // RFC 5780 §6.1: PADDING and RESPONSE-PORT together are an error.
  if (out.padding && out.response_port) return "PADDING and RESPONSE-PORT cannot go together";
  return {};
}

// RFC 5780 §6.1: PADDING makes the response as large as a 1500-byte MTU allows, so the client
// learns whether large (possibly fragmented) datagrams reach it. `tail` is what follows (SOFTWARE,
// FINGERPRINT).
void add_padding(MessageBuilder& b, stun::Family family, size_t tail) {
  static constexpr std::array<uint8_t, 1500> kZeros{};
  const size_t datagram = 1500 - (family == stun::Family::V4 ? 20 : 40) - 8;  // minus IP and UDP headers
  const size_t used = b.size() + 4 + tail;
  if (used >= datagram) return;
  b.add(attr::Padding, Bytes(kZeros.data(), (datagram - used) & ~size_t{3}));
}
}  // namespace

void ServerCore::handle_binding(const FiveTuple& from, const MessageView& msg) {
  if (msg.cls() != Class::Request) return;  // Binding indications are keep-alives: no answer
  stats_.binding_requests.add();
  if (msg.fingerprint() && !stun::verify_fingerprint(msg)) {
    stats_.drop(DropReason::Malformed);
    return;
  }
  const std::optional<NatDiscovery>& nat = config_.nat_discovery;
  uint16_t unknown[16];
  size_t n = msg.unknown_required(unknown);
  // Without a second address and port, the RFC 5780 attributes are not understood (§6.1).
  if (!nat) {
    for (uint16_t t : {attr::ChangeRequest, attr::ResponsePort, attr::Padding}) {
      if (msg.has(t) && n < std::size(unknown)) unknown[n++] = t;
    }
  }
  NatRequest nr;
  if (n == 0 && nat) {
    if (auto problem = read_nat_request(msg, from.transport, nr); !problem.empty()) {
      send_error(from, msg, code::BadRequest, nullptr, problem);
      return;
    }
    // A listener that is not one of the four has no alternate to answer from.
    if ((nr.change_ip || nr.change_port) && !nat->serves(from.server)) unknown[n++] = attr::ChangeRequest;
  }
  if (n > 0) {
    auto b = start_response(msg, Class::Error);
    b.add_error_code(code::UnknownAttribute).add_unknown_attributes(std::span<const uint16_t>(unknown, n));
    finish_and_send(from, msg, b, nullptr);
    stats_.errors_sent[code::UnknownAttribute].add();
    return;
  }
  // Where the answer goes and where it leaves from (RFC 5780 §6.1).
  const bool rfc5780 = nat && from.transport == Transport::Udp && nat->serves(from.server);
  FiveTuple reply = from;
  if (nr.response_port) reply.client.port = *nr.response_port;
  if (rfc5780) reply.server = nat->source(from.server, nr.change_ip, nr.change_port);

  auto b = start_response(msg, Class::Success);
  if (msg.has_cookie()) {
    b.add_xor_address(attr::XorMappedAddress, from.client);
    // RFC 5780 §6.1: both MAPPED-ADDRESS and XOR-MAPPED-ADDRESS, so clients can spot an ALG.
    if (nat) b.add_address(attr::MappedAddress, from.client);
  } else {
    b.add_address(attr::MappedAddress, from.client);  // RFC 3489 client
  }
  if (rfc5780 && msg.has_cookie()) {
    b.add_address(attr::ResponseOrigin, reply.server);
    b.add_address(attr::OtherAddress, nat->other(from.server));
  }
  if (nr.padding) {
    // A padded answer is some 20 times the size of a small request: it counts against the
    // unauthenticated rate, so ferry cannot be made to amplify traffic at a spoofed source.
    if (!unauthenticated_answer_allowed(from)) return;
    const size_t software = config_.software.empty() ? 0 : 4 + stun::padded4(config_.software.size());
    add_padding(b, from.client.family, software + (msg.fingerprint() ? 8 : 0));
  }
  finish_and_send(reply, msg, b, nullptr);
}

// ---- authentication (RFC 8489 §9.2.4) ---------------------------------------------------------------

std::string ServerCore::nonce_for(const FiveTuple& t) const {
  uint8_t binding[48];
  const size_t n = t.encode(binding);
  return nonces_.make(Bytes(binding, n), clock_.unix_seconds());
}

void ServerCore::send_challenge(const FiveTuple& to, const MessageView& req, uint16_t c) {
  if (!unauthenticated_answer_allowed(to)) return;
  auto b = start_response(req, Class::Error);
  b.add_error_code(c);
  b.add_text(attr::Realm, config_.realm);
  b.add_text(attr::Nonce, nonce_for(to));
  b.add_password_algorithms(kAlgorithms);
  finish_and_send(to, req, b, nullptr);
  stats_.errors_sent[c].add();
}

void ServerCore::authenticate(const FiveTuple& from, const MessageView& msg) {
  const bool has_mi = msg.message_integrity().has_value();
  const bool has_mi256 = msg.message_integrity_sha256().has_value();
  if (!has_mi && !has_mi256) {
    stats_.auth_failed(AuthFailure::Missing);
    send_challenge(from, msg, code::Unauthenticated);
    return;
  }
  auto username_attr = msg.find(attr::Username);
  auto userhash_attr = msg.find(attr::Userhash);
  auto realm_attr = msg.find(attr::Realm);
  auto nonce_attr = msg.find(attr::Nonce);
  if ((!username_attr && !userhash_attr) || !realm_attr || !nonce_attr) {
    send_error(from, msg, code::BadRequest, nullptr, "Missing USERNAME, REALM or NONCE");
    return;
  }
  auto nonce = stun::decode_text(nonce_attr->value, stun::kMaxNonceBytes);
  auto realm = stun::decode_text(realm_attr->value, stun::kMaxRealmBytes);
  if (!nonce || !realm) {
    send_error(from, msg, code::BadRequest, nullptr);
    return;
  }
  uint8_t binding[48];
  const size_t bn = from.encode(binding);
  if (nonces_.check(*nonce, Bytes(binding, bn), clock_.unix_seconds()) != auth::NonceCheck::Valid &&
      !connection_bind_nonce_valid(msg, *nonce)) {
    stats_.auth_failed(AuthFailure::BadNonce);
    send_challenge(from, msg, code::StaleNonce);
    return;
  }
  // §9.2.4 bid-down protection: our nonces announce PASSWORD-ALGORITHMS, so a client that names an
  // algorithm must echo the list we sent, unchanged; a client that sends neither uses MD5.
  auto algs_attr = msg.find(attr::PasswordAlgorithms);
  auto alg_attr = msg.find(attr::PasswordAlgorithm);
  if (algs_attr || alg_attr) {
    if (!algs_attr || !alg_attr) {
      send_error(from, msg, code::BadRequest, nullptr, "PASSWORD-ALGORITHM and PASSWORD-ALGORITHMS go together");
      return;
    }
    // The list we send: SHA-256 then MD5, each with empty parameters.
    static constexpr uint8_t kExpected[] = {0x00, 0x02, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00};
    if (!std::equal(algs_attr->value.begin(), algs_attr->value.end(), std::begin(kExpected), std::end(kExpected))) {
      send_error(from, msg, code::BadRequest, nullptr, "PASSWORD-ALGORITHMS does not match");
      return;
    }
    auto alg = stun::decode_password_algorithm(alg_attr->value);
    if (!alg || (alg->algorithm != static_cast<uint16_t>(stun::PasswordAlgorithm::Md5) &&
                 alg->algorithm != static_cast<uint16_t>(stun::PasswordAlgorithm::Sha256))) {
      send_error(from, msg, code::BadRequest, nullptr, "Unsupported PASSWORD-ALGORITHM");
      return;
    }
  }
  if (*realm != config_.realm) {
    stats_.auth_failed(AuthFailure::UnknownUser);
    send_challenge(from, msg, code::Unauthenticated);
    return;
  }
  std::string username;
  if (username_attr) {
    auto u = stun::decode_text(username_attr->value, stun::kMaxUsernameBytes);
    if (!u) {
      send_error(from, msg, code::BadRequest, nullptr);
      return;
    }
    username.assign(u->begin(), u->end());
  } else {
    auto h = stun::decode_userhash(userhash_attr->value);
    std::optional<std::string> name;
    if (h) name = credentials_.username_for_hash(*h, config_.realm);
    if (!name) {
      stats_.auth_failed(AuthFailure::UnknownUser);
      send_challenge(from, msg, code::Unauthenticated);
      return;
    }
    username = std::move(*name);
  }

  // The store may answer now (static users, cache) or later (database). Only in the latter case is
  // the request copied, to be parsed again when the answer comes.
  auto pending = std::make_shared<std::vector<uint8_t>>();
  std::weak_ptr<bool> alive = alive_;
  auto immediate = credentials_.lookup(
      username, config_.realm, [this, alive, pending, from, username](auth::LookupResult r) {
        if (alive.expired() || pending->empty()) return;
        auto again = MessageView::parse(Bytes(pending->data(), pending->size()));
        if (again) continue_authenticated(from, *again, r, username);
      });
  if (immediate) {
    continue_authenticated(from, msg, *immediate, username);
  } else {
    pending->assign(msg.bytes().begin(), msg.bytes().end());
  }
}

void ServerCore::continue_authenticated(const FiveTuple& from, const MessageView& msg, const auth::LookupResult& r,
                                        const std::string& username) {
  if (r.status == auth::LookupStatus::Unavailable) {
    stats_.auth_failed(AuthFailure::StoreUnavailable);
    send_error(from, msg, code::ServerError, nullptr, "Credential store unavailable");
    return;
  }
  if (r.status != auth::LookupStatus::Found || !r.credential) {
    stats_.auth_failed(AuthFailure::UnknownUser);
    send_challenge(from, msg, code::Unauthenticated);
    return;
  }
  const auth::Credential& cred = *r.credential;
  if (cred.expires_unix != 0 && cred.expires_unix <= clock_.unix_seconds()) {
    stats_.auth_failed(AuthFailure::UnknownUser);
    send_challenge(from, msg, code::Unauthenticated);
    return;
  }
  // Which key: PASSWORD-ALGORITHM SHA-256 selects the SHA-256 key, otherwise MD5 (§9.2.2).
  bool sha256_key = false;
  if (auto alg_attr = msg.find(attr::PasswordAlgorithm)) {
    auto alg = stun::decode_password_algorithm(alg_attr->value);
    sha256_key = alg && alg->algorithm == static_cast<uint16_t>(stun::PasswordAlgorithm::Sha256);
  }
  // MESSAGE-INTEGRITY-SHA256 is checked when present; otherwise MESSAGE-INTEGRITY (§9.2.4).
  const bool use_sha256 = msg.message_integrity_sha256().has_value();
  auto verifies = [&](const stun::Key& k) {
    return use_sha256 ? stun::verify_message_integrity_sha256(msg, k.view()) : stun::verify_message_integrity(msg, k.view());
  };
  // The primary key, then any alternates (shared secrets being rotated), in order.
  const stun::Key* key = nullptr;
  auto pick = [&](const stun::Key& md5, const std::optional<stun::Key>& sha) {
    const stun::Key* k = sha256_key ? (sha ? &*sha : nullptr) : &md5;
    if (k != nullptr && verifies(*k)) key = k;
    return key != nullptr;
  };
  if (!pick(cred.key_md5, cred.key_sha256)) {
    for (const auto& alt : cred.alternates) {
      if (pick(alt.key_md5, alt.key_sha256)) break;
    }
  }
  if (key == nullptr) {
    stats_.auth_failed(AuthFailure::BadIntegrity);
    send_challenge(from, msg, code::Unauthenticated);
    return;
  }
  Auth a{username, *key, use_sha256, cred.quota};
  dispatch(from, msg, a);
}

void ServerCore::dispatch(const FiveTuple& from, const MessageView& msg, const Auth& auth) {
  if (msg.method() == Method::Allocate) {
    handle_allocate(from, msg, auth);
    return;
  }
  if (msg.method() == Method::ConnectionBind) {  // comes on a connection without an allocation
    handle_connection_bind(from, msg, auth);
    return;
  }
  auto it = allocations_.find(from);
  if (it == allocations_.end()) {
    send_error(from, msg, code::AllocationMismatch, &auth);
    return;
  }
  Allocation& a = *it->second;
  if (a.username != auth.username) {  // §5: later requests must come from the same user
    stats_.auth_failed(AuthFailure::WrongUser);
    send_error(from, msg, code::WrongCredentials, &auth);
    return;
  }
  switch (msg.method()) {
    case Method::Refresh: handle_refresh(from, msg, auth, a); return;
    case Method::CreatePermission: handle_create_permission(from, msg, auth, a); return;
    case Method::ChannelBind:
      if (a.tcp) {  // RFC 6062: data of a TCP allocation goes over data connections only
        send_error(from, msg, code::BadRequest, &auth, "No channels on a TCP allocation");
        return;
      }
      handle_channel_bind(from, msg, auth, a);
      return;
    case Method::Connect: handle_connect(from, msg, auth, a); return;
    default: send_error(from, msg, code::BadRequest, &auth); return;
  }
}

// ---- Allocate (RFC 8656 §7.2) -----------------------------------------------------------------------

uint32_t ServerCore::lifetime_for(std::optional<uint32_t> requested) const {
  if (!requested) return config_.default_lifetime;
  return std::clamp(*requested, config_.default_lifetime, config_.max_lifetime);
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
                                             bool reserve_next, std::optional<uint64_t> token,
                                             uint64_t* reserved_token, uint16_t* error) {
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
      const OpenRelayResult r = tcp ? io_.open_tcp_relay(leg.id, leg.local) : io_.open_relay(leg.id, leg.local, dont_fragment);
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
      send_error(from, msg, err, &auth, "TCP allocations need a TCP/TLS client and no DONT-FRAGMENT, EVEN-PORT or RESERVATION-TOKEN");
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
  // Quotas: the user's (486), then the server's (508).
  auto user_count = per_user_.find(auth.username);
  const size_t used = user_count == per_user_.end() ? 0 : user_count->second;
  const size_t cred_quota =
      auth.quota.max_allocations != 0 ? auth.quota.max_allocations : config_.max_allocations_per_user;
  if (cred_quota != 0 && used >= cred_quota) {
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
  alloc->granted_lifetime = lifetime_for(requested_lifetime);
  alloc->expires = clock_.now() + std::chrono::seconds(alloc->granted_lifetime);
  alloc->allocate_txid = msg.transaction_id_copy();
  if (reserved_token != 0) alloc->reservation_token = reserved_token;
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
  Auth auth{a.username, a.key, a.sha256, {}};
  finish_and_send(to, req, b, &auth);
}

// ---- Refresh (§7.3) -------------------------------------------------------------------------------------

void ServerCore::handle_refresh(const FiveTuple& from, const MessageView& msg, const Auth& auth, Allocation& a) {
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
  // §7.3: min(requested, maximum), but never below the default, exactly as for Allocate.
  const uint32_t granted = lifetime_for(requested);
  a.granted_lifetime = granted;
  a.expires = clock_.now() + std::chrono::seconds(granted);
  auto b = start_response(msg, Class::Success);
  b.add_u32(attr::Lifetime, granted);
  finish_and_send(from, msg, b, &auth);
}

// ---- permissions and channels (§9, §11) --------------------------------------------------------------

bool ServerCore::peer_allowed(const TransportAddress& peer) const {
  // Permissions ignore the port (§9), but port 0 is never a real peer.
  return policy_.check(peer) == PeerVerdict::Allowed;
}

void ServerCore::handle_create_permission(const FiveTuple& from, const MessageView& msg, const Auth& auth,
                                          Allocation& a) {
  // Collect every XOR-PEER-ADDRESS first: the request succeeds or fails as a whole (§9.2).
  std::array<TransportAddress, 16> peers;
  size_t n = 0;
  uint16_t failure = 0;
  msg.for_each([&](const stun::RawAttribute& at) {
    if (at.type != attr::XorPeerAddress) return true;
    auto p = stun::decode_xor_address(at.value, msg.transaction_id());
    if (!p) {
      failure = code::BadRequest;
      return false;
    }
    if (!a.leg_for(p->family)) {
      failure = code::PeerAddressFamilyMismatch;
      return false;
    }
    if (!peer_allowed(p->port == 0 ? p->with_port(1) : *p)) {
      failure = code::Forbidden;
      return false;
    }
    if (n == peers.size()) {
      failure = code::InsufficientCapacity;
      return false;
    }
    peers[n++] = *p;
    return true;
  });
  if (failure == 0 && n == 0) failure = code::BadRequest;
  if (failure == 0 && !a.permissions.can_install_all(std::span<const TransportAddress>(peers.data(), n), clock_.now())) {
    failure = code::InsufficientCapacity;
  }
  if (failure != 0) {
    send_error(from, msg, failure, &auth);
    return;
  }
  // The gauge follows the table's size: install() may also reclaim expired entries.
  const size_t before = a.permissions.size();
  for (size_t i = 0; i < n; ++i) {
    if (a.permissions.install(peers[i], clock_.now()) == PermissionInstall::Installed) stats_.permissions_created.add();
  }
  stats_.permissions_active.add(static_cast<int64_t>(a.permissions.size()) - static_cast<int64_t>(before));
  auto b = start_response(msg, Class::Success);
  finish_and_send(from, msg, b, &auth);
}

void ServerCore::handle_channel_bind(const FiveTuple& from, const MessageView& msg, const Auth& auth, Allocation& a) {
  auto ch_attr = msg.find(attr::ChannelNumber);
  auto peer_attr = msg.find(attr::XorPeerAddress);
  if (!ch_attr || !peer_attr) {
    send_error(from, msg, code::BadRequest, &auth, "Missing CHANNEL-NUMBER or XOR-PEER-ADDRESS");
    return;
  }
  auto ch = stun::decode_channel_number(ch_attr->value);
  auto number = ch ? ChannelNumber::from(*ch, config_.max_channel_number) : std::nullopt;
  if (!number) {
    send_error(from, msg, code::BadRequest, &auth, "Channel number out of range");
    return;
  }
  auto peer = stun::decode_xor_address(peer_attr->value, msg.transaction_id());
  if (!peer) {
    send_error(from, msg, code::BadRequest, &auth);
    return;
  }
  if (!a.leg_for(peer->family)) {
    send_error(from, msg, code::PeerAddressFamilyMismatch, &auth);
    return;
  }
  if (!peer_allowed(*peer)) {
    send_error(from, msg, code::Forbidden, &auth);
    return;
  }
  const Instant now = clock_.now();
  // The binding also installs or refreshes a permission for the peer's IP (§11.2); check that
  // there is room for it before binding.
  if (!a.permissions.allows(*peer, now) &&
      !a.permissions.can_install_all(std::span<const TransportAddress>(&*peer, 1), now)) {
    send_error(from, msg, code::InsufficientCapacity, &auth);
    return;
  }
  const ChannelBind r = a.channels.bind(*number, *peer, now);
  if (!succeeded(r)) {
    send_error(from, msg, error_code(r), &auth);
    return;
  }
  if (r == ChannelBind::Bound) {
    stats_.channels_bound.add();
    stats_.channels_active.add();
  }
  const size_t before = a.permissions.size();
  if (a.permissions.install(*peer, now) == PermissionInstall::Installed) stats_.permissions_created.add();
  stats_.permissions_active.add(static_cast<int64_t>(a.permissions.size()) - static_cast<int64_t>(before));
  auto b = start_response(msg, Class::Success);
  finish_and_send(from, msg, b, &auth);
}

// ---- data (§10, §12) -------------------------------------------------------------------------------------

void ServerCore::relay_to_peer(Allocation& a, const TransportAddress& peer, Bytes data) {
  const RelayLeg* leg = a.leg_for(peer.family);
  if (leg == nullptr) {
    stats_.drop(DropReason::Policy);
    return;
  }
  const Instant now = clock_.now();
  if (!a.permissions.allows(peer, now)) {
    stats_.drop(DropReason::NoPermission);
    return;
  }
  if (!a.bandwidth.unlimited() && !a.bandwidth.try_consume(data.size(), now)) {
    stats_.drop(DropReason::Bandwidth);
    return;
  }
  io_.send_to_peer(leg->id, peer, data);
  stats_.relayed(Direction::ClientToPeer, data.size());
}

void ServerCore::handle_send(const FiveTuple& from, const MessageView& msg) {
  auto it = allocations_.find(from);
  if (it == allocations_.end()) {
    stats_.drop(DropReason::NoAllocation);
    return;
  }
  auto peer_attr = msg.find(attr::XorPeerAddress);
  auto data_attr = msg.find(attr::Data);
  if (!peer_attr || !data_attr) {
    stats_.drop(DropReason::Malformed);
    return;
  }
  auto peer = stun::decode_xor_address(peer_attr->value, msg.transaction_id());
  if (!peer) {
    stats_.drop(DropReason::Malformed);
    return;
  }
  if (!peer_allowed(*peer) || it->second->tcp) {  // a TCP allocation has no Send (RFC 6062)
    stats_.drop(DropReason::Policy);
    return;
  }
  relay_to_peer(*it->second, *peer, data_attr->value);
}

void ServerCore::handle_channel_data(const FiveTuple& from, Bytes packet) {
  auto cd = stun::parse_channel_data(packet, config_.max_channel_number);
  if (!cd) {
    stats_.drop(DropReason::Malformed);
    return;
  }
  auto it = allocations_.find(from);
  if (it == allocations_.end()) {
    stats_.drop(DropReason::NoAllocation);
    return;
  }
  Allocation& a = *it->second;
  auto number = ChannelNumber::from(cd->channel, config_.max_channel_number);
  auto peer = number ? a.channels.peer_of(*number, clock_.now()) : std::nullopt;
  if (!peer) {
    stats_.drop(DropReason::NoChannel);
    return;
  }
  relay_to_peer(a, *peer, cd->data);
}

void ServerCore::on_peer_packet(RelayId relay, const TransportAddress& peer, uint8_t* buffer, size_t len) {
  if (relay >= relay_owner_.size() || relay_owner_[relay] == nullptr) return;
  Allocation& a = *relay_owner_[relay];
  const Instant now = clock_.now();
  if (!a.permissions.allows(peer, now)) {
    stats_.drop(DropReason::NoPermission);
    return;
  }
  if (len > 0xFFFF - 64) {
    stats_.drop(DropReason::Malformed);
    return;
  }
  if (!a.bandwidth.unlimited() && !a.bandwidth.try_consume(len, now)) {
    stats_.drop(DropReason::Bandwidth);
    return;
  }
  const bool stream = is_stream(a.tuple.transport);
  uint8_t* payload = buffer + kPeerHeadroom;
  if (auto ch = a.channels.channel_of(peer, now)) {
    // ChannelData framed in place: the 4-byte header goes just before the payload (§12.6).
    uint8_t* frame = payload - stun::kChannelDataHeaderSize;
    const size_t size = stun::write_channel_data_header(frame, ch->value(), static_cast<uint16_t>(len), stream);
    io_.send_to_client(a.tuple, Bytes(frame, size));
  } else {
    // Data indication (§10.3): header, XOR-PEER-ADDRESS, DATA; built in front of the payload.
    const size_t addr_len = 4 + peer.ip_size();
    const size_t prefix = stun::kHeaderSize + 4 + addr_len + 4;
    uint8_t* msg = payload - prefix;
    uint8_t* p = msg;
    stun::store_u16(p, stun::make_type(Method::Data, Class::Indication));
    const size_t total = prefix + stun::padded4(len);
    stun::store_u16(p + 2, static_cast<uint16_t>(total - stun::kHeaderSize));
    stun::store_u32(p + 4, stun::kMagicCookie);
    // An indication's transaction id need not be secret, only vary (RFC 8489 §6): a counter will do.
    ++indication_counter_;
    std::memcpy(p + 8, &indication_counter_, sizeof(indication_counter_));
    std::memset(p + 8 + sizeof(indication_counter_), 0, 12 - sizeof(indication_counter_));
    p += stun::kHeaderSize;
    stun::store_u16(p, attr::XorPeerAddress);
    stun::store_u16(p + 2, static_cast<uint16_t>(addr_len));
    stun::encode_xor_address(peer, std::span<const uint8_t, 12>(msg + 8, 12), p + 4);
    p += 4 + addr_len;
    stun::store_u16(p, attr::Data);
    stun::store_u16(p + 2, static_cast<uint16_t>(len));
    std::memset(payload + len, 0, stun::padded4(len) - len);
    io_.send_to_client(a.tuple, Bytes(msg, total));
  }
  stats_.relayed(Direction::PeerToClient, len);
}

// ---- lifetimes -----------------------------------------------------------------------------------------

Gauge& ServerCore::active_gauge(const Allocation& a) {
  return stats_.allocations_active[static_cast<size_t>(a.tuple.transport)][idx(family_of(a))];
}

void ServerCore::destroy(Allocation& a, bool connection_gone) {
  const FiveTuple tuple = a.tuple;
  // RFC 6062 §5.5: the allocation's data connections end with it.
  while (!a.tcp_connections.empty()) close_tcp_connection(a.tcp_connections.back(), /*tell_shell=*/true);
  active_gauge(a).sub();
  stats_.permissions_active.sub(static_cast<int64_t>(a.permissions.size()));
  stats_.channels_active.sub(static_cast<int64_t>(a.channels.live_count(clock_.now())));
  if (a.v4) close_leg(*a.v4);
  if (a.v6) close_leg(*a.v6);
  if (auto it = per_user_.find(a.username); it != per_user_.end() && --it->second == 0) per_user_.erase(it);
  allocations_.erase(tuple);  // `a` is gone after this
  // A stream's allocation and its connection end together (RFC 8656 §3.1): tell the shell, unless
  // the connection is what ended.
  if (is_stream(tuple.transport) && !connection_gone) io_.allocation_closed(tuple);
}

void ServerCore::on_client_closed(const FiveTuple& client) {
  auto it = allocations_.find(client);
  if (it == allocations_.end()) return;
  stats_.allocations_deleted.add();
  destroy(*it->second, /*connection_gone=*/true);
}

void ServerCore::tick(uint32_t part, uint32_t parts) {
  const Instant now = clock_.now();
  if (parts == 0) parts = 1;
  part %= parts;
  std::vector<Allocation*>& expired = expired_scratch_;
  expired.clear();
  if (part == 0) round_counts_ = {0, 0};
  // By hash bucket: erasing keeps the bucket count, and a rehash between two parts (new
  // allocations) only moves some allocations to a part walked a little earlier or later.
  for (size_t b = part; b < allocations_.bucket_count(); b += parts) {
    for (auto it = allocations_.begin(b); it != allocations_.end(b); ++it) {
      Allocation* a = it->second.get();
      if (a->expires <= now) {
        expired.push_back(a);
        continue;
      }
      a->permissions.expire(now);
      a->channels.expire(now);
      round_counts_.first += static_cast<int64_t>(a->permissions.size());
      round_counts_.second += static_cast<int64_t>(a->channels.live_count(now));
    }
  }
  for (Allocation* a : expired) {
    stats_.allocations_expired.add();
    destroy(*a);
  }
  // A whole round walked: recount the gauges (between rounds they follow installs and deletes
  // one by one). The survivors are exactly the allocations summed above.
  if (part == parts - 1) {
    stats_.permissions_active.set(round_counts_.first);
    stats_.channels_active.set(round_counts_.second);
  }
  if (part != 0) return;
  expire_tcp_connections(now);
  for (auto& pool : pools_) pool->expire(now);
  // Forget reservation tokens whose port the pool has taken back.
  for (auto it = reservations_.begin(); it != reservations_.end();) {
    if (pools_[it->second.first]->is_free(it->second.second)) {
      it = reservations_.erase(it);
    } else {
      ++it;
    }
  }
}

void ServerCore::set_limits(const ServerCoreConfig& l) {
  config_.default_lifetime = l.default_lifetime;
  config_.max_lifetime = l.max_lifetime;
  config_.max_allocations = l.max_allocations;
  config_.max_allocations_per_user = l.max_allocations_per_user;
  config_.max_permissions = l.max_permissions;
  config_.max_channels = l.max_channels;
  config_.bandwidth_per_allocation = l.bandwidth_per_allocation;
  config_.tcp_relay = l.tcp_relay;  // for new Allocates; TCP allocations already made go on
  if (l.unauth_requests_per_second != config_.unauth_requests_per_second) {
    config_.unauth_requests_per_second = l.unauth_requests_per_second;
    const uint64_t rate = l.unauth_requests_per_second;
    if (rate == 0) {
      unauth_buckets_.clear();
    } else if (unauth_buckets_.empty()) {
      unauth_buckets_.assign(kUnauthBuckets, TokenBucket(rate, 2 * rate, clock_.now()));
    } else {
      for (auto& b : unauth_buckets_) b.reconfigure(rate, 2 * rate, clock_.now());
    }
  }
}

void ServerCore::set_draining(bool draining, std::optional<TransportAddress> alternate) {
  draining_ = draining;
  alternate_server_ = draining ? alternate : std::nullopt;
}

size_t ServerCore::close_user(std::string_view username) {
  std::vector<Allocation*> victims;
  for (auto& [tuple, a] : allocations_) {
    if (a->username == username) victims.push_back(a.get());
  }
  for (Allocation* a : victims) {
    stats_.allocations_deleted.add();
    destroy(*a);
  }
  return victims.size();
}

size_t ServerCore::revalidate_users() {
  std::vector<std::string> users;
  for (auto& [tuple, a] : allocations_) users.push_back(a->username);
  std::sort(users.begin(), users.end());
  users.erase(std::unique(users.begin(), users.end()), users.end());
  size_t closed = 0;
  std::weak_ptr<bool> alive = alive_;
  for (const auto& username : users) {
    auto immediate = credentials_.lookup(username, config_.realm, [this, alive, username](auth::LookupResult r) {
      if (!alive.expired()) close_unvouched(username, r);
    });
    if (immediate) closed += close_unvouched(username, *immediate);
  }
  return closed;
}

size_t ServerCore::close_unvouched(const std::string& username, const auth::LookupResult& r) {
  if (r.status == auth::LookupStatus::Unavailable) return 0;
  auto vouches = [&](const Allocation& a) {
    if (r.status != auth::LookupStatus::Found || !r.credential) return false;
    const auth::Credential& c = *r.credential;
    auto matches = [&](const stun::Key& md5, const std::optional<stun::Key>& sha) {
      return a.key == md5 || (sha && a.key == *sha);
    };
    if (matches(c.key_md5, c.key_sha256)) return true;
    for (const auto& alt : c.alternates) {
      if (matches(alt.key_md5, alt.key_sha256)) return true;
    }
    return false;
  };
  std::vector<Allocation*> victims;
  for (auto& [tuple, a] : allocations_) {
    if (a->username == username && !vouches(*a)) victims.push_back(a.get());
  }
  for (Allocation* a : victims) {
    stats_.allocations_deleted.add();
    destroy(*a);
  }
  return victims.size();
}

// ---- responses -------------------------------------------------------------------------------------------

MessageBuilder ServerCore::start_response(const MessageView& req, Class cls) {
  // Every answer starts here, so this is where responses are counted by method and result.
  stats_.responses[idx(method_index(req.method()))][idx(cls == Class::Success ? RequestResult::Success : RequestResult::Error)].add();
  return MessageBuilder(response_buffer(), stun::make_type(req.method(), cls), req.cookie_and_id());
}

void ServerCore::finish_and_send(const FiveTuple& to, const MessageView& req, MessageBuilder& b, const Auth* auth) {
  finish_and_send(to, req.fingerprint().has_value(), b, auth);
}

void ServerCore::finish_and_send(const FiveTuple& to, bool fingerprint, MessageBuilder& b, const Auth* auth) {
  if (!config_.software.empty()) b.add_text(attr::Software, config_.software);
  if (auth != nullptr) {
    if (auth->sha256) {
      b.add_message_integrity_sha256(auth->key.view());
    } else {
      b.add_message_integrity(auth->key.view());
    }
  }
  if (fingerprint) b.add_fingerprint();
  if (auto bytes = b.finish()) io_.send_to_client(to, *bytes);
}

void ServerCore::send_error(const FiveTuple& to, const MessageView& req, uint16_t c, const Auth* auth,
                            std::string_view reason) {
  if (auth == nullptr && !unauthenticated_answer_allowed(to)) return;
  auto b = start_response(req, Class::Error);
  b.add_error_code(c, reason);
  finish_and_send(to, req, b, auth);
  if (c < stats_.errors_sent.size()) {
    stats_.errors_sent[c].add();
    if (req.method() == Method::Allocate) stats_.allocations_refused[c].add();
  }
}

}  // namespace ferry::turn
