#include "bench/loadgen/sink.h"

#include <unistd.h>

#include "bench/loadgen/clock.h"
#include "bench/loadgen/stamp.h"
#include "bench/loadgen/udp_io.h"

namespace ferry::bench {

Sink::Sink(int fd, uint32_t streams, size_t max_datagram)
    : fd_(fd), max_datagram_(max_datagram), per_stream_(streams, 0) {}

Sink::~Sink() {
  if (thread_.joinable()) stop();
  if (fd_ >= 0) ::close(fd_);
}

void Sink::start(uint64_t measure_from_ns, uint64_t hard_deadline_ns) {
  measure_from_ = measure_from_ns;
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
  DatagramBatch batch(64, max_datagram_);
  // Bounded by the stop flag and the hard deadline; each wait is at most 20 ms.
  while (!stop_.load(std::memory_order_relaxed)) {
    if (now_ns() >= hard_deadline_) break;
    if (!wait_readable(fd_, 20)) continue;
    for (int round = 0; round < 64; ++round) {  // drain, but come back to check the flags
      const int n = batch.receive(fd_);
      if (n <= 0) break;
      const uint64_t now = now_ns();  // one clock read per batch: the batch arrived together
      uint64_t counted = 0;
      for (int i = 0; i < n; ++i) {
        const auto stamp = read_stamp(batch.slot(i), batch.length(i));
        if (!stamp || stamp->stream >= per_stream_.size()) {
          ++result_.foreign;
          continue;
        }
        ++counted;
        ++per_stream_[stamp->stream];
        if (stamp->sent_ns >= measure_from_) {
          ++result_.received;
          result_.bytes += batch.length(i);
          result_.latency.record(now > stamp->sent_ns ? now - stamp->sent_ns : 0);
        }
      }
      received_total_.fetch_add(counted, std::memory_order_relaxed);
    }
  }
}

}  // namespace ferry::bench
