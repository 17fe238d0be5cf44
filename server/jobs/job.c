/* job.c: the job queue and its workers (see job.h). Statements (sql_jobs.c) run through
 * db_query on each worker's own connection. */
#include "job.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "db.h"
#include "log.h"
#include "sql.h"
#include "redact.h"

typedef struct worker {
    struct job_workers *group;
    int index;
    pthread_t thread;
    char id[128];
    atomic_llong current; /* job being run, 0 when idle */
    atomic_int cancel;    /* set by the heartbeat thread */
    atomic_int lost;      /* lease lost */
} worker;

struct job_workers {
    mkd_config cfg;
    int n;
    worker *w;
    pthread_t heartbeat;
    int heartbeat_started;
    atomic_int stopping;
    int stop_pipe[2]; /* written once on stop: wakes every poll() */
};

struct job_ctx {
    worker *w;
    PGconn *pg;
    long long id;
    int attempt;
    json_t *params;
    json_t *result;
};

long long job_id(const job_ctx *j) { return j->id; }
int job_attempt(const job_ctx *j) { return j->attempt; }
const json_t *job_params(const job_ctx *j) { return j->params; }
const char *job_worker(const job_ctx *j) { return j->w->id; }
void job_set_result(job_ctx *j, json_t *result)
{
    json_decref(j->result);
    j->result = result;
}

void job_test_hold(job_ctx *j, const char *point)
{
    const char *h = getenv("MKDSEG_TEST_HOLD");
    if (!h || strcmp(h, point))
        return;
    job_progress(j, json_pack("{s:s,s:s}", "stage", "hold", "at", point));
    log_json(LOG_WARN, NULL, "job held by MKDSEG_TEST_HOLD",
             json_pack("{s:I,s:s}", "job", (json_int_t)j->id, "at", point));
    for (;;)
        pause();
}

int job_should_stop(const job_ctx *j)
{
    return atomic_load(&j->w->group->stopping) || atomic_load(&j->w->cancel) ||
           atomic_load(&j->w->lost);
}

int job_enqueue(PGconn *pg, const char *kind, json_t *params, int priority, int max_attempts,
                long long *id, char *err, size_t errlen)
{
    char *p = params ? json_dumps(params, JSON_COMPACT) : strdup("{}");
    char pr[16], ma[16];
    snprintf(pr, sizeof pr, "%d", priority);
    snprintf(ma, sizeof ma, "%d", max_attempts > 0 ? max_attempts : 3);
    const char *v[4] = {kind, p, pr, ma};
    PGresult *r = db_query(pg, &sql_jobs_enqueue, v, err, errlen);
    free(p);
    if (!r)
        return -1;
    if (id)
        *id = atoll(PQgetvalue(r, 0, 0));
    PQclear(r);
    return 0;
}

int job_progress(job_ctx *j, json_t *progress)
{
    char err[256], ids[24], lease[16];
    char *p = progress ? json_dumps(progress, JSON_COMPACT) : strdup("{}");
    json_decref(progress);
    snprintf(ids, sizeof ids, "%lld", j->id);
    snprintf(lease, sizeof lease, "%d", j->w->group->cfg.job_lease);
    const char *v[4] = {ids, j->w->id, p, lease};
    PGresult *r = db_query(j->pg, &sql_jobs_progress, v, err, sizeof err);
    free(p);
    if (!r) {
        log_json(LOG_WARN, NULL, "job progress not stored",
                 json_pack("{s:I,s:s}", "job", (json_int_t)j->id, "error", err));
        return -1;
    }
    int rows = PQntuples(r);
    if (rows == 0)
        atomic_store(&j->w->lost, 1);
    else if (!strcmp(PQgetvalue(r, 0, 0), "t"))
        atomic_store(&j->w->cancel, 1);
    PQclear(r);
    return rows ? 0 : -1;
}

static const job_kind *find_kind(const char *kind)
{
    for (const job_kind *k = job_kinds; k->kind; k++)
        if (!strcmp(k->kind, kind))
            return k;
    return NULL;
}

/* "{noop,train}" for the kinds array parameter */
static void kinds_array(char *buf, size_t len)
{
    size_t off = (size_t)snprintf(buf, len, "{");
    for (const job_kind *k = job_kinds; k->kind && off < len; k++)
        off += (size_t)snprintf(buf + off, len - off, "%s%s", k == job_kinds ? "" : ",", k->kind);
    if (off < len)
        snprintf(buf + off, len - off, "}");
}

/* Final state; the UPDATE only applies while this worker still holds the job. */
static void finish(job_ctx *j, const char *state, const char *error)
{
    char err[256], ids[24];
    snprintf(ids, sizeof ids, "%lld", j->id);
    char *res = j->result ? json_dumps(j->result, JSON_COMPACT) : NULL;
    json_t *ev = json_pack("{s:s}", "state", state);
    if (error)
        json_object_set_new(ev, "error", json_string(error));
    char *evs = json_dumps(ev, JSON_COMPACT);
    json_decref(ev);
    const char *v2[3] = {ids, j->w->id, evs};
    PGresult *r;
    if (!strcmp(state, "queued"))
        r = db_query(j->pg, &sql_jobs_requeue, v2, err, sizeof err);
    else {
        const char *v6[6] = {ids, j->w->id, state, res, error, evs};
        r = db_query(j->pg, &sql_jobs_finish, v6, err, sizeof err);
        if (r && PQntuples(r) == 0)
            log_json(LOG_WARN, NULL, "job lease lost before finishing; result dropped",
                     json_pack("{s:I,s:s}", "job", (json_int_t)j->id, "worker", j->w->id));
    }
    if (!r)
        log_json(
            LOG_ERROR, NULL, "cannot record job state",
            json_pack("{s:I,s:s,s:s}", "job", (json_int_t)j->id, "state", state, "error", err));
    PQclear(r);
    free(res);
    free(evs);
}

/* Claims one job and runs it. 1 ran one, 0 none available, -1 database error. */
static int claim_and_run(worker *w, PGconn *pg)
{
    job_workers *g = w->group;
    char err[512], lease[16], kinds[512];
    snprintf(lease, sizeof lease, "%d", g->cfg.job_lease);
    kinds_array(kinds, sizeof kinds);
    const char *v[3] = {w->id, lease, kinds};
    PGresult *r = db_query(pg, &sql_jobs_claim, v, err, sizeof err);
    if (!r) {
        log_json(LOG_WARN, NULL, "job claim failed",
                 json_pack("{s:s,s:s}", "worker", w->id, "error", err));
        return -1;
    }
    if (PQntuples(r) == 0) {
        PQclear(r);
        return 0;
    }
    job_ctx j = {.w = w, .pg = pg};
    j.id = atoll(PQgetvalue(r, 0, 0));
    char kind[64];
    snprintf(kind, sizeof kind, "%s", PQgetvalue(r, 0, 1));
    j.params = json_loads(PQgetvalue(r, 0, 2), 0, NULL);
    j.attempt = atoi(PQgetvalue(r, 0, 3));
    int max_attempts = atoi(PQgetvalue(r, 0, 4));
    PQclear(r);
    if (!j.params)
        j.params = json_object();
    atomic_store(&w->cancel, 0);
    atomic_store(&w->lost, 0);
    atomic_store(&w->current, j.id);
    log_json(LOG_INFO, NULL, "job claimed",
             json_pack("{s:I,s:s,s:i,s:s}", "job", (json_int_t)j.id, "kind", kind, "attempt",
                       j.attempt, "worker", w->id));
    const job_kind *k = find_kind(kind);
    char jerr[512] = "";
    job_status st;
    if (j.attempt > max_attempts) {
        snprintf(jerr, sizeof jerr, "gave up after %d attempts (workers died or lost the lease)",
                 max_attempts);
        st = JOB_FAILED;
    } else if (!k) {
        snprintf(jerr, sizeof jerr, "no handler for job kind '%s'", kind);
        st = JOB_FAILED;
    } else {
        st = k->run(&j, jerr, sizeof jerr);
    }
    atomic_store(&w->current, 0);
    if (st == JOB_DONE)
        finish(&j, "succeeded", NULL);
    else if (st == JOB_FAILED) {
        /* the log keeps the whole reason; the job's error, which clients read, no server path */
        log_json(LOG_WARN, NULL, "job failed",
                 json_pack("{s:I,s:s}", "job", (json_int_t)j.id, "error", jerr));
        redact_server_paths(jerr, sizeof jerr, g->cfg.data_dir);
        finish(&j, "failed", *jerr ? jerr : "failed");
    } else if (atomic_load(&w->cancel))
        finish(&j, "cancelled", "cancelled on request");
    else if (!atomic_load(&w->lost))
        finish(&j, "queued", NULL); /* shutting down: another worker resumes it */
    log_json(LOG_INFO, NULL, "job ended",
             json_pack("{s:I,s:s,s:s}", "job", (json_int_t)j.id, "status",
                       st == JOB_DONE     ? "succeeded"
                       : st == JOB_FAILED ? "failed"
                                          : "stopped",
                       "worker", w->id));
    json_decref(j.params);
    json_decref(j.result);
    return 1;
}

/* Waits up to `secs` for a notification on pg (or for stop). pg may be NULL (just sleeps). */
static void wait_wakeup(job_workers *g, PGconn *pg, int secs)
{
    struct pollfd p[2] = {{g->stop_pipe[0], POLLIN, 0}, {pg ? PQsocket(pg) : -1, POLLIN, 0}};
    poll(p, pg ? 2 : 1, secs * 1000);
    if (pg) {
        PQconsumeInput(pg);
        PGnotify *n;
        while ((n = PQnotifies(pg)))
            PQfreemem(n);
    }
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    job_workers *g = w->group;
    PGconn *pg = NULL;
    char err[512];
    while (!atomic_load(&g->stopping)) {
        if (!pg) {
            pg = db_connect(g->cfg.database_url, 3, err, sizeof err);
            PGresult *r = pg ? db_query(pg, &sql_jobs_listen, NULL, err, sizeof err) : NULL;
            if (!r) {
                if (pg)
                    PQfinish(pg);
                pg = NULL;
                log_json(LOG_DEBUG, NULL, "job worker waiting for the database",
                         json_pack("{s:s,s:s}", "worker", w->id, "error", err));
                wait_wakeup(g, NULL, 2);
                continue;
            }
            PQclear(r);
        }
        int rc = claim_and_run(w, pg);
        if (rc == 1)
            continue;
        if (rc < 0 || PQstatus(pg) != CONNECTION_OK) {
            PQfinish(pg);
            pg = NULL;
            wait_wakeup(g, NULL, 1);
            continue;
        }
        wait_wakeup(g, pg, g->cfg.job_poll);
    }
    if (pg)
        PQfinish(pg);
    return NULL;
}

/* Extends the leases of the running jobs of this process every lease/3 seconds. */
static void *heartbeat_main(void *arg)
{
    job_workers *g = arg;
    PGconn *pg = NULL;
    char err[512], lease[16];
    snprintf(lease, sizeof lease, "%d", g->cfg.job_lease);
    int period = g->cfg.job_lease / 3 > 0 ? g->cfg.job_lease / 3 : 1;
    while (!atomic_load(&g->stopping)) {
        wait_wakeup(g, NULL, period);
        if (atomic_load(&g->stopping))
            break;
        if (!pg && !(pg = db_connect(g->cfg.database_url, 3, err, sizeof err)))
            continue;
        for (int i = 0; i < g->n; i++) {
            worker *w = &g->w[i];
            long long id = atomic_load(&w->current);
            if (!id)
                continue;
            char ids[24];
            snprintf(ids, sizeof ids, "%lld", id);
            const char *v[3] = {ids, w->id, lease};
            PGresult *r = db_query(pg, &sql_jobs_heartbeat, v, err, sizeof err);
            if (!r) {
                PQfinish(pg);
                pg = NULL;
                break;
            }
            if (atomic_load(&w->current) == id) {
                if (PQntuples(r) == 0)
                    atomic_store(&w->lost, 1);
                else if (!strcmp(PQgetvalue(r, 0, 0), "t"))
                    atomic_store(&w->cancel, 1);
            }
            PQclear(r);
        }
    }
    if (pg)
        PQfinish(pg);
    return NULL;
}

job_workers *job_workers_start(const mkd_config *cfg, int n, const char *role, char *err,
                               size_t errlen)
{
    job_workers *g = calloc(1, sizeof *g);
    if (!g || n < 1 || !(g->w = calloc((size_t)n, sizeof *g->w))) {
        snprintf(err, errlen, "job workers: %s", n < 1 ? "need at least one" : "out of memory");
        free(g);
        return NULL;
    }
    g->cfg = *cfg;
    g->n = 0;
    if (pipe2(g->stop_pipe, O_CLOEXEC) < 0) {
        snprintf(err, errlen, "job workers: pipe: %s", strerror(errno));
        free(g->w);
        free(g);
        return NULL;
    }
    char host[64] = "host";
    gethostname(host, sizeof host - 1);
    for (int i = 0; i < n; i++) {
        worker *w = &g->w[i];
        w->group = g;
        w->index = i;
        snprintf(w->id, sizeof w->id, "%s:%d:%s:%d", host, (int)getpid(), role, i);
        if (pthread_create(&w->thread, NULL, worker_main, w)) {
            snprintf(err, errlen, "job workers: cannot start thread %d", i);
            job_workers_stop(g);
            return NULL;
        }
        g->n = i + 1;
    }
    if (pthread_create(&g->heartbeat, NULL, heartbeat_main, g) == 0)
        g->heartbeat_started = 1;
    log_json(LOG_INFO, NULL, "job workers started",
             json_pack("{s:i,s:s,s:i}", "workers", n, "role", role, "lease_s", cfg->job_lease));
    return g;
}

void job_workers_stop(job_workers *g)
{
    if (!g)
        return;
    atomic_store(&g->stopping, 1);
    ssize_t wr = write(g->stop_pipe[1], "x", 1);
    (void)wr;
    for (int i = 0; i < g->n; i++)
        pthread_join(g->w[i].thread, NULL);
    if (g->heartbeat_started)
        pthread_join(g->heartbeat, NULL);
    close(g->stop_pipe[0]);
    close(g->stop_pipe[1]);
    free(g->w);
    free(g);
}
