-- ferry 0003: the node registry, where a fleet of ferry instances on one database sees itself.
--
-- Each instance with a database upserts its row every node.heartbeat_interval seconds (from its
-- control loop, never the data path): what it advertises, what it carries, and `state` = what it
-- is doing now. Operators write `desired_state` (`ferryctl drain|undrain NODE`); the node reads it
-- back with each heartbeat and, sooner, on the NOTIFY below. Rows are never handed out on trust:
-- node_status computes `status` from last_seen with the database's own clock, so a node that
-- missed three heartbeats is `down` whatever its row last said.

CREATE TABLE nodes (
  id                 text PRIMARY KEY CHECK (length(id) BETWEEN 1 AND 128 AND id !~ '[[:space:][:cntrl:]]'),
  urls               jsonb NOT NULL DEFAULT '[]',     -- stun:/turn:/turns: URLs, as /v1/ice-servers hands out
  addresses          jsonb NOT NULL DEFAULT '{}',     -- {"udp":"IP:PORT","tcp":...}: ALTERNATE-SERVER candidates
  version            text NOT NULL DEFAULT '',
  started_at         timestamptz NOT NULL DEFAULT now(),
  last_seen          timestamptz NOT NULL DEFAULT now(),  -- the database's clock, never the node's
  heartbeat_interval integer NOT NULL DEFAULT 5 CHECK (heartbeat_interval > 0),  -- seconds
  state              text NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'draining')),
  desired_state      text NOT NULL DEFAULT 'active' CHECK (desired_state IN ('active', 'draining')),
  drain_deadline     timestamptz,                     -- with desired_state draining: close what is left then
  allocations        bigint NOT NULL DEFAULT 0,
  relayed_bps        double precision NOT NULL DEFAULT 0,  -- relayed bytes per second, both ways
  cpu                double precision NOT NULL DEFAULT 0   -- percent of one core, since the last heartbeat
);

-- `status`: down (three heartbeats missed), draining (reported, or asked for), else active.
CREATE VIEW node_status AS
  SELECT n.*,
         CASE
           WHEN n.last_seen < now() - make_interval(secs => 3 * n.heartbeat_interval) THEN 'down'
           WHEN n.state = 'draining' OR n.desired_state = 'draining' THEN 'draining'
           ELSE 'active'
         END AS status
    FROM nodes n;

-- A change of desired state is announced on channel 'ferry_nodes' with the node's id as payload,
-- so the node acts at once instead of at its next heartbeat.
CREATE FUNCTION ferry_notify_nodes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF OLD.desired_state IS DISTINCT FROM NEW.desired_state OR OLD.drain_deadline IS DISTINCT FROM NEW.drain_deadline THEN
    PERFORM pg_notify('ferry_nodes', NEW.id);
  END IF;
  RETURN NULL;
END
$$;

CREATE TRIGGER nodes_notify AFTER UPDATE ON nodes
  FOR EACH ROW EXECUTE FUNCTION ferry_notify_nodes();

-- The live allocations of each node (`ferryctl sessions`), replaced by the node with each heartbeat
-- (one statement: rows upserted, the node's others deleted), at most 10000 per node; a node's
-- rows go with its registry row, and those of a down node are not shown. `id` is the allocation's
-- relayed address, unique on its node while it lives; `ferryctl kill` names it as NODE/ID.
CREATE TABLE sessions (
  node        text NOT NULL REFERENCES nodes (id) ON UPDATE CASCADE ON DELETE CASCADE,
  id          text NOT NULL,
  username    text NOT NULL,
  client      text NOT NULL,     -- IP:PORT as the node sees it
  transport   text NOT NULL,     -- udp | tcp | tls | dtls
  relayed     text NOT NULL,     -- XOR-RELAYED-ADDRESS(es), space separated
  permissions integer NOT NULL DEFAULT 0,
  expires_at  timestamptz NOT NULL,
  updated_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (node, id)
);
CREATE INDEX sessions_username ON sessions (username);

-- `ferryctl kill` announces on channel 'ferry_kill' (JSON, no secrets):
--   {"user":"alice"}                           every node closes alice's allocations
--   {"node":"edge-1","allocation":"IP:PORT"}   that node closes that one
