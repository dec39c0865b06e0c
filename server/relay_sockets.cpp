#include "server/relay_sockets.h"

#include <algorithm>

namespace ferry::server {

turn::OpenRelayResult RelaySockets::open(turn::RelayId id, const stun::TransportAddress& local, bool dont_fragment) {
  if (id < sockets_.size() && sockets_[id] != nullptr) close(id);  // the core reuses a slot only once freed
  int error = 0;
  UdpSocket* s = UdpSocket::open(loop_, local, SocketOptions{.reuse_port = false, .dont_fragment = dont_fragment},
                                 &error);
  if (s == nullptr) {
    // Someone else holds the port: the core picks another. Anything else (EMFILE, ENOBUFS,
    // EADDRNOTAVAIL) will not get better by trying other ports.
    return error == UV_EADDRINUSE || error == UV_EACCES ? turn::OpenRelayResult::PortInUse
                                                        : turn::OpenRelayResult::NoResources;
  }
  if (s->start(area_, handler_, id) != 0) {
    s->close();
    return turn::OpenRelayResult::NoResources;
  }
  if (id >= sockets_.size()) sockets_.resize(id + 1, nullptr);
  sockets_[id] = s;
  return turn::OpenRelayResult::Opened;
}

void RelaySockets::close(turn::RelayId id) {
  if (id >= sockets_.size() || sockets_[id] == nullptr) return;
  sockets_[id]->close();
  sockets_[id] = nullptr;
}

void RelaySockets::close_all() {
  for (auto*& s : sockets_) {
    if (s != nullptr) s->close();
    s = nullptr;
  }
}

size_t RelaySockets::open_count() const {
  return static_cast<size_t>(std::count_if(sockets_.begin(), sockets_.end(), [](auto* s) { return s != nullptr; }));
}

}  // namespace ferry::server
