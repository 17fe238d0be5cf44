/* cpu_shape.c: reflection/zero padding, max pooling, concat over channels, bilinear and
 * nearest resize (PyTorch's index conventions), forward and backward. Parallel over
 * (n, c) planes; backward scatters stay within a plane, so no atomics. */
#include "cpu.h"

#include <immintrin.h>

#include <math.h>
#include <string.h>

static inline int reflect(int i, int n)
{
    if (i < 0)
        i = -i;
    if (i >= n)
        i = 2 * (n - 1) - i;
    return i;
}

/* ---- resize index tables ------------------------------------------------------------- */

typedef struct {
    int i0, i1;
    float l0, l1;
} lerp;

/* PyTorch upsample_bilinear2d, align_corners=False, no scale factor given */
static void bilinear_table(lerp *t, int in, int out)
{
    float scale = (float)in / (float)out;
    for (int o = 0; o < out; o++) {
        float src = scale * ((float)o + 0.5f) - 0.5f;
        if (src < 0)
            src = 0;
        int i0 = (int)src;
        if (i0 > in - 1)
            i0 = in - 1;
        int i1 = i0 + (i0 < in - 1 ? 1 : 0);
        float l1 = src - (float)i0;
        t[o] = (lerp){i0, i1, 1.0f - l1, l1};
    }
}

static void nearest_table(int *t, int in, int out)
{
    float scale = (float)in / (float)out;
    for (int o = 0; o < out; o++) {
        int i = (int)floorf((float)o * scale);
        t[o] = i < in - 1 ? i : in - 1;
    }
}

/* max pooling 2x2, stride 2, with the general loop's choice (the first maximum in row order; a
 * NaN wins, the last one when several), branch-free: on real activations the general loop's
 * compares mispredict about half the time (0.23 ms a call on the mkd iteration's 4x8x64x64
 * tensors). Eight outputs at a time: the even and odd columns of the two input rows are the
 * window's four candidates, kept in window order. arg (NULL when not recorded): the winner's
 * index in its input plane, for the backward pass. */
static inline void pick(__m256 *bv, __m256i *bi, __m256 v, __m256i i)
{
    const __m256 m =
        _mm256_or_ps(_mm256_cmp_ps(v, *bv, _CMP_GT_OQ), _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
    *bv = _mm256_blendv_ps(*bv, v, m);
    *bi =
        _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(*bi), _mm256_castsi256_ps(i), m));
}

/* the even (odd = 0) or odd (odd = 1) elements of p[0..15], in order */
static inline __m256 deal(const float *p, int odd)
{
    const __m256 a = _mm256_loadu_ps(p), b = _mm256_loadu_ps(p + 8);
    const __m256 s = odd ? _mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1))
                         : _mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0));
    return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(s), _MM_SHUFFLE(3, 1, 2, 0)));
}

static void pool2x2(const float *x, float *y, int32_t *arg, int planes, int W, int OH, int OW,
                    size_t ihw, size_t ohw)
{
#pragma omp parallel for schedule(static) if (cpu_par_ok((size_t)planes * (ihw + ohw)))
    for (int p = 0; p < planes; p++) {
        const float *xp = x + p * ihw;
        float *yp = y + p * ohw;
        int32_t *ap = arg ? arg + p * ohw : NULL;
        const __m256i step = _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14);
        for (int oh = 0; oh < OH; oh++) {
            const int r0 = 2 * oh * W, r1 = r0 + W;
            float *yr = yp + (size_t)oh * OW;
            int32_t *ar = ap ? ap + (size_t)oh * OW : NULL;
            int ow = 0;
            for (; ow + 8 <= OW; ow += 8) {
                const __m256i i0 = _mm256_add_epi32(_mm256_set1_epi32(r0 + 2 * ow), step),
                              i2 = _mm256_add_epi32(i0, _mm256_set1_epi32(W)),
                              one = _mm256_set1_epi32(1);
                __m256 bv = deal(xp + r0 + 2 * ow, 0);
                __m256i bi = i0;
                pick(&bv, &bi, deal(xp + r0 + 2 * ow, 1), _mm256_add_epi32(i0, one));
                pick(&bv, &bi, deal(xp + r1 + 2 * ow, 0), i2);
                pick(&bv, &bi, deal(xp + r1 + 2 * ow, 1), _mm256_add_epi32(i2, one));
                _mm256_storeu_ps(yr + ow, bv);
                if (ar)
                    _mm256_storeu_si256((__m256i *)(ar + ow), bi);
            }
            for (; ow < OW; ow++) {
                const int j0 = r0 + 2 * ow, j1 = r1 + 2 * ow;
                const int at[4] = {j0, j0 + 1, j1, j1 + 1};
                int b = 0;
                for (int q = 1; q < 4; q++)
                    if (xp[at[q]] > xp[at[b]] || isnan(xp[at[q]]))
                        b = q;
                yr[ow] = xp[at[b]];
                if (ar)
                    ar[ow] = at[b];
            }
        }
    }
}

int cpu_shape_fwd(nn_ctx *ctx, nn_node *nd)
{
    const nn_tensor *x = nd->in[0];
    nn_tensor *y = nd->out;
    int H = x->h, W = x->w, OH = y->h, OW = y->w;
    size_t ihw = (size_t)H * W, ohw = (size_t)OH * OW;
    int planes = x->n * x->c;
    switch (nd->op) {
    case NN_OP_PAD_REFLECT:
    case NN_OP_PAD_ZERO: {
        int l = nd->i[0], t = nd->i[2], refl = nd->op == NN_OP_PAD_REFLECT;
#pragma omp parallel for schedule(static) if (cpu_par_ok((size_t)planes * (ihw + ohw)))
        for (int p = 0; p < planes; p++) {
            const float *xp = nn_f32(x) + p * ihw;
            float *yp = nn_f32(y) + p * ohw;
            for (int oh = 0; oh < OH; oh++) {
                int ih = oh - t;
                float *row = yp + (size_t)oh * OW;
                if (!refl && (ih < 0 || ih >= H)) {
                    memset(row, 0, (size_t)OW * 4);
                    continue;
                }
                if (refl)
                    ih = reflect(ih, H);
                const float *xr = xp + (size_t)ih * W;
                memcpy(row + l, xr, (size_t)W * 4); /* interior, then the borders */
                for (int ow = 0; ow < l; ow++)
                    row[ow] = refl ? xr[reflect(ow - l, W)] : 0.0f;
                for (int ow = l + W; ow < OW; ow++)
                    row[ow] = refl ? xr[reflect(ow - l, W)] : 0.0f;
            }
        }
        return 0;
    }
    case NN_OP_MAX_POOL: {
        int k = nd->i[0], s = nd->i[1];
        int32_t *arg = NULL;
        if (nd->recorded && !(arg = nn_ctx_scratch(ctx, nn_numel(y) * 4)))
            return -1;
        nd->saved = arg;
        if (k == 2 && s == 2) { /* the U-Net's pooling: the window written out */
            pool2x2(nn_f32(x), nn_f32(y), arg, planes, W, OH, OW, ihw, ohw);
            return 0;
        }
#pragma omp parallel for schedule(static) if (cpu_par_ok((size_t)planes * (ihw + ohw)))
        for (int p = 0; p < planes; p++) {
            const float *xp = nn_f32(x) + p * ihw;
            float *yp = nn_f32(y) + p * ohw;
            for (int oh = 0; oh < OH; oh++)
                for (int ow = 0; ow < OW; ow++) {
                    int best = oh * s * W + ow * s;
                    float bv = xp[best];
                    for (int a = 0; a < k; a++)
                        for (int b = 0; b < k; b++) {
                            int j = (oh * s + a) * W + ow * s + b;
                            if (xp[j] > bv || isnan(xp[j])) {
                                bv = xp[j];
                                best = j;
                            }
                        }
                    yp[(size_t)oh * OW + ow] = bv;
                    if (arg)
                        arg[p * ohw + (size_t)oh * OW + ow] = best;
                }
        }
        return 0;
    }
    case NN_OP_CONCAT: {
        int off = 0;
        for (int k = 0; k < nd->nin; k++) {
            const nn_tensor *xk = nd->in[k];
            size_t blk = (size_t)xk->c * ihw;
#pragma omp parallel for schedule(static) if (cpu_par_ok((size_t)y->n * blk))
            for (int n = 0; n < y->n; n++)
                memcpy(nn_f32(y) + ((size_t)n * y->c + off) * ihw, nn_f32(xk) + (size_t)n * blk,
                       blk * 4);
            off += xk->c;
        }
        return 0;
    }
    case NN_OP_RESIZE_BILINEAR: {
        lerp *th = nn_ctx_scratch(ctx, sizeof(lerp) * (size_t)(OH + OW));
        if (!th)
            return -1;
        lerp *tw = th + OH;
        bilinear_table(th, H, OH);
        bilinear_table(tw, W, OW);
#pragma omp parallel for schedule(static) if (cpu_par_ok((size_t)planes * (ihw + ohw)))
        for (int p = 0; p < planes; p++) {
            const float *xp = nn_f32(x) + p * ihw;
            float *yp = nn_f32(y) + p * ohw;
            for (int oh = 0; oh < OH; oh++) {
                const float *r0 = xp + (size_t)th[oh].i0 * W, *r1 = xp + (size_t)th[oh].i1 * W;
                float a0 = th[oh].l0, a1 = th[oh].l1;
                for (int ow = 0; ow < OW; ow++) {
                    lerp c = tw[ow];
                    yp[(size_t)oh * OW + ow] = a0 * (c.l0 * r0[c.i0] + c.l1 * r0[c.i1]) +
                                               a1 * (c.l0 * r1[c.i0] + c.l1 * r1[c.i1]);
                }
            }
        }
        return 0;
    }
    case NN_OP_RESIZE_NEAREST: {
        int *th = nn_ctx_scratch(ctx, sizeof(int) * (size_t)(OH + OW));
        if (!th)
            return -1;
        int *tw = th + OH;
        nearest_table(th, H, OH);
        nearest_table(tw, W, OW);
#pragma omp parallel for schedule(static) if (cpu_par_ok((size_t)planes * (ihw + ohw)))
        for (int p = 0; p < planes; p++) {
            const float *xp = nn_f32(x) + p * ihw;
            float *yp = nn_f32(y) + p * ohw;
            for (int oh = 0; oh < OH; oh++)
                for (int ow = 0; ow < OW; ow++)
                    yp[(size_t)oh * OW + ow] = xp[(size_t)th[oh] * W + tw[ow]];
        }
        return 0;
    }
    default:
        break;
    }
    nn_ctx_fail(ctx, "cpu_shape: bad op %s", nn_op_name(nd->op));
    return -1;
}

int cpu_shape_bwd(nn_ctx *ctx, nn_node *nd)
{
    nn_tensor *x = nd->in[0];
    const nn_tensor *y = nd->out;
    const float *gy = y->grad;
    int H = x->h, W = x->w, OH = y->h, OW = y->w;
    size_t ihw = (size_t)H * W, ohw = (size_t)OH * OW;
    int planes = x->n * x->c, acc;
    float *gx;

    if (nd->op == NN_OP_CONCAT) {
        int off = 0;
        for (int k = 0; k < nd->nin; k++) {
            nn_tensor *xk = nd->in[k];
            size_t blk = (size_t)xk->c * ihw;
            if (xk->requires_grad) {
                if (!(gx = nn_grad_acquire(ctx, xk, &acc)))
                    return -1;
                for (int n = 0; n < y->n; n++)
                    cpu_grad_store(gx + (size_t)n * blk, gy + ((size_t)n * y->c + off) * ihw, blk,
                                   acc);
            }
            off += xk->c;
        }
        return 0;
    }
    if (!x->requires_grad)
        return 0;
    if (!(gx = nn_grad_acquire(ctx, x, &acc)))
        return -1;
    if (!acc)
        memset(gx, 0, nn_numel(x) * 4); /* every op below scatters with += */

    switch (nd->op) {
    case NN_OP_PAD_REFLECT:
    case NN_OP_PAD_ZERO: {
        int l = nd->i[0], t = nd->i[2], refl = nd->op == NN_OP_PAD_REFLECT;
#pragma omp parallel for schedule(static) if (cpu_par_ok((size_t)planes * (ihw + ohw)))
        for (int p = 0; p < planes; p++) {
            float *gp = gx + p * ihw;
            const float *yp = gy + p * ohw;
            for (int oh = 0; oh < OH; oh++) {
                int ih = oh - t;
                if (!refl && (ih < 0 || ih >= H))
                    continue;
                if (refl)
                    ih = reflect(ih, H);
                float *gr = gp + (size_t)ih * W;
                const float *yr = yp + (size_t)oh * OW;
#pragma omp simd
                for (int iw = 0; iw < W; iw++)
                    gr[iw] += yr[l + iw];
                if (refl) {
                    for (int ow = 0; ow < l; ow++)
                        gr[reflect(ow - l, W)] += yr[ow];
                    for (int ow = l + W; ow < OW; ow++)
                        gr[reflect(ow - l, W)] += yr[ow];
                }
            }
        }
        return 0;
    }
    case NN_OP_MAX_POOL: {
        const int32_t *arg = nd->saved;
#pragma omp parallel for schedule(static) if (cpu_par_ok((size_t)planes * (ihw + ohw)))
        for (int p = 0; p < planes; p++)
            for (size_t j = 0; j < ohw; j++)
                gx[p * ihw + arg[p * ohw + j]] += gy[p * ohw + j];
        return 0;
    }
    case NN_OP_RESIZE_BILINEAR: {
        lerp *th = nn_ctx_scratch(ctx, sizeof(lerp) * (size_t)(OH + OW));
        if (!th)
            return -1;
        lerp *tw = th + OH;
        bilinear_table(th, H, OH);
        bilinear_table(tw, W, OW);
#pragma omp parallel for schedule(static) if (cpu_par_ok((size_t)planes * (ihw + ohw)))
        for (int p = 0; p < planes; p++) {
            float *gp = gx + p * ihw;
            const float *yp = gy + p * ohw;
            for (int oh = 0; oh < OH; oh++) {
                float *r0 = gp + (size_t)th[oh].i0 * W, *r1 = gp + (size_t)th[oh].i1 * W;
                float a0 = th[oh].l0, a1 = th[oh].l1;
                for (int ow = 0; ow < OW; ow++) {
                    lerp c = tw[ow];
                    float g = yp[(size_t)oh * OW + ow];
                    r0[c.i0] += a0 * c.l0 * g;
                    r0[c.i1] += a0 * c.l1 * g;
                    r1[c.i0] += a1 * c.l0 * g;
                    r1[c.i1] += a1 * c.l1 * g;
                }
            }
        }
        return 0;
    }
    case NN_OP_RESIZE_NEAREST: {
        int *th = nn_ctx_scratch(ctx, sizeof(int) * (size_t)(OH + OW));
        if (!th)
            return -1;
        int *tw = th + OH;
        nearest_table(th, H, OH);
        nearest_table(tw, W, OW);
#pragma omp parallel for schedule(static) if (cpu_par_ok((size_t)planes * (ihw + ohw)))
        for (int p = 0; p < planes; p++) {
            float *gp = gx + p * ihw;
            const float *yp = gy + p * ohw;
            for (int oh = 0; oh < OH; oh++)
                for (int ow = 0; ow < OW; ow++)
                    gp[(size_t)th[oh] * W + tw[ow]] += yp[(size_t)oh * OW + ow];
        }
        return 0;
    }
    default:
        break;
    }
    nn_ctx_fail(ctx, "cpu_shape: bad op %s", nn_op_name(nd->op));
    return -1;
}
