// auth.strict_expiry: allocations made with a TURN REST credential (the shared-secret store's
// "<expiry>:<user>" usernames) end when the credential expires, whatever Refresh asks for; the
// lifetime granted is min(requested, maximum, the credential's remaining life).
#include "auth/chained_store.h"
#include "auth/shared_secret.h"
#include "tests/unit/fixtures/turn_core_fixture.h"

namespace ferry::turn {
namespace {

using namespace ferry::turn::testing;

constexpr char kSecret[] = "strict-expiry-secret";

class StrictExpiryTest : public TurnCoreTest {
 protected:
  StrictExpiryTest() {
    store = &secrets;
    config.strict_expiry = true;
  }
  // A REST credential that expires `ttl` seconds from now, as ferryctl token would mint it.
  TurnClient rest_client(uint64_t ttl) {
    const auto m = auth::mint(kSecret, "carol", ttl, clock.unix_seconds());
    return TurnClient(creds(m.username, m.password));
  }
  uint32_t granted(const Response& r) {
    EXPECT_EQ(r.outcome, Outcome::Success) << r.error_code << " " << r.reason;
    return r.lifetime.value_or(0);
  }
  void tick_after(Duration d) {
    clock.advance(d);
    server().tick();
  }

  auth::SharedSecretStore secrets{kRealm, clock, {kSecret}};
};

TEST_F(StrictExpiryTest, AllocateLifetimeStopsAtTheCredentialsExpiry) {
  TurnClient c = rest_client(120);
  AllocateOptions o;
  o.lifetime = 3600;
  EXPECT_EQ(granted(allocate(c, tuple(1), o)), 120u);
  tick_after(119s);
  EXPECT_EQ(server().allocation_count(), 1u);
  tick_after(1s);
  expect_nothing_allocated();
  EXPECT_EQ(server().stats().allocations_expired.get(), 1u);
}

TEST_F(StrictExpiryTest, RefreshCannotExtendPastTheCredential) {
  TurnClient c = rest_client(900);
  EXPECT_EQ(granted(allocate(c, tuple(1))), 600u);  // the default: the credential has more left
  clock.advance(500s);
  EXPECT_EQ(granted(refresh(c, tuple(1), 3600)), 400u);
  clock.advance(300s);
  EXPECT_EQ(granted(refresh(c, tuple(1))), 100u);  // even the default lifetime is cut
  tick_after(100s - 1ms);
  EXPECT_EQ(server().allocation_count(), 1u);
  tick_after(1ms);
  expect_nothing_allocated();
}

TEST_F(StrictExpiryTest, UnderASecondLeftIsAnsweredOneSecondNotZero) {
  TurnClient c = rest_client(10);
  allocate_ok(c, tuple(1));
  clock.advance(9500ms);
  EXPECT_EQ(granted(refresh(c, tuple(1), 600)), 1u);  // LIFETIME 0 would mean "deleted"
  tick_after(500ms);
  expect_nothing_allocated();
}

TEST_F(StrictExpiryTest, RetransmittedAllocateGetsTheSameCutLifetime) {
  TurnClient c = rest_client(200);
  EXPECT_EQ(granted(allocate(c, tuple(1))), 200u);
  const std::vector<uint8_t> again = last_request;
  clock.advance(50s);
  Response r = exchange(c, tuple(1), again);
  EXPECT_EQ(r.outcome, Outcome::Discarded);  // the client forgot the transaction; the bytes tell
  auto v = response_view();
  ASSERT_TRUE(v.find(attr::Lifetime));
  auto lifetime = stun::decode_u32(v.find(attr::Lifetime)->value);
  ASSERT_TRUE(lifetime.ok());
  EXPECT_EQ(*lifetime, 200u);
}

TEST_F(StrictExpiryTest, AWallClockStepDoesNotMoveTheEnd) {
  // The expiry is taken onto the steady clock at Allocate: stepping the wall clock back (NTP)
  // makes the username look valid again, but the allocation still ends on time, and a Refresh
  // that beats the tick to it finds it over.
  TurnClient c = rest_client(120);
  allocate_ok(c, tuple(1));
  clock.set_unix_seconds(clock.unix_seconds() - 1000);
  clock.advance(120s);
  expect_error(refresh(c, tuple(1), 600), code::AllocationMismatch);
  expect_nothing_allocated();
  EXPECT_EQ(server().stats().allocations_expired.get(), 1u);
}

TEST_F(StrictExpiryTest, CredentialsWithoutExpiryAreUnaffected) {
  users.add_password("dave", "dave-pw");
  auth::ChainedStore chain;  // static users first, then the shared secret, as the server chains them
  chain.add(std::shared_ptr<auth::CredentialStore>(&users, [](auth::CredentialStore*) {}));
  chain.add(std::shared_ptr<auth::CredentialStore>(&secrets, [](auth::CredentialStore*) {}));
  store = &chain;
  TurnClient d(creds("dave", "dave-pw"));
  AllocateOptions o;
  o.lifetime = 3600;
  EXPECT_EQ(granted(allocate(d, tuple(1), o)), 3600u);
  tick_after(3599s);
  EXPECT_EQ(server().allocation_count(), 1u);
  core.reset();  // before `chain` goes
}

TEST_F(StrictExpiryTest, OffByDefaultTheCredentialOnlyGuardsNewRequests) {
  config.strict_expiry = false;
  EXPECT_FALSE(ServerCoreConfig{}.strict_expiry);
  TurnClient c = rest_client(120);
  EXPECT_EQ(granted(allocate(c, tuple(1))), 600u);
  tick_after(121s);
  EXPECT_EQ(server().allocation_count(), 1u);                 // lives on to its own lifetime...
  expect_error(refresh(c, tuple(1)), code::Unauthenticated);  // ...but cannot be refreshed
  tick_after(479s);
  expect_nothing_allocated();
}

TEST_F(StrictExpiryTest, TurnedOnByAReloadEndsAllocationsPastTheirCredential) {
  config.strict_expiry = false;
  TurnClient c = rest_client(120), e = rest_client(300);
  allocate_ok(c, tuple(1));
  allocate_ok(e, tuple(2));
  clock.advance(150s);
  ServerCoreConfig limits = config;
  limits.strict_expiry = true;
  server().set_limits(limits);
  server().tick();
  EXPECT_EQ(server().find_allocation(tuple(1)), nullptr);
  ASSERT_NE(server().find_allocation(tuple(2)), nullptr);
  EXPECT_EQ(granted(refresh(e, tuple(2), 600)), 150u);  // and the survivors' Refresh is cut
}

}  // namespace
}  // namespace ferry::turn
