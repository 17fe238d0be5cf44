/* tsrv.c: see tsrv.h. */
#include "tsrv.h"

#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <curl/curl.h>

const char *tenv(const char *name)
{
    const char *v = getenv(name);
    if (!v || !*v)
        cr_assert_fail("%s is not set: run the tests through `make test` (scripts/test.sh)", name);
    return v;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* path's bytes, NUL-terminated (*len: their count, when len is not NULL); NULL when it cannot
 * be read */
static char *slurp_len(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0;
    char *b = malloc(cap);
    size_t k;
    while (b && (k = fread(b + n, 1, cap - n - 1, f)) > 0) {
        n += k;
        if (cap - n < 2) {
            cap *= 2;
            b = realloc(b, cap);
        }
    }
    fclose(f);
    if (b)
        b[n] = 0;
    if (len)
        *len = n;
    return b;
}

static char *slurp(const char *path) { return slurp_len(path, NULL); }

char *tslurp(const char *path, size_t *len)
{
    char *b = slurp_len(path, len);
    cr_assert(b, "cannot read %s", path);
    return b;
}

int tsrv_log_contains(const tsrv *s, const char *needle)
{
    char *t = slurp(s->log);
    int found = t && strstr(t, needle);
    free(t);
    return found;
}

int tsrv_start(tsrv *s, const char *db_url, const char *const *args)
{
    memset(s, 0, sizeof *s);
    const char *tmp = getenv("MKDSEG_TEST_TMP");
    snprintf(s->dir, sizeof s->dir, "%s/tsrv.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(s->dir))
        return -1;
    snprintf(s->log, sizeof s->log, "%s/server.log", s->dir);
    const char *bin = tenv("MKDSEG_TEST_BIN");
    const char *url = db_url ? db_url : tenv("MKDSEG_TEST_DATABASE_URL");
    char data[300];
    snprintf(data, sizeof data, "%s/data", s->dir);

    const char *argv[64];
    int n = 0;
    argv[n++] = bin;
    argv[n++] = "serve";
    argv[n++] = "--host";
    argv[n++] = "127.0.0.1";
    argv[n++] = "--port";
    argv[n++] = "0";
    argv[n++] = "--database-url";
    argv[n++] = url;
    argv[n++] = "--data-dir";
    argv[n++] = data;
    for (int i = 0; args && args[i] && n < 62; i++)
        argv[n++] = args[i];
    argv[n] = NULL;

    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        int fd = open(s->log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
            dup2(fd, 2);
            close(fd);
        }
        int nul = open("/dev/null", O_RDWR);
        if (nul >= 0) {
            dup2(nul, 0);
            dup2(nul, 1);
        }
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    s->pid = pid;
    for (int waited = 0; waited < 120000; waited += 20) {
        char *t = slurp(s->log);
        char *l = t ? strstr(t, "\"msg\":\"listening\"") : NULL;
        char *p = l ? strstr(l, "\"port\":") : NULL;
        if (p) {
            s->port = atoi(p + 7);
            free(t);
            snprintf(s->base, sizeof s->base, "http://127.0.0.1:%d", s->port);
            return 0;
        }
        free(t);
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            s->pid = 0;
            break;
        }
        sleep_ms(20);
    }
    char *t = slurp(s->log);
    fprintf(stderr, "tsrv: the server did not start; its log:\n%s\n", t ? t : "(none)");
    free(t);
    tsrv_stop(s);
    return -1;
}

int tsrv_stop(tsrv *s)
{
    int rc = -1;
    if (s->pid > 0) {
        kill(s->pid, SIGTERM);
        int st = 0;
        for (int waited = 0;; waited += 10) {
            pid_t w = waitpid(s->pid, &st, WNOHANG);
            if (w == s->pid)
                break;
            if (w < 0) {
                st = -1;
                break;
            }
            if (waited > 60000) {
                kill(s->pid, SIGKILL);
                waitpid(s->pid, &st, 0);
                break;
            }
            sleep_ms(10);
        }
        rc = st == -1 ? -1 : WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        s->pid = 0;
    }
    if (s->dir[0] && !getenv("MKDSEG_TEST_KEEP")) {
        char cmd[400];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", s->dir);
        if (system(cmd) != 0)
            fprintf(stderr, "tsrv: cannot remove %s\n", s->dir);
        s->dir[0] = 0;
    }
    return rc;
}

size_t tbuf_write(char *ptr, size_t size, size_t nmemb, void *ud)
{
    tbuf *b = ud;
    size_t k = size * nmemb;
    char *np = realloc(b->p, b->n + k + 1);
    if (!np)
        return 0;
    memcpy(np + b->n, ptr, k);
    b->p = np;
    b->n += k;
    b->p[b->n] = 0;
    return k;
}

int thttp(const tsrv *s, const char *method, const char *path, const char *const *headers,
          const char *body, size_t len, tresp *out)
{
    memset(out, 0, sizeof *out);
    CURL *c = curl_easy_init();
    if (!c)
        return -1;
    char url[512];
    snprintf(url, sizeof url, "%s%s", s->base, path);
    tbuf b = {0}, h = {0};
    struct curl_slist *hl = NULL;
    for (int i = 0; headers && headers[i]; i++)
        hl = curl_slist_append(hl, headers[i]);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (!strcmp(method, "HEAD"))
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, tbuf_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, tbuf_write);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &h);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    CURLcode rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out->status);
    curl_slist_free_all(hl);
    curl_easy_cleanup(c);
    out->body = b.p ? b.p : calloc(1, 1);
    out->len = b.n;
    out->headers = h.p ? h.p : calloc(1, 1);
    out->json = out->len ? json_loadb(out->body, out->len, 0, NULL) : NULL;
    if (rc != CURLE_OK) {
        if (getenv("MKDSEG_TEST_VERBOSE"))
            fprintf(stderr, "thttp %s %s: %s\n", method, path, curl_easy_strerror(rc));
        return -1;
    }
    return 0;
}

const char *tresp_header(const tresp *r, const char *name, char *buf, size_t buflen)
{
    size_t nl = strlen(name);
    for (const char *line = r->headers; line && *line;) {
        const char *end = strstr(line, "\r\n");
        size_t ll = end ? (size_t)(end - line) : strlen(line);
        if (ll > nl && !strncasecmp(line, name, nl) && line[nl] == ':') {
            const char *v = line + nl + 1;
            while (*v == ' ')
                v++;
            size_t vl = ll - (size_t)(v - line);
            if (vl >= buflen)
                vl = buflen - 1;
            memcpy(buf, v, vl);
            buf[vl] = 0;
            return buf;
        }
        line = end ? end + 2 : NULL;
    }
    return NULL;
}

void tresp_free(tresp *r)
{
    free(r->body);
    free(r->headers);
    json_decref(r->json);
    memset(r, 0, sizeof *r);
}

void tdb_url(const char *name, char url[1024])
{
    /* conninfo: the server part of the test URL, database overridden. libpq accepts a URI
     * followed by nothing else, so rebuild as "dbname=URI" is not possible; instead keep the
     * URI's query (host, user) and replace the path. */
    const char *base = tenv("MKDSEG_TEST_DATABASE_URL");
    const char *scheme = strstr(base, "://");
    const char *path = scheme ? strchr(scheme + 3, '/') : NULL;
    const char *query = path ? strchr(path, '?') : NULL;
    if (!path) {
        snprintf(url, 1024, "%s dbname=%s", base, name);
        return;
    }
    snprintf(url, 1024, "%.*s/%s%s", (int)(path - base), base, name, query ? query : "");
}

static void quiet(void *arg, const char *msg) { (void)arg, (void)msg; }

PGconn *tdb_create(char name[64])
{
    static int counter;
    snprintf(name, 64, "mkdseg_t_%d_%d_%ld", (int)getpid(), counter++, (long)time(NULL) % 100000);
    PGconn *admin = PQconnectdb(tenv("MKDSEG_TEST_DATABASE_URL"));
    cr_assert_eq(PQstatus(admin), CONNECTION_OK, "connect: %s", PQerrorMessage(admin));
    char *id = PQescapeIdentifier(admin, name, strlen(name));
    char sql[256];
    snprintf(sql, sizeof sql, "CREATE DATABASE %s", id);
    PQfreemem(id);
    PGresult *r = PQexec(admin, sql);
    cr_assert_eq(PQresultStatus(r), PGRES_COMMAND_OK, "%s: %s", sql, PQerrorMessage(admin));
    PQclear(r);
    PQfinish(admin);
    char url[1024];
    tdb_url(name, url);
    PGconn *pg = PQconnectdb(url);
    cr_assert_eq(PQstatus(pg), CONNECTION_OK, "connect %s: %s", url, PQerrorMessage(pg));
    PQsetNoticeProcessor(pg, quiet, NULL);
    return pg;
}

void tdb_drop(PGconn *pg, const char *name)
{
    if (pg)
        PQfinish(pg);
    PGconn *admin = PQconnectdb(tenv("MKDSEG_TEST_DATABASE_URL"));
    if (PQstatus(admin) == CONNECTION_OK) {
        char *id = PQescapeIdentifier(admin, name, strlen(name));
        char sql[256];
        snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", id);
        PQfreemem(id);
        PQclear(PQexec(admin, sql));
    }
    PQfinish(admin);
}

char *tdb_value(PGconn *pg, const char *sql)
{
    PGresult *r = PQexec(pg, sql);
    char *v = NULL;
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0 && !PQgetisnull(r, 0, 0))
        v = strdup(PQgetvalue(r, 0, 0));
    else if (PQresultStatus(r) != PGRES_TUPLES_OK)
        fprintf(stderr, "tdb_value %s: %s\n", sql, PQerrorMessage(pg));
    PQclear(r);
    return v;
}

char *tdb_valuep(PGconn *pg, const char *sql, int n, ...)
{
    const char *v[8] = {0};
    va_list ap;
    va_start(ap, n);
    for (int i = 0; i < n && i < 8; i++)
        v[i] = va_arg(ap, const char *);
    va_end(ap);
    PGresult *r = PQexecParams(pg, sql, n, NULL, v, NULL, NULL, 0);
    char *out = NULL;
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0 && !PQgetisnull(r, 0, 0))
        out = strdup(PQgetvalue(r, 0, 0));
    else if (PQresultStatus(r) != PGRES_TUPLES_OK)
        fprintf(stderr, "tdb_valuep %s: %s\n", sql, PQerrorMessage(pg));
    PQclear(r);
    return out;
}

void tsh(const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int rc = system(cmd);
    cr_assert_eq(rc, 0, "command failed (%d): %s", rc, cmd);
}
