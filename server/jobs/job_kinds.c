/* job_kinds.c: the table of job kinds and their handlers (see job.h): "noop" (here), "train"
 * and "evaluate" (job_train.c). */
#include <stdio.h>
#include <time.h>

#include "job.h"
#include "job_train.h"

/* "noop": a diagnostic job. params: {"steps": N (default 1), "sleep_ms": M (per step, default
 * 0), "fail": true (fails at the end)}. Reports progress after each step and stops at a safe
 * point when asked (and holds at "noop:<step>" for fault tests, see job_test_hold). result: {"worker": id, "steps": N}. */
static job_status job_noop(job_ctx *j, char *err, size_t errlen)
{
    const json_t *p = job_params(j);
    json_int_t steps = json_integer_value(json_object_get(p, "steps"));
    json_int_t sleep_ms = json_integer_value(json_object_get(p, "sleep_ms"));
    if (steps <= 0)
        steps = 1;
    if (steps > 1000000 || sleep_ms < 0 || sleep_ms > 60000) {
        snprintf(err, errlen, "noop: steps must be <= 1000000 and sleep_ms in 0..60000");
        return JOB_FAILED;
    }
    for (json_int_t s = 0; s < steps; s++) {
        if (job_should_stop(j))
            return JOB_STOPPED;
        struct timespec ts = {(time_t)(sleep_ms / 1000), (long)(sleep_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
        job_progress(j, json_pack("{s:I,s:I}", "step", s + 1, "steps", steps));
        char point[32];
        snprintf(point, sizeof point, "noop:%lld", (long long)(s + 1));
        job_test_hold(j, point);
    }
    if (json_is_true(json_object_get(p, "fail"))) {
        snprintf(err, errlen, "noop: failing as asked");
        return JOB_FAILED;
    }
    job_set_result(j, json_pack("{s:s,s:I}", "worker", job_worker(j), "steps", steps));
    return JOB_DONE;
}

const job_kind job_kinds[] = {
    {"noop", job_noop, "diagnostic job: sleeps, reports progress, succeeds or fails on request"},
    {"train", job_train, "train a model (POST /train; job_train.c)"},
    {"evaluate", job_evaluate,
     "Dice, ASSD, HD95 of a model on a dataset (POST /models/{id}/evaluate; job_train.c)"},
    {NULL, NULL, NULL},
};
