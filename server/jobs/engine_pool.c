/* engine_pool.c: see engine_pool.h. */
#include "engine_pool.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "blob.h"
#include "dicom.h"
#include "log.h"
#include "prom.h"
#include "svc.h"

#define MCACHE_CAP 3

static double ms_since(const struct timespec *t0)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - t0->tv_sec) * 1e3 + (double)(t.tv_nsec - t0->tv_nsec) / 1e6;
}

/* ------------------------------------------------------------------------------------------ */
/* model cache */

struct mcache_ref {
    long long id;
    infer_model *m;
    int refs;
    unsigned long last_use;
    int loading;
};

static pthread_mutex_t mc_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t mc_cv = PTHREAD_COND_INITIALIZER;
static mcache_ref *mc[MCACHE_CAP * 4];
static unsigned long mc_clock;

int mcache_loaded(void)
{
    pthread_mutex_lock(&mc_mu);
    int n = 0;
    for (size_t i = 0; i < sizeof mc / sizeof mc[0]; i++)
        n += mc[i] && mc[i]->m;
    pthread_mutex_unlock(&mc_mu);
    return n;
}

/* Frees unused entries beyond the capacity, least recently used first. Under mc_mu. */
static void mc_evict(void)
{
    for (;;) {
        int n = 0, victim = -1;
        for (size_t i = 0; i < sizeof mc / sizeof mc[0]; i++) {
            if (!mc[i])
                continue;
            n++;
            if (mc[i]->refs == 0 && !mc[i]->loading &&
                (victim < 0 || mc[i]->last_use < mc[victim]->last_use))
                victim = (int)i;
        }
        if (n <= MCACHE_CAP || victim < 0)
            return;
        infer_model_free(mc[victim]->m);
        free(mc[victim]);
        mc[victim] = NULL;
    }
}

mcache_ref *mcache_acquire(long long id, const char *path, char *err, size_t errlen)
{
    pthread_mutex_lock(&mc_mu);
    for (;;) {
        mcache_ref *hit = NULL;
        for (size_t i = 0; i < sizeof mc / sizeof mc[0]; i++)
            if (mc[i] && mc[i]->id == id)
                hit = mc[i];
        if (hit && hit->loading) {
            pthread_cond_wait(&mc_cv, &mc_mu);
            continue;
        }
        if (hit) {
            hit->refs++;
            hit->last_use = ++mc_clock;
            pthread_mutex_unlock(&mc_mu);
            return hit;
        }
        break;
    }
    int slot = -1;
    for (size_t i = 0; i < sizeof mc / sizeof mc[0]; i++)
        if (!mc[i]) {
            slot = (int)i;
            break;
        }
    if (slot < 0) {
        pthread_mutex_unlock(&mc_mu);
        snprintf(err, errlen, "too many models in use at once");
        return NULL;
    }
    mcache_ref *r = calloc(1, sizeof *r);
    if (!r) {
        pthread_mutex_unlock(&mc_mu);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    r->id = id;
    r->loading = 1;
    mc[slot] = r;
    pthread_mutex_unlock(&mc_mu);
    /* load outside the lock: other models stay usable meanwhile */
    infer_model *m = blob_verify(path, err, errlen) < 0
                         ? NULL
                         : infer_model_load(path, svc_backend(), err, errlen);
    pthread_mutex_lock(&mc_mu);
    r->loading = 0;
    if (!m) {
        mc[slot] = NULL;
        free(r);
        r = NULL;
    } else {
        r->m = m;
        r->refs = 1;
        r->last_use = ++mc_clock;
        log_json(LOG_INFO, NULL, "model loaded",
                 json_pack("{s:I,s:s}", "model", (json_int_t)id, "method", m->method));
        mc_evict();
    }
    pthread_cond_broadcast(&mc_cv);
    pthread_mutex_unlock(&mc_mu);
    return r;
}

const infer_model *mcache_model(const mcache_ref *r) { return r->m; }

void mcache_release(mcache_ref *r)
{
    if (!r)
        return;
    pthread_mutex_lock(&mc_mu);
    r->refs--;
    mc_evict();
    pthread_mutex_unlock(&mc_mu);
}

/* ------------------------------------------------------------------------------------------ */
/* the pool */

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv_work = PTHREAD_COND_INITIALIZER, cv_done = PTHREAD_COND_INITIALIZER;
static seg_task *head, *tail;
static int n_waiting, n_running, capacity, nthreads, stopping, running_pool;
static pthread_t *threads;

void epool_depth(int *waiting, int *running)
{
    pthread_mutex_lock(&mu);
    *waiting = n_waiting;
    *running = n_running;
    pthread_mutex_unlock(&mu);
}

static void fail(seg_task *t, int status, const char *code, const char *msg)
{
    t->status = status;
    snprintf(t->code, sizeof t->code, "%s", code);
    if (msg != t->err)
        snprintf(t->err, sizeof t->err, "%.700s", msg);
}

/* Dice, ASSD and HD95 of the label map cls against the task's label file (on v's grid). 0, or
 * -1 with the task failed. */
static int score_task(seg_task *t, const vol_t *v, const uint8_t *cls)
{
    struct timespec ts;
    char err[512], msg[600];
    uint8_t *truth = NULL;
    vol_geom lg;
    int rc = -1;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    if (vol_read_labels(t->label_path, NULL, VOL_LABELS_AUTO, &lg, &truth, err, sizeof err) < 0) {
        snprintf(msg, sizeof msg, "label: %s", err);
        fail(t, 422, "invalid_label", msg);
        goto done;
    }
    if (vol_geom_same(&v->geom, &lg, 1e-3, err, sizeof err) < 0) {
        snprintf(msg, sizeof msg, "label and vol grids differ: %s", err);
        fail(t, 422, "invalid_label", msg);
        goto done;
    }
    if (metrics_compute(cls, truth, v->geom.nx, v->geom.ny, v->geom.nz, t->spacing, VOL_NCLASSES,
                        t->ms, err, sizeof err) < 0) {
        fail(t, 500, "internal", err);
        goto done;
    }
    double a, h;
    metrics_mean(t->ms, VOL_NCLASSES, &t->dice_mean, &a, &h);
    t->has_dice = 1;
    t->dice_ms = ms_since(&ts);
    rc = 0;
done:
    free(truth);
    return rc;
}

/* Test hook for load and fault tests: while the file named by MKDSEG_TEST_SEGMENT_GATE exists,
 * a segmentation holds its engine thread before it starts (logged once per task), so that a
 * test can keep the pool busy for exactly as long as it needs and release it by removing the
 * file. Without the variable it returns at once. */
static void test_gate(void)
{
    const char *gate = getenv("MKDSEG_TEST_SEGMENT_GATE");
    if (!gate || !*gate || access(gate, F_OK) != 0)
        return;
    log_json(LOG_WARN, NULL, "segmentation held by MKDSEG_TEST_SEGMENT_GATE", NULL);
    struct timespec nap = {0, 10 * 1000000L};
    while (access(gate, F_OK) == 0)
        nanosleep(&nap, NULL);
}

/* The disagreement map of a two-member model: its per-class and overall means into t, the map
 * itself to t->unc_path (float32 on the input grid). 0 / -1 with err. */
static int write_uncertainty(seg_task *t, const vol_t *v, const uint8_t *cls, const float *dis,
                             char *err, size_t errlen)
{
    size_t n = (size_t)(v->geom.nx * v->geom.ny * v->geom.nz);
    double sum[VOL_NCLASSES] = {0}, all = 0;
    long long cnt[VOL_NCLASSES] = {0};
    for (size_t i = 0; i < n; i++) {
        all += dis[i];
        if (cls[i] < VOL_NCLASSES)
            sum[cls[i]] += dis[i], cnt[cls[i]]++;
    }
    for (int c = 0; c < VOL_NCLASSES; c++)
        t->unc_mean[c] = cnt[c] ? sum[c] / (double)cnt[c] : 0;
    t->unc_all = n ? all / (double)n : 0;
    if (vol_write(t->unc_path, &v->geom, dis, VOL_DT_FLOAT32, err, errlen) < 0)
        return -1;
    t->has_unc = 1;
    return 0;
}

/* Runs one segmentation (on an engine thread). */
static void run_task(seg_task *t)
{
    struct timespec t0, ts;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    vol_t v = {0};
    uint8_t *cls = NULL;
    float *dis = NULL;
    char err[512];
    test_gate();
    mcache_ref *ref = mcache_acquire(t->model_id, t->model_path, err, sizeof err);
    t->load_ms = ms_since(&t0);
    if (!ref) {
        fail(t, 500, "model_unavailable", err);
        goto done;
    }
    const infer_model *m = mcache_model(ref);
    snprintf(t->method, sizeof t->method, "%s", m->method);
    clock_gettime(CLOCK_MONOTONIC, &ts);
    vol_read_opts ro = {.has_volume = t->has_volume, .volume = t->volume};
    if (vol_read_any(t->vol_path, &ro, &v, err, sizeof err) < 0) {
        fail(t, 422, "invalid_volume", err);
        goto done;
    }
    t->read_ms = ms_since(&ts);
    t->dims[0] = v.geom.nx, t->dims[1] = v.geom.ny, t->dims[2] = v.geom.nz;
    vol_geom_spacing(&v.geom, t->spacing);
    size_t n = (size_t)(v.geom.nx * v.geom.ny * v.geom.nz);
    if (!(cls = malloc(n))) {
        fail(t, 500, "internal", "out of memory");
        goto done;
    }
    if (m->members == 2 && t->unc_path[0] && !(dis = malloc(sizeof(float) * n))) {
        fail(t, 500, "internal", "out of memory");
        goto done;
    }
    infer_opts o = {-1, t->tta, 0.5};
    infer_timing tm = {0};
    if (infer_volume_ex(m, &v, &o, cls, dis, &tm, err, sizeof err) < 0) {
        fail(t, 422, "inference_failed", err);
        goto done;
    }
    t->prep_ms = tm.prep_s * 1e3, t->net_ms = tm.net_s * 1e3, t->post_ms = tm.post_s * 1e3;
    for (size_t i = 0; i < n; i++)
        if (cls[i] < VOL_NCLASSES)
            t->counts[cls[i]]++;
    if (t->label_path[0] && score_task(t, &v, cls) < 0)
        goto done;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    errno = 0;
    if (vol_write_labels(t->out_path, &v.geom, cls, t->out_mode, err, sizeof err) < 0) {
        int full = errno == ENOSPC || errno == EDQUOT || strstr(err, "No space left");
        fail(t, full ? 507 : 500, full ? "insufficient_storage" : "internal",
             full ? "the server's data folder is full: the label map cannot be written; retry later"
                  : err);
        goto done;
    }
    if (dis && write_uncertainty(t, &v, cls, dis, err, sizeof err) < 0) {
        fail(t, 500, "internal", err);
        goto done;
    }
    t->write_ms = ms_since(&ts);
    t->status = 0;
done:
    mcache_release(ref);
    free(dis);
    free(cls);
    vol_free(&v);
}

static void *pool_main(void *arg)
{
    (void)arg;
    svc_engine_threads();
    pthread_mutex_lock(&mu);
    for (;;) {
        while (!head && !stopping)
            pthread_cond_wait(&cv_work, &mu);
        if (!head && stopping)
            break;
        seg_task *t = head;
        head = t->next;
        if (!head)
            tail = NULL;
        n_waiting--;
        n_running++;
        prom_queue_set(n_waiting, capacity);
        pthread_mutex_unlock(&mu);
        t->queue_ms = ms_since(&t->t_submit);
        run_task(t);
        t->total_ms = ms_since(&t->t_submit);
        pthread_mutex_lock(&mu);
        n_running--;
        t->done = 1;
        pthread_cond_broadcast(&cv_done);
    }
    pthread_mutex_unlock(&mu);
    return NULL;
}

int epool_start(int workers, int queue_size, char *err, size_t errlen)
{
    if (workers < 1)
        workers = 1;
    threads = calloc((size_t)workers, sizeof *threads);
    if (!threads) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    capacity = queue_size;
    stopping = 0;
    for (int i = 0; i < workers; i++) {
        if (pthread_create(&threads[i], NULL, pool_main, NULL)) {
            snprintf(err, errlen, "cannot start engine thread %d", i);
            nthreads = i;
            epool_stop();
            return -1;
        }
        nthreads = i + 1;
    }
    running_pool = 1;
    prom_queue_set(0, capacity);
    log_json(LOG_INFO, NULL, "engine workers started",
             json_pack("{s:i,s:i}", "workers", workers, "queue_size", queue_size));
    return 0;
}

void epool_stop(void)
{
    pthread_mutex_lock(&mu);
    stopping = 1;
    running_pool = 0;
    /* waiting tasks fail: the server is going away */
    while (head) {
        seg_task *t = head;
        head = t->next;
        n_waiting--;
        fail(t, 503, "shutting_down", "the server is shutting down");
        t->done = 1;
    }
    tail = NULL;
    pthread_cond_broadcast(&cv_work);
    pthread_cond_broadcast(&cv_done);
    pthread_mutex_unlock(&mu);
    for (int i = 0; i < nthreads; i++)
        pthread_join(threads[i], NULL);
    free(threads);
    threads = NULL;
    nthreads = 0;
    pthread_mutex_lock(&mc_mu);
    for (size_t i = 0; i < sizeof mc / sizeof mc[0]; i++)
        if (mc[i] && mc[i]->refs == 0) {
            infer_model_free(mc[i]->m);
            free(mc[i]);
            mc[i] = NULL;
        }
    pthread_mutex_unlock(&mc_mu);
}

int epool_submit(seg_task *t)
{
    pthread_mutex_lock(&mu);
    if (!running_pool || n_waiting >= capacity) {
        pthread_mutex_unlock(&mu);
        return -1;
    }
    t->done = 0;
    t->next = NULL;
    clock_gettime(CLOCK_MONOTONIC, &t->t_submit);
    if (tail)
        tail->next = t;
    else
        head = t;
    tail = t;
    n_waiting++;
    prom_queue_set(n_waiting, capacity);
    pthread_cond_signal(&cv_work);
    pthread_mutex_unlock(&mu);
    return 0;
}

void epool_wait(seg_task *t)
{
    pthread_mutex_lock(&mu);
    while (!t->done)
        pthread_cond_wait(&cv_done, &mu);
    pthread_mutex_unlock(&mu);
}
