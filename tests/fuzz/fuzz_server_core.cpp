// libFuzzer target: the whole request handler. A ServerCore with a fake clock, static users and a
// recording Io is fed a script of events decoded from the input:
//   op 0: a raw datagram (or stream frame) from one of four client 5-tuples
//   op 1: a request signed as alice (the harness's TurnClient adds USERNAME/REALM/NONCE and a valid
//         MESSAGE-INTEGRITY around fuzzed attributes), so authenticated handlers see fuzzed input
//   op 2: a raw datagram from a peer on one of the open relay sockets
//   op 3: time passes (0-255 s), then tick()
//   op 4: a stream client closes
//   op 5: close_user / revalidate_users
// Invariants after every event: every relay the core opened is accounted for, the allocation count
// stays within the configured maximum, every answer is a STUN message or ChannelData no larger
// than the core's buffer, and nothing is sent to a peer the policy refuses.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <vector>

#include "tests/fuzz/fuzz_check.h"
#include "auth/static_users.h"
#include "client/turn_client.h"
#include "stun/message.h"
#include "base/clock.h"
#include "turn/server_core.h"

using namespace ferry;
using stun::TransportAddress;

namespace {

const TransportAddress kServer = TransportAddress::parse("192.0.2.1:3478").value();
const TransportAddress kRelay = TransportAddress::parse("198.51.100.10:0").value();
const TransportAddress kPeer = TransportAddress::parse("203.0.113.5:4000").value();
constexpr size_t kMaxAllocations = 3;

struct RecordingIo final : turn::Io {
  std::map<turn::RelayId, TransportAddress> open;
  turn::PeerPolicy* policy = nullptr;
  std::vector<uint8_t> last_to_client;
  void send_to_client(const turn::FiveTuple&, stun::Bytes b) override {
    FUZZ_CHECK(!b.empty() && b.size() <= 65536 + 64);
    last_to_client.assign(b.begin(), b.end());
  }
  void send_to_peer(turn::RelayId relay, const TransportAddress& peer, stun::Bytes) override {
    FUZZ_CHECK(open.count(relay) == 1);
    FUZZ_CHECK(policy->allows(peer));
  }
  turn::OpenRelayResult open_relay(turn::RelayId relay, const TransportAddress& local, bool) override {
    FUZZ_CHECK(open.count(relay) == 0);
    open[relay] = local;
    return turn::OpenRelayResult::Opened;
  }
  void close_relay(turn::RelayId relay) override { FUZZ_CHECK(open.erase(relay) == 1); }
};

turn::FiveTuple tuple(uint8_t i) {
  auto client = TransportAddress::parse("192.0.2.100:40000").value();
  client.port = static_cast<uint16_t>(40000 + (i & 1));
  return turn::FiveTuple{client, kServer, (i & 2) ? turn::Transport::Tcp : turn::Transport::Udp};
}

struct Reader {
  const uint8_t* p;
  size_t n;
  bool empty() const { return n == 0; }
  uint8_t byte() {
    if (n == 0) return 0;
    --n;
    return *p++;
  }
  stun::Bytes take(size_t len) {
    len = std::min(len, n);
    stun::Bytes b(p, len);
    p += len;
    n -= len;
    return b;
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FakeClock clock;
  RecordingIo io;
  auth::StaticUsers users("fuzz.example");
  users.add_password("alice", "alice-pw");
  turn::PeerPolicy policy;
  policy.allow(*turn::Cidr::parse("203.0.113.0/24"));
  io.policy = &policy;
  turn::ServerCoreConfig config;
  config.realm = "fuzz.example";
  config.relays = {turn::RelayAddress{kRelay, std::nullopt}};
  config.port_min = 50000;
  config.port_max = 50015;
  config.max_allocations = kMaxAllocations;
  config.max_permissions = 4;
  config.max_channels = 4;
  config.nonce_key.fill(7);
  turn::ServerCore core(config, clock, io, users, policy);

  client::TurnClient alice(client::TurnClientConfig{.username = "alice", .password = "alice-pw"});
  std::vector<uint8_t> out(4096);
  std::vector<uint8_t> peer_buf(turn::ServerCore::kPeerHeadroom + 2048 + turn::ServerCore::kPeerTailroom);

  Reader r{data, size};
  for (int step = 0; step < 64 && !r.empty(); ++step) {
    const uint8_t op = r.byte() % 6;
    const uint8_t arg = r.byte();
    const size_t len = r.byte() | (size_t{r.byte()} << 8);
    switch (op) {
      case 0: {
        auto b = r.take(std::min<size_t>(len, 2048));
        std::vector<uint8_t> copy(b.begin(), b.end());  // the core may read but must not need more
        if (!copy.empty()) core.on_client_packet(tuple(arg), stun::Bytes(copy.data(), copy.size()));
        break;
      }
      case 1: {
        static constexpr stun::Method kMethods[] = {stun::Method::Allocate, stun::Method::Refresh,
                                                    stun::Method::CreatePermission, stun::Method::ChannelBind,
                                                    stun::Method::Binding};
        const stun::Method method = kMethods[arg % 5];
        auto attrs = r.take(std::min<size_t>(len, 512));
        auto body = [attrs](stun::MessageBuilder& b) {
          Reader a{attrs.data(), attrs.size()};
          while (!a.empty()) {
            const uint16_t type = static_cast<uint16_t>(a.byte() << 8 | a.byte());
            const size_t alen = a.byte() % 48;
            b.add(type, a.take(alen));
          }
        };
        // First a request the server challenges (to learn the nonce), then the signed one.
        for (int round = 0; round < 2; ++round) {
          auto req = alice.request(stun::MutableBytes(out.data(), out.size()), method, body);
          if (!req.ok()) break;
          io.last_to_client.clear();
          core.on_client_packet(tuple(arg >> 4), *req);
          if (io.last_to_client.empty()) break;
          auto resp = alice.on_response(stun::Bytes(io.last_to_client.data(), io.last_to_client.size()));
          if (resp.outcome != client::Outcome::Retry) break;
        }
        break;
      }
      case 2: {
        if (io.open.empty()) break;
        auto it = io.open.begin();
        std::advance(it, arg % io.open.size());
        auto b = r.take(std::min<size_t>(len, 2048));
        std::copy(b.begin(), b.end(), peer_buf.begin() + turn::ServerCore::kPeerHeadroom);
        TransportAddress from = kPeer;
        from.port = static_cast<uint16_t>(4000 + (arg & 3));
        core.on_peer_packet(it->first, from, peer_buf.data(), b.size());
        break;
      }
      case 3:
        clock.advance(std::chrono::seconds(arg));
        core.tick();
        break;
      case 4: core.on_client_closed(tuple(arg)); break;
      case 5:
        if (arg & 1) core.close_user("alice");
        else core.revalidate_users();
        break;
    }
    FUZZ_CHECK(core.allocation_count() <= kMaxAllocations);
    FUZZ_CHECK(core.open_relay_count() == io.open.size());
  }
  return 0;
}
