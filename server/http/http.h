/* http.h: the HTTP layer on libmicrohttpd: routing table, per-request context, JSON bodies,
 * one error shape, request ids, CORS, limits.
 *
 * Threading: by default (threads = 0) libmicrohttpd runs one thread per connection
 * (MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION), so a handler may block on
 * PostgreSQL or on a job without stalling other connections; the connection limit bounds the
 * threads. threads = N > 0 selects a pool of N polling threads (epoll) instead, for many idle
 * keep-alive clients; handlers then must not block for long.
 *
 * Lifecycle of a request: the first callback creates an http_req (request id, route match,
 * early checks: 404, 405, OPTIONS, 413 by Content-Length, 415, then with auth on the
 * route's scope: 401/403/429, auth.h); body chunks are appended
 * (or passed to the route's on_body) and checked against the size limit while streaming; the
 * last callback parses JSON (400 on error) and runs the handler; the completion callback
 * records metrics, writes the access log line and frees the context. */
#ifndef MKDSEG_HTTP_H
#define MKDSEG_HTTP_H

#include <stddef.h>
#include <time.h>
#include <jansson.h>
#include <microhttpd.h>

#include "app.h"

#define HTTP_MAX_PARAMS 4
#define HTTP_PARAM_MAX 128

typedef struct http_req http_req;

/* A handler must answer through http_reply_* / http_error (else the client gets 500). */
typedef void (*http_handler)(http_req *r);
/* Streaming body consumer (uploads): returns 0, or -1 after answering with http_error. */
typedef int (*http_body_fn)(http_req *r, const char *data, size_t len);

/* route flags */
#define HTTP_JSON 1u     /* body is JSON (Content-Type checked, size <= max-json, parsed) */
#define HTTP_MUTATING 2u /* changes state (the scope, not this flag, decides who may) */
#define HTTP_NO_LIMIT 4u /* exempt from the per-address rate limit (probes, metrics) */
#define HTTP_DETAIL 8u   /* errors also carry {"detail": message}, as MONAI Label clients expect */

/* The MONAI Label protocol (3D Slicer) is mounted under a configurable prefix
 * (--monailabel-prefix): the routing table and api/openapi.yaml name its routes by this default
 * prefix, and a request under the configured one is matched as if it used the default. */
#define HTTP_MOUNT_MONAILABEL "/monailabel"

/* What a route needs when auth is on (MKDSEG_AUTH=on): nothing (public), or a bearer token
 * holding this scope; the admin scope implies every other. Each row of the routing table
 * names one (a row without it does not compile: -Wmissing-field-initializers); a route whose
 * scope is HTTP_SCOPE_UNSET is refused as if it needed admin, and tests/unit/test_auth.c
 * fails on it. */
typedef enum {
    HTTP_SCOPE_UNSET = 0,
    HTTP_PUBLIC,
    HTTP_SCOPE_READ,
    HTTP_SCOPE_SEGMENT,
    HTTP_SCOPE_TRAIN,
    HTTP_SCOPE_ADMIN,
} http_scope;

typedef struct {
    const char *method;  /* "GET", "POST", "DELETE", ... */
    const char *pattern; /* "/datasets/{id}": literal segments and {name} captures */
    http_handler fn;
    unsigned flags;
    http_body_fn on_body; /* NULL: the body is buffered in memory, up to max-json bytes;
                           * set: chunks are streamed to it, up to max-body bytes */
    http_scope scope;     /* what it needs when auth is on */
} http_route;

/* The static routing table (routes.c) and its size. */
extern const http_route http_routes[];
extern const int http_nroutes;

struct http_req {
    app *app;
    struct MHD_Connection *conn;
    const http_route *route;
    int route_idx; /* index in http_routes, -1 when unmatched */
    char method[16];
    char *path;  /* owned */
    char *mpath; /* the path matched against the table (http_mount_map), owned */
    char id[65]; /* request id */
    char params[HTTP_MAX_PARAMS][HTTP_PARAM_MAX];
    int nparams;
    char *body; /* buffered body (NUL-terminated), owned */
    size_t body_len, body_cap;
    size_t body_limit;
    int too_large;
    int has_body;              /* Content-Length > 0 or chunked */
    json_t *json;              /* parsed JSON body (HTTP_JSON routes), owned */
    int status;                /* status of the response, 0 until answered */
    struct MHD_Response *resp; /* pending response, owned until queued */
    int queued;
    struct timespec t0;
    void *user;                     /* handler state (e.g. an upload), freed by its owner */
    void (*user_free)(http_req *r); /* called on completion when set */
    long long token_id;             /* api_tokens.id of the bearer token checked, else 0 */
};

/* ---- routing (pure functions, unit-tested) ---- */
typedef enum { HTTP_MATCH_OK = 0, HTTP_MATCH_NO_PATH, HTTP_MATCH_NO_METHOD } http_match_result;

/* Finds the route for (method, path). HEAD matches GET routes. On HTTP_MATCH_OK sets *idx and
 * copies the {captures} into params (nparams of them). On HTTP_MATCH_NO_METHOD writes the
 * allowed methods ("GET, HEAD, OPTIONS") into allow. The path excludes the query string. */
http_match_result http_match(const http_route *routes, int n, const char *method, const char *path,
                             int *idx, char params[][HTTP_PARAM_MAX], int *nparams, char *allow,
                             size_t allowlen);

/* The path to match for a request path when the mount `canonical` is served under `prefix`:
 * prefix[/rest] becomes canonical[/rest]; canonical[/rest] itself becomes "" (matches nothing)
 * when the prefixes differ; other paths are unchanged. New string (NULL when out of memory). */
char *http_mount_map(const char *path, const char *canonical, const char *prefix);

/* Whether `id` is an acceptable client-supplied request id (1-64 of [A-Za-z0-9._:-]). */
int http_request_id_ok(const char *id);

/* The JSON error body {"error":{"code","message"[,"field"]}}; new reference. */
json_t *http_error_body(const char *code, const char *message, const char *field);

/* ---- answering (from handlers) ---- */
/* Answers with `body` (stolen) as JSON. */
void http_reply_json(http_req *r, int status, json_t *body);
/* Answers with a copy of `data`. */
void http_reply_data(http_req *r, int status, const char *content_type, const void *data,
                     size_t len);
/* Answers with the error shape; message is printf-style; field may be NULL. */
void http_error(http_req *r, int status, const char *code, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* Adds a header to the pending response (after http_reply_* / http_error). */
void http_header(http_req *r, const char *name, const char *value);

/* ---- reading the request ---- */
const char *http_get_header(http_req *r, const char *name);
const char *http_query(http_req *r, const char *name);
/* Parses capture i as a positive 64-bit id; 0 / -1. */
int http_param_id(http_req *r, int i, long long *out);

/* ---- the server ---- */
/* Starts libmicrohttpd with the limits of a->cfg; sets a->mhd and a->port. 0 / -1 + err. */
int http_start(app *a, char *err, size_t errlen);
/* Stops accepting new connections (the listening socket is closed). */
void http_quiesce(app *a);
/* Stops the daemon (closes the remaining idle connections). */
void http_stop(app *a);

#endif
