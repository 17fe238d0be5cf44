/* cuda_adam.cu: Adam as one fused kernel over every parameter of a step (twin of cpu_adam
 * in engine/nn/cpu/cpu_backend.c; torch.optim.Adam's single-tensor formula):
 *   g += wd p;  m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;
 *   p -= (lr / bc1) m / (sqrt(v) / sqrt(bc2) + eps),  bc_k = 1 - b_k^t (t per parameter).
 * A table of per-parameter descriptors (pointers, element offsets, bias corrections) goes to
 * the device once per step; each thread finds its parameter by binary search over the
 * offsets. The table lives in a grow-only device buffer shared by the process (guarded by
 * a mutex: optimisers of different threads take turns for the upload and launch). */
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

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static adam_desc *g_dev;     /* device table */
static int g_cap;

int cuda_adam(nn_param **qs, int nq, const nn_adam_cfg *cfg)
{
    if (nq <= 0)
        return 0;
    adam_desc *h = (adam_desc *)malloc((size_t)nq * sizeof *h);
    if (!h)
        return -1;
    size_t total = 0;
    for (int k = 0; k < nq; k++) {
        nn_param *q = qs[k];
        double t = (double)q->adam_step;
        h[k].p = nn_f32(&q->t);
        h[k].g = q->t.grad;
        h[k].m = q->adam_m;
        h[k].v = q->adam_v;
        h[k].off = total;
        h[k].step = cfg->lr / (float)(1.0 - pow(cfg->beta1, t));
        h[k].bc2s = (float)sqrt(1.0 - pow(cfg->beta2, t));
        total += nn_numel(&q->t);
    }
    int rc = -1;
    pthread_mutex_lock(&g_lock);
    if (nq > g_cap) {
        if (g_dev)
            cudaFree(g_dev);
        g_dev = NULL;
        g_cap = 0;
        if (cudaMalloc((void **)&g_dev, (size_t)nq * 2 * sizeof *g_dev) != cudaSuccess) {
            cudaGetLastError();
            g_dev = NULL;
            goto done;
        }
        g_cap = nq * 2;
    }
    /* synchronous copy: the previous step's kernel has finished reading the table */
    if (cudaMemcpy(g_dev, h, (size_t)nq * sizeof *h, cudaMemcpyHostToDevice) != cudaSuccess)
        goto done;
    k_adam<<<cuda_blocks(total), CUDA_THREADS>>>(g_dev, nq, total, cfg->beta1, cfg->beta2,
                                                 cfg->eps, cfg->weight_decay);
    rc = cudaGetLastError() == cudaSuccess ? 0 : -1;
done:
    pthread_mutex_unlock(&g_lock);
    free(h);
    return rc;
}
