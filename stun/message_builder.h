// Writes a STUN message into a caller-supplied buffer (no heap). Attributes are appended in order;
// integrity and fingerprint are computed over what has been written so far (RFC 8489 §14.5-§14.7).
// Overflow is sticky: once a write does not fit, every later call is a no-op and finish() fails.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

#include "stun/bytes.h"
#include "stun/constants.h"
#include "stun/message.h"
#include "stun/result.h"
#include "stun/transport_address.h"

namespace ferry::stun {

class MessageBuilder {
 public:
  // Header with the magic cookie and the given transaction id.
  MessageBuilder(MutableBytes out, uint16_t type, std::span<const uint8_t, kTransactionIdSize> txid);
  // Header copying the request's 16 cookie+id bytes, so RFC 3489 clients get their whole id back.
  MessageBuilder(MutableBytes out, uint16_t type, std::span<const uint8_t, 16> cookie_and_id);
  MessageBuilder(MutableBytes out, Method m, Class c, std::span<const uint8_t, kTransactionIdSize> txid)
      : MessageBuilder(out, make_type(m, c), txid) {}

  MessageBuilder& add(uint16_t type, Bytes value);
  // An attribute whose `len` value bytes the caller has already put where they go, at size() + 4
  // (a relayed payload framed in place): only its header and the zero padding are written, so the
  // buffer must hold the padding too.
  MessageBuilder& add_in_place(uint16_t type, size_t len);
  MessageBuilder& add_text(uint16_t type, std::string_view text);
  MessageBuilder& add_u32(uint16_t type, uint32_t v);
  MessageBuilder& add_address(uint16_t type, const TransportAddress& a);
  MessageBuilder& add_xor_address(uint16_t type, const TransportAddress& a);
  MessageBuilder& add_error_code(uint16_t code, std::string_view reason = {});  // default: RFC phrase
  MessageBuilder& add_unknown_attributes(std::span<const uint16_t> types);
  MessageBuilder& add_channel_number(uint16_t channel);
  MessageBuilder& add_requested_transport(uint8_t protocol);
  MessageBuilder& add_address_family(uint16_t type, Family f);  // REQUESTED-/ADDITIONAL-ADDRESS-FAMILY
  MessageBuilder& add_even_port(bool reserve);
  MessageBuilder& add_reservation_token(uint64_t token);
  MessageBuilder& add_address_error_code(Family f, uint16_t code, std::string_view reason = {});
  MessageBuilder& add_change_request(bool change_ip, bool change_port);
  MessageBuilder& add_icmp(uint8_t type, uint8_t code, uint32_t data);
  MessageBuilder& add_password_algorithm(PasswordAlgorithm alg);
  // PASSWORD-ALGORITHMS listing MD5 and SHA-256 (the two RFC 8489 defines), in preference order.
  MessageBuilder& add_password_algorithms(std::span<const PasswordAlgorithm> algs);
  MessageBuilder& add_message_integrity(Bytes key);
  MessageBuilder& add_message_integrity_sha256(Bytes key);
  MessageBuilder& add_fingerprint();

  bool ok() const { return !overflow_; }
  size_t size() const { return pos_; }
  std::span<const uint8_t, kTransactionIdSize> transaction_id() const {
    return std::span<const uint8_t, kTransactionIdSize>(out_.data() + 8, kTransactionIdSize);
  }
  // The finished message, or Error::NoSpace.
  Result<Bytes> finish() const;

 private:
  // Reserves a TLV of `len` value bytes (zeroing the padding), returns the value pointer or null.
  uint8_t* reserve(uint16_t type, size_t len);
  void set_length(size_t total) { store_u16(out_.data() + 2, static_cast<uint16_t>(total - kHeaderSize)); }

  MutableBytes out_;
  size_t pos_ = kHeaderSize;
  bool overflow_ = false;
};

}  // namespace ferry::stun
