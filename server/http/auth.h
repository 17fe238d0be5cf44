/* auth.h: bearer tokens with scopes (MKDSEG_AUTH=on). Tokens are stored only as their SHA-256
 * (hex) in api_tokens, with their scopes (read, segment, train, admin; admin implies the
 * others), an optional expiry and a revocation time. Each route names the scope it needs
 * (http_route.scope); the answers:
 *   401 + WWW-Authenticate: no token, a malformed header, an unknown, revoked or expired token
 *       (the message says which; the token is never repeated);
 *   403 forbidden + WWW-Authenticate error="insufficient_scope": a usable token without the
 *       route's scope;
 *   429 + Retry-After: the token's own rate limit (--rate-limit-token) is spent;
 *   503 + Retry-After: the database cannot be asked. */
#ifndef MKDSEG_AUTH_H
#define MKDSEG_AUTH_H

#include <stddef.h>

#include "http.h"

/* Writes the SHA-256 hex of token into hex[65]. */
void auth_hash_token(const char *token, char hex[65]);

/* The scope's name: "read", "segment", "train", "admin"; "public" and "unset" for the others. */
const char *auth_scope_name(http_scope s);

/* Parses a comma-separated list of scope names ("read,segment"; spaces around names allowed,
 * at least one, no repeats) into a bit set (1u << scope). 0 / -1 with err. */
int auth_scopes_parse(const char *csv, unsigned *mask, char *err, size_t errlen);

/* Whether a token holding `mask` may use a route needing `need`: admin implies every scope;
 * HTTP_PUBLIC needs nothing; HTTP_SCOPE_UNSET is treated as admin (a route that forgot its
 * scope stays closed). */
int auth_scopes_allow(unsigned mask, http_scope need);

/* Checks the request's "Authorization: Bearer TOKEN" for a route needing `need` (nothing for
 * HTTP_PUBLIC) and sets r->token_id. 0 when allowed; -1 after answering 401, 403, 429 or
 * 503 as above. */
int auth_require(http_req *r, http_scope need);

#endif
