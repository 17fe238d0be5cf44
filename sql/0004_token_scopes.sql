-- 0004_token_scopes.sql: what each API bearer token may do, and until when.
-- scopes: any of read, segment, train, admin (admin implies the other three); every route of
-- the server names the one it needs (server/api/routes.c, docs/api.md "Security").
-- Tokens made before this migration could do everything, so they get {admin}: an upgrade
-- locks nobody out. New rows must say their scopes (no default): `mkdseg token create` does.
-- expires_at: NULL = never; the server compares it with now() in the lookup itself.
ALTER TABLE api_tokens ADD COLUMN scopes text[] NOT NULL DEFAULT '{admin}';
ALTER TABLE api_tokens ALTER COLUMN scopes DROP DEFAULT;
ALTER TABLE api_tokens ADD CONSTRAINT api_tokens_scopes_check
    CHECK (cardinality(scopes) BETWEEN 1 AND 4
           AND scopes <@ ARRAY['read', 'segment', 'train', 'admin']::text[]);
ALTER TABLE api_tokens ADD COLUMN expires_at timestamptz;
COMMENT ON COLUMN api_tokens.scopes IS
    'What the token may do: read, segment, train, admin (admin implies all); tokens older than '
    'this column got {admin}.';
COMMENT ON COLUMN api_tokens.expires_at IS 'When the token stops working; NULL: never.';
COMMENT ON COLUMN api_tokens.last_used_at IS
    'Last request with this token, to the minute: refreshed at most once every 60 seconds.';
