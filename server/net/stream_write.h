// Writing to a libuv stream without blocking and without losing bytes: what the socket takes at
// once is written in place; the rest is copied into a write request and queued in order. The
// copy happens only when the socket is full, and callers bound the queue (a write budget).
#pragma once

#include <cstddef>
#include <cstring>
#include <memory>

#include <uv.h>

#include "stun/bytes.h"

namespace ferry::server {

// A queued tail. Its write callback finds the connection through req.handle's owner
// (UvHandle::owner_of), which is null once the connection closed.
struct QueuedWrite {
  uv_write_t req{};
  size_t size = 0;
  std::unique_ptr<uint8_t[]> bytes;
};

// Writes `bytes` to `s`. With `queued_before` (bytes of earlier writes still in flight) nothing
// is tried directly, so the order holds. Returns the bytes newly queued (0: all written), or a
// negative libuv error (the caller closes the stream). `done` gets the QueuedWrite in req->data
// and must delete it.
inline long write_or_queue(uv_stream_t* s, stun::Bytes bytes, size_t queued_before, uv_write_cb done) {
  size_t written = 0;
  if (queued_before == 0) {
    uv_buf_t b = uv_buf_init(const_cast<char*>(reinterpret_cast<const char*>(bytes.data())),
                             static_cast<unsigned>(bytes.size()));
    const int n = uv_try_write(s, &b, 1);
    if (n >= 0 && static_cast<size_t>(n) == bytes.size()) return 0;
    if (n >= 0) {
      written = static_cast<size_t>(n);
    } else if (n != UV_EAGAIN) {
      return n;
    }
  }
  auto* w = new QueuedWrite();
  w->size = bytes.size() - written;
  w->bytes = std::make_unique_for_overwrite<uint8_t[]>(w->size);
  std::memcpy(w->bytes.get(), bytes.data() + written, w->size);
  w->req.data = w;
  uv_buf_t b = uv_buf_init(reinterpret_cast<char*>(w->bytes.get()), static_cast<unsigned>(w->size));
  if (const int rc = uv_write(&w->req, s, &b, 1, done); rc != 0) {
    delete w;
    return rc;
  }
  return static_cast<long>(w->size);
}

}  // namespace ferry::server
