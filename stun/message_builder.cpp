#include "stun/message_builder.h"

#include <algorithm>
#include <cstring>

#include "stun/attributes.h"
#include "stun/integrity.h"

namespace ferry::stun {

MessageBuilder::MessageBuilder(MutableBytes out, uint16_t type, std::span<const uint8_t, kTransactionIdSize> txid)
    : out_(out) {
  if (out_.size() < kHeaderSize) {
    overflow_ = true;
    return;
  }
  store_u16(out_.data(), type);
  store_u16(out_.data() + 2, 0);
  store_u32(out_.data() + 4, kMagicCookie);
  std::copy(txid.begin(), txid.end(), out_.data() + 8);
}

MessageBuilder::MessageBuilder(MutableBytes out, uint16_t type, std::span<const uint8_t, 16> cookie_and_id)
    : out_(out) {
  if (out_.size() < kHeaderSize) {
    overflow_ = true;
    return;
  }
  store_u16(out_.data(), type);
  store_u16(out_.data() + 2, 0);
  std::copy(cookie_and_id.begin(), cookie_and_id.end(), out_.data() + 4);
}

uint8_t* MessageBuilder::reserve(uint16_t type, size_t len) {
  if (overflow_) return nullptr;
  const size_t total = 4 + padded4(len);
  if (len > 0xFFFF || out_.size() - pos_ < total || pos_ + total - kHeaderSize > 0xFFFF) {
    overflow_ = true;
    return nullptr;
  }
  uint8_t* p = out_.data() + pos_;
  store_u16(p, type);
  store_u16(p + 2, static_cast<uint16_t>(len));
  std::memset(p + 4 + len, 0, padded4(len) - len);
  pos_ += total;
  set_length(pos_);
  return p + 4;
}

MessageBuilder& MessageBuilder::add(uint16_t type, Bytes value) {
  if (uint8_t* p = reserve(type, value.size())) std::copy(value.begin(), value.end(), p);
  return *this;
}

MessageBuilder& MessageBuilder::add_in_place(uint16_t type, size_t len) {
  reserve(type, len);
  return *this;
}

MessageBuilder& MessageBuilder::add_text(uint16_t type, std::string_view text) {
  return add(type, Bytes(reinterpret_cast<const uint8_t*>(text.data()), text.size()));
}

MessageBuilder& MessageBuilder::add_u32(uint16_t type, uint32_t v) {
  if (uint8_t* p = reserve(type, 4)) store_u32(p, v);
  return *this;
}

MessageBuilder& MessageBuilder::add_address(uint16_t type, const TransportAddress& a) {
  if (uint8_t* p = reserve(type, 4 + a.ip_size())) encode_address(a, p);
  return *this;
}

MessageBuilder& MessageBuilder::add_xor_address(uint16_t type, const TransportAddress& a) {
  if (uint8_t* p = reserve(type, 4 + a.ip_size())) encode_xor_address(a, transaction_id(), p);
  return *this;
}

MessageBuilder& MessageBuilder::add_error_code(uint16_t c, std::string_view reason) {
  if (reason.empty()) reason = code::reason(c);
  reason = reason.substr(0, kMaxReasonBytes);
  if (uint8_t* p = reserve(attr::ErrorCode, 4 + reason.size())) {
    p[0] = 0;
    p[1] = 0;
    p[2] = static_cast<uint8_t>(c / 100);
    p[3] = static_cast<uint8_t>(c % 100);
    std::memcpy(p + 4, reason.data(), reason.size());
  }
  return *this;
}

MessageBuilder& MessageBuilder::add_unknown_attributes(std::span<const uint16_t> types) {
  if (uint8_t* p = reserve(attr::UnknownAttributes, types.size() * 2)) {
    for (size_t i = 0; i < types.size(); ++i) store_u16(p + 2 * i, types[i]);
  }
  return *this;
}

MessageBuilder& MessageBuilder::add_channel_number(uint16_t channel) {
  return add_u32(attr::ChannelNumber, uint32_t{channel} << 16);
}

MessageBuilder& MessageBuilder::add_requested_transport(uint8_t protocol) {
  return add_u32(attr::RequestedTransport, uint32_t{protocol} << 24);
}

MessageBuilder& MessageBuilder::add_address_family(uint16_t type, Family f) {
  return add_u32(type, uint32_t{static_cast<uint8_t>(f)} << 24);
}

MessageBuilder& MessageBuilder::add_even_port(bool reserve_next) {
  const uint8_t v = reserve_next ? 0x80 : 0x00;
  return add(attr::EvenPort, Bytes(&v, 1));
}

MessageBuilder& MessageBuilder::add_reservation_token(uint64_t token) {
  if (uint8_t* p = reserve(attr::ReservationToken, 8)) {
    store_u32(p, static_cast<uint32_t>(token >> 32));
    store_u32(p + 4, static_cast<uint32_t>(token));
  }
  return *this;
}

MessageBuilder& MessageBuilder::add_address_error_code(Family f, uint16_t c, std::string_view reason) {
  if (reason.empty()) reason = code::reason(c);
  reason = reason.substr(0, kMaxReasonBytes);
  if (uint8_t* p = reserve(attr::AddressErrorCode, 4 + reason.size())) {
    p[0] = static_cast<uint8_t>(f);
    p[1] = 0;
    p[2] = static_cast<uint8_t>(c / 100);
    p[3] = static_cast<uint8_t>(c % 100);
    std::memcpy(p + 4, reason.data(), reason.size());
  }
  return *this;
}

MessageBuilder& MessageBuilder::add_change_request(bool change_ip, bool change_port) {
  return add_u32(attr::ChangeRequest, (change_ip ? 0x4u : 0u) | (change_port ? 0x2u : 0u));
}

MessageBuilder& MessageBuilder::add_icmp(uint8_t type, uint8_t c, uint32_t data) {
  if (uint8_t* p = reserve(attr::Icmp, 8)) {
    p[0] = 0;
    p[1] = 0;
    p[2] = type;
    p[3] = c;
    store_u32(p + 4, data);
  }
  return *this;
}

MessageBuilder& MessageBuilder::add_password_algorithm(PasswordAlgorithm alg) {
  return add_u32(attr::PasswordAlgorithm, uint32_t{static_cast<uint16_t>(alg)} << 16);
}

MessageBuilder& MessageBuilder::add_password_algorithms(std::span<const PasswordAlgorithm> algs) {
  if (uint8_t* p = reserve(attr::PasswordAlgorithms, algs.size() * 4)) {
    for (size_t i = 0; i < algs.size(); ++i) {
      store_u16(p + 4 * i, static_cast<uint16_t>(algs[i]));
      store_u16(p + 4 * i + 2, 0);
    }
  }
  return *this;
}

MessageBuilder& MessageBuilder::add_message_integrity(Bytes key) {
  const size_t at = pos_;
  if (uint8_t* p = reserve(attr::MessageIntegrity, 20)) {
    uint8_t mac[32];
    hmac_message_prefix(Hmac::Sha1, key, Bytes(out_.data(), pos_), at, static_cast<uint16_t>(pos_ - kHeaderSize), mac);
    std::memcpy(p, mac, 20);
  }
  return *this;
}

MessageBuilder& MessageBuilder::add_message_integrity_sha256(Bytes key) {
  const size_t at = pos_;
  if (uint8_t* p = reserve(attr::MessageIntegritySha256, 32)) {
    hmac_message_prefix(Hmac::Sha256, key, Bytes(out_.data(), pos_), at, static_cast<uint16_t>(pos_ - kHeaderSize), p);
  }
  return *this;
}

MessageBuilder& MessageBuilder::add_fingerprint() {
  const size_t at = pos_;
  if (uint8_t* p = reserve(attr::Fingerprint, 4)) {
    store_u32(p, fingerprint_of_prefix(Bytes(out_.data(), pos_), at, static_cast<uint16_t>(pos_ - kHeaderSize)));
  }
  return *this;
}

Result<Bytes> MessageBuilder::finish() const {
  if (overflow_) return Error::NoSpace;
  return Bytes(out_.data(), pos_);
}

}  // namespace ferry::stun
