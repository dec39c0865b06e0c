#include "examples/sync_fallback/relay_link.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "stun/message.h"

namespace ferry::examples {

namespace {

int millis_until(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return static_cast<int>(std::clamp<long long>(left, 0, 60'000));
}

}  // namespace

RelayLink::RelayLink(const stun::TransportAddress& server, client::TurnClientConfig config)
    : client_(std::move(config)) {
  sockaddr_storage ss{};
  const unsigned len = server.to_sockaddr(ss);
  fd_ = ::socket(ss.ss_family, SOCK_DGRAM, 0);
  if (fd_ < 0 || ::connect(fd_, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
    error_ = std::string("socket: ") + std::strerror(errno);
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
}

RelayLink::~RelayLink() {
  if (fd_ >= 0) ::close(fd_);
}

std::optional<client::Response> RelayLink::transact(stun::Result<stun::Bytes> request, Clock::time_point deadline) {
  // RFC 8489 §6.2.1: RTO 500 ms doubling; on loopback the first try normally answers.
  for (int round = 0; round < 4 && request; ++round) {
    const auto txid = client_.last_transaction_id();
    std::chrono::milliseconds rto(500);
    std::optional<client::Response> response;
    for (int attempt = 0; attempt < 5 && !response && Clock::now() < deadline; ++attempt, rto *= 2) {
      if (::send(fd_, request->data(), request->size(), 0) < 0) {
        error_ = std::string("send: ") + std::strerror(errno);
        return std::nullopt;
      }
      const auto resend_at = std::min(deadline, Clock::now() + rto);
      while (!response) {
        pollfd p{fd_, POLLIN, 0};
        if (::poll(&p, 1, millis_until(resend_at)) <= 0) break;
        const ssize_t n = ::recv(fd_, in_.data(), in_.size(), 0);
        if (n <= 0) break;
        const stun::Bytes packet(in_.data(), static_cast<size_t>(n));
        // Peer data arriving meanwhile is dropped; the sync protocol retransmits it.
        if (client::classify(packet) != client::PacketKind::Stun) continue;
        auto view = stun::MessageView::parse(packet);
        if (!view || !std::equal(txid.begin(), txid.end(), view->transaction_id().begin())) continue;
        auto r = client_.on_response(packet);
        if (r.outcome != client::Outcome::Discarded) response = std::move(r);
      }
    }
    if (!response) {
      error_ = "no response from the server";
      return std::nullopt;
    }
    // 401 with REALM/NONCE, or 438 with a fresh nonce (RFC 8489 §9.2.4): ask again, signed.
    if (response->outcome != client::Outcome::Retry) return response;
    request = client_.retry(out_, response->transaction_id);
  }
  error_ = "the server kept refusing our credentials";
  return std::nullopt;
}

std::optional<stun::TransportAddress> RelayLink::allocate(Clock::time_point deadline) {
  auto r = transact(client_.allocate_request(out_), deadline);
  if (!r) return std::nullopt;
  if (r->outcome != client::Outcome::Success || r->relayed.empty()) {
    error_ = "allocate failed: " + std::to_string(r->error_code);
    error_ += " ";
    error_ += r->reason;
    return std::nullopt;
  }
  return r->relayed.front();
}

bool RelayLink::bind_peer(const stun::TransportAddress& peer, Clock::time_point deadline) {
  auto r = transact(client_.channel_bind_request(out_, kChannel, peer), deadline);
  if (!r) return false;
  if (r->outcome != client::Outcome::Success) {
    error_ = "channel bind failed: " + std::to_string(r->error_code);
    error_ += " ";
    error_ += r->reason;
    return false;
  }
  peer_ = peer;
  return true;
}

void RelayLink::release(Clock::time_point deadline) { (void)transact(client_.refresh_request(out_, 0), deadline); }

bool RelayLink::send(const std::vector<uint8_t>& data) {
  auto frame = client::TurnClient::channel_data(out_, kChannel, stun::Bytes(data.data(), data.size()));
  if (!frame) return false;
  return ::send(fd_, frame->data(), frame->size(), 0) == static_cast<ssize_t>(frame->size());
}

std::optional<std::vector<uint8_t>> RelayLink::receive(Clock::time_point deadline) {
  while (Clock::now() < deadline) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, millis_until(deadline)) <= 0) continue;
    const ssize_t n = ::recv(fd_, in_.data(), in_.size(), 0);
    if (n <= 0) continue;
    auto data = client_.on_peer_data(stun::Bytes(in_.data(), static_cast<size_t>(n)));
    // ChannelData on our channel, or a Data indication from the bound peer (RFC 8656 §10.3).
    if (!data || !peer_ || (data->channel && *data->channel != kChannel) || (data->peer && *data->peer != *peer_)) {
      continue;
    }
    return std::vector<uint8_t>(data->data.begin(), data->data.end());
  }
  return std::nullopt;
}

}  // namespace ferry::examples
