// Everything the command line sets (main.cpp documents each flag).
#pragma once

#include <cstdint>
#include <string>

#include "stun/transport_address.h"

namespace ferry::bench {

enum class Mode {
  Relay,     // N allocations relay stamped packets to the in-process sink
  Raw,       // the same packets as plain UDP to a forwarder (the machine's ceiling)
  Binding,   // STUN Binding requests/s
  Allocate,  // authenticated Allocate (+ delete) cycles/s
  Churn,     // a steady relay rate over allocations created, refreshed, expired and deleted all along
};

enum class Framing { Channel, Send };          // ChannelData or Send indications
enum class ClientTransport { Udp, Tcp, Tls };  // relay: the client leg (TURN over UDP, TCP or TLS, RFC 8656 §12.5)
// relay: the peer leg. Tcp: RFC 6062 TCP allocations, each with a Connect to the sink's TCP listener
// and a data connection (ConnectionBind) that carries the bare payloads; needs a TCP or TLS client leg.
enum class PeerTransport { Udp, Tcp };

struct Options {
  Mode mode = Mode::Relay;
  stun::TransportAddress target;
  bool allow_remote = false;
  std::string user;
  std::string password;  // from the environment variable --password-env names

  uint32_t allocations = 1;  // relay/raw: streams; binding: sockets; allocate: transactions in flight
  Framing framing = Framing::Channel;
  ClientTransport transport = ClientTransport::Udp;
  PeerTransport peer_transport = PeerTransport::Udp;
  size_t size = 100;      // payload bytes per packet (the relayed UDP payload; TCP peer legs: a record)
  double rate = 0;        // packets/s over all streams; 0 = as fast as the window allows
  uint32_t window = 256;  // rate 0: packets in flight over all streams
  double duration = 5;    // seconds of load
  double warmup = 0.5;    // seconds at the start not counted
  double drain = 0.3;     // seconds to wait for stragglers after the last send
  uint32_t batch = 32;    // datagrams per sendmmsg
  uint32_t sender_threads = 1;
  uint32_t client_ips = 16;  // loopback source addresses 127.0.0.1..N (servers steer by source IP)
  std::string sink = "127.0.0.1:0";
  double hold = 0;               // relay: seconds to keep the allocations idle after setup (memory probes)
  uint32_t lifetime = 600;       // LIFETIME asked for in Allocate
  double churn_life = 5;         // churn: seconds an allocation relays (0.5x..1.5x) before it ends
  uint32_t expire_lifetime = 4;  // churn: LIFETIME of the allocations left to expire
  uint32_t setup_concurrency = 64;
  uint64_t max_count = 0;      // binding/allocate: stop after this many successes (0: duration decides)
  double rto = 0.5;            // first retransmission timeout of a request (RFC 8489 §6.2.1), doubling
  uint32_t transmissions = 5;  // per request, the first one included
  bool json = false;
};

}  // namespace ferry::bench
