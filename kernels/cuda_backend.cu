/* cuda_backend.cu: the CUDA backend table (twin of engine/nn/cpu/cpu_backend.c): device
 * memory, the op switches, per-context state, device queries. */
#include "cuda.h"
#include "mkd_env.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <time.h>

/* ---- memory (legacy default stream: ordered with every kernel) ------------------------- */

static void *cu_alloc(size_t bytes)
{
    void *p = NULL;
    if (cudaMalloc(&p, bytes ? bytes : 64) != cudaSuccess) {
        cudaGetLastError();  /* clear the sticky-free error so later calls are not blamed */
        return NULL;
    }
    return p;                /* cudaMalloc aligns to at least 256 bytes */
}

static void cu_free(void *p)
{
    if (p)
        cudaFree(p);
}

/* Small uploads (a backward pass's seed gradient, a few parameters) go through a ring of
 * pinned staging slots and cudaMemcpyAsync, so they do not wait for the device: a copy from
 * pageable memory first synchronises the stream. A slot is reused once the event recorded
 * after its copy has passed. Larger uploads (batches of images) copy synchronously. */
#define UP_SLOTS 32
#define UP_SLOT_BYTES 65536
static pthread_mutex_t g_up_lock = PTHREAD_MUTEX_INITIALIZER;
static char *g_up_host;              /* UP_SLOTS x UP_SLOT_BYTES, pinned */
static cudaEvent_t g_up_ev[UP_SLOTS];
static int g_up_used[UP_SLOTS], g_up_next, g_up_state;   /* state: 0 untried, 1 ok, -1 off */

static int up_ring_init(void)
{
    if (g_up_state)
        return g_up_state > 0;
    g_up_state = -1;
    if (cudaMallocHost((void **)&g_up_host, (size_t)UP_SLOTS * UP_SLOT_BYTES) != cudaSuccess) {
        cudaGetLastError();
        g_up_host = NULL;
        return 0;
    }
    for (int k = 0; k < UP_SLOTS; k++)
        if (cudaEventCreateWithFlags(&g_up_ev[k], cudaEventDisableTiming) != cudaSuccess) {
            cudaGetLastError();
            return 0;
        }
    g_up_state = 1;
    return 1;
}

static void cu_upload(void *dst, const void *host, size_t n)
{
    if (!n)
        return;
    if (n <= UP_SLOT_BYTES) {
        pthread_mutex_lock(&g_up_lock);
        if (up_ring_init()) {
            int k = g_up_next;
            g_up_next = (g_up_next + 1) % UP_SLOTS;
            if (g_up_used[k])
                cudaEventSynchronize(g_up_ev[k]);
            char *slot = g_up_host + (size_t)k * UP_SLOT_BYTES;
            memcpy(slot, host, n);
            cudaError_t e = cudaMemcpyAsync(dst, slot, n, cudaMemcpyHostToDevice, 0);
            if (e == cudaSuccess)
                e = cudaEventRecord(g_up_ev[k], 0);
            g_up_used[k] = 1;
            pthread_mutex_unlock(&g_up_lock);
            if (e != cudaSuccess)
                fprintf(stderr, "cuda: upload of %zu bytes failed: %s\n", n,
                        cudaGetErrorString(cudaGetLastError()));
            return;
        }
        pthread_mutex_unlock(&g_up_lock);
    }
    if (cudaMemcpy(dst, host, n, cudaMemcpyHostToDevice) != cudaSuccess)
        fprintf(stderr, "cuda: upload of %zu bytes failed: %s\n", n,
                cudaGetErrorString(cudaGetLastError()));
}

static void cu_download(void *host, const void *src, size_t n)
{
    if (n && cudaMemcpy(host, src, n, cudaMemcpyDeviceToHost) != cudaSuccess)
        fprintf(stderr, "cuda: download of %zu bytes failed: %s\n", n,
                cudaGetErrorString(cudaGetLastError()));
}

static void cu_zero(void *dst, size_t n)
{
    if (n)
        cudaMemsetAsync(dst, 0, n, 0);
}

/* memmove: cudaMemcpy's ranges must not overlap. Overlapping moves (nn_ctx_scope_end moves
 * a kept tensor down to the scope's start) copy in pieces of the distance between the two
 * ranges, in the order that never reads a byte already overwritten (stream-ordered), or
 * through a temporary when that would take more than 32 pieces. */
static void cu_move(void *dst, const void *src, size_t n)
{
    if (!n || dst == src)
        return;
    char *d = (char *)dst;
    const char *s = (const char *)src;
    if (d + n <= s || s + n <= d) {
        cudaMemcpyAsync(dst, src, n, cudaMemcpyDeviceToDevice, 0);
        return;
    }
    size_t gap = d < s ? (size_t)(s - d) : (size_t)(d - s);
    if (n / gap <= 32) {
        if (d < s) {         /* front to back */
            for (size_t o = 0; o < n; o += gap)
                cudaMemcpyAsync(d + o, s + o, n - o < gap ? n - o : gap,
                                cudaMemcpyDeviceToDevice, 0);
        } else {             /* back to front */
            for (size_t end = n; end > 0;) {
                size_t len = end < gap ? end : gap;
                end -= len;
                cudaMemcpyAsync(d + end, s + end, len, cudaMemcpyDeviceToDevice, 0);
            }
        }
        return;
    }
    void *tmp = cu_alloc(n);
    if (!tmp) {
        fprintf(stderr, "cuda: mem_move: out of device memory\n");
        return;
    }
    cudaMemcpyAsync(tmp, src, n, cudaMemcpyDeviceToDevice, 0);
    cudaMemcpyAsync(dst, tmp, n, cudaMemcpyDeviceToDevice, 0);
    cudaFree(tmp);           /* cudaFree waits for the device */
}

/* ---- helpers ------------------------------------------------------------------------- */

int cuda_check(nn_ctx *ctx, const char *what)
{
    cudaError_t e = cudaGetLastError();
    if (e == cudaSuccess)
        return 0;
    nn_ctx_fail(ctx, "cuda: %s: %s", what, cudaGetErrorString(e));
    return -1;
}

static __global__ void k_add(float *dst, const float *src, size_t n)
{
    CUDA_FOR(i, n) dst[i] += src[i];
}

int cuda_grad_store(nn_ctx *ctx, float *dst, const float *src, size_t n, int acc)
{
    if (acc)
        k_add<<<cuda_blocks(n), CUDA_THREADS>>>(dst, src, n);
    else
        cudaMemcpyAsync(dst, src, n * sizeof(float), cudaMemcpyDeviceToDevice, 0);
    return cuda_check(ctx, "grad_store");
}

cuda_state *cuda_state_get(nn_ctx *ctx)
{
    void **slot = nn_ctx_backend_state(ctx);
    if (*slot)
        return (cuda_state *)*slot;
    cuda_state *s = (cuda_state *)calloc(1, sizeof *s);
    if (!s) {
        nn_ctx_fail(ctx, "cuda: out of memory (state)");
        return NULL;
    }
    cudnnStatus_t st = cudnnCreate(&s->dnn);
    if (st != CUDNN_STATUS_SUCCESS) {
        nn_ctx_fail(ctx, "cuda: cudnnCreate: %s", cudnnGetErrorString(st));
        free(s);
        return NULL;
    }
    cudnnSetStream(s->dnn, 0);
    *slot = s;
    return s;
}

static void cu_ctx_free(nn_ctx *ctx)
{
    void **slot = nn_ctx_backend_state(ctx);
    cuda_state *s = (cuda_state *)*slot;
    if (!s)
        return;
    cuda_conv_cache_free(s->conv);
    if (s->ws)
        cudaFree(s->ws);
    cudnnDestroy(s->dnn);
    free(s);
    *slot = NULL;
}

/* ---- profile (MKDSEG_CUDA_PROFILE=1): per op, direction and shape, the device time of
 * each call, measured by synchronising before and after it (so the profile slows the run;
 * use it to find where time goes, not for the benchmark). Printed to stderr at exit, the
 * largest first. ---------------------------------------------------------------------- */

typedef struct {
    char key[96];
    double ms;
    long calls;
} prof_ent;
static prof_ent g_prof[1024];
static int g_nprof = -1;     /* -1: not decided; 0: off; else entries + 1 */
static pthread_mutex_t g_prof_lock = PTHREAD_MUTEX_INITIALIZER;

static double prof_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

static int prof_cmp(const void *a, const void *b)
{
    double x = ((const prof_ent *)a)->ms, y = ((const prof_ent *)b)->ms;
    return x < y ? 1 : x > y ? -1 : 0;
}

static void prof_dump(void)
{
    int n = g_nprof - 1;
    if (n <= 0)
        return;
    qsort(g_prof, (size_t)n, sizeof *g_prof, prof_cmp);
    double tot = 0;
    for (int i = 0; i < n; i++)
        tot += g_prof[i].ms;
    fprintf(stderr, "cuda profile: %.1f ms in %d op kinds (synchronised per call)\n", tot, n);
    for (int i = 0; i < n && i < 60; i++)
        fprintf(stderr, "  %9.2f ms %5.1f%% %7ld calls  %s\n", g_prof[i].ms,
                100.0 * g_prof[i].ms / (tot > 0 ? tot : 1), g_prof[i].calls, g_prof[i].key);
}

static int prof_on(void)
{
    if (g_nprof < 0) {
        g_nprof = mkd_env_pos(MKD_ENV_CUDA_PROFILE) > 0 ? 1 : 0;
        if (g_nprof)
            atexit(prof_dump);
    }
    return g_nprof > 0;
}

static void prof_add(const char *key, double ms)
{
    pthread_mutex_lock(&g_prof_lock);
    int n = g_nprof - 1, i;
    for (i = 0; i < n; i++)
        if (!strcmp(g_prof[i].key, key))
            break;
    if (i == n && n < (int)(sizeof g_prof / sizeof g_prof[0])) {
        snprintf(g_prof[i].key, sizeof g_prof[i].key, "%s", key);
        g_prof[i].ms = 0;
        g_prof[i].calls = 0;
        g_nprof++;
    }
    if (i < (int)(sizeof g_prof / sizeof g_prof[0])) {
        g_prof[i].ms += ms;
        g_prof[i].calls++;
    }
    pthread_mutex_unlock(&g_prof_lock);
}

extern "C" void nn_cuda_profile_reset(void)
{
    pthread_mutex_lock(&g_prof_lock);
    if (g_nprof > 0)
        g_nprof = 1;
    pthread_mutex_unlock(&g_prof_lock);
}

static void prof_key(char *k, size_t len, const nn_node *nd, const char *dir)
{
    const nn_tensor *x = nd->nin > 0 ? nd->in[0] : NULL, *y = nd->out;
    int p = snprintf(k, len, "%s %s", nn_op_name(nd->op), dir);
    if (x && p > 0 && (size_t)p < len)
        p += snprintf(k + p, len - (size_t)p, " %dx%dx%dx%d", x->n, x->c, x->h, x->w);
    if (y && p > 0 && (size_t)p < len)
        snprintf(k + p, len - (size_t)p, " -> %dx%dx%dx%d", y->n, y->c, y->h, y->w);
}

static int profiled(nn_ctx *ctx, nn_node *nd, int bwd, int (*f)(nn_ctx *, nn_node *))
{
    char key[96];
    cudaDeviceSynchronize();
    double t0 = prof_now();
    int rc = f(ctx, nd);
    cudaDeviceSynchronize();
    prof_key(key, sizeof key, nd, bwd ? "bwd" : "fwd");
    prof_add(key, prof_now() - t0);
    return rc;
}

static int cu_forward_op(nn_ctx *ctx, nn_node *nd);
static int cu_backward_op(nn_ctx *ctx, nn_node *nd);

static int cu_forward(nn_ctx *ctx, nn_node *nd)
{
    return prof_on() ? profiled(ctx, nd, 0, cu_forward_op) : cu_forward_op(ctx, nd);
}

static int cu_backward(nn_ctx *ctx, nn_node *nd)
{
    return prof_on() ? profiled(ctx, nd, 1, cu_backward_op) : cu_backward_op(ctx, nd);
}

static int cu_adam(nn_param **qs, int nq, const nn_adam_cfg *cfg)
{
    if (!prof_on())
        return cuda_adam(qs, nq, cfg);
    cudaDeviceSynchronize();
    double t0 = prof_now();
    int rc = cuda_adam(qs, nq, cfg);
    cudaDeviceSynchronize();
    prof_add("adam (fused)", prof_now() - t0);
    return rc;
}

/* ---- the switches (same grouping as the CPU's) ---------------------------------------- */

static int cu_forward_op(nn_ctx *ctx, nn_node *nd)
{
    switch (nd->op) {
    case NN_OP_CONV2D:
    case NN_OP_CONV_T2D:
    case NN_OP_CONV2D_FUSED:
        return cuda_conv_fwd(ctx, nd);
    case NN_OP_INSTANCE_NORM:
        return cuda_instance_norm_fwd(ctx, nd);
    case NN_OP_BATCH_NORM:
        return cuda_batch_norm_fwd(ctx, nd);
    case NN_OP_RELU:
    case NN_OP_LEAKY_RELU:
    case NN_OP_TANH:
    case NN_OP_SIGMOID:
    case NN_OP_SOFTMAX:
    case NN_OP_ADD:
    case NN_OP_SCALE:
        return cuda_eltwise_fwd(ctx, nd);
    case NN_OP_PAD_REFLECT:
    case NN_OP_PAD_ZERO:
    case NN_OP_MAX_POOL:
    case NN_OP_CONCAT:
    case NN_OP_RESIZE_BILINEAR:
    case NN_OP_RESIZE_NEAREST:
        return cuda_shape_fwd(ctx, nd);
    case NN_OP_LOSS_CE:
    case NN_OP_LOSS_DICE:
    case NN_OP_LOSS_KD:
    case NN_OP_LOSS_L1:
    case NN_OP_LOSS_LSGAN:
        return cuda_loss_fwd(ctx, nd);
    case NN_OP_COUNT:
        break;
    }
    nn_ctx_fail(ctx, "cuda: no forward for op %d", (int)nd->op);
    return -1;
}

static int cu_backward_op(nn_ctx *ctx, nn_node *nd)
{
    switch (nd->op) {
    case NN_OP_CONV2D:
    case NN_OP_CONV_T2D:
        return cuda_conv_bwd(ctx, nd);
    case NN_OP_INSTANCE_NORM:
        return cuda_instance_norm_bwd(ctx, nd);
    case NN_OP_BATCH_NORM:
        return cuda_batch_norm_bwd(ctx, nd);
    case NN_OP_RELU:
    case NN_OP_LEAKY_RELU:
    case NN_OP_TANH:
    case NN_OP_SIGMOID:
    case NN_OP_SOFTMAX:
    case NN_OP_ADD:
    case NN_OP_SCALE:
        return cuda_eltwise_bwd(ctx, nd);
    case NN_OP_PAD_REFLECT:
    case NN_OP_PAD_ZERO:
    case NN_OP_MAX_POOL:
    case NN_OP_CONCAT:
    case NN_OP_RESIZE_BILINEAR:
    case NN_OP_RESIZE_NEAREST:
        return cuda_shape_bwd(ctx, nd);
    case NN_OP_LOSS_CE:
    case NN_OP_LOSS_DICE:
    case NN_OP_LOSS_KD:
    case NN_OP_LOSS_L1:
    case NN_OP_LOSS_LSGAN:
        return cuda_loss_bwd(ctx, nd);
    case NN_OP_CONV2D_FUSED:     /* never recorded */
    case NN_OP_COUNT:
        break;
    }
    nn_ctx_fail(ctx, "cuda: no backward for op %d", (int)nd->op);
    return -1;
}

static const nn_backend cuda_backend = {
    "cuda",
    cu_alloc,
    cu_free,
    cu_upload,
    cu_download,
    cu_zero,
    cu_move,
    cu_forward,
    cu_backward,
    cu_adam,
    cuda_argmax,
    cu_ctx_free,
};

extern "C" const nn_backend *nn_backend_cuda(void) { return &cuda_backend; }

/* file-scope caches: function-local statics would need libstdc++'s guards, and the C
 * link line has no libstdc++ (a benign race: every thread computes the same value) */
static int g_count = -1;
static char g_desc[768];

extern "C" int nn_cuda_device_count(void)
{
    int cached = g_count;
    if (cached < 0) {
        int n = 0;
        if (cudaGetDeviceCount(&n) != cudaSuccess) {
            cudaGetLastError();
            n = 0;
        }
        g_count = cached = n;
    }
    return cached;
}

extern "C" const char *nn_cuda_device_describe(void)
{
    char *buf = g_desc;
    if (nn_cuda_device_count() <= 0)
        return "no CUDA device";
    int dev = 0;
    cudaDeviceProp p;
    cudaGetDevice(&dev);
    if (cudaGetDeviceProperties(&p, dev) != cudaSuccess) {
        cudaGetLastError();
        return "CUDA device (properties unavailable)";
    }
    snprintf(buf, sizeof g_desc, "%s, cc %d.%d, %.0f GiB, cuDNN %zu", p.name, p.major, p.minor,
             (double)p.totalGlobalMem / (1024.0 * 1024 * 1024), cudnnGetVersion());
    return buf;
}
