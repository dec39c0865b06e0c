// Datagrams relayed while one receive batch is handled, sent together when it ends: one sendmmsg
// per socket instead of one sendmsg per datagram. A burst on one allocation (its relay socket) or
// towards many clients (the shared UDP listener) then costs one system call per batch.
//
// Only bytes that live in the loop's receive buffer may wait here: they stay put until the batch
// that brought them is over (the next read into the buffer comes after the flush). Responses built
// elsewhere (the core's response buffer, a TCP connection's buffer, DTLS plaintext) are sent at once.
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

  bool holds(stun::Bytes bytes) const { return bytes.data() >= begin_ && bytes.data() + bytes.size() <= end_; }

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

  const uint8_t* begin_;
  const uint8_t* end_;
  std::array<Entry, kCapacity> entries_{};
  size_t count_ = 0;
  std::array<mmsghdr, kCapacity> msgs_{};
  std::array<bool, kCapacity> sent_{};
};

}  // namespace ferry::server
