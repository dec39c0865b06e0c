// One TURN allocation over UDP used as a relay between two peers, the way a P2P sync client
// falls back to TURN when hole punching fails. It wraps the project's sans-I/O TurnClient with a
// connected UDP socket: requests are retransmitted here (RFC 8489 §6.2.1), 401/438 are retried
// with the learned credentials, and application data goes out as ChannelData (RFC 8656 §12).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "client/turn_client.h"

namespace ferry::examples {

using Clock = std::chrono::steady_clock;

class RelayLink {
 public:
  RelayLink(const stun::TransportAddress& server, client::TurnClientConfig config);
  ~RelayLink();
  RelayLink(const RelayLink&) = delete;
  RelayLink& operator=(const RelayLink&) = delete;

  bool ok() const { return fd_ >= 0; }
  const std::string& error() const { return error_; }

  // Allocate (RFC 8656 §7); the relayed address on success.
  std::optional<stun::TransportAddress> allocate(Clock::time_point deadline);
  // ChannelBind (§11): also installs the permission for `peer` (§11.1), so its data reaches us.
  bool bind_peer(const stun::TransportAddress& peer, Clock::time_point deadline);
  // Refresh with LIFETIME 0 (§7.2): frees the allocation now instead of after its lifetime.
  void release(Clock::time_point deadline);

  // Sends `data` to the bound peer as ChannelData.
  bool send(const std::vector<uint8_t>& data);
  // Waits until `deadline` for data from the bound peer; anything else is ignored.
  std::optional<std::vector<uint8_t>> receive(Clock::time_point deadline);

 private:
  // Sends `request` and waits for its response, resending on the RTO and answering 401/438.
  std::optional<client::Response> transact(stun::Result<stun::Bytes> request, Clock::time_point deadline);

  int fd_ = -1;
  client::TurnClient client_;
  std::string error_;
  std::optional<stun::TransportAddress> peer_;
  static constexpr uint16_t kChannel = 0x4000;  // the first valid channel number (RFC 8656 §12)
  std::vector<uint8_t> out_ = std::vector<uint8_t>(2048);
  std::vector<uint8_t> in_ = std::vector<uint8_t>(4096);
};

}  // namespace ferry::examples
