-- Claims that SQL cannot forge, for fasterpg's --claims-key-file.
--
-- A caller who may send raw SQL can set request.jwt.claims to anything
-- (set_config). With --claims-key-file, fasterpg also sets
-- fasterpg.claims_at (when, Unix seconds) and fasterpg.claims_mac, an
-- HMAC-SHA256 under that key of
--
--     session_user || E'\n' || claims_at || E'\n' || request.jwt.claims
--
-- fasterpg_claims.verified() checks it with the same key, which only the
-- function's owner can read, and returns the claims (jsonb), NULL when the
-- request brought none, and raises 42501 (fasterpg answers 403) when they
-- were not set by fasterpg for this login in the last 5 minutes. Use it in
-- row-level security policies, wrapped in a scalar subquery so that it
-- runs once per statement, not once per row:
--
--     CREATE POLICY mine ON notes
--         USING (owner = (SELECT fasterpg_claims.verified() ->> 'sub'));
--
-- Install once per database, as a role that may create the pgcrypto
-- extension (a superuser, or the database owner: pgcrypto is trusted),
-- then store the key (the file's text, without a final newline):
--
--     psql "$DB" -f docs/verified-claims.sql
--     psql "$DB" -v key="$(cat claims.key)" <<'SQL'
--     INSERT INTO fasterpg_claims.key VALUES (convert_to(:'key', 'UTF8'));
--     SQL
--
-- To change the key: UPDATE fasterpg_claims.key, then restart fasterpg
-- with the new file.

CREATE EXTENSION IF NOT EXISTS pgcrypto;

CREATE SCHEMA fasterpg_claims;
REVOKE ALL ON SCHEMA fasterpg_claims FROM PUBLIC;
GRANT USAGE ON SCHEMA fasterpg_claims TO PUBLIC;

-- One row: the key. Nobody but the owner may read it.
CREATE TABLE fasterpg_claims.key (key bytea NOT NULL);
CREATE UNIQUE INDEX ON fasterpg_claims.key ((true));
REVOKE ALL ON fasterpg_claims.key FROM PUBLIC;

-- The function calls pgcrypto's hmac() by the schema pgcrypto is in, and
-- runs with a search_path of pg_catalog only, so that no caller's objects
-- stand in for what it calls.
DO $install$
DECLARE
	crypto text := (SELECT quote_ident(n.nspname)
			  FROM pg_extension e
			  JOIN pg_namespace n ON n.oid = e.extnamespace
			 WHERE e.extname = 'pgcrypto');
BEGIN
	EXECUTE format($f$
CREATE FUNCTION fasterpg_claims.verified() RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $body$
DECLARE
	claims text := current_setting('request.jwt.claims', true);
	at text := current_setting('fasterpg.claims_at', true);
	mac text := current_setting('fasterpg.claims_mac', true);
	k bytea;
	want bytea;
BEGIN
	IF coalesce(claims, '') = '' THEN
		RETURN NULL;
	END IF;
	SELECT key INTO k FROM fasterpg_claims.key;
	IF k IS NULL OR coalesce(at, '') !~ '^[0-9]{1,15}$'
	   OR coalesce(mac, '') !~ '^[0-9a-f]{64}$' THEN
		RAISE EXCEPTION 'request.jwt.claims were not signed by fasterpg'
			USING ERRCODE = '42501';
	END IF;
	want := %1$s.hmac(convert_to(session_user || E'\n' || at || E'\n'
				     || claims, 'UTF8'), k, 'sha256');
	-- MACs of the two MACs are compared: how long the comparison takes
	-- tells nothing about the MAC a caller would need.
	IF %1$s.hmac(want, k, 'sha256')
	   <> %1$s.hmac(decode(mac, 'hex'), k, 'sha256')
	   OR abs(extract(epoch FROM statement_timestamp()) - at::bigint) > 300
	THEN
		RAISE EXCEPTION 'request.jwt.claims were not signed by fasterpg'
			USING ERRCODE = '42501';
	END IF;
	RETURN claims::jsonb;
END
$body$
$f$, crypto);
END
$install$;

REVOKE ALL ON FUNCTION fasterpg_claims.verified() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION fasterpg_claims.verified() TO PUBLIC;
