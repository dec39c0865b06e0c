// `ferryctl probe URL` (see probe.h): the project's sans-I/O TurnClient on blocking sockets
// (probe_transport.h), one step after another, each timed and reported.
#include "tools/ferryctl/probe.h"

#include <termios.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <cstdio>
#include <ctime>
#include <functional>
#include <initializer_list>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "auth/shared_secret.h"
#include "client/turn_client.h"
#include "stun/constants.h"
#include "tools/ferryctl/probe_transport.h"

namespace ferry::ferryctl {
namespace {

using client::Outcome;
using client::Response;
using client::TurnClient;
using stun::TransportAddress;

constexpr int kUsageError = 2;
constexpr uint16_t kChannel = 0x4000;  // the first RFC 8656 channel number; each allocation has its own

struct ProbeOptions {
  std::string url;
  std::string user;
  bool password_stdin = false;
  bool secret_stdin = false;
  uint64_t ttl = 600;
  double timeout = 5;  // seconds per step
  std::string ca_file;
  std::string server_name;
  bool json = false;
};

struct UsageError {
  std::string message;
};

// ---- URLs (RFC 7064 stun:/stuns:, RFC 7065 turn:/turns:) -------------------------------------------

struct ProbeUrl {
  bool turn = true;  // false: stun:/stuns:, Binding only
  std::string host;
  uint16_t port = 3478;
  ProbeTransport transport = ProbeTransport::Udp;
};

ProbeUrl parse_url(const std::string& url) {
  ProbeUrl u;
  const size_t colon = url.find(':');
  if (colon == std::string::npos)
    throw UsageError{"not a STUN/TURN URL (turn:HOST[:PORT][?transport=udp|tcp]): " + url};
  const std::string scheme = url.substr(0, colon);
  bool secure = false;
  if (scheme == "turn" || scheme == "stun") {
  } else if (scheme == "turns" || scheme == "stuns") {
    secure = true;
  } else {
    throw UsageError{"unknown scheme '" + scheme + "' (turn:, turns:, stun: or stuns:)"};
  }
  u.turn = scheme[0] == 't';
  std::string rest = url.substr(colon + 1);
  if (rest.starts_with("//")) throw UsageError{"no '//' in a " + scheme + ": URL (RFC 7065): " + url};
  std::string query;
  if (const size_t q = rest.find('?'); q != std::string::npos) {
    query = rest.substr(q + 1);
    rest = rest.substr(0, q);
  }
  u.port = secure ? 5349 : 3478;
  std::string port_text;
  if (rest.starts_with("[")) {
    const size_t close = rest.find(']');
    if (close == std::string::npos) throw UsageError{"unclosed '[' in " + url};
    u.host = rest.substr(1, close - 1);
    if (close + 1 < rest.size()) {
      if (rest[close + 1] != ':') throw UsageError{"junk after ']' in " + url};
      port_text = rest.substr(close + 2);
    }
  } else if (const size_t c = rest.rfind(':'); c != std::string::npos) {
    u.host = rest.substr(0, c);
    port_text = rest.substr(c + 1);
  } else {
    u.host = rest;
  }
  if (u.host.empty()) throw UsageError{"no host in " + url};
  if (!port_text.empty() || rest.ends_with(":")) {
    unsigned long p = 0;
    bool digits = !port_text.empty() && port_text.size() <= 5;
    for (char ch : port_text) digits = digits && ch >= '0' && ch <= '9';
    if (digits) p = std::stoul(port_text);
    if (!digits || p == 0 || p > 65535) throw UsageError{"bad port '" + port_text + "' in " + url};
    u.port = static_cast<uint16_t>(p);
  }
  std::string transport = secure ? "tcp" : "udp";
  if (!query.empty()) {
    if (!query.starts_with("transport=") || !u.turn) throw UsageError{"unknown query '" + query + "' in " + url};
    transport = query.substr(10);
  }
  if (transport == "udp") {
    if (secure) throw UsageError{"turns: over UDP is DTLS, which the probe does not speak: " + url};
    u.transport = ProbeTransport::Udp;
  } else if (transport == "tcp") {
    u.transport = secure ? ProbeTransport::Tls : ProbeTransport::Tcp;
  } else {
    throw UsageError{"unknown transport '" + transport + "' (udp or tcp) in " + url};
  }
  return u;
}

std::string_view transport_name(ProbeTransport t) {
  switch (t) {
    case ProbeTransport::Udp: return "udp";
    case ProbeTransport::Tcp: return "tcp";
    case ProbeTransport::Tls: return "tls";
  }
  return "?";
}

// ---- credentials --------------------------------------------------------------------------------

std::string read_stdin_line(const char* what) {
  std::string line;
  if (!std::getline(std::cin, line) && line.empty()) throw UsageError{std::string("no ") + what + " on stdin"};
  while (!line.empty() && (line.back() == '\r' || line.back() == '\n')) line.pop_back();
  if (line.empty()) throw UsageError{std::string("empty ") + what + " on stdin"};
  return line;
}

std::string prompt_password() {
  FILE* tty = std::fopen("/dev/tty", "r+");
  if (tty == nullptr) throw UsageError{"no terminal to prompt on: pass the password with --password-stdin"};
  const int fd = fileno(tty);
  termios old{};
  const bool restore = tcgetattr(fd, &old) == 0;
  if (restore) {
    termios t = old;
    t.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    tcsetattr(fd, TCSAFLUSH, &t);
  }
  std::fputs("Password: ", tty);
  std::fflush(tty);
  std::string line;
  for (int c; (c = std::fgetc(tty)) != EOF && c != '\n';) line += static_cast<char>(c);
  if (restore) tcsetattr(fd, TCSAFLUSH, &old);
  std::fputs("\n", tty);
  std::fclose(tty);
  if (!line.empty() && line.back() == '\r') line.pop_back();
  if (line.empty()) throw UsageError{"empty password"};
  return line;
}

struct Credentials {
  std::string username;
  std::string password;
  std::string note;  // how they were made, for the report (never the password)
};

std::optional<Credentials> credentials_for(const ProbeOptions& o, bool turn) {
  if (o.password_stdin && o.secret_stdin) throw UsageError{"--password-stdin and --secret-stdin exclude each other"};
  if (!turn) return std::nullopt;
  Credentials c;
  if (o.secret_stdin) {
    std::string secret = read_stdin_line("shared secret");
    const std::string user = o.user.empty() ? "probe" : o.user;
    if (user.find(':') != std::string::npos) throw UsageError{"--user must not contain ':' with --secret-stdin"};
    if (o.ttl == 0) throw UsageError{"--ttl must be positive"};
    const auto m = auth::mint(secret, user, o.ttl, static_cast<uint64_t>(std::time(nullptr)));
    std::fill(secret.begin(), secret.end(), '\0');
    c.username = m.username;
    c.password = m.password;
    c.note = "TURN REST credential " + m.username + " (valid " + std::to_string(o.ttl) + " s)";
    return c;
  }
  if (o.user.empty()) throw UsageError{"a turn: URL needs --user (with --password-stdin) or --secret-stdin"};
  c.username = o.user;
  if (o.password_stdin) {
    c.password = read_stdin_line("password");
  } else if (isatty(STDIN_FILENO)) {
    c.password = prompt_password();
  } else {
    throw UsageError{"stdin is not a terminal: use --password-stdin or --secret-stdin"};
  }
  c.note = "long-term credential of " + o.user;
  return c;
}

// ---- steps and their report -------------------------------------------------------------------

struct StepResult {
  bool ok = false;
  std::string detail;
  nlohmann::json extra = nlohmann::json::object();
};

struct StepRecord {
  std::string name;
  StepResult result;
  double ms = 0;
};

StepResult pass(std::string detail, nlohmann::json extra = nlohmann::json::object()) {
  return {true, std::move(detail), std::move(extra)};
}
StepResult fail(std::string detail) { return {false, std::move(detail), nlohmann::json::object()}; }

// Why a request failed, in words an operator can act on.
std::string describe_error(const Response& r, stun::Method method) {
  std::string s = std::to_string(r.error_code);
  if (!r.reason.empty()) s += " (" + r.reason + ")";
  switch (r.error_code) {
    case stun::code::Unauthenticated:
      s += ": the server refused the credentials (wrong user or password, or a REST credential made with another "
           "secret or expired)";
      break;
    case stun::code::Forbidden:
      if (method == stun::Method::CreatePermission || method == stun::Method::ChannelBind) {
        s += ": the server refuses the other allocation's relayed address as a peer (ferry refuses its own "
             "addresses unless peers.allow lists them; coturn: denied-peer-ip / no-loopback-peers)";
      }
      break;
    case stun::code::AllocationQuotaReached: s += ": the user has as many allocations as allowed"; break;
    case stun::code::InsufficientCapacity: s += ": the server is full or draining"; break;
    default: break;
  }
  return s;
}

class Probe {
 public:
  Probe(const ProbeOptions& o, ProbeUrl url, std::optional<Credentials> creds)
      : o_(o), url_(std::move(url)), creds_(std::move(creds)) {}

  int run();

 private:
  using StepFn = std::function<StepResult()>;
  bool step(const std::string& name, const StepFn& fn);
  Deadline deadline() const {
    return ProbeClock::now() + std::chrono::milliseconds(static_cast<int64_t>(o_.timeout * 1000));
  }
  client::TurnClientConfig client_config() const;
  // Sends a request built by `build` and returns its final answer, following 401/438 and
  // retransmitting over UDP (RFC 8489 §6.2.1: RTO 500 ms, doubling) until the step's deadline.
  using Build = std::function<stun::Result<stun::Bytes>(TurnClient&, stun::MutableBytes)>;
  std::optional<Response> transact(ProbeConnection& conn, TurnClient& c, const Build& build, std::string* error);
  StepResult request_step(ProbeConnection& conn, TurnClient& c, stun::Method method, const Build& build,
                          const std::function<StepResult(const Response&)>& on_success);
  StepResult allocate(ProbeConnection& conn, TurnClient& c);
  StepResult relay_data(ProbeConnection& from, ProbeConnection& to, TurnClient& receiver);
  struct Held {
    ProbeConnection* conn;
    TurnClient* client;
    const char* name;
  };
  void release(std::initializer_list<Held> held);
  std::string timeout_text() const {
    char t[32];
    std::snprintf(t, sizeof(t), "%g s", o_.timeout);
    return t;
  }
  int finish();

  const ProbeOptions& o_;
  ProbeUrl url_;
  std::optional<Credentials> creds_;
  TransportAddress server_;
  std::vector<StepRecord> steps_;
  std::array<uint8_t, 4096> buf_{};
  ProbeClock::time_point started_ = ProbeClock::now();
};

bool Probe::step(const std::string& name, const StepFn& fn) {
  const auto t0 = ProbeClock::now();
  StepResult r;
  try {
    r = fn();
  } catch (const std::exception& e) { r = fail(std::string("internal error: ") + e.what()); }
  const double ms = std::chrono::duration<double, std::milli>(ProbeClock::now() - t0).count();
  steps_.push_back({name, r, ms});
  if (!o_.json) {
    char head[64];
    std::snprintf(head, sizeof(head), "  %-5s %-14s %9.1f ms  ", r.ok ? "ok" : "FAIL", name.c_str(), ms);
    std::cout << head << r.detail << "\n" << std::flush;
  }
  return r.ok;
}

client::TurnClientConfig Probe::client_config() const {
  client::TurnClientConfig c;
  if (creds_) {
    c.username = creds_->username;
    c.password = creds_->password;
  }
  c.software = "ferryctl-probe";
  c.fingerprint = true;
  c.username_mode = client::UsernameMode::Username;
  return c;
}

std::optional<Response> Probe::transact(ProbeConnection& conn, TurnClient& c, const Build& build, std::string* error) {
  const Deadline end = deadline();
  auto req = build(c, buf_);
  if (!req) {
    *error = "the request did not build";
    return std::nullopt;
  }
  std::vector<uint8_t> sent(req->begin(), req->end());
  auto rto = std::chrono::milliseconds(500);
  Deadline resend = ProbeClock::now() + rto;
  if (!conn.send(sent, error)) return std::nullopt;
  std::string discarded;
  for (;;) {
    auto packet = conn.receive(conn.stream() ? end : std::min(resend, end), error);
    if (!packet) {
      if (!error->empty()) return std::nullopt;
      if (ProbeClock::now() >= end) {
        *error = "no answer within " + timeout_text() + (discarded.empty() ? "" : " (discarded: " + discarded + ")");
        return std::nullopt;
      }
      rto *= 2;
      resend = ProbeClock::now() + rto;
      if (!conn.send(sent, error)) return std::nullopt;
      continue;
    }
    Response r = c.on_response(*packet);
    switch (r.outcome) {
      case Outcome::Discarded:
        // Not ours, or failed its integrity check (a wrong key answers that way too).
        if (!r.reason.empty()) discarded = r.reason;
        continue;
      case Outcome::Retry: {
        auto again = c.retry(buf_, r.transaction_id);
        if (!again) {
          *error = "the retry did not build";
          return std::nullopt;
        }
        sent.assign(again->begin(), again->end());
        rto = std::chrono::milliseconds(500);
        resend = ProbeClock::now() + rto;
        if (!conn.send(sent, error)) return std::nullopt;
        continue;
      }
      case Outcome::Success:
      case Outcome::Error: return r;
    }
  }
}

StepResult Probe::request_step(ProbeConnection& conn, TurnClient& c, stun::Method method, const Build& build,
                               const std::function<StepResult(const Response&)>& on_success) {
  std::string error;
  auto r = transact(conn, c, build, &error);
  if (!r) return fail(error);
  if (r->outcome == Outcome::Error) return fail(describe_error(*r, method));
  return on_success(*r);
}

StepResult Probe::allocate(ProbeConnection& conn, TurnClient& c) {
  return request_step(
      conn, c, stun::Method::Allocate, [](TurnClient& cl, stun::MutableBytes out) { return cl.allocate_request(out); },
      [](const Response& r) {
    if (r.relayed.empty()) return fail("success without XOR-RELAYED-ADDRESS");
    if (!r.authenticated) return fail("success without valid MESSAGE-INTEGRITY");
    const uint32_t lifetime = r.lifetime.value_or(0);
    return pass("relayed " + r.relayed[0].to_string() + ", lifetime " + std::to_string(lifetime) + " s",
                {{"relayed", r.relayed[0].to_string()}, {"lifetime", lifetime}});
      });
}

// ChannelData on `from`'s channel, relayed to the other allocation, arriving on `to` as
// ChannelData of its channel; resent every 250 ms over UDP, where a datagram may be lost.
StepResult Probe::relay_data(ProbeConnection& from, ProbeConnection& to, TurnClient& receiver) {
  const auto id = client::random_transaction_id();
  std::string payload = "ferryctl-probe-";
  for (uint8_t b : id) {
    static const char* d = "0123456789abcdef";
    payload += d[b >> 4];
    payload += d[b & 15];
  }
  const stun::Bytes data(reinterpret_cast<const uint8_t*>(payload.data()), payload.size());
  auto frame = TurnClient::channel_data(buf_, kChannel, data, from.stream());
  if (!frame) return fail("ChannelData did not build");
  const std::vector<uint8_t> bytes(frame->begin(), frame->end());
  const Deadline end = deadline();
  const auto t0 = ProbeClock::now();
  int sends = 0;
  std::string error;
  for (;;) {
    if (sends == 0 || !from.stream()) {
      if (!from.send(bytes, &error)) return fail(error);
      ++sends;
    }
    const Deadline wait = from.stream() ? end : std::min(end, ProbeClock::now() + std::chrono::milliseconds(250));
    for (;;) {
      auto packet = to.receive(wait, &error);
      if (!packet) break;
      auto pd = receiver.on_peer_data(*packet);
      if (!pd || std::string_view(reinterpret_cast<const char*>(pd->data.data()), pd->data.size()) != payload) {
        continue;  // a stray answer or an earlier copy
      }
      const double ms = std::chrono::duration<double, std::milli>(ProbeClock::now() - t0).count();
      std::string how = pd->channel ? "ChannelData on channel 0x4000" : "a Data indication (not ChannelData)";
      nlohmann::json extra = {{"bytes", payload.size()}, {"sends", sends}, {"latency_ms", ms}};
      if (!pd->channel) return {false, std::to_string(payload.size()) + " bytes arrived as " + how, extra};
      return pass(std::to_string(payload.size()) + " bytes as " + how +
                      (sends > 1 ? " (sent " + std::to_string(sends) + " times)" : ""),
                  extra);
    }
    if (!error.empty()) return fail(error);
    if (ProbeClock::now() >= end) {
      return fail("nothing arrived within " + timeout_text() + " (sent " + std::to_string(sends) + " times)");
    }
  }
}

int Probe::run() {
  if (!o_.json) {
    std::cout << "ferryctl probe " << o_.url << "\n";
    if (creds_) std::cout << "  with a " << creds_->note << "\n";
  }
  bool ok = step("resolve", [&] {
    std::string error;
    auto a = resolve_host(url_.host, url_.port, &error);
    if (!a) return fail(error);
    server_ = *a;
    return pass(url_.host + " -> " + server_.to_string() + " over " + std::string(transport_name(url_.transport)),
                {{"address", server_.to_string()}});
  });
  if (!ok) return finish();

  TlsOptions tls{o_.server_name.empty() ? url_.host : o_.server_name, o_.ca_file};
  std::unique_ptr<ProbeConnection> a, b;
  CertificateReport cert;
  ok = step("connect", [&] {
    std::string error;
    a = connect_probe(url_.transport, server_, tls, deadline(), &error, &cert);
    if (!a) return fail(error);
    if (url_.transport == ProbeTransport::Udp) return pass("UDP socket connected (no handshake)");
    return pass(url_.transport == ProbeTransport::Tls ? "TCP and " + cert.protocol + " handshake" : "TCP handshake");
  });
  if (!ok) return finish();
  if (url_.transport == ProbeTransport::Tls) {
    // A certificate problem fails the probe but not the TURN steps, which still say what works.
    step("certificate", [&] {
      std::string d = cert.subject + " issued by " + cert.issuer + "; " + std::to_string(cert.chain_length) +
                      " certificate(s), chain " + (cert.chain_ok ? "verified" : "NOT verified: " + cert.chain_error) +
                      "; name " + cert.name + (cert.name_ok ? " matches" : " NOT in the certificate") + "; " +
                      (cert.days_left < 0 ? "EXPIRED " + std::to_string(-cert.days_left) + " days ago"
                                          : "expires in " + std::to_string(cert.days_left) + " days");
      nlohmann::json extra = {
          {"subject", cert.subject},   {"issuer", cert.issuer},           {"chain_length", cert.chain_length},
          {"chain_ok", cert.chain_ok}, {"chain_error", cert.chain_error}, {"server_name", cert.name},
          {"name_ok", cert.name_ok},   {"days_left", cert.days_left},     {"protocol", cert.protocol}};
      return StepResult{cert.chain_ok && cert.name_ok && cert.days_left >= 0, d, extra};
    });
  }

  TurnClient ca(client_config());
  ok = step("binding", [&] {
    return request_step(
        *a, ca, stun::Method::Binding, [](TurnClient& c, stun::MutableBytes out) { return c.binding_request(out); },
        [](const Response& r) {
      if (!r.mapped) return fail("success without XOR-MAPPED-ADDRESS");
      return pass("reflexive address " + r.mapped->to_string(), {{"reflexive", r.mapped->to_string()}});
        });
  });
  if (!ok || !url_.turn) return finish();

  TurnClient cb(client_config());
  if (!step("allocate A", [&] { return allocate(*a, ca); })) return finish();
  ok = step("allocate B", [&] {
    std::string error;
    b = connect_probe(url_.transport, server_, tls, deadline(), &error, nullptr);
    if (!b) return fail("second connection: " + error);
    return allocate(*b, cb);
  });
  if (!ok) {
    release({{a.get(), &ca, "A"}});
    return finish();
  }
  const TransportAddress relay_a = ca.relayed()[0], relay_b = cb.relayed()[0];
  auto permit = [&](ProbeConnection& conn, TurnClient& c, const TransportAddress& peer) {
    return request_step(
        conn, c, stun::Method::CreatePermission,
        [peer](TurnClient& cl, stun::MutableBytes out) { return cl.create_permission_request(out, {peer}); },
        [](const Response&) { return pass(""); });
  };
  auto bind = [&](ProbeConnection& conn, TurnClient& c, const TransportAddress& peer) {
    return request_step(
        conn, c, stun::Method::ChannelBind,
        [peer](TurnClient& cl, stun::MutableBytes out) { return cl.channel_bind_request(out, kChannel, peer); },
        [](const Response&) { return pass(""); });
  };
  ok = step("permission", [&] {
    if (auto r = permit(*a, ca, relay_b); !r.ok) return fail("A for " + relay_b.ip_string() + ": " + r.detail);
    if (auto r = permit(*b, cb, relay_a); !r.ok) return fail("B for " + relay_a.ip_string() + ": " + r.detail);
    return pass("A for " + relay_b.ip_string() + ", B for " + relay_a.ip_string());
  });
  if (ok) {
    ok = step("channel bind", [&] {
      if (auto r = bind(*a, ca, relay_b); !r.ok) return fail("A to " + relay_b.to_string() + ": " + r.detail);
      if (auto r = bind(*b, cb, relay_a); !r.ok) return fail("B to " + relay_a.to_string() + ": " + r.detail);
      return pass("0x4000 on A to " + relay_b.to_string() + ", on B to " + relay_a.to_string());
    });
  }
  if (ok) ok = step("data A->B", [&] { return relay_data(*a, *b, cb); });
  if (ok) step("data B->A", [&] { return relay_data(*b, *a, ca); });
  release({{a.get(), &ca, "A"}, {b.get(), &cb, "B"}});
  return finish();
}

// Refresh LIFETIME 0 for every allocation made, whatever happened, so that the probe leaves
// nothing behind on the server.
void Probe::release(std::initializer_list<Held> held) {
  step("release", [&] {
    std::string failures;
    for (const Held& h : held) {
      auto r = request_step(
          *h.conn, *h.client, stun::Method::Refresh,
          [](TurnClient& cl, stun::MutableBytes out) { return cl.refresh_request(out, 0); },
          [](const Response&) { return pass(""); });
      if (!r.ok) failures += std::string(failures.empty() ? "" : "; ") + h.name + ": " + r.detail;
    }
    if (!failures.empty()) return fail(failures);
    return pass(held.size() == 1 ? "the allocation deleted (Refresh LIFETIME 0)"
                                 : "both allocations deleted (Refresh LIFETIME 0)");
  });
}

int Probe::finish() {
  const double total = std::chrono::duration<double, std::milli>(ProbeClock::now() - started_).count();
  const StepRecord* failed = nullptr;
  for (const auto& s : steps_) {
    if (!s.result.ok && failed == nullptr) failed = &s;
  }
  if (o_.json) {
    nlohmann::json steps = nlohmann::json::array();
    for (const auto& s : steps_) {
      nlohmann::json j = {{"name", s.name}, {"ok", s.result.ok}, {"ms", s.ms}, {"detail", s.result.detail}};
      j.update(s.result.extra);
      steps.push_back(std::move(j));
    }
    nlohmann::json out = {{"url", o_.url},
                          {"transport", std::string(transport_name(url_.transport))},
                          {"server", server_.port != 0 ? server_.to_string() : ""},
                          {"credential", creds_ ? creds_->note : ""},
                          {"ok", failed == nullptr},
                          {"total_ms", total},
                          {"steps", steps}};
    std::cout << out.dump(2) << "\n";
  } else if (failed == nullptr) {
    std::printf("PASS: %zu steps passed in %.1f ms\n", steps_.size(), total);
  } else {
    std::printf("FAIL at %s: %s\n", failed->name.c_str(), failed->result.detail.c_str());
  }
  std::fflush(stdout);
  return failed == nullptr ? 0 : 1;
}

int run_probe(const ProbeOptions& o) {
  try {
    if (!(o.timeout > 0 && o.timeout <= 120)) throw UsageError{"--timeout must be in (0, 120] seconds"};
    ProbeUrl url = parse_url(o.url);
    auto creds = credentials_for(o, url.turn);
    return Probe(o, std::move(url), std::move(creds)).run();
  } catch (const UsageError& e) {
    std::cerr << "ferryctl: probe: " << e.message << "\n";
    return kUsageError;
  } catch (const std::exception& e) {
    std::cerr << "ferryctl: probe: " << e.what() << "\n";
    return 1;
  }
}

}  // namespace

void add_probe_command(CLI::App& app) {
  auto o = std::make_shared<ProbeOptions>();
  auto* cmd = app.add_subcommand(
      "probe",
      "end-to-end check of any TURN server: Binding, two Allocates, permissions, channels and data both ways "
      "(and the certificate for turns:); a timed line per step, exit 0 only if all pass");
  cmd->add_option("url", o->url, "turn:HOST[:PORT][?transport=udp|tcp], turns:HOST[:PORT], or stun:HOST[:PORT]")
      ->required();
  cmd->add_option("--user", o->user, "long-term username; with --secret-stdin the user id in the REST username");
  cmd->add_flag("--password-stdin", o->password_stdin, "read the password from stdin (one line)");
  cmd->add_flag("--secret-stdin", o->secret_stdin,
                "read a shared secret from stdin and make a TURN REST credential from it");
  cmd->add_option("--ttl", o->ttl, "lifetime of the REST credential made with --secret-stdin (default 600 s)");
  cmd->add_option("--timeout", o->timeout, "seconds each step may take (default 5)");
  cmd->add_option("--ca", o->ca_file, "turns: trust the CA certificates in this PEM file instead of the system's");
  cmd->add_option("--servername", o->server_name,
                  "turns: the name to send (SNI) and find in the certificate (default: the URL's host)");
  cmd->add_flag("--json", o->json, "print one JSON object instead of lines");
  cmd->callback([o] { throw CLI::RuntimeError(run_probe(*o)); });
}

}  // namespace ferry::ferryctl
