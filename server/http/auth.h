/* auth.h: bearer tokens (MKDSEG_AUTH=on). Tokens are stored only as their SHA-256 (hex) in
 * api_tokens; a revoked token is refused. */
#ifndef MKDSEG_AUTH_H
#define MKDSEG_AUTH_H

#include <stddef.h>

struct http_req;

/* Writes the SHA-256 hex of token into hex[65]. */
void auth_hash_token(const char *token, char hex[65]);

/* Checks the request's "Authorization: Bearer TOKEN" against api_tokens.
 * 0 when valid; -1 after answering 401 (missing / malformed / unknown or revoked token) or
 * 503 (database unavailable, with Retry-After). */
int auth_check(struct http_req *r);

#endif
