// The peer every allocation relays to: one UDP socket read with recvmmsg on its own thread, or for
// RFC 6062 TCP peer legs a TCP listener whose connections (one per allocation, opened by the
// server) are read with epoll on that thread, each byte stream cut into records of a fixed size,
// one stamped payload each. It counts stamped packets (records), per stream and in total, and
// records their one-way latency (sender and sink share the process's monotonic clock). Packets
// sent before the end of the warm-up are counted only in `received_total`, which also drives the
// sender's window.
//
// A stream's packets arrive in order (one socket to one server thread and back), so a sequence
// number beyond the next expected one means the ones between were lost: `settled_total` counts
// them at once, and the sender's window does not wait for a timeout to forget them.
#pragma once

#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

#include "bench/loadgen/latency_histogram.h"

namespace ferry::bench {

struct SinkResult {
  uint64_t received = 0;  // stamped packets sent at or after measure_from
  uint64_t bytes = 0;     // their payload bytes
  uint64_t received_total = 0;
  uint64_t foreign = 0;      // datagrams (records) without a stamp (or from an unknown stream)
  uint64_t connections = 0;  // TCP: connections accepted
  uint64_t streams_seen = 0;
  LatencyHistogram latency;
};

class Sink {
 public:
  // Takes ownership of `fd`, a UDP socket, or with `record_size` set a listening TCP socket (non-blocking)
  // whose streams are cut into records of that many bytes. `streams` sizes the per-stream table.
  Sink(int fd, uint32_t streams, size_t max_datagram, size_t record_size = 0);
  ~Sink();
  Sink(const Sink&) = delete;
  Sink& operator=(const Sink&) = delete;

  // Starts the thread; it stops by itself at `hard_deadline_ns` at the latest. A TCP sink starts
  // before the allocations are set up (it accepts the server's connections), with a measure_from
  // set later.
  void start(uint64_t measure_from_ns, uint64_t hard_deadline_ns);
  void set_measure_from(uint64_t ns) { measure_from_.store(ns, std::memory_order_relaxed); }
  SinkResult stop();  // joins the thread

  // Stamped packets received so far, and those plus the ones known lost (relaxed: the sender
  // only needs a recent value).
  uint64_t received_total() const { return received_total_.load(std::memory_order_relaxed); }
  uint64_t settled_total() const {
    return received_total_.load(std::memory_order_relaxed) + skipped_total_.load(std::memory_order_relaxed);
  }

 private:
  void run();
  void run_datagrams();
  void run_streams();
  // One stamped payload (datagram or record) that arrived at `now`.
  void count(const uint8_t* p, size_t n, uint64_t now, uint64_t measure_from, uint64_t& counted, uint64_t& skipped);

  int fd_;
  size_t max_datagram_;
  size_t record_size_;  // TCP: bytes per record; 0: UDP
  std::vector<uint32_t> per_stream_;
  std::vector<uint64_t> next_seq_;  // per stream: the sequence number expected next
  std::atomic<uint64_t> measure_from_{0};
  uint64_t hard_deadline_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> received_total_{0};
  std::atomic<uint64_t> skipped_total_{0};  // sequence numbers jumped over: lost on the way
  SinkResult result_;
  std::thread thread_;
};

}  // namespace ferry::bench
