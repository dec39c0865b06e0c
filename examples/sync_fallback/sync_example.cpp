// ferry-sync-example: sends one file between two processes through TURN, the way a P2P sync
// client falls back to a relay when a direct path fails.
//
// Each side allocates on the TURN server and prints "relayed IP:PORT"; each is then told the
// other's relayed address (--peer, or one line on stdin) and binds a channel to it, which also
// installs the permission (RFC 8656 §11.1). Data then goes: sender -> its allocation -> the
// receiver's relayed address -> the receiver, as ChannelData. The protocol on top is
// stop-and-wait: numbered chunks, each acknowledged, resent every 250 ms until acknowledged or
// the --timeout is over, then an end marker carrying the file size.
//
//   FERRY_PASSWORD=... ferry-sync-example receive --server 127.0.0.1:3478 --user alice --out copy.bin
//   FERRY_PASSWORD=... ferry-sync-example send    --server 127.0.0.1:3478 --user alice --in file.bin
//
// The password comes from an environment variable (--password-env, default FERRY_PASSWORD), never
// from argv, where every local user could read it.
#include <CLI/CLI.hpp>

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <iterator>
#include <optional>
#include <string>
#include <vector>

#include "examples/sync_fallback/relay_link.h"

using namespace ferry;
using examples::Clock;
using examples::RelayLink;

namespace {

// Application frames, carried as ChannelData payloads.
constexpr uint8_t kData = 'D';   // 'D' seq:u32 bytes...
constexpr uint8_t kEnd = 'E';    // 'E' seq:u32 size:u64   (seq = number of chunks)
constexpr uint8_t kAck = 'A';    // 'A' seq:u32            (acknowledges D or E with that seq)
constexpr size_t kChunk = 1000;  // well under a 1500-byte MTU with IP, UDP and ChannelData headers
constexpr auto kResend = std::chrono::milliseconds(250);

void put(std::vector<uint8_t>& out, uint64_t v, int bytes) {
  for (int i = bytes - 1; i >= 0; --i) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
}

uint64_t get(const std::vector<uint8_t>& in, size_t at, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v = (v << 8) | in[at + static_cast<size_t>(i)];
  return v;
}

std::vector<uint8_t> frame(uint8_t kind, uint32_t seq) {
  std::vector<uint8_t> f{kind};
  put(f, seq, 4);
  return f;
}

struct Options {
  std::string server;
  std::string user;
  std::string password_env = "FERRY_PASSWORD";
  std::string peer;
  std::string file;
  double timeout = 30;
};

// Sends `f` until the peer acknowledges `seq`; false at the deadline.
bool send_reliably(RelayLink& link, const std::vector<uint8_t>& f, uint32_t seq, Clock::time_point deadline) {
  while (Clock::now() < deadline) {
    if (!link.send(f)) return false;
    const auto resend_at = std::min(deadline, Clock::now() + kResend);
    while (auto in = link.receive(resend_at)) {
      if (in->size() == 5 && (*in)[0] == kAck && get(*in, 1, 4) == seq) return true;
    }
  }
  return false;
}

int run_send(RelayLink& link, const Options& o, Clock::time_point deadline) {
  std::ifstream in(o.file, std::ios::binary);
  if (!in) {
    std::cerr << "cannot read " << o.file << "\n";
    return 1;
  }
  const std::vector<uint8_t> content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  uint32_t seq = 0;
  for (size_t at = 0; at < content.size(); at += kChunk, ++seq) {
    auto f = frame(kData, seq);
    f.insert(f.end(), content.begin() + static_cast<long>(at),
             content.begin() + static_cast<long>(std::min(content.size(), at + kChunk)));
    if (!send_reliably(link, f, seq, deadline)) {
      std::cerr << "chunk " << seq << " not acknowledged before the timeout\n";
      return 1;
    }
  }
  auto end = frame(kEnd, seq);
  put(end, content.size(), 8);
  if (!send_reliably(link, end, seq, deadline)) {
    std::cerr << "end marker not acknowledged before the timeout\n";
    return 1;
  }
  std::cout << "sent " << content.size() << " bytes in " << seq << " chunks\n";
  return 0;
}

int run_receive(RelayLink& link, const Options& o, Clock::time_point deadline) {
  std::vector<uint8_t> content;
  uint32_t expected = 0;
  bool done = false;
  while (!done) {
    auto in = link.receive(deadline);
    if (!in) {
      std::cerr << "timed out after " << expected << " chunks\n";
      return 1;
    }
    if (in->size() < 5) continue;
    const auto seq = static_cast<uint32_t>(get(*in, 1, 4));
    if ((*in)[0] == kData && seq == expected) {
      content.insert(content.end(), in->begin() + 5, in->end());
      ++expected;
    } else if ((*in)[0] == kEnd && seq == expected && in->size() == 13) {
      if (get(*in, 5, 8) != content.size()) {
        std::cerr << "end marker says " << get(*in, 5, 8) << " bytes, got " << content.size() << "\n";
        return 1;
      }
      done = true;
    } else if (seq >= expected) {
      continue;  // out of order: cannot happen with stop-and-wait; drop it
    }
    // New or duplicate (our ack was lost): acknowledge either way.
    link.send(frame(kAck, seq));
  }
  std::ofstream out(o.file, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(content.data()), static_cast<std::streamsize>(content.size()));
  if (!out.flush()) {
    std::cerr << "cannot write " << o.file << "\n";
    return 1;
  }
  std::cout << "received " << content.size() << " bytes in " << expected << " chunks into " << o.file << "\n";
  // Linger briefly so a resent end marker (our ack lost) is acknowledged again.
  const auto linger = std::min(deadline, Clock::now() + std::chrono::seconds(1));
  while (auto in = link.receive(linger)) {
    if (in->size() == 13 && (*in)[0] == kEnd) link.send(frame(kAck, static_cast<uint32_t>(get(*in, 1, 4))));
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Send a file between two processes through a TURN relay (ferry example)"};
  app.require_subcommand(1);
  Options o;
  for (const char* name : {"send", "receive"}) {
    auto* sub = app.add_subcommand(name, std::string(name) == "send" ? "send a file" : "receive a file");
    sub->add_option("--server", o.server, "TURN server IP:PORT (UDP)")->required();
    sub->add_option("--user", o.user, "TURN username")->required();
    sub->add_option("--password-env", o.password_env, "environment variable holding the TURN password")
        ->capture_default_str();
    sub->add_option("--peer", o.peer, "the other side's relayed IP:PORT (default: read one line from stdin)");
    sub->add_option("--timeout", o.timeout, "give up after this many seconds")->capture_default_str();
    if (std::string(name) == "send") sub->add_option("--in", o.file, "file to send")->required();
    else sub->add_option("--out", o.file, "where to write the received file")->required();
  }
  CLI11_PARSE(app, argc, argv);
  const bool sending = app.got_subcommand("send");

  const char* password = std::getenv(o.password_env.c_str());
  if (!password) {
    std::cerr << "set the TURN password in the environment variable " << o.password_env << "\n";
    return 2;
  }
  auto server = stun::TransportAddress::parse(o.server);
  if (!server) {
    std::cerr << "--server wants IP:PORT, got " << o.server << "\n";
    return 2;
  }
  const auto deadline = Clock::now() + std::chrono::milliseconds(static_cast<long long>(o.timeout * 1000));

  client::TurnClientConfig cfg;
  cfg.username = o.user;
  cfg.password = password;
  cfg.software = "ferry-sync-example";
  RelayLink link(*server, cfg);
  auto relayed = link.ok() ? link.allocate(deadline) : std::nullopt;
  if (!relayed) {
    std::cerr << link.error() << "\n";
    return 1;
  }
  std::cout << "relayed " << relayed->to_string() << std::endl;

  // The "signalling": in a real sync client the two relayed addresses travel over its
  // rendezvous service; here the user (or a test) passes them along.
  std::string peer_text = o.peer;
  if (peer_text.empty()) {
    std::getline(std::cin, peer_text);
    if (peer_text.rfind("relayed ", 0) == 0) peer_text.erase(0, 8);
  }
  auto peer = stun::TransportAddress::parse(peer_text);
  if (!peer) {
    std::cerr << "the peer's relayed address should be IP:PORT, got '" << peer_text << "'\n";
    return 2;
  }
  if (!link.bind_peer(*peer, deadline)) {
    std::cerr << link.error() << "\n";
    return 1;
  }
  const int status = sending ? run_send(link, o, deadline) : run_receive(link, o, deadline);
  link.release(std::min(deadline + std::chrono::seconds(2), Clock::now() + std::chrono::seconds(2)));
  return status;
}
