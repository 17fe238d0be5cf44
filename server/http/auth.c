/* auth.c: bearer tokens and their scopes (see auth.h). */
#include "auth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "db.h"
#include "http_ratelimit.h"
#include "sha256.h"
#include "sql.h"

static const char *const scope_names[] = {
    [HTTP_SCOPE_UNSET] = "unset",     [HTTP_PUBLIC] = "public",     [HTTP_SCOPE_READ] = "read",
    [HTTP_SCOPE_SEGMENT] = "segment", [HTTP_SCOPE_TRAIN] = "train", [HTTP_SCOPE_ADMIN] = "admin",
};

void auth_hash_token(const char *token, char hex[65]) { sha256_hex(token, strlen(token), hex); }

const char *auth_scope_name(http_scope s)
{
    return (unsigned)s <= HTTP_SCOPE_ADMIN ? scope_names[s] : "unset";
}

int auth_scopes_parse(const char *csv, unsigned *mask, char *err, size_t errlen)
{
    *mask = 0;
    const char *p = csv ? csv : "";
    for (;;) {
        while (*p == ' ')
            p++;
        size_t n = strcspn(p, ", ");
        int s = HTTP_SCOPE_READ;
        for (; s <= HTTP_SCOPE_ADMIN; s++)
            if (n == strlen(scope_names[s]) && !strncmp(p, scope_names[s], n))
                break;
        if (s > HTTP_SCOPE_ADMIN) {
            snprintf(err, errlen, "unknown scope '%.*s' (read, segment, train, admin)",
                     (int)(n > 40 ? 40 : n), p);
            return -1;
        }
        if (*mask & (1u << s)) {
            snprintf(err, errlen, "scope '%s' is named twice", scope_names[s]);
            return -1;
        }
        *mask |= 1u << s;
        p += n;
        while (*p == ' ')
            p++;
        if (!*p)
            return 0;
        if (*p != ',') {
            snprintf(err, errlen, "scopes are separated by commas");
            return -1;
        }
        p++;
    }
}

int auth_scopes_allow(unsigned mask, http_scope need)
{
    if (need == HTTP_PUBLIC)
        return 1;
    if (mask & (1u << HTTP_SCOPE_ADMIN))
        return 1;
    if (need < HTTP_SCOPE_READ || need > HTTP_SCOPE_ADMIN)
        return 0; /* unset: admin only */
    return (mask & (1u << need)) != 0;
}

/* 401 with the RFC 6750 challenge; `error` is NULL when no token came at all. */
static int refuse(http_req *r, const char *error, const char *msg)
{
    http_error(r, 401, "unauthorized", NULL, "%s", msg);
    char h[256];
    if (error)
        snprintf(h, sizeof h, "Bearer realm=\"mkdseg\", error=\"%s\", error_description=\"%s\"",
                 error, msg);
    else
        snprintf(h, sizeof h, "Bearer realm=\"mkdseg\"");
    http_header(r, "WWW-Authenticate", h);
    return -1;
}

static int db_down(http_req *r, const char *err)
{
    http_error(r, 503, "database_unavailable", NULL, "cannot check the token: %s", err);
    http_header(r, "Retry-After", "5");
    return -1;
}

/* Looks the token up: 0 with *id, *mask (scopes) and state[16] ("ok", "revoked", "expired";
 * "" when unknown); -1 after answering 503. */
static int lookup(http_req *r, const char *token, long long *id, unsigned *mask, char state[16])
{
    char hex[65], err[256];
    auth_hash_token(token, hex);
    db_conn *c = db_acquire(r->app->db, 2000, err, sizeof err);
    if (!c)
        return db_down(r, err);
    PGresult *res = NULL;
    const char *v[1] = {hex};
    int rc = db_exec(c, &sql_api_tokens_use, v, &res, err, sizeof err);
    db_release(r->app->db, c);
    if (rc < 0)
        return db_down(r, err);
    state[0] = 0;
    *id = 0;
    *mask = 0;
    if (PQntuples(res) == 1) {
        *id = atoll(PQgetvalue(res, 0, 0));
        if (auth_scopes_parse(PQgetvalue(res, 0, 1), mask, err, sizeof err) < 0)
            *mask = 0; /* the table's check forbids it; such a token may do nothing */
        snprintf(state, 16, "%s", PQgetvalue(res, 0, 2));
    }
    PQclear(res);
    return 0;
}

/* The token's own rate limit. 0 / -1 after answering 429. */
static int token_rate(http_req *r, long long id)
{
    int retry = 0;
    if (ratelimit_take_token(id, &retry))
        return 0;
    http_error(r, 429, "too_many_requests", NULL,
               "more than %d requests in %d s with this token; retry in %d s",
               r->app->cfg.rate_limit_token, r->app->cfg.rate_limit_token_window, retry);
    char ra[16];
    snprintf(ra, sizeof ra, "%d", retry);
    http_header(r, "Retry-After", ra);
    return -1;
}

int auth_require(http_req *r, http_scope need)
{
    if (need == HTTP_PUBLIC)
        return 0;
    const char *h = http_get_header(r, "Authorization");
    if (!h || !*h)
        return refuse(r, NULL, "this request needs 'Authorization: Bearer TOKEN' (auth is on)");
    if (strncasecmp(h, "Bearer ", 7) || !h[7] || strlen(h + 7) > 256)
        return refuse(r, "invalid_request",
                      "malformed Authorization header: expected 'Bearer TOKEN'");
    long long id;
    unsigned mask;
    char state[16];
    if (lookup(r, h + 7, &id, &mask, state) < 0)
        return -1;
    if (!*state)
        return refuse(r, "invalid_token", "unknown token");
    if (!strcmp(state, "revoked"))
        return refuse(r, "invalid_token", "this token has been revoked");
    if (strcmp(state, "ok"))
        return refuse(r, "invalid_token", "this token has expired");
    r->token_id = id;
    if (token_rate(r, id) < 0)
        return -1;
    if (auth_scopes_allow(mask, need))
        return 0;
    const char *name = auth_scope_name(need == HTTP_SCOPE_UNSET ? HTTP_SCOPE_ADMIN : need);
    http_error(r, 403, "forbidden", NULL, "this route needs the '%s' scope", name);
    char wa[128];
    snprintf(wa, sizeof wa, "Bearer realm=\"mkdseg\", error=\"insufficient_scope\", scope=\"%s\"",
             name);
    http_header(r, "WWW-Authenticate", wa);
    return -1;
}
