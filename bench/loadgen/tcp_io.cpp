#include "bench/loadgen/tcp_io.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <cerrno>
#include <cstring>

namespace ferry::bench {

ssl_ctx_st* bench_tls_context(std::string& error) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  if (ctx == nullptr || SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1) {
    error = "SSL_CTX_new failed";
    SSL_CTX_free(ctx);
    return nullptr;
  }
  SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
  return ctx;
}

void free_tls_context(ssl_ctx_st* ctx) { SSL_CTX_free(ctx); }
void free_tls(ssl_st* ssl) { SSL_free(ssl); }

int open_tcp_connected(const stun::TransportAddress& local, const stun::TransportAddress& to, std::string& error,
                       ssl_ctx_st* tls, ssl_st** ssl) {
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
  if (tls != nullptr) {
    SSL* s = SSL_new(tls);
    if (s == nullptr || SSL_set_fd(s, fd) != 1) {
      SSL_free(s);
      return fail("SSL_new");
    }
    // Partial writes make SSL_write behave like send() on the data path; the buffer may move
    // between a write that would block and its retry (a std::vector that grows).
    SSL_set_mode(s, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (SSL_connect(s) != 1) {  // blocking: the socket is still blocking here
      char buf[256];
      ERR_error_string_n(ERR_get_error(), buf, sizeof buf);
      SSL_free(s);
      errno = EPROTO;
      error = std::string("TLS handshake: ") + buf;
      ::close(fd);
      return -1;
    }
    *ssl = s;
  }
  if (::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK) != 0) {
    if (ssl != nullptr && *ssl != nullptr) {
      SSL_free(*ssl);
      *ssl = nullptr;
    }
    return fail("fcntl");
  }
  return fd;
}

int open_tcp_listener(const stun::TransportAddress& local, std::string& error) {
  const int fd = ::socket(local.is_v4() ? AF_INET : AF_INET6, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    error = std::string("socket: ") + std::strerror(errno);
    return -1;
  }
  const int one = 1;
  (void)::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_storage ss;
  const socklen_t len = local.to_sockaddr(ss);
  // The backlog holds the server's connections until the sink's thread accepts them (the kernel
  // caps it at net.core.somaxconn).
  if (::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0 || ::listen(fd, 4096) != 0) {
    error = std::string("bind/listen: ") + std::strerror(errno);
    ::close(fd);
    return -1;
  }
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

ssize_t stream_send(int fd, ssl_st* ssl, const uint8_t* data, size_t size) {
  if (ssl == nullptr) {
    const ssize_t n = ::send(fd, data, size, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n >= 0) return n;
    return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : -errno;
  }
  size_t written = 0;
  if (SSL_write_ex(ssl, data, size, &written) == 1) return static_cast<ssize_t>(written);
  const int e = SSL_get_error(ssl, 0);
  return e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ ? 0 : -EIO;
}

ssize_t stream_recv(int fd, ssl_st* ssl, uint8_t* data, size_t size) {
  if (ssl == nullptr) {
    const ssize_t n = ::recv(fd, data, size, MSG_DONTWAIT);
    if (n >= 0) return n;
    return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? -EAGAIN : -errno;
  }
  size_t got = 0;
  if (SSL_read_ex(ssl, data, size, &got) == 1) return static_cast<ssize_t>(got);
  const int e = SSL_get_error(ssl, 0);
  if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return -EAGAIN;
  return e == SSL_ERROR_ZERO_RETURN ? 0 : -EIO;
}

bool send_all(int fd, ssl_st* ssl, const uint8_t* data, size_t size, int timeout_ms) {
  size_t done = 0;
  // Bounded: each wait is the whole timeout at most, and a wait that ends without room fails.
  while (done < size) {
    const ssize_t n = stream_send(fd, ssl, data + done, size - done);
    if (n < 0) return false;
    if (n > 0) {
      done += static_cast<size_t>(n);
      continue;
    }
    pollfd p{fd, POLLOUT, 0};
    if (::poll(&p, 1, timeout_ms) <= 0) return false;
  }
  return true;
}

}  // namespace ferry::bench
