/* job.h: the generic job queue. Jobs are rows in `jobs`; workers claim them with
 * FOR UPDATE SKIP LOCKED, are woken by LISTEN/NOTIFY on channel "mkdseg_jobs" (and poll every
 * --job-poll seconds), and hold a lease that a heartbeat thread extends every lease/3 seconds
 * while the job runs. A job whose lease expired (its worker died) is claimed again, up to
 * max_attempts; its handler is expected to resume from its last checkpoint.
 *
 * State machine: queued -> running -> succeeded | failed | cancelled; running -> queued when a
 * worker stops at a safe point on shutdown. Every transition and progress report is written to
 * job_events and announced with NOTIFY "mkdseg_job_events" (payload: the job id).
 *
 * Kinds: the static table job_kinds[] (job_kinds.c) maps a kind ("noop", "train", "evaluate")
 * to its handler; a new kind is a new line there. */
#ifndef MKDSEG_JOB_H
#define MKDSEG_JOB_H

#include <stddef.h>
#include <jansson.h>
#include <libpq-fe.h>

#include "config.h"

typedef struct job_ctx job_ctx;

/* What a handler returns. */
typedef enum {
    JOB_DONE = 0,    /* succeeded (result set with job_set_result, optional) */
    JOB_FAILED = -1, /* failed; err holds the reason */
    JOB_STOPPED = 1, /* stopped at a safe point because job_should_stop() said so */
} job_status;

typedef job_status (*job_fn)(job_ctx *j, char *err, size_t errlen);

typedef struct {
    const char *kind; /* matches jobs.kind; NULL ends the table */
    job_fn run;
    const char *summary;
} job_kind;

extern const job_kind job_kinds[];

/* ---- for handlers ---- */
long long job_id(const job_ctx *j);
int job_attempt(const job_ctx *j);          /* 1 for the first run */
const json_t *job_params(const job_ctx *j); /* borrowed; the job's params object */
const char *job_worker(const job_ctx *j);   /* this worker's id */
/* Stores progress (stolen JSON object) in jobs.progress, appends a 'progress' event and
 * renews the lease. Returns 0, or -1 when the database refused (lease lost, job gone). */
int job_progress(job_ctx *j, json_t *progress);
/* Whether the handler should stop at the next safe point: cancel requested, lease lost, or
 * the worker is shutting down. */
int job_should_stop(const job_ctx *j);
/* Sets the result stored on success (stolen). */
void job_set_result(job_ctx *j, json_t *result);
/* Test hook for fault tests: when the environment variable MKDSEG_TEST_HOLD equals `point`
 * (e.g. "train:30", "train:saved"), stores a progress event {"stage":"hold","at":point} and
 * then blocks this worker thread for good, so that a test can kill the process at exactly that
 * point instead of at a time it hopes for. Without the variable it returns at once. */
void job_test_hold(job_ctx *j, const char *point);

/* ---- for producers ---- */
/* Inserts a queued job and notifies workers. *id receives its id. 0 / -1 + err. */
int job_enqueue(PGconn *pg, const char *kind, json_t *params /* borrowed */, int priority,
                int max_attempts, long long *id, char *err, size_t errlen);

/* ---- workers ---- */
typedef struct job_workers job_workers;
/* Starts n worker threads (and one heartbeat thread) with their own connections to
 * cfg->database_url, handling the kinds of job_kinds[]. `role` ("serve" or "worker") goes
 * into the worker ids ("host:pid:role:N"). NULL + err on failure. */
job_workers *job_workers_start(const mkd_config *cfg, int n, const char *role, char *err,
                               size_t errlen);
/* Asks every worker to stop at a safe point (running jobs are requeued unless they finish),
 * joins the threads and frees. NULL is a no-op. */
void job_workers_stop(job_workers *w);

#endif
