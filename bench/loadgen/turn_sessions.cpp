#include "bench/loadgen/turn_sessions.h"

#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cerrno>

#include "bench/loadgen/clock.h"
#include "bench/loadgen/tcp_io.h"
#include "bench/loadgen/text.h"
#include "stun/constants.h"

namespace ferry::bench {

using client::Outcome;

std::string_view to_string(Step s) {
  switch (s) {
    case Step::Allocate: return "Allocate";
    case Step::Permission: return "CreatePermission";
    case Step::ChannelBind: return "ChannelBind";
    case Step::Delete: return "Refresh(0)";
    case Step::Refresh: return "Refresh";
    case Step::Connect: return "Connect";
    case Step::ConnectionBind: return "ConnectionBind";
  }
  return "?";
}

namespace {

constexpr uint16_t kAllocationMismatch = 437;  // RFC 8656 §18: no allocation for this 5-tuple

}  // namespace

void SessionDriver::transmit(Session& s) {
  // Errors (ECONNREFUSED after an ICMP from a dead server, a full buffer) look like loss: the RTO
  // resends and eventually gives up. Over TCP a request is written once, whole (a part would break
  // the stream's framing), and only the timeout follows.
  if (params_.stream) {
    if (s.transmissions == 0) (void)send_all(s.fd, s.ssl, s.request.data(), s.request.size(), 100);
  } else {
    (void)::send(s.fd, s.request.data(), s.request.size(), MSG_DONTWAIT);
  }
  ++s.transmissions;
  s.deadline_ns = now_ns() + s.rto_ns;
}

bool SessionDriver::send_step(Session& s, DriveResult& r) {
  std::array<uint8_t, 1500> buf;
  stun::Result<stun::Bytes> built = stun::Error::NoSpace;
  const uint32_t lifetime = s.lifetime != 0 ? s.lifetime : params_.lifetime;
  switch (s.steps[s.next]) {
    case Step::Allocate: {
      client::AllocateOptions o;
      o.lifetime = lifetime;
      o.requested_family = params_.requested_family;
      o.transport = params_.requested_transport;
      built = s.client->allocate_request(buf, o);
      break;
    }
    case Step::Permission: built = s.client->create_permission_request(buf, {params_.peer}); break;
    case Step::ChannelBind: built = s.client->channel_bind_request(buf, params_.channel, params_.peer); break;
    case Step::Delete: built = s.client->refresh_request(buf, 0u); break;
    case Step::Refresh: built = s.client->refresh_request(buf, lifetime); break;
    case Step::Connect: built = s.client->connect_request(buf, params_.peer); break;
    case Step::ConnectionBind: built = s.client->connection_bind_request(buf, s.connection_id); break;
  }
  if (!built) {
    fail(s, cat("building ", to_string(s.steps[s.next]), ": ", stun::to_string(built.error())), r);
    return false;
  }
  s.request.assign(built->begin(), built->end());
  s.txid = s.client->last_transaction_id();
  s.step_started_ns = now_ns();
  s.rto_ns = params_.rto_ns;
  s.transmissions = 0;
  ++r.requests;
  transmit(s);
  return true;
}

void SessionDriver::fail(Session& s, std::string why, DriveResult& r) {
  s.failed = true;
  s.error = std::move(why);
  ++r.failed;
  ++r.errors[s.error];
}

bool SessionDriver::on_datagram(Session& s, stun::Bytes packet, uint64_t now, DriveResult& r,
                                const StepDone& step_done) {
  if (client::classify(packet) != client::PacketKind::Stun) return false;  // stray data
  client::Response resp = s.client->on_response(packet);
  const Step step = s.steps[s.next];
  switch (resp.outcome) {
    case Outcome::Discarded: return false;  // a duplicate answer to a retransmission, or garbage
    case Outcome::Retry: {
      std::array<uint8_t, 1500> buf;
      auto built = s.client->retry(buf, resp.transaction_id);
      if (!built) {
        fail(s, cat(to_string(step), ": retry: ", stun::to_string(built.error())), r);
        return true;
      }
      ++r.auth_retries;
      ++r.requests;
      s.request.assign(built->begin(), built->end());
      s.txid = s.client->last_transaction_id();
      s.rto_ns = params_.rto_ns;
      s.transmissions = 0;
      transmit(s);
      return false;
    }
    case Outcome::Error:
      if (step == Step::Delete && resp.error_code == kAllocationMismatch) {
        s.allocated = false;  // already gone (expired): nothing left to delete
        s.gone = true;
        break;
      }
      fail(s, cat(to_string(step), ": ", std::to_string(resp.error_code), " ", resp.reason), r);
      return true;
    case Outcome::Success:
      if (step == Step::Allocate) {
        s.allocated = true;
        if (!resp.relayed.empty()) s.relayed = resp.relayed.front();
      }
      if (step == Step::Delete) s.allocated = false;
      if (step == Step::Connect) {
        if (!resp.connection_id) {
          fail(s, "Connect: success without CONNECTION-ID", r);
          return true;
        }
        s.connection_id = *resp.connection_id;
      }
      break;
  }
  if (step_done) step_done(s, step, now, now - s.step_started_ns);
  ++s.next;
  if (s.next == s.steps.size()) {
    ++r.completed;
    return true;
  }
  return !send_step(s, r);
}

bool SessionDriver::begin(Session& s, DriveResult& r) {
  s.next = 0;
  if (s.steps.empty()) {
    ++r.completed;
    return true;
  }
  return !send_step(s, r);
}

bool SessionDriver::read_stream(Session& s, uint64_t now, DriveResult& r, const StepDone& step_done) {
  std::array<uint8_t, 2048> buf;
  // TLS may hold decrypted bytes poll() does not see: read until nothing is left (bounded).
  ssize_t got = 0;
  for (int n = 0; n < 16; ++n) {
    got = stream_recv(s.fd, s.ssl, buf.data(), buf.size());
    if (got <= 0) break;
    s.rx.insert(s.rx.end(), buf.begin(), buf.begin() + got);
  }
  // Every whole frame the stream holds, in order, even when the server closed the connection
  // after them (ferry did so after answering a Refresh(0) over TLS).
  size_t used = 0;
  bool finished = false;
  while (!finished) {
    const size_t len = stream_frame_length(s.rx.data() + used, s.rx.size() - used);
    if (len == SIZE_MAX) {
      fail(s, cat(to_string(s.steps[s.next]), ": not STUN or ChannelData on the TCP stream"), r);
      return true;
    }
    if (len == 0 || s.rx.size() - used < len) break;
    finished = on_datagram(s, stun::Bytes(s.rx.data() + used, len), now, r, step_done);
    used += len;
  }
  s.rx.erase(s.rx.begin(), s.rx.begin() + static_cast<std::ptrdiff_t>(used));
  if (finished) return true;
  if (got == 0 || (got < 0 && got != -EAGAIN)) {
    fail(s, cat(to_string(s.steps[s.next]), got == 0 ? ": connection closed by the server" : ": recv failed"), r);
    return true;
  }
  return false;
}

bool SessionDriver::service(Session& s, bool readable, uint64_t now, DriveResult& r, const StepDone& step_done) {
  std::array<uint8_t, 2048> buf;
  if (readable && params_.stream) {
    if (read_stream(s, now, r, step_done)) return true;
  } else if (readable) {
    for (int n = 0; n < 16; ++n) {  // a few datagrams per pass, then the others
      const ssize_t got = ::recv(s.fd, buf.data(), buf.size(), MSG_DONTWAIT);
      if (got < 0) break;  // EAGAIN, or ECONNREFUSED (ICMP): the RTO deals with it
      if (on_datagram(s, stun::Bytes(buf.data(), static_cast<size_t>(got)), now, r, step_done)) return true;
    }
  }
  if (s.deadline_ns > now) return false;
  if (s.transmissions >= params_.transmissions) {
    fail(s, cat(to_string(s.steps[s.next]), ": timeout"), r);
    return true;
  }
  ++r.retransmissions;
  s.rto_ns *= 2;
  transmit(s);
  return false;
}

DriveResult SessionDriver::drive(const Next& next, const Done& done, const StepDone& step_done, uint64_t start_until_ns,
                                 uint64_t hard_deadline_ns) {
  DriveResult r;
  std::vector<Session*> active;
  std::vector<pollfd> fds;
  auto finish = [&](size_t i) {
    Session* s = active[i];
    active[i] = active.back();
    active.pop_back();
    done(*s);
  };
  // Bounded by hard_deadline_ns: every pass through the loop waits at most 20 ms.
  while (true) {
    uint64_t now = now_ns();
    if (now >= hard_deadline_ns) break;
    bool more = now < start_until_ns;  // next() is asked on every pass (a Done may have made more)
    while (more && active.size() < params_.concurrency) {
      Session* s = next();
      if (s == nullptr) {
        more = false;
        break;
      }
      if (begin(*s, r)) {
        done(*s);
      } else {
        active.push_back(s);
      }
    }
    if (active.empty() && !more) break;

    uint64_t wake = hard_deadline_ns;
    fds.resize(active.size());
    for (size_t i = 0; i < active.size(); ++i) {
      fds[i] = pollfd{active[i]->fd, POLLIN, 0};
      wake = std::min(wake, active[i]->deadline_ns);
    }
    const int timeout_ms = wake <= now ? 0 : static_cast<int>(std::min<uint64_t>((wake - now) / 1'000'000 + 1, 20));
    const int ready = ::poll(fds.data(), fds.size(), timeout_ms);
    now = now_ns();
    // Walk backwards so finish(i) (swap with the last) never skips an unvisited session.
    for (size_t i = active.size(); i-- > 0;) {
      const bool readable = ready > 0 && (fds[i].revents & (POLLIN | POLLERR)) != 0;
      if (service(*active[i], readable, now, r, step_done)) finish(i);
    }
  }
  for (size_t i = active.size(); i-- > 0;) {
    fail(*active[i], cat(to_string(active[i]->steps[active[i]->next]), ": deadline"), r);
    finish(i);
  }
  return r;
}

}  // namespace ferry::bench
