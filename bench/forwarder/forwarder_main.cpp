// ferry-forwarder: the machine's ceiling for relaying UDP (issue 7). It does what a TURN relay
// does at the least: receive a datagram on one socket and send the same bytes to a fixed
// destination, with recvmmsg/sendmmsg batches, one SO_REUSEPORT socket per thread. No parsing, no
// lookups; anything ferry spends beyond this is the cost of TURN.
//
//   ferry-forwarder --listen 127.0.0.1:20000 --to 127.0.0.1:20001 --threads 2 --duration 60
//
// Runs until --duration passes or SIGINT/SIGTERM; prints what it forwarded. Loopback only unless
// --allow-remote.
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <CLI/CLI.hpp>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace {

std::atomic<bool> g_stop{false};

uint64_t now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<uint64_t>(ts.tv_nsec);
}

// "IP:PORT" (IPv4, or [IPv6]:PORT) into a sockaddr; false when malformed.
bool parse(const std::string& text, sockaddr_storage& ss, socklen_t& len) {
  std::memset(&ss, 0, sizeof ss);
  const auto colon = text.rfind(':');
  if (colon == std::string::npos) return false;
  std::string host = text.substr(0, colon);
  const int port = std::atoi(text.c_str() + colon + 1);
  if (port <= 0 || port > 65535) return false;
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(static_cast<uint16_t>(port));
    len = sizeof *a;
    return inet_pton(AF_INET6, host.substr(1, host.size() - 2).c_str(), &a->sin6_addr) == 1;
  }
  auto* a = reinterpret_cast<sockaddr_in*>(&ss);
  a->sin_family = AF_INET;
  a->sin_port = htons(static_cast<uint16_t>(port));
  len = sizeof *a;
  return inet_pton(AF_INET, host.c_str(), &a->sin_addr) == 1;
}

bool is_loopback(const sockaddr_storage& ss) {
  if (ss.ss_family == AF_INET) return (ntohl(reinterpret_cast<const sockaddr_in&>(ss).sin_addr.s_addr) >> 24) == 127;
  return IN6_IS_ADDR_LOOPBACK(&reinterpret_cast<const sockaddr_in6&>(ss).sin6_addr);
}

struct Counters {
  uint64_t received = 0;
  uint64_t forwarded = 0;
  uint64_t dropped = 0;  // sendmmsg took fewer than it was given
};

constexpr size_t kBatch = 64;
constexpr size_t kSlot = 2048;  // the benchmark's datagrams are at most ~1 KB; longer ones are cut

int open_socket(const sockaddr_storage& listen, socklen_t len) {
  const int fd = ::socket(listen.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  const int one = 1, buf = 4 << 20;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  if (::setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &buf, sizeof buf) != 0)
    ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
  if (::setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &buf, sizeof buf) != 0)
    ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&listen), len) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

void forward(int fd, const sockaddr_storage& to, socklen_t to_len, uint64_t deadline, Counters& c) {
  std::vector<uint8_t> storage(kBatch * kSlot);
  mmsghdr msgs[kBatch];
  iovec iov[kBatch];
  // Bounded by the deadline and the stop flag: each wait is at most 100 ms.
  while (!g_stop.load(std::memory_order_relaxed) && now_ns() < deadline) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) continue;
    for (int round = 0; round < 64; ++round) {
      for (size_t i = 0; i < kBatch; ++i) {
        iov[i] = iovec{storage.data() + i * kSlot, kSlot};
        std::memset(&msgs[i], 0, sizeof msgs[i]);
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
      }
      const int n = ::recvmmsg(fd, msgs, kBatch, MSG_DONTWAIT, nullptr);
      if (n <= 0) break;
      c.received += static_cast<uint64_t>(n);
      for (int i = 0; i < n; ++i) {
        iov[i].iov_len = msgs[i].msg_len;
        msgs[i].msg_hdr.msg_name = const_cast<sockaddr_storage*>(&to);
        msgs[i].msg_hdr.msg_namelen = to_len;
      }
      const int sent = ::sendmmsg(fd, msgs, static_cast<unsigned>(n), MSG_DONTWAIT);
      const uint64_t ok = sent > 0 ? static_cast<uint64_t>(sent) : 0;
      c.forwarded += ok;
      c.dropped += static_cast<uint64_t>(n) - ok;  // like a router: a full queue drops
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::string listen_text, to_text;
  unsigned threads = 1;
  double duration = 60;
  bool allow_remote = false;
  CLI::App app{
      "ferry-forwarder: forwards every UDP datagram received on --listen to --to, with "
      "recvmmsg/sendmmsg; the ceiling a UDP relay on this machine can reach."};
  app.set_help_flag("-h,--help", "Print this help and exit.");
  app.add_option("--listen", listen_text, "IP:PORT to receive on")->required();
  app.add_option("--to", to_text, "IP:PORT to send every datagram to")->required();
  app.add_option("--threads", threads, "Threads, one SO_REUSEPORT socket each")
      ->check(CLI::Range(1u, 64u))
      ->default_str("1");
  app.add_option("--duration", duration, "Seconds before exiting by itself")
      ->check(CLI::Range(0.1, 86400.0))
      ->default_str("60");
  app.add_flag("--allow-remote", allow_remote, "Allow addresses outside loopback");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) { return app.exit(e); }
  sockaddr_storage listen{}, to{};
  socklen_t listen_len = 0, to_len = 0;
  if (!parse(listen_text, listen, listen_len) || !parse(to_text, to, to_len)) {
    std::fprintf(stderr, "ferry-forwarder: --listen and --to take IP:PORT ([IPv6]:PORT)\n");
    return 2;
  }
  if (!allow_remote && (!is_loopback(listen) || !is_loopback(to))) {
    std::fprintf(stderr, "ferry-forwarder: refusing addresses outside loopback without --allow-remote\n");
    return 2;
  }
  struct sigaction sa {};
  sa.sa_handler = [](int) { g_stop.store(true); };
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);

  std::vector<int> fds;
  for (unsigned t = 0; t < threads; ++t) {
    const int fd = open_socket(listen, listen_len);
    if (fd < 0) {
      std::fprintf(stderr, "ferry-forwarder: bind %s: %s\n", listen_text.c_str(), std::strerror(errno));
      return 1;
    }
    fds.push_back(fd);
  }
  std::printf("READY %s -> %s, %u thread(s)\n", listen_text.c_str(), to_text.c_str(), threads);
  std::fflush(stdout);
  const uint64_t deadline = now_ns() + static_cast<uint64_t>(duration * 1e9);
  std::vector<Counters> counters(threads);
  std::vector<std::thread> workers;
  for (unsigned t = 0; t < threads; ++t) {
    workers.emplace_back(forward, fds[t], std::cref(to), to_len, deadline, std::ref(counters[t]));
  }
  for (auto& w : workers) w.join();
  Counters total;
  for (const auto& c : counters) {
    total.received += c.received;
    total.forwarded += c.forwarded;
    total.dropped += c.dropped;
  }
  for (int fd : fds) ::close(fd);
  std::printf("forwarded %llu of %llu datagrams (%llu dropped)\n", static_cast<unsigned long long>(total.forwarded),
              static_cast<unsigned long long>(total.received), static_cast<unsigned long long>(total.dropped));
  return 0;
}
