#include "stun/constants.h"

namespace ferry::stun {

std::string_view attr::name(uint16_t type) {
  switch (type) {
    case MappedAddress: return "MAPPED-ADDRESS";
    case ChangeRequest: return "CHANGE-REQUEST";
    case Username: return "USERNAME";
    case MessageIntegrity: return "MESSAGE-INTEGRITY";
    case ErrorCode: return "ERROR-CODE";
    case UnknownAttributes: return "UNKNOWN-ATTRIBUTES";
    case ChannelNumber: return "CHANNEL-NUMBER";
    case Lifetime: return "LIFETIME";
    case XorPeerAddress: return "XOR-PEER-ADDRESS";
    case Data: return "DATA";
    case Realm: return "REALM";
    case Nonce: return "NONCE";
    case XorRelayedAddress: return "XOR-RELAYED-ADDRESS";
    case RequestedAddressFamily: return "REQUESTED-ADDRESS-FAMILY";
    case EvenPort: return "EVEN-PORT";
    case RequestedTransport: return "REQUESTED-TRANSPORT";
    case DontFragment: return "DONT-FRAGMENT";
    case AccessToken: return "ACCESS-TOKEN";
    case MessageIntegritySha256: return "MESSAGE-INTEGRITY-SHA256";
    case PasswordAlgorithm: return "PASSWORD-ALGORITHM";
    case Userhash: return "USERHASH";
    case XorMappedAddress: return "XOR-MAPPED-ADDRESS";
    case ReservationToken: return "RESERVATION-TOKEN";
    case Padding: return "PADDING";
    case ResponsePort: return "RESPONSE-PORT";
    case ConnectionId: return "CONNECTION-ID";
    case AdditionalAddressFamily: return "ADDITIONAL-ADDRESS-FAMILY";
    case AddressErrorCode: return "ADDRESS-ERROR-CODE";
    case PasswordAlgorithms: return "PASSWORD-ALGORITHMS";
    case AlternateDomain: return "ALTERNATE-DOMAIN";
    case Icmp: return "ICMP";
    case Software: return "SOFTWARE";
    case AlternateServer: return "ALTERNATE-SERVER";
    case Fingerprint: return "FINGERPRINT";
    case ResponseOrigin: return "RESPONSE-ORIGIN";
    case OtherAddress: return "OTHER-ADDRESS";
    case MobilityTicket: return "MOBILITY-TICKET";
    case ThirdPartyAuthorization: return "THIRD-PARTY-AUTHORIZATION";
    default: return "";
  }
}

bool attr::known(uint16_t type) { return !name(type).empty(); }

std::string_view code::reason(uint16_t c) {
  switch (c) {
    case TryAlternate: return "Try Alternate";
    case BadRequest: return "Bad Request";
    case Unauthenticated: return "Unauthenticated";
    case Forbidden: return "Forbidden";
    case MobilityForbidden: return "Mobility Forbidden";
    case UnknownAttribute: return "Unknown Attribute";
    case AllocationMismatch: return "Allocation Mismatch";
    case StaleNonce: return "Stale Nonce";
    case AddressFamilyNotSupported: return "Address Family not Supported";
    case WrongCredentials: return "Wrong Credentials";
    case UnsupportedTransportProtocol: return "Unsupported Transport Protocol";
    case PeerAddressFamilyMismatch: return "Peer Address Family Mismatch";
    case ConnectionAlreadyExists: return "Connection Already Exists";
    case ConnectionTimeoutOrFailure: return "Connection Timeout or Failure";
    case AllocationQuotaReached: return "Allocation Quota Reached";
    case ServerError: return "Server Error";
    case InsufficientCapacity: return "Insufficient Capacity";
    default: return "";
  }
}

}  // namespace ferry::stun
