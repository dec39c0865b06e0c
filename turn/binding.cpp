// Binding requests (RFC 8489 §7.3), with the RFC 5780 NAT behaviour discovery attributes
// (CHANGE-REQUEST, RESPONSE-PORT, PADDING, RESPONSE-ORIGIN, OTHER-ADDRESS) when configured.
#include "turn/server_core.h"

#include <array>

#include "stun/attributes.h"
#include "stun/integrity.h"

namespace ferry::turn {

using stun::Bytes;
using stun::Class;
using stun::MessageBuilder;
using stun::MessageView;
using stun::Method;
using stun::TransportAddress;
namespace attr = stun::attr;
namespace code = stun::code;

// ---- Binding (RFC 8489 §7.3, RFC 5780 §6) ---------------------------------------------------------

namespace {
// The RFC 5780 attributes of a Binding request.
struct NatRequest {
  bool change_ip = false;
  bool change_port = false;
  std::optional<uint16_t> response_port;
  bool padding = false;
};

// Reads them; returns why the request gets 400, or "" when it is fine. A response over a TCP or TLS
// connection can come neither from another address nor to another port, and DTLS answers on its
// session, so CHANGE-REQUEST (with a flag set) and RESPONSE-PORT need UDP; PADDING needs datagrams.
std::string_view read_nat_request(const MessageView& msg, Transport transport, NatRequest& out) {
  if (auto a = msg.find(attr::ChangeRequest)) {
    auto cr = stun::decode_change_request(a->value);
    if (!cr) return "Malformed CHANGE-REQUEST";
    out.change_ip = cr->change_ip;
    out.change_port = cr->change_port;
    if ((out.change_ip || out.change_port) && transport != Transport::Udp) return "CHANGE-REQUEST needs UDP";
  }
  if (auto a = msg.find(attr::ResponsePort)) {
    if (a->value.size() != 4 || stun::load_u16(a->value.data()) == 0) return "Malformed RESPONSE-PORT";
    if (transport != Transport::Udp) return "RESPONSE-PORT needs UDP";
    out.response_port = stun::load_u16(a->value.data());
  }
  if (msg.has(attr::Padding)) {
    if (is_stream(transport)) return "PADDING needs UDP or DTLS";
    out.padding = true;
  }
  // RFC 5780 §6.1: PADDING and RESPONSE-PORT together are an error.
  if (out.padding && out.response_port) return "PADDING and RESPONSE-PORT cannot go together";
  return {};
}

// RFC 5780 §6.1: PADDING makes the response as large as a 1500-byte MTU allows, so the client
// learns whether large (possibly fragmented) datagrams reach it. `tail` is what follows (SOFTWARE,
// FINGERPRINT).
void add_padding(MessageBuilder& b, stun::Family family, size_t tail) {
  static constexpr std::array<uint8_t, 1500> kZeros{};
  const size_t datagram = 1500 - (family == stun::Family::V4 ? 20 : 40) - 8;  // minus IP and UDP headers
  const size_t used = b.size() + 4 + tail;
  if (used >= datagram) return;
  b.add(attr::Padding, Bytes(kZeros.data(), (datagram - used) & ~size_t{3}));
}
}  // namespace

void ServerCore::handle_binding(const FiveTuple& from, const MessageView& msg) {
  if (msg.cls() != Class::Request) return;  // Binding indications are keep-alives: no answer
  stats_.binding_requests.add();
  if (msg.fingerprint() && !stun::verify_fingerprint(msg)) {
    stats_.drop(DropReason::Malformed);
    return;
  }
  const std::optional<NatDiscovery>& nat = config_.nat_discovery;
  uint16_t unknown[16];
  size_t n = msg.unknown_required(unknown);
  // Without a second address and port, the RFC 5780 attributes are not understood (§6.1).
  if (!nat) {
    for (uint16_t t : {attr::ChangeRequest, attr::ResponsePort, attr::Padding}) {
      if (msg.has(t) && n < std::size(unknown)) unknown[n++] = t;
    }
  }
  NatRequest nr;
  if (n == 0 && nat) {
    if (auto problem = read_nat_request(msg, from.transport, nr); !problem.empty()) {
      send_error(from, msg, code::BadRequest, nullptr, problem);
      return;
    }
    // A listener that is not one of the four has no alternate to answer from.
    if ((nr.change_ip || nr.change_port) && !nat->serves(from.server)) unknown[n++] = attr::ChangeRequest;
  }
  if (n > 0) {
    auto b = start_response(msg, Class::Error);
    b.add_error_code(code::UnknownAttribute).add_unknown_attributes(std::span<const uint16_t>(unknown, n));
    finish_and_send(from, msg, b, nullptr);
    stats_.errors_sent[code::UnknownAttribute].add();
    return;
  }
  // Where the answer goes and where it leaves from (RFC 5780 §6.1).
  const bool rfc5780 = nat && from.transport == Transport::Udp && nat->serves(from.server);
  FiveTuple reply = from;
  if (nr.response_port) reply.client.port = *nr.response_port;
  if (rfc5780) reply.server = nat->source(from.server, nr.change_ip, nr.change_port);

  auto b = start_response(msg, Class::Success);
  if (msg.has_cookie()) {
    b.add_xor_address(attr::XorMappedAddress, from.client);
    // RFC 5780 §6.1: both MAPPED-ADDRESS and XOR-MAPPED-ADDRESS, so clients can spot an ALG.
    if (nat) b.add_address(attr::MappedAddress, from.client);
  } else {
    b.add_address(attr::MappedAddress, from.client);  // RFC 3489 client
  }
  if (rfc5780 && msg.has_cookie()) {
    b.add_address(attr::ResponseOrigin, reply.server);
    b.add_address(attr::OtherAddress, nat->other(from.server));
  }
  if (nr.padding) {
    // A padded answer is some 20 times the size of a small request: it counts against the
    // unauthenticated rate, so ferry cannot be made to amplify traffic at a spoofed source.
    if (!unauthenticated_answer_allowed(from)) return;
    const size_t software = config_.software.empty() ? 0 : 4 + stun::padded4(config_.software.size());
    add_padding(b, from.client.family, software + (msg.fingerprint() ? 8 : 0));
  }
  finish_and_send(reply, msg, b, nullptr);
}

}  // namespace ferry::turn
