/* cpu_eltwise.c: ReLU, LeakyReLU, tanh, sigmoid, softmax over channels, add, scale. */
#include "cpu.h"
#include "cpu_vmath.h"

#include <immintrin.h>
#include <math.h>
#include <string.h>

/* g[i] (=|+=) EXPR over i < n, the accumulate test hoisted out of the loop. */
#define GRAD_LOOP(g, n, acc, EXPR)                                                                 \
    do {                                                                                           \
        if (acc) {                                                                                 \
            _Pragma(                                                                               \
                "omp parallel for simd if (cpu_par_ok(n)) schedule(static)") for (size_t i = 0;    \
                                                                                  i < (n); i++)(   \
                g)[i] += (EXPR);                                                                   \
        } else {                                                                                   \
            _Pragma("omp parallel for simd if (cpu_par_ok(n)) schedule(static)") for (size_t i =   \
                                                                                          0;       \
                                                                                      i < (n);     \
                                                                                      i++)(g)[i] = \
                (EXPR);                                                                            \
        }                                                                                          \
    } while (0)

/* Written as `a > 0 ? gy[i] : 0` or `a > 0 ? a : a * s`, the load or the multiply is
 * conditional, which GCC will not if-convert (it might trap), and the loop runs scalar with a
 * branch per element: LeakyReLU's forward and backward took 17 ms a step each in the
 * discriminator benchmark. ReLU selects between evaluated values (compare-and-blend);
 * LeakyReLU is written out in AVX2 (GCC turns every scalar form back into the branch). A NaN
 * input still gives NaN. */
static inline float relu_fwd(float a) { return a > 0 ? a : 0.0f; }
static inline float relu_bwd(float a, float g) { return a > 0 ? g : 0.0f; }

/* y (= or +=, acc) v (a > 0 ? 1 : s), with v = gy (the backward pass) or a (forward, gy NULL);
 * y may be a */
static void leaky_loop(const float *a, const float *gy, float *y, size_t n, float s, int acc)
{
    const size_t blk = 8192;
#pragma omp parallel for if (cpu_par_ok(n)) schedule(static)
    for (size_t b = 0; b < n; b += blk) {
        const size_t e = b + blk < n ? b + blk : n;
        const __m256 one = _mm256_set1_ps(1.0f), sv = _mm256_set1_ps(s), z = _mm256_setzero_ps();
        size_t i = b;
        for (; i + 8 <= e; i += 8) {
            const __m256 av = _mm256_loadu_ps(a + i);
            const __m256 f = _mm256_blendv_ps(sv, one, _mm256_cmp_ps(av, z, _CMP_GT_OQ));
            __m256 v = _mm256_mul_ps(gy ? _mm256_loadu_ps(gy + i) : av, f);
            if (acc)
                v = _mm256_add_ps(v, _mm256_loadu_ps(y + i));
            _mm256_storeu_ps(y + i, v);
        }
        for (; i < e; i++) {
            const float v = (gy ? gy[i] : a[i]) * (a[i] > 0 ? 1.0f : s);
            y[i] = acc ? y[i] + v : v;
        }
    }
}

void cpu_act_apply(const float *a, float *y, size_t n, int act, float slope)
{
    switch (act) {
    case NN_ACT_RELU:
#pragma omp parallel for simd if (cpu_par_ok(n)) schedule(static)
        for (size_t i = 0; i < n; i++)
            y[i] = relu_fwd(a[i]);
        break;
    case NN_ACT_LEAKY_RELU:
        leaky_loop(a, NULL, y, n, slope, 0);
        break;
    case NN_ACT_TANH: { /* cpu_tanh8: glibc's tanhf took 20 ns an element */
        const size_t n8 = n / 8 * 8;
#pragma omp parallel for if (cpu_par_ok(n)) schedule(static)
        for (size_t i = 0; i < n8; i += 8)
            _mm256_storeu_ps(y + i, cpu_tanh8(_mm256_loadu_ps(a + i)));
        for (size_t i = n8; i < n; i++)
            y[i] = tanhf(a[i]);
        break;
    }
    case NN_ACT_SIGMOID:
#pragma omp parallel for if (cpu_par_ok(n)) schedule(static)
        for (size_t i = 0; i < n; i++)
            y[i] = 1.0f / (1.0f + expf(-a[i]));
        break;
    default:
        if (y != a)
            memcpy(y, a, n * sizeof *y);
        break;
    }
}

/* ---- softmax over channels ------------------------------------------------------------
 * NCHW: the C values of a pixel lie hw apart, so 8 neighbouring pixels are one vector per
 * channel and the reduction over channels is vertical (no shuffles). Pixels past the last
 * multiple of 8 take the scalar loop. */

static void softmax_px(const float *x, float *y, int C, size_t hw, size_t i)
{
    float m = x[i];
    for (int c = 1; c < C; c++)
        m = fmaxf(m, x[c * hw + i]);
    float s = 0;
    for (int c = 0; c < C; c++) {
        float e = expf(x[c * hw + i] - m);
        y[c * hw + i] = e;
        s += e;
    }
    const float inv = 1.0f / s;
    for (int c = 0; c < C; c++)
        y[c * hw + i] *= inv;
}

static void softmax_fwd(const float *a, float *y, int N, int C, size_t hw)
{
    const size_t hw8 = hw / 8 * 8;
#pragma omp parallel for collapse(2) if (cpu_par_ok((size_t)N * C * hw)) schedule(static)
    for (int b = 0; b < N; b++)
        for (size_t i = 0; i < hw8; i += 8) {
            const float *x = a + (size_t)b * C * hw + i;
            float *o = y + (size_t)b * C * hw + i;
            __m256 m = _mm256_loadu_ps(x);
            for (int c = 1; c < C; c++)
                m = _mm256_max_ps(m, _mm256_loadu_ps(x + c * hw));
            __m256 s = _mm256_setzero_ps();
            for (int c = 0; c < C; c++) {
                const __m256 e = cpu_exp8(_mm256_sub_ps(_mm256_loadu_ps(x + c * hw), m));
                _mm256_storeu_ps(o + c * hw, e);
                s = _mm256_add_ps(s, e);
            }
            const __m256 inv = _mm256_div_ps(_mm256_set1_ps(1.0f), s);
            for (int c = 0; c < C; c++)
                _mm256_storeu_ps(o + c * hw, _mm256_mul_ps(_mm256_loadu_ps(o + c * hw), inv));
        }
    for (int b = 0; b < N; b++)
        for (size_t i = hw8; i < hw; i++)
            softmax_px(a + (size_t)b * C * hw, y + (size_t)b * C * hw, C, hw, i);
}

/* g (= or +=) y (gy - sum_c y gy) */
static void softmax_bwd(const float *y, const float *gy, float *g, int N, int C, size_t hw, int acc)
{
    const size_t hw8 = hw / 8 * 8;
#pragma omp parallel for collapse(2) if (cpu_par_ok((size_t)N * C * hw)) schedule(static)
    for (int b = 0; b < N; b++)
        for (size_t i = 0; i < hw8; i += 8) {
            const size_t off = (size_t)b * C * hw + i;
            __m256 s = _mm256_setzero_ps();
            for (int c = 0; c < C; c++)
                s = _mm256_fmadd_ps(_mm256_loadu_ps(y + off + c * hw),
                                    _mm256_loadu_ps(gy + off + c * hw), s);
            for (int c = 0; c < C; c++) {
                const size_t j = off + c * hw;
                __m256 v = _mm256_mul_ps(_mm256_loadu_ps(y + j),
                                         _mm256_sub_ps(_mm256_loadu_ps(gy + j), s));
                if (acc)
                    v = _mm256_add_ps(v, _mm256_loadu_ps(g + j));
                _mm256_storeu_ps(g + j, v);
            }
        }
    for (int b = 0; b < N; b++)
        for (size_t i = hw8; i < hw; i++) {
            const size_t off = (size_t)b * C * hw + i;
            float s = 0;
            for (int c = 0; c < C; c++)
                s += y[off + c * hw] * gy[off + c * hw];
            for (int c = 0; c < C; c++) {
                const size_t j = off + c * hw;
                g[j] = (acc ? g[j] : 0) + y[j] * (gy[j] - s);
            }
        }
}

void cpu_add_fwd(const float *a, const float *b, float *y, size_t n, int relu)
{
    if (relu) {
#pragma omp parallel for simd if (cpu_par_ok(n)) schedule(static)
        for (size_t i = 0; i < n; i++)
            y[i] = relu_fwd(a[i] + b[i]);
    } else {
#pragma omp parallel for simd if (cpu_par_ok(n)) schedule(static)
        for (size_t i = 0; i < n; i++)
            y[i] = a[i] + b[i];
    }
}

int cpu_eltwise_fwd(nn_ctx *ctx, nn_node *nd)
{
    (void)ctx;
    const nn_tensor *x = nd->in[0];
    const float *a = nn_f32(x);
    float *y = nn_f32(nd->out);
    size_t n = nn_numel(x);
    float f = nd->f[0];
    switch (nd->op) {
    case NN_OP_RELU:
        cpu_act_apply(a, y, n, NN_ACT_RELU, 0.0f);
        return 0;
    case NN_OP_LEAKY_RELU:
        cpu_act_apply(a, y, n, NN_ACT_LEAKY_RELU, f);
        return 0;
    case NN_OP_TANH:
        cpu_act_apply(a, y, n, NN_ACT_TANH, 0.0f);
        return 0;
    case NN_OP_SIGMOID:
        cpu_act_apply(a, y, n, NN_ACT_SIGMOID, 0.0f);
        return 0;
    case NN_OP_SCALE:
#pragma omp parallel for simd if (cpu_par_ok(n)) schedule(static)
        for (size_t i = 0; i < n; i++)
            y[i] = a[i] * f;
        return 0;
    case NN_OP_ADD: /* i[0]: nn_add_relu */
        cpu_add_fwd(a, nn_f32(nd->in[1]), y, n, nd->i[0]);
        return 0;
    case NN_OP_SOFTMAX:
        softmax_fwd(a, y, x->n, x->c, (size_t)x->h * x->w);
        return 0;
    default:
        break;
    }
    nn_ctx_fail(ctx, "cpu_eltwise: bad op %s", nn_op_name(nd->op));
    return -1;
}

int cpu_eltwise_bwd(nn_ctx *ctx, nn_node *nd)
{
    nn_tensor *x = nd->in[0];
    const float *a = nn_f32(x), *y = nn_f32(nd->out), *gy = nd->out->grad;
    size_t n = nn_numel(x);
    float f = nd->f[0];
    int acc;
    if (nd->op == NN_OP_ADD) {
        for (int k = 0; k < 2; k++) {
            if (!nd->in[k]->requires_grad)
                continue;
            float *g = nn_grad_acquire(ctx, nd->in[k], &acc);
            if (!g)
                return -1;
            if (nd->i[0]) /* with the ReLU: its gradient, from the output */
                GRAD_LOOP(g, n, acc, relu_bwd(y[i], gy[i]));
            else
                cpu_grad_store(g, gy, n, acc);
        }
        return 0;
    }
    if (!x->requires_grad)
        return 0;
    float *g = nn_grad_acquire(ctx, x, &acc);
    if (!g)
        return -1;
    switch (nd->op) {
    case NN_OP_RELU:
        GRAD_LOOP(g, n, acc, relu_bwd(a[i], gy[i]));
        return 0;
    case NN_OP_LEAKY_RELU:
        leaky_loop(a, gy, g, n, f, acc);
        return 0;
    case NN_OP_TANH:
        GRAD_LOOP(g, n, acc, gy[i] * (1 - y[i] * y[i]));
        return 0;
    case NN_OP_SIGMOID:
        GRAD_LOOP(g, n, acc, gy[i] * y[i] * (1 - y[i]));
        return 0;
    case NN_OP_SCALE:
        GRAD_LOOP(g, n, acc, gy[i] * f);
        return 0;
    case NN_OP_SOFTMAX:
        softmax_bwd(y, gy, g, x->n, x->c, (size_t)x->h * x->w, acc);
        return 0;
    default:
        break;
    }
    nn_ctx_fail(ctx, "cpu_eltwise: bad op %s", nn_op_name(nd->op));
    return -1;
}
