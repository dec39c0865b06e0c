// Datagrams relayed while one receive batch is handled, sent together when it ends: one sendmmsg
// per socket instead of one sendmsg per datagram. A burst on one allocation (its relay socket) or
// towards many clients (the shared UDP listener) then costs one system call per batch.
//
// Only bytes that live in the loop's receive buffer may wait here: they stay put until the batch
// that brought them is over (the next read into the buffer comes after the flush). A TCP or TLS
// connection lends its read buffer for the frames of one read (lend/end_lend), so a burst of
// ChannelData over a stream leaves in one sendmmsg too. Anything else (the core's response
// buffer, DTLS plaintext) is sent at once.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

#include <netinet/in.h>
#include <sys/socket.h>

#include "stun/bytes.h"
#include "stun/transport_address.h"
#include "turn/server_stats.h"

namespace ferry::server {

class SendBatch {
 public:
  // A receive batch is at most 20 datagrams (libuv's recvmmsg width); more room than that only
  // matters if one datagram ever makes several sends.
  static constexpr size_t kCapacity = 64;

  // `buffer`: the loop's receive buffer; only datagrams inside it are deferred.
  SendBatch(const uint8_t* buffer, size_t size) : begin_(buffer), end_(buffer + size) {}
  SendBatch(const SendBatch&) = delete;
  SendBatch& operator=(const SendBatch&) = delete;

  bool holds(stun::Bytes bytes) const {
    return inside(bytes, begin_, end_) || (lent_begin_ != nullptr && inside(bytes, lent_begin_, lent_end_));
  }
  // `buffer` (a stream connection's frames of one read) stays put until end_lend(), which sends
  // what was queued from it. One lent buffer at a time; the batch is empty when lent (a stream's
  // read callback never runs inside a datagram batch).
  void lend(stun::Bytes buffer) {
    lent_begin_ = buffer.data();
    lent_end_ = buffer.data() + buffer.size();
  }
  void end_lend() {
    flush();
    lent_begin_ = lent_end_ = nullptr;
  }

  // Queues `bytes` for socket `fd` to `to`; a failed send later adds to `dropped`. Flushes first
  // when full. Call only with bytes for which holds() is true.
  void add(int fd, const stun::TransportAddress& to, stun::Bytes bytes, Counter& dropped);
  // Sends everything queued, grouped by socket, in order within each socket.
  void flush();
  // The socket is being closed: what was queued for it is dropped (its descriptor number may be
  // reused before the flush).
  void discard(int fd);
  size_t pending() const { return count_; }

 private:
  struct Entry {
    int fd;
    sockaddr_storage to;
    socklen_t to_len;
    iovec iov;
    Counter* dropped;
  };
  void send_group(int fd, size_t first);
  static bool inside(stun::Bytes bytes, const uint8_t* begin, const uint8_t* end) {
    return bytes.data() >= begin && bytes.data() + bytes.size() <= end;
  }

  const uint8_t* begin_;
  const uint8_t* end_;
  const uint8_t* lent_begin_ = nullptr;
  const uint8_t* lent_end_ = nullptr;
  std::array<Entry, kCapacity> entries_{};
  size_t count_ = 0;
  std::array<mmsghdr, kCapacity> msgs_{};
  std::array<bool, kCapacity> sent_{};
};

}  // namespace ferry::server
