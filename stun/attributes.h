// Typed decoding of attribute values (RFC 8489 §14, RFC 8656 §18, RFC 5780 §7, RFC 6062 §6.2).
// Every decoder takes the raw value span and checks its size before reading.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

#include "stun/bytes.h"
#include "stun/message.h"
#include "stun/result.h"
#include "stun/transport_address.h"

namespace ferry::stun {

// Upper bounds on text attributes (RFC 8489 §14.3, §14.8, §14.9, §14.10): byte limits of the UTF-8.
inline constexpr size_t kMaxUsernameBytes = 512;
inline constexpr size_t kMaxRealmBytes = 763;
inline constexpr size_t kMaxNonceBytes = 763;
inline constexpr size_t kMaxSoftwareBytes = 763;
inline constexpr size_t kMaxReasonBytes = 763;

// MAPPED-ADDRESS, ALTERNATE-SERVER, RESPONSE-ORIGIN, OTHER-ADDRESS (§14.1).
Result<TransportAddress> decode_address(Bytes value);
// XOR-MAPPED-ADDRESS, XOR-PEER-ADDRESS, XOR-RELAYED-ADDRESS (§14.2): xored with cookie and id.
Result<TransportAddress> decode_xor_address(Bytes value, std::span<const uint8_t, kTransactionIdSize> txid);
// Encoded sizes: 8 for IPv4, 20 for IPv6.
size_t encode_address(const TransportAddress& a, uint8_t* out);
size_t encode_xor_address(const TransportAddress& a, std::span<const uint8_t, kTransactionIdSize> txid, uint8_t* out);

struct ErrorCodeValue {
  uint16_t code = 0;  // 300..699
  std::string_view reason;
};
Result<ErrorCodeValue> decode_error_code(Bytes value);

// Text attributes: USERNAME, REALM, NONCE, SOFTWARE, ALTERNATE-DOMAIN. Checks the byte limit only.
Result<std::string_view> decode_text(Bytes value, size_t max_bytes);

Result<uint32_t> decode_u32(Bytes value);  // LIFETIME, CONNECTION-ID, ICMP error data...

// CHANNEL-NUMBER (RFC 8656 §18.1): number then 16 reserved bits. Range is checked by the caller
// because the answer for an out-of-range number is a 400 with a reason, not a parse failure.
Result<uint16_t> decode_channel_number(Bytes value);

// REQUESTED-TRANSPORT (§18.11): protocol byte, 24 reserved bits.
Result<uint8_t> decode_requested_transport(Bytes value);

// REQUESTED-ADDRESS-FAMILY and ADDITIONAL-ADDRESS-FAMILY (§18.8, §18.3): family byte, 24 reserved bits.
// A family byte other than 1/2 decodes to Error::BadFamily (440 to the client).
Result<Family> decode_address_family(Bytes value);

// EVEN-PORT (§18.9): one byte whose top bit R asks to reserve the next port.
Result<bool> decode_even_port(Bytes value);

// RESERVATION-TOKEN (§18.10): 8 opaque bytes.
Result<uint64_t> decode_reservation_token(Bytes value);

// ADDRESS-ERROR-CODE (§18.4): family, class/number, reason.
struct AddressErrorCode {
  Family family = Family::V4;
  uint16_t code = 0;
  std::string_view reason;
};
Result<AddressErrorCode> decode_address_error_code(Bytes value);

// ICMP (§18.13): reserved(16) type(8) code(8) error-data(32).
struct IcmpValue {
  uint8_t type = 0;
  uint8_t code = 0;
  uint32_t data = 0;
};
Result<IcmpValue> decode_icmp(Bytes value);

// CHANGE-REQUEST (RFC 5780 §7.2): A (change IP) and B (change port) flags.
struct ChangeRequest {
  bool change_ip = false;
  bool change_port = false;
};
Result<ChangeRequest> decode_change_request(Bytes value);

// PASSWORD-ALGORITHM (RFC 8489 §14.12) and one entry of PASSWORD-ALGORITHMS (§14.11).
struct PasswordAlgorithmValue {
  uint16_t algorithm = 0;
  Bytes parameters;
};
Result<PasswordAlgorithmValue> decode_password_algorithm(Bytes value);
// Visits each entry of PASSWORD-ALGORITHMS; fails if the list is malformed.
template <class F>
Status for_each_password_algorithm(Bytes value, F&& f) {
  size_t pos = 0;
  while (pos < value.size()) {
    if (value.size() - pos < 4) return Error::BadAttribute;
    const uint16_t alg = load_u16(value.data() + pos);
    const size_t plen = load_u16(value.data() + pos + 2);
    if (value.size() - pos - 4 < plen) return Error::BadAttribute;
    f(PasswordAlgorithmValue{alg, value.subspan(pos + 4, plen)});
    pos += 4 + padded4(plen);
  }
  return Ok{};
}

// UNKNOWN-ATTRIBUTES (§14.13): a list of 16-bit types.
template <class F>
Status for_each_unknown_attribute(Bytes value, F&& f) {
  if (value.size() % 2 != 0) return Error::BadAttribute;
  for (size_t i = 0; i < value.size(); i += 2) f(load_u16(value.data() + i));
  return Ok{};
}

// MOBILITY-TICKET (RFC 8016 §3.1): opaque to the client, empty in the Allocate that asks for one.
// Only the size is checked here (at most kMaxMobilityTicketBytes); what is inside is the server's.
inline constexpr size_t kMaxMobilityTicketBytes = 64;
Result<Bytes> decode_mobility_ticket(Bytes value);

// USERHASH (§14.4): 32 bytes.
Result<std::span<const uint8_t, 32>> decode_userhash(Bytes value);

// ACCESS-TOKEN (RFC 7635 §6.2): nonce_length (16 bits), the nonce, then the AEAD output (the
// encrypted block followed by the authentication tag). The codec only splits the parts; opening
// the sealed block is auth/access_token's job. Both parts must be non-empty.
struct AccessTokenValue {
  Bytes nonce;
  Bytes sealed;  // ciphertext || tag
};
Result<AccessTokenValue> decode_access_token(Bytes value);
// Writes nonce_length | nonce | sealed into `out` (which must hold 2 + both sizes); returns the
// length written, 0 when the nonce is longer than 65535 bytes.
size_t encode_access_token(Bytes nonce, Bytes sealed, uint8_t* out);

}  // namespace ferry::stun
