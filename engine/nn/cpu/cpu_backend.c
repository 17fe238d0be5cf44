/* cpu_backend.c: the CPU backend table: host memory, the op switches, Adam, argmax. */
#include "cpu.h"
#include "mkd_env.h"

#include <immintrin.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *cpu_alloc(size_t bytes)
{
    size_t n = (bytes + 63) / 64 * 64;
    return aligned_alloc(64, n ? n : 64);
}

static void cpu_free(void *p) { free(p); }
static void cpu_upload(void *dst, const void *host, size_t n) { memcpy(dst, host, n); }
static void cpu_download(void *host, const void *src, size_t n) { memcpy(host, src, n); }
static void cpu_zero(void *dst, size_t n) { memset(dst, 0, n); }
static void cpu_move(void *dst, const void *src, size_t n) { memmove(dst, src, n); }

int cpu_isa_avx512(void)
{
    static int isa = -1; /* every thread that finds it unset computes the same value */
    int v0 = __atomic_load_n(&isa, __ATOMIC_RELAXED);
    if (v0 < 0) {
        const char *v = mkd_env_raw(MKD_ENV_CPU_ISA);
        int want = 1;
        if (v && *v && !strcmp(v, "avx2"))
            want = 0;
        else if (v && *v && strcmp(v, "auto"))
            fprintf(stderr, "mkdseg: MKDSEG_CPU_ISA=%s is not auto or avx2: auto\n", v);
        v0 = want && __builtin_cpu_supports("avx512f");
        __atomic_store_n(&isa, v0, __ATOMIC_RELAXED);
    }
    return v0;
}

void cpu_grad_store(float *dst, const float *src, size_t n, int acc)
{
    if (acc) {
#pragma omp parallel for simd if (cpu_par_ok(2 * n)) schedule(static)
        for (size_t i = 0; i < n; i++)
            dst[i] += src[i];
    } else {
        memcpy(dst, src, n * sizeof *dst);
    }
}

/* blocked inputs (nn_blk) converted to NCHW now, before the op's kernels read them (inside
 * their parallel regions): 0, or -1 when a conversion failed (the context's error) */
static int sync_inputs(const nn_node *nd)
{
    for (int k = 0; k < nd->nin; k++) {
        const nn_tensor *x = nd->in[k];
        if (!x || !nn_is_blocked(x))
            continue;
        (void)nn_f32(x);
        if (nn_is_blocked(x))
            return -1;
    }
    return 0;
}

/* the op on blocked inputs (cpu_blk.c): 1 done, 0 not applicable, -1 error */
static int blocked_forward(nn_ctx *ctx, nn_node *nd)
{
    switch (nd->op) {
    case NN_OP_ADD:
        return cpu_blk_add(ctx, nd);
    case NN_OP_MAX_POOL:
        return cpu_blk_max_pool(ctx, nd);
    case NN_OP_CONCAT:
        return cpu_blk_concat(ctx, nd);
    default:
        return 0;
    }
}

static int cpu_forward(nn_ctx *ctx, nn_node *nd)
{
    const int r = blocked_forward(ctx, nd);
    if (r)
        return r < 0 ? -1 : 0;
    /* convolutions read blocked inputs in their primitive's layout themselves (cpu_conv.c) */
    if (nd->op != NN_OP_CONV2D && nd->op != NN_OP_CONV_T2D && nd->op != NN_OP_CONV2D_FUSED &&
        sync_inputs(nd))
        return -1;
    switch (nd->op) {
    case NN_OP_CONV2D:
    case NN_OP_CONV_T2D:
    case NN_OP_CONV2D_FUSED:
        return cpu_conv_fwd(ctx, nd);
    case NN_OP_INSTANCE_NORM:
        return cpu_instance_norm_fwd(ctx, nd);
    case NN_OP_BATCH_NORM:
        return cpu_batch_norm_fwd(ctx, nd);
    case NN_OP_RELU:
    case NN_OP_LEAKY_RELU:
    case NN_OP_TANH:
    case NN_OP_SIGMOID:
    case NN_OP_SOFTMAX:
    case NN_OP_ADD:
    case NN_OP_SCALE:
        return cpu_eltwise_fwd(ctx, nd);
    case NN_OP_PAD_REFLECT:
    case NN_OP_PAD_ZERO:
    case NN_OP_MAX_POOL:
    case NN_OP_CONCAT:
    case NN_OP_RESIZE_BILINEAR:
    case NN_OP_RESIZE_NEAREST:
        return cpu_shape_fwd(ctx, nd);
    case NN_OP_LOSS_CE:
    case NN_OP_LOSS_DICE:
    case NN_OP_LOSS_KD:
    case NN_OP_LOSS_L1:
    case NN_OP_LOSS_LSGAN:
        return cpu_loss_fwd(ctx, nd);
    case NN_OP_COUNT:
        break;
    }
    nn_ctx_fail(ctx, "cpu: no forward for op %d", (int)nd->op);
    return -1;
}

static int cpu_backward(nn_ctx *ctx, nn_node *nd)
{
    if (sync_inputs(nd))
        return -1;
    switch (nd->op) {
    case NN_OP_CONV2D:
    case NN_OP_CONV_T2D:
        return cpu_conv_bwd(ctx, nd);
    case NN_OP_INSTANCE_NORM:
        return cpu_instance_norm_bwd(ctx, nd);
    case NN_OP_BATCH_NORM:
        return cpu_batch_norm_bwd(ctx, nd);
    case NN_OP_RELU:
    case NN_OP_LEAKY_RELU:
    case NN_OP_TANH:
    case NN_OP_SIGMOID:
    case NN_OP_SOFTMAX:
    case NN_OP_ADD:
    case NN_OP_SCALE:
        return cpu_eltwise_bwd(ctx, nd);
    case NN_OP_PAD_REFLECT:
    case NN_OP_PAD_ZERO:
    case NN_OP_MAX_POOL:
    case NN_OP_CONCAT:
    case NN_OP_RESIZE_BILINEAR:
    case NN_OP_RESIZE_NEAREST:
        return cpu_shape_bwd(ctx, nd);
    case NN_OP_LOSS_CE:
    case NN_OP_LOSS_DICE:
    case NN_OP_LOSS_KD:
    case NN_OP_LOSS_L1:
    case NN_OP_LOSS_LSGAN:
        return cpu_loss_bwd(ctx, nd);
    case NN_OP_CONV2D_FUSED: /* never recorded: the front-end composes when recording */
    case NN_OP_COUNT:
        break;
    }
    nn_ctx_fail(ctx, "cpu: no backward for op %d", (int)nd->op);
    return -1;
}

static int cpu_adam(nn_param **qs, int nq, const nn_adam_cfg *cfg)
{
    for (int k = 0; k < nq; k++) {
        nn_param *q = qs[k];
        float *p = nn_f32(&q->t), *g = q->t.grad, *m = q->adam_m, *v = q->adam_v;
        size_t n = nn_numel(&q->t);
        double t = (double)q->adam_step;
        float b1 = cfg->beta1, b2 = cfg->beta2, wd = cfg->weight_decay, eps = cfg->eps;
        /* as torch.optim.Adam (single-tensor path): step = lr / bc1, denom = sqrt(v)/sqrt(bc2) + eps */
        float bc1 = (float)(1.0 - pow(b1, t));
        float bc2s = (float)sqrt(1.0 - pow(b2, t));
        float step = cfg->lr / bc1;
        /* blocks of 8 in AVX2 (the same operations in the same order as the scalar tail,
         * so the same bits: GCC does not vectorise sqrtf, which may set errno) */
        const size_t n8 = n / 8 * 8;
#pragma omp parallel for if (cpu_par_ok(4 * n)) schedule(static)
        for (size_t i = 0; i < n8; i += 8) {
            const __m256 vb1 = _mm256_set1_ps(b1), vb2 = _mm256_set1_ps(b2);
            const __m256 gi = _mm256_add_ps(
                _mm256_loadu_ps(g + i), _mm256_mul_ps(_mm256_set1_ps(wd), _mm256_loadu_ps(p + i)));
            const __m256 mi = _mm256_add_ps(_mm256_mul_ps(vb1, _mm256_loadu_ps(m + i)),
                                            _mm256_mul_ps(_mm256_set1_ps(1 - b1), gi));
            const __m256 vi =
                _mm256_add_ps(_mm256_mul_ps(vb2, _mm256_loadu_ps(v + i)),
                              _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(1 - b2), gi), gi));
            const __m256 den = _mm256_add_ps(
                _mm256_div_ps(_mm256_sqrt_ps(vi), _mm256_set1_ps(bc2s)), _mm256_set1_ps(eps));
            const __m256 upd = _mm256_div_ps(_mm256_mul_ps(_mm256_set1_ps(step), mi), den);
            _mm256_storeu_ps(m + i, mi);
            _mm256_storeu_ps(v + i, vi);
            _mm256_storeu_ps(p + i, _mm256_sub_ps(_mm256_loadu_ps(p + i), upd));
        }
        for (size_t i = n8; i < n; i++) {
            float gi = g[i] + wd * p[i];
            m[i] = b1 * m[i] + (1 - b1) * gi;
            v[i] = b2 * v[i] + (1 - b2) * gi * gi;
            p[i] -= step * m[i] / (sqrtf(v[i]) / bc2s + eps);
        }
    }
    return 0;
}

static int cpu_argmax(nn_ctx *ctx, const nn_tensor *x, int32_t *out)
{
    (void)ctx;
    const float *d = nn_f32(x);
    size_t hw = (size_t)x->h * x->w;
    for (int n = 0; n < x->n; n++) {
        const float *xn = d + (size_t)n * x->c * hw;
#pragma omp parallel for schedule(static) if (cpu_par_ok((size_t)x->c * hw))
        for (size_t i = 0; i < hw; i++) {
            int best = 0;
            float bv = xn[i];
            for (int c = 1; c < x->c; c++)
                if (xn[(size_t)c * hw + i] > bv) {
                    bv = xn[(size_t)c * hw + i];
                    best = c;
                }
            out[(size_t)n * hw + i] = best;
        }
    }
    return 0;
}

static const nn_backend cpu_backend = {
    .name = "cpu",
    .mem_alloc = cpu_alloc,
    .mem_free = cpu_free,
    .mem_upload = cpu_upload,
    .mem_download = cpu_download,
    .mem_zero = cpu_zero,
    .mem_move = cpu_move,
    .blk_sync = cpu_blk_sync,
    .forward = cpu_forward,
    .backward = cpu_backward,
    .adam_step = cpu_adam,
    .argmax = cpu_argmax,
    .ctx_free = cpu_conv_state_free,
};

const nn_backend *nn_backend_cpu(void) { return &cpu_backend; }

#ifdef MKD_HAVE_CUDA
/* kernels/cuda_backend.cu (declared in kernels/cuda.h) */
const nn_backend *nn_backend_cuda(void);
int nn_cuda_device_count(void);
const char *nn_cuda_device_describe(void);
#endif

const nn_backend *nn_backend_by_name(const char *name)
{
    if (!name || !strcmp(name, "cpu"))
        return &cpu_backend;
#ifdef MKD_HAVE_CUDA
    if (!strcmp(name, "cuda"))
        return nn_cuda_device_count() > 0 ? nn_backend_cuda() : NULL;
    if (!strcmp(name, "auto"))
        return nn_cuda_device_count() > 0 ? nn_backend_cuda() : &cpu_backend;
#else
    if (!strcmp(name, "auto"))
        return &cpu_backend;
#endif
    return NULL; /* "cuda" without a CUDA build, or an unknown name */
}

const char *nn_backend_name(const nn_backend *be) { return be ? be->name : "none"; }
int nn_backend_is_device(const nn_backend *be) { return be && strcmp(be->name, "cpu") != 0; }

const nn_backend *nn_backend_from_env(char *err, size_t errlen)
{
    const char *name = mkd_env_str(MKD_ENV_DEVICE);
    const nn_backend *be = nn_backend_by_name(name);
    if (!be && err)
        snprintf(err, errlen, "MKDSEG_DEVICE=%s: %s", name,
                 strcmp(name, "cuda") ? "unknown device (auto, cpu or cuda)"
                                      : "no CUDA device (or this build has no CUDA backend)");
    return be;
}

const char *nn_device_describe(const char *name)
{
    static char buf[512];
    if (!name)
        name = mkd_env_str(MKD_ENV_DEVICE);
    const nn_backend *be = nn_backend_by_name(name);
    if (be == &cpu_backend)
        snprintf(buf, sizeof buf, "cpu (%d threads)", nn_get_threads());
#ifdef MKD_HAVE_CUDA
    else if (be)
        snprintf(buf, sizeof buf, "cuda (%s)", nn_cuda_device_describe());
    else if (!strcmp(name, "cuda"))
        snprintf(buf, sizeof buf, "none (MKDSEG_DEVICE=cuda: %s)", nn_cuda_device_describe());
#endif
    else
        snprintf(buf, sizeof buf, "none (unknown or unavailable device '%s')", name);
    return buf;
}
