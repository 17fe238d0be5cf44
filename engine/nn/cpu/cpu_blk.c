/* cpu_blk.c: activations kept in oneDNN's channel-blocked layout between ops (nn_blk in nn.h).
 *
 * oneDNN's convolutions run on nChw8c / nChw16c ([N, C/B, H, W, B]); mkdseg's ops and its API
 * use NCHW. Converting around every convolution cost 10-13% of a full-size inference pass
 * (docs/benchmarks.md). So an unrecorded convolution (inference: nothing needs its output for
 * a backward pass) writes its output in its primitive's blocked layout, in the tensor's own
 * data, and the ops that a U-Net's inference runs between convolutions take blocked inputs as
 * they are: the next convolution (when its primitive wants that layout), the residual add (with
 * its ReLU), max pooling, and channel concatenation of blocked tensors (cpu_backend.c tries
 * these kernels first). Every other reader goes through nn_f32 or nn_tensor_read, which
 * converts the data to NCHW in place once (cpu_blk_sync); cpu_backend.c does that for every
 * input of every other op before the op runs, outside any parallel region.
 *
 * Only tensors whose channels are a whole number of blocks are made blocked, so the blocked
 * data has no padding and the size of the NCHW data. MKDSEG_CPU_LAYOUT=plain turns it off. */
#include "cpu.h"
#include "mkd_env.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

int cpu_blk_enabled(void)
{
    static int on = -1; /* every thread that finds it unset computes the same value */
    int v0 = __atomic_load_n(&on, __ATOMIC_RELAXED);
    if (v0 < 0) {
        const char *v = mkd_env_raw(MKD_ENV_CPU_LAYOUT);
        v0 = 1;
        if (v && *v && !strcmp(v, "plain"))
            v0 = 0;
        else if (v && *v && strcmp(v, "auto"))
            fprintf(stderr, "mkdseg: MKDSEG_CPU_LAYOUT=%s is not auto or plain: auto\n", v);
        __atomic_store_n(&on, v0, __ATOMIC_RELAXED);
    }
    return v0;
}

int cpu_blk_can(const nn_node *nd, const nn_tensor *t, int block)
{
    return !nd->recorded && cpu_blk_enabled() && (block == 8 || block == 16) &&
           t->dtype == NN_F32 && t->c % block == 0;
}

float *cpu_blk_attach(nn_ctx *ctx, nn_tensor *t, int block)
{
    nn_blk *b = nn_ctx_scratch(ctx, sizeof *b);
    if (!b)
        return NULL;
    *b = (nn_blk){block, 1, ctx};
    t->blk = b;
    return t->data;
}

/* [N, C/B, HW, B] src -> [N, C, HW] dst, in runs of 64 positions so that the B reads of a
 * run's lines stay in L1 */
static void to_nchw(const nn_tensor *t, const float *src, float *dst)
{
    const int B = t->blk->block, CB = t->c / B;
    const size_t hw = (size_t)t->h * t->w;
    const int jobs = t->n * CB;
#pragma omp parallel for schedule(static) if (cpu_par_ok(2 * nn_numel(t)))
    for (int q = 0; q < jobs; q++) {
        const float *s = src + (size_t)q * hw * B;
        float *d = dst + (size_t)q * B * hw;
        for (size_t i0 = 0; i0 < hw; i0 += 64) {
            const size_t i1 = i0 + 64 < hw ? i0 + 64 : hw;
            for (int j = 0; j < B; j++) {
                float *dj = d + (size_t)j * hw;
                for (size_t i = i0; i < i1; i++)
                    dj[i] = s[i * B + j];
            }
        }
    }
}

/* in place, through a copy in the arena */
int cpu_blk_sync(const nn_tensor *t)
{
    nn_ctx *ctx = t->blk->ctx;
    const size_t bytes = nn_numel(t) * sizeof(float);
    nn_arena_mark m = nn_arena_pos(nn_ctx_arena(ctx));
    float *src = nn_ctx_scratch(ctx, bytes);
    if (!src) { /* out of memory: the values stay blocked, the error is the context's */
        nn_ctx_fail(ctx, "cpu: out of memory converting a blocked tensor");
        return -1;
    }
    memcpy(src, t->data, bytes);
    to_nchw(t, src, t->data);
    nn_arena_rollback(nn_ctx_arena(ctx), m);
    return 0;
}

const float *cpu_blk_nchw_copy(nn_ctx *ctx, const nn_tensor *t)
{
    float *dst = nn_ctx_scratch(ctx, nn_numel(t) * sizeof(float));
    if (dst)
        to_nchw(t, t->data, dst);
    return dst;
}

/* y = a + b (then the ReLU), y and a blocked, b NCHW: b read through the layout change, in
 * runs of 64 positions (as cpu_blk_sync) */
static void add_mixed(const float *a, const float *b, float *y, int jobs, size_t hw, int B,
                      int relu)
{
#pragma omp parallel for schedule(static) if (cpu_par_ok(3 * (size_t)jobs * B * hw))
    for (int q = 0; q < jobs; q++) {
        const float *aq = a + (size_t)q * hw * B, *bq = b + (size_t)q * B * hw;
        float *yq = y + (size_t)q * hw * B;
        for (size_t i0 = 0; i0 < hw; i0 += 64) {
            const size_t i1 = i0 + 64 < hw ? i0 + 64 : hw;
            for (int j = 0; j < B; j++) {
                const float *bj = bq + (size_t)j * hw;
                for (size_t i = i0; i < i1; i++) {
                    const float v = aq[i * B + j] + bj[i];
                    yq[i * B + j] = relu ? (v > 0 ? v : 0.0f) : v;
                }
            }
        }
    }
}

int cpu_blk_add(nn_ctx *ctx, nn_node *nd)
{
    const nn_tensor *a = nd->in[0], *b = nd->in[1];
    const nn_tensor *bl = nn_is_blocked(a) ? a : nn_is_blocked(b) ? b : NULL;
    if (!bl || !cpu_blk_can(nd, nd->out, bl->blk->block))
        return 0;
    const int B = bl->blk->block, relu = nd->i[0];
    if (nn_is_blocked(a) && nn_is_blocked(b) && a->blk->block != B)
        return 0;
    const nn_tensor *other = bl == a ? b : a;
    if (!nn_is_blocked(other)) { /* one blocked, one NCHW: the sum blocked (a + b == b + a) */
        float *y = cpu_blk_attach(ctx, nd->out, B);
        if (!y)
            return -1;
        add_mixed(bl->data, other->data, y, a->n * (a->c / B), (size_t)a->h * a->w, B, relu);
        return 1;
    }
    float *y = cpu_blk_attach(ctx, nd->out, B); /* both blocked alike: elementwise as NCHW */
    if (!y)
        return -1;
    cpu_add_fwd(a->data, b->data, y, nn_numel(nd->out), relu);
    return 1;
}

/* one image-block [H, W, B] of max pooling, B a constant in each instance so that the lane
 * loops become vectors: per lane the window's first value, then every larger one or NaN (the
 * NCHW kernel's rule, so the values are the same) */
#define POOL_BLOCK(NAME, B)                                                                        \
    static void NAME(const float *xp, float *yp, int W, int OH, int OW, int k, int s)              \
    {                                                                                              \
        for (int oh = 0; oh < OH; oh++)                                                            \
            for (int ow = 0; ow < OW; ow++) {                                                      \
                float bv[B];                                                                       \
                const float *f = xp + ((size_t)oh * s * W + (size_t)ow * s) * B;                   \
                _Pragma("omp simd") for (int j = 0; j < B; j++) bv[j] = f[j];                      \
                for (int a = 0; a < k; a++)                                                        \
                    for (int b = 0; b < k; b++) {                                                  \
                        const float *v = xp + ((size_t)(oh * s + a) * W + (size_t)ow * s + b) * B; \
                        _Pragma("omp simd") for (int j = 0; j < B; j++) bv[j] =                    \
                            v[j] > bv[j] || v[j] != v[j] ? v[j] : bv[j];                           \
                    }                                                                              \
                float *o = yp + ((size_t)oh * OW + ow) * B;                                        \
                _Pragma("omp simd") for (int j = 0; j < B; j++) o[j] = bv[j];                      \
            }                                                                                      \
    }
POOL_BLOCK(pool_b8, 8)
POOL_BLOCK(pool_b16, 16)

int cpu_blk_max_pool(nn_ctx *ctx, nn_node *nd)
{
    const nn_tensor *x = nd->in[0];
    nn_tensor *y = nd->out;
    if (!nn_is_blocked(x) || !cpu_blk_can(nd, y, x->blk->block))
        return 0;
    const int B = x->blk->block, k = nd->i[0], s = nd->i[1];
    const int W = x->w, OH = y->h, OW = y->w, jobs = x->n * (x->c / B);
    const size_t ihw = (size_t)x->h * W, ohw = (size_t)OH * OW;
    const float *src = x->data;
    float *dst = cpu_blk_attach(ctx, y, B);
    if (!dst)
        return -1;
#pragma omp parallel for schedule(static) if (cpu_par_ok((size_t)jobs * B * (ihw + ohw)))
    for (int q = 0; q < jobs; q++) {
        if (B == 16)
            pool_b16(src + (size_t)q * ihw * 16, dst + (size_t)q * ohw * 16, W, OH, OW, k, s);
        else
            pool_b8(src + (size_t)q * ihw * 8, dst + (size_t)q * ohw * 8, W, OH, OW, k, s);
    }
    return 1;
}

/* whole blocks side by side: per image, each input's [C_k/B, H, W, B] in turn */
int cpu_blk_concat(nn_ctx *ctx, nn_node *nd)
{
    nn_tensor *y = nd->out;
    const nn_tensor *x0 = nd->in[0];
    if (!nn_is_blocked(x0) || !cpu_blk_can(nd, y, x0->blk->block))
        return 0;
    const int B = x0->blk->block;
    for (int k = 0; k < nd->nin; k++)
        if (!nn_is_blocked(nd->in[k]) || nd->in[k]->blk->block != B)
            return 0;
    float *dst = cpu_blk_attach(ctx, y, B);
    if (!dst)
        return -1;
    const size_t hw = (size_t)y->h * y->w, per_y = (size_t)y->c * hw;
    size_t off = 0;
    for (int k = 0; k < nd->nin; k++) {
        const nn_tensor *xk = nd->in[k];
        const size_t per = (size_t)xk->c * hw;
        const float *src = xk->data;
#pragma omp parallel for schedule(static) if (cpu_par_ok((size_t)y->n * per))
        for (int n = 0; n < y->n; n++)
            memcpy(dst + (size_t)n * per_y + off, src + (size_t)n * per, per * sizeof(float));
        off += per;
    }
    return 1;
}
