// The long-term credential mechanism (RFC 8489 §9.2): 401/438 challenges, nonces, SHA-256 and
// PASSWORD-ALGORITHMS, USERHASH, asynchronous credential stores, the client's own checks of answers,
// and the rate limit on unauthenticated answers.
#include "tests/unit/fixtures/turn_core_fixture.h"

namespace ferry::turn {
namespace {

using namespace ferry::turn::testing;

// ================================ authentication ================================

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

// ================================ rate of unauthenticated answers ================================

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
  EXPECT_EQ(challenges(tuple(2), 10), 10);                  // another source is not affected
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
