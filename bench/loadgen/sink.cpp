#include "bench/loadgen/sink.h"

#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>

#include "bench/loadgen/clock.h"
#include "bench/loadgen/stamp.h"
#include "bench/loadgen/udp_io.h"

namespace ferry::bench {

Sink::Sink(int fd, uint32_t streams, size_t max_datagram, size_t record_size)
    : fd_(fd), max_datagram_(max_datagram), record_size_(record_size), per_stream_(streams, 0), next_seq_(streams, 0) {}

Sink::~Sink() {
  if (thread_.joinable()) stop();
  if (fd_ >= 0) ::close(fd_);
}

void Sink::start(uint64_t measure_from_ns, uint64_t hard_deadline_ns) {
  measure_from_.store(measure_from_ns, std::memory_order_relaxed);
  hard_deadline_ = hard_deadline_ns;
  thread_ = std::thread([this] { run(); });
}

SinkResult Sink::stop() {
  stop_.store(true, std::memory_order_relaxed);
  if (thread_.joinable()) thread_.join();
  result_.received_total = received_total_.load();
  result_.streams_seen = 0;
  for (uint32_t n : per_stream_) result_.streams_seen += n != 0;
  return result_;
}

void Sink::run() {
  if (record_size_ != 0) {
    run_streams();
  } else {
    run_datagrams();
  }
}

void Sink::count(const uint8_t* p, size_t n, uint64_t now, uint64_t measure_from, uint64_t& counted,
                 uint64_t& skipped) {
  const auto stamp = read_stamp(p, n);
  if (!stamp || stamp->stream >= per_stream_.size()) {
    ++result_.foreign;
    return;
  }
  ++counted;
  ++per_stream_[stamp->stream];
  uint64_t& next = next_seq_[stamp->stream];
  if (stamp->seq >= next) {
    skipped += stamp->seq - next;
    next = stamp->seq + 1;
  }
  if (stamp->sent_ns >= measure_from) {
    ++result_.received;
    result_.bytes += n;
    result_.latency.record(now > stamp->sent_ns ? now - stamp->sent_ns : 0);
  }
}

void Sink::run_datagrams() {
  DatagramBatch batch(64, max_datagram_);
  // Bounded by the stop flag and the hard deadline; each wait is at most 20 ms.
  while (!stop_.load(std::memory_order_relaxed)) {
    if (now_ns() >= hard_deadline_) break;
    if (!wait_readable(fd_, 20)) continue;
    for (int round = 0; round < 64; ++round) {  // drain, but come back to check the flags
      const int n = batch.receive(fd_);
      if (n <= 0) break;
      const uint64_t now = now_ns();  // one clock read per batch: the batch arrived together
      const uint64_t measure_from = measure_from_.load(std::memory_order_relaxed);
      uint64_t counted = 0, skipped = 0;
      for (int i = 0; i < n; ++i) count(batch.slot(i), batch.length(i), now, measure_from, counted, skipped);
      received_total_.fetch_add(counted, std::memory_order_relaxed);
      if (skipped != 0) skipped_total_.fetch_add(skipped, std::memory_order_relaxed);
    }
  }
}

namespace {

// One accepted connection: its socket and the start of a record whose rest has not arrived.
struct Connection {
  int fd = -1;
  std::vector<uint8_t> partial;
};

}  // namespace

void Sink::run_streams() {
  const int ep = ::epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) return;
  constexpr uint64_t kListener = UINT64_MAX;
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = kListener;
  (void)::epoll_ctl(ep, EPOLL_CTL_ADD, fd_, &ev);
  std::vector<Connection> conns;
  std::vector<uint8_t> buf(std::max<size_t>(record_size_ * 64, 256 * 1024));
  std::array<epoll_event, 64> events;

  // Cuts what arrived on `c` at `now` into records and counts them.
  auto consume = [&](Connection& c, const uint8_t* data, size_t len, uint64_t now, uint64_t measure_from,
                     uint64_t& counted, uint64_t& skipped) {
    size_t off = 0;
    if (!c.partial.empty()) {
      off = std::min(record_size_ - c.partial.size(), len);
      c.partial.insert(c.partial.end(), data, data + off);
      if (c.partial.size() < record_size_) return;
      count(c.partial.data(), record_size_, now, measure_from, counted, skipped);
      c.partial.clear();
    }
    for (; len - off >= record_size_; off += record_size_) {
      count(data + off, record_size_, now, measure_from, counted, skipped);
    }
    c.partial.assign(data + off, data + len);
  };

  // Bounded by the stop flag and the hard deadline; each wait is at most 20 ms, and each
  // connection is read a bounded number of times per pass.
  while (!stop_.load(std::memory_order_relaxed)) {
    if (now_ns() >= hard_deadline_) break;
    const int n = ::epoll_wait(ep, events.data(), static_cast<int>(events.size()), 20);
    for (int i = 0; i < n; ++i) {
      if (events[i].data.u64 == kListener) {
        for (int k = 0; k < 256; ++k) {
          const int fd = ::accept4(fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
          if (fd < 0) break;
          epoll_event cev{};
          cev.events = EPOLLIN | EPOLLRDHUP;
          cev.data.u64 = conns.size();
          if (::epoll_ctl(ep, EPOLL_CTL_ADD, fd, &cev) != 0) {
            ::close(fd);
            continue;
          }
          conns.push_back(Connection{fd, {}});
          ++result_.connections;
        }
        continue;
      }
      Connection& c = conns[events[i].data.u64];
      uint64_t counted = 0, skipped = 0;
      for (int round = 0; round < 16 && c.fd >= 0; ++round) {
        const ssize_t got = ::recv(c.fd, buf.data(), buf.size(), MSG_DONTWAIT);
        if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) break;
        if (got <= 0) {  // the server closed it (the allocation was deleted), or an error
          (void)::epoll_ctl(ep, EPOLL_CTL_DEL, c.fd, nullptr);
          ::close(c.fd);
          c.fd = -1;
          break;
        }
        consume(c, buf.data(), static_cast<size_t>(got), now_ns(), measure_from_.load(std::memory_order_relaxed),
                counted, skipped);
        if (static_cast<size_t>(got) < buf.size()) break;  // drained
      }
      received_total_.fetch_add(counted, std::memory_order_relaxed);
      if (skipped != 0) skipped_total_.fetch_add(skipped, std::memory_order_relaxed);
    }
  }
  for (Connection& c : conns) {
    if (c.fd >= 0) ::close(c.fd);
  }
  ::close(ep);
}

}  // namespace ferry::bench
