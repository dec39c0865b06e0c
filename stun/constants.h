// Wire constants: methods, classes, attribute types and error codes (RFC 8489, 8656, 5780, 6062, 8016).
#pragma once

#include <cstdint>
#include <string_view>

namespace ferry::stun {

inline constexpr uint32_t kMagicCookie = 0x2112A442;
inline constexpr size_t kHeaderSize = 20;
inline constexpr size_t kTransactionIdSize = 12;

enum class Method : uint16_t {
  Binding = 0x001,
  Allocate = 0x003,
  Refresh = 0x004,
  Send = 0x006,
  Data = 0x007,
  CreatePermission = 0x008,
  ChannelBind = 0x009,
  Connect = 0x00A,            // RFC 6062
  ConnectionBind = 0x00B,     // RFC 6062
  ConnectionAttempt = 0x00C,  // RFC 6062
};

enum class Class : uint8_t { Request = 0, Indication = 1, Success = 2, Error = 3 };

// RFC 8489 §5: the class bits C1 C0 sit at bits 8 and 4 of the 14-bit type, the method fills the rest.
constexpr uint16_t make_type(Method m, Class c) {
  auto mv = static_cast<uint16_t>(m);
  auto cv = static_cast<uint16_t>(c);
  return static_cast<uint16_t>((mv & 0x000F) | ((mv & 0x0070) << 1) | ((mv & 0x0F80) << 2) | ((cv & 0x1) << 4) |
                               ((cv & 0x2) << 7));
}
constexpr Method method_of(uint16_t type) {
  return static_cast<Method>((type & 0x000F) | ((type & 0x00E0) >> 1) | ((type & 0x3E00) >> 2));
}
constexpr Class class_of(uint16_t type) { return static_cast<Class>(((type >> 4) & 0x1) | ((type >> 7) & 0x2)); }

namespace attr {
// Comprehension-required (0x0000-0x7FFF)
inline constexpr uint16_t MappedAddress = 0x0001;
inline constexpr uint16_t ChangeRequest = 0x0003;  // RFC 5780
inline constexpr uint16_t Username = 0x0006;
inline constexpr uint16_t MessageIntegrity = 0x0008;
inline constexpr uint16_t ErrorCode = 0x0009;
inline constexpr uint16_t UnknownAttributes = 0x000A;
inline constexpr uint16_t ChannelNumber = 0x000C;
inline constexpr uint16_t Lifetime = 0x000D;
inline constexpr uint16_t XorPeerAddress = 0x0012;
inline constexpr uint16_t Data = 0x0013;
inline constexpr uint16_t Realm = 0x0014;
inline constexpr uint16_t Nonce = 0x0015;
inline constexpr uint16_t XorRelayedAddress = 0x0016;
inline constexpr uint16_t RequestedAddressFamily = 0x0017;
inline constexpr uint16_t EvenPort = 0x0018;
inline constexpr uint16_t RequestedTransport = 0x0019;
inline constexpr uint16_t DontFragment = 0x001A;
inline constexpr uint16_t AccessToken = 0x001B;  // RFC 7635 §6.2
inline constexpr uint16_t MessageIntegritySha256 = 0x001C;
inline constexpr uint16_t PasswordAlgorithm = 0x001D;
inline constexpr uint16_t Userhash = 0x001E;
inline constexpr uint16_t XorMappedAddress = 0x0020;
inline constexpr uint16_t ReservationToken = 0x0022;
inline constexpr uint16_t Padding = 0x0026;       // RFC 5780
inline constexpr uint16_t ResponsePort = 0x0027;  // RFC 5780
inline constexpr uint16_t ConnectionId = 0x002A;  // RFC 6062
// Comprehension-optional (0x8000-0xFFFF)
inline constexpr uint16_t AdditionalAddressFamily = 0x8000;
inline constexpr uint16_t AddressErrorCode = 0x8001;
inline constexpr uint16_t PasswordAlgorithms = 0x8002;
inline constexpr uint16_t AlternateDomain = 0x8003;
inline constexpr uint16_t Icmp = 0x8004;
inline constexpr uint16_t Software = 0x8022;
inline constexpr uint16_t AlternateServer = 0x8023;
inline constexpr uint16_t Fingerprint = 0x8028;
inline constexpr uint16_t ResponseOrigin = 0x802B;           // RFC 5780
inline constexpr uint16_t OtherAddress = 0x802C;             // RFC 5780
inline constexpr uint16_t ThirdPartyAuthorization = 0x802E;  // RFC 7635 §6.1
inline constexpr uint16_t MobilityTicket = 0x8030;           // RFC 8016 §3.1

constexpr bool comprehension_required(uint16_t type) { return type < 0x8000; }
std::string_view name(uint16_t type);  // "XOR-MAPPED-ADDRESS", or "" when unknown
bool known(uint16_t type);
}  // namespace attr

namespace code {
inline constexpr uint16_t TryAlternate = 300;
inline constexpr uint16_t BadRequest = 400;
inline constexpr uint16_t Unauthenticated = 401;
inline constexpr uint16_t Forbidden = 403;
inline constexpr uint16_t MobilityForbidden = 405;  // RFC 8016 §3.1
inline constexpr uint16_t UnknownAttribute = 420;
inline constexpr uint16_t AllocationMismatch = 437;
inline constexpr uint16_t StaleNonce = 438;
inline constexpr uint16_t AddressFamilyNotSupported = 440;
inline constexpr uint16_t WrongCredentials = 441;
inline constexpr uint16_t UnsupportedTransportProtocol = 442;
inline constexpr uint16_t PeerAddressFamilyMismatch = 443;
inline constexpr uint16_t ConnectionAlreadyExists = 446;     // RFC 6062
inline constexpr uint16_t ConnectionTimeoutOrFailure = 447;  // RFC 6062
inline constexpr uint16_t AllocationQuotaReached = 486;
inline constexpr uint16_t ServerError = 500;
inline constexpr uint16_t InsufficientCapacity = 508;
std::string_view reason(uint16_t code);  // the RFC's reason phrase
}  // namespace code

// RFC 8489 §18.5 PASSWORD-ALGORITHM values
enum class PasswordAlgorithm : uint16_t { Md5 = 0x0001, Sha256 = 0x0002 };

// RFC 8656 §14.7 REQUESTED-TRANSPORT protocol numbers
inline constexpr uint8_t kTransportUdp = 17;
inline constexpr uint8_t kTransportTcp = 6;

}  // namespace ferry::stun
