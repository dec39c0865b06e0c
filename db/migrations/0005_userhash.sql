-- ferry 0005: USERHASH (RFC 8489 §14.4) for PostgreSQL users.
--
-- userhash = SHA-256(name ":" realm), which a client may send instead of USERNAME; the server looks
-- the user up by it (db/pg_credential_store.cpp). A generated column, so every way a row is made
-- or changed (ferryctl user add/passwd, plain SQL, renames, rows from before this migration) keeps
-- it right without anyone filling it in. It hashes the stored UTF-8 bytes, which is RFC 8489's
-- OpaqueString form for every name OpaqueString leaves as it is (all ASCII names among them).
--
-- convert_to() is only STABLE (it depends on the server encoding, which never changes for a
-- database), so the expression is wrapped in a function declared IMMUTABLE, as generated columns
-- require.
CREATE FUNCTION ferry_userhash(name text, realm text) RETURNS bytea
  LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
  AS $$ SELECT sha256(convert_to(name || ':' || realm, 'UTF8')) $$;

ALTER TABLE users ADD COLUMN userhash bytea GENERATED ALWAYS AS (ferry_userhash(name, realm)) STORED;
CREATE INDEX users_userhash ON users (realm, userhash);
