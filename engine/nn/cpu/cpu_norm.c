/* cpu_norm.c: instance norm and batch norm, forward and backward (OpenMP, AVX2 sums).
 *
 * Both normalise groups of HW-planes: instance norm one plane (n, c) per group, batch norm
 * the N planes of channel c. Forward saves mean and 1/sqrt(var + eps) per group [G] for the
 * backward:  xhat = (x - mean) * invstd,  y = gamma * xhat + beta, and with g = dy * gamma
 *   dx = invstd * (g - mean(g) - xhat * mean(g * xhat))   (statistics from the batch)
 *   dx = invstd * g                                        (batch norm eval: fixed stats)
 *   dgamma_c = sum dy * xhat,  dbeta_c = sum dy.
 * One parallel loop over groups does each group's sums and then its output (y, or dx) at
 * once: the group's planes (16 KiB for a 64x64 plane, N of them for batch norm) are then
 * still in L1/L2, so x (and dy) are read from memory or L3 once instead of once per pass.
 * With i[1] (nn_*_norm_relu) the output is max(y, 0) and the backward first masks dy by that
 * output: the ReLU op's values and gradients without its own pass over the tensor. */
#include "cpu.h"

#include <immintrin.h>
#include <math.h>
#include <omp.h>
#include <string.h>

typedef struct {
    float *mean, *invstd; /* [G] */
} norm_saved;

/* Offset of plane n of group gi (IN: plane gi; BN: plane n*C + gi), in floats. */
static inline size_t plane_off(const nn_tensor *x, int bn, int gi, int n)
{
    return (bn ? ((size_t)n * x->c + gi) : (size_t)gi) * x->h * x->w;
}

/* Sums over a plane. The terms are added in float, 32 lanes wide (four AVX registers: four
 * independent add chains, so the adds' latency does not bound the speed), over blocks of
 * SUM_BLOCK values; each block's lanes are then added to double accumulators. A float lane
 * sums at most 11 terms (8, plus up to 3 in the last block), so a block's rounding error is
 * at most about 10 float ulps of the sum of its terms' magnitudes, and the blocks add up in
 * double; the last n % 8 values are added in double. */
#define SUM_BLOCK 256

/* a + the 8 float lanes of v, in the 4 double lanes of a */
static inline __m256d add_wide(__m256d a, __m256 v)
{
    a = _mm256_add_pd(a, _mm256_cvtps_pd(_mm256_castps256_ps128(v)));
    return _mm256_add_pd(a, _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)));
}

static inline double hsum(__m256d a, __m256d b)
{
    a = _mm256_add_pd(a, b);
    __m128d s = _mm_add_pd(_mm256_castpd256_pd128(a), _mm256_extractf128_pd(a, 1));
    return _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)));
}

/* sum p */
static double sum_f(const float *p, size_t n)
{
    __m256d w0 = _mm256_setzero_pd(), w1 = w0;
    size_t j = 0, n8 = n & ~(size_t)7;
    while (j < n8) {
        size_t end = n8 - j > SUM_BLOCK ? j + SUM_BLOCK : n8;
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        for (; j + 32 <= end; j += 32) {
            a0 = _mm256_add_ps(a0, _mm256_loadu_ps(p + j));
            a1 = _mm256_add_ps(a1, _mm256_loadu_ps(p + j + 8));
            a2 = _mm256_add_ps(a2, _mm256_loadu_ps(p + j + 16));
            a3 = _mm256_add_ps(a3, _mm256_loadu_ps(p + j + 24));
        }
        for (; j < end; j += 8)
            a0 = _mm256_add_ps(a0, _mm256_loadu_ps(p + j));
        w0 = add_wide(add_wide(w0, a0), a1);
        w1 = add_wide(add_wide(w1, a2), a3);
    }
    double s = hsum(w0, w1);
    for (; j < n; j++)
        s += p[j];
    return s;
}

/* sum u and sum u v with u = p - mp, v = q - mq (the differences in float: exact where the
 * two operands are within a factor 2): the deviations' sum and square sum (p = q = x, mp = mq =
 * the mean) and the backward's sum dy and sum dy (x - mean) (p = dy, mp = 0, q = x) */
static void sum_uv(const float *p, float mp, const float *q, float mq, size_t n, double *su,
                   double *suv)
{
    const __m256 pm = _mm256_set1_ps(mp), qm = _mm256_set1_ps(mq);
    __m256d w0 = _mm256_setzero_pd(), w1 = w0, v0 = w0, v1 = w0;
    size_t j = 0, n8 = n & ~(size_t)7;
    while (j < n8) {
        size_t end = n8 - j > SUM_BLOCK ? j + SUM_BLOCK : n8;
        __m256 a[4], b[4];
        for (int k = 0; k < 4; k++)
            a[k] = b[k] = _mm256_setzero_ps();
        for (; j + 32 <= end; j += 32)
#pragma GCC unroll 4
            for (int k = 0; k < 4; k++) {
                const __m256 u = _mm256_sub_ps(_mm256_loadu_ps(p + j + 8 * k), pm);
                a[k] = _mm256_add_ps(a[k], u);
                b[k] = _mm256_fmadd_ps(u, _mm256_sub_ps(_mm256_loadu_ps(q + j + 8 * k), qm), b[k]);
            }
        for (; j < end; j += 8) {
            const __m256 u = _mm256_sub_ps(_mm256_loadu_ps(p + j), pm);
            a[0] = _mm256_add_ps(a[0], u);
            b[0] = _mm256_fmadd_ps(u, _mm256_sub_ps(_mm256_loadu_ps(q + j), qm), b[0]);
        }
        w0 = add_wide(add_wide(w0, a[0]), a[1]);
        w1 = add_wide(add_wide(w1, a[2]), a[3]);
        v0 = add_wide(add_wide(v0, b[0]), b[1]);
        v1 = add_wide(add_wide(v1, b[2]), b[3]);
    }
    double s = hsum(w0, w1), s2 = hsum(v0, v1);
    for (; j < n; j++) {
        const double u = (double)p[j] - mp;
        s += u;
        s2 += u * ((double)q[j] - mq);
    }
    *su += s;
    *suv += s2;
}

/* y = x * sc + sh over one plane, then max(y, 0) with relu (the same float operations as
 * the ReLU op after the norm) */
static void apply_plane(const float *xp, float *yp, size_t n, float sc, float sh, int relu)
{
    if (relu) {
#pragma omp simd
        for (size_t j = 0; j < n; j++) {
            const float v = xp[j] * sc + sh;
            yp[j] = v > 0 ? v : 0.0f;
        }
    } else {
#pragma omp simd
        for (size_t j = 0; j < n; j++)
            yp[j] = xp[j] * sc + sh;
    }
}

/* The ReLU's gradient of a fused op: m = dy where the output y > 0, else 0 (as the ReLU op's
 * backward computes it, from its input, whose sign the output has) */
static void relu_mask(const float *y, const float *dy, float *m, size_t n)
{
#pragma omp simd
    for (size_t j = 0; j < n; j++)
        m[j] = y[j] > 0 ? dy[j] : 0.0f;
}

/* Scale and shift of plane (n, c) for group statistics (mean, invstd). */
static inline void affine(const float *ga, const float *be, int c, float mean, float invstd,
                          float *sc, float *sh)
{
    *sc = invstd * (ga ? ga[c] : 1.0f);
    *sh = (be ? be[c] : 0.0f) - mean * *sc;
}

/* Training forward: per group the mean and the biased variance, two passes over the group
 * (the mean m0, then the deviations from it: their mean corrects m0, their mean square less
 * that correction squared is the variance), and at once y for the group's planes, which are
 * still in cache. mv[gi] = mean, mv[G + gi] = variance (double) for the running statistics. */
static void stats_apply(const nn_tensor *x, nn_tensor *y, int bn, float eps, const float *ga,
                        const float *be, int relu, double *mv, norm_saved *sv)
{
    int C = x->c, G = bn ? C : x->n * C, P = bn ? x->n : 1;
    size_t hw = (size_t)x->h * x->w;
    const float *xd = nn_f32(x);
    float *yd = nn_f32(y);
#pragma omp parallel for schedule(dynamic, 1) if (cpu_par_ok(nn_numel(x)))
    for (int gi = 0; gi < G; gi++) {
        double cnt = (double)(hw * P), s = 0, sd = 0, sd2 = 0;
        for (int n = 0; n < P; n++)
            s += sum_f(xd + plane_off(x, bn, gi, n), hw);
        float m0 = (float)(s / cnt);
        for (int n = 0; n < P; n++) {
            const float *xp = xd + plane_off(x, bn, gi, n);
            sum_uv(xp, m0, xp, m0, hw, &sd, &sd2);
        }
        double md = sd / cnt, m = m0 + md, var = fmax(sd2 / cnt - md * md, 0.0);
        mv[gi] = m;
        mv[G + gi] = var;
        float mf = (float)m, is = (float)(1.0 / sqrt(var + eps)), sc, sh;
        sv->mean[gi] = mf;
        sv->invstd[gi] = is;
        affine(ga, be, bn ? gi : gi % C, mf, is, &sc, &sh);
        for (int n = 0; n < P; n++) {
            size_t off = plane_off(x, bn, gi, n);
            apply_plane(xd + off, yd + off, hw, sc, sh, relu);
        }
    }
}

/* Eval forward (fixed statistics per channel): y = x * sc + sh, plane by plane. */
static void apply(const nn_tensor *x, nn_tensor *y, const float *mean, const float *invstd,
                  const float *ga, const float *be, int relu)
{
    int NC = x->n * x->c, C = x->c;
    size_t hw = (size_t)x->h * x->w;
#pragma omp parallel for schedule(static) if (cpu_par_ok((size_t)NC * hw))
    for (int pc = 0; pc < NC; pc++) {
        int c = pc % C;
        float sc, sh;
        affine(ga, be, c, mean[c], invstd[c], &sc, &sh);
        apply_plane(nn_f32(x) + (size_t)pc * hw, nn_f32(y) + (size_t)pc * hw, hw, sc, sh, relu);
    }
}

static int norm_fwd(nn_ctx *ctx, nn_node *nd, int bn)
{
    nn_tensor *x = nd->in[0], *gamma = nd->in[1], *beta = nd->in[2];
    int G = bn ? x->c : x->n * x->c;
    int training = bn ? nd->i[0] : 1;
    float eps = bn ? nd->f[1] : nd->f[0];
    const float *ga = gamma ? nn_f32(gamma) : NULL, *be = beta ? nn_f32(beta) : NULL;
    norm_saved *sv = nn_ctx_scratch(ctx, sizeof *sv);
    double *dm = nn_ctx_scratch(ctx, (size_t)G * 2 * sizeof(double));
    if (!sv || !dm)
        return -1;
    sv->mean = nn_ctx_scratch(ctx, (size_t)G * 4);
    sv->invstd = nn_ctx_scratch(ctx, (size_t)G * 4);
    if (!sv->mean || !sv->invstd)
        return -1;
    if (training) {
        stats_apply(x, nd->out, bn, eps, ga, be, nd->i[1], dm, sv);
        if (bn && nd->f[0] != 0.0f) { /* running statistics, PyTorch style; momentum 0:
                                          left untouched */
            float m = nd->f[0], *rm = nn_f32(nd->in[3]), *rv = nn_f32(nd->in[4]);
            double cnt = (double)x->n * x->h * x->w;
            for (int c = 0; c < G; c++) {
                rm[c] = (float)((1 - m) * rm[c] + m * dm[c]);
                rv[c] = (float)((1 - m) * rv[c] + m * dm[G + c] * cnt / (cnt - 1));
            }
        }
    } else {
        const float *rm = nn_f32(nd->in[3]), *rv = nn_f32(nd->in[4]);
        for (int c = 0; c < G; c++) {
            sv->mean[c] = rm[c];
            sv->invstd[c] = (float)(1.0 / sqrt((double)rv[c] + eps));
        }
        apply(x, nd->out, sv->mean, sv->invstd, ga, be, nd->i[1]);
    }
    nd->saved = sv;
    return 0;
}

/* Backward, per group: sum dy and sum dy * xhat, then at once dx for the group's planes
 * (dy and x still in cache); the gamma/beta gradients from the per-group sums afterwards. */
static int norm_bwd(nn_ctx *ctx, nn_node *nd, int bn)
{
    nn_tensor *x = nd->in[0], *gamma = nd->in[1], *beta = nd->in[2];
    const norm_saved *sv = nd->saved;
    const float *dy = nd->out->grad, *ga = gamma ? nn_f32(gamma) : NULL, *xd = nn_f32(x);
    int C = x->c, G = bn ? C : x->n * C, P = bn ? x->n : 1;
    int training = bn ? nd->i[0] : 1;
    size_t hw = (size_t)x->h * x->w;
    double cnt = (double)hw * P;
    float *gg = NULL, *gb = NULL, *gx = NULL;
    int acc_g = 0, acc_b = 0, acc_x = 0;
    if (gamma && gamma->requires_grad && !(gg = nn_grad_acquire(ctx, gamma, &acc_g)))
        return -1;
    if (beta && beta->requires_grad && !(gb = nn_grad_acquire(ctx, beta, &acc_b)))
        return -1;
    if (x->requires_grad && !(gx = nn_grad_acquire(ctx, x, &acc_x)))
        return -1;
    /* per group: sum dy and sum dy*xhat */
    double *sdy = nn_ctx_scratch(ctx, (size_t)G * 2 * sizeof(double));
    if (!sdy)
        return -1;
    double *sdyx = sdy + G;
    int sums = training || gg || gb; /* batch norm eval's dx needs none */
    /* with the ReLU (i[1]): each thread masks a group's output gradient into its own P planes
     * of scratch, then runs the norm's backward on that */
    const int relu = nd->i[1], team = omp_get_max_threads();
    const float *yd = nn_f32(nd->out);
    float *mask = relu ? nn_ctx_scratch(ctx, (size_t)team * P * hw * sizeof(float)) : NULL;
    if (relu && !mask)
        return -1;
#pragma omp parallel for schedule(dynamic, 1) if (cpu_par_ok(nn_numel(x)))
    for (int gi = 0; gi < G; gi++) {
        double a = 0, b = 0;
        float m = sv->mean[gi], is = sv->invstd[gi];
        float *mk = relu ? mask + (size_t)omp_get_thread_num() * P * hw : NULL;
        for (int n = 0; relu && n < P; n++) {
            size_t off = plane_off(x, bn, gi, n);
            relu_mask(yd + off, dy + off, mk + (size_t)n * hw, hw);
        }
        for (int n = 0; n < P && sums; n++) {
            size_t off = plane_off(x, bn, gi, n);
            sum_uv(relu ? mk + (size_t)n * hw : dy + off, 0.0f, xd + off, m, hw, &a, &b);
        }
        sdy[gi] = a;
        sdyx[gi] = b * is;
        if (!gx)
            continue;
        int c = bn ? gi : gi % C;
        float k = (ga ? ga[c] : 1.0f) * is;
        float mdy = training ? (float)(sdy[gi] / cnt) : 0.0f;
        float mdyx = training ? (float)(sdyx[gi] / cnt) : 0.0f;
        float c1 = k * mdyx * is;
        for (int n = 0; n < P; n++) {
            size_t off = plane_off(x, bn, gi, n);
            const float *xp = xd + off, *gp = relu ? mk + (size_t)n * hw : dy + off;
            float *op = gx + off;
            if (acc_x) {
#pragma omp simd
                for (size_t j = 0; j < hw; j++)
                    op[j] += k * (gp[j] - mdy) - (xp[j] - m) * c1;
            } else {
#pragma omp simd
                for (size_t j = 0; j < hw; j++)
                    op[j] = k * (gp[j] - mdy) - (xp[j] - m) * c1;
            }
        }
    }
    if (gg)
        for (int c = 0; c < C; c++) {
            double s = 0;
            if (bn)
                s = sdyx[c];
            else
                for (int n = 0; n < x->n; n++)
                    s += sdyx[n * C + c];
            gg[c] = (acc_g ? gg[c] : 0) + (float)s;
        }
    if (gb)
        for (int c = 0; c < C; c++) {
            double s = 0;
            if (bn)
                s = sdy[c];
            else
                for (int n = 0; n < x->n; n++)
                    s += sdy[n * C + c];
            gb[c] = (acc_b ? gb[c] : 0) + (float)s;
        }
    return 0;
}

int cpu_instance_norm_fwd(nn_ctx *ctx, nn_node *nd) { return norm_fwd(ctx, nd, 0); }
int cpu_instance_norm_bwd(nn_ctx *ctx, nn_node *nd) { return norm_bwd(ctx, nd, 0); }
int cpu_batch_norm_fwd(nn_ctx *ctx, nn_node *nd) { return norm_fwd(ctx, nd, 1); }
int cpu_batch_norm_bwd(nn_ctx *ctx, nn_node *nd) { return norm_bwd(ctx, nd, 1); }
