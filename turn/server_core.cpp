// ServerCore: construction, the entry points for client packets and their dispatch by method, the
// lifetimes of allocations (tick, revocation, draining) and the building of responses. The request
// handlers live beside it, one file per method group: request_auth.cpp (RFC 8489 §9.2 long-term
// credentials), binding.cpp, allocate.cpp (Allocate, Refresh), permission.cpp (CreatePermission,
// ChannelBind), data.cpp (Send/Data, ChannelData) and tcp_relay.cpp (RFC 6062).
#include "turn/server_core.h"

#include <algorithm>

#include "stun/attributes.h"
#include "stun/channel_data.h"
#include "stun/integrity.h"

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
      nonces_(config_.nonce_key, config_.nonce_lifetime, config_.userhash),
      tickets_(config_.nonce_key) {
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
  alive_.end();
  for (auto& [id, c] : tcp_connections_) io_.close_peer_connection(id);
  for (auto& [tuple, a] : allocations_) {
    if (a->v4) close_leg(*a->v4);
    if (a->v6) close_leg(*a->v6);
  }
}

size_t ServerCore::open_relay_count() const {
  return static_cast<size_t>(
      std::count_if(relay_owner_.begin(), relay_owner_.end(), [](auto* p) { return p != nullptr; }));
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
      stats_.responses[idx(method_index(stun::method_of(stun::load_u16(packet.data()))))][idx(RequestResult::Error)]
          .add();
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
    default: send_error(from, msg, code::BadRequest, nullptr, "Unsupported method"); return;
  }
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
  if (it == allocations_.end() && msg.method() == Method::Refresh && msg.has(attr::MobilityTicket)) {
    handle_mobility_refresh(from, msg, auth);  // RFC 8016 §3.2: the client moved
    return;
  }
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

// ---- lifetimes -----------------------------------------------------------------------------------------

Gauge& ServerCore::active_gauge(const Allocation& a) {
  return stats_.allocations_active[static_cast<size_t>(a.tuple.transport)][idx(family_of(a))];
}

void ServerCore::destroy(Allocation& a, bool connection_gone) {
  const FiveTuple tuple = a.tuple;
  // The kernel stops relaying first: closing a relay socket below sends what the shell queued,
  // the answer to a Refresh 0 among it, and the client may send again at once. The kernel's last
  // counts join the usage before it is final.
  clear_fast_path(a);
  // RFC 6062 §5.5: the allocation's data connections end with it.
  while (!a.tcp_connections.empty()) close_tcp_connection(a.tcp_connections.back(), /*tell_shell=*/true);
  active_gauge(a).sub();
  stats_.permissions_active.sub(static_cast<int64_t>(a.permissions.size()));
  stats_.channels_active.sub(static_cast<int64_t>(a.channels.live_count(clock_.now())));
  if (a.v4) close_leg(*a.v4);
  if (a.v6) close_leg(*a.v6);
  if (auto it = per_user_.find(a.username); it != per_user_.end() && --it->second == 0) per_user_.erase(it);
  io_.allocation_ended(a);
  forget_mobility(a);
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
      if (a->expires <= now || credential_expired(*a, now)) {
        expired.push_back(a);
        continue;
      }
      a->permissions.expire(now);
      a->channels.expire(now);
      if (!a->fast_path.empty()) expire_fast_path(*a, now);
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
  // Every allocation knows its credential's expiry, so turning this on ends those past it at the
  // next tick and caps the others' next Refresh.
  config_.strict_expiry = l.strict_expiry;
  config_.mobility = l.mobility;  // tickets already given out work again when it is back on
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

size_t ServerCore::close_all() {
  return close_if([](const Allocation&) { return true; });
}

size_t ServerCore::close_if(const std::function<bool(const Allocation&)>& pred) {
  std::vector<Allocation*> victims;
  for (auto& [tuple, a] : allocations_)
    if (pred(*a)) victims.push_back(a.get());
  for (Allocation* a : victims) {
    stats_.allocations_deleted.add();
    destroy(*a);
  }
  return victims.size();
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
  // Token allocations (RFC 7635) answer to their token's lifetime, not to the user stores.
  for (auto& [tuple, a] : allocations_)
    if (!a->access_token) users.push_back(a->username);
  std::sort(users.begin(), users.end());
  users.erase(std::unique(users.begin(), users.end()), users.end());
  size_t closed = 0;
  auto alive = alive_.watch();
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
    if (a->username == username && !a->access_token && !vouches(*a)) victims.push_back(a.get());
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
  stats_
      .responses[idx(method_index(req.method()))]
                [idx(cls == Class::Success ? RequestResult::Success : RequestResult::Error)]
      .add();
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
