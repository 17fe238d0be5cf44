/* http.c: routing, request context, responses and the libmicrohttpd glue (see http.h). */
#include "http.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <unistd.h>

#include "auth.h"
#include "http_deadline.h"
#include "http_path.h"
#include "http_slow.h"
#include "http_ratelimit.h"
#include "log.h"
#include "prom.h"
#include "redact.h"
#include "upload.h"

/* ------------------------------------------------------------------------------------------ */
/* routing */

/* Compares one path against a pattern; captures {x} segments. 1 on match. */
static int match_pattern(const char *pattern, const char *path, char params[][HTTP_PARAM_MAX],
                         int *nparams)
{
    const char *p = pattern, *s = path;
    int np = 0;
    if (*p != '/' || *s != '/')
        return 0;
    while (*p && *s) {
        if (*p != '/' || *s != '/')
            return 0;
        p++, s++;
        const char *pe = strchr(p, '/'), *se = strchr(s, '/');
        size_t pl = pe ? (size_t)(pe - p) : strlen(p), sl = se ? (size_t)(se - s) : strlen(s);
        if (pl >= 2 && p[0] == '{' && p[pl - 1] == '}') {
            if (sl == 0 || sl >= HTTP_PARAM_MAX || np >= HTTP_MAX_PARAMS)
                return 0;
            if (params) {
                memcpy(params[np], s, sl);
                params[np][sl] = 0;
            }
            np++;
        } else if (pl != sl || strncmp(p, s, pl)) {
            return 0;
        }
        p += pl, s += sl;
    }
    if (*p || *s)
        return 0;
    if (nparams)
        *nparams = np;
    return 1;
}

http_match_result http_match(const http_route *routes, int n, const char *method, const char *path,
                             int *idx, char params[][HTTP_PARAM_MAX], int *nparams, char *allow,
                             size_t allowlen)
{
    int path_found = 0, has_get = 0;
    const char *want = strcmp(method, "HEAD") ? method : "GET";
    if (allow && allowlen)
        allow[0] = 0;
    for (int i = 0; i < n; i++) {
        if (!match_pattern(routes[i].pattern, path, NULL, NULL))
            continue;
        path_found = 1;
        if (!strcmp(routes[i].method, want)) {
            match_pattern(routes[i].pattern, path, params, nparams);
            *idx = i;
            return HTTP_MATCH_OK;
        }
    }
    if (!path_found)
        return HTTP_MATCH_NO_PATH;
    if (allow && allowlen) {
        size_t off = 0;
        for (int i = 0; i < n; i++) {
            if (!match_pattern(routes[i].pattern, path, NULL, NULL))
                continue;
            off += (size_t)snprintf(allow + off, off < allowlen ? allowlen - off : 0, "%s%s",
                                    off ? ", " : "", routes[i].method);
            if (!strcmp(routes[i].method, "GET"))
                has_get = 1;
        }
        if (has_get)
            off += (size_t)snprintf(allow + off, off < allowlen ? allowlen - off : 0, ", HEAD");
        snprintf(allow + (off < allowlen ? off : allowlen - 1), off < allowlen ? allowlen - off : 1,
                 "%sOPTIONS", off ? ", " : "");
    }
    return HTTP_MATCH_NO_METHOD;
}

/* Whether path is base or lies below it (base + "/..."). */
static int under(const char *path, const char *base)
{
    size_t n = strlen(base);
    return !strncmp(path, base, n) && (path[n] == 0 || path[n] == '/');
}

char *http_mount_map(const char *path, const char *canonical, const char *prefix)
{
    if (!prefix || !*prefix || !strcmp(canonical, prefix) ||
        (!under(path, prefix) && !under(path, canonical)))
        return strdup(path);
    if (!under(path, prefix))
        return strdup(""); /* the default prefix while another one is configured */
    const char *rest = path + strlen(prefix);
    size_t n = strlen(canonical) + strlen(rest) + 1;
    char *out = malloc(n);
    if (out)
        snprintf(out, n, "%s%s", canonical, rest);
    return out;
}

int http_request_id_ok(const char *id)
{
    size_t n = id ? strlen(id) : 0;
    if (n < 1 || n > 64)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!(isalnum((unsigned char)id[i]) || strchr("._:-", id[i])))
            return 0;
    return 1;
}

json_t *http_error_body(const char *code, const char *message, const char *field)
{
    json_t *e = json_pack("{s:s,s:s}", "code", code, "message", message);
    if (field)
        json_object_set_new(e, "field", json_string(field));
    return json_pack("{s:o}", "error", e);
}

/* ------------------------------------------------------------------------------------------ */
/* answering */

static void set_response(http_req *r, int status, struct MHD_Response *resp, const char *ctype)
{
    if (r->resp)
        MHD_destroy_response(r->resp);
    r->resp = resp;
    r->status = status;
    if (resp && ctype)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
}

void http_reply_data(http_req *r, int status, const char *content_type, const void *data,
                     size_t len)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, (void *)data, MHD_RESPMEM_MUST_COPY);
    set_response(r, status, resp, content_type);
}

void http_reply_json(http_req *r, int status, json_t *body)
{
    /* 15 significant digits: a setting stored from a float (lr 0.003) reads 0.003, not
     * jansson's default 17-digit 0.0030000000000000001; Dice and timings lose nothing */
    char *s = body ? json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(15))
                   : NULL;
    json_decref(body);
    if (!s) {
        static const char oom[] =
            "{\"error\":{\"code\":\"internal\",\"message\":\"out of memory\"}}";
        http_reply_data(r, 500, "application/json", oom, sizeof oom - 1);
        return;
    }
    size_t n = strlen(s);
    s[n] = '\n'; /* a trailing newline is friendlier to curl users; replaces the NUL */
    struct MHD_Response *resp = MHD_create_response_from_buffer(n + 1, s, MHD_RESPMEM_MUST_FREE);
    set_response(r, status, resp, "application/json");
}

void http_error(http_req *r, int status, const char *code, const char *field, const char *fmt, ...)
{
    char msg[1024], shown[1024], fld[128];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* client bytes quoted in a message (a path, a file name) may not be UTF-8: JSON needs it */
    redact_utf8(msg);
    snprintf(fld, sizeof fld, "%s", field ? field : "");
    redact_utf8(fld);
    /* 500 is a bug; 503 (database away, shutting down, queue full) is an expected state */
    if (status >= 500)
        log_json(status == 503 ? LOG_WARN : LOG_ERROR, r->id, msg,
                 json_pack("{s:i,s:s}", "status", status, "code", code));
    /* the client never reads a server path (the log keeps it) */
    memcpy(shown, msg, sizeof shown);
    upload_redact(r, shown, sizeof shown);
    redact_server_paths(shown, sizeof shown, r->app ? r->app->cfg.data_dir : NULL);
    redact_utf8(shown); /* the client's file names just put in */
    if (strcmp(shown, msg) && status < 500)
        log_json(LOG_INFO, r->id, msg,
                 json_pack("{s:i,s:s,s:s}", "status", status, "code", code, "answered", shown));
    json_t *body = http_error_body(code, shown, field ? fld : NULL);
    if (body && ((r->route && (r->route->flags & HTTP_DETAIL)) ||
                 (r->mpath && under(r->mpath, HTTP_MOUNT_MONAILABEL))))
        json_object_set_new(body, "detail", json_string(shown));
    http_reply_json(r, status, body);
}

void http_header(http_req *r, const char *name, const char *value)
{
    if (r->resp)
        MHD_add_response_header(r->resp, name, value);
}

const char *http_get_header(http_req *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

const char *http_query(http_req *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
}

int http_param_id(http_req *r, int i, long long *out)
{
    if (i < 0 || i >= r->nparams)
        return -1;
    const char *s = r->params[i];
    if (!*s || strlen(s) > 18)
        return -1;
    long long v = 0;
    for (; *s; s++) {
        if (!isdigit((unsigned char)*s))
            return -1;
        v = v * 10 + (*s - '0');
    }
    if (v <= 0)
        return -1;
    *out = v;
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* request context */

static void new_request_id(char out[65])
{
    unsigned char b[12];
    if (getrandom(b, sizeof b, 0) != (ssize_t)sizeof b) {
        static atomic_ulong ctr;
        unsigned long c = atomic_fetch_add(&ctr, 1) ^ (unsigned long)time(NULL);
        memcpy(b, &c, sizeof c);
        memset(b + sizeof c, 0, sizeof b - sizeof c);
    }
    for (size_t i = 0; i < sizeof b; i++)
        snprintf(out + 2 * i, 3, "%02x", b[i]);
}

static double since(const struct timespec *t0)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - t0->tv_sec) + (double)(t.tv_nsec - t0->tv_nsec) / 1e9;
}

static void req_free(http_req *r)
{
    if (r->user_free)
        r->user_free(r);
    if (r->resp)
        MHD_destroy_response(r->resp);
    json_decref(r->json);
    free(r->body);
    free(r->mpath);
    free(r->path);
    free(r);
}

static int content_type_is_json(const char *ct)
{
    if (!ct)
        return 0;
    while (*ct == ' ')
        ct++;
    size_t n = strlen("application/json");
    return !strncasecmp(ct, "application/json", n) && (ct[n] == 0 || ct[n] == ';' || ct[n] == ' ');
}

static void add_cors(http_req *r, struct MHD_Response *resp)
{
    const char *origin = r->app->cfg.cors_origin;
    if (!*origin)
        return;
    MHD_add_response_header(resp, "Access-Control-Allow-Origin", origin);
    if (strcmp(origin, "*"))
        MHD_add_response_header(resp, "Vary", "Origin");
    MHD_add_response_header(resp, "Access-Control-Expose-Headers",
                            "X-Request-Id, Retry-After, Location, Allow");
}

/* Queues the pending response with the common headers. */
static enum MHD_Result queue(http_req *r)
{
    if (!r->resp)
        http_error(r, 500, "internal", NULL, "the handler gave no response");
    if (!r->resp)
        return MHD_NO;
    MHD_add_response_header(r->resp, "X-Request-Id", r->id);
    add_cors(r, r->resp);
    if (atomic_load(&r->app->draining))
        MHD_add_response_header(r->resp, MHD_HTTP_HEADER_CONNECTION, "close");
    enum MHD_Result ok = MHD_queue_response(r->conn, (unsigned)r->status, r->resp);
    MHD_destroy_response(r->resp);
    r->resp = NULL;
    r->queued = 1;
    return ok;
}

/* Answers OPTIONS: CORS preflight or a plain Allow listing. */
static void answer_options(http_req *r)
{
    char allow[256];
    int idx, np;
    char params[HTTP_MAX_PARAMS][HTTP_PARAM_MAX];
    http_match_result m = http_match(http_routes, http_nroutes, "OPTIONS", r->mpath, &idx, params,
                                     &np, allow, sizeof allow);
    if (m == HTTP_MATCH_NO_PATH) {
        http_error(r, 404, "not_found", NULL, "no route for %s", r->path);
        return;
    }
    http_reply_data(r, 204, NULL, "", 0);
    http_header(r, MHD_HTTP_HEADER_ALLOW, allow);
    if (*r->app->cfg.cors_origin && http_get_header(r, "Origin")) {
        http_header(r, "Access-Control-Allow-Methods", allow);
        const char *req_headers = http_get_header(r, "Access-Control-Request-Headers");
        http_header(r, "Access-Control-Allow-Headers",
                    req_headers && strlen(req_headers) < 512
                        ? req_headers
                        : "Content-Type, Authorization, X-Request-Id");
        http_header(r, "Access-Control-Max-Age", "600");
    }
}

/* First callback: everything decidable from the headers. May answer. */
static void req_begin(http_req *r)
{
    app *a = r->app;
    char allow[256];
    const char *cl = http_get_header(r, MHD_HTTP_HEADER_CONTENT_LENGTH);
    const char *te = http_get_header(r, MHD_HTTP_HEADER_TRANSFER_ENCODING);
    unsigned long long len = 0;
    if (cl) {
        char *end;
        errno = 0;
        len = strtoull(cl, &end, 10);
        if (errno || end == cl)
            len = ~0ULL;
    }
    r->has_body = (cl && len > 0) || te;
    if (http_path_has_control(r->path)) { /* %00 (http_unescape), %0A, ...: never a file name */
        http_error(r, 400, "invalid_path", NULL, "an encoded NUL or control byte in the path");
        return;
    }
    r->mpath = http_mount_map(r->path, HTTP_MOUNT_MONAILABEL, a->cfg.monailabel_prefix);
    if (!r->mpath) {
        http_error(r, 500, "internal", NULL, "out of memory");
        return;
    }
    if (!strcmp(r->method, "OPTIONS")) {
        answer_options(r);
        return;
    }
    http_match_result m = http_match(http_routes, http_nroutes, r->method, r->mpath, &r->route_idx,
                                     r->params, &r->nparams, allow, sizeof allow);
    /* rate limit per client address; probes and metrics (HTTP_NO_LIMIT) are exempt */
    int retry = 0;
    if (a->cfg.rate_limit > 0 &&
        !(m == HTTP_MATCH_OK && (http_routes[r->route_idx].flags & HTTP_NO_LIMIT))) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        if (!ratelimit_take(ci ? ci->client_addr : NULL, &retry)) {
            r->route_idx = m == HTTP_MATCH_OK ? r->route_idx : -1;
            http_error(r, 429, "too_many_requests", NULL,
                       "more than %d requests per second from this address; retry in %d s",
                       a->cfg.rate_limit, retry);
            char ra[16];
            snprintf(ra, sizeof ra, "%d", retry);
            http_header(r, "Retry-After", ra);
            return;
        }
    }
    if (m == HTTP_MATCH_NO_PATH) {
        r->route_idx = -1;
        http_error(r, 404, "not_found", NULL, "no route for %s", r->path);
        return;
    }
    if (m == HTTP_MATCH_NO_METHOD) {
        r->route_idx = -1;
        http_error(r, 405, "method_not_allowed", NULL, "%s is not allowed on %s (allowed: %s)",
                   r->method, r->path, allow);
        http_header(r, MHD_HTTP_HEADER_ALLOW, allow);
        return;
    }
    r->route = &http_routes[r->route_idx];
    int json = (r->route->flags & HTTP_JSON) != 0;
    /* only streaming routes (uploads to disk) may take max-body; a buffered body is held in
     * memory, so it gets the JSON limit */
    r->body_limit = (size_t)(r->route->on_body ? a->cfg.max_body : a->cfg.max_json);

    if (cl && len > r->body_limit) {
        http_error(r, 413, "payload_too_large", NULL,
                   "request body of %llu bytes exceeds the limit of %zu bytes", len, r->body_limit);
        return;
    }
    int has_body = r->has_body;
    if (json && has_body &&
        !content_type_is_json(http_get_header(r, MHD_HTTP_HEADER_CONTENT_TYPE))) {
        http_error(r, 415, "unsupported_media_type", NULL,
                   "%s %s expects Content-Type: application/json", r->method, r->route->pattern);
        return;
    }
    if (a->cfg.auth && auth_require(r, r->route->scope) < 0)
        return; /* auth_require answered 401/403/429/503 */
}

static void body_append(http_req *r, const char *data, size_t len)
{
    if (r->too_large)
        return;
    if (r->route && r->route->on_body) {
        r->body_len += len;
        if (r->body_len > r->body_limit) {
            r->too_large = 1;
            return;
        }
        if (r->route->on_body(r, data, len) < 0 && !r->resp)
            http_error(r, 500, "internal", NULL, "upload failed");
        return;
    }
    if (r->body_len + len > r->body_limit) {
        r->too_large = 1;
        free(r->body);
        r->body = NULL;
        r->body_cap = 0;
        r->body_len += len;
        return;
    }
    if (r->body_len + len + 1 > r->body_cap) {
        size_t cap = r->body_cap ? r->body_cap : 4096;
        while (cap < r->body_len + len + 1)
            cap *= 2;
        char *nb = realloc(r->body, cap);
        if (!nb) {
            http_error(r, 500, "internal", NULL, "out of memory");
            return;
        }
        r->body = nb;
        r->body_cap = cap;
    }
    memcpy(r->body + r->body_len, data, len);
    r->body_len += len;
    r->body[r->body_len] = 0;
}

/* Last callback: the body is complete. */
static void req_finish(http_req *r)
{
    if (r->too_large) {
        http_error(r, 413, "payload_too_large", NULL, "request body exceeds the limit of %zu bytes",
                   r->body_limit);
        return;
    }
    if ((r->route->flags & HTTP_JSON) && r->body_len > 0) {
        json_error_t je;
        r->json = json_loadb(r->body, r->body_len, JSON_REJECT_DUPLICATES, &je);
        if (!r->json) {
            http_error(r, 400, "malformed_json", NULL, "malformed JSON at line %d, column %d: %s",
                       je.line, je.column, je.text);
            return;
        }
    }
    r->route->fn(r);
}

/* Whether the body, with `more` bytes just arrived, is past its deadline (http_slow.h); then
 * the request is logged as a 408 and its connection closed (the upload's temporary files go
 * with the request). */
static int body_too_slow(http_req *r, size_t more)
{
    const mkd_config *c = &r->app->cfg;
    long long ms = (long long)(since(&r->t0) * 1e3);
    size_t bytes = r->body_len + more;
    if (!http_body_too_slow((long long)bytes, ms, c->body_grace, c->min_body_rate))
        return 0;
    r->status = 408;
    log_json(LOG_WARN, r->id, "request body too slow: connection closed",
             json_pack("{s:I,s:I,s:i,s:i}", "bytes", (json_int_t)bytes, "ms", (json_int_t)ms,
                       "min_body_rate", c->min_body_rate, "body_grace_s", c->body_grace));
    return 1;
}

/* ------------------------------------------------------------------------------------------ */
/* libmicrohttpd callbacks */

static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn, const char *url,
                                 const char *method, const char *version, const char *upload_data,
                                 size_t *upload_data_size, void **con_cls)
{
    (void)version;
    app *a = cls;
    http_req *r = *con_cls;
    if (!r) {
        r = calloc(1, sizeof *r);
        if (!r)
            return MHD_NO;
        clock_gettime(CLOCK_MONOTONIC, &r->t0);
        r->app = a;
        r->conn = conn;
        r->route_idx = -1;
        snprintf(r->method, sizeof r->method, "%s", method);
        r->path = strdup(url);
        if (!r->path) {
            free(r);
            return MHD_NO;
        }
        const char *rid = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Request-Id");
        if (rid && http_request_id_ok(rid))
            snprintf(r->id, sizeof r->id, "%s", rid);
        else
            new_request_id(r->id);
        *con_cls = r;
        http_deadline_request(conn, 1); /* the headers are in: their deadline is met */
        prom_inflight_add(1);
        req_begin(r);
        /* answer at once only when a body is coming (so that it is not read); otherwise wait
         * for the final callback, which keeps the connection alive */
        if (r->resp && r->has_body)
            return queue(r);
        return MHD_YES;
    }
    if (*upload_data_size) {
        if (!r->resp && !r->queued && body_too_slow(r, *upload_data_size))
            return MHD_NO; /* closes it: libmicrohttpd cannot answer in the middle of a body */
        if (!r->resp && !r->queued)
            body_append(r, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (r->queued)
        return MHD_YES;
    if (!r->resp && r->route)
        req_finish(r);
    return queue(r);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    http_req *r = *con_cls;
    if (!r)
        return;
    double dt = since(&r->t0);
    if (r->queued)
        prom_observe(r->route_idx, r->status, dt);
    log_level lvl =
        r->status >= 500 || toe != MHD_REQUEST_TERMINATED_COMPLETED_OK ? LOG_WARN : LOG_INFO;
    if (log_enabled(lvl)) {
        char path[1024]; /* a decoded path may hold bytes that are not UTF-8: JSON needs it */
        snprintf(path, sizeof path, "%s", r->path ? r->path : "");
        redact_utf8(path);
        json_t *f =
            json_pack("{s:s,s:s,s:s,s:i,s:f}", "method", r->method, "path", path, "route",
                      r->route ? r->route->pattern : "", "status", r->status, "ms", dt * 1e3);
        if (r->token_id > 0) /* which token (its id, never the secret) */
            json_object_set_new(f, "token", json_integer(r->token_id));
        if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK)
            json_object_set_new(
                f, "terminated",
                json_string(toe == MHD_REQUEST_TERMINATED_TIMEOUT_REACHED   ? "timeout"
                            : toe == MHD_REQUEST_TERMINATED_CLIENT_ABORT    ? "client went away"
                            : toe == MHD_REQUEST_TERMINATED_DAEMON_SHUTDOWN ? "shutdown"
                                                                            : "error"));
        log_json(lvl, r->id, "request", f);
    }
    prom_inflight_add(-1);
    http_deadline_request(conn, 0); /* keep-alive: the next request's headers are due */
    req_free(r);
    *con_cls = NULL;
}

static void mhd_logger(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char buf[512];
    vsnprintf(buf, sizeof buf, fmt, ap);
    size_t n = strlen(buf);
    while (n && buf[n - 1] == '\n')
        buf[--n] = 0;
    log_json(LOG_WARN, NULL, buf, json_pack("{s:s}", "component", "libmicrohttpd"));
}

/* The configured MONAI Label prefix must not hide one of mkdseg's own routes. 0 / -1 + err. */
static int check_mount(const char *prefix, char *err, size_t errlen)
{
    if (!*prefix)
        return 0;
    for (int i = 0; i < http_nroutes; i++) {
        const char *p = http_routes[i].pattern;
        if (under(p, HTTP_MOUNT_MONAILABEL))
            continue;
        if (under(p, prefix)) {
            snprintf(err, errlen,
                     "--monailabel-prefix %s would hide the route %s %s: choose "
                     "another prefix",
                     prefix, http_routes[i].method, p);
            return -1;
        }
    }
    return 0;
}

int http_start(app *a, char *err, size_t errlen)
{
    const mkd_config *c = &a->cfg;
    if (check_mount(c->monailabel_prefix, err, errlen) < 0)
        return -1;
    ratelimit_configure(c->rate_limit, 2.0 * c->rate_limit);
    ratelimit_configure_token(c->rate_limit_token, c->rate_limit_token_window);
    struct addrinfo hints = {0}, *ai = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    int gai = getaddrinfo(c->host, NULL, &hints, &ai);
    if (gai || !ai) {
        snprintf(err, errlen, "cannot resolve --host '%s': %s", c->host, gai_strerror(gai));
        return -1;
    }
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    memcpy(&ss, ai->ai_addr, ai->ai_addrlen);
    int v6 = ai->ai_family == AF_INET6;
    freeaddrinfo(ai);
    if (v6)
        ((struct sockaddr_in6 *)&ss)->sin6_port = htons((uint16_t)c->port);
    else
        ((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)c->port);

    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC | MHD_USE_ERROR_LOG;
    if (c->http_threads == 0)
        flags |= MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL;
    else
        flags |= MHD_USE_EPOLL;
    if (v6)
        flags |= MHD_USE_IPv6;
    struct MHD_OptionItem opts[] = {
        {MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)mhd_logger, NULL},
        {MHD_OPTION_SOCK_ADDR, 0, &ss},
        {MHD_OPTION_CONNECTION_LIMIT, (intptr_t)c->max_connections, NULL},
        {MHD_OPTION_PER_IP_CONNECTION_LIMIT, (intptr_t)c->per_ip_connections, NULL},
        {MHD_OPTION_CONNECTION_TIMEOUT, (intptr_t)c->connection_timeout, NULL},
        {MHD_OPTION_CONNECTION_MEMORY_LIMIT, (intptr_t)(128 * 1024), NULL},
        {MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)on_completed, a},
        {MHD_OPTION_LISTENING_ADDRESS_REUSE, 1, NULL},
        {MHD_OPTION_UNESCAPE_CALLBACK, (intptr_t)http_unescape, NULL},
        {MHD_OPTION_NOTIFY_CONNECTION, (intptr_t)http_deadline_notify, NULL},
        {c->http_threads > 0 ? MHD_OPTION_THREAD_POOL_SIZE : MHD_OPTION_END,
         (intptr_t)c->http_threads, NULL},
        {MHD_OPTION_END, 0, NULL},
    };
    a->mhd = MHD_start_daemon(flags, (uint16_t)c->port, NULL, NULL, on_access, a, MHD_OPTION_ARRAY,
                              opts, MHD_OPTION_END);
    if (!a->mhd) {
        snprintf(err, errlen, "cannot listen on %s port %d (address in use, or not allowed?)",
                 c->host, c->port);
        return -1;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(a->mhd, MHD_DAEMON_INFO_BIND_PORT);
    a->port = info ? (int)info->port : c->port;
    if (http_deadline_start(c->header_timeout) < 0)
        log_json(LOG_WARN, NULL, "no header deadline: cannot start its thread", NULL);
    return 0;
}

void http_quiesce(app *a)
{
    if (!a->mhd)
        return;
    MHD_socket fd = MHD_quiesce_daemon(a->mhd);
    if (fd != MHD_INVALID_SOCKET)
        close(fd);
}

void http_stop(app *a)
{
    if (a->mhd)
        MHD_stop_daemon(a->mhd);
    a->mhd = NULL;
    http_deadline_stop();
}
