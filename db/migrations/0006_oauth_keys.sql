-- ferry 0006: AS-RS keys for RFC 7635 third-party authorization (ACCESS-TOKEN).
--
-- An authorization server seals each client's token with the key of a key id (kid); the client
-- sends the kid as USERNAME. ferry looks a kid up here (after the keys in its config), caches the
-- answer (database.cache_ttl, unknown kids database.negative_cache_ttl), so a removed key stops
-- opening new tokens within that time. Only A256GCM (32-byte keys) is supported. `ferryctl oauthkey`
-- writes this table.

CREATE TABLE oauth_keys (
  kid          text PRIMARY KEY CHECK (kid ~ '^[!-~]{1,128}$'),
  key          bytea NOT NULL CHECK (length(key) = 32),
  algorithm    text NOT NULL DEFAULT 'A256GCM' CHECK (algorithm = 'A256GCM'),
  lifetime_max integer NOT NULL DEFAULT 0 CHECK (lifetime_max >= 0),  -- seconds, 0: no cap
  as_url       text NOT NULL DEFAULT '',
  created_at   timestamptz NOT NULL DEFAULT now()
);
