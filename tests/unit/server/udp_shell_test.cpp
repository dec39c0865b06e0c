// The I/O shell end to end in one process: workers on 127.0.0.1 with ephemeral ports, real
// sockets as clients, STUN Binding over UDP and TCP, TCP framing and garbage handling.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <thread>

#include <array>
#include <csignal>
#include <cstring>
#include <memory>
#include <optional>
#include <vector>

#include "auth/nonce.h"
#include "auth/static_users.h"
#include "server/config/local_addresses.h"
#include "server/worker/worker_pool.h"
#include "stun/attributes.h"
#include "stun/message.h"
#include "stun/message_builder.h"
#include "tests/unit/fixtures/sockets.h"

namespace ferry::server {
namespace {

using stun::TransportAddress;

using test::Fd;
using test::loopback;

class ShellTest : public ::testing::Test {
 protected:
  void SetUp() override { std::signal(SIGPIPE, SIG_IGN); }

  // Starts `workers` workers listening on 127.0.0.1, port 0, udp and tcp.
  void start(size_t workers) {
    PoolSettings s;
    s.workers = workers;
    s.base.listeners = {ListenerConfig{loopback(), Transport::Udp}, ListenerConfig{loopback(), Transport::Tcp}};
    s.base.core.realm = "ferry.test";
    s.base.core.relays = {turn::RelayAddress{loopback(), std::nullopt}};
    s.base.core.port_min = 26000;
    s.base.core.port_max = 26099;
    s.base.core.nonce_key = auth::random_key();
    auto users = std::make_shared<auth::StaticUsers>("ferry.test");
    users->add_password("alice", "secret");
    s.credentials.realm = "ferry.test";
    s.credentials.users = users;
    pool_ = std::make_unique<WorkerPool>(std::move(s));
    auto err = pool_->start();
    ASSERT_FALSE(err.has_value()) << *err;
    for (const auto& l : pool_->listeners()) (l.transport == Transport::Udp ? udp_ : tcp_) = l.address;
    ASSERT_NE(udp_.port, 0);
    ASSERT_NE(tcp_.port, 0);
  }
  void TearDown() override {
    if (pool_) pool_->stop();
  }

  static std::array<uint8_t, 12> txid(uint8_t seed) {
    std::array<uint8_t, 12> t{};
    for (size_t i = 0; i < t.size(); ++i) t[i] = static_cast<uint8_t>(seed + i);
    return t;
  }

  // A Binding request with FINGERPRINT; returns its size in `out`.
  static size_t binding_request(std::array<uint8_t, 64>& out, const std::array<uint8_t, 12>& id) {
    stun::MessageBuilder b(out, stun::Method::Binding, stun::Class::Request, id);
    b.add_fingerprint();
    auto bytes = b.finish();
    EXPECT_TRUE(bytes.ok());
    return bytes.ok() ? bytes->size() : 0;
  }

  // The XOR-MAPPED-ADDRESS of a Binding success response, checking its transaction id.
  static std::optional<TransportAddress> mapped_address(stun::Bytes response, const std::array<uint8_t, 12>& id) {
    auto msg = stun::MessageView::parse(response);
    if (!msg || !msg->is(stun::Method::Binding, stun::Class::Success)) return std::nullopt;
    if (!std::equal(id.begin(), id.end(), msg->transaction_id().begin())) return std::nullopt;
    auto a = msg->find(stun::attr::XorMappedAddress);
    if (!a) return std::nullopt;
    auto decoded = stun::decode_xor_address(a->value, msg->transaction_id());
    if (!decoded) return std::nullopt;
    return *decoded;
  }

  static int client_socket(int type) {
    const int fd = ::socket(AF_INET, type, 0);
    timeval tv{1, 0};  // every wait in these tests is bounded
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
  }

  static TransportAddress local_of(int fd) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
    return TransportAddress::from_sockaddr(reinterpret_cast<sockaddr*>(&ss)).value_or(TransportAddress{});
  }

  static bool connect_to(int fd, const TransportAddress& to) {
    sockaddr_storage ss;
    const unsigned len = to.to_sockaddr(ss);
    return ::connect(fd, reinterpret_cast<sockaddr*>(&ss), len) == 0;
  }

  static bool send_all(int fd, const uint8_t* p, size_t n) {
    while (n > 0) {
      const ssize_t w = ::send(fd, p, n, MSG_NOSIGNAL);
      if (w <= 0) return false;
      p += w;
      n -= static_cast<size_t>(w);
    }
    return true;
  }

  // Reads one STUN message from a stream (header, then the length it announces).
  static std::optional<std::vector<uint8_t>> read_stun(int fd) {
    std::vector<uint8_t> m(20);
    if (!read_exact(fd, m.data(), 20)) return std::nullopt;
    const size_t len = stun::load_u16(m.data() + 2);
    m.resize(20 + len);
    if (!read_exact(fd, m.data() + 20, len)) return std::nullopt;
    return m;
  }
  static bool read_exact(int fd, uint8_t* p, size_t n) {
    while (n > 0) {
      const ssize_t r = ::recv(fd, p, n, 0);
      if (r <= 0) return false;
      p += r;
      n -= static_cast<size_t>(r);
    }
    return true;
  }

  std::unique_ptr<WorkerPool> pool_;
  TransportAddress udp_;
  TransportAddress tcp_;
};

TEST_F(ShellTest, UdpBindingReturnsTheSendersAddress) {
  start(1);
  Fd c(client_socket(SOCK_DGRAM));
  ASSERT_TRUE(connect_to(c.fd, udp_));
  std::array<uint8_t, 64> req{};
  const auto id = txid(1);
  const size_t n = binding_request(req, id);
  ASSERT_EQ(::send(c.fd, req.data(), n, 0), static_cast<ssize_t>(n));
  std::array<uint8_t, 1500> resp{};
  const ssize_t r = ::recv(c.fd, resp.data(), resp.size(), 0);
  ASSERT_GT(r, 0) << "no response within 1 s";
  auto mapped = mapped_address(stun::Bytes(resp.data(), static_cast<size_t>(r)), id);
  ASSERT_TRUE(mapped.has_value());
  EXPECT_EQ(*mapped, local_of(c.fd));
}

TEST_F(ShellTest, SeveralWorkersShareTheListenersAndSteerByClientIp) {
  start(2);
  ASSERT_EQ(pool_->size(), 2u);
  // Different source ports of one IP: every one answered, all by the same worker (a 5-tuple hash
  // would put all 8 on one worker only 1 time in 128).
  for (uint8_t k = 0; k < 8; ++k) {
    Fd c(client_socket(SOCK_DGRAM));
    ASSERT_TRUE(connect_to(c.fd, udp_));
    std::array<uint8_t, 64> req{};
    const auto id = txid(static_cast<uint8_t>(10 + k));
    const size_t n = binding_request(req, id);
    ASSERT_EQ(::send(c.fd, req.data(), n, 0), static_cast<ssize_t>(n));
    std::array<uint8_t, 1500> resp{};
    const ssize_t r = ::recv(c.fd, resp.data(), resp.size(), 0);
    ASSERT_GT(r, 0) << "client " << int(k) << ": no response";
    EXPECT_EQ(mapped_address(stun::Bytes(resp.data(), static_cast<size_t>(r)), id), local_of(c.fd));
  }
  const uint64_t first = pool_->worker(0).core().stats().binding_requests.get();
  const uint64_t second = pool_->worker(1).core().stats().binding_requests.get();
  EXPECT_EQ(first + second, 8u);
  EXPECT_TRUE(first == 0 || second == 0) << first << " and " << second;
}

TEST_F(ShellTest, TcpBindingWithFramesSplitAndCoalesced) {
  start(1);
  Fd c(client_socket(SOCK_STREAM));
  ASSERT_TRUE(connect_to(c.fd, tcp_));
  std::array<uint8_t, 64> a{}, b{};
  const auto id_a = txid(30), id_b = txid(50);
  const size_t na = binding_request(a, id_a), nb = binding_request(b, id_b);
  // One write holding request A and the first 7 bytes of B, then the rest of B.
  std::vector<uint8_t> first(a.begin(), a.begin() + static_cast<long>(na));
  first.insert(first.end(), b.begin(), b.begin() + 7);
  ASSERT_TRUE(send_all(c.fd, first.data(), first.size()));
  auto ra = read_stun(c.fd);
  ASSERT_TRUE(ra.has_value()) << "no response to the first request";
  EXPECT_EQ(mapped_address(*ra, id_a), local_of(c.fd));
  ::usleep(20'000);  // let the partial frame sit in the server's buffer
  ASSERT_TRUE(send_all(c.fd, b.data() + 7, nb - 7));
  auto rb = read_stun(c.fd);
  ASSERT_TRUE(rb.has_value()) << "no response to the split request";
  EXPECT_EQ(mapped_address(*rb, id_b), local_of(c.fd));
}

TEST_F(ShellTest, TcpGarbageClosesOnlyThatConnection) {
  start(1);
  Fd good(client_socket(SOCK_STREAM));
  Fd bad(client_socket(SOCK_STREAM));
  ASSERT_TRUE(connect_to(good.fd, tcp_));
  ASSERT_TRUE(connect_to(bad.fd, tcp_));
  // Top two bits 11: neither STUN nor ChannelData. (Plain "GET ..." would not do: 0x4745 is a
  // valid channel number, so it reads as the start of a 21 KB ChannelData frame.)
  const uint8_t garbage[] = {0xFF, 0xFF, 0x00, 0x10, 'j', 'u', 'n', 'k'};
  ASSERT_TRUE(send_all(bad.fd, garbage, sizeof garbage));
  uint8_t byte = 0;
  EXPECT_EQ(::recv(bad.fd, &byte, 1, 0), 0) << "the server should close a connection that sends garbage";

  std::array<uint8_t, 64> req{};
  const auto id = txid(70);
  const size_t n = binding_request(req, id);
  ASSERT_TRUE(send_all(good.fd, req.data(), n));
  auto r = read_stun(good.fd);
  ASSERT_TRUE(r.has_value()) << "the other connection must be unaffected";
  EXPECT_EQ(mapped_address(*r, id), local_of(good.fd));
}

TEST_F(ShellTest, BindFailureNamesTheListener) {
  start(1);
  PoolSettings s;
  s.workers = 1;
  s.base.listeners = {ListenerConfig{udp_, Transport::Udp}};
  s.base.core.relays = {turn::RelayAddress{loopback(), std::nullopt}};
  s.credentials.realm = "ferry";
  WorkerPool second(std::move(s));
  auto err = second.start();
  ASSERT_TRUE(err.has_value());
  EXPECT_NE(err->find("udp " + udp_.to_string()), std::string::npos) << *err;
  EXPECT_NE(err->find("address already in use"), std::string::npos) << *err;
}

// Worker::post runs tasks on the worker's own loop thread, in order; set_draining travels that way.
TEST_F(ShellTest, PostedTasksRunOnEachLoopAndCarryTheDrain) {
  start(2);
  std::mutex m;
  std::vector<std::thread::id> ran_on;
  std::atomic<int> draining_seen{0};
  pool_->set_draining(true, std::nullopt);
  for (size_t i = 0; i < pool_->size(); ++i) {
    Worker& w = pool_->worker(i);
    w.post([&] {  // queued after the set_draining task: sees its effect
      std::lock_guard lock(m);
      ran_on.push_back(std::this_thread::get_id());
      if (w.core().draining()) ++draining_seen;
    });
  }
  for (int i = 0; i < 200 && draining_seen.load() < 2; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(draining_seen.load(), 2);
  std::lock_guard lock(m);
  ASSERT_EQ(ran_on.size(), 2u);
  EXPECT_NE(ran_on[0], ran_on[1]) << "each worker runs its own tasks";
  EXPECT_NE(ran_on[0], std::this_thread::get_id());
  // Every loop stamps a heartbeat for /healthz.
  for (size_t i = 0; i < pool_->size(); ++i) EXPECT_LT(steady_ms() - pool_->worker(i).stats().heartbeat_ms.get(), 2000);
}

TEST(PortShareTest, SplitsEvenlyAndContiguously) {
  const PortRange a = port_share(24000, 24999, 3, 0), b = port_share(24000, 24999, 3, 1),
                  c = port_share(24000, 24999, 3, 2);
  EXPECT_EQ(a.min, 24000);
  EXPECT_EQ(a.max, 24333);
  EXPECT_EQ(b.min, 24334);
  EXPECT_EQ(b.max, 24666);
  EXPECT_EQ(c.min, 24667);
  EXPECT_EQ(c.max, 24999);
  const PortRange whole = port_share(49152, 65535, 1, 0);
  EXPECT_EQ(whole.min, 49152);
  EXPECT_EQ(whole.max, 65535);
}

TEST(RelayAddressTest, UnspecifiedBecomesAnInterfaceAddress) {
  auto ip = [](const char* t) { return TransportAddress::parse_ip(t).value(); };
  const std::vector<InterfaceAddress> ifs = {
      {"lo", ip("127.0.0.1")}, {"lo", ip("::1")}, {"eth0", ip("fe80::1")}, {"eth0", ip("192.0.2.7")}};
  auto r = resolve_relay_addresses(
      {RelayAddressConfig{ip("0.0.0.0"), std::nullopt}, RelayAddressConfig{ip("::"), std::nullopt}}, ifs);
  ASSERT_EQ(r.relays.size(), 2u);
  EXPECT_EQ(r.relays[0].local, ip("192.0.2.7"));  // not loopback
  EXPECT_EQ(r.relays[1].local, ip("::1"));        // link-local skipped, loopback as the fallback
  EXPECT_TRUE(r.warnings.empty());

  auto v4_only = resolve_relay_addresses({RelayAddressConfig{ip("::"), std::nullopt}}, {{"lo", ip("127.0.0.1")}});
  EXPECT_TRUE(v4_only.relays.empty());
  EXPECT_EQ(v4_only.warnings.size(), 1u);
}

}  // namespace
}  // namespace ferry::server
