/* cpu_loss.c: cross-entropy, soft Dice, distillation CE, L1, least-squares GAN.
 * Formulas are stated in nn.h; sums over elements are accumulated in double. */
#include "cpu.h"
#include "cpu_vmath.h"

#include <math.h>
#include <string.h>

typedef struct {
    double den;        /* CE: sum of weights; others: element count */
    double *I, *P, *G; /* Dice, per class */
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

/* ---- cross-entropy over channels -------------------------------------------------------
 * As softmax (cpu_eltwise.c): 8 neighbouring pixels per vector, channels hw apart; the
 * log-sum-exp in float with the AVX2 exp and log of cpu_vmath.h, the sums over pixels in
 * double. Pixels past the last multiple of 8 take the scalar loops. */

/* lse - x[label] of pixel i, and its weight */
static double ce_px(const float *x, const int32_t *lb, const float *wt, int K, size_t hw, size_t i,
                    double *w)
{
    float m = x[i];
    for (int c = 1; c < K; c++)
        m = fmaxf(m, x[c * hw + i]);
    double s = 0;
    for (int c = 0; c < K; c++)
        s += exp((double)(x[c * hw + i] - m));
    *w = wt ? wt[lb[i]] : 1.0;
    return *w * (m + log(s) - x[(size_t)lb[i] * hw + i]);
}

static void ce_fwd(const float *a, const int32_t *lab, const float *wt, int N, int K, size_t hw,
                   double *num_out, double *den_out)
{
    const size_t hw8 = hw / 8 * 8;
    double num = 0, den = 0;
    const int team = cpu_par_ok((size_t)N * K * hw);
#pragma omp parallel for collapse(2) reduction(+ : num, den) schedule(static) if (team)
    for (int b = 0; b < N; b++)
        for (size_t i = 0; i < hw8; i += 8) {
            const float *x = a + (size_t)b * K * hw + i;
            const __m256i l = _mm256_loadu_si256((const __m256i *)(lab + (size_t)b * hw + i));
            __m256 m = _mm256_loadu_ps(x), xl = _mm256_setzero_ps(), s = _mm256_setzero_ps();
            for (int c = 1; c < K; c++)
                m = _mm256_max_ps(m, _mm256_loadu_ps(x + c * hw));
            for (int c = 0; c < K; c++) {
                const __m256 v = _mm256_loadu_ps(x + c * hw);
                s = _mm256_add_ps(s, cpu_exp8(_mm256_sub_ps(v, m)));
                xl = _mm256_blendv_ps(
                    xl, v, _mm256_castsi256_ps(_mm256_cmpeq_epi32(l, _mm256_set1_epi32(c))));
            }
            const __m256 w = wt ? _mm256_i32gather_ps(wt, l, 4) : _mm256_set1_ps(1.0f);
            const __m256 t = _mm256_mul_ps(w, _mm256_sub_ps(_mm256_add_ps(m, cpu_log8(s)), xl));
            float tv[8], wv[8];
            _mm256_storeu_ps(tv, t);
            _mm256_storeu_ps(wv, w);
            for (int k = 0; k < 8; k++) {
                num += tv[k];
                den += wv[k];
            }
        }
    for (int b = 0; b < N; b++)
        for (size_t i = hw8; i < hw; i++) {
            double w;
            num += ce_px(a + (size_t)b * K * hw, lab + (size_t)b * hw, wt, K, hw, i, &w);
            den += w;
        }
    *num_out = num;
    *den_out = den;
}

/* g (= or +=) k w (softmax(x) - onehot(label)) */
static void ce_bwd(const float *a, const int32_t *lab, const float *wt, float k, int N, int K,
                   size_t hw, float *g, int acc)
{
    const size_t hw8 = hw / 8 * 8;
#pragma omp parallel for collapse(2) if (cpu_par_ok((size_t)N * K * hw)) schedule(static)
    for (int b = 0; b < N; b++)
        for (size_t i = 0; i < hw8; i += 8) {
            const size_t off = (size_t)b * K * hw + i;
            const float *x = a + off;
            const __m256i l = _mm256_loadu_si256((const __m256i *)(lab + (size_t)b * hw + i));
            __m256 m = _mm256_loadu_ps(x), s = _mm256_setzero_ps();
            for (int c = 1; c < K; c++)
                m = _mm256_max_ps(m, _mm256_loadu_ps(x + c * hw));
            for (int c = 0; c < K; c++)
                s = _mm256_add_ps(s, cpu_exp8(_mm256_sub_ps(_mm256_loadu_ps(x + c * hw), m)));
            const __m256 w = wt ? _mm256_i32gather_ps(wt, l, 4) : _mm256_set1_ps(1.0f);
            const __m256 f = _mm256_mul_ps(_mm256_set1_ps(k), w), fs = _mm256_div_ps(f, s);
            for (int c = 0; c < K; c++) {
                const __m256 e = cpu_exp8(_mm256_sub_ps(_mm256_loadu_ps(x + c * hw), m));
                const __m256 hit = _mm256_castsi256_ps(_mm256_cmpeq_epi32(l, _mm256_set1_epi32(c)));
                __m256 v = _mm256_sub_ps(_mm256_mul_ps(e, fs), _mm256_and_ps(hit, f));
                if (acc)
                    v = _mm256_add_ps(v, _mm256_loadu_ps(g + off + c * hw));
                _mm256_storeu_ps(g + off + c * hw, v);
            }
        }
    for (int b = 0; b < N; b++)
        for (size_t i = hw8; i < hw; i++) {
            const float *xb = a + (size_t)b * K * hw;
            float *gb = g + (size_t)b * K * hw;
            const int32_t *lb = lab + (size_t)b * hw;
            float m = xb[i];
            for (int c = 1; c < K; c++)
                m = fmaxf(m, xb[c * hw + i]);
            float s = 0;
            for (int c = 0; c < K; c++)
                s += expf(xb[c * hw + i] - m);
            const float f = k * (wt ? wt[lb[i]] : 1.0f), inv = 1.0f / s;
            for (int c = 0; c < K; c++) {
                const size_t j = c * hw + i;
                const float v = f * (expf(xb[j] - m) * inv - (c == lb[i] ? 1.0f : 0.0f));
                gb[j] = (acc ? gb[j] : 0) + v;
            }
        }
}

/* sum t log(max(p, NN_KD_EPS)), log in float, sums in double per block of 8 */
static double kd_sum(const float *t, const float *p, size_t n)
{
    const size_t n8 = n / 8 * 8;
    double s = 0;
#pragma omp parallel for reduction(+ : s) schedule(static) if (cpu_par_ok(2 * n))
    for (size_t i = 0; i < n8; i += 8) {
        const __m256 lp =
            cpu_log8(_mm256_max_ps(_mm256_loadu_ps(p + i), _mm256_set1_ps(NN_KD_EPS)));
        float v[8];
        _mm256_storeu_ps(v, _mm256_mul_ps(_mm256_loadu_ps(t + i), lp));
        s += ((double)v[0] + v[1] + v[2] + v[3]) + ((double)v[4] + v[5] + v[6] + v[7]);
    }
    for (size_t i = n8; i < n; i++)
        s += (double)t[i] * log((double)fmaxf(p[i], NN_KD_EPS));
    return s;
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
        ce_fwd(a, lab, wt, x->n, K, hw, &num, &den);
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
#pragma omp parallel for schedule(dynamic, 1) if (cpu_par_ok((size_t)x->n * K * hw))
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
        const double s = kd_sum(t, p, n);
        sv->den = (double)(n / (size_t)K);
        out[0] = (float)(-s / sv->den);
        return 0;
    }
    case NN_OP_LOSS_L1: {
        const float *b = nn_f32(nd->in[1]);
        double s = 0;
#pragma omp parallel for reduction(+ : s) schedule(static) if (cpu_par_ok(2 * n))
        for (size_t i = 0; i < n; i++)
            s += fabsf(a[i] - b[i]);
        sv->den = (double)n;
        out[0] = (float)(s / sv->den);
        return 0;
    }
    case NN_OP_LOSS_LSGAN: {
        float t = nd->f[0];
        double s = 0;
#pragma omp parallel for reduction(+ : s) schedule(static) if (cpu_par_ok(2 * n))
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
        ce_bwd(nn_f32(x), lab, wt, (float)(go / sv->den), x->n, K, hw, g, acc);
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
        /* one region over every (image, class) plane */
#pragma omp parallel for schedule(static) if (cpu_par_ok((size_t)x->n * K * hw))
        for (int bc = 0; bc < x->n * K; bc++) {
            const int b = bc / K, c = bc % K;
            /* d dice_c / d p_ic = 2 g_ic / D - (2I + s) / D^2,  D = P + G + s */
            float kg = 0, k0 = 0;
            if (c >= first) {
                double D = sv->P[c] + sv->G[c] + smooth, f = -go / (double)(K - first);
                kg = (float)(f * 2.0 / D);
                k0 = (float)(-f * (2 * sv->I[c] + smooth) / (D * D));
            }
            float *gc = g + ((size_t)b * K + c) * hw;
            const int32_t *lb = lab + (size_t)b * hw;
            for (size_t i = 0; i < hw; i++)
                gc[i] = (acc ? gc[i] : 0) + k0 + (lb[i] == c ? kg : 0);
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
#pragma omp parallel for schedule(static) if (cpu_par_ok(2 * n))
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
#pragma omp parallel for schedule(static) if (cpu_par_ok(2 * n))
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
#pragma omp parallel for schedule(static) if (cpu_par_ok(2 * n))
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
