// A small expected-like result for the data path: parse errors are values, not exceptions.
#pragma once

#include <cassert>
#include <string_view>
#include <utility>
#include <variant>

namespace ferry::stun {

enum class Error {
  Truncated,           // fewer bytes than the header or a length field claims
  NotStun,             // top two bits set, or no magic cookie where one is required
  BadLength,           // message length not a multiple of 4, or beyond the buffer
  BadAttribute,        // an attribute's value has the wrong size or content
  BadFamily,           // address family other than IPv4/IPv6
  BadChannelNumber,    // outside 0x4000-0x4FFF
  Missing,             // an attribute that must be there is not
  IntegrityMismatch,   // MESSAGE-INTEGRITY(-SHA256) does not verify
  FingerprintMismatch, // FINGERPRINT does not verify
  NoSpace,             // the output buffer is too small
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

template <class T>
class Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design, like std::expected
  Result(Error e) : v_(e) {}                 // NOLINT
  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  const T& value() const& { assert(ok()); return std::get<0>(v_); }
  T& value() & { assert(ok()); return std::get<0>(v_); }
  T&& value() && { assert(ok()); return std::get<0>(std::move(v_)); }
  const T& operator*() const& { return value(); }
  T& operator*() & { return value(); }
  const T* operator->() const { return &value(); }
  T* operator->() { return &value(); }
  Error error() const { assert(!ok()); return std::get<1>(v_); }

 private:
  std::variant<T, Error> v_;
};

// For operations that produce nothing but may fail.
struct Ok {};
using Status = Result<Ok>;

}  // namespace ferry::stun
