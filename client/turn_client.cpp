#include "client/turn_client.h"

#include <openssl/rand.h>

#include <algorithm>
#include <stdexcept>

#include "stun/attributes.h"
#include "stun/channel_data.h"

namespace ferry::client {

using stun::MessageBuilder;
using stun::MessageView;
using stun::Method;
namespace attr = stun::attr;
namespace code = stun::code;

namespace {

constexpr std::string_view kNonceCookie = "obMatJos2";  // RFC 8489 §9.2

// The 24 security-feature bits after the nonce cookie (RFC 8489 §9.2, §18.1), when present.
std::optional<uint32_t> nonce_features(std::string_view nonce) {
  if (nonce.size() < kNonceCookie.size() + 4 || nonce.substr(0, kNonceCookie.size()) != kNonceCookie) {
    return std::nullopt;
  }
  auto sextet = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  uint32_t bits = 0;
  for (size_t i = 0; i < 4; ++i) {
    const int v = sextet(nonce[kNonceCookie.size() + i]);
    if (v < 0) return std::nullopt;
    bits = (bits << 6) | static_cast<uint32_t>(v);
  }
  return bits;
}
constexpr uint32_t kFeaturePasswordAlgorithms = 1u << 23;  // bit 0, the most significant
constexpr uint32_t kFeatureUsernameAnonymity = 1u << 22;   // bit 1

std::string to_string_owned(Bytes b) { return std::string(reinterpret_cast<const char*>(b.data()), b.size()); }

}  // namespace

std::string_view to_string(Outcome o) {
  switch (o) {
    case Outcome::Success: return "success";
    case Outcome::Error: return "error";
    case Outcome::Retry: return "retry";
    case Outcome::Discarded: return "discarded";
  }
  return "?";
}

PacketKind classify(Bytes packet) {
  if (packet.empty()) return PacketKind::Other;
  if (stun::looks_like_stun(packet)) return PacketKind::Stun;
  if (stun::looks_like_channel_data(packet)) return PacketKind::ChannelData;
  return PacketKind::Other;
}

TransactionId random_transaction_id() {
  TransactionId id{};
  if (RAND_bytes(id.data(), static_cast<int>(id.size())) != 1) {
    // No entropy means predictable transaction ids (off-path response spoofing): refuse.
    throw std::runtime_error("RAND_bytes failed");
  }
  return id;
}

TurnClient::TurnClient(TurnClientConfig config) : config_(std::move(config)) {}

void TurnClient::set_auth_state(AuthState state) {
  auth_ = std::move(state);
  recompute_key();
}

void TurnClient::recompute_key() {
  if (auth_.realm.empty()) {
    key_ = stun::Key{};
    return;
  }
  key_ = auth_.use_sha256 ? stun::long_term_key_sha256(config_.username, auth_.realm, config_.password)
                          : stun::long_term_key_md5(config_.username, auth_.realm, config_.password);
}

std::optional<TransportAddress> TurnClient::channel_peer(uint16_t channel) const {
  auto it = channels_.find(channel);
  if (it == channels_.end()) return std::nullopt;
  return it->second;
}

std::optional<uint16_t> TurnClient::channel_of(const TransportAddress& peer) const {
  for (const auto& [ch, p] : channels_) {
    if (p == peer) return ch;
  }
  return std::nullopt;
}

// ---- requests -----------------------------------------------------------------------------------

stun::Result<Bytes> TurnClient::build(MutableBytes out, Pending p) {
  const TransactionId txid = random_transaction_id();
  MessageBuilder b(out, stun::make_type(p.method, stun::Class::Request), txid);
  if (p.body) p.body(b);
  if (!config_.software.empty()) b.add_text(attr::Software, config_.software);
  p.signed_request = false;
  if (p.authenticate && has_credentials()) {
    if (auth_.use_userhash) {
      const auto h = stun::userhash(config_.username, auth_.realm);
      b.add(attr::Userhash, Bytes(h.data(), h.size()));
    } else {
      b.add_text(attr::Username, config_.username);
    }
    b.add_text(attr::Realm, auth_.realm);
    b.add_text(attr::Nonce, auth_.nonce);
    if (!auth_.password_algorithms.empty()) {
      // RFC 8489 §9.2.5: echo the server's list verbatim and name the algorithm chosen from it.
      b.add(attr::PasswordAlgorithms, Bytes(auth_.password_algorithms.data(), auth_.password_algorithms.size()));
      b.add_password_algorithm(auth_.use_sha256 ? stun::PasswordAlgorithm::Sha256 : stun::PasswordAlgorithm::Md5);
    }
    if (auth_.use_sha256) {
      b.add_message_integrity_sha256(key_.view());
    } else {
      b.add_message_integrity(key_.view());
    }
    p.signed_request = true;
    p.sha256 = auth_.use_sha256;
    p.key = key_;
    p.realm = auth_.realm;
  }
  if (config_.fingerprint) b.add_fingerprint();
  auto bytes = b.finish();
  if (!bytes) return bytes.error();
  pending_[txid] = std::move(p);
  last_txid_ = txid;
  return *bytes;
}

stun::Result<Bytes> TurnClient::request(MutableBytes out, Method method, Body body, bool authenticate) {
  Pending p;
  p.method = method;
  p.body = std::move(body);
  p.authenticate = authenticate;
  return build(out, std::move(p));
}

stun::Result<Bytes> TurnClient::retry(MutableBytes out, const TransactionId& previous) {
  auto it = pending_.find(previous);
  if (it == pending_.end()) return stun::Error::Missing;
  Pending p = std::move(it->second);
  pending_.erase(it);
  ++p.retries;
  return build(out, std::move(p));
}

stun::Result<Bytes> TurnClient::binding_request(MutableBytes out) {
  return request(out, Method::Binding, nullptr, /*authenticate=*/false);
}

stun::Result<Bytes> TurnClient::allocate_request(MutableBytes out, const AllocateOptions& o) {
  return request(out, Method::Allocate, [o](MessageBuilder& b) {
    if (o.transport) b.add_requested_transport(*o.transport);
    if (o.lifetime) b.add_u32(attr::Lifetime, *o.lifetime);
    if (o.even_port || o.reserve_next) b.add_even_port(o.reserve_next);
    if (o.requested_family) b.add_address_family(attr::RequestedAddressFamily, *o.requested_family);
    if (o.additional_family) b.add_address_family(attr::AdditionalAddressFamily, *o.additional_family);
    if (o.reservation_token) b.add_reservation_token(*o.reservation_token);
    if (o.dont_fragment) b.add(attr::DontFragment, Bytes());
  });
}

stun::Result<Bytes> TurnClient::refresh_request(MutableBytes out, std::optional<uint32_t> lifetime,
                                                std::optional<Family> family) {
  Pending p;
  p.method = Method::Refresh;
  p.refresh_lifetime = lifetime;
  p.body = [lifetime, family](MessageBuilder& b) {
    if (lifetime) b.add_u32(attr::Lifetime, *lifetime);
    if (family) b.add_address_family(attr::RequestedAddressFamily, *family);
  };
  // A family-scoped LIFETIME 0 removes one leg only: do not forget the whole allocation on success.
  if (family) p.refresh_lifetime.reset();
  return build(out, std::move(p));
}

stun::Result<Bytes> TurnClient::create_permission_request(MutableBytes out, std::span<const TransportAddress> peers) {
  std::vector<TransportAddress> copy(peers.begin(), peers.end());
  return request(out, Method::CreatePermission, [copy = std::move(copy)](MessageBuilder& b) {
    for (const auto& p : copy) b.add_xor_address(attr::XorPeerAddress, p);
  });
}

stun::Result<Bytes> TurnClient::channel_bind_request(MutableBytes out, uint16_t channel, const TransportAddress& peer) {
  Pending p;
  p.method = Method::ChannelBind;
  p.channel = std::make_pair(channel, peer);
  p.body = [channel, peer](MessageBuilder& b) {
    b.add_channel_number(channel);
    b.add_xor_address(attr::XorPeerAddress, peer);
  };
  return build(out, std::move(p));
}

stun::Result<Bytes> TurnClient::connect_request(MutableBytes out, const TransportAddress& peer) {
  return request(out, Method::Connect, [peer](MessageBuilder& b) { b.add_xor_address(attr::XorPeerAddress, peer); });
}

stun::Result<Bytes> TurnClient::connection_bind_request(MutableBytes out, uint32_t connection_id) {
  return request(out, Method::ConnectionBind,
                 [connection_id](MessageBuilder& b) { b.add_u32(attr::ConnectionId, connection_id); });
}

stun::Result<Bytes> TurnClient::send_indication(MutableBytes out, const TransportAddress& peer, Bytes data,
                                                bool dont_fragment) {
  MessageBuilder b(out, Method::Send, stun::Class::Indication, random_transaction_id());
  b.add_xor_address(attr::XorPeerAddress, peer);
  if (dont_fragment) b.add(attr::DontFragment, Bytes());
  b.add(attr::Data, data);
  if (config_.fingerprint) b.add_fingerprint();
  return b.finish();
}

stun::Result<Bytes> TurnClient::channel_data(MutableBytes out, uint16_t channel, Bytes data, bool pad) {
  // Framing allows the RFC 5766 range; whether a number is acceptable is the server's call (§12).
  if (!stun::valid_channel_number(channel, stun::kMaxChannelRfc5766)) return stun::Error::BadChannelNumber;
  if (data.size() > 0xFFFF) return stun::Error::BadLength;
  const size_t size = stun::kChannelDataHeaderSize + data.size();
  if (out.size() < (pad ? stun::padded4(size) : size)) return stun::Error::NoSpace;
  std::copy(data.begin(), data.end(), out.begin() + stun::kChannelDataHeaderSize);
  const size_t n = stun::write_channel_data_header(out.data(), channel, static_cast<uint16_t>(data.size()), pad);
  return Bytes(out.data(), n);
}

// ---- from the server ------------------------------------------------------------------------------

void TurnClient::learn_challenge(const MessageView& msg, Response& r, const Pending& p) {
  // On entry r.outcome is Error; it becomes Retry only when every RFC 8489 §9.2.5 condition holds.
  if (r.nonce.empty()) return;  // nothing to retry with
  if (p.retries >= config_.max_auth_retries) {
    r.reason = "too many authentication retries";
    return;
  }
  AuthState next = auth_;
  if (!r.realm.empty()) next.realm = r.realm;
  if (next.realm.empty()) return;  // a 438 before any 401: we do not know the realm
  next.nonce = r.nonce;
  const auto features = nonce_features(r.nonce);
  auto algs = msg.find(attr::PasswordAlgorithms);
  if (features && (*features & kFeaturePasswordAlgorithms) && !algs) {
    r.reason = "nonce announces PASSWORD-ALGORITHMS but the response has none (bid-down?)";
    return;
  }
  if (algs) {
    // The first algorithm on the server's list that we support.
    std::optional<bool> sha256;
    auto st = stun::for_each_password_algorithm(algs->value, [&](const stun::PasswordAlgorithmValue& v) {
      if (sha256) return;
      if (v.algorithm == static_cast<uint16_t>(stun::PasswordAlgorithm::Md5)) sha256 = false;
      if (v.algorithm == static_cast<uint16_t>(stun::PasswordAlgorithm::Sha256) && config_.sha256) sha256 = true;
    });
    if (!st || !sha256) {
      r.reason = "no supported PASSWORD-ALGORITHM";
      return;
    }
    next.password_algorithms.assign(algs->value.begin(), algs->value.end());
    next.use_sha256 = *sha256;
  } else if (r.error_code == code::Unauthenticated) {
    next.password_algorithms.clear();  // a legacy (RFC 5389) server: MD5 and MESSAGE-INTEGRITY
    next.use_sha256 = false;
  }
  switch (config_.username_mode) {
    case UsernameMode::Auto: next.use_userhash = features && (*features & kFeatureUsernameAnonymity); break;
    case UsernameMode::Username: next.use_userhash = false; break;
    case UsernameMode::Userhash: next.use_userhash = true; break;
  }
  // §9.2.5: a 401 to a request that already carried credentials for this realm means they are wrong;
  // retrying with the same username and password would only loop.
  if (r.error_code == code::Unauthenticated && p.signed_request && p.realm == next.realm) {
    auth_.nonce = next.nonce;  // still the freshest nonce for later requests
    r.reason = "credentials rejected";
    return;
  }
  auth_ = std::move(next);
  recompute_key();
  r.outcome = Outcome::Retry;
}

Response TurnClient::on_response(Bytes packet) {
  Response r;
  auto parsed = MessageView::parse(packet);
  if (!parsed) {
    r.reason = "not a STUN message";
    return r;
  }
  const MessageView& msg = *parsed;
  r.method = msg.method();
  r.transaction_id = msg.transaction_id_copy();
  const stun::Class cls = msg.cls();
  if (cls != stun::Class::Success && cls != stun::Class::Error) {
    r.reason = "not a response";
    return r;
  }
  auto it = pending_.find(r.transaction_id);
  if (it == pending_.end() || it->second.method != r.method) {
    r.reason = "no such transaction";
    return r;
  }
  const Pending& p = it->second;
  if (msg.fingerprint() && !stun::verify_fingerprint(msg)) {
    r.reason = "FINGERPRINT mismatch";
    return r;
  }

  // Decode everything first: a malformed attribute discards the whole response.
  bool malformed = false;
  std::string_view bad;
  bool has_error_code = false;
  std::optional<TransportAddress> mapped_plain;
  msg.for_each([&](const stun::RawAttribute& a) {
    auto fail = [&] {
      malformed = true;
      bad = attr::name(a.type);
      return false;
    };
    switch (a.type) {
      case attr::ErrorCode: {
        auto v = stun::decode_error_code(a.value);
        if (!v) return fail();
        has_error_code = true;
        r.error_code = v->code;
        r.reason = std::string(v->reason);
        break;
      }
      case attr::XorRelayedAddress: {
        auto v = stun::decode_xor_address(a.value, msg.transaction_id());
        if (!v) return fail();
        r.relayed.push_back(*v);
        break;
      }
      case attr::XorMappedAddress: {
        auto v = stun::decode_xor_address(a.value, msg.transaction_id());
        if (!v) return fail();
        r.mapped = *v;
        break;
      }
      case attr::MappedAddress: {
        auto v = stun::decode_address(a.value);
        if (!v) return fail();
        mapped_plain = *v;
        break;
      }
      case attr::ResponseOrigin:
      case attr::OtherAddress: {
        auto v = stun::decode_address(a.value);
        if (!v) return fail();
        (a.type == attr::ResponseOrigin ? r.response_origin : r.other_address) = *v;
        break;
      }
      case attr::Lifetime: {
        auto v = stun::decode_u32(a.value);
        if (!v) return fail();
        r.lifetime = *v;
        break;
      }
      case attr::ReservationToken: {
        auto v = stun::decode_reservation_token(a.value);
        if (!v) return fail();
        r.reservation_token = *v;
        break;
      }
      case attr::ConnectionId: {
        auto v = stun::decode_u32(a.value);
        if (!v) return fail();
        r.connection_id = *v;
        break;
      }
      case attr::AddressErrorCode: {
        auto v = stun::decode_address_error_code(a.value);
        if (!v) return fail();
        r.address_error = AddressError{v->family, v->code, std::string(v->reason)};
        break;
      }
      case attr::UnknownAttributes: {
        if (!stun::for_each_unknown_attribute(a.value, [&](uint16_t t) { r.unknown_attributes.push_back(t); })) {
          return fail();
        }
        break;
      }
      case attr::Realm: {
        auto v = stun::decode_text(a.value, stun::kMaxRealmBytes);
        if (!v) return fail();
        r.realm = std::string(*v);
        break;
      }
      case attr::Nonce: {
        auto v = stun::decode_text(a.value, stun::kMaxNonceBytes);
        if (!v) return fail();
        r.nonce = std::string(*v);
        break;
      }
      case attr::Software: r.software = to_string_owned(a.value); break;
      default: break;
    }
    return true;
  });
  if (!r.mapped) r.mapped = mapped_plain;
  if (malformed) {
    Response d;
    d.method = r.method;
    d.transaction_id = r.transaction_id;
    r = std::move(d);
    r.reason = "malformed " + std::string(bad.empty() ? "attribute" : bad);
    return r;
  }
  if (cls == stun::Class::Error && !has_error_code) {
    r.outcome = Outcome::Discarded;
    r.reason = "error response without ERROR-CODE";
    return r;
  }

  // 401 and 438 carry no integrity (the server could not or would not check ours): RFC 8489 §9.2.5.
  if (cls == stun::Class::Error && (r.error_code == code::Unauthenticated || r.error_code == code::StaleNonce) &&
      p.authenticate) {
    r.outcome = Outcome::Error;
    learn_challenge(msg, r, p);
    if (r.outcome != Outcome::Retry) pending_.erase(it);  // final; a Retry stays pending for retry()
    return r;
  }

  if (p.signed_request) {
    auto mi256 = msg.message_integrity_sha256();
    auto mi = msg.message_integrity();
    if (mi256 && (p.sha256 || !mi)) {
      r.authenticated = stun::verify_message_integrity_sha256(msg, p.key.view());
    } else if (mi) {
      r.authenticated = stun::verify_message_integrity(msg, p.key.view());
    } else if (cls == stun::Class::Error && config_.accept_unauthenticated_errors) {
      r.authenticated = false;  // an error the server sent before authenticating
    } else {
      r.outcome = Outcome::Discarded;
      r.reason = "response without MESSAGE-INTEGRITY";
      return r;  // as if never received: the request stays pending (retransmissions continue)
    }
    if ((mi256 || mi) && !r.authenticated) {
      r.outcome = Outcome::Discarded;
      r.reason = "MESSAGE-INTEGRITY mismatch";
      return r;
    }
  }

  r.outcome = cls == stun::Class::Success ? Outcome::Success : Outcome::Error;
  if (r.outcome == Outcome::Success) record_success(p, r);
  pending_.erase(it);
  return r;
}

void TurnClient::record_success(const Pending& p, const Response& r) {
  switch (p.method) {
    case Method::Binding:
      if (r.mapped) mapped_ = r.mapped;
      break;
    case Method::Allocate:
      relayed_ = r.relayed;
      if (r.mapped) mapped_ = r.mapped;
      lifetime_ = r.lifetime;
      reservation_token_ = r.reservation_token;
      break;
    case Method::Refresh:
      if (p.refresh_lifetime && *p.refresh_lifetime == 0) {
        relayed_.clear();
        channels_.clear();
        lifetime_.reset();
        reservation_token_.reset();
      } else {
        lifetime_ = r.lifetime;
      }
      break;
    case Method::ChannelBind:
      if (p.channel) channels_[p.channel->first] = p.channel->second;
      break;
    default: break;
  }
}

std::optional<PeerData> TurnClient::on_peer_data(Bytes packet) const {
  switch (classify(packet)) {
    case PacketKind::ChannelData: {
      auto cd = stun::parse_channel_data(packet);
      if (!cd) return std::nullopt;
      return PeerData{cd->channel, channel_peer(cd->channel), cd->data};
    }
    case PacketKind::Stun: {
      auto msg = MessageView::parse(packet);
      if (!msg || !msg->is(Method::Data, stun::Class::Indication)) return std::nullopt;
      if (msg->fingerprint() && !stun::verify_fingerprint(*msg)) return std::nullopt;
      auto peer_attr = msg->find(attr::XorPeerAddress);
      auto data_attr = msg->find(attr::Data);
      if (!peer_attr || !data_attr) return std::nullopt;
      auto peer = stun::decode_xor_address(peer_attr->value, msg->transaction_id());
      if (!peer) return std::nullopt;
      return PeerData{std::nullopt, *peer, data_attr->value};
    }
    case PacketKind::Other: break;
  }
  return std::nullopt;
}

}  // namespace ferry::client
