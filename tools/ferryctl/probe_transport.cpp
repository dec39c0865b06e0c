#include "tools/ferryctl/probe_transport.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace ferry::ferryctl {
namespace {

int ms_until(Deadline deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - ProbeClock::now()).count();
  return left <= 0 ? 0 : static_cast<int>(std::min<int64_t>(left, 60'000));
}

// Waits until `fd` is ready for `events` or the deadline passes.
bool wait_fd(int fd, short events, Deadline deadline) {
  for (;;) {
    pollfd p{fd, events, 0};
    const int n = ::poll(&p, 1, ms_until(deadline));
    if (n > 0) return true;
    if (n == 0 || errno != EINTR) return false;
  }
}

std::string errno_text(const char* what) { return std::string(what) + ": " + std::strerror(errno); }

std::string openssl_error(const char* what) {
  const unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) return what;
  char buf[256];
  ERR_error_string_n(e, buf, sizeof(buf));
  return std::string(what) + ": " + buf;
}

class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

// A non-blocking socket connected to `server` (for TCP: once the handshake completes).
int open_connected(const stun::TransportAddress& server, int type, Deadline deadline, std::string* error) {
  sockaddr_storage ss{};
  const socklen_t len = server.to_sockaddr(ss);
  const int fd = ::socket(ss.ss_family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    *error = errno_text("socket");
    return -1;
  }
  if (::connect(fd, reinterpret_cast<sockaddr*>(&ss), len) == 0) return fd;
  if (errno != EINPROGRESS) {
    *error = errno_text("connect");
    ::close(fd);
    return -1;
  }
  if (!wait_fd(fd, POLLOUT, deadline)) {
    *error = "connect: timed out";
    ::close(fd);
    return -1;
  }
  int so_error = 0;
  socklen_t sl = sizeof(so_error);
  ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &so_error, &sl);
  if (so_error != 0) {
    *error = std::string("connect: ") + std::strerror(so_error);
    ::close(fd);
    return -1;
  }
  return fd;
}

class UdpConnection final : public ProbeConnection {
 public:
  explicit UdpConnection(int fd) : fd_(fd) {}
  bool send(stun::Bytes frame, std::string* error) override {
    if (::send(fd_.get(), frame.data(), frame.size(), 0) >= 0) return true;
    *error = errno_text("send");
    return false;
  }
  std::optional<std::vector<uint8_t>> receive(Deadline deadline, std::string* error) override {
    std::vector<uint8_t> buf(65536);
    for (;;) {
      if (!wait_fd(fd_.get(), POLLIN, deadline)) return std::nullopt;
      const ssize_t n = ::recv(fd_.get(), buf.data(), buf.size(), 0);
      if (n >= 0) {
        buf.resize(static_cast<size_t>(n));
        return buf;
      }
      if (errno == EAGAIN || errno == EINTR) continue;
      // ICMP port unreachable comes back as ECONNREFUSED on a connected UDP socket.
      *error = errno == ECONNREFUSED ? "nothing listens there (ICMP port unreachable)" : errno_text("recv");
      return std::nullopt;
    }
  }
  bool stream() const override { return false; }

 private:
  Fd fd_;
};

// Byte stream to frames: STUN (first two bits 00, 20 + length) and ChannelData (01, 4 + length
// rounded up to 4); anything else means we lost the framing.
class StreamConnection : public ProbeConnection {
 public:
  std::optional<std::vector<uint8_t>> receive(Deadline deadline, std::string* error) override {
    for (;;) {
      if (in_.size() >= 4) {
        const size_t length = static_cast<size_t>(in_[2]) << 8 | in_[3];
        size_t whole = 0, keep = 0;
        if ((in_[0] & 0xC0) == 0x00) {
          whole = keep = 20 + length;
        } else if ((in_[0] & 0xC0) == 0x40) {
          keep = 4 + length;
          whole = (keep + 3) & ~size_t{3};
        } else {
          *error = "the server sent something that is neither STUN nor ChannelData";
          return std::nullopt;
        }
        if (in_.size() >= whole) {
          std::vector<uint8_t> frame(in_.begin(), in_.begin() + static_cast<ptrdiff_t>(keep));
          in_.erase(in_.begin(), in_.begin() + static_cast<ptrdiff_t>(whole));
          return frame;
        }
      }
      uint8_t buf[16384];
      const ssize_t n = read_some(buf, sizeof(buf), deadline, error);
      if (n <= 0) return std::nullopt;  // timeout (error empty), closed or failed
      in_.insert(in_.end(), buf, buf + n);
    }
  }
  bool stream() const override { return true; }

 protected:
  // Bytes read, 0 on timeout (error empty) or -1/0 with error set.
  virtual ssize_t read_some(uint8_t* buf, size_t len, Deadline deadline, std::string* error) = 0;

 private:
  std::vector<uint8_t> in_;
};

class TcpConnection final : public StreamConnection {
 public:
  explicit TcpConnection(int fd) : fd_(fd) {}
  bool send(stun::Bytes frame, std::string* error) override {
    size_t off = 0;
    const Deadline deadline = ProbeClock::now() + std::chrono::seconds(5);
    while (off < frame.size()) {
      const ssize_t n = ::send(fd_.get(), frame.data() + off, frame.size() - off, MSG_NOSIGNAL);
      if (n > 0) {
        off += static_cast<size_t>(n);
      } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        if (!wait_fd(fd_.get(), POLLOUT, deadline)) {
          *error = "send: timed out";
          return false;
        }
      } else {
        *error = errno_text("send");
        return false;
      }
    }
    return true;
  }

 protected:
  ssize_t read_some(uint8_t* buf, size_t len, Deadline deadline, std::string* error) override {
    for (;;) {
      if (!wait_fd(fd_.get(), POLLIN, deadline)) return 0;
      const ssize_t n = ::recv(fd_.get(), buf, len, 0);
      if (n > 0) return n;
      if (n == 0) {
        *error = "the server closed the connection";
        return -1;
      }
      if (errno == EAGAIN || errno == EINTR) continue;
      *error = errno_text("recv");
      return -1;
    }
  }

 private:
  Fd fd_;
};

class TlsConnection final : public StreamConnection {
 public:
  TlsConnection(int fd, SSL_CTX* ctx, SSL* ssl) : fd_(fd), ctx_(ctx), ssl_(ssl) {}
  ~TlsConnection() override {
    SSL_free(ssl_);
    SSL_CTX_free(ctx_);
  }
  // Drives an SSL call to completion on the non-blocking socket, waiting as OpenSSL asks.
  template <typename F>
  int drive(F&& call, Deadline deadline, std::string* error, const char* what) {
    for (;;) {
      const int r = call();
      if (r > 0) return r;
      const int e = SSL_get_error(ssl_, r);
      if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        if (!wait_fd(fd_.get(), e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline)) return 0;
        continue;
      }
      if (e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)) {
        *error = "the server closed the connection";
      } else {
        *error = openssl_error(what);
      }
      return -1;
    }
  }
  bool handshake(Deadline deadline, std::string* error) {
    const int r = drive([&] { return SSL_connect(ssl_); }, deadline, error, "TLS handshake");
    if (r == 0) *error = "TLS handshake: timed out";
    return r > 0;
  }
  SSL* ssl() const { return ssl_; }

  bool send(stun::Bytes frame, std::string* error) override {
    const Deadline deadline = ProbeClock::now() + std::chrono::seconds(5);
    const int r = drive([&] { return SSL_write(ssl_, frame.data(), static_cast<int>(frame.size())); }, deadline, error,
                        "TLS write");
    if (r == 0) *error = "TLS write: timed out";
    return r > 0;
  }

 protected:
  ssize_t read_some(uint8_t* buf, size_t len, Deadline deadline, std::string* error) override {
    return drive([&] { return SSL_read(ssl_, buf, static_cast<int>(len)); }, deadline, error, "TLS read");
  }

 private:
  Fd fd_;
  SSL_CTX* ctx_;
  SSL* ssl_;
};

std::string name_line(X509_NAME* name) {
  if (name == nullptr) return "";
  BIO* bio = BIO_new(BIO_s_mem());
  X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253);
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio, &data);
  std::string s(data, static_cast<size_t>(n));
  BIO_free(bio);
  return s;
}

void inspect_certificate(SSL* ssl, const std::string& name, CertificateReport* report) {
  report->protocol = SSL_get_version(ssl);
  report->name = name;
  STACK_OF(X509)* chain = SSL_get_peer_cert_chain(ssl);
  report->chain_length = chain ? static_cast<size_t>(sk_X509_num(chain)) : 0;
  X509* leaf = SSL_get1_peer_certificate(ssl);
  if (leaf == nullptr) {
    report->chain_error = "the server sent no certificate";
    return;
  }
  report->subject = name_line(X509_get_subject_name(leaf));
  report->issuer = name_line(X509_get_issuer_name(leaf));
  const long verify = SSL_get_verify_result(ssl);
  report->chain_ok = verify == X509_V_OK;
  if (!report->chain_ok) report->chain_error = X509_verify_cert_error_string(verify);
  // An IP literal must be in the certificate's iPAddress names, a DNS name in its dNSName
  // names (or its CN when it has none).
  if (auto ip = stun::TransportAddress::parse_ip(name)) {
    report->name_ok = X509_check_ip_asc(leaf, name.c_str(), 0) == 1;
  } else {
    report->name_ok = X509_check_host(leaf, name.data(), name.size(), 0, nullptr) == 1;
  }
  int days = 0, seconds = 0;
  if (ASN1_TIME_diff(&days, &seconds, nullptr, X509_get0_notAfter(leaf)) == 1) {
    const int64_t total = int64_t{days} * 86400 + seconds;  // both have the same sign
    report->days_left = static_cast<int>(total >= 0 ? total / 86400 : -((-total + 86399) / 86400));
  }
  X509_free(leaf);
}

std::unique_ptr<ProbeConnection> connect_tls(int fd, const TlsOptions& tls, Deadline deadline, std::string* error,
                                             CertificateReport* report) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  if (ctx == nullptr) {
    ::close(fd);
    *error = openssl_error("TLS context");
    return nullptr;
  }
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  const bool roots = tls.ca_file.empty() ? SSL_CTX_set_default_verify_paths(ctx) == 1
                                         : SSL_CTX_load_verify_locations(ctx, tls.ca_file.c_str(), nullptr) == 1;
  if (!roots) {
    ::close(fd);
    SSL_CTX_free(ctx);
    *error = openssl_error(tls.ca_file.empty() ? "system CA store" : "--ca file");
    return nullptr;
  }
  // Verified, but not enforced during the handshake: the probe reports a bad chain and goes on.
  SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
  SSL* ssl = SSL_new(ctx);
  if (ssl == nullptr || SSL_set_fd(ssl, fd) != 1) {
    ::close(fd);
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    *error = openssl_error("TLS session");
    return nullptr;
  }
  // SNI carries DNS names only (RFC 6066 §3).
  if (!stun::TransportAddress::parse_ip(tls.server_name)) SSL_set_tlsext_host_name(ssl, tls.server_name.c_str());
  auto conn = std::make_unique<TlsConnection>(fd, ctx, ssl);
  if (!conn->handshake(deadline, error)) return nullptr;
  if (report != nullptr) inspect_certificate(conn->ssl(), tls.server_name, report);
  return conn;
}

}  // namespace

std::unique_ptr<ProbeConnection> connect_probe(ProbeTransport transport, const stun::TransportAddress& server,
                                               const TlsOptions& tls, Deadline deadline, std::string* error,
                                               CertificateReport* report) {
  const int fd = open_connected(server, transport == ProbeTransport::Udp ? SOCK_DGRAM : SOCK_STREAM, deadline, error);
  if (fd < 0) return nullptr;
  if (transport != ProbeTransport::Udp) {
    // Each request is one small write that waits for its answer: Nagle would only add delay.
    const int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  }
  switch (transport) {
    case ProbeTransport::Udp: return std::make_unique<UdpConnection>(fd);
    case ProbeTransport::Tcp: return std::make_unique<TcpConnection>(fd);
    case ProbeTransport::Tls: return connect_tls(fd, tls, deadline, error, report);
  }
  ::close(fd);
  return nullptr;
}

std::optional<stun::TransportAddress> resolve_host(const std::string& host, uint16_t port, std::string* error) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_DGRAM;
  addrinfo* res = nullptr;
  const int rc = ::getaddrinfo(host.c_str(), nullptr, &hints, &res);
  if (rc != 0) {
    *error = "cannot resolve " + host + ": " + gai_strerror(rc);
    return std::nullopt;
  }
  std::optional<stun::TransportAddress> v4, v6;
  for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
    auto a = stun::TransportAddress::from_sockaddr(ai->ai_addr);
    if (!a) continue;
    auto& slot = a->is_v4() ? v4 : v6;
    if (!slot) slot = a->with_port(port);
  }
  ::freeaddrinfo(res);
  if (v4) return v4;
  if (v6) return v6;
  *error = "cannot resolve " + host + ": no IPv4 or IPv6 address";
  return std::nullopt;
}

}  // namespace ferry::ferryctl
