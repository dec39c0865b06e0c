// Binding requests/s: a few sockets, each keeping a share of --window requests in flight. The
// request comes from the project's TurnClient once; after that only its transaction id changes
// (socket, counter and send time), so the generator spends no time building messages.
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "bench/loadgen/addresses.h"
#include "bench/loadgen/clock.h"
#include "bench/loadgen/latency_histogram.h"
#include "bench/loadgen/runs.h"
#include "bench/loadgen/text.h"
#include "bench/loadgen/udp_io.h"
#include "client/turn_client.h"
#include "stun/bytes.h"
#include "stun/constants.h"

namespace ferry::bench {

namespace {

constexpr uint16_t kBindingSuccess = 0x0101;
constexpr uint16_t kBindingError = 0x0111;
constexpr size_t kTxidOffset = 8;            // RFC 8489 §5: type, length, cookie, then the 96-bit id
constexpr uint64_t kGiveUpNs = 200'000'000;  // requests unanswered this long are counted lost

struct Socket {
  int fd = -1;
  uint16_t index = 0;
  uint16_t counter = 0;
  uint32_t outstanding = 0;
  uint64_t last_progress = 0;
};

// Sends one real Binding request through `fd` and checks the answer with the TurnClient: a
// success with a mapped address, within about a second.
void probe(int fd) {
  client::TurnClient c(client::TurnClientConfig{});
  std::vector<uint8_t> buf(1500);
  auto req = c.binding_request(buf);
  if (!req) throw std::runtime_error("building a Binding request");
  const std::vector<uint8_t> bytes(req->begin(), req->end());
  for (int attempt = 0; attempt < 4; ++attempt) {
    (void)::send(fd, bytes.data(), bytes.size(), MSG_DONTWAIT);
    const uint64_t until = now_ns() + 250'000'000;
    while (now_ns() < until) {
      if (!wait_readable(fd, 50)) continue;
      const ssize_t n = ::recv(fd, buf.data(), buf.size(), MSG_DONTWAIT);
      if (n <= 0) continue;
      auto r = c.on_response(stun::Bytes(buf.data(), static_cast<size_t>(n)));
      if (r.outcome == client::Outcome::Success && r.mapped) return;
      if (r.outcome == client::Outcome::Error) {
        throw std::runtime_error(cat("Binding probe: error ", std::to_string(r.error_code), " ", r.reason));
      }
    }
  }
  throw std::runtime_error("Binding probe: no answer from the target");
}

}  // namespace

nlohmann::json run_binding(const Options& o) {
  const uint32_t count = std::clamp<uint32_t>(o.allocations, 1, 65535);
  std::string err;
  std::vector<Socket> sockets(count);
  auto close_all = [&] {
    for (auto& s : sockets)
      if (s.fd >= 0) ::close(s.fd);
  };
  for (uint32_t i = 0; i < count; ++i) {
    sockets[i].index = static_cast<uint16_t>(i);
    sockets[i].fd = open_udp(client_source(o, i), UdpOptions{.buffer_bytes = 1 << 20}, err);
    if (sockets[i].fd < 0 || !connect_udp(sockets[i].fd, o.target)) {
      close_all();
      throw std::runtime_error(cat("client socket: ", err.empty() ? std::strerror(errno) : err));
    }
  }
  try {
    probe(sockets[0].fd);
  } catch (...) {
    close_all();
    throw;
  }

  // The template: a Binding request as TurnClient builds it (no credentials, no attributes).
  client::TurnClient c(client::TurnClientConfig{});
  std::vector<uint8_t> buf(1500);
  auto req = c.binding_request(buf);
  if (!req) {
    close_all();
    throw std::runtime_error("building a Binding request");
  }
  const std::vector<uint8_t> templ(req->begin(), req->end());
  c.cancel(c.last_transaction_id());  // we track our own ids from here on

  const uint32_t per_socket = std::max<uint32_t>(1, o.window / count);
  const uint32_t batch_size = std::clamp<uint32_t>(o.batch, 1, 1024);
  DatagramBatch out(batch_size, templ.size());
  DatagramBatch in(64, 1500);
  std::vector<pollfd> fds(count);
  LatencyHistogram latency;
  uint64_t sent_measured = 0, responses = 0, errors = 0, lost = 0, foreign = 0, send_errors = 0, requests_total = 0;

  const uint64_t t0 = now_ns();
  const uint64_t measure_from = t0 + seconds_to_ns(o.warmup);
  uint64_t end = measure_from + seconds_to_ns(o.duration);
  uint64_t drain_end = end + seconds_to_ns(o.drain);
  for (auto& s : sockets) s.last_progress = t0;

  // Bounded by drain_end (and --count): each pass waits at most 2 ms.
  for (;;) {
    uint64_t now = now_ns();
    if (now >= drain_end) break;
    if (now < end && o.max_count != 0 && responses >= o.max_count && now > measure_from) {
      end = now;  // --count reached: stop sending, measure over the time it took
      drain_end = end + seconds_to_ns(o.drain);
    }
    const bool sending = now < end;
    for (auto& s : sockets) {
      if (!sending) break;
      if (s.outstanding > 0 && now - s.last_progress > kGiveUpNs) {
        lost += s.outstanding;
        s.outstanding = 0;
        s.last_progress = now;
      }
      const uint32_t k = std::min(per_socket - std::min(per_socket, s.outstanding), batch_size);
      for (uint32_t j = 0; j < k; ++j) {
        uint8_t* p = out.slot(j);
        std::memcpy(p, templ.data(), templ.size());
        stun::store_u16(p + kTxidOffset, s.index);
        stun::store_u16(p + kTxidOffset + 2, s.counter++);
        std::memcpy(p + kTxidOffset + 4, &now, 8);
        out.prepare(j, templ.size());
      }
      const int n = out.send(s.fd, k);
      if (n < 0) {
        ++send_errors;
        continue;
      }
      s.outstanding += static_cast<uint32_t>(n);
      requests_total += static_cast<uint64_t>(n);
      if (now >= measure_from) sent_measured += static_cast<uint64_t>(n);
    }
    for (uint32_t i = 0; i < count; ++i) fds[i] = pollfd{sockets[i].fd, POLLIN, 0};
    if (::poll(fds.data(), fds.size(), 2) <= 0) continue;
    now = now_ns();
    for (uint32_t i = 0; i < count; ++i) {
      if (!(fds[i].revents & POLLIN)) continue;
      Socket& s = sockets[i];
      for (int round = 0; round < 8; ++round) {
        const int n = in.receive(s.fd);
        if (n <= 0) break;
        for (int m = 0; m < n; ++m) {
          const uint8_t* p = in.slot(m);
          const size_t len = in.length(m);
          if (len < stun::kHeaderSize || stun::load_u16(p + kTxidOffset) != s.index) {
            ++foreign;
            continue;
          }
          const uint16_t type = stun::load_u16(p);
          if (type != kBindingSuccess && type != kBindingError) {
            ++foreign;
            continue;
          }
          uint64_t sent_at;
          std::memcpy(&sent_at, p + kTxidOffset + 4, 8);
          if (s.outstanding > 0) --s.outstanding;
          s.last_progress = now;
          if (type == kBindingError) {
            ++errors;
            continue;
          }
          if (sent_at >= measure_from && sent_at < end) {
            ++responses;
            latency.record(now > sent_at ? now - sent_at : 0);
          }
        }
      }
    }
  }
  close_all();

  const double seconds = static_cast<double>(end - measure_from) / 1e9;
  nlohmann::json j;
  j["mode"] = "binding";
  j["target"] = o.target.to_string();
  j["sockets"] = count;
  j["window"] = per_socket * count;
  j["duration"] = seconds;
  j["requests"] = sent_measured;
  j["requests_total"] = requests_total;
  j["responses"] = responses;
  j["error_responses"] = errors;
  j["lost"] = lost;
  j["rps"] = seconds > 0 ? static_cast<double>(responses) / seconds : 0.0;
  j["latency_us"] = {{"p50", static_cast<double>(latency.quantile(0.5)) / 1e3},
                     {"p99", static_cast<double>(latency.quantile(0.99)) / 1e3},
                     {"max", static_cast<double>(latency.max()) / 1e3}};
  j["send_errors"] = send_errors;
  j["foreign"] = foreign;
  return j;
}

}  // namespace ferry::bench
