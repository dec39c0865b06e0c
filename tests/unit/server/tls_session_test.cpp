// TLS and DTLS without sockets: TlsContext loading, ALPN, TlsSession handshakes against OpenSSL
// clients in memory, the DtlsServer's stateless cookies, sessions and timeouts, certificate
// reloads and the connection limiter.
#include <gtest/gtest.h>
#include <gmock/gmock.h>

#include <cstring>
#include <deque>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "server/net/connection_limits.h"
#include "server/tls/dtls_cookie.h"
#include "server/net/dtls_server.h"
#include "server/tls/tls_context.h"
#include "server/tls/tls_session.h"
#include "stun/message.h"
#include "stun/message_builder.h"
#include "tests/unit/fixtures/test_certs.h"

namespace ferry::server {
namespace {

using stun::TransportAddress;
using ::testing::HasSubstr;

TransportAddress addr(uint32_t ip, uint16_t port) { return TransportAddress::v4(ip, port); }

class TlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(certs_.make("a", "a.ferry.test"));
    ASSERT_TRUE(certs_.make("b", "b.ferry.test"));
  }
  TlsOptions options(const std::string& name = "a") const {
    TlsOptions o;
    o.cert_file = certs_.path(name + ".crt");
    o.key_file = certs_.path(name + ".key");
    return o;
  }
  std::shared_ptr<const TlsContext> context(const TlsOptions& o) const {
    std::string error;
    auto c = TlsContext::load(o, &error);
    EXPECT_TRUE(c) << error;
    return c;
  }
  testing::CertDir certs_;
};

// ---- contexts --------------------------------------------------------------------------------------

TEST_F(TlsTest, LoadsCertificateAndDescribesIt) {
  auto c = context(options());
  ASSERT_TRUE(c);
  EXPECT_NE(c->tls(), nullptr);
  EXPECT_NE(c->dtls(), nullptr);
  EXPECT_THAT(c->description(), HasSubstr("CN=a.ferry.test"));
  EXPECT_THAT(c->description(), HasSubstr("expires"));
}

TEST_F(TlsTest, LoadErrorsNameTheKey) {
  std::string error;
  TlsOptions o = options();
  o.cert_file = certs_.path("missing.crt");
  EXPECT_FALSE(TlsContext::load(o, &error));
  EXPECT_THAT(error, HasSubstr("tls.cert '" + o.cert_file + "'"));

  o = options();
  o.key_file = certs_.path("b.key");  // the other certificate's key
  EXPECT_FALSE(TlsContext::load(o, &error));
  EXPECT_THAT(error, HasSubstr("does not belong to the certificate"));

  o = options();
  o.ciphers = "NO-SUCH-CIPHER";
  EXPECT_FALSE(TlsContext::load(o, &error));
  EXPECT_THAT(error, HasSubstr("tls.ciphers"));

  o = options();
  o.ciphersuites = "TLS_NOPE";
  EXPECT_FALSE(TlsContext::load(o, &error));
  EXPECT_THAT(error, HasSubstr("tls.ciphersuites"));
}

TEST(Alpn, PicksTheFirstStunLabelOfTheClientsList) {
  auto list = [](std::vector<std::string> names) {
    std::string wire;
    for (auto& n : names) wire += static_cast<char>(n.size()) + n;
    return wire;
  };
  auto pick = [](const std::string& wire) {
    return select_alpn(reinterpret_cast<const unsigned char*>(wire.data()), static_cast<unsigned>(wire.size()));
  };
  EXPECT_EQ(pick(list({"stun.turn"})), "stun.turn");
  EXPECT_EQ(pick(list({"h2", "stun.nat-discovery", "stun.turn"})), "stun.nat-discovery");
  EXPECT_EQ(pick(list({"h2", "http/1.1"})), std::nullopt);
  EXPECT_EQ(pick(""), std::nullopt);
  EXPECT_EQ(pick(std::string("\x20stun.turn", 10)), std::nullopt);  // length past the end
}

// ---- TLS sessions against an in-memory OpenSSL client ---------------------------------------------

struct Collect final : TlsSession::Output {
  std::vector<std::string> writes;
  void on_tls_output(stun::Bytes b) override { writes.emplace_back(reinterpret_cast<const char*>(b.data()), b.size()); }
  std::string take() {
    std::string all;
    for (auto& w : writes) all += w;
    writes.clear();
    return all;
  }
};

// A TLS client over memory BIOs.
struct MemClient {
  SSL_CTX* ctx = nullptr;
  SSL* ssl = nullptr;
  BIO* in = nullptr;   // server -> client
  BIO* out = nullptr;  // client -> server

  explicit MemClient(int min_version, int max_version, const char* alpn = nullptr) {
    ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_security_level(ctx, 0);  // lets the client offer TLS 1.0/1.1 for the refusal tests
    SSL_CTX_set_cipher_list(ctx, "DEFAULT@SECLEVEL=0");
    SSL_CTX_set_min_proto_version(ctx, min_version);
    SSL_CTX_set_max_proto_version(ctx, max_version);
    ssl = SSL_new(ctx);
    in = BIO_new(BIO_s_mem());
    out = BIO_new(BIO_s_mem());
    SSL_set_bio(ssl, in, out);
    SSL_set_connect_state(ssl);
    if (alpn != nullptr) {
      std::string wire = static_cast<char>(std::strlen(alpn)) + std::string(alpn);
      SSL_set_alpn_protos(ssl, reinterpret_cast<const unsigned char*>(wire.data()), static_cast<unsigned>(wire.size()));
    }
  }
  ~MemClient() {
    SSL_free(ssl);
    SSL_CTX_free(ctx);
  }
  std::string take() {
    std::string all;
    char buf[4096];
    int n;
    while ((n = BIO_read(out, buf, sizeof buf)) > 0) all.append(buf, static_cast<size_t>(n));
    return all;
  }
  void give(const std::string& bytes) { BIO_write(in, bytes.data(), static_cast<int>(bytes.size())); }
  std::string read_all() {
    std::string all;
    char buf[4096];
    int n;
    while ((n = SSL_read(ssl, buf, sizeof buf)) > 0) all.append(buf, static_cast<size_t>(n));
    return all;
  }
};

// Feeds `bytes` to the server session; returns the plaintext and the last status.
std::pair<std::string, TlsSession::Status> server_read(TlsSession& s, const std::string& bytes) {
  std::string plain;
  s.feed(stun::Bytes(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()));
  uint8_t buf[1024];
  for (int i = 0; i < 1000; ++i) {
    auto r = s.read(buf, sizeof buf);
    if (r.status != TlsSession::Status::Data) return {plain, r.status};
    plain.append(reinterpret_cast<char*>(buf), r.bytes);
  }
  return {plain, TlsSession::Status::Failed};
}

// Runs the handshake to its end (or failure); returns the server's last status.
TlsSession::Status handshake(MemClient& c, TlsSession& s, Collect& out) {
  TlsSession::Status last = TlsSession::Status::NeedMore;
  for (int i = 0; i < 20; ++i) {
    SSL_do_handshake(c.ssl);
    const std::string to_server = c.take();
    if (!to_server.empty()) last = server_read(s, to_server).second;
    const std::string to_client = out.take();
    if (!to_client.empty()) c.give(to_client);
    if (last == TlsSession::Status::Failed || (to_server.empty() && to_client.empty())) break;
  }
  return last;
}

TEST_F(TlsTest, Tls13HandshakeCarriesFramesBothWaysAndAnswersCloseNotify) {
  auto ctx = context(options());
  Collect out;
  auto s = TlsSession::create(ctx->tls(), &out);
  ASSERT_TRUE(s);
  MemClient c(TLS1_2_VERSION, TLS1_3_VERSION, "stun.turn");
  EXPECT_EQ(handshake(c, *s, out), TlsSession::Status::NeedMore);
  ASSERT_TRUE(s->handshake_done());
  ASSERT_EQ(SSL_is_init_finished(c.ssl), 1);
  EXPECT_EQ(s->version(), "TLSv1.3");
  EXPECT_EQ(s->alpn(), "stun.turn");

  ASSERT_GT(SSL_write(c.ssl, "client frame", 12), 0);
  auto [plain, status] = server_read(*s, c.take());
  EXPECT_EQ(plain, "client frame");
  EXPECT_EQ(status, TlsSession::Status::NeedMore);

  const std::string reply = "server frame";
  ASSERT_TRUE(s->write(stun::Bytes(reinterpret_cast<const uint8_t*>(reply.data()), reply.size())));
  c.give(out.take());
  EXPECT_EQ(c.read_all(), reply);

  SSL_shutdown(c.ssl);
  EXPECT_EQ(server_read(*s, c.take()).second, TlsSession::Status::Closed);
  s->close_notify();
  c.give(out.take());
  char b;
  EXPECT_EQ(SSL_read(c.ssl, &b, 1), 0);
  EXPECT_EQ(SSL_get_error(c.ssl, 0), SSL_ERROR_ZERO_RETURN);  // the client got our close_notify
}

TEST_F(TlsTest, Tls12WithoutAlpnIsAccepted) {
  auto ctx = context(options());
  Collect out;
  auto s = TlsSession::create(ctx->tls(), &out);
  MemClient c(TLS1_2_VERSION, TLS1_2_VERSION);
  handshake(c, *s, out);
  ASSERT_TRUE(s->handshake_done());
  EXPECT_EQ(s->version(), "TLSv1.2");
  EXPECT_EQ(s->alpn(), "");
}

TEST_F(TlsTest, OldVersionsAreRefused) {
  auto ctx = context(options());
  for (int v : {TLS1_VERSION, TLS1_1_VERSION}) {
    Collect out;
    auto s = TlsSession::create(ctx->tls(), &out);
    MemClient c(v, v);
    EXPECT_EQ(handshake(c, *s, out), TlsSession::Status::Failed) << std::hex << v;
    EXPECT_FALSE(s->handshake_done());
    EXPECT_FALSE(s->write(stun::Bytes(reinterpret_cast<const uint8_t*>("x"), 1)));
  }
}

TEST_F(TlsTest, MinimumVersionOneThreeRefusesTls12) {
  TlsOptions o = options();
  o.tls13_only = true;
  auto ctx = context(o);
  Collect out;
  auto s = TlsSession::create(ctx->tls(), &out);
  MemClient c(TLS1_2_VERSION, TLS1_2_VERSION);
  EXPECT_EQ(handshake(c, *s, out), TlsSession::Status::Failed);
}

TEST_F(TlsTest, GarbageFails) {
  auto ctx = context(options());
  Collect out;
  auto s = TlsSession::create(ctx->tls(), &out);
  EXPECT_EQ(server_read(*s, "GET / HTTP/1.1\r\nHost: x\r\n\r\n").second, TlsSession::Status::Failed);
  EXPECT_TRUE(s->failed());
}

TEST_F(TlsTest, PartialRecordsAreBufferedAcrossFeeds) {
  auto ctx = context(options());
  Collect out;
  auto s = TlsSession::create(ctx->tls(), &out);
  MemClient c(TLS1_2_VERSION, TLS1_3_VERSION);
  handshake(c, *s, out);
  ASSERT_TRUE(s->handshake_done());
  ASSERT_GT(SSL_write(c.ssl, "split across reads", 18), 0);
  const std::string wire = c.take();
  std::string plain;
  for (char ch : wire) {  // one byte per read, as a slow network would deliver it
    auto [p, status] = server_read(*s, std::string(1, ch));
    plain += p;
    ASSERT_EQ(status, TlsSession::Status::NeedMore);
  }
  EXPECT_EQ(plain, "split across reads");
}

// ---- DTLS ------------------------------------------------------------------------------------------

struct FakeHost final : DtlsServer::Host {
  std::deque<std::string> datagrams;  // to the client
  std::vector<std::pair<turn::FiveTuple, std::string>> frames;
  std::vector<turn::FiveTuple> closed;
  bool allocation = false;
  void send_datagram(const turn::FiveTuple&, stun::Bytes d) override {
    datagrams.emplace_back(reinterpret_cast<const char*>(d.data()), d.size());
  }
  void on_frame(const turn::FiveTuple& from, stun::Bytes f) override {
    frames.emplace_back(from, std::string(reinterpret_cast<const char*>(f.data()), f.size()));
  }
  void on_closed(const turn::FiveTuple& client) override { closed.push_back(client); }
  bool holds_allocation(const turn::FiveTuple&) const override { return allocation; }
};

// A DTLS client: a TlsSession in the client role, its datagrams kept apart.
struct DtlsClient {
  SSL_CTX* ctx = SSL_CTX_new(DTLS_client_method());
  Collect out;
  std::unique_ptr<TlsSession> s;
  turn::FiveTuple tuple;
  std::string received;

  explicit DtlsClient(uint16_t port) {
    tuple = turn::FiveTuple{addr(0x7F000001, port), addr(0x7F000001, 5349), turn::Transport::Dtls};
    s = TlsSession::create(ctx, &out, TlsSession::Role::Client);
  }
  ~DtlsClient() {
    s.reset();
    SSL_CTX_free(ctx);
  }
  void drive() { feed(""); }  // starts or continues the handshake
  void feed(const std::string& datagram) {
    s->feed(stun::Bytes(reinterpret_cast<const uint8_t*>(datagram.data()), datagram.size()));
    uint8_t buf[2048];
    for (int i = 0; i < 100; ++i) {
      auto r = s->read(buf, sizeof buf);
      if (r.status != TlsSession::Status::Data) return;
      received.append(reinterpret_cast<char*>(buf), r.bytes);
    }
  }
  bool send(const std::string& frame) {
    return s->write(stun::Bytes(reinterpret_cast<const uint8_t*>(frame.data()), frame.size()));
  }
};

class DtlsTest : public TlsTest {
 protected:
  void SetUp() override {
    TlsTest::SetUp();
    std::string error;
    certs = TlsCertificates::load(options(), &error);
    ASSERT_TRUE(certs) << error;
    limits.handshake_timeout_ms = 1000;
    limits.idle_timeout_ms = 5000;
  }
  std::unique_ptr<DtlsServer> make_server() {
    limiter = std::make_unique<ConnectionLimiter>(limits);
    return std::make_unique<DtlsServer>(host, ferry::steady_clock(), certs, limits, *limiter, stats);
  }
  // Moves datagrams both ways until both sides are quiet.
  void pump(DtlsClient& c, DtlsServer& server, uint64_t now = 0) {
    c.drive();
    for (int i = 0; i < 50; ++i) {
      bool moved = false;
      for (auto& w : c.out.writes) {
        server.on_datagram(c.tuple, stun::Bytes(reinterpret_cast<const uint8_t*>(w.data()), w.size()), now);
        moved = true;
      }
      c.out.writes.clear();
      while (!host.datagrams.empty()) {
        std::string d = std::move(host.datagrams.front());
        host.datagrams.pop_front();
        c.feed(d);
        moved = true;
      }
      if (!moved) return;
    }
  }

  std::shared_ptr<TlsCertificates> certs;
  ConnectionLimits limits;
  std::unique_ptr<ConnectionLimiter> limiter;
  ConnectionStats stats;
  FakeHost host;
};

TEST_F(DtlsTest, FirstClientHelloGetsACookieAndNoState) {
  auto server = make_server();
  DtlsClient c(40000);
  c.drive();
  ASSERT_EQ(c.out.writes.size(), 1u);  // the ClientHello
  const std::string hello = c.out.writes[0];
  server->on_datagram(c.tuple, stun::Bytes(reinterpret_cast<const uint8_t*>(hello.data()), hello.size()), 0);
  EXPECT_EQ(server->session_count(), 0u);
  EXPECT_EQ(stats.dtls_cookies_sent.get(), 1u);
  ASSERT_EQ(host.datagrams.size(), 1u);
  EXPECT_EQ(host.datagrams[0][0], 22);  // handshake record
  EXPECT_EQ(host.datagrams[0][13], 3);  // HelloVerifyRequest
  // The same ClientHello again (a replay, or a spoofed source): still nothing kept.
  server->on_datagram(c.tuple, stun::Bytes(reinterpret_cast<const uint8_t*>(hello.data()), hello.size()), 0);
  EXPECT_EQ(server->session_count(), 0u);
  EXPECT_EQ(limiter->total(), 0u);
}

TEST_F(DtlsTest, HandshakeFramesBothWaysAndCloseNotifyEndsTheSession) {
  auto server = make_server();
  DtlsClient c(40001);
  pump(c, *server);
  ASSERT_TRUE(c.s->handshake_done());
  EXPECT_EQ(c.s->version(), "DTLSv1.2");
  EXPECT_EQ(server->session_count(), 1u);
  EXPECT_EQ(limiter->total(), 1u);
  EXPECT_EQ(stats.accepted.get(), 1u);

  ASSERT_TRUE(c.send("binding request"));
  pump(c, *server);
  ASSERT_EQ(host.frames.size(), 1u);
  EXPECT_EQ(host.frames[0].first, c.tuple);
  EXPECT_EQ(host.frames[0].second, "binding request");

  const std::string reply = "binding response";
  EXPECT_TRUE(server->send(c.tuple, stun::Bytes(reinterpret_cast<const uint8_t*>(reply.data()), reply.size())));
  pump(c, *server);
  EXPECT_EQ(c.received, reply);

  // Larger than one record cannot go as one datagram: dropped, the session survives.
  const std::string huge(20000, 'x');
  EXPECT_FALSE(server->send(c.tuple, stun::Bytes(reinterpret_cast<const uint8_t*>(huge.data()), huge.size())));
  EXPECT_EQ(server->session_count(), 1u);

  c.s->close_notify();
  pump(c, *server);
  EXPECT_EQ(server->session_count(), 0u);
  EXPECT_EQ(limiter->total(), 0u);
  ASSERT_EQ(host.closed.size(), 1u);
  EXPECT_EQ(host.closed[0], c.tuple);
}

TEST_F(DtlsTest, SilentHandshakeTimesOut) {
  auto server = make_server();
  DtlsClient c(40002);
  c.drive();
  // Cookie exchange and the ClientHello with the cookie, then the client goes quiet.
  for (int i = 0; i < 2; ++i) {
    for (auto& w : c.out.writes)
      server->on_datagram(c.tuple, stun::Bytes(reinterpret_cast<const uint8_t*>(w.data()), w.size()), 100);
    c.out.writes.clear();
    if (i == 0) {
      ASSERT_EQ(host.datagrams.size(), 1u);
      c.feed(host.datagrams.front());
      host.datagrams.clear();
    }
  }
  EXPECT_EQ(server->session_count(), 1u);
  server->tick(500);
  EXPECT_EQ(server->session_count(), 1u);
  server->tick(1100);
  EXPECT_EQ(server->session_count(), 0u);
  EXPECT_EQ(stats.handshake_timeouts.get(), 1u);
  EXPECT_EQ(limiter->total(), 0u);
}

TEST_F(DtlsTest, IdleSessionsCloseUnlessTheyHoldAnAllocation) {
  auto server = make_server();
  DtlsClient c(40003);
  pump(c, *server, 0);
  ASSERT_TRUE(c.send("frame"));
  pump(c, *server, 0);
  host.allocation = true;
  server->tick(6000);
  EXPECT_EQ(server->session_count(), 1u);
  host.allocation = false;
  server->tick(6000);
  EXPECT_EQ(server->session_count(), 0u);
  EXPECT_EQ(stats.idle_timeouts.get(), 1u);
  EXPECT_EQ(host.closed.size(), 1u);
}

TEST_F(DtlsTest, PerAddressLimitRefusesBeforeTheCookie) {
  limits.max_connections_per_ip = 1;
  auto server = make_server();
  DtlsClient first(40004), second(40005);
  pump(first, *server);
  ASSERT_EQ(server->session_count(), 1u);
  const uint64_t cookies = stats.dtls_cookies_sent.get();
  second.drive();
  for (auto& w : second.out.writes)
    server->on_datagram(second.tuple, stun::Bytes(reinterpret_cast<const uint8_t*>(w.data()), w.size()), 0);
  EXPECT_TRUE(host.datagrams.empty());  // not even a HelloVerifyRequest
  EXPECT_EQ(stats.dtls_cookies_sent.get(), cookies);
  EXPECT_EQ(stats.rejected.get(), 1u);
  EXPECT_EQ(server->session_count(), 1u);
}

TEST_F(DtlsTest, NewClientHelloFromTheSameAddressReplacesTheSession) {
  auto server = make_server();
  {
    DtlsClient old_client(40006);
    pump(old_client, *server);
    ASSERT_EQ(server->session_count(), 1u);
  }
  DtlsClient c(40006);  // same address and port, fresh state
  pump(c, *server);
  EXPECT_TRUE(c.s->handshake_done());
  EXPECT_EQ(server->session_count(), 1u);
  ASSERT_EQ(host.closed.size(), 1u);  // the old session's allocation would end here
  ASSERT_TRUE(c.send("after restart"));
  pump(c, *server);
  ASSERT_EQ(host.frames.size(), 1u);
  EXPECT_EQ(host.frames[0].second, "after restart");
}

TEST_F(DtlsTest, NonDtlsDatagramsAreIgnored) {
  auto server = make_server();
  const uint8_t stun_header[20] = {0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xA4, 0x42};
  server->on_datagram(DtlsClient(40007).tuple, stun::Bytes(stun_header, sizeof stun_header), 0);
  const uint8_t junk[] = {22, 0xFE, 0xFD, 0, 0};  // a truncated record header
  server->on_datagram(DtlsClient(40007).tuple, stun::Bytes(junk, sizeof junk), 0);
  EXPECT_TRUE(host.datagrams.empty());
  EXPECT_EQ(server->session_count(), 0u);
}

TEST(DtlsCookie, BoundToAddressAndTime) {
  DtlsCookieKey key;
  const auto a = addr(0x7F000001, 1000);
  uint8_t cookie[DtlsCookieKey::kSize];
  key.make(a, cookie);
  EXPECT_TRUE(key.verify(a, cookie, sizeof cookie));
  EXPECT_FALSE(key.verify(addr(0x7F000001, 1001), cookie, sizeof cookie));  // other port
  EXPECT_FALSE(key.verify(addr(0x7F000002, 1000), cookie, sizeof cookie));  // other IP
  EXPECT_FALSE(key.verify(a, cookie, sizeof cookie - 1));
  EXPECT_FALSE(DtlsCookieKey().verify(a, cookie, sizeof cookie));  // another server's key
  const uint32_t now = key.now();
  key.make_at(a, now - static_cast<uint32_t>(DtlsCookieKey::kLifetime.count()) - 1, cookie);
  EXPECT_FALSE(key.verify(a, cookie, sizeof cookie));  // expired
  key.make_at(a, now + 100, cookie);
  EXPECT_FALSE(key.verify(a, cookie, sizeof cookie));  // from the future
}

// ---- reloads ---------------------------------------------------------------------------------------

TEST_F(TlsTest, ReloadSwapsTheCertificateAndKeepsTheOldOneOnErrors) {
  TlsOptions o = options();
  o.cert_file = certs_.path("live.crt");
  o.key_file = certs_.path("live.key");
  std::filesystem::copy_file(certs_.path("a.crt"), o.cert_file);
  std::filesystem::copy_file(certs_.path("a.key"), o.key_file);
  std::string error;
  auto holder = TlsCertificates::load(o, &error);
  ASSERT_TRUE(holder) << error;
  TlsContextCache cache(holder);
  const TlsContext* first = cache.get();
  auto keep_first = holder->current();  // an open session's view: must stay usable
  EXPECT_THAT(first->description(), HasSubstr("a.ferry.test"));
  EXPECT_EQ(holder->generation(), 0u);

  std::filesystem::copy_file(certs_.path("b.crt"), o.cert_file, std::filesystem::copy_options::overwrite_existing);
  std::filesystem::copy_file(certs_.path("b.key"), o.key_file, std::filesystem::copy_options::overwrite_existing);
  EXPECT_EQ(holder->reload(), std::nullopt);
  EXPECT_EQ(holder->generation(), 1u);
  EXPECT_THAT(cache.get()->description(), HasSubstr("b.ferry.test"));
  EXPECT_THAT(keep_first->description(), HasSubstr("a.ferry.test"));

  std::ofstream(o.key_file) << "not a key\n";
  auto err = holder->reload();
  ASSERT_TRUE(err.has_value());
  EXPECT_THAT(*err, HasSubstr("tls.key"));
  EXPECT_EQ(holder->generation(), 1u);
  EXPECT_THAT(cache.get()->description(), HasSubstr("b.ferry.test"));
}

TEST_F(TlsTest, WatcherReloadsChangedFiles) {
  TlsOptions o = options();
  o.cert_file = certs_.path("watched.crt");
  o.key_file = certs_.path("watched.key");
  std::filesystem::copy_file(certs_.path("a.crt"), o.cert_file);
  std::filesystem::copy_file(certs_.path("a.key"), o.key_file);
  std::string error;
  auto holder = TlsCertificates::load(o, &error);
  ASSERT_TRUE(holder) << error;
  holder->watch(std::chrono::seconds(1));
  // Replaced by rename, as certificate renewal tools do: a new inode.
  std::filesystem::copy_file(certs_.path("b.crt"), o.cert_file + ".new");
  std::filesystem::copy_file(certs_.path("b.key"), o.key_file + ".new");
  std::filesystem::rename(o.key_file + ".new", o.key_file);
  std::filesystem::rename(o.cert_file + ".new", o.cert_file);
  for (int i = 0; i < 50 && holder->generation() == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(holder->generation(), 1u);
  EXPECT_THAT(holder->current()->description(), HasSubstr("b.ferry.test"));
}

// ---- limiter ---------------------------------------------------------------------------------------

TEST(ConnectionLimiter, PerAddressAndTotal) {
  ConnectionLimits limits;
  limits.max_connections = 3;
  limits.max_connections_per_ip = 2;
  ConnectionLimiter l(limits);
  const auto a1 = addr(0x0A000001, 1), a2 = addr(0x0A000001, 2), a3 = addr(0x0A000001, 3);
  const auto b = addr(0x0A000002, 1), c = addr(0x0A000003, 1);
  EXPECT_TRUE(l.try_acquire(a1));
  EXPECT_TRUE(l.try_acquire(a2));
  EXPECT_FALSE(l.try_acquire(a3));  // third from one IP, whatever the port
  EXPECT_TRUE(l.try_acquire(b));
  EXPECT_FALSE(l.would_admit(c));  // total reached
  l.release(a1);
  EXPECT_EQ(l.count(a3), 1u);
  EXPECT_TRUE(l.try_acquire(c));
  EXPECT_EQ(l.total(), 3u);
  l.release(a2);
  l.release(b);
  l.release(c);
  l.release(c);  // releasing what is not held changes nothing
  EXPECT_EQ(l.total(), 0u);
  ConnectionLimiter unlimited{ConnectionLimits{}};
  for (int i = 0; i < 1000; ++i) EXPECT_TRUE(unlimited.try_acquire(a1));
}

}  // namespace
}  // namespace ferry::server
