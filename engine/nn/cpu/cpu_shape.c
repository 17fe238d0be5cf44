/* cpu_shape.c: reflection/zero padding, max pooling, concat over channels, bilinear and
 * nearest resize (PyTorch's index conventions), forward and backward. Parallel over
 * (n, c) planes; backward scatters stay within a plane, so no atomics. */
#include "cpu.h"

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
#pragma omp parallel for schedule(static)
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
#pragma omp parallel for schedule(static)
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
#pragma omp parallel for schedule(static)
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
#pragma omp parallel for schedule(static)
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
#pragma omp parallel for schedule(static)
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
#pragma omp parallel for schedule(static)
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
#pragma omp parallel for schedule(static)
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
#pragma omp parallel for schedule(static)
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
#pragma omp parallel for schedule(static)
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
