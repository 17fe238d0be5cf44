/* cuda_adam.cu: Adam as one fused kernel over every parameter of a step (twin of cpu_adam
 * in engine/nn/cpu/cpu_backend.c; torch.optim.Adam's single-tensor formula):
 *   g += wd p;  m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;
 *   p -= (lr / bc1) m / (sqrt(v) / sqrt(bc2) + eps),  bc_k = 1 - b_k^t (t per parameter).
 * A table of per-parameter descriptors (pointers, element offsets, bias corrections) goes to
 * the device once per step; each thread finds its parameter by binary search over the
 * offsets. The table goes through a ring of pinned host and device buffers shared by the
 * process (below; guarded by a mutex: optimisers of different threads take turns for the
 * upload and launch), so a step never waits for the device. */
#include "cuda.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>

typedef struct {
    float *p;
    const float *g;
    float *m, *v;
    size_t off;              /* first global element index of this parameter */
    float step, bc2s;        /* lr / bc1, sqrt(bc2) */
} adam_desc;

static __global__ void k_adam(const adam_desc *d, int nq, size_t total, float b1, float b2,
                              float eps, float wd)
{
    CUDA_FOR(i, total)
    {
        int lo = 0, hi = nq - 1;         /* last descriptor with off <= i */
        while (lo < hi) {
            int mid = (lo + hi + 1) / 2;
            if (d[mid].off <= i)
                lo = mid;
            else
                hi = mid - 1;
        }
        const adam_desc q = d[lo];
        size_t j = i - q.off;
        float gi = q.g[j] + wd * q.p[j];
        float m = b1 * q.m[j] + (1 - b1) * gi;
        float v = b2 * q.v[j] + (1 - b2) * gi * gi;
        q.m[j] = m;
        q.v[j] = v;
        q.p[j] -= q.step * m / (sqrtf(v) / q.bc2s + eps);
    }
}

/* The descriptor tables travel to the device without a host synchronisation: a ring of
 * RING pinned host tables and RING device tables, each slot reused only after the event
 * recorded behind its kernel has passed (RING steps ago: in practice never a wait). The
 * ring is process-lifetime (one per process, under a lock), grown when a step has more
 * parameters than a slot holds. */
#define RING 8
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static adam_desc *g_host[RING], *g_dev[RING];
static cudaEvent_t g_ev[RING];
static int g_used[RING];
static int g_cap, g_next;

static void ring_free(void)
{
    for (int k = 0; k < RING; k++) {
        if (g_used[k])
            cudaEventSynchronize(g_ev[k]);
        if (g_host[k])
            cudaFreeHost(g_host[k]);
        if (g_dev[k])
            cudaFree(g_dev[k]);
        if (g_ev[k])
            cudaEventDestroy(g_ev[k]);
        g_host[k] = g_dev[k] = NULL;
        g_ev[k] = NULL;
        g_used[k] = 0;
    }
    g_cap = 0;
}

static int ring_grow(int nq)
{
    ring_free();
    int cap = nq * 2;
    for (int k = 0; k < RING; k++)
        if (cudaMallocHost((void **)&g_host[k], (size_t)cap * sizeof(adam_desc)) != cudaSuccess ||
            cudaMalloc((void **)&g_dev[k], (size_t)cap * sizeof(adam_desc)) != cudaSuccess ||
            cudaEventCreateWithFlags(&g_ev[k], cudaEventDisableTiming) != cudaSuccess) {
            cudaGetLastError();
            ring_free();
            return -1;
        }
    g_cap = cap;
    return 0;
}

int cuda_adam(nn_param **qs, int nq, const nn_adam_cfg *cfg)
{
    if (nq <= 0)
        return 0;
    int rc = -1;
    pthread_mutex_lock(&g_lock);
    if (nq > g_cap && ring_grow(nq))
        goto done;
    {
        int k = g_next;
        g_next = (g_next + 1) % RING;
        if (g_used[k] && cudaEventSynchronize(g_ev[k]) != cudaSuccess)
            goto done;
        adam_desc *h = g_host[k];
        size_t total = 0;
        for (int i = 0; i < nq; i++) {
            nn_param *q = qs[i];
            double t = (double)q->adam_step;
            h[i].p = nn_f32(&q->t);
            h[i].g = q->t.grad;
            h[i].m = q->adam_m;
            h[i].v = q->adam_v;
            h[i].off = total;
            h[i].step = cfg->lr / (float)(1.0 - pow(cfg->beta1, t));
            h[i].bc2s = (float)sqrt(1.0 - pow(cfg->beta2, t));
            total += nn_numel(&q->t);
        }
        if (cudaMemcpyAsync(g_dev[k], h, (size_t)nq * sizeof *h, cudaMemcpyHostToDevice, 0) !=
            cudaSuccess)
            goto done;
        k_adam<<<cuda_blocks(total), CUDA_THREADS>>>(g_dev[k], nq, total, cfg->beta1,
                                                     cfg->beta2, cfg->eps, cfg->weight_decay);
        if (cudaGetLastError() != cudaSuccess || cudaEventRecord(g_ev[k], 0) != cudaSuccess)
            goto done;
        g_used[k] = 1;
        rc = 0;
    }
done:
    cudaGetLastError();
    pthread_mutex_unlock(&g_lock);
    return rc;
}
