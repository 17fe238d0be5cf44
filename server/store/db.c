/* db.c: libpq connection pool and prepared statements (see db.h). */
#include "db.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"

struct db_conn {
    struct db_pool *pool;
    PGconn *pg;
    int in_use;
    int uses;                 /* statements run since borrowed */
    const db_stmt **prepared; /* statements prepared on this connection */
    int nprepared, capprepared;
    char sqlstate[6];
};

struct db_pool {
    char *url;
    int size;
    db_conn *slots;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct timespec last_fail; /* monotonic time of the last failed connect */
    char last_err[256];
};

static void set_err(char *err, size_t errlen, const char *prefix, const char *msg)
{
    if (!err || !errlen)
        return;
    snprintf(err, errlen, "%s%s", prefix, msg ? msg : "");
    /* libpq messages span lines ("...\n\tIs the server running..."): make them one line */
    for (char *q = err; *q; q++)
        if (*q == '\n' || *q == '\t')
            *q = ' ';
    size_t n = strlen(err);
    while (n && (err[n - 1] == '\n' || err[n - 1] == ' '))
        err[--n] = 0;
}

static PGconn *connect_params(const char *url, const char *dbname, int timeout_s, char *err,
                              size_t errlen)
{
    char tbuf[16];
    snprintf(tbuf, sizeof tbuf, "%d", timeout_s > 0 ? timeout_s : 3);
    /* expand_dbname=1: the first "dbname" is a full conninfo/URI; later keys override it */
    const char *keys[] = {"dbname", "connect_timeout", "application_name", NULL, NULL};
    const char *vals[] = {url ? url : "", tbuf, "mkdseg", NULL, NULL};
    if (dbname) {
        keys[3] = "dbname";
        vals[3] = dbname;
    }
    PGconn *pg = PQconnectdbParams(keys, vals, 1);
    if (!pg) {
        set_err(err, errlen, "database: ", "out of memory");
        return NULL;
    }
    if (PQstatus(pg) != CONNECTION_OK) {
        set_err(err, errlen, "database: ", PQerrorMessage(pg));
        PQfinish(pg);
        return NULL;
    }
    return pg;
}

static void notice_quiet(void *arg, const char *msg) { (void)arg, (void)msg; }

PGconn *db_connect(const char *url, int timeout_s, char *err, size_t errlen)
{
    PGconn *pg = connect_params(url, NULL, timeout_s, err, errlen);
    if (pg)
        PQsetNoticeProcessor(pg, notice_quiet, NULL);
    return pg;
}

PGconn *db_connect_db(const char *url, const char *dbname, int timeout_s, char *err, size_t errlen)
{
    PGconn *pg = connect_params(url, dbname, timeout_s, err, errlen);
    if (pg)
        PQsetNoticeProcessor(pg, notice_quiet, NULL);
    return pg;
}

db_pool *db_pool_create(const char *url, int size, char *err, size_t errlen)
{
    if (size < 1) {
        set_err(err, errlen, "db pool: ", "size must be >= 1");
        return NULL;
    }
    db_pool *p = calloc(1, sizeof *p);
    if (!p)
        goto fail;
    p->url = strdup(url ? url : "");
    p->slots = calloc((size_t)size, sizeof *p->slots);
    if (!p->url || !p->slots)
        goto fail;
    p->size = size;
    for (int i = 0; i < size; i++)
        p->slots[i].pool = p;
    pthread_mutex_init(&p->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p->cv, &ca);
    pthread_condattr_destroy(&ca);
    return p;
fail:
    set_err(err, errlen, "db pool: ", "out of memory");
    if (p) {
        free(p->url);
        free(p->slots);
        free(p);
    }
    return NULL;
}

static void conn_close(db_conn *c)
{
    if (c->pg)
        PQfinish(c->pg);
    c->pg = NULL;
    c->nprepared = 0;
}

void db_pool_destroy(db_pool *p)
{
    if (!p)
        return;
    for (int i = 0; i < p->size; i++) {
        conn_close(&p->slots[i]);
        free(p->slots[i].prepared);
    }
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p->slots);
    free(p->url);
    free(p);
}

static double ms_since(const struct timespec *t)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - t->tv_sec) * 1e3 + (double)(now.tv_nsec - t->tv_nsec) / 1e6;
}

static int conn_open(db_pool *p, db_conn *c, char *err, size_t errlen)
{
    pthread_mutex_lock(&p->mu);
    int recent = (p->last_fail.tv_sec || p->last_fail.tv_nsec) && ms_since(&p->last_fail) < 500;
    char last[sizeof p->last_err];
    memcpy(last, p->last_err, sizeof last);
    pthread_mutex_unlock(&p->mu);
    if (recent) {
        set_err(err, errlen, "", last);
        return -1;
    }
    char e[256];
    c->pg = db_connect(p->url, 3, e, sizeof e);
    c->nprepared = 0;
    pthread_mutex_lock(&p->mu);
    if (!c->pg) {
        clock_gettime(CLOCK_MONOTONIC, &p->last_fail);
        snprintf(p->last_err, sizeof p->last_err, "%s", e);
    } else {
        p->last_fail.tv_sec = p->last_fail.tv_nsec = 0;
    }
    pthread_mutex_unlock(&p->mu);
    if (!c->pg) {
        set_err(err, errlen, "", e);
        return -1;
    }
    return 0;
}

db_conn *db_acquire(db_pool *p, int timeout_ms, char *err, size_t errlen)
{
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += timeout_ms / 1000;
    deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    db_conn *c = NULL;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        /* prefer a slot with an open connection */
        for (int i = 0; i < p->size && !c; i++)
            if (!p->slots[i].in_use && p->slots[i].pg)
                c = &p->slots[i];
        for (int i = 0; i < p->size && !c; i++)
            if (!p->slots[i].in_use)
                c = &p->slots[i];
        if (c)
            break;
        if (pthread_cond_timedwait(&p->cv, &p->mu, &deadline) == ETIMEDOUT) {
            pthread_mutex_unlock(&p->mu);
            set_err(err, errlen, "database: ", "no free connection in the pool");
            return NULL;
        }
    }
    c->in_use = 1;
    c->uses = 0;
    c->sqlstate[0] = 0;
    pthread_mutex_unlock(&p->mu);

    if (c->pg && PQstatus(c->pg) != CONNECTION_OK)
        conn_close(c);
    if (!c->pg && conn_open(p, c, err, errlen) < 0) {
        db_release(p, c);
        return NULL;
    }
    return c;
}

void db_release(db_pool *p, db_conn *c)
{
    if (!c)
        return;
    if (c->pg && (PQstatus(c->pg) != CONNECTION_OK || PQtransactionStatus(c->pg) != PQTRANS_IDLE))
        conn_close(c);
    pthread_mutex_lock(&p->mu);
    c->in_use = 0;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

PGconn *db_pg(db_conn *c) { return c->pg; }
const char *db_sqlstate(const db_conn *c) { return c->sqlstate; }

static void remember_error(db_conn *c, const PGresult *res)
{
    const char *st = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    snprintf(c->sqlstate, sizeof c->sqlstate, "%s", st ? st : "");
}

static int is_prepared(const db_conn *c, const db_stmt *s)
{
    for (int i = 0; i < c->nprepared; i++)
        if (c->prepared[i] == s)
            return 1;
    return 0;
}

/* One attempt; returns 0 ok, -1 error. *lost = 1 when the connection broke. */
static int exec_once(db_conn *c, const db_stmt *s, const char *const *values, PGresult **out,
                     int *lost, char *err, size_t errlen)
{
    *lost = 0;
    if (!is_prepared(c, s)) {
        PGresult *pr = PQprepare(c->pg, s->name, s->sql, s->nparams, NULL);
        if (PQresultStatus(pr) != PGRES_COMMAND_OK) {
            remember_error(c, pr);
            set_err(err, errlen, "database: ", PQerrorMessage(c->pg));
            PQclear(pr);
            *lost = PQstatus(c->pg) != CONNECTION_OK;
            return -1;
        }
        PQclear(pr);
        if (c->nprepared == c->capprepared) {
            int cap = c->capprepared ? 2 * c->capprepared : 16;
            const db_stmt **np = realloc(c->prepared, (size_t)cap * sizeof *np);
            if (!np) {
                set_err(err, errlen, "database: ", "out of memory");
                return -1;
            }
            c->prepared = np;
            c->capprepared = cap;
        }
        c->prepared[c->nprepared++] = s;
    }
    PGresult *res = PQexecPrepared(c->pg, s->name, s->nparams, values, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(res);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        remember_error(c, res);
        set_err(err, errlen, "database: ",
                PQresultErrorMessage(res)[0] ? PQresultErrorMessage(res) : PQerrorMessage(c->pg));
        PQclear(res);
        *lost = PQstatus(c->pg) != CONNECTION_OK;
        return -1;
    }
    c->sqlstate[0] = 0;
    if (out)
        *out = res;
    else
        PQclear(res);
    return 0;
}

int db_exec(db_conn *c, const db_stmt *s, const char *const *values, PGresult **out, char *err,
            size_t errlen)
{
    if (out)
        *out = NULL;
    if (!c->pg) {
        set_err(err, errlen, "database: ", "connection closed");
        return -1;
    }
    int first = c->uses++ == 0, lost = 0;
    if (exec_once(c, s, values, out, &lost, err, errlen) == 0)
        return 0;
    if (!(first && lost))
        return -1;
    /* a stale pooled connection: reconnect and retry once */
    conn_close(c);
    if (conn_open(c->pool, c, err, errlen) < 0)
        return -1;
    c->uses = 1;
    return exec_once(c, s, values, out, &lost, err, errlen);
}

PGresult *db_query(PGconn *pg, const db_stmt *stmt, const char *const *values, char *err,
                   size_t errlen)
{
    PGresult *r = PQexecParams(pg, stmt->sql, stmt->nparams, NULL, values, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK)
        return r;
    snprintf(err, errlen, "database: %s", PQerrorMessage(pg));
    size_t k = strlen(err);
    while (k && err[k - 1] == '\n')
        err[--k] = 0;
    PQclear(r);
    return NULL;
}

int db_simple(db_conn *c, const char *sql, char *err, size_t errlen)
{
    if (!c->pg) {
        set_err(err, errlen, "database: ", "connection closed");
        return -1;
    }
    c->uses++;
    PGresult *res = PQexec(c->pg, sql);
    ExecStatusType st = PQresultStatus(res);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        remember_error(c, res);
        set_err(err, errlen, "database: ", PQerrorMessage(c->pg));
        PQclear(res);
        return -1;
    }
    PQclear(res);
    return 0;
}

void db_pool_stats(db_pool *p, int *size, int *in_use, int *connected)
{
    int u = 0, k = 0;
    pthread_mutex_lock(&p->mu);
    for (int i = 0; i < p->size; i++) {
        u += p->slots[i].in_use;
        k += p->slots[i].pg != NULL;
    }
    pthread_mutex_unlock(&p->mu);
    if (size)
        *size = p->size;
    if (in_use)
        *in_use = u;
    if (connected)
        *connected = k;
}
