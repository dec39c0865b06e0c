-- ferry 0001: realms, long-term users, shared secrets, change notifications.
--
-- Applied by `ferryctl db migrate` (and by the server when asked to), in one transaction under an
-- advisory lock, and recorded in schema_migrations. Never edit a released migration: add 0002_*.sql.
--
-- Users' passwords are never stored: only the RFC 8489 §9.2.2 long-term keys
--   key_md5    = MD5(username ":" realm ":" password)       (16 bytes)
--   key_sha256 = SHA-256(username ":" realm ":" password)   (32 bytes)
-- which are what the server needs and all it needs. Shared secrets, however, must be stored as
-- they are (the server computes HMACs with them): restrict SELECT on shared_secrets accordingly.

CREATE TABLE IF NOT EXISTS schema_migrations (
  version    integer PRIMARY KEY,
  name       text NOT NULL,
  applied_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE realms (
  name       text PRIMARY KEY CHECK (length(name) BETWEEN 1 AND 763),  -- RFC 8489 §14.9
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE users (
  id              bigserial PRIMARY KEY,
  realm           text NOT NULL REFERENCES realms (name) ON UPDATE CASCADE ON DELETE RESTRICT,
  name            text NOT NULL CHECK (length(name) BETWEEN 1 AND 508),   -- USERNAME < 509 bytes
  key_md5         bytea NOT NULL CHECK (length(key_md5) = 16),
  key_sha256      bytea CHECK (key_sha256 IS NULL OR length(key_sha256) = 32),
  enabled         boolean NOT NULL DEFAULT true,
  max_allocations integer NOT NULL DEFAULT 0 CHECK (max_allocations >= 0),    -- 0: server default
  bandwidth       bigint NOT NULL DEFAULT 0 CHECK (bandwidth >= 0),           -- bytes/s, 0: server default
  created_at      timestamptz NOT NULL DEFAULT now(),
  updated_at      timestamptz NOT NULL DEFAULT now(),
  UNIQUE (realm, name)
);

CREATE TABLE shared_secrets (
  id         bigserial PRIMARY KEY,
  realm      text NOT NULL REFERENCES realms (name) ON UPDATE CASCADE ON DELETE RESTRICT,
  value      text NOT NULL CHECK (length(value) >= 16),
  created_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz,            -- NULL: until revoked
  revoked_at timestamptz             -- NULL: not revoked
);
CREATE INDEX shared_secrets_active ON shared_secrets (realm) WHERE revoked_at IS NULL;

CREATE FUNCTION ferry_touch_updated_at() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  NEW.updated_at := now();
  RETURN NEW;
END
$$;

CREATE TRIGGER users_touch BEFORE UPDATE ON users
  FOR EACH ROW EXECUTE FUNCTION ferry_touch_updated_at();

-- Every change to users or shared_secrets is announced on channel 'ferry_credentials' as JSON
-- (delivered at commit, to every ferry instance LISTENing):
--   {"table":"users","op":"update","realm":"r","name":"alice","revoke":true}
--   {"table":"users","op":"update","realm":"r","name":"bob","old_name":"alice","revoke":true}  (rename)
--   {"table":"shared_secrets","op":"update","realm":"r","id":3,"revoke":true}
--   {"table":"users","op":"truncate","revoke":true}
-- "revoke" is true when access granted before may no longer be valid (user deleted, disabled,
-- renamed, moved or given a new password; secret deleted, revoked or its expiry brought forward):
-- instances then close that user's allocations. A quota change only refreshes caches.
-- Payloads never carry keys or secrets.
CREATE FUNCTION ferry_notify_credentials() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  payload jsonb;
  revoke  boolean;
BEGIN
  IF TG_OP = 'TRUNCATE' THEN
    payload := jsonb_build_object('table', TG_TABLE_NAME, 'op', 'truncate', 'revoke', true);
  ELSIF TG_TABLE_NAME = 'users' THEN
    IF TG_OP = 'INSERT' THEN
      payload := jsonb_build_object('realm', NEW.realm, 'name', NEW.name, 'revoke', false);
    ELSIF TG_OP = 'DELETE' THEN
      payload := jsonb_build_object('realm', OLD.realm, 'name', OLD.name, 'revoke', true);
    ELSE
      revoke := (OLD.enabled AND NOT NEW.enabled)
             OR OLD.name IS DISTINCT FROM NEW.name
             OR OLD.realm IS DISTINCT FROM NEW.realm
             OR OLD.key_md5 IS DISTINCT FROM NEW.key_md5
             OR OLD.key_sha256 IS DISTINCT FROM NEW.key_sha256;
      payload := jsonb_build_object('realm', NEW.realm, 'name', NEW.name, 'revoke', revoke);
      IF OLD.name IS DISTINCT FROM NEW.name OR OLD.realm IS DISTINCT FROM NEW.realm THEN
        payload := payload || jsonb_build_object('old_name', OLD.name, 'old_realm', OLD.realm);
      END IF;
    END IF;
    payload := payload || jsonb_build_object('table', 'users', 'op', lower(TG_OP));
  ELSE
    IF TG_OP = 'INSERT' THEN
      payload := jsonb_build_object('realm', NEW.realm, 'id', NEW.id, 'revoke', false);
    ELSIF TG_OP = 'DELETE' THEN
      payload := jsonb_build_object('realm', OLD.realm, 'id', OLD.id, 'revoke', true);
    ELSE
      revoke := (OLD.revoked_at IS NULL AND NEW.revoked_at IS NOT NULL)
             OR OLD.value IS DISTINCT FROM NEW.value
             OR OLD.realm IS DISTINCT FROM NEW.realm
             OR (NEW.expires_at IS NOT NULL AND (OLD.expires_at IS NULL OR NEW.expires_at < OLD.expires_at));
      payload := jsonb_build_object('realm', NEW.realm, 'id', NEW.id, 'revoke', revoke);
    END IF;
    payload := payload || jsonb_build_object('table', 'shared_secrets', 'op', lower(TG_OP));
  END IF;
  PERFORM pg_notify('ferry_credentials', payload::text);
  RETURN NULL;
END
$$;

CREATE TRIGGER users_notify AFTER INSERT OR UPDATE OR DELETE ON users
  FOR EACH ROW EXECUTE FUNCTION ferry_notify_credentials();
CREATE TRIGGER users_notify_truncate AFTER TRUNCATE ON users
  FOR EACH STATEMENT EXECUTE FUNCTION ferry_notify_credentials();
CREATE TRIGGER shared_secrets_notify AFTER INSERT OR UPDATE OR DELETE ON shared_secrets
  FOR EACH ROW EXECUTE FUNCTION ferry_notify_credentials();
CREATE TRIGGER shared_secrets_notify_truncate AFTER TRUNCATE ON shared_secrets
  FOR EACH STATEMENT EXECUTE FUNCTION ferry_notify_credentials();
