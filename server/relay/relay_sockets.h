// The relay sockets of one worker, indexed by the core's RelayId so a peer datagram finds its
// allocation without a lookup. Each reads into the worker's receive area with the core's
// headroom in front, so the core frames the payload for the client in place.
#pragma once

#include <vector>

#include <uv.h>

#include "base/clock.h"
#include "server/net/udp_socket.h"
#include "turn/io.h"

namespace ferry::server {

class RelaySockets {
 public:
  // `clock` (the worker's) paces the warnings.
  RelaySockets(uv_loop_t* loop, const Clock& clock, const ReceiveArea& area, DatagramHandler& handler)
      : loop_(loop), clock_(clock), area_(area), handler_(handler) {}
  ~RelaySockets() { close_all(); }
  RelaySockets(const RelaySockets&) = delete;
  RelaySockets& operator=(const RelaySockets&) = delete;

  turn::OpenRelayResult open(turn::RelayId id, const stun::TransportAddress& local, bool dont_fragment);
  void close(turn::RelayId id);  // unknown or already closed ids are ignored
  void close_all();
  // Through the receive area's SendBatch when possible (see UdpSocket::send_relayed); an unknown
  // or closed id counts as dropped.
  void send_relayed(turn::RelayId id, const stun::TransportAddress& peer, stun::Bytes bytes, Counter& dropped) {
    if (id >= sockets_.size() || sockets_[id] == nullptr) {
      dropped.add();
      return;
    }
    sockets_[id]->send_relayed(peer, bytes, dropped);
  }
  size_t open_count() const;

 private:
  uv_loop_t* loop_;
  const Clock& clock_;
  ReceiveArea area_;
  DatagramHandler& handler_;
  std::vector<UdpSocket*> sockets_;  // null: free slot
  Instant last_warning_{};
};

}  // namespace ferry::server
