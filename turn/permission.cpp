// CreatePermission (RFC 8656 §9) and ChannelBind (§11), and the peer policy both apply.
#include "turn/server_core.h"

#include <algorithm>
#include <array>

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
  if (failure == 0 &&
      !a.permissions.can_install_all(std::span<const TransportAddress>(peers.data(), n), clock_.now())) {
    failure = code::InsufficientCapacity;
  }
  if (failure != 0) {
    send_error(from, msg, failure, &auth);
    return;
  }
  // The gauge follows the table's size: install() may also reclaim expired entries.
  const size_t before = a.permissions.size();
  for (size_t i = 0; i < n; ++i) {
    if (a.permissions.install(peers[i], clock_.now()) == PermissionInstall::Installed) {
      stats_.permissions_created.add();
      note_peer(a, peers[i]);
    }
  }
  stats_.permissions_active.add(static_cast<int64_t>(a.permissions.size()) - static_cast<int64_t>(before));
  sync_fast_path(a);  // a refreshed permission moves its channels' deadlines
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
  if (a.permissions.install(*peer, now) == PermissionInstall::Installed) {
    stats_.permissions_created.add();
    note_peer(a, *peer);
  }
  stats_.permissions_active.add(static_cast<int64_t>(a.permissions.size()) - static_cast<int64_t>(before));
  sync_fast_path(a);  // a refreshed permission moves its channels' deadlines
  auto b = start_response(msg, Class::Success);
  finish_and_send(from, msg, b, &auth);
}

// A permission is per IP (§9), so a peer is an IP here. Control path (CreatePermission, ChannelBind).
void ServerCore::note_peer(Allocation& a, const TransportAddress& peer) {
  TransportAddress ip = peer;
  ip.port = 0;
  auto& list = a.usage.peer_list;
  if (std::find(list.begin(), list.end(), ip) != list.end()) return;
  if (list.size() < AllocationUsage::kPeerList) {
    list.push_back(ip);
  } else {
    ++a.usage.more_peers;  // may count an IP twice: the bound matters more than exactness here
  }
}

}  // namespace ferry::turn
