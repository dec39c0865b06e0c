#include "stun/message.h"

#include <algorithm>

namespace ferry::stun {

Result<MessageView> MessageView::parse(Bytes bytes) {
  if (bytes.size() < kHeaderSize) return Error::Truncated;
  if ((bytes[0] & 0xC0) != 0) return Error::NotStun;
  const size_t length = load_u16(bytes.data() + 2);
  if (length % 4 != 0) return Error::BadLength;
  if (kHeaderSize + length > bytes.size()) return Error::Truncated;

  // RFC 8489 §5/§6.3: the cookie must be there; the one exception is an RFC 3489 client's Binding
  // request (§12), which the server answers with MAPPED-ADDRESS. Nothing else predates the cookie.
  if (load_u32(bytes.data() + 4) != kMagicCookie &&
      load_u16(bytes.data()) != make_type(Method::Binding, Class::Request)) {
    return Error::NotStun;
  }

  MessageView view(bytes.first(kHeaderSize + length));
  const size_t end = kHeaderSize + length;
  size_t pos = kHeaderSize;
  bool counting = true;        // false once past FINGERPRINT, which must be last (§14.7): nothing after it counts
  size_t first_integrity = 0;  // offset of the first MESSAGE-INTEGRITY(-SHA256) that counts, 0 = none
  while (pos < end) {
    if (end - pos < 4) return Error::Truncated;
    const uint16_t type = load_u16(bytes.data() + pos);
    const size_t len = load_u16(bytes.data() + pos + 2);
    if (len > end - pos - 4) return Error::Truncated;
    // The last attribute's padding must fit too: the message length counts it (§14).
    const size_t next = pos + 4 + padded4(len);
    if (next > end) return Error::BadLength;
    if (counting) {
      // §14.5: after MESSAGE-INTEGRITY only MESSAGE-INTEGRITY-SHA256 and FINGERPRINT count; §14.6: after
      // MESSAGE-INTEGRITY-SHA256 only FINGERPRINT. Ignored attributes in between (a SOFTWARE, a second
      // MESSAGE-INTEGRITY) do not stop a later MESSAGE-INTEGRITY-SHA256/FINGERPRINT from counting.
      if (type == attr::MessageIntegrity && view.mi_offset_ == 0 && view.mi256_offset_ == 0) {
        view.mi_offset_ = pos;
        view.effective_end_ = next;
        if (first_integrity == 0) first_integrity = pos;
      } else if (type == attr::MessageIntegritySha256 && view.mi256_offset_ == 0) {
        view.mi256_offset_ = pos;
        view.effective_end_ = next;
        if (first_integrity == 0) first_integrity = pos;
      } else if (type == attr::Fingerprint) {
        view.fp_offset_ = pos;
        view.effective_end_ = next;
        counting = false;  // FINGERPRINT is last (§14.7)
      } else if (first_integrity == 0) {
        view.effective_end_ = next;
      }
      // else: an ordinary attribute (or a repeated integrity attribute) after integrity: ignored.
    }
    pos = next;
  }
  view.ordinary_end_ = first_integrity != 0 ? first_integrity : view.effective_end_;
  return view;
}

TransactionId MessageView::transaction_id_copy() const {
  TransactionId id;
  std::copy_n(bytes_.data() + 8, kTransactionIdSize, id.begin());
  return id;
}

RawAttribute MessageView::attribute_at(size_t pos) const {
  RawAttribute a;
  a.type = load_u16(bytes_.data() + pos);
  a.value = bytes_.subspan(pos + 4, load_u16(bytes_.data() + pos + 2));
  a.offset = pos;
  return a;
}

std::optional<RawAttribute> MessageView::find(uint16_t type) const {
  std::optional<RawAttribute> found;
  for_each([&](const RawAttribute& a) {
    if (a.type != type) return true;
    found = a;
    return false;
  });
  return found;
}

size_t MessageView::unknown_required(std::span<uint16_t> out) const {
  size_t n = 0;
  for_each([&](const RawAttribute& a) {
    if (attr::comprehension_required(a.type) && !attr::known(a.type)) {
      // List each unknown type once.
      if (std::find(out.begin(), out.begin() + static_cast<long>(n), a.type) == out.begin() + static_cast<long>(n)) {
        if (n == out.size()) return false;
        out[n++] = a.type;
      }
    }
    return true;
  });
  return n;
}

}  // namespace ferry::stun
