#include "stun/attributes.h"

#include <algorithm>

namespace ferry::stun {

namespace {

Result<TransportAddress> decode_address_impl(Bytes value, const uint8_t* mask /* 16 bytes or null */) {
  if (value.size() < 4) return Error::BadAttribute;
  TransportAddress a;
  const uint8_t family = value[1];
  if (family == 0x01) {
    if (value.size() != 8) return Error::BadAttribute;
    a.family = Family::V4;
  } else if (family == 0x02) {
    if (value.size() != 20) return Error::BadAttribute;
    a.family = Family::V6;
  } else {
    return Error::BadFamily;
  }
  a.port = load_u16(value.data() + 2);
  std::copy_n(value.data() + 4, a.ip_size(), a.ip.begin());
  if (mask != nullptr) {
    a.port ^= static_cast<uint16_t>(kMagicCookie >> 16);
    for (size_t i = 0; i < a.ip_size(); ++i) a.ip[i] ^= mask[i];
  }
  return a;
}

void xor_mask(std::span<const uint8_t, kTransactionIdSize> txid, uint8_t* mask) {
  store_u32(mask, kMagicCookie);
  std::copy(txid.begin(), txid.end(), mask + 4);
}

}  // namespace

Result<TransportAddress> decode_address(Bytes value) { return decode_address_impl(value, nullptr); }

Result<TransportAddress> decode_xor_address(Bytes value, std::span<const uint8_t, kTransactionIdSize> txid) {
  uint8_t mask[16];
  xor_mask(txid, mask);
  return decode_address_impl(value, mask);
}

size_t encode_address(const TransportAddress& a, uint8_t* out) {
  out[0] = 0;
  out[1] = static_cast<uint8_t>(a.family);
  store_u16(out + 2, a.port);
  std::copy_n(a.ip.begin(), a.ip_size(), out + 4);
  return 4 + a.ip_size();
}

size_t encode_xor_address(const TransportAddress& a, std::span<const uint8_t, kTransactionIdSize> txid, uint8_t* out) {
  uint8_t mask[16];
  xor_mask(txid, mask);
  out[0] = 0;
  out[1] = static_cast<uint8_t>(a.family);
  store_u16(out + 2, a.port ^ static_cast<uint16_t>(kMagicCookie >> 16));
  for (size_t i = 0; i < a.ip_size(); ++i) out[4 + i] = a.ip[i] ^ mask[i];
  return 4 + a.ip_size();
}

Result<ErrorCodeValue> decode_error_code(Bytes value) {
  if (value.size() < 4 || value.size() - 4 > kMaxReasonBytes) return Error::BadAttribute;
  const uint8_t cls = value[2] & 0x07;
  const uint8_t number = value[3];
  if (cls < 3 || cls > 6 || number > 99) return Error::BadAttribute;
  ErrorCodeValue e;
  e.code = static_cast<uint16_t>(cls * 100 + number);
  e.reason = std::string_view(reinterpret_cast<const char*>(value.data() + 4), value.size() - 4);
  return e;
}

Result<std::string_view> decode_text(Bytes value, size_t max_bytes) {
  if (value.size() > max_bytes) return Error::BadAttribute;
  return std::string_view(reinterpret_cast<const char*>(value.data()), value.size());
}

Result<uint32_t> decode_u32(Bytes value) {
  if (value.size() != 4) return Error::BadAttribute;
  return load_u32(value.data());
}

Result<uint16_t> decode_channel_number(Bytes value) {
  if (value.size() != 4) return Error::BadAttribute;
  return load_u16(value.data());
}

Result<uint8_t> decode_requested_transport(Bytes value) {
  if (value.size() != 4) return Error::BadAttribute;
  return value[0];
}

Result<Family> decode_address_family(Bytes value) {
  if (value.size() != 4) return Error::BadAttribute;
  if (value[0] == 0x01) return Family::V4;
  if (value[0] == 0x02) return Family::V6;
  return Error::BadFamily;
}

Result<bool> decode_even_port(Bytes value) {
  if (value.size() != 1) return Error::BadAttribute;
  return (value[0] & 0x80) != 0;
}

Result<uint64_t> decode_reservation_token(Bytes value) {
  if (value.size() != 8) return Error::BadAttribute;
  return (uint64_t{load_u32(value.data())} << 32) | load_u32(value.data() + 4);
}

Result<AddressErrorCode> decode_address_error_code(Bytes value) {
  if (value.size() < 4) return Error::BadAttribute;
  AddressErrorCode e;
  if (value[0] == 0x01) e.family = Family::V4;
  else if (value[0] == 0x02) e.family = Family::V6;
  else return Error::BadFamily;
  const uint8_t cls = value[2] & 0x07;
  if (cls < 3 || cls > 6 || value[3] > 99) return Error::BadAttribute;
  e.code = static_cast<uint16_t>(cls * 100 + value[3]);
  e.reason = std::string_view(reinterpret_cast<const char*>(value.data() + 4), value.size() - 4);
  return e;
}

Result<IcmpValue> decode_icmp(Bytes value) {
  if (value.size() != 8) return Error::BadAttribute;
  return IcmpValue{value[2], value[3], load_u32(value.data() + 4)};
}

Result<ChangeRequest> decode_change_request(Bytes value) {
  if (value.size() != 4) return Error::BadAttribute;
  const uint32_t flags = load_u32(value.data());
  return ChangeRequest{(flags & 0x4) != 0, (flags & 0x2) != 0};
}

Result<PasswordAlgorithmValue> decode_password_algorithm(Bytes value) {
  if (value.size() < 4) return Error::BadAttribute;
  const size_t plen = load_u16(value.data() + 2);
  if (value.size() - 4 < plen) return Error::BadAttribute;
  return PasswordAlgorithmValue{load_u16(value.data()), value.subspan(4, plen)};
}

Result<std::span<const uint8_t, 32>> decode_userhash(Bytes value) {
  if (value.size() != 32) return Error::BadAttribute;
  return std::span<const uint8_t, 32>(value.data(), 32);
}

Result<Bytes> decode_mobility_ticket(Bytes value) {
  if (value.size() > kMaxMobilityTicketBytes) return Error::BadAttribute;
  return value;
}

Result<AccessTokenValue> decode_access_token(Bytes value) {
  if (value.size() < 2) return Error::BadAttribute;
  const size_t nlen = load_u16(value.data());
  if (nlen == 0 || value.size() <= 2 + nlen) return Error::BadAttribute;
  return AccessTokenValue{value.subspan(2, nlen), value.subspan(2 + nlen)};
}

size_t encode_access_token(Bytes nonce, Bytes sealed, uint8_t* out) {
  if (nonce.size() > 0xFFFF) return 0;
  out[0] = static_cast<uint8_t>(nonce.size() >> 8);
  out[1] = static_cast<uint8_t>(nonce.size());
  std::copy(nonce.begin(), nonce.end(), out + 2);
  std::copy(sealed.begin(), sealed.end(), out + 2 + nonce.size());
  return 2 + nonce.size() + sealed.size();
}

}  // namespace ferry::stun
