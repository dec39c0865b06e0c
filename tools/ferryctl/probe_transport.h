// The blocking transports of `ferryctl probe`: a connected UDP socket, a TCP connection, or TLS
// over TCP, each moving whole STUN messages and ChannelData frames (streams are framed by the
// STUN header's length and ChannelData's, padded to 4 bytes as RFC 8656 §12.5 has it). Every
// wait is bounded by a deadline; nothing here knows TURN.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "stun/bytes.h"
#include "stun/transport_address.h"

namespace ferry::ferryctl {

using ProbeClock = std::chrono::steady_clock;
using Deadline = ProbeClock::time_point;

enum class ProbeTransport { Udp, Tcp, Tls };

class ProbeConnection {
 public:
  virtual ~ProbeConnection() = default;
  // Sends one message or frame; false with `error` set when the socket failed.
  virtual bool send(stun::Bytes frame, std::string* error) = 0;
  // The next whole message or frame that arrives before `deadline`. nullopt: timed out (`error`
  // left empty) or the connection failed or closed (`error` says how).
  virtual std::optional<std::vector<uint8_t>> receive(Deadline deadline, std::string* error) = 0;
  // Streams need ChannelData padded and get no retransmissions.
  virtual bool stream() const = 0;
};

// What `ferryctl probe` reports about a TLS server's certificate.
struct CertificateReport {
  std::string subject;  // the leaf's subject and issuer, one line each (RFC 2253)
  std::string issuer;
  size_t chain_length = 0;  // certificates the server sent
  bool chain_ok = false;    // verified up to a trusted root
  std::string chain_error;  // OpenSSL's reason when not
  std::string name;         // the name checked: --servername or the URL's host
  bool name_ok = false;
  int days_left = 0;     // until notAfter, rounded down; negative: expired
  std::string protocol;  // "TLSv1.3"
};

struct TlsOptions {
  std::string server_name;  // SNI (when a DNS name) and the name the certificate must carry
  std::string ca_file;      // roots to trust instead of the system's; empty: the system's
};

// Connects to `server`. For TLS, `report` receives the certificate's findings; a certificate that
// does not verify still connects (the probe reports it and carries on), a failed handshake does not.
std::unique_ptr<ProbeConnection> connect_probe(ProbeTransport transport, const stun::TransportAddress& server,
                                               const TlsOptions& tls, Deadline deadline, std::string* error,
                                               CertificateReport* report);

// Resolves `host` (a name, or an IP in any form getaddrinfo takes) to its first address, IPv4
// preferred; nullopt with `error` set when it does not resolve.
std::optional<stun::TransportAddress> resolve_host(const std::string& host, uint16_t port, std::string* error);

}  // namespace ferry::ferryctl
