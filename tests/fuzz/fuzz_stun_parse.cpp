// libFuzzer target: the whole stun/ decode path on arbitrary bytes, plus a rebuild invariant.
//
//   * MessageView::parse, then every attribute that counts decoded with its typed decoder,
//     verify_fingerprint, verify_message_integrity(-sha256) with a fixed key, unknown_required;
//   * parse_channel_data and stream_frame_size on the same bytes;
//   * a parsed message is rebuilt with MessageBuilder (typed adders where the value decodes, raw
//     otherwise, fresh MESSAGE-INTEGRITY / -SHA256 / FINGERPRINT with the fixed key). The rebuilt
//     message must parse, show the same attribute types, and verify.
// Invariant violations abort (libFuzzer reports them as crashes).
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "tests/fuzz/fuzz_check.h"
#include "stun/attributes.h"
#include "stun/channel_data.h"
#include "stun/constants.h"
#include "stun/integrity.h"
#include "stun/message.h"
#include "stun/message_builder.h"

using namespace ferry::stun;

namespace {

constexpr uint8_t kKeyBytes[16] = {0xe8, 0xca, 0x7a, 0xd5, 0x9d, 0x5e, 0xb0, 0x51,
                                   0x8e, 0x31, 0x29, 0x11, 0xd2, 0xda, 0xb2, 0xa9};
const Bytes kKey(kKeyBytes, sizeof(kKeyBytes));

bool is_xor(uint16_t t) {
  return t == attr::XorMappedAddress || t == attr::XorPeerAddress || t == attr::XorRelayedAddress;
}
bool is_plain(uint16_t t) {
  return t == attr::MappedAddress || t == attr::AlternateServer || t == attr::ResponseOrigin || t == attr::OtherAddress;
}
size_t text_limit(uint16_t t) {
  switch (t) {
    case attr::Username: return kMaxUsernameBytes;
    case attr::Realm: return kMaxRealmBytes;
    case attr::Nonce: return kMaxNonceBytes;
    case attr::Software: return kMaxSoftwareBytes;
    case attr::AlternateDomain: return kMaxRealmBytes;
    default: return 0;
  }
}

// Decodes `a` with its typed decoder and appends it to `mb` (typed adder if it decoded, raw otherwise).
void decode_and_add(const MessageView& m, const RawAttribute& a, MessageBuilder& mb) {
  const Bytes v = a.value;
  const uint16_t t = a.type;
  if (is_xor(t)) {
    if (auto r = decode_xor_address(v, m.transaction_id()); r.ok()) {
      FUZZ_CHECK(v.size() == 4 + r->ip_size());
      return void(mb.add_xor_address(t, *r));
    }
  } else if (is_plain(t)) {
    if (auto r = decode_address(v); r.ok()) return void(mb.add_address(t, *r));
  } else if (text_limit(t) != 0) {
    if (auto r = decode_text(v, text_limit(t)); r.ok()) {
      FUZZ_CHECK(r->size() == v.size());
      return void(mb.add_text(t, *r));
    }
  } else {
    switch (t) {
      case attr::ErrorCode:
        if (auto r = decode_error_code(v); r.ok()) {
          FUZZ_CHECK(r->code >= 300 && r->code <= 699);
          if (!r->reason.empty()) return void(mb.add_error_code(r->code, r->reason));
        }
        break;
      case attr::UnknownAttributes: {
        std::vector<uint16_t> types;
        if (for_each_unknown_attribute(v, [&](uint16_t x) { types.push_back(x); }).ok()) {
          FUZZ_CHECK(types.size() * 2 == v.size());
          return void(mb.add_unknown_attributes(types));
        }
        break;
      }
      case attr::ChannelNumber:
        if (auto r = decode_channel_number(v); r.ok()) {
          (void)valid_channel_number(*r);
          if (v[2] == 0 && v[3] == 0) return void(mb.add_channel_number(*r));
        }
        break;
      case attr::Lifetime:
      case attr::ConnectionId:
        if (auto r = decode_u32(v); r.ok()) return void(mb.add_u32(t, *r));
        break;
      case attr::RequestedTransport:
        if (auto r = decode_requested_transport(v); r.ok()) return void(mb.add_requested_transport(*r));
        break;
      case attr::RequestedAddressFamily:
      case attr::AdditionalAddressFamily:
        if (auto r = decode_address_family(v); r.ok()) return void(mb.add_address_family(t, *r));
        break;
      case attr::EvenPort:
        if (auto r = decode_even_port(v); r.ok()) return void(mb.add_even_port(*r));
        break;
      case attr::ReservationToken:
        if (auto r = decode_reservation_token(v); r.ok()) return void(mb.add_reservation_token(*r));
        break;
      case attr::AddressErrorCode:
        if (auto r = decode_address_error_code(v); r.ok()) {
          FUZZ_CHECK(r->code >= 300 && r->code <= 699);
          if (!r->reason.empty()) return void(mb.add_address_error_code(r->family, r->code, r->reason));
        }
        break;
      case attr::ChangeRequest:
        if (auto r = decode_change_request(v); r.ok()) return void(mb.add_change_request(r->change_ip, r->change_port));
        break;
      case attr::Icmp:
        if (auto r = decode_icmp(v); r.ok()) return void(mb.add_icmp(r->type, r->code, r->data));
        break;
      case attr::PasswordAlgorithm:
        if (auto r = decode_password_algorithm(v); r.ok()) FUZZ_CHECK(r->parameters.size() + 4 <= v.size());
        break;
      case attr::PasswordAlgorithms:
        (void)for_each_password_algorithm(v, [&](const PasswordAlgorithmValue& p) {
          FUZZ_CHECK(p.parameters.data() >= v.data() &&
                     p.parameters.data() + p.parameters.size() <= v.data() + v.size());
        });
        break;
      case attr::Userhash:
        if (auto r = decode_userhash(v); r.ok()) FUZZ_CHECK(r->data() == v.data());
        break;
      case attr::Fingerprint: (void)decode_u32(v); break;
      default: break;
    }
  }
  mb.add(t, v);
}

void fuzz_stun(Bytes data) {
  auto r = MessageView::parse(data);
  if (!r.ok()) {
    (void)to_string(r.error());
    return;
  }
  const MessageView& m = *r;
  FUZZ_CHECK(looks_like_stun(data));
  FUZZ_CHECK(m.size() <= data.size() && m.size() == kHeaderSize + load_u16(data.data() + 2));
  FUZZ_CHECK(m.has_cookie() || m.is(Method::Binding, Class::Request));
  (void)m.method();
  (void)m.cls();
  (void)m.transaction_id_copy();

  uint16_t unknown[8];
  const size_t n_unknown = m.unknown_required(unknown);
  FUZZ_CHECK(n_unknown <= 8);
  for (size_t i = 0; i < n_unknown; ++i)
    FUZZ_CHECK(attr::comprehension_required(unknown[i]) && !attr::known(unknown[i]));
  const bool fp_ok = verify_fingerprint(m);
  const bool mi_ok = verify_message_integrity(m, kKey);
  const bool mi256_ok = verify_message_integrity_sha256(m, kKey);
  FUZZ_CHECK(!fp_ok || m.fingerprint().has_value());
  FUZZ_CHECK(!mi_ok || m.message_integrity().has_value());
  FUZZ_CHECK(!mi256_ok || m.message_integrity_sha256().has_value());

  // Rebuild. A 64 KiB body plus header always fits, but a short MESSAGE-INTEGRITY-SHA256 grows to 32.
  static std::array<uint8_t, 70000> out;
  std::vector<uint16_t> types;
  bool added_mi = false, added_mi256 = false, added_fp = false;
  MessageBuilder mb = m.has_cookie() ? MessageBuilder(out, m.type(), m.transaction_id())
                                     : MessageBuilder(out, m.type(), m.cookie_and_id());
  m.for_each([&](const RawAttribute& a) {
    FUZZ_CHECK(a.offset >= kHeaderSize && a.offset + 4 + a.value.size() <= m.size());
    FUZZ_CHECK(m.find(a.type).has_value());
    types.push_back(a.type);
    if (a.type == attr::MessageIntegrity && a.offset == m.message_integrity()->offset) {
      mb.add_message_integrity(kKey);
      added_mi = true;
    } else if (a.type == attr::MessageIntegritySha256 && a.offset == m.message_integrity_sha256()->offset) {
      mb.add_message_integrity_sha256(kKey);
      added_mi256 = true;
    } else if (a.type == attr::Fingerprint) {
      FUZZ_CHECK(a.offset == m.fingerprint()->offset);
      mb.add_fingerprint();
      added_fp = true;
    } else {
      decode_and_add(m, a, mb);
    }
    return true;
  });
  auto rebuilt = mb.finish();
  if (!rebuilt.ok()) {
    FUZZ_CHECK(rebuilt.error() == Error::NoSpace);
    return;
  }
  auto again = MessageView::parse(*rebuilt);
  FUZZ_CHECK(again.ok());
  FUZZ_CHECK(again->type() == m.type());
  FUZZ_CHECK(again->has_cookie() == m.has_cookie());
  std::vector<uint16_t> types_again;
  again->for_each([&](const RawAttribute& a) {
    types_again.push_back(a.type);
    return true;
  });
  FUZZ_CHECK(types_again == types);
  if (added_mi) FUZZ_CHECK(verify_message_integrity(*again, kKey));
  if (added_mi256) FUZZ_CHECK(verify_message_integrity_sha256(*again, kKey));
  if (added_fp) FUZZ_CHECK(verify_fingerprint(*again));
  uint16_t unknown_again[8];
  FUZZ_CHECK(again->unknown_required(unknown_again) == n_unknown);
}

void fuzz_channel_data(Bytes data) {
  auto r = parse_channel_data(data);
  if (!r.ok()) return;
  FUZZ_CHECK(valid_channel_number(r->channel));
  FUZZ_CHECK(looks_like_channel_data(data));
  FUZZ_CHECK(r->data.data() == data.data() + 4 && 4 + r->data.size() <= data.size());
  std::vector<uint8_t> buf(4 + r->data.size() + 3);
  std::copy(r->data.begin(), r->data.end(), buf.begin() + 4);
  const size_t n = write_channel_data_header(buf.data(), r->channel, static_cast<uint16_t>(r->data.size()), true);
  FUZZ_CHECK(n % 4 == 0 && n <= buf.size());
  auto again = parse_channel_data(Bytes(buf.data(), n));
  FUZZ_CHECK(again.ok() && again->channel == r->channel && again->data.size() == r->data.size());
  auto fs = stream_frame_size(Bytes(buf.data(), n));
  FUZZ_CHECK(fs.ok() && fs->has_value() && **fs == n);
}

void fuzz_framing(Bytes data) {
  auto fs = stream_frame_size(data);
  if (!fs.ok() || !fs->has_value()) return;
  const size_t size = **fs;
  FUZZ_CHECK(size >= 4);
  if ((data[0] & 0xC0) == 0) FUZZ_CHECK(size == kHeaderSize + load_u16(data.data() + 2) && size % 4 == 0);
  if ((data[0] & 0xC0) == 0x40) FUZZ_CHECK(size % 4 == 0 && size >= 4 + size_t{load_u16(data.data() + 2)});
  if (size <= data.size()) {
    const Bytes frame = data.first(size);
    if (auto m = MessageView::parse(frame); m.ok()) FUZZ_CHECK(m->size() == size);
    if ((data[0] & 0xC0) == 0x40) FUZZ_CHECK(parse_channel_data(frame).ok());
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const Bytes b(data, size);
  fuzz_stun(b);
  fuzz_channel_data(b);
  fuzz_framing(b);
  return 0;
}
