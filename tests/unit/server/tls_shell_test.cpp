// The tls and dtls listeners of a real worker on 127.0.0.1: Binding over TLS and DTLS with
// OpenSSL clients on real sockets, an allocation relaying both ways and ending with its connection
// or session, the handshake deadline, the per-address connection limit and a certificate reload
// that leaves an open connection alone.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <array>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <functional>
#include <string>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include <openssl/bio.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "auth/nonce.h"
#include "client/turn_client.h"
#include "auth/static_users.h"
#include "server/worker/worker_pool.h"
#include "stun/attributes.h"
#include "stun/message.h"
#include "stun/message_builder.h"
#include "tests/unit/fixtures/test_certs.h"
#include "tests/unit/fixtures/sockets.h"

namespace ferry::server {
namespace {

using stun::TransportAddress;

using test::Fd;
using test::loopback;

int client_socket(int type, int timeout_ms = 2000) {
  const int fd = ::socket(AF_INET, type, 0);
  timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};  // every wait here is bounded
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
}

bool connect_to(int fd, const TransportAddress& to) {
  sockaddr_storage ss;
  const unsigned len = to.to_sockaddr(ss);
  return ::connect(fd, reinterpret_cast<sockaddr*>(&ss), len) == 0;
}

std::vector<uint8_t> binding_request(const std::array<uint8_t, 12>& id) {
  std::array<uint8_t, 64> out{};
  stun::MessageBuilder b(out, stun::Method::Binding, stun::Class::Request, id);
  b.add_fingerprint();
  auto bytes = b.finish();
  return bytes.ok() ? std::vector<uint8_t>(bytes->begin(), bytes->end()) : std::vector<uint8_t>{};
}

bool is_binding_success(const uint8_t* p, size_t n, const std::array<uint8_t, 12>& id) {
  auto msg = stun::MessageView::parse(stun::Bytes(p, n));
  return msg && msg->is(stun::Method::Binding, stun::Class::Success) &&
         std::equal(id.begin(), id.end(), msg->transaction_id().begin());
}

// True when the server closed the connection within `ms` (read returns 0 or an error).
bool closed_within(int fd, int ms) {
  timeval tv{ms / 1000, (ms % 1000) * 1000};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  uint8_t b[4096];
  for (int i = 0; i < 100; ++i) {
    const ssize_t r = ::recv(fd, b, sizeof b, 0);
    if (r == 0) return true;
    if (r < 0) return errno != EAGAIN && errno != EWOULDBLOCK;
  }
  return false;
}

class TlsShellTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::signal(SIGPIPE, SIG_IGN);
    ASSERT_TRUE(certs_.make("a", "a.ferry.test"));
    ASSERT_TRUE(certs_.make("b", "b.ferry.test"));
    std::filesystem::copy_file(certs_.path("a.crt"), certs_.path("live.crt"));
    std::filesystem::copy_file(certs_.path("a.key"), certs_.path("live.key"));
  }
  void TearDown() override {
    if (pool_) pool_->stop();
  }

  void start(ConnectionLimits limits = {}) {
    TlsOptions o;
    o.cert_file = certs_.path("live.crt");
    o.key_file = certs_.path("live.key");
    std::string error;
    tls_ = TlsCertificates::load(o, &error);
    ASSERT_TRUE(tls_) << error;
    PoolSettings s;
    s.workers = 1;
    s.base.listeners = {ListenerConfig{loopback(), Transport::Tls}, ListenerConfig{loopback(), Transport::Dtls}};
    s.base.tls = tls_;
    s.base.tcp = limits;
    s.base.core.realm = "ferry.test";
    s.base.core.relays = {turn::RelayAddress{loopback(), std::nullopt}};
    s.base.core.port_min = 26200;
    s.base.core.port_max = 26299;
    s.base.core.nonce_key = auth::random_key();
    s.base.policy.allow(*turn::Cidr::parse("127.0.0.0/8"));  // the test's peer is on loopback
    auto users = std::make_shared<auth::StaticUsers>("ferry.test");
    users->add_password("alice", "secret");
    s.credentials.realm = "ferry.test";
    s.credentials.users = users;
    pool_ = std::make_unique<WorkerPool>(std::move(s));
    auto err = pool_->start();
    ASSERT_FALSE(err.has_value()) << *err;
    for (const auto& l : pool_->listeners()) (l.transport == Transport::Tls ? tls_addr_ : dtls_addr_) = l.address;
    ASSERT_NE(tls_addr_.port, 0);
    ASSERT_NE(dtls_addr_.port, 0);
  }

  // A TLS client on a blocking socket; null when the handshake fails.
  struct TlsClient {
    SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
    SSL* ssl = nullptr;
    Fd sock{client_socket(SOCK_STREAM)};
    ~TlsClient() {
      SSL_free(ssl);
      SSL_CTX_free(ctx);
    }
    bool connect(const TransportAddress& to) {
      if (!connect_to(sock.fd, to)) return false;
      ssl = SSL_new(ctx);
      SSL_set_fd(ssl, sock.fd);
      return SSL_connect(ssl) == 1;
    }
    std::string peer_cn() {
      X509* cert = SSL_get1_peer_certificate(ssl);
      char name[256] = {};
      if (cert != nullptr) X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, name, sizeof name);
      X509_free(cert);
      return name;
    }
    bool binding(uint8_t seed) {
      std::array<uint8_t, 12> id{};
      id.fill(seed);
      auto req = binding_request(id);
      if (SSL_write(ssl, req.data(), static_cast<int>(req.size())) <= 0) return false;
      std::array<uint8_t, 1500> resp{};
      size_t got = 0;
      while (got < 20 || got < size_t{20} + stun::load_u16(resp.data() + 2)) {
        const int n = SSL_read(ssl, resp.data() + got, static_cast<int>(resp.size() - got));
        if (n <= 0) return false;
        got += static_cast<size_t>(n);
      }
      return is_binding_success(resp.data(), got, id);
    }
  };

  testing::CertDir certs_;
  std::shared_ptr<TlsCertificates> tls_;
  std::unique_ptr<WorkerPool> pool_;
  TransportAddress tls_addr_, dtls_addr_;
};

// A connected TLS or DTLS client: one STUN message or ChannelData frame per send and receive.
struct SslPipe {
  SSL* ssl = nullptr;
  bool datagram = false;
  bool send(stun::Bytes b) const {
    return SSL_write(ssl, b.data(), static_cast<int>(b.size())) == static_cast<int>(b.size());
  }
  std::optional<std::vector<uint8_t>> receive() const {
    std::vector<uint8_t> m(2048);
    if (datagram) {
      const int n = SSL_read(ssl, m.data(), static_cast<int>(m.size()));
      if (n <= 0) return std::nullopt;
      m.resize(static_cast<size_t>(n));
      return m;
    }
    size_t got = 0;
    while (got < 20 || got < size_t{20} + stun::load_u16(m.data() + 2)) {  // STUN messages only here
      const int n = SSL_read(ssl, m.data() + got, static_cast<int>(m.size() - got));
      if (n <= 0) return std::nullopt;
      got += static_cast<size_t>(n);
    }
    m.resize(got);
    return m;
  }
};

// An allocation over `pipe` with a permission for a UDP peer socket on loopback.
struct Relay {
  client::TurnClient tc{{.username = "alice", .password = "secret"}};
  Fd peer{client_socket(SOCK_DGRAM)};
  TransportAddress peer_addr;
  TransportAddress relayed;
};

client::Response exchange(const SslPipe& pipe, client::TurnClient& tc, stun::Result<stun::Bytes> req) {
  if (!req.ok() || !pipe.send(*req)) return {};
  auto resp = pipe.receive();
  return resp ? tc.on_response(stun::Bytes(resp->data(), resp->size())) : client::Response{};
}

void allocate(const SslPipe& pipe, Relay& r) {
  std::array<uint8_t, 2048> buf{};
  auto resp = exchange(pipe, r.tc, r.tc.allocate_request(buf));
  ASSERT_EQ(resp.outcome, client::Outcome::Retry);
  resp = exchange(pipe, r.tc, r.tc.retry(buf, resp.transaction_id));
  ASSERT_EQ(resp.outcome, client::Outcome::Success) << resp.error_code << " " << resp.reason;
  ASSERT_EQ(r.tc.relayed().size(), 1u);
  r.relayed = r.tc.relayed()[0];
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_addr.s_addr = htonl(0x7F000001);
  ASSERT_EQ(::bind(r.peer.fd, reinterpret_cast<sockaddr*>(&sin), sizeof sin), 0);
  socklen_t len = sizeof sin;
  ::getsockname(r.peer.fd, reinterpret_cast<sockaddr*>(&sin), &len);
  r.peer_addr = loopback(ntohs(sin.sin_port));
  ASSERT_EQ(exchange(pipe, r.tc, r.tc.create_permission_request(buf, {r.peer_addr})).outcome, client::Outcome::Success);
}

bool peer_send(const Relay& r, const std::string& data) {
  sockaddr_storage to;
  const unsigned to_len = r.relayed.to_sockaddr(to);
  return ::sendto(r.peer.fd, data.data(), data.size(), 0, reinterpret_cast<sockaddr*>(&to), to_len) ==
         static_cast<ssize_t>(data.size());
}

// The payload of the next Data indication on `pipe`, or nullopt.
std::optional<std::string> client_receive(const SslPipe& pipe, const Relay& r) {
  auto data = pipe.receive();
  if (!data) return std::nullopt;
  auto pd = r.tc.on_peer_data(stun::Bytes(data->data(), data->size()));
  if (!pd) return std::nullopt;
  return std::string(reinterpret_cast<const char*>(pd->data.data()), pd->data.size());
}

// Allocates (through the 401), permits a UDP peer on loopback and relays one message each way.
void allocate_and_relay(const SslPipe& pipe) {
  Relay r;
  ASSERT_NO_FATAL_FAILURE(allocate(pipe, r));
  std::array<uint8_t, 2048> buf{};
  const std::string out = "to the peer";
  auto ind =
      r.tc.send_indication(buf, r.peer_addr, stun::Bytes(reinterpret_cast<const uint8_t*>(out.data()), out.size()));
  ASSERT_TRUE(ind.ok() && pipe.send(*ind));
  char got[256];
  sockaddr_storage from{};
  socklen_t from_len = sizeof from;
  const ssize_t n = ::recvfrom(r.peer.fd, got, sizeof got, 0, reinterpret_cast<sockaddr*>(&from), &from_len);
  ASSERT_EQ(std::string(got, static_cast<size_t>(std::max<ssize_t>(n, 0))), out);
  EXPECT_EQ(TransportAddress::from_sockaddr(reinterpret_cast<sockaddr*>(&from)), r.relayed);
  ASSERT_TRUE(peer_send(r, "to the client"));
  EXPECT_EQ(client_receive(pipe, r), "to the client");
}

bool eventually(const std::function<bool()>& f, int ms = 3000) {
  for (int i = 0; i < ms / 20; ++i) {
    if (f()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return f();
}

TEST_F(TlsShellTest, BindingOverTls) {
  start();
  TlsClient c;
  ASSERT_TRUE(c.connect(tls_addr_));
  EXPECT_EQ(c.peer_cn(), "a.ferry.test");
  EXPECT_TRUE(c.binding(1));
  EXPECT_TRUE(c.binding(2));
  EXPECT_EQ(pool_->worker(0).core().stats().binding_requests.get(), 2u);
  EXPECT_EQ(pool_->worker(0).connection_stats().accepted.get(), 1u);
}

TEST_F(TlsShellTest, BindingOverDtls) {
  start();
  SSL_CTX* ctx = SSL_CTX_new(DTLS_client_method());
  Fd sock(client_socket(SOCK_DGRAM));
  ASSERT_TRUE(connect_to(sock.fd, dtls_addr_));
  BIO* bio = BIO_new_dgram(sock.fd, BIO_NOCLOSE);
  sockaddr_storage peer;
  dtls_addr_.to_sockaddr(peer);
  BIO_ctrl(bio, BIO_CTRL_DGRAM_SET_CONNECTED, 0, &peer);
  SSL* ssl = SSL_new(ctx);
  SSL_set_bio(ssl, bio, bio);
  ASSERT_EQ(SSL_connect(ssl), 1);  // through the HelloVerifyRequest
  std::array<uint8_t, 12> id{};
  id.fill(7);
  auto req = binding_request(id);
  ASSERT_GT(SSL_write(ssl, req.data(), static_cast<int>(req.size())), 0);
  std::array<uint8_t, 1500> resp{};
  const int n = SSL_read(ssl, resp.data(), static_cast<int>(resp.size()));
  ASSERT_GT(n, 0);
  EXPECT_TRUE(is_binding_success(resp.data(), static_cast<size_t>(n), id));
  EXPECT_GE(pool_->worker(0).connection_stats().dtls_cookies_sent.get(), 1u);
  SSL_shutdown(ssl);
  SSL_free(ssl);
  SSL_CTX_free(ctx);
}

TEST_F(TlsShellTest, AllocationOverTlsRelaysAndEndsWithTheConnection) {
  start();
  const turn::ServerStats& stats = pool_->worker(0).core().stats();
  {
    TlsClient c;
    ASSERT_TRUE(c.connect(tls_addr_));
    allocate_and_relay(SslPipe{c.ssl, false});
    EXPECT_EQ(stats.allocations_created.get(), 1u);
    EXPECT_EQ(stats.allocations_deleted.get(), 0u);
    SSL_shutdown(c.ssl);
  }  // the socket closes
  EXPECT_TRUE(eventually([&] { return stats.allocations_deleted.get() == 1; }));
}

TEST_F(TlsShellTest, AllocationOverDtlsRelaysAndEndsWithTheSession) {
  start();
  const turn::ServerStats& stats = pool_->worker(0).core().stats();
  SSL_CTX* ctx = SSL_CTX_new(DTLS_client_method());
  Fd sock(client_socket(SOCK_DGRAM));
  ASSERT_TRUE(connect_to(sock.fd, dtls_addr_));
  BIO* bio = BIO_new_dgram(sock.fd, BIO_NOCLOSE);
  sockaddr_storage peer;
  dtls_addr_.to_sockaddr(peer);
  BIO_ctrl(bio, BIO_CTRL_DGRAM_SET_CONNECTED, 0, &peer);
  SSL* ssl = SSL_new(ctx);
  SSL_set_bio(ssl, bio, bio);
  ASSERT_EQ(SSL_connect(ssl), 1);
  allocate_and_relay(SslPipe{ssl, true});
  EXPECT_EQ(stats.allocations_created.get(), 1u);
  SSL_shutdown(ssl);  // close_notify: the session and its allocation end
  EXPECT_TRUE(eventually([&] { return stats.allocations_deleted.get() == 1; }));
  SSL_free(ssl);
  SSL_CTX_free(ctx);
}

TEST_F(TlsShellTest, ASlowTlsReaderLosesWholeMessagesNotTheStream) {
  ConnectionLimits limits;
  limits.write_budget = 16 * 1024;
  start(limits);
  TlsClient c;
  // A small receive buffer, so the server's socket fills quickly while we do not read.
  const int small = 16 * 1024;
  ::setsockopt(c.sock.fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  ASSERT_TRUE(c.connect(tls_addr_));
  const SslPipe pipe{c.ssl, false};
  Relay r;
  ASSERT_NO_FATAL_FAILURE(allocate(pipe, r));
  const std::string chunk(1000, 'p');
  // More than the kernel buffers on both ends of a loopback connection can hold (a few MB).
  for (int i = 0; i < 12000; ++i) {
    if (!peer_send(r, chunk)) break;
    if (i % 100 == 99) std::this_thread::sleep_for(std::chrono::milliseconds(2));  // let the worker keep up
  }
  ASSERT_TRUE(eventually([&] { return pool_->worker(0).connection_stats().write_budget_drops.get() > 0; }));
  // What was queued still arrives as whole messages, and then new data does too.
  ASSERT_TRUE(peer_send(r, "after the flood"));
  bool seen = false;
  for (int i = 0; i < 12000 && !seen; ++i) {
    auto m = client_receive(pipe, r);
    ASSERT_TRUE(m.has_value()) << "message " << i << " broke the framing";
    seen = *m == "after the flood";
    if (!seen) { ASSERT_EQ(*m, chunk); }
  }
  EXPECT_TRUE(seen);
}

TEST_F(TlsShellTest, SilentConnectionsCloseAtTheHandshakeDeadline) {
  ConnectionLimits limits;
  limits.handshake_timeout_ms = 300;  // the sweep runs once a second
  start(limits);
  Fd silent(client_socket(SOCK_STREAM));
  ASSERT_TRUE(connect_to(silent.fd, tls_addr_));
  // A TLS connection that completes the handshake but sends no STUN message is late too.
  TlsClient quiet;
  ASSERT_TRUE(quiet.connect(tls_addr_));
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_TRUE(closed_within(silent.fd, 3000));
  EXPECT_TRUE(closed_within(quiet.sock.fd, 3000));
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(3000));
  EXPECT_EQ(pool_->worker(0).connection_stats().handshake_timeouts.get(), 2u);
}

TEST_F(TlsShellTest, ConnectionsBeyondThePerAddressLimitAreClosed) {
  ConnectionLimits limits;
  limits.max_connections_per_ip = 2;
  start(limits);
  TlsClient a, b;
  ASSERT_TRUE(a.connect(tls_addr_));
  ASSERT_TRUE(b.connect(tls_addr_));
  Fd third(client_socket(SOCK_STREAM));
  ASSERT_TRUE(connect_to(third.fd, tls_addr_));  // the kernel accepts; ferry closes it at once
  EXPECT_TRUE(closed_within(third.fd, 2000));
  EXPECT_EQ(pool_->worker(0).connection_stats().rejected.get(), 1u);
  EXPECT_TRUE(a.binding(3));  // the admitted ones are unaffected
}

TEST_F(TlsShellTest, ReloadServesTheNewCertificateAndKeepsOpenConnections) {
  start();
  TlsClient before;
  ASSERT_TRUE(before.connect(tls_addr_));
  EXPECT_TRUE(before.binding(4));
  std::filesystem::copy_file(certs_.path("b.crt"), certs_.path("live.crt"),
                             std::filesystem::copy_options::overwrite_existing);
  std::filesystem::copy_file(certs_.path("b.key"), certs_.path("live.key"),
                             std::filesystem::copy_options::overwrite_existing);
  ASSERT_EQ(tls_->reload(), std::nullopt);
  TlsClient after;
  ASSERT_TRUE(after.connect(tls_addr_));
  EXPECT_EQ(after.peer_cn(), "b.ferry.test");
  EXPECT_TRUE(after.binding(5));
  EXPECT_TRUE(before.binding(6));  // still on the old certificate's session
  EXPECT_EQ(before.peer_cn(), "a.ferry.test");
}

}  // namespace
}  // namespace ferry::server
