/* auth.c: bearer token check (see auth.h). */
#include "auth.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "db.h"
#include "http.h"
#include "sha256.h"
#include "sql.h"

void auth_hash_token(const char *token, char hex[65]) { sha256_hex(token, strlen(token), hex); }

int auth_check(struct http_req *r)
{
    const char *h = http_get_header(r, "Authorization");
    if (!h || !*h) {
        http_error(r, 401, "unauthorized", NULL,
                   "this request needs 'Authorization: Bearer TOKEN' (auth is on)");
        http_header(r, "WWW-Authenticate", "Bearer");
        return -1;
    }
    if (strncasecmp(h, "Bearer ", 7) || !h[7] || strlen(h + 7) > 256) {
        http_error(r, 401, "unauthorized", NULL,
                   "malformed Authorization header: expected 'Bearer TOKEN'");
        http_header(r, "WWW-Authenticate", "Bearer error=\"invalid_request\"");
        return -1;
    }
    char hex[65], err[256];
    auth_hash_token(h + 7, hex);
    db_conn *c = db_acquire(r->app->db, 2000, err, sizeof err);
    if (!c) {
        http_error(r, 503, "database_unavailable", NULL, "cannot check the token: %s", err);
        http_header(r, "Retry-After", "5");
        return -1;
    }
    PGresult *res = NULL;
    const char *v[1] = {hex};
    int rc = db_exec(c, &sql_api_tokens_use, v, &res, err, sizeof err);
    db_release(r->app->db, c);
    if (rc < 0) {
        http_error(r, 503, "database_unavailable", NULL, "cannot check the token: %s", err);
        http_header(r, "Retry-After", "5");
        return -1;
    }
    int ok = PQntuples(res) == 1;
    PQclear(res);
    if (!ok) {
        http_error(r, 401, "unauthorized", NULL, "unknown or revoked token");
        http_header(r, "WWW-Authenticate", "Bearer error=\"invalid_token\"");
        return -1;
    }
    return 0;
}
