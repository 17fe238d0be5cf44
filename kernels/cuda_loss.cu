/* cuda_loss.cu: cross-entropy, soft Dice, distillation CE, L1, least-squares GAN, and the
 * argmax over channels (twin of engine/nn/cpu/cpu_loss.c; formulas in nn.h).
 *
 * Sums are accumulated in double: per block in shared memory, then one atomicAdd (double)
 * per block into saved. saved (device memory, zeroed before the forward):
 *   acc[0] numerator sum, acc[1] denominator (CE: sum of weights; others: the count),
 *   acc[2] number of out-of-range labels (CE, Dice), acc[3..3+3K) Dice I, P, G per class.
 * The backward reads the upstream gradient and acc on the device: no host round trip.
 * The label check fails CE and Dice on a bad label as on the CPU, without a host
 * synchronisation for labels uploaded from the host (their range is known there); other
 * label tensors download the kernel's bad-label count. */
#include "cuda.h"

#include <math.h>

#define NB 256

static __device__ void block_add(double v, double *sh, double *dst)
{
    sh[threadIdx.x] = v;
    __syncthreads();
    for (int s = NB / 2; s > 0; s >>= 1) {
        if ((int)threadIdx.x < s)
            sh[threadIdx.x] += sh[threadIdx.x + s];
        __syncthreads();
    }
    if (threadIdx.x == 0 && sh[0] != 0.0)
        atomicAdd(dst, sh[0]);
    __syncthreads();
}

static unsigned red_blocks(size_t n)
{
    size_t b = (n + NB - 1) / NB;
    return (unsigned)(b < 1 ? 1 : b > 4096 ? 4096 : b);
}

/* ---- forward kernels ----------------------------------------------------------------- */

/* one thread per pixel: num += w * (lse - x_label), den += w, bad labels counted */
static __global__ void k_ce_fwd(const float *x, const int32_t *lab, const float *wt, int N, int K,
                                size_t hw, double *acc)
{
    __shared__ double sh[NB];
    double num = 0, den = 0, bad = 0;
    for (size_t t = (size_t)blockIdx.x * NB + threadIdx.x; t < (size_t)N * hw;
         t += (size_t)NB * gridDim.x) {
        size_t b = t / hw, i = t % hw;
        const float *xb = x + b * K * hw;
        int y = lab[t];
        if (y < 0 || y >= K) {
            bad += 1;
            continue;
        }
        float m = xb[i];
        for (int c = 1; c < K; c++)
            m = fmaxf(m, xb[c * hw + i]);
        double s = 0;
        for (int c = 0; c < K; c++)
            s += exp((double)(xb[c * hw + i] - m));
        double lse = m + log(s);
        double w = wt ? wt[y] : 1.0;
        num += w * (lse - xb[(size_t)y * hw + i]);
        den += w;
    }
    block_add(num, sh, &acc[0]);
    block_add(den, sh, &acc[1]);
    block_add(bad, sh, &acc[2]);
}

/* Dice: per class I, P, G over the batch; grid (blocks, K) */
static __global__ void k_dice_fwd(const float *p, const int32_t *lab, int N, int K, size_t hw,
                                  double *acc)
{
    __shared__ double sh[NB];
    int c = blockIdx.y;
    double I = 0, P = 0, G = 0, bad = 0;
    for (size_t t = (size_t)blockIdx.x * NB + threadIdx.x; t < (size_t)N * hw;
         t += (size_t)NB * gridDim.x) {
        size_t b = t / hw, i = t % hw;
        int y = lab[t];
        if (c == 0 && (y < 0 || y >= K))
            bad += 1;
        float v = p[(b * K + c) * hw + i];
        P += v;
        if (y == c) {
            I += v;
            G += 1;
        }
    }
    block_add(bad, sh, &acc[2]);
    block_add(I, sh, &acc[3 + c]);
    block_add(P, sh, &acc[3 + K + c]);
    block_add(G, sh, &acc[3 + 2 * K + c]);
}

/* KD: sum t log(max(p, eps)); L1: sum |a - b|; LSGAN: sum (a - t)^2 */
enum { R_KD, R_L1, R_LSGAN };
static __global__ void k_sum(int kind, const float *a, const float *b, float tgt, size_t n,
                             double *acc)
{
    __shared__ double sh[NB];
    double s = 0;
    for (size_t i = (size_t)blockIdx.x * NB + threadIdx.x; i < n; i += (size_t)NB * gridDim.x) {
        if (kind == R_KD)
            s += (double)a[i] * log((double)fmaxf(b[i], NN_KD_EPS));
        else if (kind == R_L1)
            s += fabsf(a[i] - b[i]);
        else
            s += (double)(a[i] - tgt) * (a[i] - tgt);
    }
    block_add(s, sh, &acc[0]);
}

/* out[0] from the sums (one thread) */
enum { F_CE, F_DICE, F_KD, F_MEAN };
static __global__ void k_finish(int kind, double *acc, double den, int K, int first, float smooth,
                                float *out)
{
    if (threadIdx.x || blockIdx.x)
        return;
    switch (kind) {
    case F_CE:
        out[0] = (float)(acc[0] / acc[1]);
        break;
    case F_DICE: {
        const double *I = acc + 3, *P = I + K, *G = P + K;
        double s = 0;
        for (int c = first; c < K; c++)
            s += (2 * I[c] + smooth) / (P[c] + G[c] + smooth);
        out[0] = (float)(1.0 - s / (K - first));
        break;
    }
    case F_KD:
        acc[1] = den;
        out[0] = (float)(-acc[0] / den);
        break;
    default:
        acc[1] = den;
        out[0] = (float)(acc[0] / den);
        break;
    }
}

/* ---- backward kernels ---------------------------------------------------------------- */

static __global__ void k_ce_bwd(const float *x, const int32_t *lab, const float *wt, int N, int K,
                                size_t hw, const float *go, const double *acc, float *g, int ac)
{
    float k = (float)(go[0] / acc[1]);
    CUDA_FOR(t, (size_t)N * hw)
    {
        size_t b = t / hw, i = t % hw;
        const float *xb = x + b * K * hw;
        float *gb = g + b * K * hw;
        int y = lab[t];
        float m = xb[i];
        for (int c = 1; c < K; c++)
            m = fmaxf(m, xb[c * hw + i]);
        float s = 0;
        for (int c = 0; c < K; c++)
            s += expf(xb[c * hw + i] - m);
        float f = k * (wt ? wt[y] : 1.0f), inv = 1.0f / s;
        for (int c = 0; c < K; c++) {
            size_t j = c * hw + i;
            float v = f * (expf(xb[j] - m) * inv - (c == y ? 1.0f : 0.0f));
            gb[j] = ac ? gb[j] + v : v;
        }
    }
}

static __global__ void k_dice_bwd(const int32_t *lab, int N, int K, size_t hw, int first,
                                  double smooth, const float *go, const double *acc, float *g,
                                  int ac)
{
    const double *I = acc + 3, *P = I + K, *G = P + K;
    CUDA_FOR(j, (size_t)N * K * hw)
    {
        size_t i = j % hw, bc = j / hw, b = bc / K;
        int c = (int)(bc % K);
        /* d dice_c / d p_ic = 2 g_ic / D - (2I + s) / D^2,  D = P + G + s */
        float kg = 0, k0 = 0;
        if (c >= first) {
            double D = P[c] + G[c] + smooth, f = -(double)go[0] / (double)(K - first);
            kg = (float)(f * 2.0 / D);
            k0 = (float)(-f * (2 * I[c] + smooth) / (D * D));
        }
        float v = k0 + (lab[b * hw + i] == c ? kg : 0);
        g[j] = ac ? g[j] + v : v;
    }
}

static __global__ void k_kd_bwd(const float *t, const float *p, size_t n, const float *go,
                                const double *acc, float *g, int ac)
{
    float k = (float)(-(double)go[0] / acc[1]);
    CUDA_FOR(i, n)
    {
        float v = p[i] >= NN_KD_EPS ? k * t[i] / p[i] : 0.0f;
        g[i] = ac ? g[i] + v : v;
    }
}

static __global__ void k_l1_bwd(const float *a, const float *b, size_t n, float sign,
                                const float *go, const double *acc, float *g, int ac)
{
    float ks = sign * (float)((double)go[0] / acc[1]);
    CUDA_FOR(i, n)
    {
        float d = a[i] - b[i];
        float v = d > 0 ? ks : d < 0 ? -ks : 0.0f;
        g[i] = ac ? g[i] + v : v;
    }
}

static __global__ void k_lsgan_bwd(const float *a, float tgt, size_t n, const float *go,
                                   const double *acc, float *g, int ac)
{
    float k = (float)(2.0 * (double)go[0] / acc[1]);
    CUDA_FOR(i, n)
    {
        float v = k * (a[i] - tgt);
        g[i] = ac ? g[i] + v : v;
    }
}

/* ---- dispatch -------------------------------------------------------------------------- */

/* 1 when every label was in 0..K-1; 0 with the error recorded otherwise. Labels uploaded
 * from the host carry their range (nn_labels_from): checked here without touching the
 * device. Otherwise the kernel's bad-label count is downloaded (a wait for the device). */
static int labels_ok(nn_ctx *ctx, const nn_tensor *lab, const double *acc, int K)
{
    double bad = 0;
    if (cuda_check(ctx, "loss"))
        return 0;
    if (lab->lab_known) {
        if (lab->lab_lo >= 0 && lab->lab_hi < K)
            return 1;
        nn_ctx_fail(ctx, "loss: labels %d..%d are outside 0..%d", (int)lab->lab_lo,
                    (int)lab->lab_hi, K - 1);
        return 0;
    }
    cudaError_t e = cudaMemcpy(&bad, acc + 2, sizeof bad, cudaMemcpyDeviceToHost);
    if (e != cudaSuccess) {
        cudaGetLastError();
        nn_ctx_fail(ctx, "cuda: loss label check: %s", cudaGetErrorString(e));
        return 0;
    }
    if (bad > 0) {
        nn_ctx_fail(ctx, "loss: %.0f labels are outside 0..%d", bad, K - 1);
        return 0;
    }
    return 1;
}

int cuda_loss_fwd(nn_ctx *ctx, nn_node *nd)
{
    const nn_tensor *x = nd->in[0];
    float *out = nn_f32(nd->out);
    int K = x->c;
    size_t n = nn_numel(x), hw = (size_t)x->h * x->w;
    size_t nacc = 3 + (nd->op == NN_OP_LOSS_DICE ? 3 * (size_t)K : 0);
    double *acc = (double *)nn_ctx_scratch(ctx, nacc * sizeof(double));
    if (!acc)
        return -1;
    cudaMemsetAsync(acc, 0, nacc * sizeof(double), 0);
    nd->saved = acc;
    switch (nd->op) {
    case NN_OP_LOSS_CE:
        k_ce_fwd<<<red_blocks((size_t)x->n * hw), NB>>>(
            nn_f32(x), (const int32_t *)nd->in[1]->data, nd->in[2] ? nn_f32(nd->in[2]) : NULL,
            x->n, K, hw, acc);
        if (!labels_ok(ctx, nd->in[1], acc, K))
            return -1;
        k_finish<<<1, 1>>>(F_CE, acc, 0, K, 0, 0, out);
        break;
    case NN_OP_LOSS_DICE: {
        dim3 grid(red_blocks((size_t)x->n * hw), (unsigned)K);
        k_dice_fwd<<<grid, NB>>>(nn_f32(x), (const int32_t *)nd->in[1]->data, x->n, K, hw, acc);
        if (!labels_ok(ctx, nd->in[1], acc, K))
            return -1;
        k_finish<<<1, 1>>>(F_DICE, acc, 0, K, nd->i[0], nd->f[0], out);
        break;
    }
    case NN_OP_LOSS_KD:
        k_sum<<<red_blocks(n), NB>>>(R_KD, nn_f32(x), nn_f32(nd->in[1]), 0, n, acc);
        k_finish<<<1, 1>>>(F_KD, acc, (double)(n / (size_t)K), K, 0, 0, out);
        break;
    case NN_OP_LOSS_L1:
        k_sum<<<red_blocks(n), NB>>>(R_L1, nn_f32(x), nn_f32(nd->in[1]), 0, n, acc);
        k_finish<<<1, 1>>>(F_MEAN, acc, (double)n, K, 0, 0, out);
        break;
    case NN_OP_LOSS_LSGAN:
        k_sum<<<red_blocks(n), NB>>>(R_LSGAN, nn_f32(x), NULL, nd->f[0], n, acc);
        k_finish<<<1, 1>>>(F_MEAN, acc, (double)n, K, 0, 0, out);
        break;
    default:
        nn_ctx_fail(ctx, "cuda_loss: bad op %s", nn_op_name(nd->op));
        return -1;
    }
    return cuda_check(ctx, nn_op_name(nd->op));
}

int cuda_loss_bwd(nn_ctx *ctx, nn_node *nd)
{
    const double *acc = (const double *)nd->saved;
    const float *go = nd->out->grad;
    int ac;
    switch (nd->op) {
    case NN_OP_LOSS_CE:
    case NN_OP_LOSS_DICE:
    case NN_OP_LOSS_LSGAN: {
        nn_tensor *x = nd->in[0];
        if (!x->requires_grad)
            return 0;
        float *g = nn_grad_acquire(ctx, x, &ac);
        if (!g)
            return -1;
        int K = x->c;
        size_t hw = (size_t)x->h * x->w, n = nn_numel(x);
        const int32_t *lab = nd->op == NN_OP_LOSS_LSGAN ? NULL : (const int32_t *)nd->in[1]->data;
        if (nd->op == NN_OP_LOSS_CE)
            k_ce_bwd<<<cuda_blocks((size_t)x->n * hw), CUDA_THREADS>>>(
                nn_f32(x), lab, nd->in[2] ? nn_f32(nd->in[2]) : NULL, x->n, K, hw, go, acc, g,
                ac);
        else if (nd->op == NN_OP_LOSS_DICE)
            k_dice_bwd<<<cuda_blocks(n), CUDA_THREADS>>>(lab, x->n, K, hw, nd->i[0],
                                                         (double)nd->f[0], go, acc, g, ac);
        else
            k_lsgan_bwd<<<cuda_blocks(n), CUDA_THREADS>>>(nn_f32(x), nd->f[0], n, go, acc, g,
                                                          ac);
        break;
    }
    case NN_OP_LOSS_KD: {
        nn_tensor *pt = nd->in[1];
        if (!pt->requires_grad)
            return 0;
        float *g = nn_grad_acquire(ctx, pt, &ac);
        if (!g)
            return -1;
        size_t n = nn_numel(pt);
        k_kd_bwd<<<cuda_blocks(n), CUDA_THREADS>>>(nn_f32(nd->in[0]), nn_f32(pt), n, go, acc, g,
                                                   ac);
        break;
    }
    case NN_OP_LOSS_L1: {
        size_t n = nn_numel(nd->in[0]);
        for (int s = 0; s < 2; s++) {
            nn_tensor *t = nd->in[s];
            if (!t->requires_grad)
                continue;
            float *g = nn_grad_acquire(ctx, t, &ac);
            if (!g)
                return -1;
            k_l1_bwd<<<cuda_blocks(n), CUDA_THREADS>>>(nn_f32(nd->in[0]), nn_f32(nd->in[1]), n,
                                                       s ? -1.0f : 1.0f, go, acc, g, ac);
        }
        break;
    }
    default:
        nn_ctx_fail(ctx, "cuda_loss: bad op %s", nn_op_name(nd->op));
        return -1;
    }
    return cuda_check(ctx, nn_op_name(nd->op));
}

/* ---- argmax -------------------------------------------------------------------------- */

static __global__ void k_argmax(const float *x, int N, int C, size_t hw, int32_t *out)
{
    CUDA_FOR(t, (size_t)N * hw)
    {
        size_t b = t / hw, i = t % hw;
        const float *xb = x + b * C * hw;
        int best = 0;
        float bv = xb[i];
        for (int c = 1; c < C; c++)
            if (xb[c * hw + i] > bv) {
                bv = xb[c * hw + i];
                best = c;
            }
        out[t] = best;
    }
}

int cuda_argmax(nn_ctx *ctx, const nn_tensor *x, int32_t *out)
{
    nn_arena *ar = nn_ctx_arena(ctx);
    nn_arena_mark m = nn_arena_pos(ar);
    size_t hw = (size_t)x->h * x->w, n = (size_t)x->n * hw;
    int32_t *d = (int32_t *)nn_ctx_scratch(ctx, n * 4);
    if (!d)
        return -1;
    k_argmax<<<cuda_blocks(n), CUDA_THREADS>>>(nn_f32(x), x->n, x->c, hw, d);
    int rc = cuda_check(ctx, "argmax");
    if (!rc && cudaMemcpy(out, d, n * 4, cudaMemcpyDeviceToHost) != cudaSuccess)
        rc = cuda_check(ctx, "argmax download");
    nn_arena_rollback(ar, m);
    return rc;
}
