// The one "is my owner still here?" check for callbacks that can outlive the object that queued
// them: a database answer or a LISTEN notification arriving after a worker, store or connection
// is gone. The owner holds a Lifetime; a callback captures a Watch next to `this` and returns at
// once when the watch has expired. (libuv handles have their own: UvHandle, server/net/uv_handle.h.)
#pragma once

#include <memory>

namespace ferry {

class Lifetime {
 public:
  class Watch {
   public:
    bool expired() const { return token_.expired(); }

   private:
    friend class Lifetime;
    explicit Watch(std::weak_ptr<const char> token) : token_(std::move(token)) {}
    std::weak_ptr<const char> token_;
  };

  Lifetime() = default;
  // Not copied along with its owner: a copy's callbacks are not the original's.
  Lifetime(const Lifetime&) = delete;
  Lifetime& operator=(const Lifetime&) = delete;

  Watch watch() const { return Watch(token_); }
  // Expires every watch now, before the owner's other members are destroyed.
  void end() { token_.reset(); }

 private:
  std::shared_ptr<const char> token_ = std::make_shared<const char>('\0');
};

}  // namespace ferry
