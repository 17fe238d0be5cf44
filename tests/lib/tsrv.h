/* tsrv.h: test helpers shared by tests/unit and tests/http.
 *  - tsrv_*: start the real `mkdseg serve` (MKDSEG_TEST_BIN) on port 0 against
 *    MKDSEG_TEST_DATABASE_URL, find its port in the JSON log, stop it with SIGTERM;
 *  - thttp: one HTTP request with libcurl;
 *  - tdb_*: scratch PostgreSQL databases on the test server, one per test. */
#ifndef MKDSEG_TESTS_TSRV_H
#define MKDSEG_TESTS_TSRV_H

#include <stddef.h>
#include <sys/types.h>
#include <jansson.h>
#include <libpq-fe.h>

typedef struct {
    pid_t pid;
    int port;
    char base[64]; /* "http://127.0.0.1:PORT" */
    char dir[256]; /* private temporary folder (data dir, log) */
    char log[300]; /* the server's stderr */
} tsrv;

/* The environment variable `name`, or aborts the test with a message saying to use make test. */
const char *tenv(const char *name);

/* Starts the server with extra arguments (NULL-terminated list, may be NULL); the database URL
 * is `db_url` (NULL: MKDSEG_TEST_DATABASE_URL). Waits up to 120 s (a hang, not a slow machine) for it to listen.
 * 0 / -1 (the log is printed to stderr on failure). */
int tsrv_start(tsrv *s, const char *db_url, const char *const *args);
/* SIGTERM, then waits up to 60 s (then SIGKILL). Returns the exit status, 128+signal when
 * killed by a signal, -1 when it was not running. Removes the folder. */
int tsrv_stop(tsrv *s);
/* A whole file, NUL-terminated (*len: its size, when len is not NULL); the caller frees it. Aborts
 * the test when the file cannot be read. */
char *tslurp(const char *path, size_t *len);
/* Whether the server log contains `needle`. */
int tsrv_log_contains(const tsrv *s, const char *needle);

typedef struct {
    long status;
    char *body; /* NUL-terminated */
    size_t len;
    char *headers; /* raw header block */
    json_t *json;  /* parsed body when it is JSON, else NULL */
} tresp;

/* Sends one request. `headers`: NULL-terminated "Name: value" strings (may be NULL); body may
 * be NULL. 0 on a completed exchange (any status), -1 on a transport error. */
/* A growing, NUL-terminated buffer for libcurl answers; tbuf_write is its
 * CURLOPT_WRITEFUNCTION / CURLOPT_HEADERFUNCTION (the caller frees p). */
typedef struct {
    char *p;
    size_t n;
} tbuf;
size_t tbuf_write(char *ptr, size_t size, size_t nmemb, void *ud);

int thttp(const tsrv *s, const char *method, const char *path, const char *const *headers,
          const char *body, size_t len, tresp *out);
/* Value of response header `name` (case-insensitive) copied into buf; NULL when absent. */
const char *tresp_header(const tresp *r, const char *name, char *buf, size_t buflen);
void tresp_free(tresp *r);

/* Creates a fresh database on the test server and returns a connection to it; its name is
 * written to name[64]. The URL of the test server is MKDSEG_TEST_DATABASE_URL. */
PGconn *tdb_create(char name[64]);
/* A connection URL for database `name` (conninfo string) in url[1024]. */
void tdb_url(const char *name, char url[1024]);
/* Drops the database (closing `pg` first when non-NULL). */
void tdb_drop(PGconn *pg, const char *name);
/* Runs SQL and returns the first column of the first row as a new string (or NULL). */
char *tdb_value(PGconn *pg, const char *sql);
/* Same with n text parameters $1..$n (const char * arguments). */
char *tdb_valuep(PGconn *pg, const char *sql, int n, ...);

/* Runs a shell command (printf-style) and fails the test when its exit status is not 0. */
void tsh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
