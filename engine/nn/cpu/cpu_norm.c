/* cpu_norm.c: instance norm and batch norm, forward and backward (OpenMP, double sums).
 *
 * Both normalise groups of HW-planes: instance norm one plane (n, c) per group, batch norm
 * the N planes of channel c. Forward saves mean and 1/sqrt(var + eps) per group [G] for the
 * backward:  xhat = (x - mean) * invstd,  y = gamma * xhat + beta, and with g = dy * gamma
 *   dx = invstd * (g - mean(g) - xhat * mean(g * xhat))   (statistics from the batch)
 *   dx = invstd * g                                        (batch norm eval: fixed stats)
 *   dgamma_c = sum dy * xhat,  dbeta_c = sum dy. */
#include "cpu.h"

#include <math.h>
#include <string.h>

typedef struct {
    float *mean, *invstd; /* [G] */
} norm_saved;

/* Element j of group gi (planes of group gi: IN: plane gi; BN: planes n*C + gi). */
static inline const float *plane(const nn_tensor *x, int bn, int gi, int n)
{
    size_t hw = (size_t)x->h * x->w;
    return nn_f32(x) + (bn ? ((size_t)n * x->c + gi) : (size_t)gi) * hw;
}

/* Sums over a plane, accumulated in double in SIMD lanes (vectorises; float inputs). */
static double sum_f(const float *p, size_t n)
{
    double a = 0;
#pragma omp simd reduction(+ : a)
    for (size_t j = 0; j < n; j++)
        a += (double)p[j];
    return a;
}

static double sumsq_dev(const float *p, size_t n, double m)
{
    double a = 0;
#pragma omp simd reduction(+ : a)
    for (size_t j = 0; j < n; j++) {
        double d = (double)p[j] - m;
        a += d * d;
    }
    return a;
}

/* sum g and sum g * (x - m) */
static void sum_bwd(const float *g, const float *x, size_t n, double m, double *sg, double *sgx)
{
    double a = 0, b = 0;
#pragma omp simd reduction(+ : a, b)
    for (size_t j = 0; j < n; j++) {
        a += (double)g[j];
        b += (double)g[j] * ((double)x[j] - m);
    }
    *sg += a;
    *sgx += b;
}

/* mean/biased var of each group (two passes: mean, then squared deviations) */
static void group_stats(const nn_tensor *x, int bn, double *mean, double *var)
{
    int G = bn ? x->c : x->n * x->c, P = bn ? x->n : 1;
    size_t hw = (size_t)x->h * x->w;
#pragma omp parallel for schedule(dynamic, 1)
    for (int gi = 0; gi < G; gi++) {
        double s = 0, s2 = 0;
        for (int n = 0; n < P; n++)
            s += sum_f(plane(x, bn, gi, n), hw);
        double m = s / (double)(hw * P);
        for (int n = 0; n < P; n++)
            s2 += sumsq_dev(plane(x, bn, gi, n), hw, m);
        mean[gi] = m;
        var[gi] = s2 / (double)(hw * P);
    }
}

static void apply(const nn_tensor *x, nn_tensor *y, int bn, const float *mean, const float *invstd,
                  const nn_tensor *gamma, const nn_tensor *beta)
{
    int NC = x->n * x->c, C = x->c;
    size_t hw = (size_t)x->h * x->w;
    const float *ga = gamma ? nn_f32(gamma) : NULL, *be = beta ? nn_f32(beta) : NULL;
#pragma omp parallel for schedule(static)
    for (int pc = 0; pc < NC; pc++) {
        int c = pc % C, gi = bn ? c : pc;
        float sc = invstd[gi] * (ga ? ga[c] : 1.0f);
        float sh = (be ? be[c] : 0.0f) - mean[gi] * sc;
        const float *xp = nn_f32(x) + (size_t)pc * hw;
        float *yp = nn_f32(y) + (size_t)pc * hw;
#pragma omp simd
        for (size_t j = 0; j < hw; j++)
            yp[j] = xp[j] * sc + sh;
    }
}

static int norm_fwd(nn_ctx *ctx, nn_node *nd, int bn)
{
    nn_tensor *x = nd->in[0], *gamma = nd->in[1], *beta = nd->in[2];
    int G = bn ? x->c : x->n * x->c;
    int training = bn ? nd->i[0] : 1;
    float eps = bn ? nd->f[1] : nd->f[0];
    norm_saved *sv = nn_ctx_scratch(ctx, sizeof *sv);
    double *dm = nn_ctx_scratch(ctx, (size_t)G * 2 * sizeof(double));
    if (!sv || !dm)
        return -1;
    sv->mean = nn_ctx_scratch(ctx, (size_t)G * 4);
    sv->invstd = nn_ctx_scratch(ctx, (size_t)G * 4);
    if (!sv->mean || !sv->invstd)
        return -1;
    if (training) {
        group_stats(x, bn, dm, dm + G);
        for (int g = 0; g < G; g++) {
            sv->mean[g] = (float)dm[g];
            sv->invstd[g] = (float)(1.0 / sqrt(dm[G + g] + eps));
        }
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
    }
    apply(x, nd->out, bn, sv->mean, sv->invstd, gamma, beta);
    nd->saved = sv;
    return 0;
}

static int norm_bwd(nn_ctx *ctx, nn_node *nd, int bn)
{
    nn_tensor *x = nd->in[0], *gamma = nd->in[1], *beta = nd->in[2];
    const norm_saved *sv = nd->saved;
    const float *dy = nd->out->grad, *ga = gamma ? nn_f32(gamma) : NULL;
    int C = x->c, G = bn ? C : x->n * C, P = bn ? x->n : 1;
    int training = bn ? nd->i[0] : 1;
    size_t hw = (size_t)x->h * x->w;
    /* per group: sum dy and sum dy*xhat */
    double *sdy = nn_ctx_scratch(ctx, (size_t)G * 2 * sizeof(double));
    if (!sdy)
        return -1;
    double *sdyx = sdy + G;
#pragma omp parallel for schedule(dynamic, 1)
    for (int gi = 0; gi < G; gi++) {
        double a = 0, b = 0;
        float m = sv->mean[gi], is = sv->invstd[gi];
        for (int n = 0; n < P; n++) {
            size_t off = (bn ? ((size_t)n * C + gi) : (size_t)gi) * hw;
            sum_bwd(dy + off, nn_f32(x) + off, hw, m, &a, &b);
        }
        sdy[gi] = a;
        sdyx[gi] = b * is;
    }
    int acc;
    if (gamma && gamma->requires_grad) {
        float *gg = nn_grad_acquire(ctx, gamma, &acc);
        if (!gg)
            return -1;
        for (int c = 0; c < C; c++) {
            double s = 0;
            if (bn)
                s = sdyx[c];
            else
                for (int n = 0; n < x->n; n++)
                    s += sdyx[n * C + c];
            gg[c] = (acc ? gg[c] : 0) + (float)s;
        }
    }
    if (beta && beta->requires_grad) {
        float *gb = nn_grad_acquire(ctx, beta, &acc);
        if (!gb)
            return -1;
        for (int c = 0; c < C; c++) {
            double s = 0;
            if (bn)
                s = sdy[c];
            else
                for (int n = 0; n < x->n; n++)
                    s += sdy[n * C + c];
            gb[c] = (acc ? gb[c] : 0) + (float)s;
        }
    }
    if (x->requires_grad) {
        float *gx = nn_grad_acquire(ctx, x, &acc);
        if (!gx)
            return -1;
        int NC = x->n * C;
        double cnt = (double)hw * P;
#pragma omp parallel for schedule(static)
        for (int pc = 0; pc < NC; pc++) {
            int c = pc % C, gi = bn ? c : pc;
            float gam = ga ? ga[c] : 1.0f, m = sv->mean[gi], is = sv->invstd[gi];
            float k = gam * is;
            float mdy = training ? (float)(sdy[gi] / cnt) : 0.0f;
            float mdyx = training ? (float)(sdyx[gi] / cnt) : 0.0f;
            const float *xp = nn_f32(x) + (size_t)pc * hw, *gp = dy + (size_t)pc * hw;
            float *op = gx + (size_t)pc * hw;
            float c1 = k * mdyx * is;
            if (acc) {
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
    return 0;
}

int cpu_instance_norm_fwd(nn_ctx *ctx, nn_node *nd) { return norm_fwd(ctx, nd, 0); }
int cpu_instance_norm_bwd(nn_ctx *ctx, nn_node *nd) { return norm_bwd(ctx, nd, 0); }
int cpu_batch_norm_fwd(nn_ctx *ctx, nn_node *nd) { return norm_fwd(ctx, nd, 1); }
int cpu_batch_norm_bwd(nn_ctx *ctx, nn_node *nd) { return norm_bwd(ctx, nd, 1); }
