// auth/chained_store: static -> shared secret -> database order, with asynchronous members.
#include <gtest/gtest.h>

#include <deque>

#include "auth/chained_store.h"
#include "auth/static_users.h"

using namespace ferry;
using auth::LookupResult;
using auth::LookupStatus;

namespace {

// Answers at once with a fixed result, or (async) queues the callback until complete() is called.
class FakeStore : public auth::CredentialStore {
 public:
  FakeStore(LookupResult r, bool async) : result_(std::move(r)), async_(async) {}
  std::optional<LookupResult> lookup(std::string_view username, std::string_view, Callback done) override {
    ++calls;
    last_username = std::string(username);
    if (!async_) return result_;
    pending_.push_back(std::move(done));
    return std::nullopt;
  }
  size_t pending() const { return pending_.size(); }
  void complete() {
    auto cb = std::move(pending_.front());
    pending_.pop_front();
    cb(result_);
  }
  int calls = 0;
  std::string last_username;

 private:
  LookupResult result_;
  bool async_;
  std::deque<Callback> pending_;
};

// Calls back from inside lookup() and returns nullopt (allowed, if impolite).
class ImmediateCallbackStore : public auth::CredentialStore {
 public:
  std::optional<LookupResult> lookup(std::string_view, std::string_view, Callback done) override {
    done(LookupResult::not_found());
    return std::nullopt;
  }
};

LookupResult found(const std::string& name) {
  auth::Credential c;
  c.username = name;
  c.key_md5 = stun::long_term_key_md5(name, "r", "p");
  return LookupResult::found(c);
}

struct Capture {
  int calls = 0;
  std::optional<LookupResult> result;
  auth::CredentialStore::Callback cb() {
    return [this](LookupResult r) {
      ++calls;
      result = std::move(r);
    };
  }
};

}  // namespace

TEST(ChainedStore, EmptyChainIsNotFound) {
  auth::ChainedStore chain;
  Capture c;
  auto r = chain.lookup("x", "r", c.cb());
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, LookupStatus::NotFound);
  EXPECT_EQ(c.calls, 0);
}

TEST(ChainedStore, FirstFoundWinsAndLaterStoresAreNotAsked) {
  auto statics = std::make_shared<auth::StaticUsers>("r");
  statics->add_password("alice", "pw");
  auto later = std::make_shared<FakeStore>(found("alice"), true);
  auth::ChainedStore chain({statics, later});
  Capture c;
  auto r = chain.lookup("alice", "r", c.cb());
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, LookupStatus::Found);
  EXPECT_EQ(r->credential->key_md5, stun::long_term_key_md5("alice", "r", "pw"));
  EXPECT_EQ(later->calls, 0);
  EXPECT_EQ(c.calls, 0);
}

TEST(ChainedStore, AllSynchronousMissesAnswerAtOnce) {
  auto a = std::make_shared<FakeStore>(LookupResult::not_found(), false);
  auto b = std::make_shared<FakeStore>(LookupResult::not_found(), false);
  auth::ChainedStore chain({a, b});
  Capture c;
  auto r = chain.lookup("bob", "r", c.cb());
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, LookupStatus::NotFound);
  EXPECT_EQ(a->calls, 1);
  EXPECT_EQ(b->calls, 1);
}

TEST(ChainedStore, ContinuesInTheAsyncCallback) {
  auto statics = std::make_shared<FakeStore>(LookupResult::not_found(), false);
  auto slow = std::make_shared<FakeStore>(LookupResult::not_found(), true);
  auto last = std::make_shared<FakeStore>(found("carol"), false);
  auth::ChainedStore chain({statics, slow, last});
  Capture c;
  EXPECT_FALSE(chain.lookup("carol", "r", c.cb()));
  EXPECT_EQ(last->calls, 0);  // not asked before the slow one answers
  ASSERT_EQ(slow->pending(), 1u);
  slow->complete();
  EXPECT_EQ(last->calls, 1);
  EXPECT_EQ(last->last_username, "carol");
  ASSERT_EQ(c.calls, 1);
  EXPECT_EQ(c.result->status, LookupStatus::Found);
  EXPECT_EQ(c.result->credential->username, "carol");
}

TEST(ChainedStore, TwoAsyncMembersInARow) {
  auto a = std::make_shared<FakeStore>(LookupResult::not_found(), true);
  auto b = std::make_shared<FakeStore>(found("dan"), true);
  auth::ChainedStore chain({a, b});
  Capture c;
  EXPECT_FALSE(chain.lookup("dan", "r", c.cb()));
  a->complete();
  EXPECT_EQ(c.calls, 0);
  ASSERT_EQ(b->pending(), 1u);
  b->complete();
  ASSERT_EQ(c.calls, 1);
  EXPECT_EQ(c.result->status, LookupStatus::Found);
}

TEST(ChainedStore, UnavailableIsRememberedUnlessALaterStoreFinds) {
  {
    auto down = std::make_shared<FakeStore>(LookupResult::unavailable(), true);
    auto none = std::make_shared<FakeStore>(LookupResult::not_found(), false);
    auth::ChainedStore chain({down, none});
    Capture c;
    EXPECT_FALSE(chain.lookup("eve", "r", c.cb()));
    down->complete();
    ASSERT_EQ(c.calls, 1);
    EXPECT_EQ(c.result->status, LookupStatus::Unavailable);
  }
  {
    auto none = std::make_shared<FakeStore>(LookupResult::not_found(), false);
    auto down = std::make_shared<FakeStore>(LookupResult::unavailable(), false);
    auth::ChainedStore chain({none, down});
    auto r = chain.lookup("eve", "r", nullptr);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, LookupStatus::Unavailable);
  }
  {
    auto down = std::make_shared<FakeStore>(LookupResult::unavailable(), false);
    auto yes = std::make_shared<FakeStore>(found("eve"), false);
    auth::ChainedStore chain({down, yes});
    auto r = chain.lookup("eve", "r", nullptr);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, LookupStatus::Found);
  }
}

TEST(ChainedStore, CallbackStillComesAfterTheChainIsGone) {
  auto slow = std::make_shared<FakeStore>(found("fay"), true);
  Capture c;
  {
    auth::ChainedStore chain({slow});
    EXPECT_FALSE(chain.lookup("fay", "r", c.cb()));
  }
  slow->complete();
  ASSERT_EQ(c.calls, 1);
  EXPECT_EQ(c.result->status, LookupStatus::Found);
}

TEST(ChainedStore, InFlightLookupKeepsItsList) {
  auto slow = std::make_shared<FakeStore>(LookupResult::not_found(), true);
  auto second = std::make_shared<FakeStore>(found("gus"), false);
  auth::ChainedStore chain({slow, second});
  Capture c;
  EXPECT_FALSE(chain.lookup("gus", "r", c.cb()));
  chain.set({});  // reload while the lookup waits
  EXPECT_EQ(chain.size(), 0u);
  slow->complete();
  ASSERT_EQ(c.calls, 1);
  EXPECT_EQ(c.result->status, LookupStatus::Found);
}

TEST(ChainedStore, MemberCallingBackSynchronously) {
  auto odd = std::make_shared<ImmediateCallbackStore>();
  auto yes = std::make_shared<FakeStore>(found("hal"), false);
  auth::ChainedStore chain({odd, yes});
  Capture c;
  auto r = chain.lookup("hal", "r", c.cb());
  // Either way exactly one answer, and it is Found.
  if (r) {
    EXPECT_EQ(r->status, LookupStatus::Found);
    EXPECT_EQ(c.calls, 0);
  } else {
    ASSERT_EQ(c.calls, 1);
    EXPECT_EQ(c.result->status, LookupStatus::Found);
  }
  EXPECT_EQ(yes->calls, 1);
}

TEST(ChainedStore, UsernameForHash) {
  auto a = std::make_shared<auth::StaticUsers>("r");
  auto b = std::make_shared<auth::StaticUsers>("r");
  b->add_password("ivy", "pw");
  auth::ChainedStore chain;
  chain.add(a);
  chain.add(nullptr);  // ignored
  chain.add(b);
  EXPECT_EQ(chain.size(), 2u);
  auto h = stun::userhash("ivy", "r");
  EXPECT_EQ(chain.username_for_hash(h, "r"), "ivy");
  auto other = stun::userhash("nobody", "r");
  EXPECT_EQ(chain.username_for_hash(other, "r"), std::nullopt);
}
