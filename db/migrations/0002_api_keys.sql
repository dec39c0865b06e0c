-- ferry 0002: API keys for the ICE-servers endpoint (GET /v1/ice-servers).
--
-- Only SHA-256(key) is stored: `ferryctl apikey add` prints the key once and keeps its hash. The
-- server looks a presented key's hash up here (after the keys in its config) and caches a hit for
-- a minute, so a revocation takes effect within that minute. `name` becomes the user part of the
-- credentials handed out for the key, like a config key's name.

CREATE TABLE api_keys (
  id         bigserial PRIMARY KEY,
  name       text NOT NULL CHECK (name ~ '^[A-Za-z0-9._@-]{1,64}$'),
  sha256     bytea NOT NULL UNIQUE CHECK (length(sha256) = 32),
  created_at timestamptz NOT NULL DEFAULT now(),
  revoked_at timestamptz  -- NULL: active
);
-- One active key per name; revoked ones stay for the record.
CREATE UNIQUE INDEX api_keys_active_name ON api_keys (name) WHERE revoked_at IS NULL;
