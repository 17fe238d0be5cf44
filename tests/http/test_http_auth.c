/* test_http_auth.c: bearer tokens with scopes against the real `mkdseg serve --auth on` and a
 * real PostgreSQL (a fresh database per test), tokens made by the real `mkdseg token`:
 *  - the routing table walked route by route (http_routes, linked from the server objects):
 *    no token 401 (the public routes exempt, and listed in tests/unit/test_auth.c), a token
 *    without the route's scope 403, a token with exactly that scope neither, a revoked and an
 *    expired token 401;
 *  - the 401 and 403 answers (which failure, WWW-Authenticate, the token never repeated);
 *  - no token in the server's log, at debug level;
 *  - last_used_at refreshed at most once a minute;
 *  - the per-token rate limit (N requests per window, the N+1th 429 with Retry-After);
 *  - `mkdseg token create --scopes --expires`, `list`, `revoke --id`. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "../lib/tspec.h"
#include "../lib/tsrv.h"
#include "auth.h"
#include "http.h"

static tsrv srv;
static PGconn *pg;
static char dbname[64], url[1024];

/* tokens by scope: read, segment, train, admin, then a revoked and an expired one (both admin) */
enum { T_READ, T_SEGMENT, T_TRAIN, T_ADMIN, T_REVOKED, T_EXPIRED, NTOK };
static char tok[NTOK][80];
static const char *const tok_name[NTOK] = {"read",  "segment", "train",
                                           "admin", "revoked", "expired"};

/* Runs a shell command; its exit status. */
static int shx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int shx(const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : 128;
}

/* `mkdseg token create --name NAME [more]` into out[80]; its exit status. */
static int token_create(const char *name, const char *more, char out[80])
{
    char path[400];
    snprintf(path, sizeof path, "%s/tok-%s", srv.dir, name);
    int rc = shx("'%s' token create --name '%s' %s --database-url '%s' > '%s' 2>'%s.err'",
                 tenv("MKDSEG_TEST_BIN"), name, more, url, path, path);
    char *t = tslurp(path, NULL);
    t[strcspn(t, "\r\n")] = 0;
    snprintf(out, 80, "%s", t);
    free(t);
    return rc;
}

/* A database password no log line may show (the test cluster trusts its socket, so libpq
 * sends it and nothing checks it). */
#define DB_PASSWORD "pw-in-the-url-5b1e"
/* A DICOMweb bearer token from the settings, as secret as a database password. */
#define PACS_TOKEN "pacs-bearer-77c3a9"

/* Starts the server on a fresh database; with_secrets: its database URL carries a password and
 * its settings a PACS token (for the log test). */
static void start_with(const char *const *extra, int with_secrets)
{
    pg = tdb_create(dbname);
    tdb_url(dbname, url);
    if (with_secrets) {
        size_t n = strlen(url);
        snprintf(url + n, sizeof url - n, "%spassword=" DB_PASSWORD, strchr(url, '?') ? "&" : "?");
    }
    const char *args[24] = {"--auth", "on", "--workers", "0", "--log-level", "debug"};
    int n = 6;
    for (int i = 0; extra && extra[i] && n < 22; i++)
        args[n++] = extra[i];
    args[n] = NULL;
    cr_assert_eq(tsrv_start(&srv, url, args), 0, "server did not start");
    for (int t = 0; t < NTOK; t++) {
        char more[64];
        snprintf(more, sizeof more, "--scopes %s %s", t <= T_ADMIN ? tok_name[t] : "admin",
                 t == T_EXPIRED ? "--expires 1h" : "");
        cr_assert_eq(token_create(tok_name[t], more, tok[t]), 0, "token create %s", tok_name[t]);
        cr_assert_eq(strncmp(tok[t], "mkd_", 4), 0, "%s", tok[t]);
    }
    cr_assert_eq(shx("'%s' token revoke --name revoked --database-url '%s' 2>/dev/null",
                     tenv("MKDSEG_TEST_BIN"), url),
                 0);
    /* an expiry cannot be made in the past, so the test moves it there */
    char *v = tdb_value(pg, "UPDATE api_tokens SET expires_at = now() - interval '1 minute' "
                            "WHERE name = 'expired' RETURNING id");
    cr_assert(v);
    free(v);
}

static void start(const char *const *extra) { start_with(extra, 0); }
static void start_plain(void) { start(NULL); }
static void start_secrets(void)
{
    const char *extra[] = {"--dicomweb-allow", "http://127.0.0.1:9/dicom-web|bearer:" PACS_TOKEN,
                           NULL};
    start_with(extra, 1);
}

static void stop(void)
{
    if (srv.pid > 0) {
        int rc = tsrv_stop(&srv);
        cr_expect_eq(rc, 0, "the server must exit 0 on SIGTERM (got %d)", rc);
    }
    if (pg || dbname[0])
        tdb_drop(pg, dbname);
    pg = NULL;
    dbname[0] = 0;
}

TestSuite(auth_scopes, .fini = stop, .timeout = 300);

/* One request with `token` (NULL: none) and no body. */
static void req(const char *method, const char *path, const char *token, tresp *r)
{
    char authz[160];
    snprintf(authz, sizeof authz, "Authorization: Bearer %s", token ? token : "");
    const char *h[] = {authz, NULL};
    cr_assert_eq(thttp(&srv, method, path, token ? h : NULL, NULL, 0, r), 0, "%s %s", method, path);
}

static const char *err_code(const tresp *r)
{
    return json_string_value(json_object_get(json_object_get(r->json, "error"), "code"));
}
static const char *err_msg(const tresp *r)
{
    return json_string_value(json_object_get(json_object_get(r->json, "error"), "message"));
}

/* A concrete path for a route pattern: every {capture} becomes an id no row has (or a file /
 * model name), so that no request of the walk changes anything. */
static void concrete(const char *pattern, char *out, size_t cap)
{
    size_t o = 0;
    for (const char *p = pattern; *p && o + 16 < cap;) {
        if (*p != '{') {
            out[o++] = *p++;
            continue;
        }
        const char *e = strchr(p, '}');
        const char *v = !strncmp(p, "{file}", 6)    ? "app.js"
                        : !strncmp(p, "{model}", 7) ? "nomodel"
                                                    : "999999";
        o += (size_t)snprintf(out + o, cap - o, "%s", v);
        p = e + 1;
    }
    out[o] = 0;
}

static void assert_401(const tresp *r, const char *what, const char *route)
{
    char wa[256];
    cr_assert_eq(r->status, 401, "%s on %s: %ld %s", what, route, r->status, r->body);
    cr_assert_str_eq(err_code(r), "unauthorized", "%s on %s: %s", what, route, r->body);
    cr_assert(tresp_header(r, "WWW-Authenticate", wa, sizeof wa), "%s on %s", what, route);
    cr_assert_eq(strncmp(wa, "Bearer", 6), 0, "%s", wa);
}

/* Walks http_routes: the scope of each route is enforced as the table says. */
Test(auth_scopes, every_route_401_403_or_through_by_its_scope, .init = start_plain)
{
    int checked = 0, public_seen = 0;
    for (int i = 0; i < http_nroutes; i++) {
        const http_route *rt = &http_routes[i];
        char path[256], what[300], spec[32];
        concrete(rt->pattern, path, sizeof path);
        snprintf(what, sizeof what, "%s %s", rt->method, path);
        /* the contract, not the table itself, says what to expect */
        cr_assert_eq(tspec_scope(rt->method, rt->pattern, spec, sizeof spec), 0, "%s", what);
        cr_assert_str_eq(spec, auth_scope_name(rt->scope), "%s: api/openapi.yaml says '%s'", what,
                         spec);
        tresp r;
        req(rt->method, path, NULL, &r);
        if (rt->scope == HTTP_PUBLIC) {
            cr_assert(r.status != 401 && r.status != 403, "public %s: %ld %s", what, r.status,
                      r.body);
            tresp_free(&r);
            public_seen++;
            continue;
        }
        assert_401(&r, "no token", what);
        tresp_free(&r);
        for (int t = T_READ; t <= T_ADMIN; t++) {
            int allowed = t == T_ADMIN || rt->scope == (http_scope)(HTTP_SCOPE_READ + t);
            req(rt->method, path, tok[t], &r);
            if (allowed) {
                cr_assert(r.status != 401 && r.status != 403, "%s with a %s token: %ld %s", what,
                          tok_name[t], r.status, r.body);
            } else {
                char want[64];
                snprintf(want, sizeof want, "this route needs the '%s' scope",
                         auth_scope_name(rt->scope));
                cr_assert_eq(r.status, 403, "%s with a %s token: %ld %s", what, tok_name[t],
                             r.status, r.body);
                cr_assert_str_eq(err_code(&r), "forbidden", "%s", r.body);
                cr_assert_str_eq(err_msg(&r), want, "%s", r.body);
            }
            tresp_free(&r);
        }
        req(rt->method, path, tok[T_REVOKED], &r);
        assert_401(&r, "a revoked token", what);
        cr_assert(strstr(err_msg(&r), "revoked"), "%s", r.body);
        tresp_free(&r);
        req(rt->method, path, tok[T_EXPIRED], &r);
        assert_401(&r, "an expired token", what);
        cr_assert(strstr(err_msg(&r), "expired"), "%s", r.body);
        tresp_free(&r);
        checked++;
    }
    cr_assert_geq(checked, 25, "the walk saw the protected routes (%d)", checked);
    cr_assert_eq(public_seen, 7, "the public routes: probes, dashboard files, Slicer's login");
}

/* The Slicer paths sit under the configured prefix; the scopes follow them there. */
Test(auth_scopes, slicer_routes_under_another_prefix_keep_their_scopes)
{
    const char *extra[] = {"--monailabel-prefix", "/slicer", NULL};
    start(extra);
    tresp r;
    req("GET", "/slicer/auth/", NULL, &r);
    cr_assert_eq(r.status, 200, "Slicer finds out that auth is on: %s", r.body);
    cr_assert(json_is_true(json_object_get(r.json, "enabled")), "%s", r.body);
    tresp_free(&r);
    req("GET", "/slicer/info/", NULL, &r);
    assert_401(&r, "no token", "/slicer/info/");
    cr_assert(json_is_string(json_object_get(r.json, "detail")), "MONAI Label's detail: %s",
              r.body);
    tresp_free(&r);
    req("GET", "/slicer/info/", tok[T_READ], &r);
    cr_assert_eq(r.status, 200, "%s", r.body);
    tresp_free(&r);
    req("POST", "/slicer/infer/nomodel", tok[T_READ], &r);
    cr_assert_eq(r.status, 403, "%s", r.body);
    cr_assert_str_eq(err_msg(&r), "this route needs the 'segment' scope");
    cr_assert(json_is_string(json_object_get(r.json, "detail")), "%s", r.body);
    tresp_free(&r);
    req("PUT", "/slicer/datastore/?image=x", tok[T_SEGMENT], &r);
    cr_assert_eq(r.status, 403, "%s", r.body);
    cr_assert_str_eq(err_msg(&r), "this route needs the 'train' scope");
    tresp_free(&r);
}

/* Which 401, the challenge, and the token never repeated in an answer. */
Test(auth_scopes, answers_say_which_failure_and_never_repeat_the_token, .init = start_plain)
{
    tresp r;
    char wa[256];
    req("GET", "/datasets", NULL, &r);
    assert_401(&r, "no token", "/datasets");
    cr_assert(strstr(err_msg(&r), "needs 'Authorization: Bearer TOKEN'"), "%s", r.body);
    cr_assert_str_eq(tresp_header(&r, "WWW-Authenticate", wa, sizeof wa),
                     "Bearer realm=\"mkdseg\"");
    tresp_free(&r);
    const char *basic[] = {"Authorization: Basic dXNlcjpwYXNz", NULL};
    cr_assert_eq(thttp(&srv, "GET", "/datasets", basic, NULL, 0, &r), 0);
    assert_401(&r, "Basic", "/datasets");
    cr_assert(strstr(err_msg(&r), "malformed"), "%s", r.body);
    cr_assert(strstr(tresp_header(&r, "WWW-Authenticate", wa, sizeof wa), "invalid_request"));
    tresp_free(&r);
    const char *guess = "mkd_0123456789abcdef0123456789abcdef0123456789abcdef";
    req("GET", "/datasets", guess, &r);
    assert_401(&r, "an unknown token", "/datasets");
    cr_assert_str_eq(err_msg(&r), "unknown token");
    cr_assert(strstr(tresp_header(&r, "WWW-Authenticate", wa, sizeof wa), "invalid_token"));
    cr_assert_null(strstr(r.body, guess), "the token is not repeated: %s", r.body);
    cr_assert_null(strstr(r.headers, guess), "nor in a header: %s", r.headers);
    tresp_free(&r);
    req("GET", "/datasets", tok[T_REVOKED], &r);
    cr_assert_str_eq(err_msg(&r), "this token has been revoked");
    cr_assert_null(strstr(r.body, tok[T_REVOKED]));
    tresp_free(&r);
    req("GET", "/datasets", tok[T_EXPIRED], &r);
    cr_assert_str_eq(err_msg(&r), "this token has expired");
    tresp_free(&r);
    req("POST", "/train", tok[T_SEGMENT], &r);
    cr_assert_eq(r.status, 403, "%s", r.body);
    cr_assert_str_eq(err_msg(&r), "this route needs the 'train' scope");
    cr_assert_str_eq(tresp_header(&r, "WWW-Authenticate", wa, sizeof wa),
                     "Bearer realm=\"mkdseg\", error=\"insufficient_scope\", scope=\"train\"");
    cr_assert_null(strstr(r.body, tok[T_SEGMENT]));
    tresp_free(&r);
    /* the lower-case scheme that 3D Slicer sends */
    char lower[160];
    snprintf(lower, sizeof lower, "Authorization: bearer %s", tok[T_READ]);
    const char *h[] = {lower, NULL};
    cr_assert_eq(thttp(&srv, "GET", "/datasets", h, NULL, 0, &r), 0);
    cr_assert_eq(r.status, 200, "%s", r.body);
    tresp_free(&r);
}

/* The token sent (valid, unknown, revoked, lacking a scope, in Slicer's login form) is in no
 * line of the server's log, at debug level; the access log names the token by its id; the
 * settings logged at start-up hide the database password and the PACS's token. */
Test(auth_scopes, tokens_never_reach_the_log, .init = start_secrets)
{
    tresp r;
    req("GET", "/datasets", tok[T_READ], &r);
    cr_assert_eq(r.status, 200, "%s", r.body);
    tresp_free(&r);
    req("POST", "/train", tok[T_READ], &r);
    cr_assert_eq(r.status, 403);
    tresp_free(&r);
    req("GET", "/datasets", tok[T_REVOKED], &r);
    tresp_free(&r);
    const char *guess = "mkd_ffffffffffffffffffffffffffffffffffffffffffffffff";
    req("GET", "/jobs", guess, &r);
    tresp_free(&r);
    char form[200];
    int fl = snprintf(form, sizeof form, "username=read&password=%s", tok[T_READ]);
    const char *fct[] = {"Content-Type: application/x-www-form-urlencoded", NULL};
    cr_assert_eq(thttp(&srv, "POST", "/monailabel/auth/token", fct, form, (size_t)fl, &r), 0);
    cr_assert_eq(r.status, 200, "Slicer's login: %s", r.body);
    tresp_free(&r);
    fl = snprintf(form, sizeof form, "username=read&password=%s", guess);
    cr_assert_eq(thttp(&srv, "POST", "/monailabel/auth/token", fct, form, (size_t)fl, &r), 0);
    cr_assert_eq(r.status, 401);
    tresp_free(&r);
    char *id = tdb_value(pg, "SELECT id FROM api_tokens WHERE name = 'read'");
    char want[64];
    snprintf(want, sizeof want, "\"token\":%s", id);
    free(id);
    /* the access log line of a request is written when it completes; one more request and
     * its answer make sure the earlier ones are in the file */
    req("GET", "/healthz", NULL, &r);
    tresp_free(&r);
    cr_assert(tsrv_log_contains(&srv, "\"path\":\"/monailabel/auth/token\""), "access log");
    cr_assert(tsrv_log_contains(&srv, want), "the access log names the token by id (%s)", want);
    cr_assert(tsrv_log_contains(&srv, "\"level\":\"debug\"") ||
                  tsrv_log_contains(&srv, "\"level\":\"info\""),
              "the log has lines");
    for (int t = 0; t < NTOK; t++) {
        cr_assert_not(tsrv_log_contains(&srv, tok[t]), "token %s is in the log", tok_name[t]);
        cr_assert_not(tsrv_log_contains(&srv, tok[t] + 12), "a part of token %s is in the log",
                      tok_name[t]);
    }
    cr_assert_not(tsrv_log_contains(&srv, guess + 4), "the unknown token is not in the log");
    cr_assert(tsrv_log_contains(&srv, "\"msg\":\"starting\""), "the settings are logged");
    cr_assert(tsrv_log_contains(&srv, "password=***") && tsrv_log_contains(&srv, "|***"),
              "the URL and the allow list are logged, masked");
    cr_assert_not(tsrv_log_contains(&srv, DB_PASSWORD), "nor the database password");
    cr_assert_not(tsrv_log_contains(&srv, PACS_TOKEN), "nor the PACS's token");
}

/* last_used_at is written on use, then not again within 60 s (set back in the database so
 * that no clock is waited on). */
Test(auth_scopes, last_used_at_refreshed_at_most_once_a_minute, .init = start_plain)
{
    char *before = tdb_value(pg, "SELECT coalesce(last_used_at::text, 'never') FROM api_tokens "
                                 "WHERE name = 'read'");
    cr_assert_str_eq(before, "never");
    free(before);
    tresp r;
    req("GET", "/datasets", tok[T_READ], &r);
    tresp_free(&r);
    char *used = tdb_value(pg, "SELECT last_used_at IS NOT NULL FROM api_tokens WHERE name = "
                               "'read'");
    cr_assert_str_eq(used, "t", "the first use is recorded");
    free(used);
    /* 10 s ago: within the minute, so the next use leaves it */
    char *set = tdb_value(pg, "UPDATE api_tokens SET last_used_at = now() - interval '10 s' "
                              "WHERE name = 'read' RETURNING last_used_at::text");
    req("GET", "/datasets", tok[T_READ], &r);
    tresp_free(&r);
    char *after = tdb_value(pg, "SELECT last_used_at::text FROM api_tokens WHERE name = 'read'");
    cr_assert_str_eq(after, set, "not written again within 60 s");
    free(after), free(set);
    /* 2 minutes ago: the next use writes it */
    set = tdb_value(pg, "UPDATE api_tokens SET last_used_at = now() - interval '2 min' "
                        "WHERE name = 'read' RETURNING last_used_at::text");
    req("GET", "/datasets", tok[T_READ], &r);
    tresp_free(&r);
    after = tdb_valuep(
        pg, "SELECT last_used_at > $1::timestamptz FROM api_tokens WHERE name = 'read'", 1, set);
    cr_assert_str_eq(after, "t", "written again after a minute");
    free(after), free(set);
    /* a refused token is not marked used */
    char *rev = tdb_value(pg, "SELECT coalesce(last_used_at::text, 'never') FROM api_tokens "
                              "WHERE name = 'revoked'");
    req("GET", "/datasets", tok[T_REVOKED], &r);
    tresp_free(&r);
    char *rev2 = tdb_value(pg, "SELECT coalesce(last_used_at::text, 'never') FROM api_tokens "
                               "WHERE name = 'revoked'");
    cr_assert_str_eq(rev2, rev);
    free(rev), free(rev2);
}

/* --rate-limit-token 3 per 3600 s: one request comes back every 1200 s, so the 4th in a row
 * is refused on any machine; another token and the probes are not affected. */
Test(auth_scopes, rate_limit_per_token_429_after_n)
{
    const char *extra[] = {"--rate-limit-token", "3", "--rate-limit-token-window", "3600", NULL};
    start(extra);
    tresp r;
    for (int i = 0; i < 3; i++) {
        req("GET", "/datasets", tok[T_READ], &r);
        cr_assert_eq(r.status, 200, "request %d: %s", i + 1, r.body);
        tresp_free(&r);
    }
    req("GET", "/datasets", tok[T_READ], &r);
    cr_assert_eq(r.status, 429, "the 4th request: %ld %s", r.status, r.body);
    cr_assert_str_eq(err_code(&r), "too_many_requests");
    char ra[16];
    cr_assert(tresp_header(&r, "Retry-After", ra, sizeof ra), "429 carries Retry-After");
    cr_assert(atoi(ra) >= 1 && atoi(ra) <= 1200, "Retry-After %s", ra);
    tresp_free(&r);
    req("GET", "/datasets", tok[T_TRAIN], &r);
    cr_assert_eq(r.status, 403, "another token has its own count (and no read scope): %s", r.body);
    tresp_free(&r);
    req("GET", "/datasets", tok[T_ADMIN], &r);
    cr_assert_eq(r.status, 200, "%s", r.body);
    tresp_free(&r);
    req("GET", "/healthz", NULL, &r);
    cr_assert_eq(r.status, 200, "the probes need no token and are not counted");
    tresp_free(&r);
}

/* The command line: bad scopes and expiries refused before anything is stored; list shows
 * scopes, expiry and state but no secret; revoke by id. */
Test(auth_scopes, token_command_scopes_expiry_list_revoke, .init = start_plain)
{
    const char *bin = tenv("MKDSEG_TEST_BIN");
    char t[80];
    cr_assert_eq(token_create("bad1", "--scopes read,root", t), 2, "an unknown scope");
    cr_assert_eq(token_create("bad2", "--scopes ''", t), 2, "no scope");
    cr_assert_eq(token_create("bad3", "--expires soon", t), 2, "an unreadable expiry");
    cr_assert_eq(token_create("bad4", "--expires 2001-01-01", t), 1, "an expiry in the past");
    cr_assert_eq(token_create("bad5", "--expires 2031-02-30", t), 1, "not a date");
    char *n = tdb_value(pg, "SELECT count(*) FROM api_tokens WHERE name LIKE 'bad%'");
    cr_assert_str_eq(n, "0", "nothing was stored");
    free(n);
    cr_assert_eq(token_create("dated", "--scopes segment,read --expires 2099-01-31", t), 0);
    char *e = tdb_value(pg, "SELECT array_to_string(scopes, ',') || ' ' || "
                            "to_char(expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI') "
                            "FROM api_tokens WHERE name = 'dated'");
    cr_assert_str_eq(e, "read,segment 2099-01-31 00:00", "the scopes and a UTC date");
    free(e);
    cr_assert_eq(token_create("month", "--expires 30d", t), 0);
    e = tdb_value(pg,
                  "SELECT array_to_string(scopes, ',') || ' ' || "
                  "(expires_at - now() BETWEEN interval '29 days' AND interval '30 days')::text "
                  "FROM api_tokens WHERE name = 'month'");
    cr_assert_str_eq(e, "admin true", "no --scopes: admin; 30d from now");
    free(e);
    char out[400];
    snprintf(out, sizeof out, "%s/list", srv.dir);
    cr_assert_eq(shx("'%s' token list --database-url '%s' > '%s'", bin, url, out), 0);
    char *list = tslurp(out, NULL);
    cr_assert(strstr(list, "scopes") && strstr(list, "expires") && strstr(list, "last used"), "%s",
              list);
    cr_assert(strstr(list, "read,segment") && strstr(list, "2099-01-31T00:00:00Z"), "%s", list);
    cr_assert(strstr(list, " revoked\n") && strstr(list, " expired\n") && strstr(list, " active\n"),
              "each token's state: %s", list);
    for (int k = 0; k < NTOK; k++)
        cr_assert_null(strstr(list, tok[k] + 8), "list shows no secret: %s", list);
    char *hash = tdb_value(pg, "SELECT token_sha256 FROM api_tokens WHERE name = 'read'");
    cr_assert_null(strstr(list, hash), "nor a hash");
    free(hash), free(list);
    char *id = tdb_value(pg, "SELECT id FROM api_tokens WHERE name = 'dated'");
    cr_assert_eq(shx("'%s' token revoke --id %s --database-url '%s' 2>/dev/null", bin, id, url), 0);
    cr_assert_eq(shx("'%s' token revoke --id %s --database-url '%s' 2>/dev/null", bin, id, url), 1,
                 "revoked already");
    cr_assert_eq(shx("'%s' token revoke --id x1 --database-url '%s' 2>/dev/null", bin, url), 2);
    free(id);
    tresp r;
    req("GET", "/datasets", t, &r);
    cr_assert_eq(r.status, 200, "the 30-day token works: %s", r.body);
    tresp_free(&r);
}
