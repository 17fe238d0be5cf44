/* test_server_jobs.c: the job queue against the real PostgreSQL (a scratch database per test):
 * two worker processes never run the same job, NOTIFY wakes an idle worker, an expired lease
 * is claimed again (kill -9), cancel, failure, and requeue on shutdown. */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "config.h"
#include "db_migrate.h"
#include "job.h"
#include "log.h"
#include "../lib/tsrv.h"

static PGconn *pg;
static char dbname[64], url[1024];

static void setup(void)
{
    pg = tdb_create(dbname);
    tdb_url(dbname, url);
    char err[512];
    cr_assert_eq(db_migrate(pg, db_migrations_embedded, NULL, err, sizeof err), 0, "%s", err);
    log_set_level(LOG_WARN);
}
static void teardown(void) { tdb_drop(pg, dbname); }

TestSuite(server_jobs, .init = setup, .fini = teardown);

#define STATE "SELECT state FROM jobs WHERE id = $1::bigint"

static long num(const char *sql)
{
    char *v = tdb_value(pg, sql);
    long n = v ? atol(v) : -1;
    free(v);
    return n;
}

static long long enqueue(const char *params)
{
    char err[512];
    long long id = 0;
    json_t *p = json_loads(params, 0, NULL);
    cr_assert(p, "bad params %s", params);
    cr_assert_eq(job_enqueue(pg, "noop", p, 0, 3, &id, err, sizeof err), 0, "%s", err);
    json_decref(p);
    return id;
}

static char *job_field(long long id, const char *col)
{
    char ids[24];
    snprintf(ids, sizeof ids, "%lld", id);
    return tdb_valuep(pg, "SELECT to_jsonb(j) ->> $2 FROM jobs j WHERE id = $1::bigint", 2, ids,
                      col);
}

/* Waits until `sql` (with $1 = job id, or no parameter when id is 0) returns `want`. */
static int wait_for_job(const char *sql, long long id, const char *want, int max_ms)
{
    char ids[24];
    snprintf(ids, sizeof ids, "%lld", id);
    for (int t = 0; t <= max_ms; t += 50) {
        char *v = id ? tdb_valuep(pg, sql, 1, ids) : tdb_value(pg, sql);
        int ok = v && !strcmp(v, want);
        free(v);
        if (ok)
            return 1;
        usleep(50000);
    }
    return 0;
}

static pid_t spawn_worker(const char *workers, const char *lease, const char *poll)
{
    pid_t pid = fork();
    if (pid == 0) {
        int nul = open("/dev/null", O_WRONLY);
        dup2(nul, 1);
        dup2(nul, 2);
        execl(tenv("MKDSEG_TEST_BIN"), "mkdseg", "worker", "--database-url", url, "--workers",
              workers, "--job-lease", lease, "--job-poll", poll, "--log-level", "warn",
              (char *)NULL);
        _exit(127);
    }
    return pid;
}

static int stop_worker(pid_t pid)
{
    kill(pid, SIGTERM);
    int st = 0;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static mkd_config test_cfg(int lease, int poll)
{
    mkd_config c;
    char err[256];
    int help;
    char *argv[] = {"worker"};
    cr_assert_eq(cfg_load(&c, CFG_WORKER, 1, argv, &help, err, sizeof err), 0, "%s", err);
    snprintf(c.database_url, sizeof c.database_url, "%s", url);
    c.job_lease = lease;
    c.job_poll = poll;
    return c;
}

Test(server_jobs, two_worker_processes_never_run_the_same_job)
{
    const int njobs = 24;
    for (int i = 0; i < njobs; i++)
        enqueue("{\"sleep_ms\": 40}");
    pid_t a = spawn_worker("2", "30", "1"), b = spawn_worker("2", "30", "1");
    int done = wait_for_job("SELECT count(*) FROM jobs WHERE state = 'succeeded'", 0, "24", 300000);
    cr_assert_eq(stop_worker(a), 0, "worker a exits 0 on SIGTERM");
    cr_assert_eq(stop_worker(b), 0, "worker b exits 0 on SIGTERM");
    cr_assert(done, "all jobs succeeded (%ld did)",
              num("SELECT count(*) FROM jobs WHERE state = 'succeeded'"));
    /* each job was claimed exactly once */
    cr_assert_eq(num("SELECT count(*) FROM jobs WHERE attempts <> 1"), 0);
    cr_assert_eq(num("SELECT count(*) FROM (SELECT job_id FROM job_events WHERE type = 'state' AND "
                     "data->>'state' = 'running' GROUP BY job_id HAVING count(*) <> 1) x"),
                 0);
    cr_assert_eq(
        num("SELECT count(*) FROM job_events WHERE type = 'state' AND data->>'state' = 'running'"),
        njobs);
    /* and both processes did work (the worker id is host:pid:role:N) */
    cr_assert_eq(num("SELECT count(DISTINCT split_part(worker, ':', 2)) FROM jobs"), 2,
                 "both worker processes claimed jobs");
    /* the result names the worker that ran it, the same that holds the row */
    cr_assert_eq(num("SELECT count(*) FROM jobs WHERE result->>'worker' IS DISTINCT FROM worker"),
                 0);
}

/* The worker polls once an hour; it is seen idle after its claim found nothing (its session's
 * last statement is the claim), then a job is enqueued: only the NOTIFY can wake it within the
 * outer limit, which only catches a hang. */
Test(server_jobs, notify_wakes_an_idle_worker, .timeout = 300)
{
    mkd_config c = test_cfg(30, 3600);
    char err[256];
    job_workers *w = job_workers_start(&c, 1, "test", err, sizeof err);
    cr_assert(w, "%s", err);
    int idle = wait_for_job(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND state = 'idle' AND query LIKE 'WITH c AS (UPDATE jobs SET state = ''running''%'",
        0, "1", 60000);
    long long id = idle ? enqueue("{}") : 0;
    int ok = idle && wait_for_job(STATE, id, "succeeded", 120000);
    job_workers_stop(w);
    cr_assert(idle, "the worker claimed nothing and went to wait");
    cr_assert(ok, "the job ran: woken by NOTIFY (the next poll is an hour away)");
}

Test(server_jobs, killed_workers_job_is_claimed_again_and_finishes)
{
    long long id = enqueue("{\"steps\": 20, \"sleep_ms\": 10}");
    setenv("MKDSEG_TEST_HOLD", "noop:3", 1); /* the first worker stops for good at step 3 */
    pid_t a = spawn_worker("1", "2", "1");
    unsetenv("MKDSEG_TEST_HOLD");
    cr_assert(
        wait_for_job("SELECT progress->>'at' FROM jobs WHERE id = $1::bigint", id, "noop:3", 60000),
        "the first worker reached step 3 and holds there");
    kill(a, SIGKILL);
    waitpid(a, NULL, 0);
    char *w1 = job_field(id, "worker");
    pid_t b = spawn_worker("1", "2", "1");
    int ok = wait_for_job(STATE, id, "succeeded", 120000);
    cr_assert_eq(stop_worker(b), 0);
    cr_assert(ok, "the job finished after its lease expired");
    char *w2 = job_field(id, "worker");
    cr_assert_str_neq(w1, w2, "a different worker finished it");
    char *att = job_field(id, "attempts");
    cr_assert_str_eq(att, "2");
    free(att);
    free(w1);
    free(w2);
}

Test(server_jobs, cancel_failure_and_requeue_on_shutdown)
{
    mkd_config c = test_cfg(30, 1);
    char err[256];
    job_workers *w = job_workers_start(&c, 1, "test", err, sizeof err);
    cr_assert(w, "%s", err);
    /* failure */
    long long f = enqueue("{\"fail\": true}");
    cr_assert(wait_for_job(STATE, f, "failed", 60000));
    char *e = job_field(f, "error");
    cr_assert(e && strstr(e, "failing as asked"), "%s", e);
    free(e);
    /* cancel a running job: it stops at its next step */
    long long k = enqueue("{\"steps\": 1000000, \"sleep_ms\": 50}");
    cr_assert(wait_for_job(STATE, k, "running", 60000));
    char ks[24];
    snprintf(ks, sizeof ks, "%lld", k);
    free(tdb_valuep(pg, "UPDATE jobs SET cancel_requested = true WHERE id = $1::bigint RETURNING 1",
                    1, ks));
    /* a million 50 ms steps outlast the limit: only the cancel ends it */
    cr_assert(wait_for_job(STATE, k, "cancelled", 120000), "cancelled at a safe point");
    /* shutdown in the middle of a job puts it back in the queue */
    long long q = enqueue("{\"steps\": 1000000, \"sleep_ms\": 50}");
    cr_assert(wait_for_job(STATE, q, "running", 60000));
    cr_assert(
        wait_for_job(
            "SELECT count(*) > 0 FROM job_events WHERE job_id = $1::bigint AND type = 'progress'",
            q, "t", 60000),
        "it made progress before the shutdown");
    job_workers_stop(w);
    char *st = job_field(q, "state");
    cr_assert_str_eq(st, "queued", "requeued for another worker");
    free(st);
    char *worker = job_field(q, "worker");
    cr_assert_null(worker);
    /* progress was recorded while it ran */
    char qs[24];
    snprintf(qs, sizeof qs, "%lld", q);
    char *has = tdb_valuep(
        pg, "SELECT count(*) > 0 FROM job_events WHERE job_id = $1::bigint AND type = 'progress'",
        1, qs);
    cr_assert_str_eq(has, "t");
    free(has);
}
