/* fuzz_http.c: libFuzzer targets for the service's request parsing, through the real HTTP
 * stack: the harness starts the server's libmicrohttpd daemon in this process (port 0, the
 * server's own handlers and routing table, a PostgreSQL database when MKDSEG_FUZZ_DATABASE_URL
 * is set, else none: database routes then answer 503) and sends every input as one request
 * over a socket. Built three times by `make fuzz` (mk/fuzz.mk), one per FUZZ_HTTP_MODE:
 *   'm'  multipart bodies for POST /segment, /models and /datasets/1/volumes (upload.c and the
 *        upload handlers, the NIfTI sniffing of uploads);
 *   'j'  JSON bodies for POST /train, /datasets, /models/1/evaluate and /models/1/promote (the
 *        body parsing and validation of each handler);
 *   'r'  request targets: method, path and query string (routing, captures, query parsing).
 * A finding is a sanitizer report, a crash, no answer or a malformed one, a 500 (a bug by the
 * service's own rule), or an error body without the {"error":{"code","message"}} shape or
 * with a server path in it. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <jansson.h>

#include "app.h"
#include "config.h"
#include "db.h"
#include "db_migrate.h"
#include "engine_pool.h"
#include "http.h"
#include "log.h"
#include "prom.h"
#include "svc.h"

#ifndef FUZZ_HTTP_MODE
#define FUZZ_HTTP_MODE 'r'
#endif

static app a;
static char data_dir[256];

static void die(const char *what, const char *err)
{
    fprintf(stderr, "fuzz_http: %s: %s\n", what, err);
    exit(1);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    const char *t = getenv("TMPDIR");
    snprintf(data_dir, sizeof data_dir, "%s/mkdseg-fuzz-http-%d", t && *t ? t : "/tmp",
             (int)getpid());
    const char *url = getenv("MKDSEG_FUZZ_DATABASE_URL");
    char *args[] = {"serve",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    "0",
                    "--data-dir",
                    data_dir,
                    "--database-url",
                    (char *)(url && *url ? url : "postgresql:///none?host=/nonexistent"),
                    "--default-model",
                    "",
                    "--log-level",
                    "off",
                    "--workers",
                    "0",
                    "--max-connections",
                    "1000",
                    "--per-ip-connections",
                    "1000",
                    NULL};
    char err[1024];
    int help = 0;
    if (cfg_load(&a.cfg, CFG_SERVE, (int)(sizeof args / sizeof args[0]) - 1, args, &help, err,
                 sizeof err) < 0)
        die("config", err);
    log_set_level((log_level)a.cfg.log_level);
    if (!(a.db = db_pool_create(a.cfg.database_url, 4, err, sizeof err)) ||
        prom_init(http_nroutes) < 0)
        die("database pool", err);
    svc_set_config(&a.cfg);
    if (url && *url) {
        PGconn *pg = PQconnectdb(url);
        if (PQstatus(pg) != CONNECTION_OK ||
            db_migrate(pg, db_migrations_embedded, NULL, err, sizeof err) < 0)
            die("migrate", PQstatus(pg) != CONNECTION_OK ? PQerrorMessage(pg) : err);
        /* one dataset and one model row, so that bodies naming id 1 get past the lookups */
        PQclear(PQexec(
            pg,
            "INSERT INTO datasets (name, modality) VALUES ('fuzz', 'ct') ON CONFLICT DO NOTHING"));
        PQfinish(pg);
    }
    if (epool_start(1, 2, err, sizeof err) < 0 || http_start(&a, err, sizeof err) < 0)
        die("start", err);
    return 0;
}

/* Percent-encodes what cannot appear in a request target, so every input stays one request. */
static size_t target_from(const uint8_t *d, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    out[o++] = '/';
    for (size_t i = 0; i < n && o + 4 < cap; i++) {
        if (d[i] > 0x20 && d[i] < 0x7f)
            out[o++] = (char)d[i];
        else
            o += (size_t)snprintf(out + o, cap - o, "%%%02X", d[i]);
    }
    out[o] = 0;
    return o;
}

/* Sends one request (head + body) and reads the whole answer into buf. Its length, or -1. */
static long exchange(const char *head, const uint8_t *body, size_t blen, char *buf, size_t cap)
{
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)a.port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {30, 0}; /* a hang, not a slow answer */
    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (s < 0 || connect(s, (struct sockaddr *)&sa, sizeof sa) < 0) {
        if (s >= 0)
            close(s);
        return -1;
    }
    size_t hl = strlen(head);
    int ok = send(s, head, hl, MSG_NOSIGNAL) == (ssize_t)hl;
    for (size_t off = 0; ok && off < blen;) {
        ssize_t k = send(s, body + off, blen - off, MSG_NOSIGNAL);
        if (k <= 0)
            break; /* the server may answer (413, 415) before reading everything */
        off += (size_t)k;
    }
    long got = 0;
    for (;;) {
        ssize_t k = recv(s, buf + got, cap - 1 - (size_t)got, 0);
        if (k <= 0)
            break;
        got += k;
        if ((size_t)got >= cap - 1)
            break;
    }
    buf[got] = 0;
    close(s);
    return got;
}

/* Whether the request itself carries `what` (an answer may echo what the client sent). */
static int sent(const char *head, const uint8_t *body, size_t blen, const char *what)
{
    static char dec[8192]; /* the head percent-decoded, as the server reads the path */
    size_t o = 0;
    for (const char *p = head; *p && o + 1 < sizeof dec; p++) {
        unsigned v;
        if (p[0] == '%' && sscanf(p + 1, "%2x", &v) == 1 && p[1] && p[2]) {
            dec[o++] = (char)v;
            p += 2;
        } else {
            dec[o++] = *p;
        }
    }
    dec[o] = 0;
    return strstr(head, what) || memmem(dec, o, what, strlen(what)) ||
           memmem(body, blen, what, strlen(what));
}

/* Checks the service's rules on one answer; abort() is the finding. */
static void check_answer(const char *req, const uint8_t *body_sent, size_t blen, const char *ans,
                         long len)
{
    if (len < 12 || strncmp(ans, "HTTP/1.", 7)) {
        fprintf(stderr, "no answer or not HTTP (%ld bytes) to:\n%.300s\n", len, req);
        abort();
    }
    int status = atoi(ans + 9);
    const char *body = strstr(ans, "\r\n\r\n");
    body = body ? body + 4 : "";
    if (status == 500) {
        fprintf(stderr, "500 to:\n%.300s\nanswer:\n%.600s\n", req, ans);
        abort();
    }
    if (status >= 400 && strstr(ans, "application/json") && strncmp(req, "HEAD ", 5)) {
        json_t *j = json_loads(body, 0, NULL), *e = json_object_get(j, "error");
        int shaped = json_is_string(json_object_get(e, "code")) &&
                     json_is_string(json_object_get(e, "message"));
        json_decref(j);
        int leak = (strstr(body, data_dir) && !sent(req, body_sent, blen, data_dir)) ||
                   (strstr(body, "/tmp/") && !sent(req, body_sent, blen, "/tmp/"));
        if (!shaped || leak) {
            fprintf(stderr, "error body breaks the rules (shape %d) to:\n%.300s\nanswer:\n%.600s\n",
                    shaped, req, ans);
            abort();
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
    static char head[8192], ans[1 << 16];
    if (n < 1)
        return 0;
    const uint8_t sel = d[0];
    d++, n--;
    const uint8_t *body = d;
    size_t blen = n;
    if (FUZZ_HTTP_MODE == 'm') {
        static const char *const paths[] = {"/segment", "/models", "/datasets/1/volumes"};
        snprintf(head, sizeof head,
                 "POST %s HTTP/1.1\r\nHost: fuzz\r\nConnection: close\r\nContent-Type: "
                 "multipart/form-data; "
                 "boundary=mkdsegfuzz\r\nContent-Length: %zu\r\n\r\n",
                 paths[sel % 3], n);
    } else if (FUZZ_HTTP_MODE == 'j') {
        static const char *const paths[] = {"/train", "/datasets", "/models/1/evaluate",
                                            "/models/1/promote"};
        snprintf(head, sizeof head,
                 "POST %s HTTP/1.1\r\nHost: fuzz\r\nConnection: close\r\nContent-Type: "
                 "application/json\r\n"
                 "Content-Length: %zu\r\n\r\n",
                 paths[sel % 4], n);
    } else {
        static const char *const methods[] = {"GET", "POST", "DELETE", "HEAD", "OPTIONS", "PUT"};
        char target[4096];
        target_from(d, n, target, sizeof target);
        snprintf(head, sizeof head,
                 "%s %s HTTP/1.1\r\nHost: fuzz\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
                 methods[sel % 6], target);
        blen = 0;
    }
    /* a connection refused at accept (threads of closed connections not yet reaped) gets no
     * bytes: try again before calling it a finding */
    long got = exchange(head, body, blen, ans, sizeof ans);
    for (int i = 0; i < 20 && got <= 0; i++) {
        usleep(50000);
        got = exchange(head, body, blen, ans, sizeof ans);
    }
    check_answer(head, body, blen, ans, got);
    return 0;
}
