/* cuda_eltwise.cu: ReLU, LeakyReLU, tanh, sigmoid, softmax over channels, add, scale
 * (twin of engine/nn/cpu/cpu_eltwise.c: same formulas, one thread per element; softmax and
 * its backward one thread per pixel looping over channels). */
#include "cuda.h"

/* ops as small integers for the kernels */
enum { E_RELU, E_LEAKY, E_TANH, E_SIGMOID, E_SCALE };

static int code(nn_op op)
{
    switch (op) {
    case NN_OP_RELU: return E_RELU;
    case NN_OP_LEAKY_RELU: return E_LEAKY;
    case NN_OP_TANH: return E_TANH;
    case NN_OP_SIGMOID: return E_SIGMOID;
    case NN_OP_SCALE: return E_SCALE;
    default: return -1;
    }
}

static __device__ __forceinline__ float act_f(int e, float a, float f)
{
    switch (e) {
    case E_RELU: return a > 0 ? a : 0.0f;
    case E_LEAKY: return a > 0 ? a : a * f;
    case E_TANH: return tanhf(a);
    case E_SIGMOID: return 1.0f / (1.0f + expf(-a));
    default: return a * f;   /* E_SCALE */
    }
}

/* gradient given input a, output y, upstream g */
static __device__ __forceinline__ float act_b(int e, float a, float y, float g, float f)
{
    switch (e) {
    case E_RELU: return a > 0 ? g : 0.0f;
    case E_LEAKY: return a > 0 ? g : g * f;
    case E_TANH: return g * (1 - y * y);
    case E_SIGMOID: return g * y * (1 - y);
    default: return g * f;   /* E_SCALE */
    }
}

static __global__ void k_act_fwd(int e, const float *a, float *y, size_t n, float f)
{
    CUDA_FOR(i, n) y[i] = act_f(e, a[i], f);
}

static __global__ void k_act_bwd(int e, const float *a, const float *y, const float *gy,
                                 float *g, size_t n, float f, int acc)
{
    CUDA_FOR(i, n)
    {
        float v = act_b(e, a[i], y[i], gy[i], f);
        g[i] = acc ? g[i] + v : v;
    }
}

static __global__ void k_add2(const float *a, const float *b, float *y, size_t n)
{
    CUDA_FOR(i, n) y[i] = a[i] + b[i];
}

/* x, y [N, C, HW]: one thread per (n, pixel) */
static __global__ void k_softmax_fwd(const float *x, float *y, int N, int C, size_t hw)
{
    CUDA_FOR(t, (size_t)N * hw)
    {
        size_t b = t / hw, i = t % hw;
        const float *xb = x + b * C * hw;
        float *yb = y + b * C * hw;
        float m = xb[i];
        for (int c = 1; c < C; c++)
            m = fmaxf(m, xb[c * hw + i]);
        float s = 0;
        for (int c = 0; c < C; c++) {
            float e = expf(xb[c * hw + i] - m);
            yb[c * hw + i] = e;
            s += e;
        }
        float inv = 1.0f / s;
        for (int c = 0; c < C; c++)
            yb[c * hw + i] *= inv;
    }
}

static __global__ void k_softmax_bwd(const float *y, const float *gy, float *g, int N, int C,
                                     size_t hw, int acc)
{
    CUDA_FOR(t, (size_t)N * hw)
    {
        size_t b = t / hw, i = t % hw, off = b * C * hw;
        float s = 0;
        for (int c = 0; c < C; c++)
            s += y[off + c * hw + i] * gy[off + c * hw + i];
        for (int c = 0; c < C; c++) {
            size_t j = off + c * hw + i;
            float v = y[j] * (gy[j] - s);
            g[j] = acc ? g[j] + v : v;
        }
    }
}

/* y = act(y + b[channel]) in one pass (the fused convolution's epilogue); 32-bit indices */
static __global__ void k_bias_act(int e, float *y, const float *b, unsigned hw, unsigned C,
                                  unsigned n, float f)
{
    for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += blockDim.x * gridDim.x) {
        float v = y[i] + b[(i / hw) % C];
        y[i] = e < 0 ? v : act_f(e, v, f);
    }
}

int cuda_act_inplace(nn_ctx *ctx, float *y, size_t n, int act, float slope)
{
    return cuda_bias_act_inplace(ctx, y, n, 0, 0, NULL, act, slope);
}

int cuda_bias_act_inplace(nn_ctx *ctx, float *y, size_t n, size_t hw, int C, const float *b,
                          int act, float slope)
{
    int e;
    switch (act) {
    case NN_ACT_NONE:
        e = -1;
        if (!b)
            return 0;
        break;
    case NN_ACT_RELU: e = E_RELU; break;
    case NN_ACT_LEAKY_RELU: e = E_LEAKY; break;
    case NN_ACT_TANH: e = E_TANH; break;
    case NN_ACT_SIGMOID: e = E_SIGMOID; break;
    default:
        nn_ctx_fail(ctx, "cuda_eltwise: bad activation %d", act);
        return -1;
    }
    if (b && n < (size_t)1 << 31)
        k_bias_act<<<cuda_blocks(n), CUDA_THREADS>>>(e, y, b, (unsigned)hw, (unsigned)C,
                                                     (unsigned)n, slope);
    else {
        if (b) {
            nn_ctx_fail(ctx, "cuda_eltwise: bias epilogue over %zu elements", n);
            return -1;
        }
        k_act_fwd<<<cuda_blocks(n), CUDA_THREADS>>>(e, y, y, n, slope);
    }
    return cuda_check(ctx, "activation");
}

int cuda_eltwise_fwd(nn_ctx *ctx, nn_node *nd)
{
    const nn_tensor *x = nd->in[0];
    const float *a = nn_f32(x);
    float *y = nn_f32(nd->out);
    size_t n = nn_numel(x);
    if (nd->op == NN_OP_ADD) {
        k_add2<<<cuda_blocks(n), CUDA_THREADS>>>(a, nn_f32(nd->in[1]), y, n);
        if (nd->i[0]) /* nn_add_relu */
            k_act_fwd<<<cuda_blocks(n), CUDA_THREADS>>>(E_RELU, y, y, n, 0.0f);
    } else if (nd->op == NN_OP_SOFTMAX) {
        size_t hw = (size_t)x->h * x->w;
        k_softmax_fwd<<<cuda_blocks((size_t)x->n * hw), CUDA_THREADS>>>(a, y, x->n, x->c, hw);
    } else {
        int e = code(nd->op);
        if (e < 0) {
            nn_ctx_fail(ctx, "cuda_eltwise: bad op %s", nn_op_name(nd->op));
            return -1;
        }
        k_act_fwd<<<cuda_blocks(n), CUDA_THREADS>>>(e, a, y, n, nd->f[0]);
    }
    return cuda_check(ctx, nn_op_name(nd->op));
}

int cuda_eltwise_bwd(nn_ctx *ctx, nn_node *nd)
{
    nn_tensor *x = nd->in[0];
    const float *gy = nd->out->grad;
    size_t n = nn_numel(x);
    int acc;
    if (nd->op == NN_OP_ADD) {
        for (int k = 0; k < 2; k++) {
            if (!nd->in[k]->requires_grad)
                continue;
            float *g = nn_grad_acquire(ctx, nd->in[k], &acc);
            if (!g)
                return -1;
            if (nd->i[0]) /* with the ReLU: its gradient, from the output (> 0 where the sum is) */
                k_act_bwd<<<cuda_blocks(n), CUDA_THREADS>>>(E_RELU, nn_f32(nd->out),
                                                           nn_f32(nd->out), gy, g, n, 0.0f, acc);
            else if (cuda_grad_store(ctx, g, gy, n, acc))
                return -1;
        }
        return 0;
    }
    if (!x->requires_grad)
        return 0;
    float *g = nn_grad_acquire(ctx, x, &acc);
    if (!g)
        return -1;
    if (nd->op == NN_OP_SOFTMAX) {
        size_t hw = (size_t)x->h * x->w;
        k_softmax_bwd<<<cuda_blocks((size_t)x->n * hw), CUDA_THREADS>>>(
            nn_f32(nd->out), gy, g, x->n, x->c, hw, acc);
    } else {
        int e = code(nd->op);
        if (e < 0) {
            nn_ctx_fail(ctx, "cuda_eltwise: bad op %s", nn_op_name(nd->op));
            return -1;
        }
        k_act_bwd<<<cuda_blocks(n), CUDA_THREADS>>>(e, nn_f32(x), nn_f32(nd->out), gy, g, n,
                                                   nd->f[0], acc);
    }
    return cuda_check(ctx, nn_op_name(nd->op));
}
