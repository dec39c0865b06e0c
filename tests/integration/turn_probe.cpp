// ferry_turn_probe: one TURN client on one UDP 5-tuple, driven line by line from stdin, so an
// integration test can hold an allocation open across a server event (a SIGTERM drain) and make
// requests when it wants. It is the project's sans-I/O TurnClient on a blocking socket.
//
//   ferry_turn_probe HOST PORT USER PASSWORD      (the password comes from the test's own config)
//   stdin:  allocate | refresh SECONDS | quit
//   stdout: "allocate ok RELAYED-ADDRESS", "refresh ok LIFETIME",
//           "<method> error CODE [alternate=IP:PORT] REASON", or "<method> timeout"
#include <arpa/inet.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <cstdio>
#include <iostream>
#include <sstream>
#include <string>

#include "client/turn_client.h"
#include "stun/attributes.h"
#include "stun/message.h"

using namespace ferry;

namespace {

int open_socket(const stun::TransportAddress& server) {
  sockaddr_storage ss{};
  socklen_t len = 0;
  if (server.is_v4()) {
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    a->sin_family = AF_INET;
    a->sin_port = htons(server.port);
    std::memcpy(&a->sin_addr, server.ip.data(), 4);
    len = sizeof(sockaddr_in);
  } else {
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(server.port);
    std::memcpy(&a->sin6_addr, server.ip.data(), 16);
    len = sizeof(sockaddr_in6);
  }
  const int fd = ::socket(ss.ss_family, SOCK_DGRAM, 0);
  if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) return -1;
  return fd;
}

// Sends `request` (resending it every 500 ms, 4 times at most) until a response for it arrives.
std::optional<std::vector<uint8_t>> transact(int fd, client::TurnClient& c, stun::Bytes request) {
  const auto txid = c.last_transaction_id();
  std::array<uint8_t, 4096> in{};
  for (int attempt = 0; attempt < 4; ++attempt) {
    if (::send(fd, request.data(), request.size(), 0) < 0) return std::nullopt;
    pollfd p{fd, POLLIN, 0};
    while (::poll(&p, 1, 500) > 0) {
      const ssize_t n = ::recv(fd, in.data(), in.size(), 0);
      if (n <= 0) break;
      auto v = stun::MessageView::parse(stun::Bytes(in.data(), static_cast<size_t>(n)));
      if (!v || !std::equal(txid.begin(), txid.end(), v->transaction_id().begin())) continue;
      return std::vector<uint8_t>(in.begin(), in.begin() + n);
    }
  }
  return std::nullopt;
}

void report(const std::string& method, const client::Response& r, const std::vector<uint8_t>& raw) {
  if (r.outcome == client::Outcome::Success) {
    if (method == "allocate")
      std::cout << "allocate ok " << (r.relayed.empty() ? "?" : r.relayed[0].to_string()) << "\n";
    else std::cout << method << " ok " << r.lifetime.value_or(0) << "\n";
    return;
  }
  std::cout << method << " error " << r.error_code;
  if (auto v = stun::MessageView::parse(stun::Bytes(raw))) {
    if (auto a = v->find(stun::attr::AlternateServer)) {
      if (auto addr = stun::decode_address(a->value)) std::cout << " alternate=" << addr->to_string();
    }
  }
  std::cout << " " << client::to_string(r.outcome) << " " << r.reason << "\n";
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 5) {
    std::cerr << "usage: ferry_turn_probe HOST PORT USER PASSWORD\n";
    return 2;
  }
  auto ip = stun::TransportAddress::parse_ip(argv[1]);
  if (!ip) {
    std::cerr << "bad host\n";
    return 2;
  }
  ip->port = static_cast<uint16_t>(std::stoi(argv[2]));
  const int fd = open_socket(*ip);
  if (fd < 0) {
    std::perror("socket");
    return 1;
  }
  client::TurnClientConfig cfg;
  cfg.username = argv[3];
  cfg.password = argv[4];
  client::TurnClient c(cfg);
  std::array<uint8_t, 2048> buf{};
  std::string line;
  while (std::getline(std::cin, line)) {
    std::istringstream words(line);
    std::string cmd;
    words >> cmd;
    if (cmd == "quit") break;
    stun::Result<stun::Bytes> req = stun::Error::Missing;
    if (cmd == "allocate") {
      req = c.allocate_request(buf);
    } else if (cmd == "refresh") {
      uint32_t seconds = 600;
      words >> seconds;
      req = c.refresh_request(buf, seconds);
    } else {
      std::cout << cmd << " unknown\n" << std::flush;
      continue;
    }
    client::Response r;
    std::vector<uint8_t> raw;
    for (int round = 0; round < 4; ++round) {
      if (!req) break;
      auto answer = transact(fd, c, *req);
      if (!answer) break;
      raw = std::move(*answer);
      r = c.on_response(raw);
      if (r.outcome != client::Outcome::Retry) break;
      req = c.retry(buf, r.transaction_id);
    }
    if (raw.empty()) std::cout << cmd << " timeout\n";
    else report(cmd, r, raw);
    std::cout << std::flush;
  }
  ::close(fd);
  return 0;
}
