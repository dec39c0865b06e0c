// Many TURN sessions at once, each one UDP (or TCP, or TLS) socket and one sans-I/O TurnClient (client/), driven
// through a list of requests: Allocate, CreatePermission, ChannelBind, Refresh, Refresh(LIFETIME 0), and for
// RFC 6062 TCP allocations Connect (on the control connection) and ConnectionBind (on a data connection). The
// client handles the 401/438 challenges (RFC 8489 §9.2); this driver owns the sockets, resends a
// request's very bytes on its RTO (§6.2.1, doubling; over TCP it only waits as long, §6.2.2) and
// keeps at most `concurrency` sessions busy.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "client/turn_client.h"
#include "stun/transport_address.h"

struct ssl_st;  // OpenSSL's SSL (TLS client legs)

namespace ferry::bench {

enum class Step : uint8_t { Allocate, Permission, ChannelBind, Delete, Refresh, Connect, ConnectionBind };
std::string_view to_string(Step s);

struct Session {
  int fd = -1;         // bound and connected to the server
  uint32_t index = 0;  // the caller's name for it
  std::unique_ptr<client::TurnClient> client;
  std::vector<Step> steps;
  size_t next = 0;         // index into steps of the request in flight
  bool allocated = false;  // an Allocate succeeded and no Delete yet
  bool gone = false;       // a Delete was answered 437: the allocation had already expired
  uint32_t lifetime = 0;   // LIFETIME for Allocate and Refresh; 0: SessionParams::lifetime
  bool failed = false;
  std::string error;
  stun::TransportAddress relayed;
  uint32_t connection_id = 0;  // RFC 6062: from the Connect's success; what ConnectionBind names
  std::vector<uint8_t> rx;     // TCP/TLS: received bytes not yet a whole frame
  ssl_st* ssl = nullptr;       // TLS: the session over fd (its owner frees it)

  // The request in flight.
  std::vector<uint8_t> request;
  stun::TransactionId txid{};
  uint64_t step_started_ns = 0;  // first transmission of this step (before any 401)
  uint64_t deadline_ns = 0;      // next retransmission
  uint64_t rto_ns = 0;
  uint32_t transmissions = 0;
};

// The channel every session binds to its peer (one peer per session, so one number will do).
inline constexpr uint16_t kBenchChannel = 0x4000;

struct SessionParams {
  stun::TransportAddress peer;  // CreatePermission/ChannelBind/Connect target
  uint16_t channel = kBenchChannel;
  uint32_t lifetime = 600;
  uint64_t rto_ns = 500'000'000;
  uint32_t transmissions = 5;
  uint32_t concurrency = 64;
  bool stream = false;                                // the sessions' sockets are TCP or TLS (RFC 8656 §12.5 framing)
  std::optional<stun::Family> requested_family;       // REQUESTED-ADDRESS-FAMILY (RFC 6156): an IPv6 peer
  uint8_t requested_transport = stun::kTransportUdp;  // REQUESTED-TRANSPORT; kTransportTcp: RFC 6062
};

struct DriveResult {
  uint64_t completed = 0;  // sessions through every step
  uint64_t failed = 0;
  uint64_t requests = 0;  // first transmissions, auth retries included
  uint64_t retransmissions = 0;
  uint64_t auth_retries = 0;               // 401/438 answered with a new request
  std::map<std::string, uint64_t> errors;  // "Allocate: 508 Insufficient Capacity" -> count
};

class SessionDriver {
 public:
  explicit SessionDriver(SessionParams params) : params_(std::move(params)) {}

  // A session to start (socket ready, steps set), or nullptr when there is none now. It is asked
  // again on every pass while sessions are busy, so a Done may make more (a data connection after
  // its control connection's Connect).
  using Next = std::function<Session*()>;
  // Called once per session, after its last step or its failure.
  using Done = std::function<void(Session&)>;
  // Called at each step's success; `latency_ns` runs from the step's first transmission.
  using StepDone = std::function<void(Session&, Step, uint64_t now_ns, uint64_t latency_ns)>;

  // Starts sessions until `start_until_ns` (and while next() has some) and runs them until they are
  // done or `hard_deadline_ns` passes; sessions still busy then fail with "deadline".
  DriveResult drive(const Next& next, const Done& done, const StepDone& step_done, uint64_t start_until_ns,
                    uint64_t hard_deadline_ns);

  // The same one session at a time, for callers with their own loop (churn_run.cpp). begin() sends
  // the first of `s.steps`; service() reads what `s.fd` has when `readable` and retransmits or gives
  // up when the RTO has passed. Both return true when the session is finished (every step done,
  // or failed).
  bool begin(Session& s, DriveResult& r);
  bool service(Session& s, bool readable, uint64_t now, DriveResult& r, const StepDone& step_done);

 private:
  bool send_step(Session& s, DriveResult& r);
  void transmit(Session& s);
  // Handles one datagram from the server; true when the session is finished.
  bool on_datagram(Session& s, stun::Bytes packet, uint64_t now, DriveResult& r, const StepDone& step_done);
  // TCP/TLS: reads what the stream has and handles its whole frames; true when the session is finished.
  bool read_stream(Session& s, uint64_t now, DriveResult& r, const StepDone& step_done);
  void fail(Session& s, std::string why, DriveResult& r);

  SessionParams params_;
};

}  // namespace ferry::bench
