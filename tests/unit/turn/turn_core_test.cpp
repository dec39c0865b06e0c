// ServerCore driven end to end without sockets: a FakeClock, a recording Io, StaticUsers (or an
// asynchronous store) and the sans-I/O TurnClient building the requests. Each test checks the exact
// answer (class, error code, attributes, integrity) and that no allocation or relay socket leaks.
#include "turn/server_core.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <deque>
#include <functional>
#include <map>
#include <set>
#include <memory>
#include <string>
#include <vector>

#include "auth/static_users.h"
#include "client/turn_client.h"
#include "stun/attributes.h"
#include "stun/channel_data.h"
#include "stun/integrity.h"
#include "stun/message.h"
#include "stun/message_builder.h"

namespace ferry::turn {
namespace {

using namespace std::chrono_literals;
using client::AllocateOptions;
using client::Outcome;
using client::Response;
using client::TurnClient;
using client::TurnClientConfig;
using stun::Bytes;
using stun::Family;
using stun::MessageView;
using stun::MutableBytes;
namespace attr = stun::attr;
namespace code = stun::code;

constexpr char kRealm[] = "ferry";

TransportAddress addr(const std::string& text) {
  auto a = TransportAddress::parse(text);
  EXPECT_TRUE(a.has_value()) << text;
  return a.value_or(TransportAddress{});
}

Bytes bytes_of(std::string_view s) { return Bytes(reinterpret_cast<const uint8_t*>(s.data()), s.size()); }
std::string string_of(Bytes b) { return std::string(reinterpret_cast<const char*>(b.data()), b.size()); }

// ---- a recording Io -------------------------------------------------------------------------------

class RecordingIo final : public Io {
 public:
  const uint8_t* last_client_data = nullptr;  // where the core built its last message to a client
  struct ToClient {
    FiveTuple to;
    std::vector<uint8_t> bytes;
  };
  struct ToPeer {
    RelayId relay;
    TransportAddress peer;
    std::vector<uint8_t> bytes;
  };

  void send_to_client(const FiveTuple& to, Bytes bytes) override {
    last_client_data = bytes.data();
    to_client.push_back({to, std::vector<uint8_t>(bytes.begin(), bytes.end())});
  }
  void send_to_peer(RelayId relay, const TransportAddress& peer, Bytes bytes) override {
    EXPECT_TRUE(open.count(relay)) << "send on relay " << relay << " which is not open";
    to_peer.push_back({relay, peer, std::vector<uint8_t>(bytes.begin(), bytes.end())});
  }
  OpenRelayResult open_relay(RelayId relay, const TransportAddress& local, bool dont_fragment) override {
    ++open_attempts;
    if (!fail_next.empty()) {
      const OpenRelayResult r = fail_next.front();
      fail_next.pop_front();
      return r;
    }
    EXPECT_FALSE(open.count(relay)) << "relay id " << relay << " opened twice";
    for (const auto& [id, a] : open) EXPECT_NE(a, local) << "two relays bound to " << local.to_string();
    open[relay] = local;
    df[relay] = dont_fragment;
    return OpenRelayResult::Opened;
  }
  void close_relay(RelayId relay) override {
    EXPECT_TRUE(open.count(relay)) << "closing relay " << relay << " which is not open";
    open.erase(relay);
    tcp_relays.erase(relay);
    ++closed;
  }
  void allocation_closed(const FiveTuple& client) override { stream_closed.push_back(client); }
  OpenRelayResult open_tcp_relay(RelayId relay, const TransportAddress& local) override {
    const OpenRelayResult r = open_relay(relay, local, false);
    if (r == OpenRelayResult::Opened) tcp_relays.insert(relay);
    return r;
  }
  bool connect_peer(ConnectionId id, RelayId relay, const TransportAddress& peer) override {
    EXPECT_TRUE(tcp_relays.count(relay)) << "connect from relay " << relay << " which is no TCP relay";
    connects.push_back({id, relay, peer});
    return connect_starts;
  }
  void bind_data_connection(ConnectionId id, const FiveTuple& client) override { bound.push_back({id, client}); }
  void close_peer_connection(ConnectionId id) override { closed_connections.push_back(id); }

  std::optional<RelayId> relay_at(const TransportAddress& local) const {
    for (const auto& [id, a] : open) {
      if (a == local) return id;
    }
    return std::nullopt;
  }

  std::vector<ToClient> to_client;
  std::vector<ToPeer> to_peer;
  std::map<RelayId, TransportAddress> open;
  std::map<RelayId, bool> df;
  std::deque<OpenRelayResult> fail_next;  // results for the next open_relay calls
  size_t open_attempts = 0;
  size_t closed = 0;
  std::vector<FiveTuple> stream_closed;
  // RFC 6062
  struct Connect {
    ConnectionId id;
    RelayId relay;
    TransportAddress peer;
  };
  std::set<RelayId> tcp_relays;
  std::vector<Connect> connects;
  bool connect_starts = true;  // what connect_peer answers
  std::vector<std::pair<ConnectionId, FiveTuple>> bound;
  std::vector<ConnectionId> closed_connections;
};

// ---- an asynchronous credential store ----------------------------------------------------------------

class AsyncStore final : public auth::CredentialStore {
 public:
  explicit AsyncStore(auth::CredentialStore& inner) : inner_(inner) {}
  std::optional<auth::LookupResult> lookup(std::string_view username, std::string_view realm, Callback done) override {
    if (!defer) return inner_.lookup(username, realm, nullptr);
    queued_.push_back({std::string(username), std::string(realm), std::move(done)});
    return std::nullopt;
  }
  std::optional<std::string> username_for_hash(std::span<const uint8_t, 32> h, std::string_view realm) override {
    return inner_.username_for_hash(h, realm);
  }
  size_t queued() const { return queued_.size(); }
  bool defer = true;  // false: answer at once, like a warm cache
  // Answers every queued lookup, as a database reply arriving on the loop would.
  void answer_all() {
    auto q = std::move(queued_);
    queued_.clear();
    for (auto& e : q) e.done(*inner_.lookup(e.username, e.realm, nullptr));
  }

 private:
  struct Entry {
    std::string username, realm;
    Callback done;
  };
  auth::CredentialStore& inner_;
  std::vector<Entry> queued_;
};

// ---- fixture --------------------------------------------------------------------------------------

const TransportAddress kRelay4 = TransportAddress::parse("198.51.100.10:0").value();
const TransportAddress kRelay6 = TransportAddress::parse("[2001:db8::10]:0").value();
const TransportAddress kListener = TransportAddress::parse("198.51.100.1:3478").value();
const TransportAddress kPeer = TransportAddress::parse("192.0.2.7:5000").value();
const TransportAddress kPeer2 = TransportAddress::parse("192.0.2.8:6000").value();
const TransportAddress kPeer6 = TransportAddress::parse("[2001:db8:1::7]:5000").value();

class TurnCoreTest : public ::testing::Test {
 protected:
  TurnCoreTest() {
    users.add_password("alice", "alice-pw");
    users.add_password("bob", "bob-pw");
    config.realm = kRealm;
    config.relays = {RelayAddress{kRelay4, std::nullopt}};
    config.port_min = 50000;
    config.port_max = 50999;
    config.nonce_key.fill(0x42);
    config.seed = 7;
    config.userhash = false;  // most tests use USERNAME; UserhashWorks turns it on
    policy.allow(*Cidr::parse("192.0.2.0/24"));
  }

  void TearDown() override {
    if (!core) return;
    // The core and the Io agree on which relay sockets are open...
    EXPECT_EQ(io.open.size(), core->open_relay_count());
    // ...and destroying the core closes every one of them.
    core.reset();
    EXPECT_TRUE(io.open.empty()) << io.open.size() << " relay sockets left open";
  }

  ServerCore& make_core() {
    core = std::make_unique<ServerCore>(config, clock, io, store != nullptr ? *store : users, policy);
    return *core;
  }
  ServerCore& server() {
    if (!core) make_core();
    return *core;
  }

  static FiveTuple tuple(int n, Transport t = Transport::Udp) {
    return FiveTuple{TransportAddress::v4(0xCB007100u + static_cast<uint32_t>(n), static_cast<uint16_t>(40000 + n)),
                     kListener, t};
  }
  static TurnClientConfig creds(const std::string& user, const std::string& password) {
    TurnClientConfig c;
    c.username = user;
    c.password = password;
    return c;
  }
  static TurnClient alice() { return TurnClient(creds("alice", "alice-pw")); }
  static TurnClient bob() { return TurnClient(creds("bob", "bob-pw")); }

  // Sends one request and expects exactly one answer, to the sender.
  Response exchange(TurnClient& c, const FiveTuple& t, Bytes request) {
    last_request.assign(request.begin(), request.end());
    io.to_client.clear();
    server().on_client_packet(t, request);
    if (io.to_client.size() != 1) {
      ADD_FAILURE() << "expected one response, got " << io.to_client.size();
      return Response{};
    }
    EXPECT_EQ(io.to_client[0].to, t);
    last_response = io.to_client[0].bytes;
    return c.on_response(last_response);
  }
  // Builds a request, sends it, and follows 401/438 retries like a real client.
  using Build = std::function<stun::Result<Bytes>(TurnClient&, MutableBytes)>;
  Response transact(TurnClient& c, const FiveTuple& t, const Build& build) {
    auto req = build(c, buf);
    if (!req) {
      ADD_FAILURE() << "request did not build";
      return Response{};
    }
    Response r = exchange(c, t, *req);
    for (int i = 0; i < 3 && r.outcome == Outcome::Retry; ++i) {
      auto again = c.retry(buf, r.transaction_id);
      if (!again) {
        ADD_FAILURE() << "retry did not build";
        return r;
      }
      r = exchange(c, t, *again);
    }
    return r;
  }
  Response allocate(TurnClient& c, const FiveTuple& t, const AllocateOptions& o = {}) {
    return transact(c, t, [&](TurnClient& cl, MutableBytes out) { return cl.allocate_request(out, o); });
  }
  Response refresh(TurnClient& c, const FiveTuple& t, std::optional<uint32_t> lifetime = {},
                   std::optional<Family> family = {}) {
    return transact(c, t, [&](TurnClient& cl, MutableBytes out) { return cl.refresh_request(out, lifetime, family); });
  }
  Response permit(TurnClient& c, const FiveTuple& t, std::vector<TransportAddress> peers) {
    return transact(c, t, [&](TurnClient& cl, MutableBytes out) {
      return cl.create_permission_request(out, std::span<const TransportAddress>(peers));
    });
  }
  Response bind(TurnClient& c, const FiveTuple& t, uint16_t channel, const TransportAddress& peer) {
    return transact(c, t, [&](TurnClient& cl, MutableBytes out) { return cl.channel_bind_request(out, channel, peer); });
  }
  // Allocates and checks it worked; returns the relayed IPv4 address.
  TransportAddress allocate_ok(TurnClient& c, const FiveTuple& t, const AllocateOptions& o = {}) {
    Response r = allocate(c, t, o);
    EXPECT_EQ(r.outcome, Outcome::Success) << r.error_code << " " << r.reason;
    EXPECT_TRUE(r.authenticated);
    if (r.relayed.empty()) {
      ADD_FAILURE() << "no XOR-RELAYED-ADDRESS";
      return {};
    }
    return r.relayed[0];
  }

  void send_indication(TurnClient& c, const FiveTuple& t, const TransportAddress& peer, std::string_view data) {
    auto ind = c.send_indication(buf, peer, bytes_of(data));
    ASSERT_TRUE(ind.ok());
    server().on_client_packet(t, *ind);
  }
  void send_channel_data(const FiveTuple& t, uint16_t channel, std::string_view data) {
    auto cd = TurnClient::channel_data(buf, channel, bytes_of(data), is_stream(t.transport));
    ASSERT_TRUE(cd.ok());
    server().on_client_packet(t, *cd);
  }
  // A datagram from `peer` arriving on the relay socket bound at `relayed`.
  void from_peer(const TransportAddress& relayed, const TransportAddress& peer, std::string_view payload) {
    auto relay = io.relay_at(relayed);
    ASSERT_TRUE(relay.has_value()) << "no relay at " << relayed.to_string();
    std::vector<uint8_t> b(ServerCore::kPeerHeadroom + payload.size() + ServerCore::kPeerTailroom, 0xEE);
    std::memcpy(b.data() + ServerCore::kPeerHeadroom, payload.data(), payload.size());
    server().on_peer_packet(*relay, peer, b.data(), payload.size());
  }

  MessageView response_view() const {
    auto v = MessageView::parse(Bytes(last_response));
    EXPECT_TRUE(v.ok());
    return *v;
  }
  static void expect_error(const Response& r, uint16_t c) {
    EXPECT_EQ(r.outcome, Outcome::Error) << client::to_string(r.outcome) << " " << r.reason;
    EXPECT_EQ(r.error_code, c) << r.reason;
  }
  void expect_nothing_allocated() {
    EXPECT_EQ(server().allocation_count(), 0u);
    EXPECT_EQ(server().open_relay_count(), 0u);
    EXPECT_TRUE(io.open.empty());
  }
  uint64_t dropped(DropReason r) const { return core->stats().dropped[static_cast<size_t>(r)].get(); }

  FakeClock clock;
  RecordingIo io;
  auth::StaticUsers users{kRealm};
  auth::CredentialStore* store = nullptr;  // null: `users`
  ServerCoreConfig config;
  PeerPolicy policy;
  std::unique_ptr<ServerCore> core;
  std::array<uint8_t, 2048> buf{};
  std::vector<uint8_t> last_request;
  std::vector<uint8_t> last_response;
};

// ================================ Binding ================================

TEST_F(TurnCoreTest, BindingReturnsXorMappedAddress) {
  TurnClient c = alice();
  Response r = transact(c, tuple(1), [](TurnClient& cl, MutableBytes out) { return cl.binding_request(out); });
  EXPECT_EQ(r.outcome, Outcome::Success);
  EXPECT_EQ(r.method, stun::Method::Binding);
  ASSERT_TRUE(r.mapped);
  EXPECT_EQ(*r.mapped, tuple(1).client);
  MessageView v = response_view();
  EXPECT_TRUE(v.has(attr::XorMappedAddress));
  EXPECT_FALSE(v.has(attr::MappedAddress));
  EXPECT_FALSE(v.message_integrity());
  EXPECT_FALSE(v.fingerprint());
  EXPECT_EQ(c.pending_count(), 0u);
  EXPECT_EQ(server().stats().binding_requests.get(), 1u);
  expect_nothing_allocated();
}

TEST_F(TurnCoreTest, Rfc3489BindingWithoutCookieGetsMappedAddress) {
  // RFC 8489 §12: a request without the magic cookie is an RFC 3489 client's.
  std::array<uint8_t, 20> req{};
  stun::store_u16(req.data(), stun::make_type(stun::Method::Binding, stun::Class::Request));
  for (size_t i = 4; i < 20; ++i) req[i] = static_cast<uint8_t>(0xA0 + i);
  server().on_client_packet(tuple(1), req);
  ASSERT_EQ(io.to_client.size(), 1u);
  // MessageView only accepts cookie-less *requests*, so read the answer by hand: header, then
  // exactly one attribute, MAPPED-ADDRESS (RFC 3489 has no XOR-MAPPED-ADDRESS).
  const std::vector<uint8_t>& res = io.to_client[0].bytes;
  ASSERT_EQ(res.size(), 20u + 4u + 8u);
  EXPECT_EQ(stun::load_u16(res.data()), stun::make_type(stun::Method::Binding, stun::Class::Success));
  EXPECT_EQ(stun::load_u16(res.data() + 2), 12);
  EXPECT_TRUE(std::equal(req.begin() + 4, req.end(), res.begin() + 4));  // all 16 id bytes back
  EXPECT_EQ(stun::load_u16(res.data() + 20), attr::MappedAddress);
  EXPECT_EQ(stun::load_u16(res.data() + 22), 8);
  auto mapped = stun::decode_address(Bytes(res.data() + 24, 8));
  ASSERT_TRUE(mapped.ok());
  EXPECT_EQ(*mapped, tuple(1).client);
}

TEST_F(TurnCoreTest, AnswerIsBuiltInTheLentScratchOnlyDuringItsPacket) {
  TurnClient c = alice();
  auto in_range = [](const uint8_t* p, const std::vector<uint8_t>& v) { return p >= v.data() && p < v.data() + v.size(); };
  std::vector<uint8_t> scratch(ServerCore::kResponseCapacity + 100, 0);
  auto req = c.binding_request(buf);
  ASSERT_TRUE(req);
  server().on_client_packet(tuple(1), *req, scratch);
  ASSERT_EQ(io.to_client.size(), 1u);
  EXPECT_TRUE(in_range(io.last_client_data, scratch));
  EXPECT_EQ(c.on_response(io.to_client[0].bytes).outcome, Outcome::Success);
  // Too small to hold any answer: not used.
  std::vector<uint8_t> small(ServerCore::kResponseCapacity - 1, 0);
  req = c.binding_request(buf);
  ASSERT_TRUE(req);
  server().on_client_packet(tuple(1), *req, small);
  ASSERT_EQ(io.to_client.size(), 2u);
  EXPECT_FALSE(in_range(io.last_client_data, small));
  // Not lent: the core's own buffer, not the scratch of an earlier packet.
  req = c.binding_request(buf);
  ASSERT_TRUE(req);
  server().on_client_packet(tuple(1), *req);
  ASSERT_EQ(io.to_client.size(), 3u);
  EXPECT_FALSE(in_range(io.last_client_data, scratch));
}

TEST_F(TurnCoreTest, BindingIndicationGetsNoAnswer) {
  stun::TransactionId id = client::random_transaction_id();
  stun::MessageBuilder b(buf, stun::Method::Binding, stun::Class::Indication, id);
  server().on_client_packet(tuple(1), *b.finish());
  EXPECT_TRUE(io.to_client.empty());
}

TEST_F(TurnCoreTest, FingerprintEchoedWhenRequested) {
  TurnClientConfig cfg = creds("alice", "alice-pw");
  cfg.fingerprint = true;
  TurnClient c(cfg);
  Response r = transact(c, tuple(1), [](TurnClient& cl, MutableBytes out) { return cl.binding_request(out); });
  EXPECT_EQ(r.outcome, Outcome::Success);
  MessageView v = response_view();
  ASSERT_TRUE(v.fingerprint());
  EXPECT_TRUE(stun::verify_fingerprint(v));
}

TEST_F(TurnCoreTest, WrongFingerprintIsDropped) {
  TurnClientConfig cfg = creds("alice", "alice-pw");
  cfg.fingerprint = true;
  TurnClient c(cfg);
  auto req = c.binding_request(buf);
  ASSERT_TRUE(req.ok());
  buf[req->size() - 1] ^= 0x01;  // corrupt the CRC
  server().on_client_packet(tuple(1), *req);
  EXPECT_TRUE(io.to_client.empty());
}

TEST_F(TurnCoreTest, UnknownComprehensionRequiredAttributeGets420) {
  TurnClient c = alice();
  Response r = transact(c, tuple(1), [](TurnClient& cl, MutableBytes out) {
    return cl.request(out, stun::Method::Binding, [](stun::MessageBuilder& b) {
      const uint8_t v[4] = {1, 2, 3, 4};
      b.add(0x7F01, Bytes(v));  // unknown, comprehension-required
      b.add(0xC001, Bytes(v));  // unknown, comprehension-optional: not listed
    }, false);
  });
  expect_error(r, code::UnknownAttribute);
  EXPECT_EQ(r.unknown_attributes, std::vector<uint16_t>{0x7F01});
  EXPECT_EQ(server().stats().errors_sent[420].get(), 1u);
}

TEST_F(TurnCoreTest, UnknownAttributeInAllocateGets420BeforeAuthentication) {
  TurnClient c = alice();
  Response r = transact(c, tuple(1), [](TurnClient& cl, MutableBytes out) {
    return cl.request(out, stun::Method::Allocate, [](stun::MessageBuilder& b) {
      b.add_requested_transport(stun::kTransportUdp);
      b.add_u32(0x7F02, 0);
    });
  });
  expect_error(r, code::UnknownAttribute);
  EXPECT_EQ(r.unknown_attributes, std::vector<uint16_t>{0x7F02});
  expect_nothing_allocated();
}

TEST_F(TurnCoreTest, ChangeRequestWithoutOtherAddressGets420) {
  TurnClient c = alice();
  Response r = transact(c, tuple(1), [](TurnClient& cl, MutableBytes out) {
    return cl.request(out, stun::Method::Binding, [](stun::MessageBuilder& b) { b.add_change_request(true, true); },
                      false);
  });
  expect_error(r, code::UnknownAttribute);
  EXPECT_EQ(r.unknown_attributes, std::vector<uint16_t>{attr::ChangeRequest});
}

// ---- RFC 5780 NAT behaviour discovery ------------------------------------------------------------

const TransportAddress kAlternate = TransportAddress::parse("198.51.100.2:3479").value();

// A Binding request with RFC 5780 attributes from client `n` to `local`; returns where the one
// answer went (its 5-tuple) and the answer.
struct NatAnswer {
  FiveTuple to;
  Response response;
  size_t size = 0;
};

class NatDiscoveryTest : public TurnCoreTest {
 protected:
  NatDiscoveryTest() { config.nat_discovery = NatDiscovery{kListener, kAlternate}; }

  NatAnswer binding(const TransportAddress& local, const std::function<void(stun::MessageBuilder&)>& attrs,
                    Transport t = Transport::Udp) {
    TurnClient c = alice();
    auto req = c.request(buf, stun::Method::Binding, attrs, false);
    EXPECT_TRUE(req.ok());
    io.to_client.clear();
    FiveTuple from = tuple(1, t);
    from.server = local;
    server().on_client_packet(from, *req);
    if (io.to_client.size() != 1) {
      ADD_FAILURE() << "expected one answer, got " << io.to_client.size();
      return {};
    }
    return {io.to_client[0].to, c.on_response(io.to_client[0].bytes), io.to_client[0].bytes.size()};
  }
  NatAnswer change(const TransportAddress& local, bool ip, bool port) {
    return binding(local, [&](stun::MessageBuilder& b) { b.add_change_request(ip, port); });
  }
};

TEST_F(NatDiscoveryTest, PlainBindingCarriesResponseOriginOtherAddressAndMappedAddress) {
  NatAnswer a = binding(kListener, [](stun::MessageBuilder&) {});
  ASSERT_EQ(a.response.outcome, Outcome::Success);
  EXPECT_EQ(a.to, tuple(1));
  EXPECT_EQ(a.response.response_origin, kListener);
  EXPECT_EQ(a.response.other_address, kAlternate);
  EXPECT_EQ(a.response.mapped, tuple(1).client);
  auto v = MessageView::parse(Bytes(io.to_client[0].bytes));
  ASSERT_TRUE(v.ok());
  EXPECT_TRUE(v->has(attr::MappedAddress));  // RFC 5780 §6.1: both, so clients can spot an ALG
  EXPECT_TRUE(v->has(attr::XorMappedAddress));
}

TEST_F(NatDiscoveryTest, ChangeIpAnswersFromTheOtherAddressSamePort) {
  NatAnswer a = change(kListener, true, false);
  ASSERT_EQ(a.response.outcome, Outcome::Success);
  const TransportAddress expected = addr("198.51.100.2:3478");
  EXPECT_EQ(a.to.server, expected);
  EXPECT_EQ(a.to.client, tuple(1).client);
  EXPECT_EQ(a.response.response_origin, expected);
  EXPECT_EQ(a.response.other_address, kAlternate);
}

TEST_F(NatDiscoveryTest, ChangePortAnswersFromTheOtherPortSameAddress) {
  NatAnswer a = change(kListener, false, true);
  ASSERT_EQ(a.response.outcome, Outcome::Success);
  const TransportAddress expected = addr("198.51.100.1:3479");
  EXPECT_EQ(a.to.server, expected);
  EXPECT_EQ(a.response.response_origin, expected);
}

TEST_F(NatDiscoveryTest, ChangeBothAnswersFromTheAlternate) {
  NatAnswer a = change(kListener, true, true);
  ASSERT_EQ(a.response.outcome, Outcome::Success);
  EXPECT_EQ(a.to.server, kAlternate);
  EXPECT_EQ(a.response.response_origin, kAlternate);
}

TEST_F(NatDiscoveryTest, EmptyChangeRequestAnswersFromWhereItArrived) {
  NatAnswer a = change(kListener, false, false);
  ASSERT_EQ(a.response.outcome, Outcome::Success);
  EXPECT_EQ(a.to, tuple(1));
  EXPECT_EQ(a.response.response_origin, kListener);
}

TEST_F(NatDiscoveryTest, OtherAddressIsRelativeToWhereTheRequestArrived) {
  // RFC 5780 §6.1 Table 1: from A2:P1 the other address is A1:P2, and "change IP" leads back to A1.
  const TransportAddress a2p1 = addr("198.51.100.2:3478");
  NatAnswer a = change(a2p1, true, false);
  ASSERT_EQ(a.response.outcome, Outcome::Success);
  EXPECT_EQ(a.to.server, kListener);
  EXPECT_EQ(a.response.response_origin, kListener);
  EXPECT_EQ(a.response.other_address, addr("198.51.100.1:3479"));
  // From A2:P2 changing both ends at A1:P1.
  NatAnswer b = change(kAlternate, true, true);
  EXPECT_EQ(b.to.server, kListener);
  EXPECT_EQ(b.response.other_address, kListener);
}

TEST_F(NatDiscoveryTest, ResponsePortSendsToThatPortOfTheClient) {
  NatAnswer a = binding(kListener, [](stun::MessageBuilder& b) { b.add_u32(attr::ResponsePort, 0xBEEF0000u); });
  ASSERT_EQ(a.response.outcome, Outcome::Success);
  EXPECT_EQ(a.to.client, tuple(1).client.with_port(0xBEEF));
  EXPECT_EQ(a.response.mapped, tuple(1).client);  // still the address the request came from
}

TEST_F(NatDiscoveryTest, PaddingFillsTheAnswerToA1500ByteDatagram) {
  NatAnswer a = binding(kListener, [](stun::MessageBuilder& b) { b.add(attr::Padding, Bytes()); });
  ASSERT_EQ(a.response.outcome, Outcome::Success);
  EXPECT_LE(a.size, 1500u - 28u);
  EXPECT_GT(a.size, 1500u - 28u - 4u);
}

TEST_F(NatDiscoveryTest, PaddedAnswersCountAgainstTheUnauthenticatedRate) {
  config.unauth_requests_per_second = 1;  // a burst of 2
  TurnClient c = alice();
  size_t answered = 0;
  for (int i = 0; i < 4; ++i) {
    auto req = c.request(buf, stun::Method::Binding, [](stun::MessageBuilder& b) { b.add(attr::Padding, Bytes()); },
                         false);
    ASSERT_TRUE(req.ok());
    io.to_client.clear();
    server().on_client_packet(tuple(1), *req);
    answered += io.to_client.size();
  }
  EXPECT_EQ(answered, 2u);
  EXPECT_EQ(dropped(DropReason::RateLimited), 2u);
  // Unpadded answers are not limited (ICE keep-alives).
  NatAnswer a = binding(kListener, [](stun::MessageBuilder&) {});
  EXPECT_EQ(a.response.outcome, Outcome::Success);
}

TEST_F(NatDiscoveryTest, PaddingWithResponsePortGets400) {
  NatAnswer a = binding(kListener, [](stun::MessageBuilder& b) {
    b.add(attr::Padding, Bytes());
    b.add_u32(attr::ResponsePort, 0x13880000u);
  });
  EXPECT_EQ(a.response.error_code, code::BadRequest);
}

TEST_F(NatDiscoveryTest, ChangeRequestOverTcpGets400) {
  NatAnswer a = binding(kListener, [](stun::MessageBuilder& b) { b.add_change_request(true, false); }, Transport::Tcp);
  EXPECT_EQ(a.response.error_code, code::BadRequest);
  EXPECT_EQ(a.to.server, kListener);
}

TEST_F(NatDiscoveryTest, ChangeRequestOnAnotherListenerGets420) {
  // A listener that is not one of the four (here IPv6) has no alternate to answer from.
  const TransportAddress v6 = addr("[2001:db8::1]:3478");
  NatAnswer a = change(v6, true, false);
  EXPECT_EQ(a.response.error_code, code::UnknownAttribute);
  EXPECT_EQ(a.response.unknown_attributes, std::vector<uint16_t>{attr::ChangeRequest});
  EXPECT_EQ(a.to.server, v6);
  // A plain Binding there is answered, without RESPONSE-ORIGIN or OTHER-ADDRESS.
  NatAnswer b = binding(v6, [](stun::MessageBuilder&) {});
  EXPECT_EQ(b.response.outcome, Outcome::Success);
  EXPECT_FALSE(b.response.other_address);
  EXPECT_FALSE(b.response.response_origin);
}

TEST_F(TurnCoreTest, Rfc5780AttributesWithoutNatDiscoveryGet420) {
  TurnClient c = alice();
  Response r = transact(c, tuple(1), [](TurnClient& cl, MutableBytes out) {
    return cl.request(out, stun::Method::Binding, [](stun::MessageBuilder& b) {
      b.add_u32(attr::ResponsePort, 0x13880000u);
      b.add(attr::Padding, Bytes());
    }, false);
  });
  expect_error(r, code::UnknownAttribute);
  EXPECT_EQ(r.unknown_attributes, (std::vector<uint16_t>{attr::ResponsePort, attr::Padding}));
  EXPECT_FALSE(r.other_address);
}

TEST(NatDiscovery, SourceAndOtherFollowTable1) {
  const NatDiscovery nd{kListener, kAlternate};
  const TransportAddress a2p1 = addr("198.51.100.2:3478"), a1p2 = addr("198.51.100.1:3479");
  EXPECT_EQ(nd.addresses(), (std::array<TransportAddress, 4>{kListener, a2p1, a1p2, kAlternate}));
  for (const auto& a : nd.addresses()) {
    EXPECT_TRUE(nd.serves(a));
    EXPECT_EQ(nd.source(a, false, false), a);
    EXPECT_NE(nd.other(a).ip, a.ip);
    EXPECT_NE(nd.other(a).port, a.port);
  }
  EXPECT_EQ(nd.source(a1p2, true, false), kAlternate);
  EXPECT_EQ(nd.source(a1p2, false, true), kListener);
  EXPECT_FALSE(nd.serves(addr("198.51.100.1:3480")));
}

TEST_F(TurnCoreTest, MalformedRequestGets400) {
  // A Binding request with the cookie whose attribute claims more bytes than there are.
  std::array<uint8_t, 28> req{};
  stun::store_u16(req.data(), stun::make_type(stun::Method::Binding, stun::Class::Request));
  stun::store_u16(req.data() + 2, 8);
  stun::store_u32(req.data() + 4, stun::kMagicCookie);
  for (size_t i = 8; i < 20; ++i) req[i] = static_cast<uint8_t>(i);
  stun::store_u16(req.data() + 20, attr::Software);
  stun::store_u16(req.data() + 22, 100);
  server().on_client_packet(tuple(1), req);
  ASSERT_EQ(io.to_client.size(), 1u);
  auto v = MessageView::parse(Bytes(io.to_client[0].bytes));
  ASSERT_TRUE(v.ok());
  EXPECT_TRUE(v->is(stun::Method::Binding, stun::Class::Error));
  EXPECT_TRUE(std::equal(req.begin() + 8, req.begin() + 20, v->transaction_id().begin()));
  auto e = v->find(attr::ErrorCode);
  ASSERT_TRUE(e);
  EXPECT_EQ(stun::decode_error_code(e->value)->code, code::BadRequest);
  EXPECT_EQ(dropped(DropReason::Malformed), 1u);
}

TEST_F(TurnCoreTest, NonStunDatagramGetsNothing) {
  const std::string junk(40, '\xFF');
  server().on_client_packet(tuple(1), bytes_of(junk));
  server().on_client_packet(tuple(1), bytes_of("hi"));
  // STUN-shaped but a success response (we never sent a request): ignored too.
  stun::MessageBuilder b(buf, stun::Method::Binding, stun::Class::Success, client::random_transaction_id());
  server().on_client_packet(tuple(1), *b.finish());
  EXPECT_TRUE(io.to_client.empty());
  expect_nothing_allocated();
}

// ================================ Allocate: authentication ================================

TEST_F(TurnCoreTest, FirstAllocateGets401WithRealmNonceAndPasswordAlgorithms) {
  TurnClient c = alice();
  auto req = c.allocate_request(buf);
  ASSERT_TRUE(req.ok());
  Response r = exchange(c, tuple(1), *req);
  EXPECT_EQ(r.outcome, Outcome::Retry);
  EXPECT_EQ(r.error_code, code::Unauthenticated);
  EXPECT_EQ(r.realm, kRealm);
  EXPECT_FALSE(r.nonce.empty());
  EXPECT_EQ(r.nonce.substr(0, 9), "obMatJos2");
  MessageView v = response_view();
  EXPECT_FALSE(v.message_integrity());  // RFC 8489 §9.2.4: no integrity on the challenge
  EXPECT_FALSE(v.message_integrity_sha256());
  auto algs = v.find(attr::PasswordAlgorithms);
  ASSERT_TRUE(algs);
  std::vector<uint16_t> listed;
  ASSERT_TRUE(stun::for_each_password_algorithm(algs->value, [&](auto a) { listed.push_back(a.algorithm); }));
  EXPECT_EQ(listed, (std::vector<uint16_t>{2, 1}));  // SHA-256, MD5
  EXPECT_EQ(c.auth_state().realm, kRealm);
  EXPECT_TRUE(c.is_pending(r.transaction_id));  // kept for retry()
  EXPECT_EQ(server().stats().errors_sent[401].get(), 1u);
  expect_nothing_allocated();
}

TEST_F(TurnCoreTest, AllocateSucceedsWithRelayedMappedLifetimeAndIntegrity) {
  TurnClient c = alice();
  Response r = allocate(c, tuple(1));
  ASSERT_EQ(r.outcome, Outcome::Success) << r.error_code << " " << r.reason;
  EXPECT_TRUE(r.authenticated);
  ASSERT_EQ(r.relayed.size(), 1u);
  EXPECT_TRUE(r.relayed[0].same_ip(kRelay4));
  EXPECT_GE(r.relayed[0].port, 50000);
  EXPECT_LE(r.relayed[0].port, 50999);
  ASSERT_TRUE(r.lifetime);
  EXPECT_EQ(*r.lifetime, 600u);
  ASSERT_TRUE(r.mapped);
  EXPECT_EQ(*r.mapped, tuple(1).client);
  EXPECT_FALSE(r.reservation_token);
  // The MESSAGE-INTEGRITY verifies with alice's MD5 long-term key, independently of the client.
  MessageView v = response_view();
  EXPECT_TRUE(stun::verify_message_integrity(v, stun::long_term_key_md5("alice", kRealm, "alice-pw").view()));
  EXPECT_FALSE(stun::verify_message_integrity(v, stun::long_term_key_md5("alice", kRealm, "wrong").view()));
  // The relay socket is bound at exactly the advertised address.
  ASSERT_EQ(io.open.size(), 1u);
  EXPECT_EQ(io.open.begin()->second, r.relayed[0]);
  EXPECT_FALSE(io.df.begin()->second);
  EXPECT_EQ(server().allocation_count(), 1u);
  EXPECT_EQ(server().stats().allocations_created.get(), 1u);
  const Allocation* a = server().find_allocation(tuple(1));
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->username, "alice");
  EXPECT_EQ(a->expires, clock.now() + 600s);
  EXPECT_EQ(c.relayed(), r.relayed);
  EXPECT_EQ(c.pending_count(), 0u);
}

TEST_F(TurnCoreTest, DontFragmentIsPassedToOpenRelay) {
  TurnClient c = alice();
  AllocateOptions o;
  o.dont_fragment = true;
  allocate_ok(c, tuple(1), o);
  ASSERT_EQ(io.df.size(), 1u);
  EXPECT_TRUE(io.df.begin()->second);
}

TEST_F(TurnCoreTest, RetransmittedAllocateGetsIdenticalSuccess) {
  TurnClient c = alice();
  auto first = c.allocate_request(buf);
  ASSERT_EQ(exchange(c, tuple(1), *first).outcome, Outcome::Retry);
  auto req = c.retry(buf, c.last_transaction_id());
  ASSERT_TRUE(req.ok());
  const std::vector<uint8_t> request(req->begin(), req->end());
  Response r = exchange(c, tuple(1), request);
  ASSERT_EQ(r.outcome, Outcome::Success);
  const std::vector<uint8_t> first_answer = last_response;
  clock.advance(200ms);  // a retransmission comes a little later
  server().on_client_packet(tuple(1), request);
  ASSERT_EQ(io.to_client.size(), 2u);
  EXPECT_EQ(io.to_client[1].bytes, first_answer);
  EXPECT_EQ(server().allocation_count(), 1u);
  EXPECT_EQ(io.open.size(), 1u);
  EXPECT_EQ(server().stats().allocations_created.get(), 1u);
}

TEST_F(TurnCoreTest, RetransmittedDualAllocateKeepsAddressErrorCode) {
  TurnClient c = alice();
  AllocateOptions o;
  o.additional_family = Family::V6;  // no IPv6 relay configured: success with ADDRESS-ERROR-CODE 440
  auto first = c.allocate_request(buf, o);
  ASSERT_EQ(exchange(c, tuple(1), *first).outcome, Outcome::Retry);
  auto req = c.retry(buf, c.last_transaction_id());
  const std::vector<uint8_t> request(req->begin(), req->end());
  Response r = exchange(c, tuple(1), request);
  ASSERT_EQ(r.outcome, Outcome::Success);
  ASSERT_TRUE(r.address_error);
  const std::vector<uint8_t> first_answer = last_response;
  clock.advance(1500ms);
  server().on_client_packet(tuple(1), request);
  ASSERT_EQ(io.to_client.size(), 2u);
  EXPECT_EQ(io.to_client[1].bytes, first_answer);
  EXPECT_EQ(server().allocation_count(), 1u);
}

TEST_F(TurnCoreTest, SecondAllocateOnSameTupleGets437) {
  TurnClient c = alice();
  const TransportAddress relayed = allocate_ok(c, tuple(1));
  Response r = allocate(c, tuple(1));
  expect_error(r, code::AllocationMismatch);
  EXPECT_TRUE(r.authenticated);
  EXPECT_EQ(server().allocation_count(), 1u);
  EXPECT_EQ(io.open.size(), 1u);
  EXPECT_EQ(io.open.begin()->second, relayed);
}

TEST_F(TurnCoreTest, WrongPasswordGets401AndNoRetryLoop) {
  TurnClient c(creds("alice", "not-her-password"));
  Response r = allocate(c, tuple(1));
  expect_error(r, code::Unauthenticated);
  EXPECT_EQ(r.reason, "credentials rejected");
  EXPECT_EQ(c.pending_count(), 0u);
  EXPECT_EQ(server().stats().auth_failures[static_cast<size_t>(AuthFailure::BadIntegrity)].get(), 1u);
  EXPECT_EQ(server().stats().errors_sent[401].get(), 2u);  // challenge, then rejection
  expect_nothing_allocated();
}

TEST_F(TurnCoreTest, UnknownUserGets401) {
  TurnClient c(creds("mallory", "whatever"));
  Response r = allocate(c, tuple(1));
  expect_error(r, code::Unauthenticated);
  EXPECT_EQ(server().stats().auth_failures[static_cast<size_t>(AuthFailure::UnknownUser)].get(), 1u);
  expect_nothing_allocated();
}

TEST_F(TurnCoreTest, StaleNonceGets438WithFreshNonceThenSucceeds) {
  TurnClient c = alice();
  auto req = c.allocate_request(buf);
  ASSERT_EQ(exchange(c, tuple(1), *req).outcome, Outcome::Retry);
  const std::string old_nonce = c.auth_state().nonce;
  clock.advance(std::chrono::seconds(config.nonce_lifetime));  // expiry <= now: stale
  auto again = c.retry(buf, c.last_transaction_id());
  Response r = exchange(c, tuple(1), *again);
  EXPECT_EQ(r.outcome, Outcome::Retry);
  EXPECT_EQ(r.error_code, code::StaleNonce);
  EXPECT_FALSE(r.nonce.empty());
  EXPECT_NE(r.nonce, old_nonce);
  EXPECT_EQ(r.realm, kRealm);
  EXPECT_FALSE(response_view().message_integrity());
  EXPECT_EQ(server().allocation_count(), 0u);
  auto third = c.retry(buf, r.transaction_id);
  Response ok = exchange(c, tuple(1), *third);
  EXPECT_EQ(ok.outcome, Outcome::Success) << ok.error_code;
  EXPECT_EQ(server().stats().errors_sent[438].get(), 1u);
  EXPECT_EQ(server().allocation_count(), 1u);
}

TEST_F(TurnCoreTest, NonceFromAnotherTupleGets438) {
  TurnClient a = alice();
  auto req = a.allocate_request(buf);
  ASSERT_EQ(exchange(a, tuple(1), *req).outcome, Outcome::Retry);
  TurnClient b = alice();
  b.set_auth_state(a.auth_state());  // a nonce issued to tuple(1), replayed from tuple(2)
  auto replay = b.allocate_request(buf);
  Response r = exchange(b, tuple(2), *replay);
  EXPECT_EQ(r.outcome, Outcome::Retry);
  EXPECT_EQ(r.error_code, code::StaleNonce);
  EXPECT_NE(r.nonce, a.auth_state().nonce);
  EXPECT_EQ(server().stats().auth_failures[static_cast<size_t>(AuthFailure::BadNonce)].get(), 1u);
  expect_nothing_allocated();
}

TEST_F(TurnCoreTest, MissingRequestedTransportGets400) {
  TurnClient c = alice();
  AllocateOptions o;
  o.transport = std::nullopt;
  Response r = allocate(c, tuple(1), o);
  expect_error(r, code::BadRequest);
  EXPECT_TRUE(r.authenticated);  // after authentication, errors are signed
  expect_nothing_allocated();
}

TEST_F(TurnCoreTest, TcpRequestedTransportGets442WhenTcpRelaysAreOff) {
  config.tcp_relay = false;
  TurnClient c = alice();
  AllocateOptions o;
  o.transport = stun::kTransportTcp;
  expect_error(allocate(c, tuple(1, Transport::Tcp), o), code::UnsupportedTransportProtocol);
  expect_nothing_allocated();
}

TEST_F(TurnCoreTest, OtherRequestedTransportGets442) {
  TurnClient c = alice();
  AllocateOptions o;
  o.transport = 132;  // SCTP
  expect_error(allocate(c, tuple(1, Transport::Tcp), o), code::UnsupportedTransportProtocol);
  expect_nothing_allocated();
}

TEST_F(TurnCoreTest, RequestedFamilyIpv6WithoutIpv6RelayGets440) {
  TurnClient c = alice();
  AllocateOptions o;
  o.requested_family = Family::V6;
  expect_error(allocate(c, tuple(1), o), code::AddressFamilyNotSupported);
  expect_nothing_allocated();
}

TEST_F(TurnCoreTest, RequestedFamilyIpv6WithIpv6Relay) {
  config.relays.push_back(RelayAddress{kRelay6, std::nullopt});
  TurnClient c = alice();
  AllocateOptions o;
  o.requested_family = Family::V6;
  const TransportAddress relayed = allocate_ok(c, tuple(1), o);
  EXPECT_TRUE(relayed.same_ip(kRelay6));
  EXPECT_EQ(io.open.size(), 1u);
}

TEST_F(TurnCoreTest, AdditionalFamilyGivesDualAllocation) {
  config.relays.push_back(RelayAddress{kRelay6, std::nullopt});
  TurnClient c = alice();
  AllocateOptions o;
  o.additional_family = Family::V6;
  Response r = allocate(c, tuple(1), o);
  ASSERT_EQ(r.outcome, Outcome::Success) << r.error_code;
  ASSERT_EQ(r.relayed.size(), 2u);
  EXPECT_TRUE(r.relayed[0].same_ip(kRelay4));
  EXPECT_TRUE(r.relayed[1].same_ip(kRelay6));
  EXPECT_FALSE(r.address_error);
  EXPECT_EQ(io.open.size(), 2u);
  EXPECT_EQ(server().open_relay_count(), 2u);
  // Both legs go when the allocation does.
  EXPECT_EQ(refresh(c, tuple(1), 0).outcome, Outcome::Success);
  expect_nothing_allocated();
}

TEST_F(TurnCoreTest, AdditionalFamilyWithoutIpv6RelaySucceedsWithAddressErrorCode) {
  TurnClient c = alice();
  AllocateOptions o;
  o.additional_family = Family::V6;
  Response r = allocate(c, tuple(1), o);
  ASSERT_EQ(r.outcome, Outcome::Success) << r.error_code;
  ASSERT_EQ(r.relayed.size(), 1u);
  EXPECT_TRUE(r.relayed[0].same_ip(kRelay4));
  ASSERT_TRUE(r.address_error);
  EXPECT_EQ(r.address_error->family, Family::V6);
  EXPECT_EQ(r.address_error->code, code::AddressFamilyNotSupported);
  EXPECT_EQ(io.open.size(), 1u);
}

TEST_F(TurnCoreTest, AdditionalFamilyIpv4Gets400) {
  TurnClient c = alice();
  AllocateOptions o;
  o.additional_family = Family::V4;
  expect_error(allocate(c, tuple(1), o), code::BadRequest);
  expect_nothing_allocated();
}

TEST_F(TurnCoreTest, RequestedAndAdditionalFamilyTogetherGets400) {
  config.relays.push_back(RelayAddress{kRelay6, std::nullopt});
  TurnClient c = alice();
  AllocateOptions o;
  o.requested_family = Family::V4;
  o.additional_family = Family::V6;
  expect_error(allocate(c, tuple(1), o), code::BadRequest);
  expect_nothing_allocated();
}

TEST_F(TurnCoreTest, EvenPortGivesEvenPort) {
  TurnClient c = alice();
  AllocateOptions o;
  o.even_port = true;
  for (int i = 1; i <= 4; ++i) {
    TurnClient ci = alice();
    Response r = allocate(ci, tuple(i), o);
    ASSERT_EQ(r.outcome, Outcome::Success) << r.error_code;
    ASSERT_EQ(r.relayed.size(), 1u);
    EXPECT_EQ(r.relayed[0].port % 2, 0) << r.relayed[0].port;
    EXPECT_FALSE(r.reservation_token);
  }
  EXPECT_EQ(io.open.size(), 4u);
}

TEST_F(TurnCoreTest, EvenPortWithReserveGivesTokenRedeemedForNextPort) {
  TurnClient a = alice();
  AllocateOptions o;
  o.even_port = true;
  o.reserve_next = true;
  Response r = allocate(a, tuple(1), o);
  ASSERT_EQ(r.outcome, Outcome::Success) << r.error_code;
  ASSERT_TRUE(r.reservation_token);
  ASSERT_EQ(r.relayed.size(), 1u);
  const uint16_t port = r.relayed[0].port;
  EXPECT_EQ(port % 2, 0);
  EXPECT_EQ(a.reservation_token(), r.reservation_token);

  TurnClient b = bob();
  AllocateOptions redeem;
  redeem.reservation_token = *r.reservation_token;
  Response rb = allocate(b, tuple(2), redeem);
  ASSERT_EQ(rb.outcome, Outcome::Success) << rb.error_code << " " << rb.reason;
  ASSERT_EQ(rb.relayed.size(), 1u);
  EXPECT_EQ(rb.relayed[0], kRelay4.with_port(static_cast<uint16_t>(port + 1)));
  EXPECT_FALSE(rb.reservation_token);
  EXPECT_EQ(io.open.size(), 2u);
  EXPECT_TRUE(io.relay_at(kRelay4.with_port(static_cast<uint16_t>(port + 1))));

  // A token is good once.
  TurnClient c = alice();
  expect_error(allocate(c, tuple(3), redeem), code::InsufficientCapacity);
  EXPECT_EQ(server().allocation_count(), 2u);
}

TEST_F(TurnCoreTest, UnknownReservationTokenGets508) {
  TurnClient c = alice();
  AllocateOptions o;
  o.reservation_token = 0x0102030405060708ull;
  expect_error(allocate(c, tuple(1), o), code::InsufficientCapacity);
  expect_nothing_allocated();
}

TEST_F(TurnCoreTest, ReservationTokenExpiresAfterThirtySeconds) {
  TurnClient a = alice();
  AllocateOptions o;
  o.even_port = true;
  o.reserve_next = true;
  Response r = allocate(a, tuple(1), o);
  ASSERT_TRUE(r.reservation_token);
  clock.advance(kReservationLifetime);
  server().tick();
  TurnClient b = bob();
  AllocateOptions redeem;
  redeem.reservation_token = *r.reservation_token;
  expect_error(allocate(b, tuple(2), redeem), code::InsufficientCapacity);
  EXPECT_EQ(server().allocation_count(), 1u);
}

TEST_F(TurnCoreTest, ReservationTokenWithEvenPortGets400) {
  TurnClient c = alice();
  AllocateOptions o;
  o.even_port = true;
  o.reservation_token = 0x0102030405060708ull;
  expect_error(allocate(c, tuple(1), o), code::BadRequest);
  expect_nothing_allocated();
}

TEST_F(TurnCoreTest, LifetimeBelowDefaultGetsDefault) {
  TurnClient c = alice();
  AllocateOptions o;
  o.lifetime = 10;
  Response r = allocate(c, tuple(1), o);
  ASSERT_EQ(r.outcome, Outcome::Success);
  EXPECT_EQ(r.lifetime, 600u);
  EXPECT_EQ(server().find_allocation(tuple(1))->expires, clock.now() + 600s);
}

TEST_F(TurnCoreTest, LifetimeAboveMaximumGetsMaximum) {
  TurnClient c = alice();
  AllocateOptions o;
  o.lifetime = 99999;
  Response r = allocate(c, tuple(1), o);
  ASSERT_EQ(r.outcome, Outcome::Success);
  EXPECT_EQ(r.lifetime, 3600u);
  EXPECT_EQ(server().find_allocation(tuple(1))->expires, clock.now() + 3600s);
}

TEST_F(TurnCoreTest, PerUserQuotaGets486) {
  config.max_allocations_per_user = 1;
  TurnClient a1 = alice(), a2 = alice(), b = bob();
  allocate_ok(a1, tuple(1));
  Response r = allocate(a2, tuple(2));
  expect_error(r, code::AllocationQuotaReached);
  EXPECT_TRUE(r.authenticated);
  allocate_ok(b, tuple(3));  // another user is not affected
  EXPECT_EQ(server().allocation_count(), 2u);
  EXPECT_EQ(io.open.size(), 2u);
  // Freeing alice's allocation frees her quota.
  ASSERT_EQ(refresh(a1, tuple(1), 0).outcome, Outcome::Success);
  allocate_ok(a2, tuple(2));
}

TEST_F(TurnCoreTest, MaxAllocationsGets508) {
  config.max_allocations = 1;
  TurnClient a = alice(), b = bob();
  allocate_ok(a, tuple(1));
  expect_error(allocate(b, tuple(2)), code::InsufficientCapacity);
  EXPECT_EQ(server().allocation_count(), 1u);
  EXPECT_EQ(io.open.size(), 1u);
}

TEST_F(TurnCoreTest, OpenRelayNoResourcesGets508) {
  TurnClient c = alice();
  server();
  io.fail_next = {OpenRelayResult::NoResources};
  expect_error(allocate(c, tuple(1), {}), code::InsufficientCapacity);
  EXPECT_EQ(io.open_attempts, 1u);  // no point retrying other ports
  expect_nothing_allocated();
  // The port and relay slot went back: the next Allocate works.
  allocate_ok(c, tuple(1));
}

TEST_F(TurnCoreTest, OpenRelayPortInUseTriesAnotherPort) {
  TurnClient c = alice();
  server();
  io.fail_next = {OpenRelayResult::PortInUse, OpenRelayResult::PortInUse};
  allocate_ok(c, tuple(1));
  EXPECT_EQ(io.open_attempts, 3u);
  EXPECT_EQ(io.open.size(), 1u);
  EXPECT_EQ(server().open_relay_count(), 1u);
}

TEST_F(TurnCoreTest, OpenRelayAlwaysInUseGets508) {
  TurnClient c = alice();
  server();
  io.fail_next.assign(100, OpenRelayResult::PortInUse);
  expect_error(allocate(c, tuple(1), {}), code::InsufficientCapacity);
  expect_nothing_allocated();
}

TEST_F(TurnCoreTest, Sha256IntegrityWithPasswordAlgorithmSha256) {
  TurnClientConfig cfg = creds("alice", "alice-pw");
  cfg.sha256 = true;
  TurnClient c(cfg);
  Response r = allocate(c, tuple(1));
  ASSERT_EQ(r.outcome, Outcome::Success) << r.error_code << " " << r.reason;
  EXPECT_TRUE(r.authenticated);
  EXPECT_TRUE(c.auth_state().use_sha256);
  // The request: PASSWORD-ALGORITHM SHA-256 and MESSAGE-INTEGRITY-SHA256, no MESSAGE-INTEGRITY.
  auto req = MessageView::parse(Bytes(last_request));
  ASSERT_TRUE(req.ok());
  auto alg = req->find(attr::PasswordAlgorithm);
  ASSERT_TRUE(alg);
  EXPECT_EQ(stun::decode_password_algorithm(alg->value)->algorithm, 2);
  EXPECT_TRUE(req->message_integrity_sha256());
  EXPECT_FALSE(req->message_integrity());
  // The response is signed the same way, with the SHA-256 key.
  MessageView v = response_view();
  ASSERT_TRUE(v.message_integrity_sha256());
  EXPECT_FALSE(v.message_integrity());
  EXPECT_TRUE(stun::verify_message_integrity_sha256(v, stun::long_term_key_sha256("alice", kRealm, "alice-pw").view()));
  const Allocation* a = server().find_allocation(tuple(1));
  ASSERT_NE(a, nullptr);
  EXPECT_TRUE(a->sha256);
  // Later requests on the allocation too.
  Response p = permit(c, tuple(1), {kPeer});
  EXPECT_EQ(p.outcome, Outcome::Success);
  EXPECT_TRUE(p.authenticated);
  EXPECT_TRUE(response_view().message_integrity_sha256());
}

TEST_F(TurnCoreTest, Md5ClientEchoesPasswordAlgorithms) {
  TurnClient c = alice();
  allocate_ok(c, tuple(1));
  auto req = MessageView::parse(Bytes(last_request));
  ASSERT_TRUE(req.ok());
  ASSERT_TRUE(req->find(attr::PasswordAlgorithm));
  EXPECT_EQ(stun::decode_password_algorithm(req->find(attr::PasswordAlgorithm)->value)->algorithm, 1);
  EXPECT_TRUE(req->find(attr::PasswordAlgorithms));
  EXPECT_TRUE(req->message_integrity());
}

TEST_F(TurnCoreTest, PasswordAlgorithmWithoutPasswordAlgorithmsGets400) {
  TurnClient c = alice();
  auto first = c.allocate_request(buf);
  ASSERT_EQ(exchange(c, tuple(1), *first).outcome, Outcome::Retry);
  // Bid-down: drop PASSWORD-ALGORITHMS but still name an algorithm.
  client::AuthState s = c.auth_state();
  s.password_algorithms.clear();
  s.use_sha256 = false;
  c.set_auth_state(s);
  auto req = c.request(buf, stun::Method::Allocate, [](stun::MessageBuilder& b) {
    b.add_requested_transport(stun::kTransportUdp);
    b.add_password_algorithm(stun::PasswordAlgorithm::Md5);
  });
  expect_error(exchange(c, tuple(1), *req), code::BadRequest);
  expect_nothing_allocated();
}

TEST_F(TurnCoreTest, TamperedPasswordAlgorithmsGets400) {
  TurnClient c = alice();
  auto first = c.allocate_request(buf);
  ASSERT_EQ(exchange(c, tuple(1), *first).outcome, Outcome::Retry);
  // An attacker stripped SHA-256 from the list the client saw: the echo no longer matches.
  client::AuthState s = c.auth_state();
  s.password_algorithms = {0x00, 0x01, 0x00, 0x00};
  c.set_auth_state(s);
  expect_error(allocate(c, tuple(1)), code::BadRequest);
  expect_nothing_allocated();
}

TEST_F(TurnCoreTest, UserhashWorks) {
  config.userhash = true;  // nonces announce "username anonymity": the client must send USERHASH
  TurnClient c = alice();
  Response r = allocate(c, tuple(1));
  ASSERT_EQ(r.outcome, Outcome::Success) << r.error_code << " " << r.reason;
  EXPECT_TRUE(c.auth_state().use_userhash);
  auto req = MessageView::parse(Bytes(last_request));
  ASSERT_TRUE(req.ok());
  EXPECT_FALSE(req->has(attr::Username));
  auto h = req->find(attr::Userhash);
  ASSERT_TRUE(h);
  const auto expected = stun::userhash("alice", kRealm);
  EXPECT_TRUE(std::equal(expected.begin(), expected.end(), h->value.begin(), h->value.end()));
  EXPECT_EQ(server().find_allocation(tuple(1))->username, "alice");
}

TEST_F(TurnCoreTest, UnknownUserhashGets401) {
  TurnClientConfig cfg = creds("nobody", "pw");
  cfg.username_mode = client::UsernameMode::Userhash;
  TurnClient c(cfg);
  expect_error(allocate(c, tuple(1)), code::Unauthenticated);
  expect_nothing_allocated();
}

TEST_F(TurnCoreTest, RequestFromAnotherUserOnAllocationGets441) {
  TurnClient a = alice();
  allocate_ok(a, tuple(1));
  TurnClient b = bob();
  Response r = refresh(b, tuple(1));
  expect_error(r, code::WrongCredentials);
  EXPECT_TRUE(r.authenticated);  // signed with bob's key
  Response p = permit(b, tuple(1), {kPeer});
  expect_error(p, code::WrongCredentials);
  EXPECT_FALSE(server().find_allocation(tuple(1))->permissions.allows(kPeer, clock.now()));
  EXPECT_EQ(server().stats().auth_failures[static_cast<size_t>(AuthFailure::WrongUser)].get(), 2u);
  EXPECT_EQ(server().allocation_count(), 1u);
}

// ================================ Refresh ================================

TEST_F(TurnCoreTest, RefreshExtendsAllocation) {
  TurnClient c = alice();
  allocate_ok(c, tuple(1));
  clock.advance(500s);
  Response r = refresh(c, tuple(1));
  ASSERT_EQ(r.outcome, Outcome::Success);
  EXPECT_TRUE(r.authenticated);
  EXPECT_EQ(r.lifetime, 600u);
  clock.advance(200s);  // 700 s after the Allocate: past the original lifetime
  server().tick();
  EXPECT_EQ(server().allocation_count(), 1u);
  clock.advance(400s);  // 600 s after the Refresh
  server().tick();
  expect_nothing_allocated();
  EXPECT_EQ(server().stats().allocations_expired.get(), 1u);
}

TEST_F(TurnCoreTest, RefreshLifetimeIsClampedLikeAllocate) {
  // RFC 8656 §7.3: desired lifetime = min(requested, maximum), raised to the default if below it.
  TurnClient c = alice();
  allocate_ok(c, tuple(1));
  Response low = refresh(c, tuple(1), 10);
  ASSERT_EQ(low.outcome, Outcome::Success);
  EXPECT_EQ(low.lifetime, 600u);
  EXPECT_EQ(server().find_allocation(tuple(1))->expires, clock.now() + 600s);
  Response high = refresh(c, tuple(1), 99999);
  ASSERT_EQ(high.outcome, Outcome::Success);
  EXPECT_EQ(high.lifetime, 3600u);
  Response mid = refresh(c, tuple(1), 1200);
  EXPECT_EQ(mid.lifetime, 1200u);
}

TEST_F(TurnCoreTest, RefreshLifetimeZeroDeletes) {
  TurnClient c = alice();
  allocate_ok(c, tuple(1));
  ASSERT_EQ(permit(c, tuple(1), {kPeer}).outcome, Outcome::Success);
  Response r = refresh(c, tuple(1), 0);
  ASSERT_EQ(r.outcome, Outcome::Success);
  EXPECT_TRUE(r.authenticated);  // signed although the allocation is gone
  EXPECT_EQ(r.lifetime, 0u);
  expect_nothing_allocated();
  EXPECT_EQ(io.closed, 1u);
  EXPECT_EQ(server().stats().allocations_deleted.get(), 1u);
  EXPECT_TRUE(c.relayed().empty());
  // Nothing is relayed any more, and a second delete finds no allocation.
  send_indication(c, tuple(1), kPeer, "late");
  EXPECT_TRUE(io.to_peer.empty());
  expect_error(refresh(c, tuple(1), 0), code::AllocationMismatch);
}

TEST_F(TurnCoreTest, RefreshWithoutAllocationGets437) {
  TurnClient c = alice();
  Response r = refresh(c, tuple(1));
  expect_error(r, code::AllocationMismatch);
  EXPECT_TRUE(r.authenticated);
  expect_nothing_allocated();
}

TEST_F(TurnCoreTest, RefreshRequestedFamilyMismatchGets443) {
  TurnClient c = alice();
  allocate_ok(c, tuple(1));
  expect_error(refresh(c, tuple(1), 600, Family::V6), code::PeerAddressFamilyMismatch);
  EXPECT_EQ(server().allocation_count(), 1u);
  Response ok = refresh(c, tuple(1), 600, Family::V4);
  EXPECT_EQ(ok.outcome, Outcome::Success);
}

TEST_F(TurnCoreTest, RefreshZeroWithFamilyDropsOneLegOfDualAllocation) {
  config.relays.push_back(RelayAddress{kRelay6, std::nullopt});
  TurnClient c = alice();
  AllocateOptions o;
  o.additional_family = Family::V6;
  ASSERT_EQ(allocate(c, tuple(1), o).relayed.size(), 2u);
  Response r = refresh(c, tuple(1), 0, Family::V6);
  ASSERT_EQ(r.outcome, Outcome::Success);
  EXPECT_EQ(server().allocation_count(), 1u);
  ASSERT_EQ(io.open.size(), 1u);
  EXPECT_TRUE(io.open.begin()->second.same_ip(kRelay4));
  EXPECT_FALSE(server().find_allocation(tuple(1))->v6);
}

// ================================ Expiry ================================

TEST_F(TurnCoreTest, AllocationExpiresAtItsLifetime) {
  TurnClient c = alice();
  allocate_ok(c, tuple(1));
  clock.advance(599s);
  server().tick();
  EXPECT_EQ(server().allocation_count(), 1u);
  clock.advance(1s);
  server().tick();
  expect_nothing_allocated();
  EXPECT_EQ(server().stats().allocations_expired.get(), 1u);
  EXPECT_EQ(io.closed, 1u);
  EXPECT_TRUE(io.stream_closed.empty());  // UDP: no connection to close
}

TEST_F(TurnCoreTest, TickInPartsWalksEveryAllocationOnceARound) {
  std::vector<TurnClient> clients;
  for (int i = 0; i < 40; ++i) {
    clients.push_back(alice());
    allocate_ok(clients.back(), tuple(i + 1));
    ASSERT_EQ(permit(clients.back(), tuple(i + 1), {kPeer}).outcome, Outcome::Success);
  }
  EXPECT_EQ(server().stats().permissions_active.get(), 40);
  // Permissions lapse at 300 s: the gauge is recounted once the round of ten parts is complete.
  clock.advance(301s);
  for (uint32_t part = 0; part < 9; ++part) server().tick(part, 10);
  EXPECT_EQ(server().stats().permissions_active.get(), 40);
  server().tick(9, 10);
  EXPECT_EQ(server().stats().permissions_active.get(), 0);
  // Allocations lapse at 600 s: none is left after one round, and none went before its part.
  clock.advance(300s);
  size_t left = server().allocation_count();
  for (uint32_t part = 0; part < 10; ++part) {
    server().tick(part, 10);
    EXPECT_LE(server().allocation_count(), left);
    left = server().allocation_count();
  }
  expect_nothing_allocated();
  EXPECT_EQ(server().stats().allocations_expired.get(), 40u);
}

TEST_F(TurnCoreTest, PermissionExpiresAtExactly300Seconds) {
  TurnClient c = alice();
  const TransportAddress relayed = allocate_ok(c, tuple(1));
  ASSERT_EQ(permit(c, tuple(1), {kPeer}).outcome, Outcome::Success);
  clock.advance(300s - 1ms);
  from_peer(relayed, kPeer, "still");
  EXPECT_EQ(io.to_client.size(), 2u);  // the CreatePermission response and the Data indication
  send_indication(c, tuple(1), kPeer, "out");
  EXPECT_EQ(io.to_peer.size(), 1u);
  clock.advance(1ms);
  io.to_client.clear();
  from_peer(relayed, kPeer, "late");
  EXPECT_TRUE(io.to_client.empty());
  send_indication(c, tuple(1), kPeer, "late");
  EXPECT_EQ(io.to_peer.size(), 1u);
  server().tick();
  EXPECT_EQ(server().find_allocation(tuple(1))->permissions.size(), 0u);  // reclaimed
  EXPECT_EQ(dropped(DropReason::NoPermission), 2u);
}

TEST_F(TurnCoreTest, ChannelExpiresAt600Seconds) {
  TurnClient c = alice();
  AllocateOptions o;
  o.lifetime = 3600;
  const TransportAddress relayed = allocate_ok(c, tuple(1), o);
  ASSERT_EQ(bind(c, tuple(1), 0x4001, kPeer).outcome, Outcome::Success);
  // Keep the permission alive (it lasts 300 s) so only the channel can be what expires.
  clock.advance(290s);
  ASSERT_EQ(permit(c, tuple(1), {kPeer}).outcome, Outcome::Success);
  clock.advance(290s);
  ASSERT_EQ(permit(c, tuple(1), {kPeer}).outcome, Outcome::Success);
  clock.advance(20s - 1ms);  // 599.999 s after the bind
  send_channel_data(tuple(1), 0x4001, "in time");
  ASSERT_EQ(io.to_peer.size(), 1u);
  clock.advance(1ms);
  send_channel_data(tuple(1), 0x4001, "too late");
  EXPECT_EQ(io.to_peer.size(), 1u);
  EXPECT_EQ(dropped(DropReason::NoChannel), 1u);
  // From the peer, the permission still stands: a Data indication instead of ChannelData.
  io.to_client.clear();
  from_peer(relayed, kPeer, "hello");
  ASSERT_EQ(io.to_client.size(), 1u);
  auto pd = c.on_peer_data(io.to_client[0].bytes);
  ASSERT_TRUE(pd);
  EXPECT_FALSE(pd->channel);
  // After the 5-minute quarantine the binding is reclaimed; then the allocation ends.
  clock.advance(kChannelQuarantine);
  server().tick();
  EXPECT_EQ(server().find_allocation(tuple(1))->channels.size(), 0u);
  clock.advance(3600s);
  server().tick();
  expect_nothing_allocated();
}

TEST_F(TurnCoreTest, EverythingExpiresWithoutLeaks) {
  config.relays.push_back(RelayAddress{kRelay6, std::nullopt});
  AllocateOptions dual;
  dual.additional_family = Family::V6;
  AllocateOptions reserve;
  reserve.even_port = true;
  reserve.reserve_next = true;
  TurnClient a = alice(), b = bob(), c = alice();
  allocate_ok(a, tuple(1), dual);
  allocate_ok(b, tuple(2), reserve);
  allocate_ok(c, tuple(3));
  ASSERT_EQ(permit(a, tuple(1), {kPeer, kPeer6}).outcome, Outcome::Success);
  ASSERT_EQ(bind(b, tuple(2), 0x4000, kPeer).outcome, Outcome::Success);
  EXPECT_EQ(io.open.size(), 4u);
  clock.advance(600s);
  server().tick();
  EXPECT_EQ(server().allocation_count(), 0u);
  EXPECT_EQ(server().open_relay_count(), 0u);
  EXPECT_TRUE(io.open.empty());
  EXPECT_EQ(io.closed, 4u);
  EXPECT_EQ(server().stats().allocations_expired.get(), 3u);
  // Relay slots and ports are reused afterwards.
  TurnClient d = bob();
  allocate_ok(d, tuple(4));
  EXPECT_EQ(io.open.size(), 1u);
  EXPECT_LT(io.open.begin()->first, 4u);
}

// ================================ CreatePermission ================================

TEST_F(TurnCoreTest, CreatePermissionForOnePeer) {
  TurnClient c = alice();
  allocate_ok(c, tuple(1));
  Response r = permit(c, tuple(1), {kPeer});
  ASSERT_EQ(r.outcome, Outcome::Success);
  EXPECT_TRUE(r.authenticated);
  const Allocation* a = server().find_allocation(tuple(1));
  EXPECT_TRUE(a->permissions.allows(kPeer, clock.now()));
  EXPECT_TRUE(a->permissions.allows(kPeer.with_port(1), clock.now()));  // IP only
  EXPECT_FALSE(a->permissions.allows(kPeer2, clock.now()));
  EXPECT_EQ(server().stats().permissions_created.get(), 1u);
}

TEST_F(TurnCoreTest, CreatePermissionForSeveralPeers) {
  TurnClient c = alice();
  allocate_ok(c, tuple(1));
  const TransportAddress p3 = addr("203.0.113.99:7");
  Response r = permit(c, tuple(1), {kPeer, kPeer2, p3, kPeer});
  ASSERT_EQ(r.outcome, Outcome::Success);
  const Allocation* a = server().find_allocation(tuple(1));
  EXPECT_TRUE(a->permissions.allows(kPeer, clock.now()));
  EXPECT_TRUE(a->permissions.allows(kPeer2, clock.now()));
  EXPECT_TRUE(a->permissions.allows(p3, clock.now()));
  EXPECT_EQ(a->permissions.size(), 3u);
}

TEST_F(TurnCoreTest, CreatePermissionForDeniedPeerGets403AndInstallsNothing) {
  TurnClient c = alice();
  allocate_ok(c, tuple(1));
  for (const char* denied : {"10.0.0.1:80", "127.0.0.1:80", "0.0.0.0:80", "169.254.169.254:80", "198.51.100.10:5"}) {
    SCOPED_TRACE(denied);
    expect_error(permit(c, tuple(1), {addr(denied)}), code::Forbidden);
  }
  // All or nothing: a good peer next to a denied one is not installed either.
  expect_error(permit(c, tuple(1), {kPeer, addr("10.0.0.1:80")}), code::Forbidden);
  EXPECT_EQ(server().find_allocation(tuple(1))->permissions.size(), 0u);
  send_indication(c, tuple(1), kPeer, "x");
  EXPECT_TRUE(io.to_peer.empty());
  EXPECT_EQ(server().stats().errors_sent[403].get(), 6u);
}

TEST_F(TurnCoreTest, CreatePermissionFamilyMismatchGets443) {
  TurnClient c = alice();
  allocate_ok(c, tuple(1));
  expect_error(permit(c, tuple(1), {kPeer6}), code::PeerAddressFamilyMismatch);
  EXPECT_EQ(server().find_allocation(tuple(1))->permissions.size(), 0u);
}

TEST_F(TurnCoreTest, CreatePermissionWithoutPeerGets400) {
  TurnClient c = alice();
  allocate_ok(c, tuple(1));
  expect_error(permit(c, tuple(1), {}), code::BadRequest);
  EXPECT_EQ(server().find_allocation(tuple(1))->permissions.size(), 0u);
}

TEST_F(TurnCoreTest, CreatePermissionBeyondMaximumGets508) {
  config.max_permissions = 2;
  TurnClient c = alice();
  allocate_ok(c, tuple(1));
  const TransportAddress p3 = addr("192.0.2.9:1");
  expect_error(permit(c, tuple(1), {kPeer, kPeer2, p3}), code::InsufficientCapacity);
  EXPECT_EQ(server().find_allocation(tuple(1))->permissions.size(), 0u);
  ASSERT_EQ(permit(c, tuple(1), {kPeer, kPeer2}).outcome, Outcome::Success);
  expect_error(permit(c, tuple(1), {p3}), code::InsufficientCapacity);
  EXPECT_EQ(permit(c, tuple(1), {kPeer}).outcome, Outcome::Success);  // a refresh needs no room
  EXPECT_EQ(server().find_allocation(tuple(1))->permissions.size(), 2u);
}

TEST_F(TurnCoreTest, CreatePermissionWithoutAllocationGets437) {
  TurnClient c = alice();
  expect_error(permit(c, tuple(1), {kPeer}), code::AllocationMismatch);
  expect_nothing_allocated();
}

// ================================ ChannelBind ================================

TEST_F(TurnCoreTest, ChannelBindSucceedsAndInstallsPermission) {
  TurnClient c = alice();
  allocate_ok(c, tuple(1));
  Response r = bind(c, tuple(1), 0x4000, kPeer);
  ASSERT_EQ(r.outcome, Outcome::Success);
  EXPECT_TRUE(r.authenticated);
  const Allocation* a = server().find_allocation(tuple(1));
  auto n = ChannelNumber::from(0x4000);
  EXPECT_EQ(a->channels.peer_of(*n, clock.now()), kPeer);
  EXPECT_TRUE(a->permissions.allows(kPeer, clock.now()));
  EXPECT_EQ(c.channel_peer(0x4000), kPeer);
  EXPECT_EQ(server().stats().channels_bound.get(), 1u);
}

TEST_F(TurnCoreTest, ChannelNumbersOutOfRangeGet400) {
  TurnClient c = alice();
  allocate_ok(c, tuple(1));
  for (uint16_t ch : {uint16_t{0x3FFF}, uint16_t{0x5000}, uint16_t{0x7FFF}, uint16_t{0x0000}}) {
    SCOPED_TRACE(ch);
    expect_error(bind(c, tuple(1), ch, kPeer), code::BadRequest);
  }
  EXPECT_EQ(server().find_allocation(tuple(1))->channels.size(), 0u);
  EXPECT_EQ(server().find_allocation(tuple(1))->permissions.size(), 0u);
}

TEST_F(TurnCoreTest, ChannelRebindSamePairRefreshes) {
  TurnClient c = alice();
  allocate_ok(c, tuple(1));
  ASSERT_EQ(bind(c, tuple(1), 0x4000, kPeer).outcome, Outcome::Success);
  clock.advance(500s);
  // The permission (300 s) lapsed, the channel (600 s) did not; rebinding refreshes both.
  ASSERT_EQ(bind(c, tuple(1), 0x4000, kPeer).outcome, Outcome::Success);
  const Allocation* a = server().find_allocation(tuple(1));
  EXPECT_EQ(a->channels.expiry(*ChannelNumber::from(0x4000)), clock.now() + 600s);
  EXPECT_EQ(a->permissions.expiry(kPeer), clock.now() + 300s);
  EXPECT_EQ(server().stats().channels_bound.get(), 1u);
}

TEST_F(TurnCoreTest, ChannelBoundToOtherPeerGets400) {
  TurnClient c = alice();
  allocate_ok(c, tuple(1));
  ASSERT_EQ(bind(c, tuple(1), 0x4000, kPeer).outcome, Outcome::Success);
  expect_error(bind(c, tuple(1), 0x4000, kPeer2), code::BadRequest);
  EXPECT_EQ(server().find_allocation(tuple(1))->channels.peer_of(*ChannelNumber::from(0x4000), clock.now()), kPeer);
  EXPECT_FALSE(server().find_allocation(tuple(1))->permissions.allows(kPeer2, clock.now()));
}

TEST_F(TurnCoreTest, PeerBoundToOtherChannelGets400) {
  TurnClient c = alice();
  allocate_ok(c, tuple(1));
  ASSERT_EQ(bind(c, tuple(1), 0x4000, kPeer).outcome, Outcome::Success);
  expect_error(bind(c, tuple(1), 0x4001, kPeer), code::BadRequest);
  EXPECT_FALSE(server().find_allocation(tuple(1))->channels.peer_of(*ChannelNumber::from(0x4001), clock.now()));
}

TEST_F(TurnCoreTest, ChannelBindToDeniedPeerGets403) {
  TurnClient c = alice();
  allocate_ok(c, tuple(1));
  expect_error(bind(c, tuple(1), 0x4000, addr("10.0.0.1:80")), code::Forbidden);
  expect_error(bind(c, tuple(1), 0x4000, addr("127.0.0.1:80")), code::Forbidden);
  EXPECT_EQ(server().find_allocation(tuple(1))->channels.size(), 0u);
  EXPECT_EQ(server().find_allocation(tuple(1))->permissions.size(), 0u);
}

TEST_F(TurnCoreTest, ChannelBindFamilyMismatchGets443) {
  TurnClient c = alice();
  allocate_ok(c, tuple(1));
  expect_error(bind(c, tuple(1), 0x4000, kPeer6), code::PeerAddressFamilyMismatch);
}

// ================================ data ================================

TEST_F(TurnCoreTest, SendIndicationRelaysOnlyWithPermission) {
  TurnClient c = alice();
  const TransportAddress relayed = allocate_ok(c, tuple(1));
  send_indication(c, tuple(1), kPeer, "no permission yet");
  EXPECT_TRUE(io.to_peer.empty());
  EXPECT_EQ(dropped(DropReason::NoPermission), 1u);
  ASSERT_EQ(permit(c, tuple(1), {kPeer}).outcome, Outcome::Success);
  const std::string payload("\x00\x01hello\xFF", 8);
  send_indication(c, tuple(1), kPeer, payload);
  ASSERT_EQ(io.to_peer.size(), 1u);
  EXPECT_EQ(io.to_peer[0].relay, *io.relay_at(relayed));
  EXPECT_EQ(io.to_peer[0].peer, kPeer);
  EXPECT_EQ(string_of(io.to_peer[0].bytes), payload);
  // Another port of the same IP is covered by the permission.
  send_indication(c, tuple(1), kPeer.with_port(9), "p");
  ASSERT_EQ(io.to_peer.size(), 2u);
  EXPECT_EQ(io.to_peer[1].peer, kPeer.with_port(9));
  EXPECT_EQ(server().stats().relayed_packets[static_cast<size_t>(Direction::ClientToPeer)].get(), 2u);
  EXPECT_EQ(server().stats().relayed_bytes[static_cast<size_t>(Direction::ClientToPeer)].get(), 9u);
}

TEST_F(TurnCoreTest, SendIndicationWithoutAllocationIsDropped) {
  TurnClient c = alice();
  send_indication(c, tuple(1), kPeer, "x");
  EXPECT_TRUE(io.to_peer.empty());
  EXPECT_TRUE(io.to_client.empty());
  EXPECT_EQ(dropped(DropReason::NoAllocation), 1u);
}

TEST_F(TurnCoreTest, ChannelDataRelaysToBoundPeer) {
  TurnClient c = alice();
  const TransportAddress relayed = allocate_ok(c, tuple(1));
  send_channel_data(tuple(1), 0x4000, "unbound");
  EXPECT_TRUE(io.to_peer.empty());
  ASSERT_EQ(bind(c, tuple(1), 0x4000, kPeer).outcome, Outcome::Success);
  send_channel_data(tuple(1), 0x4000, "abcde");
  ASSERT_EQ(io.to_peer.size(), 1u);
  EXPECT_EQ(io.to_peer[0].relay, *io.relay_at(relayed));
  EXPECT_EQ(io.to_peer[0].peer, kPeer);
  EXPECT_EQ(string_of(io.to_peer[0].bytes), "abcde");
  EXPECT_TRUE(io.to_client.size() <= 1u);  // only the ChannelBind response, nothing for the data
}

TEST_F(TurnCoreTest, PeerDatagramWithoutPermissionIsDropped) {
  TurnClient c = alice();
  const TransportAddress relayed = allocate_ok(c, tuple(1));
  io.to_client.clear();
  from_peer(relayed, kPeer, "knock knock");
  EXPECT_TRUE(io.to_client.empty());
  EXPECT_EQ(dropped(DropReason::NoPermission), 1u);
  // A relay id nobody owns is ignored.
  std::vector<uint8_t> b(ServerCore::kPeerHeadroom + 8 + ServerCore::kPeerTailroom);
  server().on_peer_packet(12345, kPeer, b.data(), 8);
  EXPECT_TRUE(io.to_client.empty());
}

TEST_F(TurnCoreTest, PeerDatagramWithPermissionBecomesDataIndication) {
  TurnClient c = alice();
  const TransportAddress relayed = allocate_ok(c, tuple(1));
  ASSERT_EQ(permit(c, tuple(1), {kPeer}).outcome, Outcome::Success);
  for (const std::string& payload : {std::string("hello"), std::string("four"), std::string(), std::string(1200, 'z')}) {
    io.to_client.clear();
    from_peer(relayed, kPeer, payload);
    ASSERT_EQ(io.to_client.size(), 1u);
    EXPECT_EQ(io.to_client[0].to, tuple(1));
    auto v = MessageView::parse(Bytes(io.to_client[0].bytes));
    ASSERT_TRUE(v.ok());
    EXPECT_TRUE(v->is(stun::Method::Data, stun::Class::Indication));
    EXPECT_EQ(io.to_client[0].bytes.size() % 4, 0u);
    EXPECT_FALSE(v->message_integrity());
    auto pd = c.on_peer_data(io.to_client[0].bytes);
    ASSERT_TRUE(pd);
    EXPECT_FALSE(pd->channel);
    EXPECT_EQ(pd->peer, kPeer);
    EXPECT_EQ(string_of(pd->data), payload);
    if (payload == "hello") {
      // Byte for byte the §10.3 framing the core wrote by hand before it used MessageBuilder: the
      // transaction id is the core's counter, everything else is fixed.
      const std::vector<uint8_t>& got = io.to_client[0].bytes;
      ASSERT_EQ(got.size(), 44u);
      const std::vector<uint8_t> header = {0x00, 0x17, 0x00, 0x18, 0x21, 0x12, 0xa4, 0x42};
      const std::vector<uint8_t> attributes = {0x00, 0x12, 0x00, 0x08, 0x00, 0x01, 0x32, 0x9a, 0xe1, 0x12, 0xa6, 0x45,
                                               0x00, 0x13, 0x00, 0x05, 'h',  'e',  'l',  'l',  'o',  0x00, 0x00, 0x00};
      EXPECT_EQ(std::vector<uint8_t>(got.begin(), got.begin() + 8), header);
      EXPECT_EQ(std::vector<uint8_t>(got.begin() + 20, got.end()), attributes);
    }
  }
  EXPECT_EQ(server().stats().relayed_packets[static_cast<size_t>(Direction::PeerToClient)].get(), 4u);
}

TEST_F(TurnCoreTest, Ipv6PeerDatagramBecomesDataIndication) {
  config.relays.push_back(RelayAddress{kRelay6, std::nullopt});
  TurnClient c = alice();
  AllocateOptions o;
  o.additional_family = Family::V6;
  Response r = allocate(c, tuple(1), o);
  ASSERT_EQ(r.relayed.size(), 2u);
  ASSERT_EQ(permit(c, tuple(1), {kPeer6}).outcome, Outcome::Success);
  io.to_client.clear();
  from_peer(r.relayed[1], kPeer6, "six");
  ASSERT_EQ(io.to_client.size(), 1u);
  auto pd = c.on_peer_data(io.to_client[0].bytes);
  ASSERT_TRUE(pd);
  EXPECT_EQ(pd->peer, kPeer6);
  EXPECT_EQ(string_of(pd->data), "six");
  // And the other way, out of the IPv6 relay.
  send_indication(c, tuple(1), kPeer6, "back");
  ASSERT_EQ(io.to_peer.size(), 1u);
  EXPECT_EQ(io.to_peer[0].relay, *io.relay_at(r.relayed[1]));
}

TEST_F(TurnCoreTest, PeerDatagramWithChannelBecomesUnpaddedChannelDataOverUdp) {
  TurnClient c = alice();
  const TransportAddress relayed = allocate_ok(c, tuple(1));
  ASSERT_EQ(bind(c, tuple(1), 0x4ABC, kPeer).outcome, Outcome::Success);
  io.to_client.clear();
  from_peer(relayed, kPeer, "hello");
  ASSERT_EQ(io.to_client.size(), 1u);
  const std::vector<uint8_t> expected = {0x4A, 0xBC, 0x00, 0x05, 'h', 'e', 'l', 'l', 'o'};
  EXPECT_EQ(io.to_client[0].bytes, expected);
  auto pd = c.on_peer_data(io.to_client[0].bytes);
  ASSERT_TRUE(pd);
  EXPECT_EQ(pd->channel, 0x4ABC);
  EXPECT_EQ(pd->peer, kPeer);
  EXPECT_EQ(string_of(pd->data), "hello");
}

TEST_F(TurnCoreTest, PeerDatagramWithChannelIsPaddedOverTcp) {
  const FiveTuple tcp = tuple(1, Transport::Tcp);
  TurnClient c = alice();
  const TransportAddress relayed = allocate_ok(c, tcp);
  ASSERT_EQ(bind(c, tcp, 0x4000, kPeer).outcome, Outcome::Success);
  io.to_client.clear();
  from_peer(relayed, kPeer, "hello");
  ASSERT_EQ(io.to_client.size(), 1u);
  const std::vector<uint8_t> expected = {0x40, 0x00, 0x00, 0x05, 'h', 'e', 'l', 'l', 'o', 0, 0, 0};
  EXPECT_EQ(io.to_client[0].bytes, expected);
  // A stream client's padded ChannelData is relayed without the padding.
  send_channel_data(tcp, 0x4000, "abcde");
  ASSERT_EQ(io.to_peer.size(), 1u);
  EXPECT_EQ(string_of(io.to_peer[0].bytes), "abcde");
  // Its allocation ending tells the shell the connection may go.
  ASSERT_EQ(refresh(c, tcp, 0).outcome, Outcome::Success);
  ASSERT_EQ(io.stream_closed.size(), 1u);
  EXPECT_EQ(io.stream_closed[0], tcp);
}

TEST_F(TurnCoreTest, BandwidthLimitDropsBeyondTokenBucket) {
  config.bandwidth_per_allocation = 1000;  // bytes/s, burst one second's worth
  TurnClient c = alice();
  const TransportAddress relayed = allocate_ok(c, tuple(1));
  ASSERT_EQ(permit(c, tuple(1), {kPeer}).outcome, Outcome::Success);
  const std::string chunk(600, 'b');
  send_indication(c, tuple(1), kPeer, chunk);
  EXPECT_EQ(io.to_peer.size(), 1u);
  send_indication(c, tuple(1), kPeer, chunk);  // 400 tokens left: dropped
  EXPECT_EQ(io.to_peer.size(), 1u);
  EXPECT_EQ(dropped(DropReason::Bandwidth), 1u);
  io.to_client.clear();
  from_peer(relayed, kPeer, chunk);  // the same bucket serves both directions
  EXPECT_TRUE(io.to_client.empty());
  EXPECT_EQ(dropped(DropReason::Bandwidth), 2u);
  clock.advance(1s);  // refilled
  send_indication(c, tuple(1), kPeer, chunk);
  EXPECT_EQ(io.to_peer.size(), 2u);
}

// ================================ revocation ================================

TEST_F(TurnCoreTest, CloseUserClosesOnlyThatUsersAllocations) {
  TurnClient a1 = alice(), a2 = alice(), b = bob();
  allocate_ok(a1, tuple(1));
  allocate_ok(a2, tuple(2));
  const TransportAddress bob_relay = allocate_ok(b, tuple(3));
  EXPECT_EQ(server().close_user("alice"), 2u);
  EXPECT_EQ(server().allocation_count(), 1u);
  EXPECT_NE(server().find_allocation(tuple(3)), nullptr);
  ASSERT_EQ(io.open.size(), 1u);
  EXPECT_EQ(io.open.begin()->second, bob_relay);
  EXPECT_EQ(server().stats().allocations_deleted.get(), 2u);
  EXPECT_EQ(server().close_user("alice"), 0u);
  EXPECT_EQ(server().close_user("nobody"), 0u);
  // Alice's old 5-tuple has no allocation now.
  expect_error(refresh(a1, tuple(1)), code::AllocationMismatch);
}

TEST_F(TurnCoreTest, RevalidateClosesAllocationsTheStoreNoLongerVouchesFor) {
  TurnClient a = alice(), b = bob();
  allocate_ok(a, tuple(1));
  allocate_ok(b, tuple(2));
  EXPECT_EQ(server().revalidate_users(), 0u);  // nothing changed
  EXPECT_EQ(server().allocation_count(), 2u);
  users.add_password("alice", "new-password");  // a new key: the old allocation is no longer vouched for
  users.remove("bob");
  EXPECT_EQ(server().revalidate_users(), 2u);
  EXPECT_EQ(server().allocation_count(), 0u);
  EXPECT_TRUE(io.open.empty());
}

TEST_F(TurnCoreTest, RevalidateWithAnAsyncStoreClosesWhenTheAnswerComes) {
  AsyncStore async(users);
  store = &async;
  async.defer = false;
  TurnClient a = alice(), b = bob();
  allocate_ok(a, tuple(1));
  allocate_ok(b, tuple(2));
  async.defer = true;
  users.remove("alice");
  EXPECT_EQ(server().revalidate_users(), 0u);  // answers pending
  EXPECT_EQ(server().allocation_count(), 2u);
  async.answer_all();
  EXPECT_EQ(server().allocation_count(), 1u);
  EXPECT_NE(server().find_allocation(tuple(2)), nullptr);
}

TEST_F(TurnCoreTest, StreamClientClosingEndsItsAllocation) {
  const FiveTuple tcp = tuple(1, Transport::Tcp);
  TurnClient a = alice(), b = bob();
  allocate_ok(a, tcp);
  allocate_ok(b, tuple(2));
  server().on_client_closed(tcp);
  EXPECT_EQ(server().find_allocation(tcp), nullptr);
  EXPECT_EQ(server().allocation_count(), 1u);
  EXPECT_EQ(io.open.size(), 1u);
  EXPECT_EQ(server().stats().allocations_deleted.get(), 1u);
  server().on_client_closed(tcp);  // twice is harmless
  EXPECT_EQ(server().allocation_count(), 1u);
}

// ================================ asynchronous credentials ================================

TEST_F(TurnCoreTest, AsyncCredentialStoreAnswersAfterCallback) {
  AsyncStore async(users);
  store = &async;
  TurnClient c = alice();
  auto req = c.allocate_request(buf);
  ASSERT_EQ(exchange(c, tuple(1), *req).outcome, Outcome::Retry);  // the challenge needs no lookup
  EXPECT_EQ(async.queued(), 0u);
  auto again = c.retry(buf, c.last_transaction_id());
  io.to_client.clear();
  server().on_client_packet(tuple(1), *again);
  EXPECT_TRUE(io.to_client.empty());  // waiting for the store
  EXPECT_EQ(async.queued(), 1u);
  EXPECT_EQ(server().allocation_count(), 0u);
  buf.fill(0);  // the request buffer is reused by the shell meanwhile: the core must have copied it
  async.answer_all();
  ASSERT_EQ(io.to_client.size(), 1u);
  Response r = c.on_response(io.to_client[0].bytes);
  EXPECT_EQ(r.outcome, Outcome::Success) << r.error_code << " " << r.reason;
  EXPECT_TRUE(r.authenticated);
  EXPECT_EQ(server().allocation_count(), 1u);
  EXPECT_EQ(io.open.size(), 1u);
}

TEST_F(TurnCoreTest, AsyncCredentialStoreWrongPasswordGets401AfterCallback) {
  AsyncStore async(users);
  store = &async;
  TurnClient c(creds("alice", "bad"));
  auto req = c.allocate_request(buf);
  ASSERT_EQ(exchange(c, tuple(1), *req).outcome, Outcome::Retry);
  auto again = c.retry(buf, c.last_transaction_id());
  io.to_client.clear();
  server().on_client_packet(tuple(1), *again);
  EXPECT_TRUE(io.to_client.empty());
  async.answer_all();
  ASSERT_EQ(io.to_client.size(), 1u);
  expect_error(c.on_response(io.to_client[0].bytes), code::Unauthenticated);
  expect_nothing_allocated();
}

TEST_F(TurnCoreTest, CoreDestroyedBeforeAsyncCallbackDoesNotCrash) {
  AsyncStore async(users);
  store = &async;
  TurnClient c = alice();
  auto req = c.allocate_request(buf);
  ASSERT_EQ(exchange(c, tuple(1), *req).outcome, Outcome::Retry);
  auto again = c.retry(buf, c.last_transaction_id());
  io.to_client.clear();
  server().on_client_packet(tuple(1), *again);
  ASSERT_EQ(async.queued(), 1u);
  core.reset();
  async.answer_all();  // must not touch the destroyed core (ASan would report it)
  EXPECT_TRUE(io.to_client.empty());
  EXPECT_TRUE(io.open.empty());
}

// ================================ client-side checks ================================

TEST_F(TurnCoreTest, ClientDiscardsTamperedAndUnsolicitedResponses) {
  TurnClient c = alice();
  auto req = c.allocate_request(buf);
  ASSERT_EQ(exchange(c, tuple(1), *req).outcome, Outcome::Retry);
  auto again = c.retry(buf, c.last_transaction_id());
  io.to_client.clear();
  server().on_client_packet(tuple(1), *again);
  ASSERT_EQ(io.to_client.size(), 1u);
  std::vector<uint8_t> tampered = io.to_client[0].bytes;
  tampered[tampered.size() - 1] ^= 0x01;  // inside MESSAGE-INTEGRITY
  Response bad = c.on_response(tampered);
  EXPECT_EQ(bad.outcome, Outcome::Discarded);
  EXPECT_TRUE(c.is_pending(bad.transaction_id));  // still waiting for the real answer
  Response good = c.on_response(io.to_client[0].bytes);
  EXPECT_EQ(good.outcome, Outcome::Success);
  Response dup = c.on_response(io.to_client[0].bytes);  // answered already
  EXPECT_EQ(dup.outcome, Outcome::Discarded);
}


// Issue 3 "bad input": a flood of unauthenticated Allocates from many spoofed sources and bad
// integrity from one source each get their RFC answer and leave no state behind (stateless nonces).
TEST_F(TurnCoreTest, AllocateFloodFromSpoofedSourcesLeavesNoState) {
  constexpr int kSources = 5000;
  for (int i = 0; i < kSources; ++i) {
    TurnClient c = alice();
    auto req = c.allocate_request(buf);
    ASSERT_TRUE(req.ok());
    server().on_client_packet(tuple(i), *req);
  }
  EXPECT_EQ(io.to_client.size(), static_cast<size_t>(kSources));  // one bounded 401 each
  for (const auto& sent : io.to_client) EXPECT_LT(sent.bytes.size(), 200u);
  EXPECT_EQ(server().stats().errors_sent[401].get(), static_cast<uint64_t>(kSources));
  // Wrong passwords from one source: 401 each time, still nothing kept.
  TurnClient mallory(creds("alice", "not-the-password"));
  for (int i = 0; i < 20; ++i) {
    Response r = allocate(mallory, tuple(1));
    EXPECT_EQ(r.error_code, code::Unauthenticated);
  }
  expect_nothing_allocated();
  EXPECT_EQ(server().allocation_count(), 0u);
}

// libwebrtc and coturn's clients pick channel numbers from RFC 5766's 0x4000-0x7FFF; the server
// accepts them when configured for it (the shipped default) and relays ChannelData on them.
TEST_F(TurnCoreTest, Rfc5766ChannelNumbersAcceptedWhenConfigured) {
  config.max_channel_number = turn::ChannelNumber::kMaxRfc5766;
  TurnClient c = alice();
  allocate_ok(c, tuple(1));
  const TransportAddress peer = *TransportAddress::parse("192.0.2.7:9000");
  EXPECT_EQ(bind(c, tuple(1), 0x56CB, peer).outcome, Outcome::Success);
  EXPECT_EQ(bind(c, tuple(1), 0x8000, peer).error_code, code::BadRequest);  // not ChannelData at all
  io.to_peer.clear();
  send_channel_data(tuple(1), 0x56CB, "hello");
  ASSERT_EQ(io.to_peer.size(), 1u);
  EXPECT_EQ(io.to_peer[0].peer, peer);
}

// ================================ relay policy matrix (issue 8) ================================
// Every address class refused by default, through every way a client can name a peer: the
// CreatePermission and ChannelBind are answered 403 and install nothing, and a Send indication to
// the peer relays nothing (indications get no answer; the drop is counted as policy).

TEST_F(TurnCoreTest, RelayPolicyMatrixRefusesEveryDefaultDeniedClass) {
  config.relays.push_back(RelayAddress{kRelay6, std::nullopt});
  TurnClient c = alice();
  AllocateOptions o;
  o.additional_family = Family::V6;  // a dual allocation, so IPv6 peers are refused by policy, not 443
  allocate_ok(c, tuple(1), o);
  const struct {
    const char* cls;
    const char* peer;
  } kDenied[] = {
      {"loopback v4", "127.0.0.1:9"},
      {"loopback v4 (other)", "127.10.20.30:9"},
      {"unspecified v4", "0.0.0.0:9"},
      {"this network", "0.1.2.3:9"},
      {"RFC 1918 10/8", "10.1.2.3:9"},
      {"RFC 1918 172.16/12", "172.16.5.4:9"},
      {"RFC 1918 192.168/16", "192.168.1.1:9"},
      {"RFC 6598 shared", "100.64.0.1:9"},
      {"link-local v4 (cloud metadata)", "169.254.169.254:80"},
      {"multicast v4", "224.0.0.251:9"},
      {"broadcast", "255.255.255.255:9"},
      {"reserved 240/4", "240.0.0.1:9"},
      {"loopback v6", "[::1]:9"},
      {"unspecified v6", "[::]:9"},
      {"link-local v6", "[fe80::1]:9"},
      {"ULA", "[fd00::1]:9"},
      {"multicast v6", "[ff02::1]:9"},
      {"IPv4-mapped loopback", "[::ffff:127.0.0.1]:9"},
      {"IPv4-mapped private", "[::ffff:10.0.0.1]:9"},
      {"IPv4-compatible loopback", "[::127.0.0.1]:9"},
      {"NAT64 of private", "[64:ff9b::a00:1]:9"},
      {"NAT64 of loopback", "[64:ff9b::7f00:1]:9"},
      {"6to4 of private", "[2002:a00:1::1]:9"},
      {"server's own relay v4", "198.51.100.10:9"},
      {"server's own relay v6", "[2001:db8::10]:9"},
  };
  uint16_t channel = 0x4000;
  for (const auto& d : kDenied) {
    SCOPED_TRACE(std::string(d.cls) + " " + d.peer);
    const TransportAddress peer = addr(d.peer);
    expect_error(permit(c, tuple(1), {peer}), code::Forbidden);
    expect_error(bind(c, tuple(1), channel++, peer), code::Forbidden);
    const uint64_t policy_drops = server().stats().dropped[static_cast<size_t>(DropReason::Policy)].get();
    send_indication(c, tuple(1), peer, "probe");
    EXPECT_TRUE(io.to_peer.empty());
    EXPECT_GT(server().stats().dropped[static_cast<size_t>(DropReason::Policy)].get() +
                  server().stats().dropped[static_cast<size_t>(DropReason::NoPermission)].get(),
              policy_drops);
  }
  const Allocation* a = server().find_allocation(tuple(1));
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->permissions.size(), 0u);
  EXPECT_TRUE(io.to_peer.empty());
  // And a public peer still works, so the refusals above were the policy's doing.
  EXPECT_EQ(permit(c, tuple(1), {kPeer}).outcome, Outcome::Success);
  send_indication(c, tuple(1), kPeer, "ok");
  EXPECT_EQ(io.to_peer.size(), 1u);
}

TEST_F(TurnCoreTest, UnauthenticatedAnswersAreRateLimitedPerSourceIp) {
  config.unauth_requests_per_second = 5;  // bursts of 10
  auto challenges = [&](const FiveTuple& t, int n) {
    int answered = 0;
    for (int i = 0; i < n; ++i) {
      TurnClient c = alice();
      auto req = c.allocate_request(buf);
      io.to_client.clear();
      server().on_client_packet(t, *req);
      answered += static_cast<int>(io.to_client.size());
    }
    return answered;
  };
  FiveTuple spoofed = tuple(1);
  EXPECT_EQ(challenges(spoofed, 30), 10);
  spoofed.client.port = 9;  // another port of the same IP shares its bucket
  EXPECT_EQ(challenges(spoofed, 5), 0);
  EXPECT_EQ(challenges(tuple(2), 10), 10);  // another source is not affected
  EXPECT_EQ(challenges(tuple(3, Transport::Tcp), 30), 30);  // a stream's source cannot be spoofed
  EXPECT_EQ(server().stats().dropped[static_cast<size_t>(DropReason::RateLimited)].get(), 25u);
  clock.advance(std::chrono::seconds(1));
  EXPECT_EQ(challenges(tuple(1), 30), 5);
  // An authenticated client is not held back by the limit on its challenges.
  TurnClient c = alice();
  clock.advance(std::chrono::seconds(2));
  allocate_ok(c, tuple(1));
}

}  // namespace
}  // namespace ferry::turn

// ================================ Draining and gauges ================================

namespace ferry::turn {
namespace {

int64_t active(const ServerStats& s, Transport t, AllocationFamily f) {
  return s.allocations_active[static_cast<size_t>(t)][idx(f)].get();
}

TEST_F(TurnCoreTest, DrainingRefusesNewAllocationsWith508AndKeepsOldOnes) {
  TurnClient a = alice();
  allocate_ok(a, tuple(1));
  server().set_draining(true);
  EXPECT_TRUE(server().draining());
  TurnClient b = bob();
  Response r = allocate(b, tuple(2));
  expect_error(r, code::InsufficientCapacity);
  EXPECT_TRUE(r.authenticated);
  EXPECT_EQ(server().allocation_count(), 1u);
  EXPECT_EQ(server().stats().allocations_refused[code::InsufficientCapacity].get(), 1u);
  // The existing allocation lives on: refresh, permissions and data still work.
  EXPECT_EQ(refresh(a, tuple(1), 600).outcome, Outcome::Success);
  ASSERT_EQ(permit(a, tuple(1), {kPeer}).outcome, Outcome::Success);
  send_indication(a, tuple(1), kPeer, "still relayed");
  EXPECT_EQ(io.to_peer.size(), 1u);
  // ...and ends when the client deletes it, or expires.
  ASSERT_EQ(refresh(a, tuple(1), 0).outcome, Outcome::Success);
  EXPECT_EQ(server().stats().active_allocations(), 0);
  server().set_draining(false);
  allocate_ok(b, tuple(2));
}

TEST_F(TurnCoreTest, DrainingWithAlternateServerAnswers300WithAlternateServer) {
  const TransportAddress alt = addr("203.0.113.9:3478");
  server().set_draining(true, alt);
  TurnClient c = alice();
  Response r = allocate(c, tuple(1));
  expect_error(r, code::TryAlternate);
  EXPECT_TRUE(r.authenticated);  // RFC 8489 §10: only the real server may redirect
  MessageView v = response_view();
  auto a = v.find(attr::AlternateServer);
  ASSERT_TRUE(a.has_value());
  auto decoded = stun::decode_address(a->value);
  ASSERT_TRUE(decoded.ok());
  EXPECT_EQ(*decoded, alt);
  expect_nothing_allocated();
  EXPECT_EQ(server().stats().allocations_refused[code::TryAlternate].get(), 1u);
}

TEST_F(TurnCoreTest, DrainingAlternateOfOtherFamilyFallsBackTo508) {
  server().set_draining(true, addr("[2001:db8::9]:3478"));
  TurnClient c = alice();
  Response r = allocate(c, tuple(1));
  expect_error(r, code::InsufficientCapacity);
  EXPECT_FALSE(response_view().has(attr::AlternateServer));
}

TEST_F(TurnCoreTest, DrainingStillAnswersARetransmittedAllocate) {
  TurnClient c = alice();
  allocate_ok(c, tuple(1));
  const std::vector<uint8_t> first = last_request;
  server().set_draining(true);
  io.to_client.clear();
  server().on_client_packet(tuple(1), Bytes(first));
  ASSERT_EQ(io.to_client.size(), 1u);
  auto v = MessageView::parse(Bytes(io.to_client[0].bytes));
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v->cls(), stun::Class::Success);
}

TEST_F(TurnCoreTest, GaugesFollowAllocationsPermissionsAndChannels) {
  config.relays.push_back(RelayAddress{kRelay6, std::nullopt});
  TurnClient a = alice();
  allocate_ok(a, tuple(1));
  TurnClient b = bob();
  AllocateOptions dual;
  dual.additional_family = Family::V6;
  ASSERT_EQ(allocate(b, tuple(2, Transport::Tcp), dual).relayed.size(), 2u);
  const ServerStats& s = server().stats();
  EXPECT_EQ(active(s, Transport::Udp, AllocationFamily::V4), 1);
  EXPECT_EQ(active(s, Transport::Tcp, AllocationFamily::Dual), 1);
  EXPECT_EQ(s.active_allocations(), 2);

  ASSERT_EQ(permit(a, tuple(1), {kPeer, kPeer2}).outcome, Outcome::Success);
  ASSERT_EQ(permit(a, tuple(1), {kPeer}).outcome, Outcome::Success);  // a refresh, not a new one
  EXPECT_EQ(s.permissions_active.get(), 2);
  ASSERT_EQ(bind(a, tuple(1), 0x4000, kPeer).outcome, Outcome::Success);
  EXPECT_EQ(s.channels_active.get(), 1);
  EXPECT_EQ(s.permissions_active.get(), 2);

  // Dropping the IPv6 leg moves the allocation from dual to IPv4.
  ASSERT_EQ(refresh(b, tuple(2, Transport::Tcp), 0, Family::V6).outcome, Outcome::Success);
  EXPECT_EQ(active(s, Transport::Tcp, AllocationFamily::Dual), 0);
  EXPECT_EQ(active(s, Transport::Tcp, AllocationFamily::V4), 1);

  // Permissions expire after 300 s (the channel refreshes its own peer's permission only when
  // rebound), channels after 600 s; the tick recounts.
  clock.advance(301s);
  ASSERT_EQ(refresh(a, tuple(1), 600).outcome, Outcome::Success);
  server().tick();
  EXPECT_EQ(s.permissions_active.get(), 0);
  EXPECT_EQ(s.channels_active.get(), 1);
  clock.advance(300s);
  server().tick();
  EXPECT_EQ(s.channels_active.get(), 0);

  // Deleting takes everything of an allocation off the gauges.
  ASSERT_EQ(permit(a, tuple(1), {kPeer}).outcome, Outcome::Success);
  EXPECT_EQ(s.permissions_active.get(), 1);
  ASSERT_EQ(refresh(a, tuple(1), 0).outcome, Outcome::Success);
  EXPECT_EQ(s.permissions_active.get(), 0);
  EXPECT_EQ(active(s, Transport::Udp, AllocationFamily::V4), 0);
  server().on_client_closed(tuple(2, Transport::Tcp));
  EXPECT_EQ(s.active_allocations(), 0);
}

TEST_F(TurnCoreTest, ResponsesAreCountedByMethodAndResult) {
  TurnClient c = alice();
  allocate_ok(c, tuple(1));  // a 401 challenge, then success
  const ServerStats& s = server().stats();
  EXPECT_EQ(s.responses[idx(RequestMethod::Allocate)][idx(RequestResult::Error)].get(), 1u);
  EXPECT_EQ(s.responses[idx(RequestMethod::Allocate)][idx(RequestResult::Success)].get(), 1u);
  EXPECT_EQ(s.allocations_refused[code::Unauthenticated].get(), 0u) << "a challenge is not a refusal";
  expect_error(allocate(c, tuple(1)), code::AllocationMismatch);  // a second one on the same 5-tuple
  EXPECT_EQ(s.allocations_refused[code::AllocationMismatch].get(), 1u);
  EXPECT_EQ(refresh(c, tuple(1), 600).outcome, Outcome::Success);
  EXPECT_EQ(s.responses[idx(RequestMethod::Refresh)][idx(RequestResult::Success)].get(), 1u);
}

TEST_F(TurnCoreTest, SetLimitsAppliesToNewRequests) {
  TurnClient a = alice();
  allocate_ok(a, tuple(1));
  ServerCoreConfig l = config;
  l.max_lifetime = 120;
  l.default_lifetime = 60;
  l.max_allocations = 1;
  server().set_limits(l);
  // A refresh asking for an hour now gets the new maximum.
  Response r = refresh(a, tuple(1), 3600);
  ASSERT_EQ(r.outcome, Outcome::Success);
  EXPECT_EQ(a.lifetime(), 120u);
  // The cap of one allocation is reached: 508 for the next.
  TurnClient b = bob();
  expect_error(allocate(b, tuple(2)), code::InsufficientCapacity);
  l.max_allocations = 0;
  server().set_limits(l);
  allocate_ok(b, tuple(2));
  EXPECT_EQ(server().allocation_count(), 2u);
}


// ================================ RFC 6062 TCP allocations ================================

class TcpAllocationTest : public TurnCoreTest {
 protected:
  const FiveTuple control = tuple(1, Transport::Tcp);

  // Allocates a TCP relay for alice on `control`; returns its relayed address.
  TransportAddress allocate_tcp(TurnClient& c, const FiveTuple& t) {
    AllocateOptions o;
    o.transport = stun::kTransportTcp;
    return allocate_ok(c, t, o);
  }
  // Sends a Connect (the client is authenticated already): the answer comes later.
  void send_connect(TurnClient& c, const FiveTuple& t, const TransportAddress& peer) {
    auto req = c.request(buf, stun::Method::Connect, [&](stun::MessageBuilder& b) {
      b.add_xor_address(attr::XorPeerAddress, peer);
    });
    ASSERT_TRUE(req.ok());
    last_request.assign(req->begin(), req->end());
    io.to_client.clear();
    server().on_client_packet(t, *req);
  }
  // The one message sent to `t` since the last clear, as the client reads it.
  Response answer(TurnClient& c, const FiveTuple& t) {
    if (io.to_client.size() != 1) {
      ADD_FAILURE() << "expected one message, got " << io.to_client.size();
      return Response{};
    }
    EXPECT_EQ(io.to_client[0].to, t);
    last_response = io.to_client[0].bytes;
    io.to_client.clear();
    return c.on_response(last_response);
  }
  std::optional<ConnectionId> connection_id() const {
    auto v = MessageView::parse(Bytes(last_response));
    if (!v) return std::nullopt;
    auto a = v->find(attr::ConnectionId);
    if (!a) return std::nullopt;
    auto id = stun::decode_u32(a->value);
    return id ? std::optional<ConnectionId>(*id) : std::nullopt;
  }
  // Connect to `peer` and let the shell report success; returns the CONNECTION-ID answered.
  ConnectionId connect_ok(TurnClient& c, const TransportAddress& peer) {
    send_connect(c, control, peer);
    EXPECT_TRUE(io.to_client.empty()) << "Connect answered before the shell reported";
    if (io.connects.empty()) {
      ADD_FAILURE() << "no connect_peer";
      return 0;
    }
    const ConnectionId id = io.connects.back().id;
    EXPECT_EQ(io.connects.back().peer, peer);
    server().on_peer_connected(id, true);
    Response r = answer(c, control);
    EXPECT_EQ(r.outcome, Outcome::Success) << r.error_code << " " << r.reason;
    EXPECT_EQ(r.method, stun::Method::Connect);
    EXPECT_TRUE(r.authenticated);
    EXPECT_EQ(connection_id(), id);
    return id;
  }
  Response connection_bind(TurnClient& c, const FiveTuple& t, ConnectionId id) {
    return transact(c, t, [&](TurnClient& cl, MutableBytes out) {
      return cl.request(out, stun::Method::ConnectionBind,
                        [&](stun::MessageBuilder& b) { b.add_u32(attr::ConnectionId, id); });
    });
  }
};

TEST_F(TcpAllocationTest, AllocateOverTcpOpensATcpRelay) {
  TurnClient c = alice();
  const TransportAddress relayed = allocate_tcp(c, control);
  auto relay = io.relay_at(relayed);
  ASSERT_TRUE(relay);
  EXPECT_EQ(io.tcp_relays.count(*relay), 1u);
  ASSERT_NE(server().find_allocation(control), nullptr);
  EXPECT_TRUE(server().find_allocation(control)->tcp);
  // The control connection ends: so does the allocation and its listener.
  server().on_client_closed(control);
  expect_nothing_allocated();
}

TEST_F(TcpAllocationTest, AllocateOverTlsWorksToo) {
  TurnClient c = alice();
  allocate_tcp(c, tuple(1, Transport::Tls));
  EXPECT_EQ(io.tcp_relays.size(), 1u);
}

TEST_F(TcpAllocationTest, AllocateOverUdpOrDtlsGets400) {
  for (Transport t : {Transport::Udp, Transport::Dtls}) {
    TurnClient c = alice();
    AllocateOptions o;
    o.transport = stun::kTransportTcp;
    expect_error(allocate(c, tuple(1, t), o), code::BadRequest);
  }
  expect_nothing_allocated();
}

TEST_F(TcpAllocationTest, AllocateWithUdpOnlyAttributesGets400) {
  AllocateOptions df, even, token;
  df.dont_fragment = true;
  even.even_port = true;
  token.reservation_token = 0x0102030405060708ull;
  for (AllocateOptions o : {df, even, token}) {
    o.transport = stun::kTransportTcp;
    TurnClient c = alice();
    expect_error(allocate(c, control, o), code::BadRequest);
  }
  expect_nothing_allocated();
}

TEST_F(TcpAllocationTest, ConnectSucceedsWhenTheShellConnects) {
  TurnClient c = alice();
  const TransportAddress relayed = allocate_tcp(c, control);
  const ConnectionId id = connect_ok(c, kPeer);
  EXPECT_NE(id, 0u);
  EXPECT_EQ(io.connects[0].relay, *io.relay_at(relayed));
  const TcpConnection* tc = server().find_tcp_connection(id);
  ASSERT_NE(tc, nullptr);
  EXPECT_EQ(tc->state, TcpConnection::State::AwaitingBind);
  EXPECT_EQ(server().stats().tcp_connections_opened.get(), 1u);
  EXPECT_EQ(server().stats().tcp_connections_active.get(), 1);
}

TEST_F(TcpAllocationTest, ConnectFailureGets447) {
  TurnClient c = alice();
  allocate_tcp(c, control);
  send_connect(c, control, kPeer);
  ASSERT_EQ(io.connects.size(), 1u);
  server().on_peer_connected(io.connects[0].id, false);
  expect_error(answer(c, control), code::ConnectionTimeoutOrFailure);
  EXPECT_EQ(server().tcp_connection_count(), 0u);
  EXPECT_TRUE(io.closed_connections.empty()) << "the shell let go of a failed connect itself";
}

TEST_F(TcpAllocationTest, ConnectThatCannotStartGets447AtOnce) {
  io.connect_starts = false;
  TurnClient c = alice();
  allocate_tcp(c, control);
  send_connect(c, control, kPeer);
  expect_error(answer(c, control), code::ConnectionTimeoutOrFailure);
  EXPECT_EQ(server().tcp_connection_count(), 0u);
}

TEST_F(TcpAllocationTest, ConnectTimesOutAfter30Seconds) {
  TurnClient c = alice();
  allocate_tcp(c, control);
  send_connect(c, control, kPeer);
  ASSERT_EQ(io.connects.size(), 1u);
  const ConnectionId id = io.connects[0].id;
  clock.advance(29s);
  server().tick();
  EXPECT_TRUE(io.to_client.empty());
  clock.advance(1s);
  server().tick();
  expect_error(answer(c, control), code::ConnectionTimeoutOrFailure);
  EXPECT_EQ(io.closed_connections, std::vector<ConnectionId>{id});
  // The shell's late success finds nothing: it is told to close the socket.
  server().on_peer_connected(id, true);
  EXPECT_TRUE(io.to_client.empty());
  EXPECT_EQ(io.closed_connections.size(), 2u);
}

TEST_F(TcpAllocationTest, ConnectToADeniedPeerGets403) {
  TurnClient c = alice();
  allocate_tcp(c, control);
  send_connect(c, control, addr("10.1.2.3:80"));  // outside peers.allow
  expect_error(answer(c, control), code::Forbidden);
  send_connect(c, control, addr("198.51.100.10:5000"));  // the relay address itself
  expect_error(answer(c, control), code::Forbidden);
  EXPECT_TRUE(io.connects.empty());
}

TEST_F(TcpAllocationTest, ConnectToTheSamePeerTwiceGets446) {
  TurnClient c = alice();
  allocate_tcp(c, control);
  send_connect(c, control, kPeer);
  send_connect(c, control, kPeer);  // while the first is connecting
  expect_error(answer(c, control), code::ConnectionAlreadyExists);
  server().on_peer_connected(io.connects[0].id, true);
  EXPECT_EQ(answer(c, control).outcome, Outcome::Success);
  send_connect(c, control, kPeer);  // while it waits for its bind
  expect_error(answer(c, control), code::ConnectionAlreadyExists);
  // Another port of the same host is another connection.
  send_connect(c, control, kPeer.with_port(5001));
  EXPECT_EQ(io.connects.size(), 2u);
}

TEST_F(TcpAllocationTest, ConnectBadRequests) {
  TurnClient c = alice();
  allocate_tcp(c, control);
  auto req = c.request(buf, stun::Method::Connect, [](stun::MessageBuilder&) {});  // no XOR-PEER-ADDRESS
  ASSERT_TRUE(req.ok());
  io.to_client.clear();
  server().on_client_packet(control, *req);
  expect_error(answer(c, control), code::BadRequest);
  send_connect(c, control, kPeer.with_port(0));
  expect_error(answer(c, control), code::BadRequest);
  send_connect(c, control, kPeer6);  // no IPv6 relayed address
  expect_error(answer(c, control), code::PeerAddressFamilyMismatch);
  EXPECT_TRUE(io.connects.empty());
}

TEST_F(TcpAllocationTest, ConnectOnAUdpAllocationGets400AndWithoutOneGets437) {
  TurnClient c = alice();
  allocate_ok(c, control);  // REQUESTED-TRANSPORT UDP over TCP
  send_connect(c, control, kPeer);
  expect_error(answer(c, control), code::BadRequest);
  TurnClient d = bob();
  Response r = transact(d, tuple(2, Transport::Tcp), [&](TurnClient& cl, MutableBytes out) {
    return cl.request(out, stun::Method::Connect, [&](stun::MessageBuilder& b) { b.add_xor_address(attr::XorPeerAddress, kPeer); });
  });
  expect_error(r, code::AllocationMismatch);
  EXPECT_TRUE(io.connects.empty());
}

TEST_F(TcpAllocationTest, PendingConnectionsAreLimited) {
  config.max_pending_tcp_connections = 2;
  TurnClient c = alice();
  allocate_tcp(c, control);
  connect_ok(c, kPeer);
  send_connect(c, control, kPeer2);
  send_connect(c, control, kPeer.with_port(7000));
  expect_error(answer(c, control), code::InsufficientCapacity);
  ASSERT_EQ(permit(c, control, {kPeer}).outcome, Outcome::Success);
  EXPECT_FALSE(server().on_peer_connection(io.connects[0].relay, kPeer.with_port(7001)));
}

TEST_F(TcpAllocationTest, SendAndChannelBindAreRefusedOnATcpAllocation) {
  TurnClient c = alice();
  allocate_tcp(c, control);
  ASSERT_EQ(permit(c, control, {kPeer}).outcome, Outcome::Success);
  expect_error(bind(c, control, 0x4000, kPeer), code::BadRequest);
  send_indication(c, control, kPeer, "hello");
  EXPECT_TRUE(io.to_peer.empty());
  EXPECT_EQ(dropped(DropReason::Policy), 1u);
}

TEST_F(TcpAllocationTest, PeerWithoutPermissionIsRefusedSilently) {
  TurnClient c = alice();
  const TransportAddress relayed = allocate_tcp(c, control);
  io.to_client.clear();
  EXPECT_FALSE(server().on_peer_connection(*io.relay_at(relayed), kPeer));
  EXPECT_TRUE(io.to_client.empty());
  EXPECT_EQ(dropped(DropReason::NoPermission), 1u);
  // A permitted IP that the peer policy denies is refused too.
  EXPECT_FALSE(server().on_peer_connection(*io.relay_at(relayed), addr("10.1.2.3:80")));
  EXPECT_EQ(server().tcp_connection_count(), 0u);
}

TEST_F(TcpAllocationTest, PeerWithPermissionGetsAConnectionAttempt) {
  TurnClient c = alice();
  const TransportAddress relayed = allocate_tcp(c, control);
  ASSERT_EQ(permit(c, control, {kPeer}).outcome, Outcome::Success);
  io.to_client.clear();
  const TransportAddress from = kPeer.with_port(33333);  // permissions ignore the port
  auto id = server().on_peer_connection(*io.relay_at(relayed), from);
  ASSERT_TRUE(id);
  ASSERT_EQ(io.to_client.size(), 1u);
  EXPECT_EQ(io.to_client[0].to, control);
  auto v = MessageView::parse(Bytes(io.to_client[0].bytes));
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v->method(), stun::Method::ConnectionAttempt);
  EXPECT_EQ(v->cls(), stun::Class::Indication);
  auto peer_attr = v->find(attr::XorPeerAddress);
  ASSERT_TRUE(peer_attr);
  EXPECT_EQ(stun::decode_xor_address(peer_attr->value, v->transaction_id()).value(), from);
  auto id_attr = v->find(attr::ConnectionId);
  ASSERT_TRUE(id_attr);
  EXPECT_EQ(stun::decode_u32(id_attr->value).value(), *id);
  // The same peer address again is refused while that connection exists.
  EXPECT_FALSE(server().on_peer_connection(*io.relay_at(relayed), from));
}

TEST_F(TcpAllocationTest, ConnectionBindMakesADataConnection) {
  TurnClient c = alice();
  allocate_tcp(c, control);
  const ConnectionId id = connect_ok(c, kPeer);
  const FiveTuple data = tuple(2, Transport::Tcp);
  TurnClient d = alice();  // a new connection learns its own nonce
  Response r = connection_bind(d, data, id);
  EXPECT_EQ(r.outcome, Outcome::Success) << r.error_code << " " << r.reason;
  EXPECT_EQ(r.method, stun::Method::ConnectionBind);
  EXPECT_TRUE(r.authenticated);
  ASSERT_EQ(io.bound.size(), 1u);
  EXPECT_EQ(io.bound[0].first, id);
  EXPECT_EQ(io.bound[0].second, data);
  EXPECT_EQ(server().find_tcp_connection(id)->state, TcpConnection::State::Bound);
  // Bound connections do not time out...
  clock.advance(60s);
  server().tick();
  EXPECT_TRUE(io.closed_connections.empty());
  // ...and cannot be bound twice.
  TurnClient e = alice();
  expect_error(connection_bind(e, tuple(3, Transport::Tcp), id), code::BadRequest);
  // The shell reports the end of the pipe: the core forgets it.
  server().on_peer_connection_closed(id);
  EXPECT_EQ(server().tcp_connection_count(), 0u);
  EXPECT_NE(server().find_allocation(control), nullptr);
}

TEST_F(TcpAllocationTest, ConnectionBindMayUseTheControlConnectionsNonce) {
  // coturn's uclient signs the ConnectionBind on the new connection with the nonce its control
  // connection got, and cannot follow a challenge there.
  TurnClient c = alice();
  allocate_tcp(c, control);
  const ConnectionId id = connect_ok(c, kPeer);
  const FiveTuple data = tuple(2, Transport::Tcp);
  auto req = c.request(buf, stun::Method::ConnectionBind, [&](stun::MessageBuilder& b) { b.add_u32(attr::ConnectionId, id); });
  ASSERT_TRUE(req.ok());
  Response r = exchange(c, data, *req);
  EXPECT_EQ(r.outcome, Outcome::Success) << r.error_code << " " << r.reason;
  ASSERT_EQ(io.bound.size(), 1u);
  // Only for a connection waiting for its bind: otherwise that nonce is stale on this connection.
  auto again = c.request(buf, stun::Method::ConnectionBind, [&](stun::MessageBuilder& b) { b.add_u32(attr::ConnectionId, id); });
  ASSERT_TRUE(again.ok());
  r = exchange(c, tuple(3, Transport::Tcp), *again);
  EXPECT_EQ(r.outcome, Outcome::Retry);
  EXPECT_EQ(r.error_code, code::StaleNonce);
}

TEST_F(TcpAllocationTest, ConnectionBindForAPassiveConnection) {
  TurnClient c = alice();
  const TransportAddress relayed = allocate_tcp(c, control);
  ASSERT_EQ(permit(c, control, {kPeer}).outcome, Outcome::Success);
  auto id = server().on_peer_connection(*io.relay_at(relayed), kPeer);
  ASSERT_TRUE(id);
  TurnClient d = alice();
  EXPECT_EQ(connection_bind(d, tuple(2, Transport::Tls), *id).outcome, Outcome::Success);
  ASSERT_EQ(io.bound.size(), 1u);
}

TEST_F(TcpAllocationTest, ConnectionBindRefusals) {
  TurnClient c = alice();
  allocate_tcp(c, control);
  const ConnectionId id = connect_ok(c, kPeer);
  TurnClient d = alice();
  expect_error(connection_bind(d, tuple(2, Transport::Tcp), id ^ 0x5A5A5A5Au), code::BadRequest);  // unknown id
  TurnClient u = alice();
  expect_error(connection_bind(u, tuple(3, Transport::Udp), id), code::BadRequest);  // not a stream
  // On the control connection itself.
  expect_error(connection_bind(c, control, id), code::BadRequest);
  // Another user may not take alice's connection.
  TurnClient b = bob();
  expect_error(connection_bind(b, tuple(4, Transport::Tcp), id), code::WrongCredentials);
  // Without CONNECTION-ID.
  TurnClient e = alice();
  Response r = transact(e, tuple(5, Transport::Tcp), [&](TurnClient& cl, MutableBytes out) {
    return cl.request(out, stun::Method::ConnectionBind, [](stun::MessageBuilder&) {});
  });
  expect_error(r, code::BadRequest);
  EXPECT_TRUE(io.bound.empty());
  EXPECT_EQ(server().find_tcp_connection(id)->state, TcpConnection::State::AwaitingBind);
}

TEST_F(TcpAllocationTest, UnboundConnectionClosesAfter30Seconds) {
  TurnClient c = alice();
  const TransportAddress relayed = allocate_tcp(c, control);
  ASSERT_EQ(permit(c, control, {kPeer}).outcome, Outcome::Success);
  auto passive = server().on_peer_connection(*io.relay_at(relayed), kPeer);
  ASSERT_TRUE(passive);
  const ConnectionId active = connect_ok(c, kPeer2);
  clock.advance(29s);
  server().tick();
  EXPECT_TRUE(io.closed_connections.empty());
  clock.advance(1s);
  server().tick();
  std::vector<ConnectionId> closed = io.closed_connections;
  std::sort(closed.begin(), closed.end());
  std::vector<ConnectionId> expected{*passive, active};
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(closed, expected);
  EXPECT_EQ(server().tcp_connection_count(), 0u);
  // A bind after the timeout names an unknown connection.
  TurnClient d = alice();
  expect_error(connection_bind(d, tuple(2, Transport::Tcp), active), code::BadRequest);
}

TEST_F(TcpAllocationTest, AllocationEndClosesItsDataConnections) {
  TurnClient c = alice();
  allocate_tcp(c, control);
  const ConnectionId bound = connect_ok(c, kPeer);
  TurnClient d = alice();
  ASSERT_EQ(connection_bind(d, tuple(2, Transport::Tcp), bound).outcome, Outcome::Success);
  const ConnectionId waiting = connect_ok(c, kPeer2);
  send_connect(c, control, kPeer.with_port(6001));  // still connecting
  const ConnectionId connecting = io.connects.back().id;
  server().on_client_closed(control);
  std::vector<ConnectionId> closed = io.closed_connections;
  std::sort(closed.begin(), closed.end());
  std::vector<ConnectionId> expected{bound, waiting, connecting};
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(closed, expected);
  EXPECT_EQ(server().tcp_connection_count(), 0u);
  EXPECT_EQ(server().stats().tcp_connections_active.get(), 0);
  expect_nothing_allocated();
}

TEST_F(TcpAllocationTest, ExpiryClosesItsDataConnections) {
  TurnClient c = alice();
  allocate_tcp(c, control);
  const ConnectionId id = connect_ok(c, kPeer);
  TurnClient d = alice();
  ASSERT_EQ(connection_bind(d, tuple(2, Transport::Tcp), id).outcome, Outcome::Success);
  clock.advance(601s);
  server().tick();
  EXPECT_EQ(io.closed_connections, std::vector<ConnectionId>{id});
  ASSERT_EQ(io.stream_closed.size(), 1u);
  EXPECT_EQ(io.stream_closed[0], control);
  expect_nothing_allocated();
}

TEST_F(TcpAllocationTest, ConnectionIdsAreDistinct) {
  TurnClient c = alice();
  const TransportAddress relayed = allocate_tcp(c, control);
  ASSERT_EQ(permit(c, control, {kPeer}).outcome, Outcome::Success);
  std::set<ConnectionId> ids;
  for (uint16_t port = 1000; port < 1016; ++port) {
    auto id = server().on_peer_connection(*io.relay_at(relayed), kPeer.with_port(port));
    ASSERT_TRUE(id);
    EXPECT_NE(*id, 0u);
    ids.insert(*id);
  }
  EXPECT_EQ(ids.size(), 16u);
  // Not a plain counter: consecutive ids differ in many bits.
  auto it = ids.begin();
  EXPECT_GT(*std::next(it) - *it, 16u);
}

}  // namespace
}  // namespace ferry::turn
