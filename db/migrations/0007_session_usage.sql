-- ferry 0007: age and bytes of each live allocation in `ferryctl sessions` (issue 15).
--
-- Each node writes them with its sessions rows every heartbeat (server/ops/node_registry.cpp),
-- from the allocation's own counters, the ones its usage records are made of (0004): payload
-- bytes (ChannelData/DATA contents, no STUN framing) in the client's directions, bytes_in from
-- the client to its peers, bytes_out from peers to the client; RFC 6062 TCP data connections are
-- not counted. The bytes are those of the node's walk of its allocations at that heartbeat.
-- started_at is on the database's clock (now() minus the age the node measured), so `ferryctl
-- sessions` computes the age with now() like the expiry.
--
-- started_at is NULL in rows written by a node older than this migration (they write neither
-- column, so their bytes stay 0); `ferryctl sessions` shows no age for them.

ALTER TABLE sessions
  ADD COLUMN started_at timestamptz,
  ADD COLUMN bytes_in   bigint NOT NULL DEFAULT 0 CHECK (bytes_in >= 0),
  ADD COLUMN bytes_out  bigint NOT NULL DEFAULT 0 CHECK (bytes_out >= 0);
