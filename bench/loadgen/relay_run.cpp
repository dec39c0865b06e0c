// Relay throughput: N allocations (or, for the ceiling, N plain sockets to a forwarder) send
// stamped packets to the in-process sink for a bounded time.
//
// TCP peer legs (RFC 6062): each allocation is a TCP allocation on its control connection with a
// permission for the sink and a Connect to the sink's TCP listener; a data connection to the
// server, bound to the Connect's CONNECTION-ID by a ConnectionBind, then carries the stamped
// payloads back to back, which the sink cuts into records of --size bytes again.
//
// Pacing: with --rate R the senders keep to R packets/s over all streams (open loop, for latency
// at a given load). With --rate 0 they keep at most --window packets in flight (closed loop, for
// the maximum rate): in flight = sent - max(received or known lost, sent 50 ms ago). The sink
// knows a packet lost as soon as a later one of its stream arrives; the 50 ms catch the last
// packets of a stream, so a drop never stalls the window for long.
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <stdexcept>
#include <thread>
#include <vector>

#include "bench/loadgen/addresses.h"
#include "bench/loadgen/clock.h"
#include "bench/loadgen/runs.h"
#include "bench/loadgen/sink.h"
#include "bench/loadgen/stamp.h"
#include "bench/loadgen/tcp_io.h"
#include "bench/loadgen/text.h"
#include "bench/loadgen/turn_sessions.h"
#include "bench/loadgen/udp_io.h"
#include "client/turn_client.h"

namespace ferry::bench {

namespace {

constexpr uint64_t kLossTimeoutNs = 50'000'000;

// One sending socket and the frame it sends: stamp fields are rewritten per packet.
struct Stream {
  int fd = -1;
  std::vector<uint8_t> frame;
  size_t stamp_offset = 0;
  uint64_t seq = 0;
  // TCP: the frames are written as one byte string per burst; what the socket did not take waits
  // here, and the stream sends nothing new until it has gone (a frame must not be cut).
  bool tcp = false;       // TCP or TLS
  ssl_st* ssl = nullptr;  // TLS: the session's (not owned)
  std::vector<uint8_t> pending;
  size_t pending_sent = 0;
  size_t tls_retry = 0;  // TLS: the length of a write that would block, which its retry must repeat
};

constexpr size_t kMaxPending = 1 << 20;  // TCP: bytes a stream may queue before it counts drops

// TCP: writes what `s.pending` still holds; true when it is empty afterwards. -errno on an error.
int flush_pending(Stream& s) {
  while (s.pending_sent < s.pending.size()) {
    const size_t len = s.tls_retry != 0 ? s.tls_retry : s.pending.size() - s.pending_sent;
    const ssize_t n = stream_send(s.fd, s.ssl, s.pending.data() + s.pending_sent, len);
    if (n < 0) return static_cast<int>(n);
    if (n == 0) {
      if (s.ssl != nullptr) s.tls_retry = len;
      return 0;
    }
    s.tls_retry = 0;
    s.pending_sent += static_cast<size_t>(n);
  }
  s.pending.clear();
  s.pending_sent = 0;
  return 1;
}

struct SenderStats {
  uint64_t sent_warmup = 0;
  uint64_t sent_measured = 0;
  uint64_t dropped_local = 0;  // EAGAIN/ENOBUFS: our own socket buffer was full
  uint64_t send_errors = 0;    // anything else (ECONNREFUSED: nobody listens)
  int last_errno = 0;
};

struct SendPlan {
  uint64_t t0 = 0;            // first send
  uint64_t measure_from = 0;  // end of warm-up
  uint64_t end = 0;
  double rate = 0;  // this thread's share, packets/s; 0 = window
  uint32_t window = 0;
  uint32_t batch = 32;
  uint32_t min_burst = 1;  // window mode: send only when this many fit
};

// (time, sent) samples, one per millisecond at most, to find how many packets had been sent
// kLossTimeoutNs ago.
class SentHistory {
 public:
  void note(uint64_t now, uint64_t sent) {
    if (size_ != 0 && now - samples_[(head_ + size_ - 1) % kSize].first < 1'000'000) return;
    if (size_ == kSize) {
      head_ = (head_ + 1) % kSize;
      --size_;
    }
    samples_[(head_ + size_) % kSize] = {now, sent};
    ++size_;
  }
  uint64_t sent_before(uint64_t t) const {
    for (size_t i = size_; i-- > 0;) {
      const auto& s = samples_[(head_ + i) % kSize];
      if (s.first <= t) return s.second;
    }
    return 0;
  }

 private:
  static constexpr size_t kSize = 512;
  std::array<std::pair<uint64_t, uint64_t>, kSize> samples_{};
  size_t head_ = 0;
  size_t size_ = 0;
};

// TCP: k stamped frames as one write after whatever the stream still had queued. Frames that
// would push the queue past kMaxPending count as dropped locally, like a full UDP socket buffer.
void send_tcp_burst(Stream& s, size_t k, uint64_t now, const SendPlan& plan, SenderStats& st) {
  const int flushed = flush_pending(s);
  if (flushed < 0) {
    st.send_errors += k;
    st.last_errno = -flushed;
    return;
  }
  if (s.pending.size() + k * s.frame.size() > kMaxPending) {
    st.dropped_local += k;
    return;
  }
  const size_t start = s.pending.size();
  s.pending.resize(start + k * s.frame.size());
  for (size_t j = 0; j < k; ++j) {
    uint8_t* slot = s.pending.data() + start + j * s.frame.size();
    std::memcpy(slot, s.frame.data(), s.frame.size());
    update_stamp(slot + s.stamp_offset, s.seq++, now);
  }
  // Sent means handed to the stream: what TCP queues waits in the latency, not in the loss.
  (now >= plan.measure_from ? st.sent_measured : st.sent_warmup) += k;
  if (flushed == 1) {
    const int rc = flush_pending(s);
    if (rc < 0) {
      st.send_errors += k;
      st.last_errno = -rc;
    }
  }
}

void send_loop(std::vector<Stream*> streams, const SendPlan& plan, std::atomic<uint64_t>& sent_all, const Sink& sink,
               SenderStats& st) {
  if (streams.empty()) return;
  size_t max_frame = 0;
  for (const Stream* s : streams) max_frame = std::max(max_frame, s->frame.size());
  DatagramBatch batch(plan.batch, max_frame);
  SentHistory history;
  uint64_t mine = 0;
  size_t rr = 0;
  while (now_ns() < plan.t0) sleep_ns(100'000);
  // Bounded by plan.end: every pass reads the clock, and every wait is at most 200 µs.
  for (;;) {
    const uint64_t now = now_ns();
    if (now >= plan.end) break;
    int64_t budget;
    if (plan.rate > 0) {
      const auto due = static_cast<int64_t>(plan.rate * static_cast<double>(now - plan.t0) / 1e9);
      budget = due - static_cast<int64_t>(mine);
      if (budget <= 0) {
        const auto next_due_ns = static_cast<uint64_t>(1e9 / plan.rate);
        sleep_ns(std::clamp<uint64_t>(next_due_ns, 1'000, 200'000));
        continue;
      }
    } else {
      const uint64_t sent = sent_all.load(std::memory_order_relaxed);
      history.note(now, sent);
      const uint64_t settled = std::max(sink.settled_total(), history.sent_before(now - kLossTimeoutNs));
      const uint64_t in_flight = sent > settled ? sent - settled : 0;
      budget = static_cast<int64_t>(plan.window) - static_cast<int64_t>(in_flight);
      // Wait until a whole burst fits: a packet or two per sendmmsg would make the generator,
      // not the server, what is measured.
      if (budget < static_cast<int64_t>(plan.min_burst)) {
        sleep_ns(20'000);
        continue;
      }
    }
    Stream& s = *streams[rr];
    rr = (rr + 1) % streams.size();
    const size_t k = std::min<size_t>(static_cast<size_t>(budget), plan.batch);
    if (s.tcp) {
      send_tcp_burst(s, k, now, plan, st);
      mine += k;
      sent_all.fetch_add(k, std::memory_order_relaxed);
      continue;
    }
    for (size_t j = 0; j < k; ++j) {
      uint8_t* slot = batch.slot(j);
      std::memcpy(slot, s.frame.data(), s.frame.size());
      update_stamp(slot + s.stamp_offset, s.seq++, now);
      batch.prepare(j, s.frame.size());
    }
    const int n = batch.send(s.fd, k);
    if (n < 0) {
      if (n == -EAGAIN || n == -ENOBUFS) {
        st.dropped_local += k;
      } else {
        st.send_errors += k;
        st.last_errno = -n;
      }
      // Count what was not sent as sent-and-lost so the schedule moves on.
    } else if (static_cast<size_t>(n) < k) {
      st.dropped_local += k - static_cast<size_t>(n);
    }
    mine += k;
    sent_all.fetch_add(k, std::memory_order_relaxed);
    (now >= plan.measure_from ? st.sent_measured : st.sent_warmup) += n > 0 ? static_cast<uint64_t>(n) : 0;
  }
}

// Builds stream i's frame: ChannelData or a Send indication around a stamped payload of `size`
// bytes, or the bare payload for the forwarder and for an RFC 6062 data connection.
void make_frame(Stream& st, uint32_t stream_index, const Options& o, client::TurnClient* client,
                const stun::TransportAddress& peer) {
  std::vector<uint8_t> payload(o.size, 0xA5);
  write_stamp(payload.data(), Stamp{stream_index, 0, 0});
  if (o.mode == Mode::Raw || o.peer_transport == PeerTransport::Tcp) {
    st.frame = payload;
    st.stamp_offset = 0;
    st.tcp = o.mode == Mode::Relay;  // the data connection
    return;
  }
  std::vector<uint8_t> buf(o.size + 256);
  const bool tcp = o.transport != ClientTransport::Udp;
  st.tcp = tcp;
  stun::Result<stun::Bytes> built =
      o.framing == Framing::Channel
          ? client::TurnClient::channel_data(buf, kBenchChannel, stun::Bytes(payload.data(), payload.size()), tcp)
          : client->send_indication(buf, peer, stun::Bytes(payload.data(), payload.size()));
  if (!built) throw std::runtime_error(cat("building a frame: ", stun::to_string(built.error())));
  st.frame.assign(built->begin(), built->end());
  // The payload is the frame's last o.size bytes before any padding (ChannelData: after the
  // 4-byte header; Send: the DATA attribute's value, the last attribute).
  const auto* hit = static_cast<const uint8_t*>(memmem(st.frame.data(), st.frame.size(), payload.data(), kStampSize));
  if (hit == nullptr) throw std::runtime_error("stamp not found in the frame");
  st.stamp_offset = static_cast<size_t>(hit - st.frame.data());
}

double ratio(uint64_t a, uint64_t b) { return b == 0 ? 0.0 : static_cast<double>(a) / static_cast<double>(b); }

nlohmann::json errors_json(const DriveResult& r) {
  nlohmann::json e = nlohmann::json::object();
  for (const auto& [what, n] : r.errors) e[what] = n;
  return e;
}

}  // namespace

nlohmann::json run_relay(const Options& o) {
  if (o.size < kStampSize) throw std::runtime_error(cat("--size must be at least ", std::to_string(kStampSize)));
  std::string err;
  const auto sink_addr = stun::TransportAddress::parse(o.sink);
  if (!sink_addr) throw std::runtime_error(cat("--sink: not IP:PORT: ", o.sink));
  const bool tcp_peer = o.peer_transport == PeerTransport::Tcp;
  const int sink_fd = tcp_peer ? open_tcp_listener(*sink_addr, err) : open_udp(*sink_addr, UdpOptions{}, err);
  if (sink_fd < 0) throw std::runtime_error(cat("sink: ", err));
  Sink sink(sink_fd, o.allocations, 65536, tcp_peer ? o.size : 0);
  const stun::TransportAddress peer = local_address(sink_fd);

  // Sockets, one per stream, from distinct source ports.
  std::unique_ptr<ssl_ctx_st, void (*)(ssl_ctx_st*)> tls_ctx(nullptr, free_tls_context);
  if (o.transport == ClientTransport::Tls) {
    tls_ctx.reset(bench_tls_context(err));
    if (!tls_ctx) throw std::runtime_error(cat("TLS: ", err));
  }
  std::vector<std::unique_ptr<Session>> sessions;
  std::vector<std::unique_ptr<Session>> data_sessions;  // TCP peer legs: the data connections
  sessions.reserve(o.allocations);
  auto close_all = [&] {
    for (auto* list : {&sessions, &data_sessions}) {
      for (auto& s : *list) {
        free_tls(s->ssl);
        s->ssl = nullptr;
        if (s->fd >= 0) ::close(s->fd);
      }
    }
  };
  for (uint32_t i = 0; i < o.allocations; ++i) {
    auto s = std::make_unique<Session>();
    s->index = i;
    const bool tcp = o.transport != ClientTransport::Udp;
    s->fd = tcp ? open_tcp_connected(client_source(o, i), o.target, err, tls_ctx.get(), &s->ssl)
                : open_udp(client_source(o, i), UdpOptions{.buffer_bytes = 1 << 20}, err);
    if (s->fd < 0) {
      close_all();
      throw std::runtime_error(cat("client socket ", std::to_string(i), ": ", err));
    }
    if (!tcp && !connect_udp(s->fd, o.target)) {
      ::close(s->fd);
      close_all();
      throw std::runtime_error(cat("connect to ", o.target.to_string(), ": ", std::strerror(errno)));
    }
    client::TurnClientConfig cc;
    cc.username = o.user;
    cc.password = o.password;
    s->client = std::make_unique<client::TurnClient>(cc);
    s->steps = {Step::Allocate, Step::Permission};
    if (tcp_peer) {
      s->steps.push_back(Step::Connect);
    } else if (o.framing == Framing::Channel) {
      s->steps.push_back(Step::ChannelBind);
    }
    sessions.push_back(std::move(s));
  }

  SessionParams sp;
  sp.peer = peer;
  sp.channel = kBenchChannel;
  sp.lifetime = o.lifetime;
  sp.rto_ns = seconds_to_ns(o.rto);
  sp.transmissions = o.transmissions;
  sp.concurrency = std::max<uint32_t>(o.setup_concurrency, 1);
  sp.stream = o.transport != ClientTransport::Udp;
  // The relayed address must be of the peer's family (RFC 6156 §4.2): ask for IPv6 for an IPv6 sink.
  if (!peer.is_v4()) sp.requested_family = stun::Family::V6;
  if (tcp_peer) sp.requested_transport = stun::kTransportTcp;
  SessionDriver driver(sp);

  // The sink runs from here, measuring nothing yet: a TCP sink accepts the server's connections
  // during the setup.
  const uint64_t setup_start = now_ns();
  const uint64_t setup_limit =
      setup_start + std::min<uint64_t>(seconds_to_ns(10) + o.allocations * 20'000'000ull, seconds_to_ns(300));
  sink.start(UINT64_MAX, setup_limit + seconds_to_ns(o.hold + o.warmup + o.duration + o.drain + 6));

  // Setup: every allocation with its permission (and channel), or its permission, Connect and data
  // connection. A data connection starts when its control connection's Connect has succeeded.
  DriveResult setup;
  if (o.mode == Mode::Relay) {
    size_t cursor = 0;
    std::vector<Session*> binds;                  // data connections waiting to send their ConnectionBind
    std::map<std::string, uint64_t> open_errors;  // data connections that could not even be opened
    auto next = [&]() -> Session* {
      if (!binds.empty()) {
        Session* d = binds.back();
        binds.pop_back();
        return d;
      }
      return cursor < sessions.size() ? sessions[cursor++].get() : nullptr;
    };
    auto done = [&](Session& s) {
      if (!tcp_peer || s.failed || s.steps.front() != Step::Allocate) return;
      auto d = std::make_unique<Session>();
      d->index = s.index;
      d->connection_id = s.connection_id;
      d->fd = open_tcp_connected(client_source(o, s.index), o.target, err, tls_ctx.get(), &d->ssl);
      if (d->fd < 0) {
        ++open_errors[cat("data connection: ", err)];
        return;
      }
      // Signed with the control connection's nonce, as RFC 6062 clients do (a 401 or 438 is followed).
      d->client = std::make_unique<client::TurnClient>(s.client->config());
      d->client->set_auth_state(s.client->auth_state());
      d->steps = {Step::ConnectionBind};
      data_sessions.push_back(std::move(d));
      binds.push_back(data_sessions.back().get());
    };
    setup = driver.drive(next, done, nullptr, setup_limit, setup_limit);
    for (const auto& [what, n] : open_errors) {
      setup.errors[what] += n;
      setup.failed += n;
    }
  }
  const double setup_s = static_cast<double>(now_ns() - setup_start) / 1e9;

  // The streams: the client sockets, or the bound data connections.
  std::vector<Stream> streams;
  streams.reserve(sessions.size());
  for (auto& s : tcp_peer ? data_sessions : sessions) {
    if (o.mode == Mode::Relay && (s->failed || (!tcp_peer && !s->allocated))) continue;
    Stream st;
    st.fd = s->fd;
    st.ssl = s->ssl;
    make_frame(st, s->index, o, s->client.get(), peer);
    streams.push_back(std::move(st));
  }

  if (o.hold > 0) {
    // A line the caller can wait for before probing the server's memory.
    std::printf("READY allocations=%zu\n", streams.size());
    std::fflush(stdout);
    sleep_ns(seconds_to_ns(std::min(o.hold, 3600.0)));
  }

  // Load.
  SendPlan plan;
  plan.t0 = now_ns() + 20'000'000;
  plan.measure_from = plan.t0 + seconds_to_ns(o.warmup);
  plan.end = plan.measure_from + seconds_to_ns(o.duration);
  plan.window = std::max<uint32_t>(o.window, 1);
  plan.batch = std::clamp<uint32_t>(o.batch, 1, 1024);
  plan.min_burst = std::clamp<uint32_t>(plan.window / 4, 1, plan.batch);
  const uint32_t threads = std::clamp<uint32_t>(o.sender_threads, 1, std::max<size_t>(streams.size(), 1));
  plan.rate = o.rate / threads;
  std::atomic<uint64_t> sent_all{0};
  std::vector<SenderStats> stats(threads);
  sink.set_measure_from(plan.measure_from);
  if (o.duration > 0 && !streams.empty()) {
    std::vector<std::thread> senders;
    for (uint32_t t = 0; t < threads; ++t) {
      std::vector<Stream*> mine;
      for (size_t i = t; i < streams.size(); i += threads) mine.push_back(&streams[i]);
      senders.emplace_back(send_loop, std::move(mine), std::cref(plan), std::ref(sent_all), std::cref(sink),
                           std::ref(stats[t]));
    }
    for (auto& th : senders) th.join();
    // TCP: what a stream still queues goes out before the teardown's requests follow it.
    for (Stream& st : streams) {
      if (st.tcp && st.pending_sent < st.pending.size()) {
        size_t off = st.pending_sent;
        if (st.tls_retry != 0 && send_all(st.fd, st.ssl, st.pending.data() + off, st.tls_retry, 1000)) {
          off += st.tls_retry;  // the write that would block first, as TLS requires, then the rest
        }
        (void)send_all(st.fd, st.ssl, st.pending.data() + off, st.pending.size() - off, 1000);
      }
    }
    sleep_ns(seconds_to_ns(o.drain));
  }
  const SinkResult got = sink.stop();

  // Teardown: delete the allocations so the next run starts from an empty server.
  DriveResult teardown;
  if (o.mode == Mode::Relay) {
    size_t cursor = 0;
    const uint64_t limit =
        now_ns() + std::min<uint64_t>(seconds_to_ns(5) + o.allocations * 5'000'000ull, seconds_to_ns(120));
    teardown = driver.drive(
        [&]() -> Session* {
          while (cursor < sessions.size()) {
            Session* s = sessions[cursor++].get();
            if (s->allocated) {
              s->steps = {Step::Delete};
              return s;
            }
          }
          return nullptr;
        },
        [](Session&) {}, nullptr, limit, limit);
  }
  close_all();

  SenderStats total;
  for (const auto& s : stats) {
    total.sent_warmup += s.sent_warmup;
    total.sent_measured += s.sent_measured;
    total.dropped_local += s.dropped_local;
    total.send_errors += s.send_errors;
    if (s.last_errno != 0) total.last_errno = s.last_errno;
  }
  const double seconds = o.duration;
  const uint64_t lost = total.sent_measured > got.received ? total.sent_measured - got.received : 0;
  nlohmann::json j;
  j["mode"] = o.mode == Mode::Raw ? "raw" : "relay";
  j["framing"] = o.mode == Mode::Raw ? "udp"
                 : tcp_peer          ? "stream"
                                     : (o.framing == Framing::Channel ? "channel" : "send");
  j["transport"] = o.transport == ClientTransport::Tls ? "tls" : o.transport == ClientTransport::Tcp ? "tcp" : "udp";
  j["peer_transport"] = tcp_peer ? "tcp" : "udp";
  if (tcp_peer) j["peer_connections"] = got.connections;
  j["family"] = o.target.is_v4() ? "ipv4" : "ipv6";
  j["peer"] = peer.to_string();
  j["target"] = o.target.to_string();
  j["size"] = o.size;
  j["allocations"] = o.allocations;
  j["ready"] = streams.size();
  j["setup_seconds"] = setup_s;
  j["setup_failed"] = setup.failed;
  j["setup_errors"] = errors_json(setup);
  j["auth_retries"] = setup.auth_retries;
  j["duration"] = seconds;
  j["rate_offered"] = o.rate;
  j["window"] = o.rate > 0 ? 0 : plan.window;
  j["sent"] = total.sent_measured;
  j["received"] = got.received;
  j["lost"] = lost;
  j["loss"] = ratio(lost, total.sent_measured);
  j["pps"] = seconds > 0 ? static_cast<double>(got.received) / seconds : 0.0;
  j["mbps"] = seconds > 0 ? static_cast<double>(got.bytes) * 8 / seconds / 1e6 : 0.0;
  j["latency_us"] = {{"p50", static_cast<double>(got.latency.quantile(0.5)) / 1e3},
                     {"p99", static_cast<double>(got.latency.quantile(0.99)) / 1e3},
                     {"max", static_cast<double>(got.latency.max()) / 1e3}};
  j["streams_seen"] = got.streams_seen;
  j["dropped_local"] = total.dropped_local;
  j["send_errors"] = total.send_errors;
  if (total.last_errno != 0) j["last_send_error"] = std::strerror(total.last_errno);
  j["foreign"] = got.foreign;
  j["teardown_failed"] = teardown.failed;
  j["teardown_errors"] = errors_json(teardown);
  return j;
}

}  // namespace ferry::bench
