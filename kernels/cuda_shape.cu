/* cuda_shape.cu: reflection/zero padding, max pooling, concat over channels, bilinear and
 * nearest resize (twin of engine/nn/cpu/cpu_shape.c, PyTorch's index conventions).
 * Forward: one thread per output element (a gather). Backward: zero-padding is a gather;
 * the others scatter with atomicAdd into a gradient zeroed first (or the accumulating one),
 * since several outputs may read one input (reflection borders, overlapping pool windows,
 * resize). Float atomics make the summation order vary: results may differ from the CPU by
 * rounding, never by more. */
#include "cuda.h"

static __device__ __forceinline__ int reflect(int i, int n)
{
    if (i < 0)
        i = -i;
    if (i >= n)
        i = 2 * (n - 1) - i;
    return i;
}

/* PyTorch upsample_bilinear2d (align_corners=False) source index and weights for output o;
 * round-to-nearest intrinsics keep nvcc from contracting into an FMA (the CPU's table). */
static __device__ __forceinline__ void bilin(int o, int in, int out, int *i0, int *i1, float *l0,
                                             float *l1)
{
    float scale = __fdiv_rn((float)in, (float)out);
    float src = __fadd_rn(__fmul_rn(scale, __fadd_rn((float)o, 0.5f)), -0.5f);
    if (src < 0)
        src = 0;
    int a = (int)src;
    if (a > in - 1)
        a = in - 1;
    *i0 = a;
    *i1 = a + (a < in - 1 ? 1 : 0);
    *l1 = __fadd_rn(src, -(float)a);
    *l0 = 1.0f - *l1;
}

static __device__ __forceinline__ int nearest(int o, int in, int out)
{
    float scale = __fdiv_rn((float)in, (float)out);
    int i = (int)floorf(__fmul_rn((float)o, scale));
    return i < in - 1 ? i : in - 1;
}

/* ---- padding ------------------------------------------------------------------------- */

static __global__ void k_pad_fwd(const float *x, float *y, int planes, int H, int W, int OH,
                                 int OW, int l, int t, int refl)
{
    CUDA_FOR(j, (size_t)planes * OH * OW)
    {
        int ow = (int)(j % OW), oh = (int)(j / OW % OH);
        size_t p = j / ((size_t)OH * OW);
        int ih = oh - t, iw = ow - l;
        float v;
        if (refl)
            v = x[(p * H + reflect(ih, H)) * W + reflect(iw, W)];
        else
            v = (ih >= 0 && ih < H && iw >= 0 && iw < W) ? x[(p * H + ih) * W + iw] : 0.0f;
        y[j] = v;
    }
}

/* zero padding backward: every input element has exactly one output */
static __global__ void k_padzero_bwd(const float *gy, float *gx, int planes, int H, int W,
                                     int OH, int OW, int l, int t, int acc)
{
    CUDA_FOR(j, (size_t)planes * H * W)
    {
        int iw = (int)(j % W), ih = (int)(j / W % H);
        size_t p = j / ((size_t)H * W);
        float v = gy[(p * OH + ih + t) * OW + iw + l];
        gx[j] = acc ? gx[j] + v : v;
    }
}

static __global__ void k_padrefl_bwd(const float *gy, float *gx, int planes, int H, int W,
                                     int OH, int OW, int l, int t)
{
    CUDA_FOR(j, (size_t)planes * OH * OW)
    {
        int ow = (int)(j % OW), oh = (int)(j / OW % OH);
        size_t p = j / ((size_t)OH * OW);
        atomicAdd(&gx[(p * H + reflect(oh - t, H)) * W + reflect(ow - l, W)], gy[j]);
    }
}

/* ---- max pool ------------------------------------------------------------------------ */

static __global__ void k_pool_fwd(const float *x, float *y, int32_t *arg, int planes, int H,
                                  int W, int OH, int OW, int k, int s)
{
    CUDA_FOR(j, (size_t)planes * OH * OW)
    {
        int ow = (int)(j % OW), oh = (int)(j / OW % OH);
        size_t p = j / ((size_t)OH * OW);
        const float *xp = x + p * H * W;
        int best = oh * s * W + ow * s;
        float bv = xp[best];
        for (int a = 0; a < k; a++)
            for (int b = 0; b < k; b++) {
                int q = (oh * s + a) * W + ow * s + b;
                if (xp[q] > bv || isnan(xp[q])) {
                    bv = xp[q];
                    best = q;
                }
            }
        y[j] = bv;
        if (arg)
            arg[j] = best;
    }
}

static __global__ void k_pool_bwd(const float *gy, const int32_t *arg, float *gx, int planes,
                                  int H, int W, size_t ohw)
{
    CUDA_FOR(j, (size_t)planes * ohw)
    {
        size_t p = j / ohw;
        atomicAdd(&gx[p * H * W + arg[j]], gy[j]);
    }
}

/* ---- concat (strided block copy / add) ------------------------------------------------- */

/* dst[n*dstride + i] (=|+=) src[n*sstride + i] for n < N, i < blk */
static __global__ void k_blk_add(float *dst, size_t dstride, const float *src, size_t sstride,
                                 size_t blk, int N)
{
    CUDA_FOR(j, (size_t)N * blk)
    {
        size_t n = j / blk, i = j % blk;
        dst[n * dstride + i] += src[n * sstride + i];
    }
}

/* ---- resize ---------------------------------------------------------------------------- */

static __global__ void k_bilinear_fwd(const float *x, float *y, int planes, int H, int W, int OH,
                                      int OW)
{
    CUDA_FOR(j, (size_t)planes * OH * OW)
    {
        int ow = (int)(j % OW), oh = (int)(j / OW % OH);
        size_t p = j / ((size_t)OH * OW);
        int h0, h1, w0, w1;
        float a0, a1, c0, c1;
        bilin(oh, H, OH, &h0, &h1, &a0, &a1);
        bilin(ow, W, OW, &w0, &w1, &c0, &c1);
        const float *r0 = x + (p * H + h0) * W, *r1 = x + (p * H + h1) * W;
        y[j] = a0 * (c0 * r0[w0] + c1 * r0[w1]) + a1 * (c0 * r1[w0] + c1 * r1[w1]);
    }
}

static __global__ void k_bilinear_bwd(const float *gy, float *gx, int planes, int H, int W,
                                      int OH, int OW)
{
    CUDA_FOR(j, (size_t)planes * OH * OW)
    {
        int ow = (int)(j % OW), oh = (int)(j / OW % OH);
        size_t p = j / ((size_t)OH * OW);
        int h0, h1, w0, w1;
        float a0, a1, c0, c1, g = gy[j];
        bilin(oh, H, OH, &h0, &h1, &a0, &a1);
        bilin(ow, W, OW, &w0, &w1, &c0, &c1);
        float *r0 = gx + (p * H + h0) * W, *r1 = gx + (p * H + h1) * W;
        atomicAdd(&r0[w0], a0 * c0 * g);
        atomicAdd(&r0[w1], a0 * c1 * g);
        atomicAdd(&r1[w0], a1 * c0 * g);
        atomicAdd(&r1[w1], a1 * c1 * g);
    }
}

static __global__ void k_nearest_fwd(const float *x, float *y, int planes, int H, int W, int OH,
                                     int OW)
{
    CUDA_FOR(j, (size_t)planes * OH * OW)
    {
        int ow = (int)(j % OW), oh = (int)(j / OW % OH);
        size_t p = j / ((size_t)OH * OW);
        y[j] = x[(p * H + nearest(oh, H, OH)) * W + nearest(ow, W, OW)];
    }
}

static __global__ void k_nearest_bwd(const float *gy, float *gx, int planes, int H, int W, int OH,
                                     int OW)
{
    CUDA_FOR(j, (size_t)planes * OH * OW)
    {
        int ow = (int)(j % OW), oh = (int)(j / OW % OH);
        size_t p = j / ((size_t)OH * OW);
        atomicAdd(&gx[(p * H + nearest(oh, H, OH)) * W + nearest(ow, W, OW)], gy[j]);
    }
}

/* ---- dispatch -------------------------------------------------------------------------- */

int cuda_shape_fwd(nn_ctx *ctx, nn_node *nd)
{
    const nn_tensor *x = nd->in[0];
    nn_tensor *y = nd->out;
    int H = x->h, W = x->w, OH = y->h, OW = y->w, planes = x->n * x->c;
    size_t ny = nn_numel(y);
    unsigned nb = cuda_blocks(ny);
    switch (nd->op) {
    case NN_OP_PAD_REFLECT:
    case NN_OP_PAD_ZERO:
        k_pad_fwd<<<nb, CUDA_THREADS>>>(nn_f32(x), nn_f32(y), planes, H, W, OH, OW, nd->i[0],
                                        nd->i[2], nd->op == NN_OP_PAD_REFLECT);
        break;
    case NN_OP_MAX_POOL: {
        int32_t *arg = NULL;
        if (nd->recorded && !(arg = (int32_t *)nn_ctx_scratch(ctx, ny * 4)))
            return -1;
        nd->saved = arg;     /* device memory: argmax offset within the plane [N, C, OH, OW] */
        k_pool_fwd<<<nb, CUDA_THREADS>>>(nn_f32(x), nn_f32(y), arg, planes, H, W, OH, OW,
                                         nd->i[0], nd->i[1]);
        break;
    }
    case NN_OP_CONCAT: {
        size_t ihw = (size_t)H * W;
        int off = 0;
        for (int k = 0; k < nd->nin; k++) {
            const nn_tensor *xk = nd->in[k];
            size_t blk = (size_t)xk->c * ihw;
            /* N rows of blk floats, from pitch blk to pitch y->c * ihw */
            if (cudaMemcpy2DAsync(nn_f32(y) + (size_t)off * ihw, (size_t)y->c * ihw * 4,
                                  nn_f32(xk), blk * 4, blk * 4, (size_t)y->n,
                                  cudaMemcpyDeviceToDevice, 0) != cudaSuccess)
                return cuda_check(ctx, "concat");
            off += xk->c;
        }
        break;
    }
    case NN_OP_RESIZE_BILINEAR:
        k_bilinear_fwd<<<nb, CUDA_THREADS>>>(nn_f32(x), nn_f32(y), planes, H, W, OH, OW);
        break;
    case NN_OP_RESIZE_NEAREST:
        k_nearest_fwd<<<nb, CUDA_THREADS>>>(nn_f32(x), nn_f32(y), planes, H, W, OH, OW);
        break;
    default:
        nn_ctx_fail(ctx, "cuda_shape: bad op %s", nn_op_name(nd->op));
        return -1;
    }
    return cuda_check(ctx, nn_op_name(nd->op));
}

int cuda_shape_bwd(nn_ctx *ctx, nn_node *nd)
{
    nn_tensor *x = nd->in[0];
    const nn_tensor *y = nd->out;
    const float *gy = y->grad;
    int H = x->h, W = x->w, OH = y->h, OW = y->w, planes = x->n * x->c, acc;
    size_t ihw = (size_t)H * W, ny = nn_numel(y);
    unsigned nb = cuda_blocks(ny);
    float *gx;

    if (nd->op == NN_OP_CONCAT) {
        int off = 0;
        for (int k = 0; k < nd->nin; k++) {
            nn_tensor *xk = nd->in[k];
            size_t blk = (size_t)xk->c * ihw;
            if (xk->requires_grad) {
                if (!(gx = nn_grad_acquire(ctx, xk, &acc)))
                    return -1;
                const float *src = gy + (size_t)off * ihw;
                if (acc)
                    k_blk_add<<<cuda_blocks(blk * y->n), CUDA_THREADS>>>(
                        gx, blk, src, (size_t)y->c * ihw, blk, y->n);
                else if (cudaMemcpy2DAsync(gx, blk * 4, src, (size_t)y->c * ihw * 4, blk * 4,
                                           (size_t)y->n, cudaMemcpyDeviceToDevice,
                                           0) != cudaSuccess)
                    return cuda_check(ctx, "concat backward");
                if (cuda_check(ctx, "concat backward"))
                    return -1;
            }
            off += xk->c;
        }
        return 0;
    }
    if (!x->requires_grad)
        return 0;
    if (!(gx = nn_grad_acquire(ctx, x, &acc)))
        return -1;
    if (nd->op == NN_OP_PAD_ZERO) {
        k_padzero_bwd<<<cuda_blocks(nn_numel(x)), CUDA_THREADS>>>(gy, gx, planes, H, W, OH, OW,
                                                                  nd->i[0], nd->i[2], acc);
        return cuda_check(ctx, "pad_zero backward");
    }
    if (!acc)                /* every op below scatters with += */
        cudaMemsetAsync(gx, 0, nn_numel(x) * 4, 0);
    switch (nd->op) {
    case NN_OP_PAD_REFLECT:
        k_padrefl_bwd<<<nb, CUDA_THREADS>>>(gy, gx, planes, H, W, OH, OW, nd->i[0], nd->i[2]);
        break;
    case NN_OP_MAX_POOL:
        if (!nd->saved) {
            nn_ctx_fail(ctx, "cuda_shape: max_pool backward without saved indices");
            return -1;
        }
        k_pool_bwd<<<nb, CUDA_THREADS>>>(gy, (const int32_t *)nd->saved, gx, planes, H, W,
                                         (size_t)OH * OW);
        break;
    case NN_OP_RESIZE_BILINEAR:
        k_bilinear_bwd<<<nb, CUDA_THREADS>>>(gy, gx, planes, H, W, OH, OW);
        break;
    case NN_OP_RESIZE_NEAREST:
        k_nearest_bwd<<<nb, CUDA_THREADS>>>(gy, gx, planes, H, W, OH, OW);
        break;
    default:
        nn_ctx_fail(ctx, "cuda_shape: bad op %s", nn_op_name(nd->op));
        return -1;
    }
    return cuda_check(ctx, nn_op_name(nd->op));
}
