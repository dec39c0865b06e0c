// The wire codec's error values; the result type itself is base/result.h.
#pragma once

#include <string_view>

#include "base/result.h"

namespace ferry::stun {

enum class Error {
  Truncated,            // fewer bytes than the header or a length field claims
  NotStun,              // top two bits set, or no magic cookie where one is required
  BadLength,            // message length not a multiple of 4, or beyond the buffer
  BadAttribute,         // an attribute's value has the wrong size or content
  BadFamily,            // address family other than IPv4/IPv6
  BadChannelNumber,     // outside 0x4000-0x4FFF
  Missing,              // an attribute that must be there is not
  IntegrityMismatch,    // MESSAGE-INTEGRITY(-SHA256) does not verify
  FingerprintMismatch,  // FINGERPRINT does not verify
  NoSpace,              // the output buffer is too small
};

constexpr std::string_view to_string(Error e) {
  switch (e) {
    case Error::Truncated: return "truncated";
    case Error::NotStun: return "not a STUN message";
    case Error::BadLength: return "bad length";
    case Error::BadAttribute: return "bad attribute";
    case Error::BadFamily: return "bad address family";
    case Error::BadChannelNumber: return "bad channel number";
    case Error::Missing: return "missing attribute";
    case Error::IntegrityMismatch: return "integrity mismatch";
    case Error::FingerprintMismatch: return "fingerprint mismatch";
    case Error::NoSpace: return "no space";
  }
  return "unknown";
}

// The codec's results carry one of the Error values above.
template <class T>
using Result = ferry::Result<T, Error>;
using Status = Result<Ok>;

}  // namespace ferry::stun
