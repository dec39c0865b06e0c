// A parsed, non-owning view of one STUN message (RFC 8489 §5, §14). Parsing validates the header and
// the attribute framing once; attribute values are then read in place, never copied.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>

#include "stun/bytes.h"
#include "stun/constants.h"
#include "stun/result.h"

namespace ferry::stun {

struct RawAttribute {
  uint16_t type = 0;
  Bytes value;        // exactly `length` bytes, padding excluded
  size_t offset = 0;  // where the attribute's TLV header starts within the message
};

using TransactionId = std::array<uint8_t, kTransactionIdSize>;

// Cheap test for demultiplexing a datagram or stream: the first two bits are 0 for STUN (RFC 8489 §5)
// and 0b01 for ChannelData (RFC 8656 §12). Needs at least one byte.
inline bool looks_like_stun(Bytes b) { return b.size() >= kHeaderSize && (b[0] & 0xC0) == 0; }
inline bool looks_like_channel_data(Bytes b) { return b.size() >= 4 && (b[0] & 0xC0) == 0x40; }

class MessageView {
 public:
  // Validates: at least 20 bytes, top two bits zero, length a multiple of 4 and within the buffer,
  // every attribute's TLV fits. Bytes after the declared length are not part of the message.
  // A message without the magic cookie is accepted only as an RFC 3489 Binding request (RFC 8489 §12)
  // and reported by has_cookie(); any other type without the cookie is Error::NotStun.
  static Result<MessageView> parse(Bytes bytes);

  uint16_t type() const { return load_u16(bytes_.data()); }
  Method method() const { return method_of(type()); }
  Class cls() const { return class_of(type()); }
  bool is(Method m, Class c) const { return type() == make_type(m, c); }
  bool has_cookie() const { return load_u32(bytes_.data() + 4) == kMagicCookie; }
  std::span<const uint8_t, kTransactionIdSize> transaction_id() const {
    return std::span<const uint8_t, kTransactionIdSize>(bytes_.data() + 8, kTransactionIdSize);
  }
  TransactionId transaction_id_copy() const;
  // The 16 bytes after the type/length: cookie + transaction id (the whole RFC 3489 transaction id).
  std::span<const uint8_t, 16> cookie_and_id() const { return std::span<const uint8_t, 16>(bytes_.data() + 4, 16); }
  Bytes bytes() const { return bytes_; }
  size_t size() const { return bytes_.size(); }

  // First attribute of `type` among those that count: RFC 8489 §14.5/§14.6 say attributes after
  // MESSAGE-INTEGRITY other than MESSAGE-INTEGRITY-SHA256 and FINGERPRINT (and after
  // MESSAGE-INTEGRITY-SHA256 other than FINGERPRINT) are ignored.
  std::optional<RawAttribute> find(uint16_t type) const;
  bool has(uint16_t type) const { return find(type).has_value(); }

  std::optional<RawAttribute> message_integrity() const { return at(mi_offset_); }
  std::optional<RawAttribute> message_integrity_sha256() const { return at(mi256_offset_); }
  std::optional<RawAttribute> fingerprint() const { return at(fp_offset_); }

  // Visits the attributes that count, in wire order. f(const RawAttribute&) returns false to stop.
  // Ignored attributes between an integrity attribute and a later MESSAGE-INTEGRITY-SHA256 or
  // FINGERPRINT (which still count, RFC 8489 §14.5/§14.6) are skipped.
  template <class F>
  void for_each(F&& f) const {
    size_t pos = kHeaderSize;
    while (pos < effective_end_) {
      RawAttribute a = attribute_at(pos);
      const bool counts = pos < ordinary_end_ || pos == mi_offset_ || pos == mi256_offset_ || pos == fp_offset_;
      if (counts && !f(a)) return;
      pos += 4 + padded4(a.value.size());
    }
  }

  // Comprehension-required attribute types this codec does not know (RFC 8489 §7.3.1: a request
  // with any gets 420 listing them). Writes up to out.size() types and returns how many it wrote.
  size_t unknown_required(std::span<uint16_t> out) const;

 private:
  explicit MessageView(Bytes b) : bytes_(b) {}
  RawAttribute attribute_at(size_t pos) const;
  std::optional<RawAttribute> at(size_t offset) const {
    if (offset == 0) return std::nullopt;
    return attribute_at(offset);
  }

  Bytes bytes_;
  size_t effective_end_ = kHeaderSize;  // end of the last attribute that counts
  size_t ordinary_end_ = kHeaderSize;   // attributes starting before this count; after it only MI/MI-256/FP
  size_t mi_offset_ = 0;                // 0 = absent
  size_t mi256_offset_ = 0;
  size_t fp_offset_ = 0;
};

}  // namespace ferry::stun
