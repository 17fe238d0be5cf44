/* cuda_norm.cu: instance norm and batch norm, forward and backward (twin of
 * engine/nn/cpu/cpu_norm.c; same formulas, statistics in double).
 *
 * Groups of HW-planes: instance norm one plane (n, c) per group, batch norm the N planes
 * of channel c. Statistics: each group is split into S parts (enough blocks for every SM),
 * each block sums x and x^2 of its part in double, and one thread per group adds the parts
 * (variance E[x^2] - mean^2 in double: the float inputs' cancellation stays far below float
 * resolution). saved (device memory): float mean[G], invstd[G]. Backward: the same split for
 * sum dy and sum dy (x - mean), then one thread per channel for dgamma/dbeta and one per
 * element for dx. A momentum of 0 leaves the running statistics untouched. With i[1] (the
 * _relu variants) the forward writes max(y, 0) and the backward takes dy only where that
 * output is positive. */
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

/* Element j (< P hw) of group g: the planes of group g are (bn ? n*C + g : g) for n < P.
 * 32-bit index arithmetic when the group fits (every realistic shape), 64-bit otherwise. */
template <typename I>
static __device__ __forceinline__ size_t gidx(int bn, int C, int g, I hw, I j)
{
    I n = j / hw, k = j - n * hw;
    return (bn ? ((size_t)n * C + g) : (size_t)g) * (size_t)hw + k;
}

/* Partial sums over part b (blockIdx.y of S) of group g (blockIdx.x): sum x and sum x^2
 * (forward, dy == NULL), or sum dy and sum dy (x - mean) (backward; with y, the output of the
 * op with its ReLU, dy where y > 0 and 0 elsewhere: the ReLU's gradient); double accumulation.
 * part[(g S + b) 2 + {0, 1}]. Splitting a group over S blocks keeps every SM busy when the
 * groups are few and large (batch norm: C groups of N H W elements). */
template <typename I>
static __global__ void k_partial(const float *x, const float *dy, const float *y,
                                 const float *mean, int bn, int C, int P, I hw, double *part)
{
    __shared__ double sh[NB];
    int g = blockIdx.x, S = gridDim.y, b = blockIdx.y;
    I cnt = hw * (I)P;
    I per = (cnt + (I)S - 1) / (I)S, j0 = per * (I)b, j1 = j0 + per < cnt ? j0 + per : cnt;
    double s1 = 0, s2 = 0;
    if (!dy) {
        for (I j = j0 + threadIdx.x; j < j1; j += NB) {
            double v = (double)x[gidx<I>(bn, C, g, hw, j)];
            s1 += v;
            s2 += v * v;
        }
    } else {
        double m = mean[g];
        for (I j = j0 + threadIdx.x; j < j1; j += NB) {
            size_t q = gidx<I>(bn, C, g, hw, j);
            double d = y && !(y[q] > 0) ? 0.0 : (double)dy[q];
            s1 += d;
            s2 += d * ((double)x[q] - m);
        }
    }
    s1 = block_sum(s1, sh);
    s2 = block_sum(s2, sh);
    if (threadIdx.x == 0) {
        part[((size_t)g * S + b) * 2] = s1;
        part[((size_t)g * S + b) * 2 + 1] = s2;
    }
}

/* training statistics from the partial sums: mean, invstd per group; batch norm also updates
 * rm/rv (skipped when the momentum is 0: the running statistics stay bit for bit) */
static __global__ void k_stats_final(const double *part, int G, int S, double cnt, float eps,
                                     float *mean, float *invstd, float *rm, float *rv, float mom)
{
    CUDA_FOR(g, G)
    {
        double s1 = 0, s2 = 0;
        for (int b = 0; b < S; b++) {
            s1 += part[((size_t)g * S + b) * 2];
            s2 += part[((size_t)g * S + b) * 2 + 1];
        }
        double m = s1 / cnt, var = s2 / cnt - m * m;
        if (var < 0)
            var = 0;
        mean[g] = (float)m;
        invstd[g] = (float)(1.0 / sqrt(var + eps));
        if (rm && mom != 0.0f) {  /* running statistics, PyTorch style (unbiased variance) */
            rm[g] = (float)((1 - mom) * rm[g] + mom * m);
            rv[g] = (float)((1 - mom) * rv[g] + mom * var * cnt / (cnt - 1));
        }
    }
}

/* backward sums from the partials: sdy = sum dy, sdyx = invstd * sum dy (x - mean) */
static __global__ void k_bwd_final(const double *part, int G, int S, const float *invstd,
                                   double *sdy, double *sdyx)
{
    CUDA_FOR(g, G)
    {
        double a = 0, b = 0;
        for (int k = 0; k < S; k++) {
            a += part[((size_t)g * S + k) * 2];
            b += part[((size_t)g * S + k) * 2 + 1];
        }
        sdy[g] = a;
        sdyx[g] = b * invstd[g];
    }
}

/* parts per group: about 4 blocks per SM over all groups, at least 4096 elements a part */
static int parts(int G, size_t cnt)
{
    static int sms = 0;
    if (!sms) {
        int dev = 0, v = 0;
        cudaGetDevice(&dev);
        if (cudaDeviceGetAttribute(&v, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess)
            cudaGetLastError();
        sms = v > 0 ? v : 80;
    }
    size_t want = ((size_t)sms * 4 + G - 1) / G;
    size_t most = (cnt + 4095) / 4096;
    size_t S = want < most ? want : most;
    return S < 1 ? 1 : S > 1024 ? 1024 : (int)S;
}

/* part sums of every group into part (double[G S 2] scratch) */
static void launch_partial(const float *x, const float *dy, const float *y, const float *mean,
                           int bn, int C, int P, size_t hw, int G, int S, double *part)
{
    dim3 grid((unsigned)G, (unsigned)S);
    if (hw * (size_t)P < (size_t)1 << 31)
        k_partial<unsigned><<<grid, NB>>>(x, dy, y, mean, bn, C, P, (unsigned)hw, part);
    else
        k_partial<size_t><<<grid, NB>>>(x, dy, y, mean, bn, C, P, hw, part);
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

template <typename I>
static __global__ void k_apply(const float *x, float *y, int bn, int C, I hw, I n,
                               const float *mean, const float *invstd, const float *ga,
                               const float *be, int relu)
{
    for (I j = (I)blockIdx.x * blockDim.x + threadIdx.x; j < n; j += (I)blockDim.x * gridDim.x)
    {
        I pc = j / hw;
        int c = (int)(pc % C), g = bn ? c : (int)pc;
        float sc = invstd[g] * (ga ? ga[c] : 1.0f);
        float sf = (be ? be[c] : 0.0f) - mean[g] * sc;
        float v = x[j] * sc + sf;
        y[j] = relu ? (v > 0 ? v : 0.0f) : v;
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

template <typename I>
static __global__ void k_dx(const float *x, const float *dy, const float *y, float *gx, int bn,
                            int C, I hw, I n, double cnt, int training, const float *mean,
                            const float *invstd, const float *ga, const double *sdy,
                            const double *sdyx, int acc)
{
    for (I j = (I)blockIdx.x * blockDim.x + threadIdx.x; j < n; j += (I)blockDim.x * gridDim.x)
    {
        I pc = j / hw;
        int c = (int)(pc % C), g = bn ? c : (int)pc;
        float gam = ga ? ga[c] : 1.0f, m = mean[g], is = invstd[g];
        float k = gam * is;
        float mdy = training ? (float)(sdy[g] / cnt) : 0.0f;
        float mdyx = training ? (float)(sdyx[g] / cnt) : 0.0f;
        float c1 = k * mdyx * is;
        float d = y && !(y[j] > 0) ? 0.0f : dy[j];
        float v = k * (d - mdy) - (x[j] - m) * c1;
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
    if (training) {
        int S = parts(G, hw * P);
        double *part = (double *)nn_ctx_scratch(ctx, (size_t)G * S * 2 * sizeof(double));
        if (!part)
            return -1;
        launch_partial(nn_f32(x), NULL, NULL, NULL, bn, C, P, hw, G, S, part);
        k_stats_final<<<cuda_blocks((size_t)G), CUDA_THREADS>>>(
            part, G, S, (double)hw * P, eps, mean, invstd, bn ? nn_f32(nd->in[3]) : NULL,
            bn ? nn_f32(nd->in[4]) : NULL, bn ? nd->f[0] : 0.0f);
    } else
        k_eval_stats<<<cuda_blocks((size_t)C), CUDA_THREADS>>>(
            nn_f32(nd->in[3]), nn_f32(nd->in[4]), C, eps, mean, invstd);
    if (n < (size_t)1 << 31)
        k_apply<unsigned><<<cuda_blocks(n), CUDA_THREADS>>>(
            nn_f32(x), nn_f32(nd->out), bn, C, (unsigned)hw, (unsigned)n, mean, invstd,
            gamma ? nn_f32(gamma) : NULL, beta ? nn_f32(beta) : NULL, nd->i[1]);
    else
        k_apply<size_t><<<cuda_blocks(n), CUDA_THREADS>>>(
            nn_f32(x), nn_f32(nd->out), bn, C, hw, n, mean, invstd,
            gamma ? nn_f32(gamma) : NULL, beta ? nn_f32(beta) : NULL, nd->i[1]);
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
    const float *y = nd->i[1] ? nn_f32(nd->out) : NULL; /* with the ReLU: its mask */
    double *sdy = (double *)nn_ctx_scratch(ctx, (size_t)G * 2 * sizeof(double));
    if (!sdy)
        return -1;
    double *sdyx = sdy + G;
    int S = parts(G, hw * P);
    double *part = (double *)nn_ctx_scratch(ctx, (size_t)G * S * 2 * sizeof(double));
    if (!part)
        return -1;
    launch_partial(nn_f32(x), dy, y, mean, bn, C, P, hw, G, S, part);
    k_bwd_final<<<cuda_blocks((size_t)G), CUDA_THREADS>>>(part, G, S, invstd, sdy, sdyx);
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
        if (n < (size_t)1 << 31)
            k_dx<unsigned><<<cuda_blocks(n), CUDA_THREADS>>>(
                nn_f32(x), dy, y, gx, bn, C, (unsigned)hw, (unsigned)n, (double)hw * P, training,
                mean, invstd, gamma ? nn_f32(gamma) : NULL, sdy, sdyx, acc);
        else
            k_dx<size_t><<<cuda_blocks(n), CUDA_THREADS>>>(
                nn_f32(x), dy, y, gx, bn, C, hw, n, (double)hw * P, training, mean, invstd,
                gamma ? nn_f32(gamma) : NULL, sdy, sdyx, acc);
    }
    return cuda_check(ctx, bn ? "batch_norm backward" : "instance_norm backward");
}

int cuda_instance_norm_fwd(nn_ctx *ctx, nn_node *nd) { return norm_fwd(ctx, nd, 0); }
int cuda_instance_norm_bwd(nn_ctx *ctx, nn_node *nd) { return norm_bwd(ctx, nd, 0); }
int cuda_batch_norm_fwd(nn_ctx *ctx, nn_node *nd) { return norm_fwd(ctx, nd, 1); }
int cuda_batch_norm_bwd(nn_ctx *ctx, nn_node *nd) { return norm_bwd(ctx, nd, 1); }
