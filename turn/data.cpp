// The data path (RFC 8656 §10, §12): Send indications and ChannelData from clients to peers, and
// peer datagrams to clients as ChannelData or Data indications framed in place in front of the
// payload. Nothing here allocates: a packet is decoded and framed in the buffer it arrived in.
#include "turn/server_core.h"

#include <cstring>

#include "stun/attributes.h"
#include "stun/channel_data.h"

namespace ferry::turn {

using stun::Bytes;
using stun::Class;
using stun::MessageBuilder;
using stun::MessageView;
using stun::Method;
using stun::TransportAddress;
namespace attr = stun::attr;
namespace code = stun::code;

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
  count_relayed(a, Direction::ClientToPeer, data.size());
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
    // Data indication (§10.3): header and XOR-PEER-ADDRESS written by the codec's builder in front
    // of the payload, which is already where DATA's value goes; the tailroom takes its padding.
    const size_t prefix = stun::kHeaderSize + 4 + (4 + peer.ip_size()) + 4;
    uint8_t* msg = payload - prefix;
    // An indication's transaction id need not be secret, only vary (RFC 8489 §6): a counter will do.
    stun::TransactionId id{};
    ++indication_counter_;
    std::memcpy(id.data(), &indication_counter_, sizeof(indication_counter_));
    MessageBuilder b(stun::MutableBytes(msg, prefix + stun::padded4(len)), Method::Data, Class::Indication, id);
    b.add_xor_address(attr::XorPeerAddress, peer).add_in_place(attr::Data, len);
    auto bytes = b.finish();
    if (!bytes) {  // cannot happen: len was checked above and the buffer has its head- and tailroom
      stats_.drop(DropReason::Malformed);
      return;
    }
    io_.send_to_client(a.tuple, *bytes);
  }
  count_relayed(a, Direction::PeerToClient, len);
}

}  // namespace ferry::turn
