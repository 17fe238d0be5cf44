/* sql_api_tokens.c: the statements about api_tokens (sql.h). */
#include "sql.h"

const db_stmt sql_api_tokens_use = {"api_tokens_use",
                                    "UPDATE api_tokens SET last_used_at = now() "
                                    "WHERE token_sha256 = $1 AND revoked_at IS NULL RETURNING id",
                                    1};

const db_stmt sql_api_tokens_insert = {
    "api_tokens_insert",
    "INSERT INTO api_tokens (name, token_sha256, prefix) VALUES ($1, $2, $3) RETURNING id", 3};

const db_stmt sql_api_tokens_revoke = {
    "api_tokens_revoke",
    "UPDATE api_tokens SET revoked_at = now() WHERE name = $1 AND revoked_at IS NULL RETURNING id",
    1};

const db_stmt sql_api_tokens_list = {
    "api_tokens_list",
    "SELECT id, name, prefix, created_at, last_used_at, revoked_at FROM api_tokens ORDER BY id", 0};

const db_stmt sql_api_tokens_by_name = {
    "api_tokens_by_name",
    "SELECT 1 FROM api_tokens WHERE name = $1 AND token_sha256 = $2 AND revoked_at IS NULL", 2};
