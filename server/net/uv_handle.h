// The one owner of a libuv handle (uv_timer_t, uv_tcp_t, uv_udp_t, uv_async_t, uv_signal_t...).
//
// libuv frees nothing itself: a handle must stay in memory from uv_*_init until its close
// callback, which runs on a later loop iteration, often after the object that wanted the handle
// is gone. So the handle lives on the heap, apart from its owner; close() (or the destructor)
// starts uv_close and the close callback frees it. The loop must run afterwards.
//
// Callbacks after the owner is gone: libuv still makes some after uv_close (write and connect
// requests end with UV_ECANCELED, a UDP batch read hands over its remaining datagrams). close()
// clears the handle's data first, so every callback finds its owner with owner_of(), which is
// null from the moment the owner let go: the one "is my owner still alive" check.
//
// An owner that must itself outlive pending callbacks (a connection whose write requests point
// at it, or that is closed from inside its own read callback) passes an `after` function to
// close(): it runs from the close callback, after every request of the handle has ended.
#pragma once

#include <type_traits>
#include <utility>

#include <uv.h>

namespace ferry::server {

template <class T>
class UvHandle {
 public:
  using AfterClose = void (*)(void* arg);

  UvHandle() = default;
  ~UvHandle() { close(); }
  UvHandle(UvHandle&& o) noexcept : block_(std::exchange(o.block_, nullptr)) {}
  UvHandle& operator=(UvHandle&& o) noexcept {
    if (this != &o) {
      close();
      block_ = std::exchange(o.block_, nullptr);
    }
    return *this;
  }
  UvHandle(const UvHandle&) = delete;
  UvHandle& operator=(const UvHandle&) = delete;

  // Allocates the handle, sets its data to `owner` and runs init(loop, handle, args...), e.g.
  // uv_timer_init or uv_udp_init_ex. 0, or init's error (then nothing is kept: a handle whose
  // init failed is not on the loop and needs no uv_close).
  template <class Init, class... Args>
  int init(uv_loop_t* loop, void* owner, Init init_fn, Args... args) {
    close();
    auto* b = new Block();
    b->handle.data = owner;
    const int rc = init_fn(loop, &b->handle, args...);
    if (rc != 0) {
      delete b;
      return rc;
    }
    block_ = b;
    return 0;
  }

  T* get() const { return block_ != nullptr ? &block_->handle : nullptr; }
  uv_handle_t* handle() const { return reinterpret_cast<uv_handle_t*>(get()); }
  uv_stream_t* stream() const { return reinterpret_cast<uv_stream_t*>(get()); }
  explicit operator bool() const { return block_ != nullptr; }

  void set_owner(void* owner) {
    if (block_ != nullptr) block_->handle.data = owner;
  }
  // In a callback: the owner of `h`, or null once its UvHandle closed it.
  template <class Owner, class H>
  static Owner* owner_of(const H* h) {
    return static_cast<Owner*>(h->data);
  }

  // Clears the owner and starts uv_close; `after(arg)` runs from the close callback, just before
  // the handle is freed. Nothing to do when empty (never initialised, or closed already).
  void close(AfterClose after = nullptr, void* arg = nullptr) {
    Block* b = std::exchange(block_, nullptr);
    if (b == nullptr) return;
    b->handle.data = nullptr;
    b->after = after;
    b->after_arg = arg;
    uv_close(reinterpret_cast<uv_handle_t*>(&b->handle), &UvHandle::on_close);
  }

 private:
  // The handle comes first, so the uv_handle_t* libuv passes back is the Block's address.
  struct Block {
    T handle{};
    AfterClose after = nullptr;
    void* after_arg = nullptr;
  };
  static_assert(std::is_standard_layout_v<Block>);

  static void on_close(uv_handle_t* h) {
    auto* b = reinterpret_cast<Block*>(h);
    if (b->after != nullptr) b->after(b->after_arg);
    delete b;
  }

  Block* block_ = nullptr;
};

}  // namespace ferry::server
