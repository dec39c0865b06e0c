#include "server/net/socket_fd.h"

#include <atomic>
#include <cerrno>
#include <cstring>
#include <linux/filter.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <vector>

#include <spdlog/spdlog.h>
#include <uv.h>

namespace ferry::server {

namespace {
int fail(int fd) {
  const int err = errno;
  if (fd >= 0) ::close(fd);
  return uv_translate_sys_error(err);
}

// A classic BPF reuseport program: returns hash(source IP) % n, the index of the socket in the
// reuseport group. The packet data starts after the transport header there, so the IP header is
// reached through SKF_NET_OFF.
bool attach_steering(int fd, bool v6, uint32_t n) {
  constexpr uint32_t kNet = static_cast<uint32_t>(SKF_NET_OFF);
  constexpr uint32_t kGolden = 0x9E3779B1;  // Fibonacci hashing spreads neighbouring addresses
  std::vector<sock_filter> code;
  if (v6) {
    // XOR of the four words of the source address (bytes 8-23 of the IPv6 header).
    code = {BPF_STMT(BPF_LD | BPF_W | BPF_ABS, kNet + 8),
            BPF_STMT(BPF_MISC | BPF_TAX, 0),
            BPF_STMT(BPF_LD | BPF_W | BPF_ABS, kNet + 12),
            BPF_STMT(BPF_ALU | BPF_XOR | BPF_X, 0),
            BPF_STMT(BPF_MISC | BPF_TAX, 0),
            BPF_STMT(BPF_LD | BPF_W | BPF_ABS, kNet + 16),
            BPF_STMT(BPF_ALU | BPF_XOR | BPF_X, 0),
            BPF_STMT(BPF_MISC | BPF_TAX, 0),
            BPF_STMT(BPF_LD | BPF_W | BPF_ABS, kNet + 20),
            BPF_STMT(BPF_ALU | BPF_XOR | BPF_X, 0)};
  } else {
    code = {BPF_STMT(BPF_LD | BPF_W | BPF_ABS, kNet + 12)};  // the IPv4 source address
  }
  code.push_back(BPF_STMT(BPF_ALU | BPF_MUL | BPF_K, kGolden));
  code.push_back(BPF_STMT(BPF_ALU | BPF_RSH | BPF_K, 16));
  code.push_back(BPF_STMT(BPF_ALU | BPF_MOD | BPF_K, n));
  code.push_back(BPF_STMT(BPF_RET | BPF_A, 0));
  sock_fprog prog{static_cast<unsigned short>(code.size()), code.data()};
  return ::setsockopt(fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &prog, sizeof prog) == 0;
}

}  // namespace

void steer_by_source_ip(int fd, stun::Family family, uint32_t group_size) {
  if (group_size <= 1) return;
  if (!attach_steering(fd, family == stun::Family::V6, group_size)) {
    // Still right for most clients, so keep going, but say what may break.
    static std::atomic<bool> warned{false};
    if (!warned.exchange(true))
      spdlog::warn(
          "SO_ATTACH_REUSEPORT_CBPF failed ({}): clients are spread by 5-tuple, so EVEN-PORT "
          "reservations and per-user limits may span workers",
          std::strerror(errno));
  }
}

int open_bound_socket(int type, const stun::TransportAddress& local, const SocketOptions& options) {
  const bool v6 = local.family == stun::Family::V6;
  const int fd = ::socket(v6 ? AF_INET6 : AF_INET, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return fail(-1);
  const int one = 1;
  if (v6 && ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) != 0) return fail(fd);
  // Lets a restarted server rebind a TCP port whose old connections sit in TIME_WAIT.
  if (type == SOCK_STREAM && ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0) return fail(fd);
  if (options.reuse_port && ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) return fail(fd);
  if (options.dont_fragment) {
    const int mode = v6 ? IPV6_PMTUDISC_DO : IP_PMTUDISC_DO;
    const int rc = v6 ? ::setsockopt(fd, IPPROTO_IPV6, IPV6_MTU_DISCOVER, &mode, sizeof mode)
                      : ::setsockopt(fd, IPPROTO_IP, IP_MTU_DISCOVER, &mode, sizeof mode);
    if (rc != 0) return fail(fd);
  }
  if (options.buffer_bytes > 0) {
    // Not fatal: a smaller buffer only means drops under bursts.
    (void)::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &options.buffer_bytes, sizeof options.buffer_bytes);
    (void)::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &options.buffer_bytes, sizeof options.buffer_bytes);
  }
  sockaddr_storage ss{};
  const unsigned len = local.to_sockaddr(ss);
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&ss), len) != 0) return fail(fd);
  // A UDP socket joins its reuseport group at bind; a TCP one only at listen(), so its owner
  // calls steer_by_source_ip() then. (Before joining, the kernel would refuse to share the port.)
  if (type == SOCK_DGRAM && options.reuse_port) steer_by_source_ip(fd, local.family, options.steer_by_ip_among);
  return fd;
}

stun::TransportAddress bound_address(int fd, const stun::TransportAddress& fallback) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return fallback;
  return stun::TransportAddress::from_sockaddr(reinterpret_cast<const sockaddr*>(&ss)).value_or(fallback);
}

}  // namespace ferry::server
