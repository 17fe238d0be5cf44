/* engine_pool.h: the bounded pool of engine threads that run /segment requests, and the cache
 * of loaded models.
 *
 * HTTP threads never run the network: a handler fills a seg_task, submits it (refused at once
 * when queue-size tasks are already waiting: the caller answers 503 with Retry-After) and
 * waits for it. Models are loaded once and kept in a small cache keyed by model id; every task
 * holds a reference while it runs, so promoting another model never pulls weights out from
 * under a request in flight (the old model is freed when its last user is done and it is
 * evicted). */
#ifndef MKDSEG_ENGINE_POOL_H
#define MKDSEG_ENGINE_POOL_H

#include <pthread.h>
#include <stdint.h>

#include "infer.h"
#include "seg_metrics.h"
#include "vol.h"

typedef struct seg_task {
    /* inputs */
    long long model_id;
    char model_path[1200]; /* weights file */
    char vol_path[1200];   /* the image (.nii / .nii.gz name) */
    char label_path[1200]; /* optional ground truth ("" = none) */
    char out_path[1200];   /* the label map to write (NRRD when it ends in .nrrd) */
    int has_volume;        /* 1: segment volume `volume` (0-based) of a 4-D image */
    long long volume;
    char unc_path[1200]; /* the disagreement map to write (float32 NIfTI) for a two-member
                             * model; not written for one member */
    vol_label_mode out_mode;
    int tta;
    /* outputs */
    int status; /* 0 ok, else the HTTP status to answer */
    char code[32];
    char err[768];
    int64_t dims[3];
    double spacing[3];
    long long counts[VOL_NCLASSES];
    int has_dice;
    metrics_struct ms[VOL_NCLASSES];
    double dice_mean;
    int has_unc;                   /* unc_path was written */
    double unc_mean[VOL_NCLASSES]; /* mean disagreement over the voxels given class c */
    double unc_all;                /* mean disagreement over the whole volume */
    char method[32];
    double queue_ms, load_ms, read_ms, prep_ms, net_ms, post_ms, dice_ms, write_ms, total_ms;
    /* synchronisation (owned by the pool) */
    struct timespec t_submit;
    int done;
    struct seg_task *next;
} seg_task;

/* Starts `workers` engine threads with room for `queue_size` waiting tasks. 0 / -1 + err. */
int epool_start(int workers, int queue_size, char *err, size_t errlen);
/* Stops the threads after the running tasks (waiting tasks fail with 503). */
void epool_stop(void);

/* Queues t. 0, or -1 when the queue is full or the pool is not running (answer 503). */
int epool_submit(seg_task *t);
/* Blocks until t is done. */
void epool_wait(seg_task *t);
/* Tasks waiting and running now. */
void epool_depth(int *waiting, int *running);

/* ---- model cache ---- */
typedef struct mcache_ref mcache_ref;
/* The loaded model `id` (weights at path), loading it when needed. Holds a reference until
 * mcache_release. NULL + err when the file does not load. */
mcache_ref *mcache_acquire(long long id, const char *path, char *err, size_t errlen);
const infer_model *mcache_model(const mcache_ref *r);
void mcache_release(mcache_ref *r);
/* Models loaded now (for tests and metrics). */
int mcache_loaded(void);

#endif
