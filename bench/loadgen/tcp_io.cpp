#include "bench/loadgen/tcp_io.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace ferry::bench {

int open_tcp_connected(const stun::TransportAddress& local, const stun::TransportAddress& to, std::string& error) {
  const int fd = ::socket(local.is_v4() ? AF_INET : AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    error = std::string("socket: ") + std::strerror(errno);
    return -1;
  }
  auto fail = [&](const char* what) {
    error = std::string(what) + ": " + std::strerror(errno);
    ::close(fd);
    return -1;
  };
  const int one = 1;
  (void)::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);  // a frame leaves when it is written
  sockaddr_storage ss;
  socklen_t len = local.to_sockaddr(ss);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) return fail("bind");
  len = to.to_sockaddr(ss);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) return fail("connect");
  if (::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK) != 0) return fail("fcntl");
  return fd;
}

size_t stream_frame_length(const uint8_t* data, size_t available) {
  if (available < 4) return 0;
  const size_t length = (static_cast<size_t>(data[2]) << 8) | data[3];
  switch (data[0] >> 6) {
    case 0: return 20 + length;                      // STUN: 20-byte header + attributes (RFC 8489 §5)
    case 1: return 4 + ((length + 3) & ~size_t{3});  // ChannelData, padded over TCP (RFC 8656 §12.5)
    default: return SIZE_MAX;
  }
}

bool send_all(int fd, const uint8_t* data, size_t size, int timeout_ms) {
  size_t done = 0;
  // Bounded: each wait is the whole timeout at most, and a wait that ends without room fails.
  while (done < size) {
    const ssize_t n = ::send(fd, data + done, size - done, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n > 0) {
      done += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return false;
    pollfd p{fd, POLLOUT, 0};
    if (::poll(&p, 1, timeout_ms) <= 0) return false;
  }
  return true;
}

}  // namespace ferry::bench
