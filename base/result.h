// An expected-like result for every layer: errors are values, not exceptions, so the data path
// can return a parse error without unwinding, and config loading can return a message.
#pragma once

#include <cassert>
#include <utility>
#include <variant>

namespace ferry {

template <class T, class E>
class Result {
 public:
  Result(T value) : v_(std::in_place_index<0>, std::move(value)) {}  // NOLINT: implicit by design, like std::expected
  Result(E e) : v_(std::in_place_index<1>, std::move(e)) {}          // NOLINT
  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  const T& value() const& {
    assert(ok());
    return std::get<0>(v_);
  }
  T& value() & {
    assert(ok());
    return std::get<0>(v_);
  }
  T&& value() && {
    assert(ok());
    return std::get<0>(std::move(v_));
  }
  const T& operator*() const& { return value(); }
  T& operator*() & { return value(); }
  const T* operator->() const { return &value(); }
  T* operator->() { return &value(); }
  const E& error() const {
    assert(!ok());
    return std::get<1>(v_);
  }

 private:
  std::variant<T, E> v_;
};

// For operations that produce nothing but may fail.
struct Ok {};

}  // namespace ferry
