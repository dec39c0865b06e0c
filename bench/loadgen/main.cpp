// ferry-loadgen: load for a TURN/STUN server on this machine (issue 7). See bench/README.md.
//
//   FERRY_BENCH_PASSWORD=... ferry-loadgen --target 127.0.0.1:3478 --user alice
//       --mode relay --allocations 100 --size 100 --duration 5
//
// The password comes from an environment variable (--password-env), never from argv.
#include <sys/prctl.h>

#include <CLI/CLI.hpp>

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <map>
#include <stdexcept>

#include "bench/loadgen/addresses.h"
#include "bench/loadgen/options.h"
#include "bench/loadgen/runs.h"

namespace {

using ferry::bench::ClientTransport;
using ferry::bench::Framing;
using ferry::bench::Mode;
using ferry::bench::Options;
using ferry::bench::PeerTransport;

constexpr int kUsage = 2;

void print_text(const nlohmann::json& j) {
  const std::string mode = j.value("mode", "");
  if (mode == "relay" || mode == "raw") {
    std::printf(
        "%s %s: %.0f packets/s, %.1f Mbit/s, loss %.2f%%, latency p50 %.1f us p99 %.1f us (%s of %s streams ready)\n",
        mode.c_str(), j["framing"].get<std::string>().c_str(), j["pps"].get<double>(), j["mbps"].get<double>(),
        100 * j["loss"].get<double>(), j["latency_us"]["p50"].get<double>(), j["latency_us"]["p99"].get<double>(),
        j["ready"].dump().c_str(), j["allocations"].dump().c_str());
  } else if (mode == "binding") {
    std::printf("binding: %.0f requests/s, latency p50 %.1f us p99 %.1f us\n", j["rps"].get<double>(),
                j["latency_us"]["p50"].get<double>(), j["latency_us"]["p99"].get<double>());
  } else if (mode == "allocate") {
    std::printf("allocate: %.0f allocations/s, latency p50 %.1f us p99 %.1f us, %s failed\n", j["aps"].get<double>(),
                j["latency_us"]["p50"].get<double>(), j["latency_us"]["p99"].get<double>(), j["failed"].dump().c_str());
  } else if (mode == "churn") {
    std::printf("churn: %s allocated, %s refreshed, %s deleted, %s expired, %s failed; %.0f packets/s, loss %.2f%%\n",
                j["allocated"].dump().c_str(), j["refreshed"].dump().c_str(), j["deleted"].dump().c_str(),
                j["expired"].dump().c_str(), j["failed"].dump().c_str(), j["pps"].get<double>(),
                100 * j["loss"].get<double>());
  }
  for (const auto& [k, v] : j.items()) std::printf("  %-16s %s\n", k.c_str(), v.dump().c_str());
}

// True when the run measured something (the exit status tells scripts and tests).
bool measured_something(const nlohmann::json& j) {
  const std::string mode = j.value("mode", "");
  if (mode == "relay" || mode == "raw") {
    return j["ready"].get<uint64_t>() > 0 && (j["duration"].get<double>() == 0 || j["received"].get<uint64_t>() > 0);
  }
  if (mode == "binding") return j["responses"].get<uint64_t>() > 0;
  if (mode == "churn") return j["allocated"].get<uint64_t>() > 0 && j["received"].get<uint64_t>() > 0;
  return j["allocations"].get<uint64_t>() > 0;
}

}  // namespace

int main(int argc, char** argv) {
  // 1 µs timer slack so the senders' short sleeps are short (the default is 50 µs).
  prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);

  Options o;
  std::string target, password_env = "FERRY_BENCH_PASSWORD";
  CLI::App app{
      "ferry-loadgen: relayed packets/s, Binding requests/s and Allocates/s of a TURN server, "
      "with a built-in sink. Sends only to loopback unless --allow-remote."};
  app.set_help_flag("-h,--help", "Print this help and exit.");
  const std::map<std::string, Mode> modes{{"relay", Mode::Relay},
                                          {"raw", Mode::Raw},
                                          {"binding", Mode::Binding},
                                          {"allocate", Mode::Allocate},
                                          {"churn", Mode::Churn}};
  const std::map<std::string, Framing> framings{{"channel", Framing::Channel}, {"send", Framing::Send}};
  const std::map<std::string, ClientTransport> transports{
      {"udp", ClientTransport::Udp}, {"tcp", ClientTransport::Tcp}, {"tls", ClientTransport::Tls}};
  const std::map<std::string, PeerTransport> peer_transports{{"udp", PeerTransport::Udp}, {"tcp", PeerTransport::Tcp}};
  app.add_option(
         "--mode", o.mode,
         "relay: allocations send to the sink through the server; raw: the same packets as plain UDP "
         "(to bench/forwarder); binding: Binding requests/s; allocate: authenticated Allocates/s of --count new "
         "clients; churn: --rate packets/s while -n allocations at a time are created, refreshed, left to "
         "expire and deleted")
      ->transform(CLI::CheckedTransformer(modes, CLI::ignore_case))
      ->option_text("relay|raw|binding|allocate|churn (default relay)");
  app.add_option("--target", target, "Server (or forwarder) IP:PORT, e.g. 127.0.0.1:3478")->required();
  app.add_flag("--allow-remote", o.allow_remote, "Allow a target or sink outside 127.0.0.0/8 and ::1");
  app.add_option("--user", o.user, "Long-term credential username (relay, allocate)");
  app.add_option("--password-env", password_env, "Environment variable holding the password")
      ->default_str(password_env);
  app.add_option("-n,--allocations", o.allocations,
                 "relay/raw: concurrent allocations (streams), each from its own source port; binding: sockets; "
                 "allocate: clients allocating at once")
      ->check(CLI::Range(1u, 60000u))
      ->default_str("1");
  auto* framing = app.add_option("--framing", o.framing,
                                 "relay: channel (ChannelData) or send (Send indications); UDP peer legs only");
  framing->transform(CLI::CheckedTransformer(framings, CLI::ignore_case))
      ->option_text("channel|send (default channel)");
  app.add_option("--transport", o.transport,
                 "relay: the client leg, udp, tcp or tls (TURN over TCP or TLS, RFC 8656 §12.5; the server's "
                 "certificate is not checked). An IPv6 --target and --sink make IPv6 client and peer legs.")
      ->transform(CLI::CheckedTransformer(transports, CLI::ignore_case))
      ->option_text("udp|tcp|tls (default udp)");
  app.add_option("--peer-transport", o.peer_transport,
                 "relay: the peer leg. tcp: RFC 6062 TCP allocations (needs --transport tcp or tls): each "
                 "allocation Connects to the sink's TCP listener and sends its stamped payloads back to back "
                 "over a data connection (ConnectionBind); the sink cuts the stream into records of --size "
                 "bytes, counted as packets")
      ->transform(CLI::CheckedTransformer(peer_transports, CLI::ignore_case))
      ->option_text("udp|tcp (default udp)");
  app.add_option("-s,--size", o.size,
                 "Payload bytes per packet (at least 24: the stamp); TCP peer legs: bytes per record")
      ->check(CLI::Range(24, 65000))
      ->default_str("100");
  app.add_option("-r,--rate", o.rate, "Packets/s over all streams; 0 = as fast as --window allows (churn: 1000)")
      ->check(CLI::Range(0.0, 1e8))
      ->default_str("0");
  app.add_option("-w,--window", o.window, "With --rate 0: packets (binding: requests) in flight at most")
      ->check(CLI::Range(1u, 1000000u))
      ->default_str("256");
  app.add_option("-d,--duration", o.duration, "Seconds measured (after the warm-up); allocate: at most")
      ->check(CLI::Range(0.0, 3600.0))
      ->default_str("5");
  app.add_option("--warmup", o.warmup, "Seconds of load before measuring")
      ->check(CLI::Range(0.0, 60.0))
      ->default_str("0.5");
  app.add_option("--drain", o.drain, "Seconds to wait for late packets")
      ->check(CLI::Range(0.0, 10.0))
      ->default_str("0.3");
  app.add_option("--batch", o.batch, "Datagrams per sendmmsg (per stream in turn); TCP/TLS: frames per write")
      ->check(CLI::Range(1u, 1024u))
      ->default_str("32");
  app.add_option("--sender-threads", o.sender_threads, "relay/raw: sending threads")
      ->check(CLI::Range(1u, 64u))
      ->default_str("1");
  app.add_option("--client-ips", o.client_ips,
                 "Loopback IPv4 targets: spread sockets over 127.0.0.1..N (servers that pick a thread by source IP "
                 "then use all of them)")
      ->check(CLI::Range(1u, 254u))
      ->default_str("16");
  app.add_option("--sink", o.sink,
                 "relay/raw: the sink's IP:PORT (port 0: any; a TCP listener for --peer-transport tcp)")
      ->default_str(o.sink);
  app.add_option("--hold", o.hold,
                 "relay: after setup print READY and keep the allocations idle this many seconds (memory probes)")
      ->check(CLI::Range(0.0, 3600.0));
  app.add_option("--lifetime", o.lifetime, "LIFETIME asked for in Allocate (seconds)")->default_str("600");
  app.add_option("--churn-life", o.churn_life,
                 "churn: seconds an allocation relays before it is deleted or left to expire (each 0.5x..1.5x)")
      ->check(CLI::Range(0.1, 3600.0))
      ->default_str("5");
  app.add_option("--expire-lifetime", o.expire_lifetime,
                 "churn: LIFETIME asked by the third of the allocations left to expire (the server's "
                 "limits.default_lifetime must not be above it)")
      ->check(CLI::Range(1u, 3600u))
      ->default_str("4");
  app.add_option("--setup-concurrency", o.setup_concurrency,
                 "relay: allocations (and RFC 6062 data connections) being set up at once")
      ->check(CLI::Range(1u, 10000u))
      ->default_str("64");
  app.add_option("--count", o.max_count,
                 "binding: stop after this many responses (0: no limit); allocate: clients in all (0: 1000)");
  app.add_option("--rto", o.rto, "First retransmission timeout of a request, seconds (doubles)")
      ->check(CLI::Range(0.01, 10.0))
      ->default_str("0.5");
  app.add_option("--transmissions", o.transmissions, "Transmissions of a request before giving up")
      ->check(CLI::Range(1u, 10u))
      ->default_str("5");
  app.add_flag("--json", o.json, "Print the report as one JSON object");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) { return app.exit(e); }

  const auto parsed = ferry::stun::TransportAddress::parse(target);
  if (!parsed || parsed->port == 0) {
    std::cerr << "ferry-loadgen: --target: expected IP:PORT, got '" << target << "'\n";
    return kUsage;
  }
  o.target = *parsed;
  const auto sink = ferry::stun::TransportAddress::parse(o.sink);
  if (!sink) {
    std::cerr << "ferry-loadgen: --sink: expected IP:PORT, got '" << o.sink << "'\n";
    return kUsage;
  }
  if (!o.allow_remote && (!ferry::bench::is_loopback(o.target) || !ferry::bench::is_loopback(*sink))) {
    std::cerr << "ferry-loadgen: refusing to load a target or sink outside loopback (" << o.target.to_string()
              << ", sink " << o.sink << "); pass --allow-remote if you mean it\n";
    return kUsage;
  }
  if (o.transport != ClientTransport::Udp && o.mode != Mode::Relay) {
    std::cerr << "ferry-loadgen: --transport tcp/tls: only --mode relay has TCP and TLS client legs\n";
    return kUsage;
  }
  if (o.peer_transport == PeerTransport::Tcp &&
      (o.mode != Mode::Relay || o.transport == ClientTransport::Udp || framing->count() != 0)) {
    std::cerr << "ferry-loadgen: --peer-transport tcp (RFC 6062): only with --mode relay and --transport tcp or "
                 "tls, and without --framing (the data connection carries bare payloads)\n";
    return kUsage;
  }
  if (o.mode == Mode::Relay || o.mode == Mode::Allocate || o.mode == Mode::Churn) {
    const char* pw = std::getenv(password_env.c_str());
    if (o.user.empty() || pw == nullptr || *pw == '\0') {
      std::cerr << "ferry-loadgen: --mode relay/allocate/churn need --user and the password in $" << password_env
                << "\n";
      return kUsage;
    }
    o.password = pw;
  }

  try {
    nlohmann::json report;
    switch (o.mode) {
      case Mode::Relay:
      case Mode::Raw: report = ferry::bench::run_relay(o); break;
      case Mode::Binding: report = ferry::bench::run_binding(o); break;
      case Mode::Allocate: report = ferry::bench::run_allocate(o); break;
      case Mode::Churn: report = ferry::bench::run_churn(o); break;
    }
    if (o.json) {
      std::printf("%s\n", report.dump().c_str());
    } else {
      print_text(report);
    }
    std::fflush(stdout);
    return measured_something(report) ? 0 : 1;
  } catch (const std::exception& e) {
    std::cerr << "ferry-loadgen: " << e.what() << "\n";
    return 1;
  }
}
