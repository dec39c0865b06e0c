#include "bench/loadgen/udp_io.h"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace ferry::bench {

namespace {

void set_buffer(int fd, int force_opt, int opt, int bytes) {
  // SO_*BUFFORCE ignores net.core.[rw]mem_max but needs CAP_NET_ADMIN; fall back quietly.
  if (::setsockopt(fd, SOL_SOCKET, force_opt, &bytes, sizeof bytes) != 0) {
    ::setsockopt(fd, SOL_SOCKET, opt, &bytes, sizeof bytes);
  }
}

}  // namespace

int open_udp(const TransportAddress& local, const UdpOptions& options, std::string& error) {
  const int family = local.is_v4() ? AF_INET : AF_INET6;
  const int fd = ::socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    error = std::string("socket: ") + std::strerror(errno);
    return -1;
  }
  const int one = 1;
  if (options.reuse_port) ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  if (options.buffer_bytes > 0) {
    set_buffer(fd, SO_RCVBUFFORCE, SO_RCVBUF, options.buffer_bytes);
    set_buffer(fd, SO_SNDBUFFORCE, SO_SNDBUF, options.buffer_bytes);
  }
  sockaddr_storage ss;
  const socklen_t len = local.to_sockaddr(ss);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
    error = "bind ";
    error += local.to_string();
    error += ": ";
    error += std::strerror(errno);
    ::close(fd);
    return -1;
  }
  return fd;
}

bool connect_udp(int fd, const TransportAddress& to) {
  sockaddr_storage ss;
  const socklen_t len = to.to_sockaddr(ss);
  return ::connect(fd, reinterpret_cast<sockaddr*>(&ss), len) == 0;
}

TransportAddress local_address(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return {};
  return TransportAddress::from_sockaddr(reinterpret_cast<sockaddr*>(&ss)).value_or(TransportAddress{});
}

bool wait_readable(int fd, int timeout_ms) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, timeout_ms) > 0 && (p.revents & POLLIN);
}

DatagramBatch::DatagramBatch(size_t count, size_t slot_size)
    : count_(count), slot_size_(slot_size), storage_(count * slot_size), msgs_(count), iov_(count), names_(count) {
  for (size_t i = 0; i < count; ++i) {
    iov_[i] = iovec{storage_.data() + i * slot_size, slot_size};
    msgs_[i] = mmsghdr{};
    msgs_[i].msg_hdr.msg_iov = &iov_[i];
    msgs_[i].msg_hdr.msg_iovlen = 1;
  }
}

int DatagramBatch::receive(int fd) {
  for (size_t i = 0; i < count_; ++i) {
    iov_[i].iov_len = slot_size_;
    msgs_[i].msg_hdr.msg_name = &names_[i];
    msgs_[i].msg_hdr.msg_namelen = sizeof(sockaddr_storage);
    msgs_[i].msg_hdr.msg_flags = 0;
  }
  const int n = ::recvmmsg(fd, msgs_.data(), static_cast<unsigned>(count_), MSG_DONTWAIT, nullptr);
  if (n >= 0) return n;
  return (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -errno;
}

void DatagramBatch::prepare(size_t i, size_t length, const sockaddr_storage* to, socklen_t to_len) {
  iov_[i].iov_len = length;
  msgs_[i].msg_hdr.msg_name = const_cast<sockaddr_storage*>(to);
  msgs_[i].msg_hdr.msg_namelen = to ? to_len : 0;
  msgs_[i].msg_hdr.msg_flags = 0;
}

int DatagramBatch::send(int fd, size_t n) {
  if (n == 0) return 0;
  const int sent = ::sendmmsg(fd, msgs_.data(), static_cast<unsigned>(n), MSG_DONTWAIT);
  return sent >= 0 ? sent : -errno;
}

}  // namespace ferry::bench
