// SendBatch: datagrams held until the batch ends, one sendmmsg per socket, in order per socket,
// nothing sent for a socket being closed, a stream's lent read buffer. Real UDP sockets on loopback.
#include "server/net/send_batch.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <vector>

namespace ferry::server {
namespace {

struct Udp {
  int fd = -1;
  stun::TransportAddress address;
  Udp() {
    fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    socklen_t len = sizeof a;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    address = *stun::TransportAddress::from_sockaddr(reinterpret_cast<sockaddr*>(&a));
  }
  ~Udp() { ::close(fd); }
  // Everything queued on the socket now, in arrival order.
  std::vector<std::string> drain() const {
    std::vector<std::string> got;
    char b[2048];
    for (ssize_t n; (n = ::recv(fd, b, sizeof b, 0)) >= 0;) got.emplace_back(b, static_cast<size_t>(n));
    return got;
  }
};

stun::Bytes bytes_of(const std::string& s) { return {reinterpret_cast<const uint8_t*>(s.data()), s.size()}; }

TEST(SendBatch, HoldsOnlyBytesInsideTheReceiveBuffer) {
  std::vector<uint8_t> buffer(100);
  SendBatch batch(buffer.data(), buffer.size());
  EXPECT_TRUE(batch.holds({buffer.data() + 10, 90}));
  EXPECT_FALSE(batch.holds({buffer.data() + 10, 91}));
  uint8_t elsewhere[4];
  EXPECT_FALSE(batch.holds({elsewhere, 4}));
}

TEST(SendBatch, SendsAtFlushGroupedBySocketInOrder) {
  Udp a, b, sink_a, sink_b;
  std::string buffer = "a1a2b1a3b2";
  SendBatch batch(reinterpret_cast<const uint8_t*>(buffer.data()), buffer.size());
  Counter dropped;
  auto part = [&](size_t i) { return stun::Bytes(reinterpret_cast<const uint8_t*>(buffer.data()) + 2 * i, 2); };
  batch.add(a.fd, sink_a.address, part(0), dropped);
  batch.add(a.fd, sink_a.address, part(1), dropped);
  batch.add(b.fd, sink_b.address, part(2), dropped);
  batch.add(a.fd, sink_a.address, part(3), dropped);
  batch.add(b.fd, sink_b.address, part(4), dropped);
  EXPECT_EQ(batch.pending(), 5u);
  EXPECT_TRUE(sink_a.drain().empty());  // nothing leaves before the flush
  batch.flush();
  EXPECT_EQ(batch.pending(), 0u);
  EXPECT_EQ(sink_a.drain(), (std::vector<std::string>{"a1", "a2", "a3"}));
  EXPECT_EQ(sink_b.drain(), (std::vector<std::string>{"b1", "b2"}));
  EXPECT_EQ(dropped.get(), 0u);
}

TEST(SendBatch, DiscardForgetsAClosedSocketsDatagrams) {
  Udp a, b, sink;
  std::string buffer = "xy";
  SendBatch batch(reinterpret_cast<const uint8_t*>(buffer.data()), buffer.size());
  Counter dropped;
  batch.add(a.fd, sink.address, bytes_of(buffer).subspan(0, 1), dropped);
  batch.add(b.fd, sink.address, bytes_of(buffer).subspan(1, 1), dropped);
  batch.discard(a.fd);
  batch.flush();
  EXPECT_EQ(sink.drain(), (std::vector<std::string>{"y"}));
}

TEST(SendBatch, ALentStreamBufferIsHeldUntilEndLendSendsWhatCameFromIt) {
  Udp a, sink;
  std::vector<uint8_t> receive(16);
  SendBatch batch(receive.data(), receive.size());
  std::string stream = "f1f2";  // a TCP connection's frames of one read
  EXPECT_FALSE(batch.holds(bytes_of(stream)));
  batch.lend(bytes_of(stream));
  EXPECT_TRUE(batch.holds(bytes_of(stream).subspan(2, 2)));
  EXPECT_TRUE(batch.holds({receive.data(), 4}));  // the receive buffer still counts
  Counter dropped;
  batch.add(a.fd, sink.address, bytes_of(stream).subspan(0, 2), dropped);
  batch.add(a.fd, sink.address, bytes_of(stream).subspan(2, 2), dropped);
  EXPECT_TRUE(sink.drain().empty());
  batch.end_lend();
  EXPECT_EQ(batch.pending(), 0u);
  EXPECT_EQ(sink.drain(), (std::vector<std::string>{"f1", "f2"}));
  EXPECT_FALSE(batch.holds(bytes_of(stream)));  // the buffer may move now
}

TEST(SendBatch, FullBatchFlushesItselfAndFailuresAreCounted) {
  Udp a, sink;
  std::string buffer = "z";
  SendBatch batch(reinterpret_cast<const uint8_t*>(buffer.data()), buffer.size());
  Counter dropped;
  for (size_t i = 0; i < SendBatch::kCapacity + 3; ++i) batch.add(a.fd, sink.address, bytes_of(buffer), dropped);
  EXPECT_EQ(batch.pending(), 3u);
  EXPECT_EQ(sink.drain().size(), SendBatch::kCapacity);
  // Port 0 is no destination: the kernel refuses that datagram, the next one still goes.
  stun::TransportAddress nowhere = sink.address;
  nowhere.port = 0;
  batch.add(a.fd, nowhere, bytes_of(buffer), dropped);
  batch.flush();
  EXPECT_EQ(dropped.get(), 1u);
  EXPECT_EQ(sink.drain().size(), 3u);
}

}  // namespace
}  // namespace ferry::server
