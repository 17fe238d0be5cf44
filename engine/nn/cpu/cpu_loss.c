/* cpu_loss.c: cross-entropy, soft Dice, distillation CE, L1, least-squares GAN.
 * Formulas are stated in nn.h; sums are accumulated in double. */
#include "cpu.h"

#include <math.h>
#include <string.h>

typedef struct {
    double den;              /* CE: sum of weights; others: element count */
    double *I, *P, *G;       /* Dice, per class */
} loss_saved;

static int check_labels(nn_ctx *ctx, const nn_tensor *y, int K)
{
    const int32_t *l = y->data;
    size_t n = nn_numel(y);
    for (size_t i = 0; i < n; i++)
        if (l[i] < 0 || l[i] >= K) {
            nn_ctx_fail(ctx, "loss: label %d at %zu is outside 0..%d", (int)l[i], i, K - 1);
            return -1;
        }
    return 0;
}

int cpu_loss_fwd(nn_ctx *ctx, nn_node *nd)
{
    const nn_tensor *x = nd->in[0];
    float *out = nn_f32(nd->out);
    loss_saved *sv = nn_ctx_scratch(ctx, sizeof *sv);
    if (!sv)
        return -1;
    memset(sv, 0, sizeof *sv);
    nd->saved = sv;
    size_t n = nn_numel(x);
    const float *a = nn_f32(x);
    switch (nd->op) {
    case NN_OP_LOSS_CE: {
        int K = x->c;
        size_t hw = (size_t)x->h * x->w;
        const int32_t *lab = nd->in[1]->data;
        const float *wt = nd->in[2] ? nn_f32(nd->in[2]) : NULL;
        if (check_labels(ctx, nd->in[1], K))
            return -1;
        double num = 0, den = 0;
        for (int b = 0; b < x->n; b++) {
            const float *xb = a + (size_t)b * K * hw;
            const int32_t *lb = lab + (size_t)b * hw;
#pragma omp parallel for reduction(+ : num, den) schedule(static)
            for (size_t i = 0; i < hw; i++) {
                float m = xb[i];
                for (int c = 1; c < K; c++)
                    m = fmaxf(m, xb[c * hw + i]);
                double s = 0;
                for (int c = 0; c < K; c++)
                    s += exp((double)(xb[c * hw + i] - m));
                double lse = m + log(s);
                double w = wt ? wt[lb[i]] : 1.0;
                num += w * (lse - xb[(size_t)lb[i] * hw + i]);
                den += w;
            }
        }
        sv->den = den;
        out[0] = (float)(num / den);
        return 0;
    }
    case NN_OP_LOSS_DICE: {
        int K = x->c, first = nd->i[0];
        size_t hw = (size_t)x->h * x->w;
        const int32_t *lab = nd->in[1]->data;
        float smooth = nd->f[0];
        if (check_labels(ctx, nd->in[1], K))
            return -1;
        sv->I = nn_ctx_scratch(ctx, sizeof(double) * 3 * (size_t)K);
        if (!sv->I)
            return -1;
        sv->P = sv->I + K;
        sv->G = sv->P + K;
#pragma omp parallel for schedule(dynamic, 1)
        for (int c = 0; c < K; c++) {
            double I = 0, P = 0, G = 0;
            for (int b = 0; b < x->n; b++) {
                const float *pc = a + ((size_t)b * K + c) * hw;
                const int32_t *lb = lab + (size_t)b * hw;
                for (size_t i = 0; i < hw; i++) {
                    int g = lb[i] == c;
                    P += pc[i];
                    I += g ? pc[i] : 0;
                    G += g;
                }
            }
            sv->I[c] = I;
            sv->P[c] = P;
            sv->G[c] = G;
        }
        double s = 0;
        for (int c = first; c < K; c++)
            s += (2 * sv->I[c] + smooth) / (sv->P[c] + sv->G[c] + smooth);
        out[0] = (float)(1.0 - s / (K - first));
        return 0;
    }
    case NN_OP_LOSS_KD: {
        const float *t = a, *p = nn_f32(nd->in[1]);
        int K = x->c;
        double s = 0;
#pragma omp parallel for reduction(+ : s) schedule(static)
        for (size_t i = 0; i < n; i++)
            s += (double)t[i] * log((double)fmaxf(p[i], NN_KD_EPS));
        sv->den = (double)(n / (size_t)K);
        out[0] = (float)(-s / sv->den);
        return 0;
    }
    case NN_OP_LOSS_L1: {
        const float *b = nn_f32(nd->in[1]);
        double s = 0;
#pragma omp parallel for reduction(+ : s) schedule(static)
        for (size_t i = 0; i < n; i++)
            s += fabsf(a[i] - b[i]);
        sv->den = (double)n;
        out[0] = (float)(s / sv->den);
        return 0;
    }
    case NN_OP_LOSS_LSGAN: {
        float t = nd->f[0];
        double s = 0;
#pragma omp parallel for reduction(+ : s) schedule(static)
        for (size_t i = 0; i < n; i++)
            s += (double)(a[i] - t) * (a[i] - t);
        sv->den = (double)n;
        out[0] = (float)(s / sv->den);
        return 0;
    }
    default:
        break;
    }
    nn_ctx_fail(ctx, "cpu_loss: bad op %s", nn_op_name(nd->op));
    return -1;
}

int cpu_loss_bwd(nn_ctx *ctx, nn_node *nd)
{
    const loss_saved *sv = nd->saved;
    float go = nd->out->grad[0];
    int acc;
    switch (nd->op) {
    case NN_OP_LOSS_CE: {
        nn_tensor *x = nd->in[0];
        if (!x->requires_grad)
            return 0;
        float *g = nn_grad_acquire(ctx, x, &acc);
        if (!g)
            return -1;
        int K = x->c;
        size_t hw = (size_t)x->h * x->w;
        const int32_t *lab = nd->in[1]->data;
        const float *wt = nd->in[2] ? nn_f32(nd->in[2]) : NULL;
        float k = (float)(go / sv->den);
        for (int b = 0; b < x->n; b++) {
            const float *xb = nn_f32(x) + (size_t)b * K * hw;
            float *gb = g + (size_t)b * K * hw;
            const int32_t *lb = lab + (size_t)b * hw;
#pragma omp parallel for schedule(static)
            for (size_t i = 0; i < hw; i++) {
                float m = xb[i];
                for (int c = 1; c < K; c++)
                    m = fmaxf(m, xb[c * hw + i]);
                float s = 0;
                for (int c = 0; c < K; c++)
                    s += expf(xb[c * hw + i] - m);
                float f = k * (wt ? wt[lb[i]] : 1.0f), inv = 1.0f / s;
                for (int c = 0; c < K; c++) {
                    size_t j = c * hw + i;
                    float v = f * (expf(xb[j] - m) * inv - (c == lb[i] ? 1.0f : 0.0f));
                    gb[j] = (acc ? gb[j] : 0) + v;
                }
            }
        }
        return 0;
    }
    case NN_OP_LOSS_DICE: {
        nn_tensor *x = nd->in[0];
        if (!x->requires_grad)
            return 0;
        float *g = nn_grad_acquire(ctx, x, &acc);
        if (!g)
            return -1;
        int K = x->c, first = nd->i[0];
        size_t hw = (size_t)x->h * x->w;
        const int32_t *lab = nd->in[1]->data;
        double smooth = nd->f[0];
        for (int c = 0; c < K; c++) {
            /* d dice_c / d p_ic = 2 g_ic / D - (2I + s) / D^2,  D = P + G + s */
            float kg = 0, k0 = 0;
            if (c >= first) {
                double D = sv->P[c] + sv->G[c] + smooth, f = -go / (double)(K - first);
                kg = (float)(f * 2.0 / D);
                k0 = (float)(-f * (2 * sv->I[c] + smooth) / (D * D));
            }
            for (int b = 0; b < x->n; b++) {
                float *gc = g + ((size_t)b * K + c) * hw;
                const int32_t *lb = lab + (size_t)b * hw;
#pragma omp parallel for schedule(static)
                for (size_t i = 0; i < hw; i++)
                    gc[i] = (acc ? gc[i] : 0) + k0 + (lb[i] == c ? kg : 0);
            }
        }
        return 0;
    }
    case NN_OP_LOSS_KD: {
        nn_tensor *pt = nd->in[1];
        if (!pt->requires_grad)
            return 0;
        float *g = nn_grad_acquire(ctx, pt, &acc);
        if (!g)
            return -1;
        const float *t = nn_f32(nd->in[0]), *p = nn_f32(pt);
        float k = (float)(-go / sv->den);
        size_t n = nn_numel(pt);
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < n; i++) {
            float v = p[i] >= NN_KD_EPS ? k * t[i] / p[i] : 0.0f;
            g[i] = (acc ? g[i] : 0) + v;
        }
        return 0;
    }
    case NN_OP_LOSS_L1: {
        const float *a = nn_f32(nd->in[0]), *b = nn_f32(nd->in[1]);
        size_t n = nn_numel(nd->in[0]);
        float k = (float)(go / sv->den);
        for (int s = 0; s < 2; s++) {
            nn_tensor *t = nd->in[s];
            if (!t->requires_grad)
                continue;
            float *g = nn_grad_acquire(ctx, t, &acc);
            if (!g)
                return -1;
            float ks = s ? -k : k;
#pragma omp parallel for schedule(static)
            for (size_t i = 0; i < n; i++) {
                float d = a[i] - b[i];
                float v = d > 0 ? ks : d < 0 ? -ks : 0.0f;
                g[i] = (acc ? g[i] : 0) + v;
            }
        }
        return 0;
    }
    case NN_OP_LOSS_LSGAN: {
        nn_tensor *x = nd->in[0];
        if (!x->requires_grad)
            return 0;
        float *g = nn_grad_acquire(ctx, x, &acc);
        if (!g)
            return -1;
        const float *a = nn_f32(x);
        float t = nd->f[0], k = (float)(2.0 * go / sv->den);
        size_t n = nn_numel(x);
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < n; i++)
            g[i] = (acc ? g[i] : 0) + k * (a[i] - t);
        return 0;
    }
    default:
        break;
    }
    nn_ctx_fail(ctx, "cpu_loss: bad op %s", nn_op_name(nd->op));
    return -1;
}
