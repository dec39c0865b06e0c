#include "server/relay/relay_sockets.h"

#include <algorithm>
#include <chrono>

#include <spdlog/spdlog.h>

namespace ferry::server {

turn::OpenRelayResult RelaySockets::open(turn::RelayId id, const stun::TransportAddress& local, bool dont_fragment) {
  if (id < sockets_.size() && sockets_[id] != nullptr) close(id);  // the core reuses a slot only once freed
  int error = 0;
  UdpSocket* s =
      UdpSocket::open(loop_, local, SocketOptions{.reuse_port = false, .dont_fragment = dont_fragment}, &error);
  if (s == nullptr) {
    // Someone else holds the port: the core picks another. Anything else (EMFILE, ENOBUFS,
    // EADDRNOTAVAIL) will not get better by trying other ports.
    if (error == UV_EADDRINUSE || error == UV_EACCES) return turn::OpenRelayResult::PortInUse;
    // The client gets 508, which max_allocations gives too: say which it was, at most every 10 s.
    const Instant now = clock_.now();
    if (now - last_warning_ >= std::chrono::seconds(10)) {
      last_warning_ = now;
      spdlog::warn(
          "cannot open a relay socket on {}: {} (Allocate answered 508; raise the descriptor limit, "
          "ulimit -n, if it is EMFILE)",
          local.to_string(), uv_strerror(error));
    }
    return turn::OpenRelayResult::NoResources;
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
