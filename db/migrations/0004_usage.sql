-- ferry 0004: usage records (issue 15), one row per allocation.
--
-- Written by every ferry node in batches off the data path (db/usage_writer.h): a row when an
-- allocation ends (final = true) and, for long-lived allocations, every usage.interval seconds
-- before that (final = false). Each write carries the allocation's totals so far and upserts its
-- row, so a record written twice (a retry after a lost answer) or out of order changes nothing:
-- sums over rows are exact. `ferryctl usage` sums them.
--
-- Directions are the client's: bytes_in/packets_in came from the client and went to its peers,
-- bytes_out/packets_out came from peers and went to the client. Payload bytes (ChannelData/DATA
-- contents), not counting STUN framing; RFC 6062 TCP data connections are not counted (their bytes
-- never pass through the TURN core).
--
-- This migration does not depend on 0003 (the node registry): the runner applies every missing
-- version in order, so 0004 alone, or 0003 added later, both work.

CREATE TABLE usage_records (
  allocation_id text PRIMARY KEY,  -- "<node>/<boot>/<worker>/<serial>": unique across nodes and restarts
  username      text NOT NULL,
  realm         text NOT NULL,
  node          text NOT NULL,
  transport     text NOT NULL,     -- the client's: udp, tcp, tls, dtls
  client        text NOT NULL,     -- the client's address as seen by ferry
  started_at    timestamptz NOT NULL,
  ended_at      timestamptz NOT NULL,  -- the allocation's end, or the time of the last interim record
  final         boolean NOT NULL,      -- true once the allocation has ended
  bytes_in      bigint NOT NULL CHECK (bytes_in >= 0),
  bytes_out     bigint NOT NULL CHECK (bytes_out >= 0),
  packets_in    bigint NOT NULL CHECK (packets_in >= 0),
  packets_out   bigint NOT NULL CHECK (packets_out >= 0),
  peers         integer NOT NULL CHECK (peers >= 0),  -- distinct peer IPs given a permission
  peer_list     text[] NOT NULL DEFAULT '{}',         -- the first of them (at most 16)
  recorded_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX usage_records_user_started ON usage_records (username, started_at);
CREATE INDEX usage_records_started ON usage_records (started_at);
