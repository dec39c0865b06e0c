// RFC 8016 mobility (turn.mobility): the ticket an Allocate asks for, the Refresh from a new
// 5-tuple that moves the allocation (relayed address, permissions, channels kept), and every way a
// ticket is refused: mobility off (405), forged or garbled (400), stale (400), another user's
// (441), an allocation that is gone (437), a stream client (405).
#include "tests/unit/fixtures/turn_core_fixture.h"

namespace ferry::turn {
namespace {

using namespace ferry::turn::testing;
using stun::Method;

class MobilityTest : public TurnCoreTest {
 protected:
  MobilityTest() { config.mobility = true; }

  // Allocate with an empty MOBILITY-TICKET (§3.1); returns the ticket of the answer.
  std::vector<uint8_t> allocate_with_ticket(TurnClient& c, const FiveTuple& t) {
    Response r = transact(c, t, [](TurnClient& cl, MutableBytes out) {
      return cl.request(out, Method::Allocate, [](stun::MessageBuilder& b) {
        b.add_requested_transport(stun::kTransportUdp);
        b.add(attr::MobilityTicket, Bytes());
      });
    });
    EXPECT_EQ(r.outcome, Outcome::Success) << r.error_code << " " << r.reason;
    return ticket_of_response();
  }
  Response refresh_with_ticket(TurnClient& c, const FiveTuple& t, std::vector<uint8_t> ticket,
                               std::optional<uint32_t> lifetime = {}) {
    return transact(c, t, [ticket, lifetime](TurnClient& cl, MutableBytes out) {
      return cl.request(out, Method::Refresh, [ticket, lifetime](stun::MessageBuilder& b) {
        if (lifetime) b.add_u32(attr::Lifetime, *lifetime);
        b.add(attr::MobilityTicket, Bytes(ticket));
      });
    });
  }
  std::vector<uint8_t> ticket_of_response() const {
    auto v = response_view();
    auto t = v.find(attr::MobilityTicket);
    if (!t) return {};
    return std::vector<uint8_t>(t->value.begin(), t->value.end());
  }
};

TEST_F(MobilityTest, AllocateWithEmptyTicketGetsOne) {
  TurnClient c = alice();
  auto ticket = allocate_with_ticket(c, tuple(1));
  EXPECT_EQ(ticket.size(), MobilityTickets::kSize);
  EXPECT_NE(server().find_allocation(tuple(1))->mobility_id, 0u);
}

TEST_F(MobilityTest, AllocateWithoutTicketGetsNone) {
  TurnClient c = alice();
  allocate_ok(c, tuple(1));
  EXPECT_TRUE(ticket_of_response().empty());
  EXPECT_EQ(server().find_allocation(tuple(1))->mobility_id, 0u);
}

TEST_F(MobilityTest, RetransmittedAllocateGetsTheSameTicket) {
  TurnClient c = alice();
  auto ticket = allocate_with_ticket(c, tuple(1));
  const std::vector<uint8_t> again = last_request;
  exchange(c, tuple(1), again);
  EXPECT_EQ(ticket_of_response(), ticket);
}

TEST_F(MobilityTest, MovedClientKeepsAllocationPermissionsAndChannels) {
  TurnClient c = alice();
  auto ticket = allocate_with_ticket(c, tuple(1));
  const TransportAddress relayed = c.relayed().at(0);
  ASSERT_EQ(permit(c, tuple(1), {kPeer}).outcome, Outcome::Success);
  ASSERT_EQ(bind(c, tuple(1), 0x4000, kPeer2).outcome, Outcome::Success);
  clock.advance(100s);

  // The client's port and address change (tuple(2)): its nonce is bound to the old 5-tuple, so it
  // is challenged once (438) and the retry carries the ticket again.
  Response r = refresh_with_ticket(c, tuple(2), ticket, 600);
  ASSERT_EQ(r.outcome, Outcome::Success) << r.error_code << " " << r.reason;
  EXPECT_EQ(r.lifetime, 600u);
  auto next = ticket_of_response();
  EXPECT_EQ(next.size(), MobilityTickets::kSize);
  EXPECT_NE(next, ticket);  // §3.2: a new ticket with every Refresh
  EXPECT_EQ(server().find_allocation(tuple(1)), nullptr);
  const Allocation* a = server().find_allocation(tuple(2));
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->tuple, tuple(2));
  EXPECT_EQ(a->v4->advertised, relayed);
  EXPECT_TRUE(a->permissions.allows(kPeer, clock.now()));
  EXPECT_EQ(server().allocation_count(), 1u);
  EXPECT_EQ(server().stats().allocations_moved.get(), 1u);

  // Data both ways from and to the new 5-tuple, through the same relayed address.
  io.to_peer.clear();
  send_indication(c, tuple(2), kPeer, "to-peer");
  ASSERT_EQ(io.to_peer.size(), 1u);
  EXPECT_EQ(io.to_peer[0].peer, kPeer);
  send_channel_data(tuple(2), 0x4000, "via-channel");
  ASSERT_EQ(io.to_peer.size(), 2u);
  EXPECT_EQ(io.to_peer[1].peer, kPeer2);
  io.to_client.clear();
  from_peer(relayed, kPeer2, "back");
  ASSERT_EQ(io.to_client.size(), 1u);
  EXPECT_EQ(io.to_client[0].to, tuple(2));
  auto pd = c.on_peer_data(io.to_client[0].bytes);
  ASSERT_TRUE(pd.has_value());
  EXPECT_EQ(pd->channel, 0x4000);
  EXPECT_EQ(string_of(pd->data), "back");

  // The old 5-tuple has nothing any more.
  io.to_peer.clear();
  send_channel_data(tuple(1), 0x4000, "stale");
  EXPECT_TRUE(io.to_peer.empty());
  expect_error(refresh(c, tuple(1)), code::AllocationMismatch);

  // And the new ticket moves it again.
  ASSERT_EQ(refresh_with_ticket(c, tuple(3), next).outcome, Outcome::Success);
  EXPECT_NE(server().find_allocation(tuple(3)), nullptr);
  EXPECT_EQ(server().stats().allocations_moved.get(), 2u);
}

TEST_F(MobilityTest, RefreshWithTicketFromTheSameTupleGivesANewTicket) {
  TurnClient c = alice();
  auto t0 = allocate_with_ticket(c, tuple(1));
  ASSERT_EQ(refresh_with_ticket(c, tuple(1), t0).outcome, Outcome::Success);
  auto t1 = ticket_of_response();
  EXPECT_EQ(t1.size(), MobilityTickets::kSize);
  EXPECT_NE(t1, t0);
  EXPECT_EQ(server().stats().allocations_moved.get(), 0u);
}

TEST_F(MobilityTest, StolenTicketFromAnotherUserGets441) {
  TurnClient a = alice();
  auto ticket = allocate_with_ticket(a, tuple(1));
  TurnClient b = bob();
  expect_error(refresh_with_ticket(b, tuple(5), ticket), code::WrongCredentials);
  EXPECT_NE(server().find_allocation(tuple(1)), nullptr);  // alice's allocation did not move
  EXPECT_EQ(server().find_allocation(tuple(5)), nullptr);
  // Even bob's own allocation does not make alice's ticket his.
  allocate_ok(b, tuple(6));
  expect_error(refresh_with_ticket(b, tuple(6), ticket), code::WrongCredentials);
  // Alice's ticket still works for alice.
  ASSERT_EQ(refresh_with_ticket(a, tuple(7), ticket).outcome, Outcome::Success);
}

TEST_F(MobilityTest, ForgedOrGarbledTicketGets400) {
  TurnClient c = alice();
  auto ticket = allocate_with_ticket(c, tuple(1));
  auto forged = ticket;
  ASSERT_FALSE(forged.empty());  // (and tells GCC so: its -Wstringop-overflow misreads back() here)
  forged.back() ^= 0x01;         // the MAC
  expect_error(refresh_with_ticket(c, tuple(2), forged), code::BadRequest);
  auto other_counter = ticket;
  other_counter[19] ^= 0x01;  // the counter, MAC unchanged
  expect_error(refresh_with_ticket(c, tuple(2), other_counter), code::BadRequest);
  expect_error(refresh_with_ticket(c, tuple(2), {1, 2, 3, 4}), code::BadRequest);
  expect_error(refresh_with_ticket(c, tuple(2), {}), code::BadRequest);
  expect_error(refresh_with_ticket(c, tuple(1), forged), code::BadRequest);  // from its own 5-tuple too
  EXPECT_NE(server().find_allocation(tuple(1)), nullptr);
}

TEST_F(MobilityTest, OnlyTheNewestTicketAndTheOneBeforeItWork) {
  TurnClient c = alice();
  auto t0 = allocate_with_ticket(c, tuple(1));
  ASSERT_EQ(refresh_with_ticket(c, tuple(1), t0).outcome, Outcome::Success);
  auto t1 = ticket_of_response();
  ASSERT_EQ(refresh_with_ticket(c, tuple(1), t1).outcome, Outcome::Success);
  // t0 is two tickets old now: a replay of an old ticket moves nothing.
  expect_error(refresh_with_ticket(c, tuple(2), t0), code::BadRequest);
  // t1 is the one before the newest (its answer might have been lost): still good.
  ASSERT_EQ(refresh_with_ticket(c, tuple(2), t1).outcome, Outcome::Success);
  EXPECT_NE(server().find_allocation(tuple(2)), nullptr);
}

TEST_F(MobilityTest, TicketOfADeletedAllocationGets437) {
  TurnClient c = alice();
  auto ticket = allocate_with_ticket(c, tuple(1));
  ASSERT_EQ(refresh(c, tuple(1), 0).outcome, Outcome::Success);
  expect_nothing_allocated();
  expect_error(refresh_with_ticket(c, tuple(2), ticket), code::AllocationMismatch);
}

TEST_F(MobilityTest, TicketOfAnExpiredAllocationGets437) {
  TurnClient c = alice();
  auto ticket = allocate_with_ticket(c, tuple(1));
  clock.advance(601s);
  server().tick();
  expect_nothing_allocated();
  expect_error(refresh_with_ticket(c, tuple(2), ticket), code::AllocationMismatch);
}

TEST_F(MobilityTest, TicketOfAnotherCoreNamesNothing) {
  // Another worker: same server key, another seed, so its ticket ids mean nothing here.
  TurnClient c = alice();
  auto ticket = allocate_with_ticket(c, tuple(1));
  ServerCoreConfig other = config;
  other.seed = config.seed + 1;
  RecordingIo other_io;
  ServerCore other_core(other, clock, other_io, users, policy);
  TurnClient c2 = alice();
  std::array<uint8_t, 2048> out{};
  Response r;
  auto send = [&](Bytes req) {
    other_io.to_client.clear();
    other_core.on_client_packet(tuple(2), req);
    EXPECT_EQ(other_io.to_client.size(), 1u);
    return c2.on_response(other_io.to_client.back().bytes);
  };
  auto req =
      c2.request(out, Method::Refresh, [&](stun::MessageBuilder& b) { b.add(attr::MobilityTicket, Bytes(ticket)); });
  ASSERT_TRUE(req.ok());
  r = send(*req);
  for (int i = 0; i < 3 && r.outcome == Outcome::Retry; ++i) {
    auto again = c2.retry(out, r.transaction_id);
    ASSERT_TRUE(again.ok());
    r = send(*again);
  }
  expect_error(r, code::AllocationMismatch);
}

TEST_F(MobilityTest, MobilityOffAnswers405) {
  config.mobility = false;
  TurnClient c = alice();
  Response r = transact(c, tuple(1), [](TurnClient& cl, MutableBytes out) {
    return cl.request(out, Method::Allocate, [](stun::MessageBuilder& b) {
      b.add_requested_transport(stun::kTransportUdp);
      b.add(attr::MobilityTicket, Bytes());
    });
  });
  expect_error(r, code::MobilityForbidden);
  expect_nothing_allocated();
}

TEST_F(MobilityTest, MobilityTurnedOffByReloadRefusesTickets) {
  TurnClient c = alice();
  auto ticket = allocate_with_ticket(c, tuple(1));
  ServerCoreConfig limits = config;
  limits.mobility = false;
  server().set_limits(limits);
  expect_error(refresh_with_ticket(c, tuple(2), ticket), code::MobilityForbidden);
  expect_error(refresh_with_ticket(c, tuple(1), ticket), code::MobilityForbidden);
  EXPECT_EQ(refresh(c, tuple(1)).outcome, Outcome::Success);  // a plain Refresh goes on
  limits.mobility = true;
  server().set_limits(limits);
  EXPECT_EQ(refresh_with_ticket(c, tuple(2), ticket).outcome, Outcome::Success);
}

TEST_F(MobilityTest, TicketOnAnAllocationWithoutMobilityGets405) {
  TurnClient c = alice();
  allocate_ok(c, tuple(1));
  expect_error(refresh_with_ticket(c, tuple(1), std::vector<uint8_t>(MobilityTickets::kSize, 0)),
               code::MobilityForbidden);
}

TEST_F(MobilityTest, NonEmptyTicketInAllocateGets400) {
  TurnClient c = alice();
  Response r = transact(c, tuple(1), [](TurnClient& cl, MutableBytes out) {
    return cl.request(out, Method::Allocate, [](stun::MessageBuilder& b) {
      static const uint8_t junk[4] = {1, 2, 3, 4};
      b.add_requested_transport(stun::kTransportUdp);
      b.add(attr::MobilityTicket, Bytes(junk, 4));
    });
  });
  expect_error(r, code::BadRequest);
  expect_nothing_allocated();
}

TEST_F(MobilityTest, StreamClientsGet405) {
  TurnClient c = alice();
  Response r = transact(c, tuple(1, Transport::Tcp), [](TurnClient& cl, MutableBytes out) {
    return cl.request(out, Method::Allocate, [](stun::MessageBuilder& b) {
      b.add_requested_transport(stun::kTransportUdp);
      b.add(attr::MobilityTicket, Bytes());
    });
  });
  expect_error(r, code::MobilityForbidden);
  expect_nothing_allocated();
}

TEST(MobilityTickets, SealVerifyAndBindToTheUser) {
  std::array<uint8_t, 32> key{};
  key.fill(7);
  MobilityTickets t(key);
  auto ticket = t.seal({0x1122334455667788ull, 3}, "alice");
  auto f = MobilityTickets::parse(Bytes(ticket));
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ(f->allocation_id, 0x1122334455667788ull);
  EXPECT_EQ(f->counter, 3u);
  EXPECT_TRUE(t.verify(Bytes(ticket), "alice"));
  EXPECT_FALSE(t.verify(Bytes(ticket), "bob"));
  key.fill(8);
  EXPECT_FALSE(MobilityTickets(key).verify(Bytes(ticket), "alice"));  // another server
  ticket[1] = 1;                                                      // reserved bytes must be zero
  EXPECT_FALSE(MobilityTickets::parse(Bytes(ticket)).has_value());
}

TEST_F(MobilityTest, AMoveTakesTheKernelFastPathEntriesToTheNewTuple) {
  config.fast_path = true;
  TurnClient c = alice();
  auto ticket = allocate_with_ticket(c, tuple(1));
  ASSERT_EQ(bind(c, tuple(1), 0x4000, kPeer).outcome, Outcome::Success);
  ASSERT_EQ(io.fast_path.size(), 1u);
  io.next_removal_usage.packets = {4, 0};
  io.next_removal_usage.bytes = {400, 0};
  ASSERT_EQ(refresh_with_ticket(c, tuple(2), ticket, 600).outcome, Outcome::Success);
  // The old 5-tuple's entry went (its counts kept), the new one's came with the Refresh.
  ASSERT_EQ(io.removes.size(), 1u);
  EXPECT_EQ(io.removes[0].first, tuple(1));
  ASSERT_EQ(io.fast_path.size(), 1u);
  EXPECT_EQ(io.fast_path.begin()->second.client, tuple(2));
  EXPECT_EQ(io.fast_path.begin()->second.peer, kPeer);
  EXPECT_EQ(server().find_allocation(tuple(2))->usage.packets[0], 4u);
}

}  // namespace
}  // namespace ferry::turn
