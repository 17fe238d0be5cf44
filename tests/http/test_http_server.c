/* test_http_server.c: the real `mkdseg serve` on port 0 against the real PostgreSQL, through
 * libcurl. Each test starts its own server (tests run with --jobs=1). */
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <curl/curl.h>

#include "../lib/tsrv.h"
#include "auth.h"

static tsrv srv;

static void start_default(void)
{
    cr_assert_eq(tsrv_start(&srv, NULL, NULL), 0, "server did not start");
}
static void stop_checked(void)
{
    int rc = tsrv_stop(&srv);
    cr_expect_eq(rc, 0, "the server must exit 0 on SIGTERM (got %d)", rc);
}

static const char *err_code(const tresp *r)
{
    return json_string_value(json_object_get(json_object_get(r->json, "error"), "code"));
}
static const char *err_field(const tresp *r)
{
    return json_string_value(json_object_get(json_object_get(r->json, "error"), "field"));
}

static void assert_error_shape(const tresp *r)
{
    cr_assert(json_is_object(r->json), "error body is not JSON: %s", r->body);
    json_t *e = json_object_get(r->json, "error");
    cr_assert(json_is_object(e), "no error object: %s", r->body);
    cr_assert(json_is_string(json_object_get(e, "code")), "%s", r->body);
    cr_assert(json_is_string(json_object_get(e, "message")), "%s", r->body);
}

static const char *const json_ct[] = {"Content-Type: application/json", NULL};

TestSuite(http, .init = start_default, .fini = stop_checked, .timeout = 60);

Test(http, healthz_readyz_version)
{
    tresp r;
    cr_assert_eq(thttp(&srv, "GET", "/healthz", NULL, NULL, 0, &r), 0);
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(json_string_value(json_object_get(r.json, "status")), "ok");
    char ct[128];
    cr_assert_str_eq(tresp_header(&r, "Content-Type", ct, sizeof ct), "application/json");
    tresp_free(&r);

    cr_assert_eq(thttp(&srv, "GET", "/readyz", NULL, NULL, 0, &r), 0);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_str_eq(json_string_value(json_object_get(r.json, "database")), "ok");
    tresp_free(&r);

    cr_assert_eq(thttp(&srv, "GET", "/version", NULL, NULL, 0, &r), 0);
    cr_assert_eq(r.status, 200);
    cr_assert(json_is_string(json_object_get(r.json, "version")));
    json_t *b = json_object_get(r.json, "backends");
    cr_assert(json_is_array(b) && json_array_size(b) >= 1);
    cr_assert_str_eq(json_string_value(json_array_get(b, 0)), "cpu");
    tresp_free(&r);

    cr_assert_eq(thttp(&srv, "HEAD", "/healthz", NULL, NULL, 0, &r), 0);
    cr_assert_eq(r.status, 200);
    cr_assert_eq(r.len, 0, "HEAD has no body");
    tresp_free(&r);
    cr_assert(tsrv_log_contains(&srv, "\"msg\":\"listening\""));
}

/* The value of one sample line of /metrics, or -1 when absent. */
static long metric(const char *text, const char *series)
{
    const char *p = text;
    size_t n = strlen(series);
    while ((p = strstr(p, series))) {
        if ((p == text || p[-1] == '\n') && p[n] == ' ')
            return atol(p + n + 1);
        p += n;
    }
    return -1;
}

Test(http, metrics_count_requests)
{
    tresp r;
    const char *series =
        "mkdseg_http_requests_total{method=\"GET\",route=\"/version\",status=\"200\"}";
    cr_assert_eq(thttp(&srv, "GET", "/metrics", NULL, NULL, 0, &r), 0);
    cr_assert_eq(r.status, 200);
    char ct[128];
    cr_assert(strstr(tresp_header(&r, "Content-Type", ct, sizeof ct), "text/plain"));
    long before = metric(r.body, series);
    cr_assert_eq(before, -1, "no /version request yet");
    cr_assert(strstr(r.body, "# TYPE mkdseg_http_request_duration_seconds histogram"));
    cr_assert_eq(metric(r.body, "mkdseg_jobs{state=\"queued\"}") >= 0, 1, "jobs by state: %s",
                 r.body);
    cr_assert_eq(metric(r.body, "mkdseg_db_up"), 1);
    cr_assert_geq(metric(r.body, "mkdseg_http_requests_in_flight"), 1,
                  "the /metrics request itself");
    tresp_free(&r);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(thttp(&srv, "GET", "/version", NULL, NULL, 0, &r), 0);
        tresp_free(&r);
    }
    cr_assert_eq(thttp(&srv, "GET", "/nope", NULL, NULL, 0, &r), 0);
    tresp_free(&r);
    cr_assert_eq(thttp(&srv, "GET", "/metrics", NULL, NULL, 0, &r), 0);
    cr_assert_eq(metric(r.body, series), 3, "%s", r.body);
    cr_assert_eq(
        metric(r.body,
               "mkdseg_http_requests_total{method=\"\",route=\"unmatched\",status=\"404\"}"),
        1);
    cr_assert_eq(
        metric(r.body,
               "mkdseg_http_request_duration_seconds_count{method=\"GET\",route=\"/version\"}"),
        3);
    cr_assert_eq(metric(r.body, "mkdseg_http_request_duration_seconds_bucket{method=\"GET\",route="
                                "\"/version\",le=\"+Inf\"}"),
                 3);
    tresp_free(&r);
}

Test(http, unknown_route_404_json)
{
    tresp r;
    cr_assert_eq(thttp(&srv, "GET", "/no/such/thing", NULL, NULL, 0, &r), 0);
    cr_assert_eq(r.status, 404);
    assert_error_shape(&r);
    cr_assert_str_eq(err_code(&r), "not_found");
    tresp_free(&r);
    cr_assert_eq(thttp(&srv, "GET", "/datasets/999999", NULL, NULL, 0, &r), 0);
    cr_assert_eq(r.status, 404, "unknown dataset: %s", r.body);
    assert_error_shape(&r);
    tresp_free(&r);
    cr_assert_eq(thttp(&srv, "GET", "/datasets/abc", NULL, NULL, 0, &r), 0);
    cr_assert_eq(r.status, 404);
    tresp_free(&r);
}

Test(http, wrong_method_405_with_allow)
{
    tresp r;
    char allow[128];
    cr_assert_eq(thttp(&srv, "DELETE", "/healthz", NULL, NULL, 0, &r), 0);
    cr_assert_eq(r.status, 405);
    assert_error_shape(&r);
    cr_assert_str_eq(err_code(&r), "method_not_allowed");
    cr_assert_str_eq(tresp_header(&r, "Allow", allow, sizeof allow), "GET, HEAD, OPTIONS");
    tresp_free(&r);
    cr_assert_eq(thttp(&srv, "PUT", "/datasets", json_ct, "{}", 2, &r), 0);
    cr_assert_eq(r.status, 405);
    cr_assert_str_eq(tresp_header(&r, "Allow", allow, sizeof allow), "POST, GET, HEAD, OPTIONS");
    tresp_free(&r);
}

Test(http, body_too_large_413)
{
    tsrv_stop(&srv);
    const char *args[] = {"--max-json", "1K", NULL};
    cr_assert_eq(tsrv_start(&srv, NULL, args), 0);
    size_t n = 4096;
    char *big = malloc(n + 1);
    memset(big, ' ', n);
    big[0] = '{';
    big[n - 1] = '}';
    big[n] = 0;
    tresp r;
    /* announced by Content-Length */
    cr_assert_eq(thttp(&srv, "POST", "/datasets", json_ct, big, n, &r), 0);
    cr_assert_eq(r.status, 413, "%s", r.body);
    assert_error_shape(&r);
    cr_assert_str_eq(err_code(&r), "payload_too_large");
    tresp_free(&r);
    /* chunked: found while streaming */
    const char *chunked[] = {"Content-Type: application/json", "Transfer-Encoding: chunked", NULL};
    cr_assert_eq(thttp(&srv, "POST", "/datasets", chunked, big, n, &r), 0);
    cr_assert_eq(r.status, 413, "%s", r.body);
    assert_error_shape(&r);
    tresp_free(&r);
    /* just under the limit is accepted (and then validated) */
    cr_assert_eq(thttp(&srv, "POST", "/datasets", json_ct, big, 1000, &r), 0);
    cr_assert_neq(r.status, 413);
    tresp_free(&r);
    free(big);
}

Test(http, malformed_json_400_and_validation)
{
    tresp r;
    const char *bad = "{\"name\": \"x\", ";
    cr_assert_eq(thttp(&srv, "POST", "/datasets", json_ct, bad, strlen(bad), &r), 0);
    cr_assert_eq(r.status, 400);
    assert_error_shape(&r);
    cr_assert_str_eq(err_code(&r), "malformed_json");
    tresp_free(&r);

    const char *form[] = {"Content-Type: application/x-www-form-urlencoded", NULL};
    cr_assert_eq(thttp(&srv, "POST", "/datasets", form, "a=b", 3, &r), 0);
    cr_assert_eq(r.status, 415);
    assert_error_shape(&r);
    tresp_free(&r);

    const char *missing = "{\"modality\": \"ct\"}";
    cr_assert_eq(thttp(&srv, "POST", "/datasets", json_ct, missing, strlen(missing), &r), 0);
    cr_assert_eq(r.status, 400);
    cr_assert_str_eq(err_code(&r), "missing_field");
    cr_assert_str_eq(err_field(&r), "name");
    tresp_free(&r);

    const char *badmod = "{\"name\": \"x\", \"modality\": \"pet\"}";
    cr_assert_eq(thttp(&srv, "POST", "/datasets", json_ct, badmod, strlen(badmod), &r), 0);
    cr_assert_eq(r.status, 422);
    cr_assert_str_eq(err_field(&r), "modality");
    tresp_free(&r);

    cr_assert_eq(thttp(&srv, "POST", "/datasets", json_ct, "[1]", 3, &r), 0);
    cr_assert_eq(r.status, 400);
    tresp_free(&r);
}

Test(http, create_and_read_dataset)
{
    char name[64], body[256], loc[128], path[160];
    snprintf(name, sizeof name, "ds-%d-%ld", (int)getpid(), (long)time(NULL));
    snprintf(body, sizeof body, "{\"name\":\"%s\",\"modality\":\"mr\",\"description\":\"d\"}",
             name);
    tresp r;
    cr_assert_eq(thttp(&srv, "POST", "/datasets", json_ct, body, strlen(body), &r), 0);
    cr_assert_eq(r.status, 201, "%s", r.body);
    json_int_t id = json_integer_value(json_object_get(r.json, "id"));
    cr_assert_gt(id, 0);
    cr_assert_str_eq(json_string_value(json_object_get(r.json, "modality")), "mr");
    snprintf(path, sizeof path, "/datasets/%lld", (long long)id);
    cr_assert_str_eq(tresp_header(&r, "Location", loc, sizeof loc), path);
    tresp_free(&r);
    cr_assert_eq(thttp(&srv, "GET", path, NULL, NULL, 0, &r), 0);
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(json_string_value(json_object_get(r.json, "name")), name);
    cr_assert(json_is_array(json_object_get(r.json, "volumes")));
    tresp_free(&r);
    cr_assert_eq(thttp(&srv, "POST", "/datasets", json_ct, body, strlen(body), &r), 0);
    cr_assert_eq(r.status, 409, "duplicate name");
    tresp_free(&r);
    cr_assert_eq(thttp(&srv, "GET", "/datasets", NULL, NULL, 0, &r), 0);
    cr_assert_eq(r.status, 200);
    cr_assert(strstr(r.body, name));
    tresp_free(&r);
}

Test(http, cors_preflight_and_headers)
{
    tresp r;
    const char *h[] = {"Origin: http://dashboard.example", "Access-Control-Request-Method: POST",
                       "Access-Control-Request-Headers: content-type", NULL};
    char v[256];
    cr_assert_eq(thttp(&srv, "OPTIONS", "/datasets", h, NULL, 0, &r), 0);
    cr_assert_eq(r.status, 204);
    cr_assert_str_eq(tresp_header(&r, "Access-Control-Allow-Origin", v, sizeof v), "*");
    cr_assert(strstr(tresp_header(&r, "Access-Control-Allow-Methods", v, sizeof v), "POST"));
    cr_assert_str_eq(tresp_header(&r, "Access-Control-Allow-Headers", v, sizeof v), "content-type");
    tresp_free(&r);
    const char *o[] = {"Origin: http://dashboard.example", NULL};
    cr_assert_eq(thttp(&srv, "GET", "/healthz", o, NULL, 0, &r), 0);
    cr_assert_str_eq(tresp_header(&r, "Access-Control-Allow-Origin", v, sizeof v), "*");
    cr_assert(
        strstr(tresp_header(&r, "Access-Control-Expose-Headers", v, sizeof v), "X-Request-Id"));
    tresp_free(&r);
    cr_assert_eq(thttp(&srv, "OPTIONS", "/nope", h, NULL, 0, &r), 0);
    cr_assert_eq(r.status, 404);
    tresp_free(&r);
}

Test(http, request_id_echo_and_logged)
{
    tresp r;
    char v[128];
    const char *h[] = {"X-Request-Id: test-req-42", NULL};
    cr_assert_eq(thttp(&srv, "GET", "/healthz", h, NULL, 0, &r), 0);
    cr_assert_str_eq(tresp_header(&r, "X-Request-Id", v, sizeof v), "test-req-42");
    tresp_free(&r);
    const char *bad[] = {"X-Request-Id: has spaces in it", NULL};
    cr_assert_eq(thttp(&srv, "GET", "/healthz", bad, NULL, 0, &r), 0);
    cr_assert(tresp_header(&r, "X-Request-Id", v, sizeof v));
    cr_assert_str_neq(v, "has spaces in it");
    cr_assert_geq(strlen(v), 16, "a generated id");
    char gen[128];
    snprintf(gen, sizeof gen, "\"req\":\"%s\"", v);
    tresp_free(&r);
    cr_assert_eq(thttp(&srv, "GET", "/healthz", NULL, NULL, 0, &r), 0);
    char v2[128];
    cr_assert(tresp_header(&r, "X-Request-Id", v2, sizeof v2));
    cr_assert_str_neq(v, v2, "ids differ per request");
    tresp_free(&r);
    /* the access log line is written at completion, just after the response */
    for (int i = 0; i < 3000 && !tsrv_log_contains(&srv, gen); i++)
        usleep(20000);
    cr_assert(tsrv_log_contains(&srv, "\"req\":\"test-req-42\""));
    cr_assert(tsrv_log_contains(&srv, gen));
}

static int wait_status(const char *path, long want, int max_ms)
{
    for (int waited = 0; waited <= max_ms; waited += 100) {
        tresp r;
        int ok = thttp(&srv, "GET", path, NULL, NULL, 0, &r) == 0 && r.status == want;
        tresp_free(&r);
        if (ok)
            return 1;
        usleep(100000);
    }
    return 0;
}

static void pg_ctl(const char *what)
{
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "'%s' %s >/dev/null 2>&1", tenv("MKDSEG_TEST_PG"), what);
    cr_assert_eq(system(cmd), 0, "%s failed", cmd);
}

static void restart_pg_after(void)
{
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "'%s' start >/dev/null 2>&1", getenv("MKDSEG_TEST_PG"));
    if (getenv("MKDSEG_TEST_PG") && system(cmd) != 0)
        fprintf(stderr, "could not restart PostgreSQL\n");
    stop_checked();
}

Test(http_db, database_down_readyz_503_then_recovers, .init = start_default,
     .fini = restart_pg_after, .timeout = 400)
{
    tresp r;
    cr_assert(wait_status("/readyz", 200, 120000), "ready at first");
    /* a pooled connection exists now; kill the database under it */
    pg_ctl("stop");
    cr_assert_eq(thttp(&srv, "GET", "/readyz", NULL, NULL, 0, &r), 0);
    cr_assert_eq(r.status, 503, "%s", r.body);
    assert_error_shape(&r);
    cr_assert_str_eq(err_code(&r), "database_unavailable");
    char ra[32];
    cr_assert(tresp_header(&r, "Retry-After", ra, sizeof ra), "503 carries Retry-After");
    tresp_free(&r);
    /* the process stays alive and healthy */
    cr_assert_eq(thttp(&srv, "GET", "/healthz", NULL, NULL, 0, &r), 0);
    cr_assert_eq(r.status, 200);
    tresp_free(&r);
    /* a database-backed route answers 503 too */
    cr_assert_eq(thttp(&srv, "GET", "/datasets", NULL, NULL, 0, &r), 0);
    cr_assert_eq(r.status, 503, "%s", r.body);
    tresp_free(&r);
    pg_ctl("start");
    cr_assert(wait_status("/readyz", 200, 120000), "/readyz back to 200 without a restart");
    cr_assert(wait_status("/datasets", 200, 120000));
}

/* A request body sent 4 bytes at a time that stops halfway (sets *half) until *go is set, so
 * the test can signal the server while the request is certainly in flight. */
typedef struct {
    const char *body;
    size_t off, len;
    int *half, *go;
} slow_src;

static size_t slow_read(char *buf, size_t size, size_t nmemb, void *ud)
{
    slow_src *s = ud;
    if (s->off >= s->len)
        return 0;
    if (s->off >= s->len / 2) {
        __atomic_store_n(s->half, 1, __ATOMIC_SEQ_CST);
        for (int i = 0; i < 6000 && !__atomic_load_n(s->go, __ATOMIC_SEQ_CST); i++)
            usleep(10000);
    }
    size_t k = 4 < size * nmemb ? 4 : size * nmemb;
    if (k > s->len - s->off)
        k = s->len - s->off;
    memcpy(buf, s->body + s->off, k);
    s->off += k;
    return k;
}

typedef struct {
    const tsrv *s;
    long status;
    char body[256];
    int half, go;
} slow_req;

static void *slow_post(void *arg)
{
    slow_req *q = arg;
    char url[128];
    snprintf(url, sizeof url, "%s/datasets", q->s->base);
    snprintf(q->body, sizeof q->body, "{\"name\":\"slow-%d-%ld\",\"modality\":\"ct\"}",
             (int)getpid(), (long)time(NULL));
    slow_src src = {q->body, 0, strlen(q->body), &q->half, &q->go};
    CURL *c = curl_easy_init();
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    h = curl_slist_append(h, "Transfer-Encoding: chunked");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_READFUNCTION, slow_read);
    curl_easy_setopt(c, CURLOPT_READDATA, &src);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 120L);
    FILE *devnull = fopen("/dev/null", "w");
    curl_easy_setopt(c, CURLOPT_WRITEDATA, devnull);
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &q->status);
    fclose(devnull);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return NULL;
}

/* SIGTERM arrives while half a request body is in: the server logs that it is shutting down
 * with one request in flight, and that request still completes. Each step waits on an event
 * (the body's halfway point, the log line); the limits only catch hangs. */
Test(http_shutdown, sigterm_lets_in_flight_requests_finish, .timeout = 120)
{
    cr_assert_eq(tsrv_start(&srv, NULL, NULL), 0);
    slow_req q = {&srv, 0, "", 0, 0};
    pthread_t t;
    pthread_create(&t, NULL, slow_post, &q);
    for (int i = 0; i < 6000 && !__atomic_load_n(&q.half, __ATOMIC_SEQ_CST); i++)
        usleep(10000);
    cr_assert(__atomic_load_n(&q.half, __ATOMIC_SEQ_CST), "half the body was sent");
    kill(srv.pid, SIGTERM);
    int logged = 0;
    for (int i = 0; i < 6000 && !(logged = tsrv_log_contains(&srv, "\"in_flight\":1")); i++)
        usleep(10000);
    cr_assert(logged && tsrv_log_contains(&srv, "shutting down"),
              "shutdown began with the request in flight");
    __atomic_store_n(&q.go, 1, __ATOMIC_SEQ_CST);
    pthread_join(t, NULL);
    cr_assert_eq(q.status, 201, "the in-flight request completed (status %ld)", q.status);
    int rc = tsrv_stop(&srv);
    cr_assert_eq(rc, 0, "exit status %d", rc);
    /* nothing listens any more */
    tresp r;
    cr_assert_eq(thttp(&srv, "GET", "/healthz", NULL, NULL, 0, &r), -1);
    tresp_free(&r);
}

static void auth_start(void)
{
    const char *args[] = {"--auth", "on", NULL};
    cr_assert_eq(tsrv_start(&srv, NULL, args), 0);
}

Test(http_auth, requests_need_a_token_with_the_scope, .init = auth_start, .fini = stop_checked)
{
    char token[64], hex[65], name[128];
    snprintf(token, sizeof token, "tok-%d-%ld", (int)getpid(), (long)time(NULL));
    auth_hash_token(token, hex);
    PGconn *pg = PQconnectdb(tenv("MKDSEG_TEST_DATABASE_URL"));
    cr_assert_eq(PQstatus(pg), CONNECTION_OK);
    const char *tv[2] = {token, hex};
    PGresult *res = PQexecParams(
        pg, "INSERT INTO api_tokens (name, token_sha256, scopes) VALUES ($1, $2, '{train}')", 2,
        NULL, tv, NULL, NULL, 0);
    cr_assert_eq(PQresultStatus(res), PGRES_COMMAND_OK, "%s", PQerrorMessage(pg));
    PQclear(res);
    PQfinish(pg);

    snprintf(name, sizeof name, "auth-%s", token);
    char body[200];
    snprintf(body, sizeof body, "{\"name\":\"%s\",\"modality\":\"ct\"}", name);
    tresp r;
    cr_assert_eq(thttp(&srv, "POST", "/datasets", json_ct, body, strlen(body), &r), 0);
    cr_assert_eq(r.status, 401);
    assert_error_shape(&r);
    cr_assert_str_eq(err_code(&r), "unauthorized");
    tresp_free(&r);
    const char *bad[] = {"Content-Type: application/json", "Authorization: Bearer wrong", NULL};
    cr_assert_eq(thttp(&srv, "POST", "/datasets", bad, body, strlen(body), &r), 0);
    cr_assert_eq(r.status, 401);
    cr_assert(strstr(r.body, "unknown token"));
    tresp_free(&r);
    char authz[128];
    snprintf(authz, sizeof authz, "Authorization: Bearer %s", token);
    const char *good[] = {"Content-Type: application/json", authz, NULL};
    cr_assert_eq(thttp(&srv, "POST", "/datasets", good, body, strlen(body), &r), 0);
    cr_assert_eq(r.status, 201, "%s", r.body);
    tresp_free(&r);
    /* reading needs a token too, with the read scope (this one has train only) */
    cr_assert_eq(thttp(&srv, "GET", "/datasets", NULL, NULL, 0, &r), 0);
    cr_assert_eq(r.status, 401);
    tresp_free(&r);
    const char *reader[] = {authz, NULL};
    cr_assert_eq(thttp(&srv, "GET", "/datasets", reader, NULL, 0, &r), 0);
    cr_assert_eq(r.status, 403, "%s", r.body);
    cr_assert_str_eq(err_code(&r), "forbidden");
    tresp_free(&r);
}

Test(http_limits, rate_limit_429_with_retry_after_probes_exempt, .fini = stop_checked)
{
    const char *args[] = {"--rate-limit", "2", NULL};
    cr_assert_eq(tsrv_start(&srv, NULL, args), 0);
    int limited = 0, ok = 0;
    char ra[16];
    for (int i = 0; i < 12; i++) {
        tresp r;
        cr_assert_eq(thttp(&srv, "GET", "/version", NULL, NULL, 0, &r), 0);
        if (r.status == 429) {
            limited++;
            assert_error_shape(&r);
            cr_assert_str_eq(err_code(&r), "too_many_requests");
            cr_assert(tresp_header(&r, "Retry-After", ra, sizeof ra), "429 carries Retry-After");
            cr_assert_geq(atoi(ra), 1);
        } else {
            cr_assert_eq(r.status, 200);
            ok++;
        }
        tresp_free(&r);
    }
    cr_assert_geq(ok, 4, "the burst (2 x rate) goes through");
    cr_assert_geq(limited, 1, "then requests are refused");
    for (int i = 0; i < 12; i++) {
        tresp r;
        cr_assert_eq(thttp(&srv, "GET", "/healthz", NULL, NULL, 0, &r), 0);
        cr_assert_eq(r.status, 200, "probes are never rate limited");
        tresp_free(&r);
    }
}

Test(http_limits, buffered_body_limit_on_any_route_and_thread_pool_mode, .fini = stop_checked)
{
    const char *args[] = {"--http-threads", "2", "--max-json", "2K", NULL};
    cr_assert_eq(tsrv_start(&srv, NULL, args), 0);
    cr_assert(tsrv_log_contains(&srv, "\"threads\":\"pool\""));
    char big[4096];
    memset(big, 'x', sizeof big);
    tresp r;
    const char *ct[] = {"Content-Type: text/plain", NULL};
    cr_assert_eq(thttp(&srv, "GET", "/healthz", ct, big, sizeof big, &r), 0);
    cr_assert_eq(r.status, 413, "a body held in memory is bounded by max-json on every route");
    tresp_free(&r);
    cr_assert_eq(thttp(&srv, "GET", "/readyz", NULL, NULL, 0, &r), 0);
    cr_assert_eq(r.status, 200, "%s", r.body);
    tresp_free(&r);
}

static void run_ok(const char *const *argv)
{
    pid_t pid = fork();
    if (pid == 0) {
        int nul = open("/dev/null", O_WRONLY);
        dup2(nul, 1);
        dup2(nul, 2);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s %s failed", argv[0], argv[1]);
}

static PGconn *scratch;
static char scratch_name[64];
static void drop_scratch(void)
{
    tsrv_stop(&srv);
    tdb_drop(scratch, scratch_name);
    scratch = NULL;
}

Test(http_ready, readyz_503_until_migrations_are_applied, .fini = drop_scratch)
{
    char url[1024];
    scratch = tdb_create(scratch_name);
    tdb_url(scratch_name, url);
    const char *args[] = {"--migrate", "off", "--workers", "0", NULL};
    cr_assert_eq(tsrv_start(&srv, url, args), 0);
    tresp r;
    cr_assert_eq(thttp(&srv, "GET", "/readyz", NULL, NULL, 0, &r), 0);
    cr_assert_eq(r.status, 503, "%s", r.body);
    cr_assert_str_eq(err_code(&r), "migrations_pending");
    tresp_free(&r);
    const char *mig[] = {tenv("MKDSEG_TEST_BIN"), "migrate", "--database-url", url, NULL};
    run_ok(mig);
    cr_assert(wait_status("/readyz", 200, 120000), "ready once migrated, without a restart");
}

Test(http_ready, starts_without_its_database_and_migrates_when_it_appears, .fini = drop_scratch,
     .timeout = 300)
{
    /* the database does not exist yet: the server starts anyway and retries */
    char url[1024], sql[200];
    snprintf(scratch_name, sizeof scratch_name, "mkdseg_t_late_%d", (int)getpid());
    tdb_url(scratch_name, url);
    cr_assert_eq(tsrv_start(&srv, url, NULL), 0);
    tresp r;
    cr_assert_eq(thttp(&srv, "GET", "/readyz", NULL, NULL, 0, &r), 0);
    cr_assert_eq(r.status, 503, "%s", r.body);
    cr_assert_str_eq(err_code(&r), "database_unavailable");
    tresp_free(&r);
    PGconn *admin = PQconnectdb(tenv("MKDSEG_TEST_DATABASE_URL"));
    /* DDL takes no parameters: the (generated) name is quoted as an identifier */
    char *ident = PQescapeIdentifier(admin, scratch_name, strlen(scratch_name));
    snprintf(sql, sizeof sql, "CREATE DATABASE %s", ident);
    PQfreemem(ident);
    PGresult *res = PQexec(admin, sql);
    cr_assert_eq(PQresultStatus(res), PGRES_COMMAND_OK, "%s", PQerrorMessage(admin));
    PQclear(res);
    PQfinish(admin);
    cr_assert(wait_status("/readyz", 200, 120000), "migrated by the start-up retry loop");
}

Test(http_cli, serve_help_lists_every_setting)
{
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "'%s' serve --help", tenv("MKDSEG_TEST_BIN"));
    FILE *p = popen(cmd, "r");
    cr_assert(p);
    char buf[16384];
    size_t n = fread(buf, 1, sizeof buf - 1, p);
    buf[n] = 0;
    cr_assert_eq(pclose(p), 0, "--help exits 0");
    const char *want[] = {"MKDSEG_HOST",
                          "MKDSEG_PORT",
                          "DATABASE_URL",
                          "MKDSEG_DATA_DIR",
                          "MKDSEG_MAX_BODY",
                          "MKDSEG_MAX_CONNECTIONS",
                          "MKDSEG_PER_IP_CONNECTIONS",
                          "MKDSEG_CONNECTION_TIMEOUT",
                          "MKDSEG_HTTP_THREADS",
                          "MKDSEG_WORKERS",
                          "MKDSEG_QUEUE_SIZE",
                          "MKDSEG_LOG_LEVEL",
                          "MKDSEG_CORS_ORIGIN",
                          "MKDSEG_AUTH",
                          "default: 8080",
                          "default: 127.0.0.1"};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        cr_assert(strstr(buf, want[i]), "--help lacks %s", want[i]);
}
