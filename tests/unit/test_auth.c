/* test_auth.c: the pieces of bearer-token auth that need no server: every route of the table
 * names its scope and only the listed routes are public, scope lists parse and imply what they
 * should, the constant-time comparison, and the per-token rate limit (N requests per window,
 * the N+1th refused, counted per token). The same rules against a running server:
 * tests/http/test_http_auth.c. */
#include <string.h>

#include <criterion/criterion.h>

#include "auth.h"
#include "ct_compare.h"
#include "http.h"
#include "http_ratelimit.h"
#include "../lib/tspec.h"
#include "../lib/tsrv.h"
#include "db_migrate.h"

/* The routes anyone may call with auth on (docs/api.md "Security" explains each). */
static const char *const public_routes[][2] = {
    {"GET", "/healthz"},
    {"GET", "/readyz"},
    {"GET", "/monailabel/auth/"},
    {"POST", "/monailabel/auth/token"},
    {"GET", "/"},
    {"GET", "/ui/{file}"},
    {"GET", "/ui/vendor/{file}"},
};
#define NPUBLIC (int)(sizeof public_routes / sizeof public_routes[0])

static int listed_public(const http_route *r)
{
    for (int i = 0; i < NPUBLIC; i++)
        if (!strcmp(r->method, public_routes[i][0]) && !strcmp(r->pattern, public_routes[i][1]))
            return 1;
    return 0;
}

Test(auth, every_route_names_its_scope_and_only_the_listed_ones_are_public)
{
    int npublic = 0;
    for (int i = 0; i < http_nroutes; i++) {
        const http_route *r = &http_routes[i];
        cr_assert_neq(r->scope, HTTP_SCOPE_UNSET, "%s %s has no scope", r->method, r->pattern);
        cr_assert_leq(r->scope, HTTP_SCOPE_ADMIN, "%s %s", r->method, r->pattern);
        cr_assert_eq(r->scope == HTTP_PUBLIC, listed_public(r), "%s %s is %s", r->method,
                     r->pattern, auth_scope_name(r->scope));
        npublic += r->scope == HTTP_PUBLIC;
    }
    cr_assert_eq(npublic, NPUBLIC, "every listed public route exists");
}

/* The scope of (method, pattern) in the table; HTTP_SCOPE_UNSET when absent. */
static http_scope scope_of(const char *method, const char *pattern)
{
    for (int i = 0; i < http_nroutes; i++)
        if (!strcmp(http_routes[i].method, method) && !strcmp(http_routes[i].pattern, pattern))
            return http_routes[i].scope;
    return HTTP_SCOPE_UNSET;
}

Test(auth, the_documented_scopes_of_the_main_routes)
{
    cr_assert_eq(scope_of("GET", "/datasets"), HTTP_SCOPE_READ);
    cr_assert_eq(scope_of("GET", "/metrics"), HTTP_SCOPE_READ);
    cr_assert_eq(scope_of("POST", "/segment"), HTTP_SCOPE_SEGMENT);
    cr_assert_eq(scope_of("POST", "/monailabel/infer/{model}"), HTTP_SCOPE_SEGMENT);
    cr_assert_eq(scope_of("POST", "/train"), HTTP_SCOPE_TRAIN);
    cr_assert_eq(scope_of("POST", "/models/{id}/evaluate"), HTTP_SCOPE_TRAIN);
    cr_assert_eq(scope_of("POST", "/datasets"), HTTP_SCOPE_TRAIN);
    cr_assert_eq(scope_of("POST", "/datasets/{id}/volumes"), HTTP_SCOPE_TRAIN);
    cr_assert_eq(scope_of("PUT", "/monailabel/datastore/"), HTTP_SCOPE_TRAIN);
    cr_assert_eq(scope_of("DELETE", "/datasets/{id}"), HTTP_SCOPE_ADMIN);
    cr_assert_eq(scope_of("POST", "/models/{id}/promote"), HTTP_SCOPE_ADMIN);
    cr_assert_eq(scope_of("POST", "/models"), HTTP_SCOPE_ADMIN);
    /* every GET but the public ones reads */
    for (int i = 0; i < http_nroutes; i++)
        if (!strcmp(http_routes[i].method, "GET") && http_routes[i].scope != HTTP_PUBLIC)
            cr_assert_eq(http_routes[i].scope, HTTP_SCOPE_READ, "%s", http_routes[i].pattern);
}

Test(auth, scopes_parse)
{
    unsigned m;
    char err[128];
    cr_assert_eq(auth_scopes_parse("read", &m, err, sizeof err), 0);
    cr_assert_eq(m, 1u << HTTP_SCOPE_READ);
    cr_assert_eq(auth_scopes_parse("read, segment,train", &m, err, sizeof err), 0, "%s", err);
    cr_assert_eq(m,
                 (1u << HTTP_SCOPE_READ) | (1u << HTTP_SCOPE_SEGMENT) | (1u << HTTP_SCOPE_TRAIN));
    cr_assert_eq(auth_scopes_parse("admin", &m, err, sizeof err), 0);
    cr_assert_eq(m, 1u << HTTP_SCOPE_ADMIN);
    static const char *const bad[] = {"",     "reader", "read,", ",read",        "read,read",
                                      "READ", "public", "unset", "read;segment", "read segment"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_eq(auth_scopes_parse(bad[i], &m, err, sizeof err), -1, "'%s' is refused", bad[i]);
    cr_assert(strstr(err, "separated by commas"), "%s", err);
    cr_assert_eq(auth_scopes_parse(NULL, &m, err, sizeof err), -1);
}

Test(auth, scopes_allow_admin_implies_all_unset_needs_admin)
{
    unsigned read = 1u << HTTP_SCOPE_READ, seg = 1u << HTTP_SCOPE_SEGMENT,
             train = 1u << HTTP_SCOPE_TRAIN, admin = 1u << HTTP_SCOPE_ADMIN;
    for (int s = HTTP_SCOPE_READ; s <= HTTP_SCOPE_ADMIN; s++) {
        cr_assert(auth_scopes_allow(admin, (http_scope)s));
        cr_assert(auth_scopes_allow(1u << s, (http_scope)s));
        cr_assert(auth_scopes_allow(0, HTTP_PUBLIC));
        cr_assert_not(auth_scopes_allow(0, (http_scope)s));
    }
    cr_assert_not(auth_scopes_allow(read, HTTP_SCOPE_SEGMENT), "read does not segment");
    cr_assert_not(auth_scopes_allow(seg, HTTP_SCOPE_READ), "segment does not imply read");
    cr_assert_not(auth_scopes_allow(read | seg | train, HTTP_SCOPE_ADMIN));
    cr_assert_not(auth_scopes_allow(read | seg | train, HTTP_SCOPE_UNSET), "unset needs admin");
    cr_assert(auth_scopes_allow(admin, HTTP_SCOPE_UNSET));
}

Test(auth, constant_time_compare)
{
    cr_assert(ct_equal("abcdef", "abcdef", 6));
    cr_assert_not(ct_equal("abcdef", "abcdeg", 6), "the last byte counts");
    cr_assert_not(ct_equal("xbcdef", "abcdef", 6), "the first byte counts");
    cr_assert(ct_equal("", "x", 0));
    cr_assert(ct_streq("0123abcd", "0123abcd"));
    cr_assert_not(ct_streq("0123abcd", "0123abc"), "a prefix is not equal");
    cr_assert_not(ct_streq("0123abc", "0123abcd"));
    cr_assert_not(ct_streq("", "a"));
    cr_assert(ct_streq("", ""));
    cr_assert_not(ct_streq(NULL, ""));
    cr_assert_not(ct_streq("", NULL));
}

/* 3 requests per 3600 s: a token earns one back every 1200 s, so the 4th in a row is refused
 * however slow the machine (short of a 20-minute stall). */
Test(auth, rate_limit_per_token_n_then_refused)
{
    ratelimit_configure_token(3, 3600);
    int retry = 0;
    for (int i = 0; i < 3; i++)
        cr_assert(ratelimit_take_token(7, &retry), "request %d of token 7", i + 1);
    cr_assert_not(ratelimit_take_token(7, &retry), "the 4th request of token 7");
    cr_assert_geq(retry, 1);
    cr_assert_leq(retry, 1200, "one request comes back after 1200 s at most (%d)", retry);
    for (int i = 0; i < 3; i++)
        cr_assert(ratelimit_take_token(8, &retry), "token 8 has its own bucket");
    cr_assert_not(ratelimit_take_token(8, &retry));
    cr_assert(ratelimit_take_token(0, &retry), "no token: not limited here");
    ratelimit_configure_token(0, 60);
    for (int i = 0; i < 10; i++)
        cr_assert(ratelimit_take_token(7, &retry), "0 turns the limit off");
}

/* api/openapi.yaml names the same scope for every operation as the routing table. */
Test(auth, the_spec_names_each_routes_scope)
{
    for (int i = 0; i < http_nroutes; i++) {
        const http_route *r = &http_routes[i];
        char s[32];
        cr_assert_eq(tspec_scope(r->method, r->pattern, s, sizeof s), 0, "%s %s not in the spec",
                     r->method, r->pattern);
        cr_assert_str_eq(s, auth_scope_name(r->scope), "%s %s: the spec says '%s'", r->method,
                         r->pattern, s);
    }
}

/* Upgrading a database whose tokens predate scopes: they keep full access (admin) and no
 * expiry; afterwards every token must say its scopes, and only the four names are taken. */
Test(auth, migration_gives_old_tokens_admin_and_checks_scopes)
{
    char name[64], err[1024];
    PGconn *pg = tdb_create(name);
    db_migration before[16];
    int n = 0, applied;
    for (; db_migrations_embedded[n].name && n < 15; n++) {
        if (db_migration_version(db_migrations_embedded[n].name) >= 4)
            break;
        before[n] = db_migrations_embedded[n];
    }
    before[n] = (db_migration){0, 0};
    cr_assert_eq(db_migrate(pg, before, &applied, err, sizeof err), 0, "%s", err);
    char *v = tdb_value(pg, "INSERT INTO api_tokens (name, token_sha256) VALUES ('old', "
                            "repeat('a', 64)) RETURNING id");
    cr_assert(v, "a token as the schema before 0004 makes it");
    free(v);
    cr_assert_eq(db_migrate(pg, db_migrations_embedded, &applied, err, sizeof err), 0, "%s", err);
    cr_assert_geq(applied, 1);
    v = tdb_value(pg, "SELECT array_to_string(scopes, ',') || ' ' || "
                      "coalesce(expires_at::text, 'never') FROM api_tokens WHERE name = 'old'");
    cr_assert_str_eq(v, "admin never");
    free(v);
    static const char *const bad[] = {
        "INSERT INTO api_tokens (name, token_sha256) VALUES ('n1', repeat('b', 64))",
        "INSERT INTO api_tokens (name, token_sha256, scopes) VALUES ('n2', repeat('c', 64), '{}')",
        "INSERT INTO api_tokens (name, token_sha256, scopes) VALUES ('n3', repeat('d', 64), "
        "'{read,root}')",
        "INSERT INTO api_tokens (name, token_sha256, scopes) VALUES ('n4', repeat('e', 64), "
        "'{read,NULL}')",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        PGresult *r = PQexec(pg, bad[i]);
        cr_assert_eq(PQresultStatus(r), PGRES_FATAL_ERROR, "refused: %s", bad[i]);
        PQclear(r);
    }
    v = tdb_value(pg, "INSERT INTO api_tokens (name, token_sha256, scopes) VALUES ('ok', "
                      "repeat('f', 64), '{read,segment}') RETURNING array_to_string(scopes, ',')");
    cr_assert_str_eq(v, "read,segment");
    free(v);
    tdb_drop(pg, name);
}
