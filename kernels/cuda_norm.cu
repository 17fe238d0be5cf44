/* cuda_norm.cu: instance norm and batch norm, forward and backward (twin of
 * engine/nn/cpu/cpu_norm.c; same formulas, statistics in double).
 *
 * Groups of HW-planes: instance norm one plane (n, c) per group, batch norm the N planes
 * of channel c. One thread block per group reduces in double (two passes for the variance,
 * as the CPU). saved (device memory): float mean[G], invstd[G]. Backward: one block per
 * group for sum dy and sum dy * xhat (double, in arena scratch), then one thread per
 * channel for dgamma/dbeta and one per element for dx. */
#include "cuda.h"

#define NB 256               /* threads per reduction block (power of two) */

static __device__ double block_sum(double v, double *sh)
{
    sh[threadIdx.x] = v;
    __syncthreads();
    for (int s = NB / 2; s > 0; s >>= 1) {
        if ((int)threadIdx.x < s)
            sh[threadIdx.x] += sh[threadIdx.x + s];
        __syncthreads();
    }
    double r = sh[0];
    __syncthreads();
    return r;
}

/* element j of group g: planes of group g are (bn ? n*C + g : g) for n < P */
static __device__ __forceinline__ size_t gidx(int bn, int C, int g, size_t hw, size_t j)
{
    size_t n = j / hw, k = j % hw;
    return (bn ? (n * C + g) : (size_t)g) * hw + k;
}

/* training statistics: mean, invstd per group; batch norm also updates rm/rv */
static __global__ void k_stats(const float *x, int bn, int C, int P, size_t hw, float eps,
                               float *mean, float *invstd, float *rm, float *rv, float mom)
{
    __shared__ double sh[NB];
    int g = blockIdx.x;
    size_t cnt = hw * P;
    double s = 0;
    for (size_t j = threadIdx.x; j < cnt; j += NB)
        s += (double)x[gidx(bn, C, g, hw, j)];
    double m = block_sum(s, sh) / (double)cnt;
    double s2 = 0;
    for (size_t j = threadIdx.x; j < cnt; j += NB) {
        double d = (double)x[gidx(bn, C, g, hw, j)] - m;
        s2 += d * d;
    }
    double var = block_sum(s2, sh) / (double)cnt;
    if (threadIdx.x == 0) {
        mean[g] = (float)m;
        invstd[g] = (float)(1.0 / sqrt(var + eps));
        if (rm) {            /* running statistics, PyTorch style (unbiased variance) */
            double c = (double)cnt;
            rm[g] = (float)((1 - mom) * rm[g] + mom * m);
            rv[g] = (float)((1 - mom) * rv[g] + mom * var * c / (c - 1));
        }
    }
}

/* eval statistics from the running buffers */
static __global__ void k_eval_stats(const float *rm, const float *rv, int C, float eps,
                                    float *mean, float *invstd)
{
    CUDA_FOR(c, C)
    {
        mean[c] = rm[c];
        invstd[c] = (float)(1.0 / sqrt((double)rv[c] + eps));
    }
}

static __global__ void k_apply(const float *x, float *y, int bn, int C, size_t hw, size_t n,
                               const float *mean, const float *invstd, const float *ga,
                               const float *be)
{
    CUDA_FOR(j, n)
    {
        size_t pc = j / hw;
        int c = (int)(pc % C), g = bn ? c : (int)pc;
        float sc = invstd[g] * (ga ? ga[c] : 1.0f);
        float sf = (be ? be[c] : 0.0f) - mean[g] * sc;
        y[j] = x[j] * sc + sf;
    }
}

/* per group: sdy = sum dy, sdyx = invstd * sum dy (x - mean) */
static __global__ void k_bwd_sums(const float *x, const float *dy, int bn, int C, int P,
                                  size_t hw, const float *mean, const float *invstd, double *sdy,
                                  double *sdyx)
{
    __shared__ double sh[NB];
    int g = blockIdx.x;
    size_t cnt = hw * P;
    double m = mean[g], a = 0, b = 0;
    for (size_t j = threadIdx.x; j < cnt; j += NB) {
        size_t q = gidx(bn, C, g, hw, j);
        a += (double)dy[q];
        b += (double)dy[q] * ((double)x[q] - m);
    }
    a = block_sum(a, sh);
    b = block_sum(b, sh);
    if (threadIdx.x == 0) {
        sdy[g] = a;
        sdyx[g] = b * invstd[g];
    }
}

/* dgamma (from sdyx) or dbeta (from sdy) per channel: IN sums the N groups of channel c */
static __global__ void k_affine_grad(const double *s, int bn, int N, int C, float *out, int acc)
{
    CUDA_FOR(c, C)
    {
        double v = 0;
        if (bn)
            v = s[c];
        else
            for (int n = 0; n < N; n++)
                v += s[(size_t)n * C + c];
        out[c] = acc ? out[c] + (float)v : (float)v;
    }
}

static __global__ void k_dx(const float *x, const float *dy, float *gx, int bn, int C, size_t hw,
                            size_t n, double cnt, int training, const float *mean,
                            const float *invstd, const float *ga, const double *sdy,
                            const double *sdyx, int acc)
{
    CUDA_FOR(j, n)
    {
        size_t pc = j / hw;
        int c = (int)(pc % C), g = bn ? c : (int)pc;
        float gam = ga ? ga[c] : 1.0f, m = mean[g], is = invstd[g];
        float k = gam * is;
        float mdy = training ? (float)(sdy[g] / cnt) : 0.0f;
        float mdyx = training ? (float)(sdyx[g] / cnt) : 0.0f;
        float c1 = k * mdyx * is;
        float v = k * (dy[j] - mdy) - (x[j] - m) * c1;
        gx[j] = acc ? gx[j] + v : v;
    }
}

static int norm_fwd(nn_ctx *ctx, nn_node *nd, int bn)
{
    nn_tensor *x = nd->in[0], *gamma = nd->in[1], *beta = nd->in[2];
    int C = x->c, G = bn ? C : x->n * C, P = bn ? x->n : 1;
    int training = bn ? nd->i[0] : 1;
    float eps = bn ? nd->f[1] : nd->f[0];
    size_t hw = (size_t)x->h * x->w, n = nn_numel(x);
    float *sv = (float *)nn_ctx_scratch(ctx, (size_t)G * 2 * sizeof(float));
    if (!sv)
        return -1;
    float *mean = sv, *invstd = sv + G;
    if (training)
        k_stats<<<G, NB>>>(nn_f32(x), bn, C, P, hw, eps, mean, invstd,
                           bn ? nn_f32(nd->in[3]) : NULL, bn ? nn_f32(nd->in[4]) : NULL,
                           bn ? nd->f[0] : 0.0f);
    else
        k_eval_stats<<<cuda_blocks((size_t)C), CUDA_THREADS>>>(
            nn_f32(nd->in[3]), nn_f32(nd->in[4]), C, eps, mean, invstd);
    k_apply<<<cuda_blocks(n), CUDA_THREADS>>>(nn_f32(x), nn_f32(nd->out), bn, C, hw, n, mean,
                                              invstd, gamma ? nn_f32(gamma) : NULL,
                                              beta ? nn_f32(beta) : NULL);
    nd->saved = sv;
    return cuda_check(ctx, bn ? "batch_norm" : "instance_norm");
}

static int norm_bwd(nn_ctx *ctx, nn_node *nd, int bn)
{
    nn_tensor *x = nd->in[0], *gamma = nd->in[1], *beta = nd->in[2];
    const float *sv = (const float *)nd->saved, *dy = nd->out->grad;
    int C = x->c, G = bn ? C : x->n * C, P = bn ? x->n : 1;
    int training = bn ? nd->i[0] : 1, acc;
    size_t hw = (size_t)x->h * x->w, n = nn_numel(x);
    const float *mean = sv, *invstd = sv + G;
    double *sdy = (double *)nn_ctx_scratch(ctx, (size_t)G * 2 * sizeof(double));
    if (!sdy)
        return -1;
    double *sdyx = sdy + G;
    k_bwd_sums<<<G, NB>>>(nn_f32(x), dy, bn, C, P, hw, mean, invstd, sdy, sdyx);
    if (gamma && gamma->requires_grad) {
        float *gg = nn_grad_acquire(ctx, gamma, &acc);
        if (!gg)
            return -1;
        k_affine_grad<<<cuda_blocks((size_t)C), CUDA_THREADS>>>(sdyx, bn, x->n, C, gg, acc);
    }
    if (beta && beta->requires_grad) {
        float *gb = nn_grad_acquire(ctx, beta, &acc);
        if (!gb)
            return -1;
        k_affine_grad<<<cuda_blocks((size_t)C), CUDA_THREADS>>>(sdy, bn, x->n, C, gb, acc);
    }
    if (x->requires_grad) {
        float *gx = nn_grad_acquire(ctx, x, &acc);
        if (!gx)
            return -1;
        k_dx<<<cuda_blocks(n), CUDA_THREADS>>>(nn_f32(x), dy, gx, bn, C, hw, n,
                                               (double)hw * P, training, mean, invstd,
                                               gamma ? nn_f32(gamma) : NULL, sdy, sdyx, acc);
    }
    return cuda_check(ctx, bn ? "batch_norm backward" : "instance_norm backward");
}

int cuda_instance_norm_fwd(nn_ctx *ctx, nn_node *nd) { return norm_fwd(ctx, nd, 0); }
int cuda_instance_norm_bwd(nn_ctx *ctx, nn_node *nd) { return norm_bwd(ctx, nd, 0); }
int cuda_batch_norm_fwd(nn_ctx *ctx, nn_node *nd) { return norm_fwd(ctx, nd, 1); }
int cuda_batch_norm_bwd(nn_ctx *ctx, nn_node *nd) { return norm_bwd(ctx, nd, 1); }
