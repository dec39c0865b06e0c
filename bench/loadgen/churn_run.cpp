// Churn: a steady relay rate while the allocations carrying it come and go, for soak runs
// (bench/soak) and leak checks (tests/integration/test_churn_leaks.py).
//
// -n allocations are live at any time. Each one is created (Allocate, CreatePermission and
// ChannelBind to the sink), relays its share of --rate for about --churn-life seconds (uniform in
// 0.5x..1.5x) and then ends in one of three ways, in turn:
//   delete   Refresh(LIFETIME 0) (RFC 8656 §7.3);
//   refresh  a Refresh with --lifetime half-way through its life, then delete;
//   expire   asks for LIFETIME --expire-lifetime, stops sending half-way through that, and is left
//            to expire (§7.3: the server frees it when the lifetime runs out). Its socket stays
//            open until 2 s past the lifetime and then asks Refresh(0): 437 Allocation Mismatch
//            confirms the server had freed it (counted as expired, anything else as not expired).
//            The server grants the lifetime only if its limits.default_lifetime is not above it.
// Every ended allocation is replaced by a new one from a fresh socket (a new 5-tuple), so the
// server keeps creating, refreshing, expiring and deleting allocations for the whole --duration.
// Payloads are stamped like relay mode's; the sink counts them per allocation.
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <memory>
#include <random>
#include <stdexcept>
#include <vector>

#include "bench/loadgen/addresses.h"
#include "bench/loadgen/clock.h"
#include "bench/loadgen/latency_histogram.h"
#include "bench/loadgen/runs.h"
#include "bench/loadgen/sink.h"
#include "bench/loadgen/stamp.h"
#include "bench/loadgen/text.h"
#include "bench/loadgen/turn_sessions.h"
#include "bench/loadgen/udp_io.h"
#include "client/turn_client.h"
#include "stun/channel_data.h"

namespace ferry::bench {

namespace {

constexpr uint64_t kExpiryGraceNs = 2'000'000'000;  // past the lifetime before asking whether it is gone

enum class Fate : uint8_t { Delete, Refresh, Expire };

enum class Phase : uint8_t {
  Setup,       // Allocate, CreatePermission, ChannelBind in flight
  Relaying,    // sending its share until phase_end
  Refreshing,  // Refresh in flight, still sending
  Deleting,    // Refresh(0) in flight
  Expiring,    // silent until phase_end, then Probing
  Probing,     // Refresh(0) in flight, 437 expected
};

struct Churner {
  Session s;
  Fate fate = Fate::Delete;
  Phase phase = Phase::Setup;
  bool refreshed = false;
  uint64_t life_ns = 0;
  uint64_t phase_end = 0;
  uint64_t allocated_at = 0;
  std::vector<uint8_t> frame;  // ChannelData around a stamped payload
  size_t stamp_offset = 0;
  uint64_t seq = 0;

  bool busy() const {
    return phase == Phase::Setup || phase == Phase::Refreshing || phase == Phase::Deleting || phase == Phase::Probing;
  }
  bool sending() const { return phase == Phase::Relaying || phase == Phase::Refreshing; }
};

struct Counts {
  uint64_t started = 0;
  uint64_t allocated = 0;
  uint64_t refreshed = 0;
  uint64_t deleted = 0;
  uint64_t expired = 0;      // Refresh(0) after the lifetime got 437
  uint64_t not_expired = 0;  // ... got a success: the server still had it
  uint64_t failed = 0;
  uint64_t socket_errors = 0;
  uint64_t sent_measured = 0;
  uint64_t dropped_local = 0;  // EAGAIN/ENOBUFS on our own socket
  uint64_t send_errors = 0;
  uint64_t session_cap_hit = 0;  // replacements not started: the sink's stream table is full
};

}  // namespace

nlohmann::json run_churn(const Options& o) {
  if (o.size < kStampSize) throw std::runtime_error(cat("--size must be at least ", std::to_string(kStampSize)));
  if (o.churn_life <= 0) throw std::runtime_error("--churn-life must be above 0");
  const double rate = o.rate > 0 ? o.rate : 1000.0;
  const uint32_t live_target = std::max<uint32_t>(o.allocations, 1);
  const uint64_t life_ns = seconds_to_ns(o.churn_life);
  const uint64_t expire_ns = static_cast<uint64_t>(o.expire_lifetime) * kNsPerSecond;

  // Every allocation is one stream of the sink. A slot of -n turns over at most every 0.5 * life
  // (the expiring ones every half lifetime, if shorter); allocations that fail sooner only use up
  // the table earlier (session_cap_hit), which also keeps a refusing server from being hammered.
  const double run_s = o.warmup + o.duration;
  const double shortest = std::min(0.5 * o.churn_life, 0.5 * o.expire_lifetime);
  const auto max_sessions = static_cast<uint64_t>(std::min(2e6, live_target * (2.0 + std::ceil(run_s / shortest))));

  std::string err;
  const auto sink_addr = stun::TransportAddress::parse(o.sink);
  if (!sink_addr) throw std::runtime_error(cat("--sink: not IP:PORT: ", o.sink));
  const int sink_fd = open_udp(*sink_addr, UdpOptions{}, err);
  if (sink_fd < 0) throw std::runtime_error(cat("sink: ", err));
  Sink sink(sink_fd, static_cast<uint32_t>(max_sessions), 65536);
  const stun::TransportAddress peer = local_address(sink_fd);

  SessionParams sp;
  sp.peer = peer;
  sp.channel = kBenchChannel;
  sp.lifetime = o.lifetime;
  sp.rto_ns = seconds_to_ns(o.rto);
  sp.transmissions = o.transmissions;
  SessionDriver driver(sp);
  client::TurnClientConfig cc;
  cc.username = o.user;
  cc.password = o.password;

  std::mt19937_64 rng(0x5eed);  // reproducible lives
  std::uniform_real_distribution<double> spread(0.5, 1.5);
  Counts c;
  LatencyHistogram allocate_latency;  // Allocate's first request to its success, the 401 included
  DriveResult r;                      // request counts and errors of every session
  std::vector<std::unique_ptr<Churner>> live;
  uint64_t serial = 0;

  const uint64_t t0 = now_ns() + 20'000'000;
  const uint64_t measure_from = t0 + seconds_to_ns(o.warmup);
  const uint64_t end = measure_from + seconds_to_ns(o.duration);
  // After `end`: no new allocations, no more packets; what is allocated is deleted.
  const uint64_t hard_end = end + seconds_to_ns(o.drain) + 10 * kNsPerSecond;
  sink.start(measure_from, hard_end + 5 * kNsPerSecond);

  auto start_one = [&]() -> bool {
    if (serial >= max_sessions) {
      ++c.session_cap_hit;
      return false;
    }
    const auto i = static_cast<uint32_t>(serial++);
    const int fd = open_udp(client_source(o, i), UdpOptions{.buffer_bytes = 0}, err);
    if (fd < 0 || !connect_udp(fd, o.target)) {
      ++c.socket_errors;
      if (fd >= 0) ::close(fd);
      return false;
    }
    auto ch = std::make_unique<Churner>();
    ch->s.fd = fd;
    ch->s.index = i;
    ch->s.client = std::make_unique<client::TurnClient>(cc);
    ch->s.steps = {Step::Allocate, Step::Permission, Step::ChannelBind};
    ch->fate = static_cast<Fate>(i % 3);
    if (ch->fate == Fate::Expire) ch->s.lifetime = o.expire_lifetime;
    ch->life_ns = static_cast<uint64_t>(static_cast<double>(life_ns) * spread(rng));
    ++c.started;
    if (driver.begin(ch->s, r)) {
      ++c.failed;
      ::close(fd);
      return false;
    }
    live.push_back(std::move(ch));
    return true;
  };
  auto begin_step = [&](Churner& ch, Step step, Phase phase) {
    ch.s.steps = {step};
    ch.phase = phase;
    return !driver.begin(ch.s, r);  // false: could not even build the request (counted as failed)
  };
  // A finished request: the next phase, or false when the churner is done.
  auto on_finished = [&](Churner& ch, uint64_t now) -> bool {
    if (ch.s.failed) {
      ++c.failed;
      if (!ch.s.allocated || ch.phase == Phase::Deleting || ch.phase == Phase::Probing) return false;
      return begin_step(ch, Step::Delete, Phase::Deleting);  // clean up after a failed Refresh
    }
    switch (ch.phase) {
      case Phase::Setup: {
        ++c.allocated;
        ch.allocated_at = now;
        std::vector<uint8_t> payload(o.size, 0xA5);
        write_stamp(payload.data(), Stamp{ch.s.index, 0, 0});
        std::vector<uint8_t> buf(o.size + 64);
        auto built = client::TurnClient::channel_data(buf, kBenchChannel, stun::Bytes(payload.data(), payload.size()));
        if (!built) throw std::runtime_error("building a ChannelData frame");
        ch.frame.assign(built->begin(), built->end());
        ch.stamp_offset = stun::kChannelDataHeaderSize;
        ch.phase = Phase::Relaying;
        uint64_t relay_for = ch.fate == Fate::Refresh ? ch.life_ns / 2 : ch.life_ns;
        if (ch.fate == Fate::Expire) relay_for = std::min(relay_for, expire_ns / 2);
        ch.phase_end = now + relay_for;
        return true;
      }
      case Phase::Refreshing:
        ++c.refreshed;
        ch.refreshed = true;
        ch.phase = Phase::Relaying;
        ch.phase_end = now + ch.life_ns / 2;
        return true;
      case Phase::Deleting:
        ++(ch.s.gone ? c.expired : c.deleted);  // gone: an expiring one deleted at the end, just too late
        return false;
      case Phase::Probing: ++(ch.s.gone ? c.expired : c.not_expired); return false;
      case Phase::Relaying:
      case Phase::Expiring: break;
    }
    return false;
  };
  // Time to move on (phase_end passed, or the run is over).
  auto on_timer = [&](Churner& ch, uint64_t now, bool over) -> bool {
    if (ch.phase == Phase::Relaying) {
      if (!over && ch.fate == Fate::Refresh && !ch.refreshed) return begin_step(ch, Step::Refresh, Phase::Refreshing);
      if (!over && ch.fate == Fate::Expire) {
        ch.phase = Phase::Expiring;
        ch.phase_end = ch.allocated_at + expire_ns + kExpiryGraceNs;
        return true;
      }
      return begin_step(ch, Step::Delete, Phase::Deleting);
    }
    if (ch.phase == Phase::Expiring) {
      if (over && now < ch.phase_end) {
        // Not expired yet and the run is over: delete it rather than wait.
        return begin_step(ch, Step::Delete, Phase::Deleting);
      }
      return begin_step(ch, Step::Delete, Phase::Probing);
    }
    return true;
  };

  std::vector<pollfd> fds;
  std::vector<Churner*> polled;
  uint64_t scheduled = 0;  // packets due since t0 that were handed to a stream (or skipped)
  size_t rr = 0;
  while (now_ns() < t0) sleep_ns(100'000);
  // Bounded by hard_end: every pass reads the clock and waits at most 1 ms.
  for (;;) {
    uint64_t now = now_ns();
    const bool over = now >= end;
    if (now >= hard_end || (over && live.empty())) break;

    // Replace what ended: -n allocations set up or relaying at any time.
    if (!over) {
      size_t active = 0;
      for (const auto& ch : live) active += ch->phase != Phase::Expiring && ch->phase != Phase::Probing;
      for (size_t k = active; k < live_target && k < active + std::max<uint32_t>(o.setup_concurrency, 1); ++k) {
        if (!start_one()) break;
      }
    }

    // Timers.
    for (size_t i = live.size(); i-- > 0;) {
      Churner& ch = *live[i];
      const bool due = (ch.phase == Phase::Relaying || ch.phase == Phase::Expiring) && (over || now >= ch.phase_end);
      if (due && !on_timer(ch, now, over)) {
        ++c.failed;
        ::close(ch.s.fd);
        live[i] = std::move(live.back());
        live.pop_back();
      }
    }

    // Packets due by now, spread over the sending allocations in turn.
    if (!over) {
      const auto due_total = static_cast<uint64_t>(rate * static_cast<double>(now - t0) / 1e9);
      uint64_t budget = due_total > scheduled ? std::min<uint64_t>(due_total - scheduled, 1024) : 0;
      scheduled = std::max(scheduled + budget, due_total > 1024 ? due_total - 1024 : 0);  // never owe a burst
      size_t senders = 0;
      for (const auto& ch : live) senders += ch->sending();
      for (size_t guard = 0; budget > 0 && senders > 0 && guard < live.size() * budget; ++guard) {
        Churner& ch = *live[rr++ % live.size()];
        if (!ch.sending()) continue;
        uint8_t* stamp = ch.frame.data() + ch.stamp_offset;
        update_stamp(stamp, ch.seq++, now);
        const ssize_t n = ::send(ch.s.fd, ch.frame.data(), ch.frame.size(), MSG_DONTWAIT);
        if (n < 0) {
          ++((errno == EAGAIN || errno == ENOBUFS) ? c.dropped_local : c.send_errors);
        } else if (now >= measure_from) {
          ++c.sent_measured;
        }
        --budget;
      }
    }

    // Responses and retransmissions of the requests in flight.
    polled.clear();
    fds.clear();
    uint64_t wake = now + 1'000'000;
    for (const auto& ch : live) {
      if (!ch->busy()) continue;
      polled.push_back(ch.get());
      fds.push_back(pollfd{ch->s.fd, POLLIN, 0});
      wake = std::min(wake, ch->s.deadline_ns);
    }
    const int timeout_ms = wake <= now ? 0 : 1;
    const int ready = ::poll(fds.data(), fds.size(), timeout_ms);
    now = now_ns();
    auto step_done = [&](Session&, Step step, uint64_t, uint64_t latency_ns) {
      if (step == Step::Allocate) allocate_latency.record(latency_ns);
    };
    for (size_t i = 0; i < polled.size(); ++i) {
      Churner& ch = *polled[i];
      const bool readable = ready > 0 && (fds[i].revents & (POLLIN | POLLERR)) != 0;
      if (!driver.service(ch.s, readable, now, r, step_done)) continue;
      if (!on_finished(ch, now)) {
        ::close(ch.s.fd);
        ch.s.fd = -1;
      }
    }
    std::erase_if(live, [](const std::unique_ptr<Churner>& ch) { return ch->s.fd < 0; });
  }
  for (auto& ch : live) ::close(ch->s.fd);
  const uint64_t left_behind = live.size();
  sleep_ns(seconds_to_ns(o.drain));
  const SinkResult got = sink.stop();

  const double seconds = o.duration;
  const uint64_t lost = c.sent_measured > got.received ? c.sent_measured - got.received : 0;
  nlohmann::json j;
  j["mode"] = "churn";
  j["target"] = o.target.to_string();
  j["allocations"] = live_target;
  j["size"] = o.size;
  j["rate_offered"] = rate;
  j["duration"] = seconds;
  j["churn_life"] = o.churn_life;
  j["lifetime"] = o.lifetime;
  j["expire_lifetime"] = o.expire_lifetime;
  j["started"] = c.started;
  j["allocated"] = c.allocated;
  j["refreshed"] = c.refreshed;
  j["deleted"] = c.deleted;
  j["expired"] = c.expired;
  j["not_expired"] = c.not_expired;
  j["failed"] = c.failed;
  nlohmann::json errors = nlohmann::json::object();
  for (const auto& [what, n] : r.errors) errors[what] = n;
  j["errors"] = errors;
  j["left_behind"] = left_behind;
  j["socket_errors"] = c.socket_errors;
  j["session_cap_hit"] = c.session_cap_hit;
  j["requests"] = r.requests;
  j["retransmissions"] = r.retransmissions;
  j["allocate_latency_us"] = {{"p50", static_cast<double>(allocate_latency.quantile(0.5)) / 1e3},
                              {"p99", static_cast<double>(allocate_latency.quantile(0.99)) / 1e3}};
  j["sent"] = c.sent_measured;
  j["received"] = got.received;
  j["lost"] = lost;
  j["loss"] = c.sent_measured == 0 ? 0.0 : static_cast<double>(lost) / static_cast<double>(c.sent_measured);
  j["pps"] = seconds > 0 ? static_cast<double>(got.received) / seconds : 0.0;
  j["latency_us"] = {{"p50", static_cast<double>(got.latency.quantile(0.5)) / 1e3},
                     {"p99", static_cast<double>(got.latency.quantile(0.99)) / 1e3},
                     {"max", static_cast<double>(got.latency.max()) / 1e3}};
  j["streams_seen"] = got.streams_seen;
  j["dropped_local"] = c.dropped_local;
  j["send_errors"] = c.send_errors;
  j["foreign"] = got.foreign;
  return j;
}

}  // namespace ferry::bench
