/* sql_api_tokens.c: the statements about api_tokens (sql.h).
 *
 * A request's token is found by its SHA-256 (an index lookup): the token itself never reaches
 * the database, and how long the lookup takes tells an attacker about the hash of their guess,
 * not about a stored token, so no constant-time comparison is needed there. */
#include "sql.h"

/* The token with this SHA-256: id, scopes (comma-separated) and its state ('ok', 'revoked' or
 * 'expired', judged by the database clock). A usable token's last_used_at is refreshed in the
 * same statement, at most once every 60 seconds, so that a busy token is not a write per
 * request. No row: unknown. */
const db_stmt sql_api_tokens_use = {
    "api_tokens_use",
    "WITH t AS (SELECT id, scopes, CASE WHEN revoked_at IS NOT NULL THEN 'revoked' "
    "WHEN expires_at IS NOT NULL AND expires_at <= now() THEN 'expired' ELSE 'ok' END AS state "
    "FROM api_tokens WHERE token_sha256 = $1), "
    "u AS (UPDATE api_tokens a SET last_used_at = now() FROM t WHERE a.id = t.id "
    "AND t.state = 'ok' AND (a.last_used_at IS NULL OR a.last_used_at < now() - interval '60 s') "
    "RETURNING a.id) "
    "SELECT id, array_to_string(scopes, ','), state FROM t",
    1};

/* name, SHA-256, prefix, scopes ('{read,segment}'), then the expiry as a timestamp ($5) or as
 * an interval from now ($6), both NULL for never. No row when the expiry is not in the
 * future. */
const db_stmt sql_api_tokens_insert = {
    "api_tokens_insert",
    "WITH e AS (SELECT coalesce($5::timestamptz, now() + $6::interval) AS at) "
    "INSERT INTO api_tokens (name, token_sha256, prefix, scopes, expires_at) "
    "SELECT $1, $2, $3, $4::text[], e.at FROM e WHERE e.at IS NULL OR e.at > now() "
    "RETURNING id, array_to_string(scopes, ','), "
    "to_char(expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')",
    6};

/* $1 the name, or $2 the id (the other NULL) */
const db_stmt sql_api_tokens_revoke = {
    "api_tokens_revoke",
    "UPDATE api_tokens SET revoked_at = now() WHERE (name = $1 OR id = $2::bigint) "
    "AND revoked_at IS NULL RETURNING id, name",
    2};

const db_stmt sql_api_tokens_list = {
    "api_tokens_list",
    "SELECT id, name, prefix, array_to_string(scopes, ','), "
    "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "
    "coalesce(to_char(expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), '-'), "
    "coalesce(to_char(last_used_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), '-'), "
    "coalesce(to_char(revoked_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), '-'), "
    "CASE WHEN revoked_at IS NOT NULL THEN 'revoked' WHEN expires_at <= now() THEN 'expired' "
    "ELSE 'active' END FROM api_tokens ORDER BY id",
    0};

/* The MONAI Label login: the usable token named $1: its SHA-256, to be compared with the
 * hash of the password in constant time (ct_equal), and its scopes. */
const db_stmt sql_api_tokens_by_name = {
    "api_tokens_by_name",
    "SELECT token_sha256, array_to_string(scopes, ',') FROM api_tokens WHERE name = $1 "
    "AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())",
    1};

/* `mkdseg token create` reads a date without a zone as UTC: its session's zone */
const db_stmt sql_api_tokens_utc = {"api_tokens_utc", "SELECT set_config('TimeZone', 'UTC', false)",
                                    0};
