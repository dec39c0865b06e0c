// Plain non-blocking UDP sockets and fixed arrays for sendmmsg/recvmmsg (one system call for a
// whole batch, so the generator spends its CPU on load, not on syscall overhead).
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "stun/transport_address.h"

namespace ferry::bench {

using stun::TransportAddress;

struct UdpOptions {
  int buffer_bytes = 4 << 20;  // SO_RCVBUF and SO_SNDBUF (forced past rmem_max when root)
  bool reuse_port = false;
};

// A non-blocking UDP socket bound to `local`; -1 with `error` set on failure.
int open_udp(const TransportAddress& local, const UdpOptions& options, std::string& error);
// connect() so sends need no address and only `to` is received from. Returns false on failure.
bool connect_udp(int fd, const TransportAddress& to);
TransportAddress local_address(int fd);

// Waits until `fd` is readable or `timeout_ms` passes. True when readable.
bool wait_readable(int fd, int timeout_ms);

// `count` slots of `slot_size` bytes with the mmsghdr/iovec arrays pointing at them.
class DatagramBatch {
 public:
  DatagramBatch(size_t count, size_t slot_size);
  DatagramBatch(const DatagramBatch&) = delete;
  DatagramBatch& operator=(const DatagramBatch&) = delete;

  size_t capacity() const { return count_; }
  size_t slot_size() const { return slot_size_; }
  uint8_t* slot(size_t i) { return storage_.data() + i * slot_size_; }
  const uint8_t* slot(size_t i) const { return storage_.data() + i * slot_size_; }
  size_t length(size_t i) const { return msgs_[i].msg_len; }
  const sockaddr_storage& source(size_t i) const { return names_[i]; }

  // recvmmsg without blocking: the number of datagrams read (0 when none), or -errno.
  int receive(int fd);
  // Sets datagram i's length (and destination: nullptr for a connected socket) for send().
  void prepare(size_t i, size_t length, const sockaddr_storage* to = nullptr, socklen_t to_len = 0);
  // sendmmsg of datagrams [0, n): the number sent, or -errno.
  int send(int fd, size_t n);

 private:
  size_t count_;
  size_t slot_size_;
  std::vector<uint8_t> storage_;
  std::vector<mmsghdr> msgs_;
  std::vector<iovec> iov_;
  std::vector<sockaddr_storage> names_;
};

}  // namespace ferry::bench
