// USERHASH answered later (RFC 8489 §14.4 with a database): a store whose resolve_userhash is
// pending, alone or behind a chain, lets the request wait and go on when the name comes; a hash
// it does not know ends in 401, and a core gone meanwhile is not called back.
#include "auth/chained_store.h"
#include "tests/unit/fixtures/turn_core_fixture.h"

namespace ferry::turn {
namespace {

using namespace ferry::turn::testing;

// Answers USERHASH only later, from `inner`, like PgCredentialStore on a cold hash.
class DeferredHashStore final : public auth::CredentialStore {
 public:
  explicit DeferredHashStore(auth::CredentialStore& inner) : inner_(inner) {}
  std::optional<auth::LookupResult> lookup(std::string_view username, std::string_view realm, Callback done) override {
    return inner_.lookup(username, realm, std::move(done));
  }
  HashLookup resolve_userhash(std::span<const uint8_t, 32> hash, std::string_view realm, NameCallback done) override {
    auto name = inner_.username_for_hash(hash, realm);
    queued_.push_back([name, done] { done(name); });
    return {true, std::nullopt};
  }
  void answer_all() {
    auto q = std::move(queued_);
    queued_.clear();
    for (auto& f : q) f();
  }
  size_t queued() const { return queued_.size(); }

 private:
  auth::CredentialStore& inner_;
  std::vector<std::function<void()>> queued_;
};

class UserhashAsyncTest : public TurnCoreTest {
 protected:
  UserhashAsyncTest() { config.userhash = true; }
  // Sends the Allocate that carries USERHASH (after the first 401) and returns what came back.
  size_t send_hashed_allocate(TurnClient& c, const FiveTuple& t) {
    auto req = c.allocate_request(buf);
    EXPECT_TRUE(req.ok());
    Response r = exchange(c, t, *req);  // 401: realm and nonce
    EXPECT_EQ(r.outcome, Outcome::Retry);
    auto again = c.retry(buf, r.transaction_id);
    EXPECT_TRUE(again.ok());
    io.to_client.clear();
    server().on_client_packet(t, *again);
    return io.to_client.size();
  }
};

TEST_F(UserhashAsyncTest, PendingHashLookupGoesOnWhenTheNameComes) {
  DeferredHashStore deferred(users);
  store = &deferred;
  TurnClient c = alice();
  EXPECT_EQ(send_hashed_allocate(c, tuple(1)), 0u);  // waiting for the store
  EXPECT_EQ(deferred.queued(), 1u);
  deferred.answer_all();
  ASSERT_EQ(io.to_client.size(), 1u);
  Response r = c.on_response(io.to_client[0].bytes);
  EXPECT_EQ(r.outcome, Outcome::Success) << r.error_code << " " << r.reason;
  EXPECT_EQ(server().find_allocation(tuple(1))->username, "alice");
}

TEST_F(UserhashAsyncTest, ChainWaitsForItsAsynchronousMember) {
  auth::StaticUsers empty{kRealm};
  auto deferred = std::make_shared<DeferredHashStore>(users);
  auth::ChainedStore chain({std::shared_ptr<auth::CredentialStore>(&empty, [](auto*) {}), deferred});
  store = &chain;
  TurnClient c = alice();
  EXPECT_EQ(send_hashed_allocate(c, tuple(1)), 0u);
  deferred->answer_all();
  ASSERT_EQ(io.to_client.size(), 1u);
  EXPECT_EQ(c.on_response(io.to_client[0].bytes).outcome, Outcome::Success);
}

TEST_F(UserhashAsyncTest, UnknownHashAnsweredLaterGets401) {
  DeferredHashStore deferred(users);
  store = &deferred;
  TurnClientConfig cfg = creds("nobody", "pw");
  cfg.username_mode = client::UsernameMode::Userhash;
  TurnClient c(cfg);
  EXPECT_EQ(send_hashed_allocate(c, tuple(1)), 0u);
  deferred.answer_all();
  ASSERT_EQ(io.to_client.size(), 1u);
  expect_error(c.on_response(io.to_client[0].bytes), code::Unauthenticated);
  expect_nothing_allocated();
}

TEST_F(UserhashAsyncTest, CoreGoneBeforeTheAnswerIsNotCalledBack) {
  DeferredHashStore deferred(users);
  store = &deferred;
  TurnClient c = alice();
  EXPECT_EQ(send_hashed_allocate(c, tuple(1)), 0u);
  core.reset();
  deferred.answer_all();  // must not touch the destroyed core
  EXPECT_TRUE(io.to_client.empty());
}

}  // namespace
}  // namespace ferry::turn
