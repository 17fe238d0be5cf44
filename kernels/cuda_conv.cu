/* cuda_conv.cu: convolutions and transposed convolutions on cuDNN's legacy API (twin of
 * engine/nn/cpu/cpu_conv.c).
 *
 * Layouts are the API's: activations NCHW, conv2d weights [OC, IC, KH, KW], transposed
 * weights [IC, OC, KH, KW] (PyTorch's). A transposed convolution of x [N, IC, H, W] into
 * y [N, OC, OH, OW] is the data gradient of the convolution of y-space into x-space with
 * the same weights read as a filter [K = IC, C = OC, KH, KW], stride, pad:
 *   convT forward          = cudnnConvolutionBackwardData(w, dy = x) -> y
 *   convT backward data    = cudnnConvolutionForward(gy, w) -> gx
 *   convT backward filter  = cudnnConvolutionBackwardFilter(x_conv = gy, dy_conv = x)
 * (out_pad only makes OH one larger than the convolution needs: cuDNN takes the sizes from
 * the descriptors). Biases: cudnnAddTensor forward, cudnnConvolutionBackwardBias backward.
 * Accumulating gradients use cuDNN's beta = 1 blending, so no temporary is needed.
 *
 * Per shape, a cache entry holds the descriptors and, per direction, the algorithm chosen
 * on first use: by default the fastest that cuDNN measured (cudnnFind*, best of three
 * trials; as PyTorch's cudnn.benchmark), with MKDSEG_CUDA_ALGO=heuristic the first in cuDNN's heuristic order;
 * in both cases within the workspace bound and with FMA math unless MKDSEG_CUDA_TF32=1.
 * The workspace bound is MKDSEG_CUDA_WORKSPACE_MB (default 1024);
 * the workspace is one buffer per context grown to the largest chosen algorithm's need. */
#include "cuda.h"
#include "mkd_env.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { D_FWD, D_BWD_DATA, D_BWD_FILTER, D_COUNT };

typedef struct {
    int key[13];
    cudnnTensorDescriptor_t xd, yd, bd;  /* conv input space, conv output space, bias */
    cudnnFilterDescriptor_t wd;
    cudnnConvolutionDescriptor_t cd[D_COUNT];   /* one per direction (own math type) */
    int have[D_COUNT];
    cudnnConvolutionFwdAlgo_t fa;
    cudnnConvolutionBwdDataAlgo_t da;
    cudnnConvolutionBwdFilterAlgo_t wa;
    size_t ws[D_COUNT];
} conv_ent;

struct cuda_conv_cache {
    conv_ent *e;
    int n, cap;
};

typedef struct {
    int transposed, N, IC, H, W, OC, OH, OW, KH, KW, stride, pad, dil;
} geom;

static geom geometry(const nn_node *nd)
{
    const nn_tensor *x = nd->in[0], *w = nd->in[1], *y = nd->out;
    geom g;
    g.transposed = nd->op == NN_OP_CONV_T2D;
    g.N = x->n;
    g.IC = x->c;
    g.H = x->h;
    g.W = x->w;
    g.OC = y->c;
    g.OH = y->h;
    g.OW = y->w;
    g.KH = w->h;
    g.KW = w->w;
    g.stride = nd->i[0];
    g.pad = nd->i[1];
    g.dil = g.transposed ? 1 : nd->i[2];
    return g;
}

#define DNN(call)                                                                      \
    do {                                                                               \
        cudnnStatus_t s_ = (call);                                                     \
        if (s_ != CUDNN_STATUS_SUCCESS) {                                              \
            nn_ctx_fail(ctx, "cuDNN: %s: %s", #call, cudnnGetErrorString(s_));         \
            goto fail;                                                                 \
        }                                                                              \
    } while (0)

static size_t ws_limit(void)
{
    return (size_t)mkd_env_pos(MKD_ENV_CUDA_WORKSPACE_MB) << 20;
}

static int tf32_allowed(void)
{
    return mkd_env_pos(MKD_ENV_CUDA_TF32) > 0;
}

static void ent_free(conv_ent *e)
{
    if (e->xd) cudnnDestroyTensorDescriptor(e->xd);
    if (e->yd) cudnnDestroyTensorDescriptor(e->yd);
    if (e->bd) cudnnDestroyTensorDescriptor(e->bd);
    if (e->wd) cudnnDestroyFilterDescriptor(e->wd);
    for (int d = 0; d < D_COUNT; d++)
        if (e->cd[d])
            cudnnDestroyConvolutionDescriptor(e->cd[d]);
}

void cuda_conv_cache_free(struct cuda_conv_cache *c)
{
    if (!c)
        return;
    for (int i = 0; i < c->n; i++)
        ent_free(&c->e[i]);
    free(c->e);
    free(c);
}

/* Descriptors of an entry. In conv terms: "x" the convolution's input, "y" its output.
 * conv2d: x = node input, y = node output, filter [OC, IC]; transposed: x = node output,
 * y = node input, filter [IC, OC] (K = node input channels). */
static int ent_init(nn_ctx *ctx, conv_ent *e, const geom *g)
{
    int xN = g->N, xC, xH, xW, yC, yH, yW, fK, fC;
    if (!g->transposed) {
        xC = g->IC; xH = g->H; xW = g->W; yC = g->OC; yH = g->OH; yW = g->OW;
        fK = g->OC; fC = g->IC;
    } else {
        xC = g->OC; xH = g->OH; xW = g->OW; yC = g->IC; yH = g->H; yW = g->W;
        fK = g->IC; fC = g->OC;
    }
    DNN(cudnnCreateTensorDescriptor(&e->xd));
    DNN(cudnnCreateTensorDescriptor(&e->yd));
    DNN(cudnnCreateTensorDescriptor(&e->bd));
    DNN(cudnnCreateFilterDescriptor(&e->wd));
    DNN(cudnnSetTensor4dDescriptor(e->xd, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, xN, xC, xH, xW));
    DNN(cudnnSetTensor4dDescriptor(e->yd, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, xN, yC, yH, yW));
    DNN(cudnnSetTensor4dDescriptor(e->bd, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 1, g->OC, 1, 1));
    DNN(cudnnSetFilter4dDescriptor(e->wd, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, fK, fC, g->KH,
                                   g->KW));
    for (int d = 0; d < D_COUNT; d++) {
        DNN(cudnnCreateConvolutionDescriptor(&e->cd[d]));
        DNN(cudnnSetConvolution2dDescriptor(e->cd[d], g->pad, g->pad, g->stride, g->stride,
                                            g->dil, g->dil, CUDNN_CROSS_CORRELATION,
                                            CUDNN_DATA_FLOAT));
        DNN(cudnnSetConvolutionMathType(e->cd[d], tf32_allowed() ? CUDNN_DEFAULT_MATH
                                                                 : CUDNN_FMA_MATH));
    }
    {   /* cuDNN must agree with the engine's output size */
        int n, c, h, w;
        DNN(cudnnGetConvolution2dForwardOutputDim(e->cd[0], e->xd, e->wd, &n, &c, &h, &w));
        if (n != xN || c != yC || h != yH || w != yW) {
            nn_ctx_fail(ctx, "cuda_conv: cuDNN output [%d,%d,%d,%d] != [%d,%d,%d,%d]", n, c,
                        h, w, xN, yC, yH, yW);
            goto fail;
        }
    }
    return 0;
fail:
    return -1;
}

static int math_ok(cudnnMathType_t m)
{
    return tf32_allowed() || m == CUDNN_FMA_MATH || m == CUDNN_DEFAULT_MATH;
}

/* the descriptor of direction d takes math type m (TF32 allowed only) */
static cudnnStatus_t set_math(conv_ent *e, int d, cudnnMathType_t m)
{
    return tf32_allowed() ? cudnnSetConvolutionMathType(e->cd[d], m) : CUDNN_STATUS_SUCCESS;
}

/* How algorithms are ranked: MKDSEG_CUDA_ALGO=find (default) times every algorithm of the
 * shape (cudnnFind*, on cuDNN's own scratch buffers) FIND_TRIALS times and ranks by each
 * algorithm's best time: one trial alone proved noisy (on an H100 the same generator
 * convolution got an algorithm twice as slow in one run of three); the first call of a
 * shape costs some tens of milliseconds. =heuristic takes cuDNN's heuristic order without
 * running anything. */
#define FIND_TRIALS 3
static int algo_find(void)
{
    return strcmp(mkd_env_str(MKD_ENV_CUDA_ALGO), "heuristic") != 0;
}

/* The ranked candidates of direction d, as (algo, memory, math type, status, time). */
typedef struct {
    int algo;
    size_t memory;
    cudnnMathType_t math;
    cudnnStatus_t status;
    float time;              /* best measured ms (find), or the heuristic rank */
} cand_t;

/* merge one result into the candidates: per (algo, math) the best successful time */
static void merge(cand_t *c, int *cnt, int algo, size_t mem, cudnnMathType_t math,
                  cudnnStatus_t st, float time)
{
    for (int i = 0; i < *cnt; i++)
        if (c[i].algo == algo && c[i].math == math) {
            if (st == CUDNN_STATUS_SUCCESS &&
                (c[i].status != CUDNN_STATUS_SUCCESS || time < c[i].time)) {
                c[i].status = st;
                c[i].time = time;
                c[i].memory = mem > c[i].memory ? mem : c[i].memory;
            }
            return;
        }
    if (*cnt < 32) {
        c[*cnt].algo = algo;
        c[*cnt].memory = mem;
        c[*cnt].math = math;
        c[*cnt].status = st;
        c[*cnt].time = time;
        (*cnt)++;
    }
}

static int cand_cmp(const void *a, const void *b)
{
    const cand_t *x = (const cand_t *)a, *y = (const cand_t *)b;
    int xs = x->status == CUDNN_STATUS_SUCCESS, ys = y->status == CUDNN_STATUS_SUCCESS;
    if (xs != ys)
        return ys - xs;
    return x->time < y->time ? -1 : x->time > y->time ? 1 : 0;
}

#define RANK(PerfT, COUNT, FINDCALL, HEURCALL)                                            \
    do {                                                                               \
        PerfT p_[COUNT];                                                               \
        int n_ = 0, heur_ = !find;                                                     \
        for (int t_ = 0; find && t_ < FIND_TRIALS; t_++) {                             \
            n_ = 0;                                                                    \
            cudnnStatus_t st_ = (FINDCALL);                                            \
            if (st_ != CUDNN_STATUS_SUCCESS) { /* out of memory for a trial: rank by   \
                                                  heuristics instead */                \
                cudaGetLastError();                                                    \
                heur_ = 1;                                                             \
                *cnt = 0;                                                              \
                break;                                                                 \
            }                                                                          \
            for (int i_ = 0; i_ < n_ && i_ < COUNT; i_++)                              \
                merge(c, cnt, (int)p_[i_].algo, p_[i_].memory, p_[i_].mathType,        \
                      p_[i_].status, p_[i_].time);                                     \
        }                                                                              \
        if (heur_) {                                                                   \
            n_ = 0;                                                                    \
            DNN(HEURCALL);                                                             \
            for (int i_ = 0; i_ < n_ && i_ < COUNT; i_++)                              \
                merge(c, cnt, (int)p_[i_].algo, p_[i_].memory, p_[i_].mathType,        \
                      p_[i_].status, (float)i_);                                       \
        }                                                                              \
        qsort(c, (size_t)*cnt, sizeof *c, cand_cmp);                                   \
    } while (0)

static int rank_algos(nn_ctx *ctx, cuda_state *s, conv_ent *e, int d, cand_t *c, int *cnt)
{
    int find = algo_find();
    *cnt = 0;
    if (d == D_FWD)
        RANK(cudnnConvolutionFwdAlgoPerf_t, CUDNN_CONVOLUTION_FWD_ALGO_COUNT,
             cudnnFindConvolutionForwardAlgorithm(s->dnn, e->xd, e->wd, e->cd[d], e->yd,
                                                  CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &n_, p_),
             cudnnGetConvolutionForwardAlgorithm_v7(s->dnn, e->xd, e->wd, e->cd[d], e->yd,
                                                    CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &n_, p_));
    else if (d == D_BWD_DATA)
        RANK(cudnnConvolutionBwdDataAlgoPerf_t, CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT,
             cudnnFindConvolutionBackwardDataAlgorithm(s->dnn, e->wd, e->yd, e->cd[d], e->xd,
                                                       CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT,
                                                       &n_, p_),
             cudnnGetConvolutionBackwardDataAlgorithm_v7(s->dnn, e->wd, e->yd, e->cd[d], e->xd,
                                                         CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT,
                                                         &n_, p_));
    else
        RANK(cudnnConvolutionBwdFilterAlgoPerf_t, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT,
             cudnnFindConvolutionBackwardFilterAlgorithm(
                 s->dnn, e->xd, e->yd, e->cd[d], e->wd, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT,
                 &n_, p_),
             cudnnGetConvolutionBackwardFilterAlgorithm_v7(
                 s->dnn, e->xd, e->yd, e->cd[d], e->wd, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT,
                 &n_, p_));
    return 0;
fail:
    return -1;
}

/* Choose the algorithm of direction d: the first ranked candidate (fastest measured, or
 * heuristic order) that succeeded within the workspace bound and the allowed math; else the
 * general algorithm of that direction. With TF32 allowed the descriptor takes the chosen
 * algorithm's math type; without, it stays FMA-only and tensor-op algorithms are skipped. */
static int choose(nn_ctx *ctx, cuda_state *s, conv_ent *e, int d)
{
    size_t lim = ws_limit();
    int found = 0, cnt = 0;
    cand_t c[32];
    if (rank_algos(ctx, s, e, d, c, &cnt))
        return -1;
    for (int i = 0; i < cnt && !found; i++) {
        if (c[i].status != CUDNN_STATUS_SUCCESS || c[i].memory > lim || !math_ok(c[i].math))
            continue;
        DNN(set_math(e, d, c[i].math));
        if (d == D_FWD) {
            e->fa = (cudnnConvolutionFwdAlgo_t)c[i].algo;
            DNN(cudnnGetConvolutionForwardWorkspaceSize(s->dnn, e->xd, e->wd, e->cd[d], e->yd,
                                                        e->fa, &e->ws[d]));
        } else if (d == D_BWD_DATA) {
            e->da = (cudnnConvolutionBwdDataAlgo_t)c[i].algo;
            DNN(cudnnGetConvolutionBackwardDataWorkspaceSize(s->dnn, e->wd, e->yd, e->cd[d],
                                                             e->xd, e->da, &e->ws[d]));
        } else {
            e->wa = (cudnnConvolutionBwdFilterAlgo_t)c[i].algo;
            DNN(cudnnGetConvolutionBackwardFilterWorkspaceSize(s->dnn, e->xd, e->yd, e->cd[d],
                                                               e->wd, e->wa, &e->ws[d]));
        }
        found = 1;
    }
    if (!found) {
        /* the general algorithms (no or little workspace, every geometry): implicit GEMM
         * forward, ALGO_0 backward data / filter */
        cudnnStatus_t st;
        if (d == D_FWD) {
            e->fa = CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM;
            st = cudnnGetConvolutionForwardWorkspaceSize(s->dnn, e->xd, e->wd, e->cd[d], e->yd,
                                                         e->fa, &e->ws[d]);
        } else if (d == D_BWD_DATA) {
            e->da = CUDNN_CONVOLUTION_BWD_DATA_ALGO_0;
            st = cudnnGetConvolutionBackwardDataWorkspaceSize(s->dnn, e->wd, e->yd, e->cd[d],
                                                              e->xd, e->da, &e->ws[d]);
        } else {
            e->wa = CUDNN_CONVOLUTION_BWD_FILTER_ALGO_0;
            st = cudnnGetConvolutionBackwardFilterWorkspaceSize(s->dnn, e->xd, e->yd, e->cd[d],
                                                                e->wd, e->wa, &e->ws[d]);
        }
        if (st != CUDNN_STATUS_SUCCESS) {
            nn_ctx_fail(ctx, "cuda_conv: no cuDNN algorithm (direction %d, %d ranked) within "
                        "%zu MiB: %s", d, cnt, lim >> 20, cudnnGetErrorString(st));
            return -1;
        }
    }
    e->have[d] = 1;
    return 0;
fail:
    return -1;
}

static conv_ent *lookup(nn_ctx *ctx, cuda_state *s, const geom *g, int d)
{
    int key[13] = {g->transposed, g->N,  g->IC,     g->H,   g->W,  g->OC, g->OH,
                   g->OW,         g->KH, g->KW,     g->stride, g->pad, g->dil};
    struct cuda_conv_cache *c = s->conv;
    if (!c && !(c = s->conv = (struct cuda_conv_cache *)calloc(1, sizeof *c)))
        return (conv_ent *)nn_ctx_fail(ctx, "cuda_conv: out of memory");
    conv_ent *e = NULL;
    for (int i = 0; i < c->n; i++)
        if (!memcmp(c->e[i].key, key, sizeof key)) {
            e = &c->e[i];
            break;
        }
    if (!e) {
        if (c->n == c->cap) {
            int cap = c->cap ? 2 * c->cap : 32;
            conv_ent *n = (conv_ent *)realloc(c->e, (size_t)cap * sizeof *n);
            if (!n)
                return (conv_ent *)nn_ctx_fail(ctx, "cuda_conv: out of memory");
            c->e = n;
            c->cap = cap;
        }
        e = &c->e[c->n];
        memset(e, 0, sizeof *e);
        memcpy(e->key, key, sizeof key);
        if (ent_init(ctx, e, g)) {
            ent_free(e);
            return NULL;
        }
        c->n++;
    }
    if (d < 0)               /* descriptors only (bias gradient) */
        return e;
    if (!e->have[d] && choose(ctx, s, e, d))
        return NULL;
    if (e->ws[d] > s->ws_bytes) {    /* grow the context's workspace */
        if (s->ws)
            cudaFree(s->ws);
        s->ws = NULL;
        s->ws_bytes = 0;
        if (cudaMalloc(&s->ws, e->ws[d]) != cudaSuccess) {
            cudaGetLastError();
            s->ws = NULL;
            return (conv_ent *)nn_ctx_fail(ctx, "cuda_conv: workspace of %zu bytes: out of "
                                                "device memory", e->ws[d]);
        }
        s->ws_bytes = e->ws[d];
    }
    return e;
}

/* y = x (*) w in conv terms (cudnnConvolutionForward), beta blending */
static int conv_fwd(nn_ctx *ctx, cuda_state *s, conv_ent *e, const float *x, const float *w,
                    float *y, float beta)
{
    const float one = 1.0f;
    DNN(cudnnConvolutionForward(s->dnn, &one, e->xd, x, e->wd, w, e->cd[D_FWD], e->fa, s->ws,
                                e->ws[D_FWD], &beta, e->yd, y));
    return 0;
fail:
    return -1;
}

static int conv_bwd_data(nn_ctx *ctx, cuda_state *s, conv_ent *e, const float *w,
                         const float *dy, float *dx, float beta)
{
    const float one = 1.0f;
    DNN(cudnnConvolutionBackwardData(s->dnn, &one, e->wd, w, e->yd, dy, e->cd[D_BWD_DATA], e->da,
                                     s->ws, e->ws[D_BWD_DATA], &beta, e->xd, dx));
    return 0;
fail:
    return -1;
}

static int conv_bwd_filter(nn_ctx *ctx, cuda_state *s, conv_ent *e, const float *x,
                           const float *dy, float *dw, float beta)
{
    const float one = 1.0f;
    DNN(cudnnConvolutionBackwardFilter(s->dnn, &one, e->xd, x, e->yd, dy, e->cd[D_BWD_FILTER],
                                       e->wa, s->ws, e->ws[D_BWD_FILTER], &beta, e->wd, dw));
    return 0;
fail:
    return -1;
}

/* fold eval batch norm: sc = gamma / sqrt(rvar + eps), w' = w sc, b' = (b - rmean) sc + beta */
static __global__ void k_fold(const float *w, const float *b, const float *ga, const float *be,
                              const float *rm, const float *rv, float eps, int OC, size_t per,
                              float *fw, float *fb)
{
    CUDA_FOR(j, (size_t)OC * per)
    {
        int oc = (int)(j / per);
        double sc = (ga ? ga[oc] : 1.0) / sqrt((double)rv[oc] + eps);
        fw[j] = (float)(w[j] * sc);
        if (j % per == 0)
            fb[oc] = (float)(((b ? b[oc] : 0.0) - rm[oc]) * sc + (be ? be[oc] : 0.0));
    }
}

int cuda_conv_fwd(nn_ctx *ctx, nn_node *nd)
{
    cuda_state *s = cuda_state_get(ctx);
    if (!s)
        return -1;
    geom g = geometry(nd);
    const float one = 1.0f;
    const float *w = nn_f32(nd->in[1]), *b = nd->in[2] ? nn_f32(nd->in[2]) : NULL;
    float *y = nn_f32(nd->out);
    const float *x = nn_f32(nd->in[0]);
    if (nd->op == NN_OP_CONV2D_FUSED && nd->in[5]) {
        size_t per = nn_numel(nd->in[1]) / (size_t)g.OC;
        float *fw = (float *)nn_ctx_scratch(ctx, nn_numel(nd->in[1]) * 4);
        float *fb = (float *)nn_ctx_scratch(ctx, (size_t)g.OC * 4);
        if (!fw || !fb)
            return -1;
        k_fold<<<cuda_blocks(nn_numel(nd->in[1])), CUDA_THREADS>>>(
            w, b, nd->in[3] ? nn_f32(nd->in[3]) : NULL, nd->in[4] ? nn_f32(nd->in[4]) : NULL,
            nn_f32(nd->in[5]), nn_f32(nd->in[6]), nd->f[0], g.OC, per, fw, fb);
        if (cuda_check(ctx, "conv2d_fused fold"))
            return -1;
        w = fw;
        b = fb;
    }
    conv_ent *e = lookup(ctx, s, &g, g.transposed ? D_BWD_DATA : D_FWD);
    if (!e)
        return -1;
    if (g.transposed ? conv_bwd_data(ctx, s, e, w, x, y, 0.0f) : conv_fwd(ctx, s, e, x, w, y, 0.0f))
        return -1;
    if (nd->op == NN_OP_CONV2D_FUSED) {
        /* bias and activation in one pass over the output */
        if (cuda_bias_act_inplace(ctx, y, nn_numel(nd->out), (size_t)g.OH * g.OW, g.OC, b,
                                  nd->i[3], nd->f[1]))
            return -1;
    } else if (b) {
        /* conv2d: bias over the conv output (yd); transposed: over the node output (xd) */
        DNN(cudnnAddTensor(s->dnn, &one, e->bd, b, &one, g.transposed ? e->xd : e->yd, y));
    }
    return cuda_check(ctx, nn_op_name(nd->op));
fail:
    return -1;
}

int cuda_conv_bwd(nn_ctx *ctx, nn_node *nd)
{
    cuda_state *s = cuda_state_get(ctx);
    if (!s)
        return -1;
    geom g = geometry(nd);
    nn_tensor *x = nd->in[0], *w = nd->in[1], *b = nd->in[2];
    const float *gy = nd->out->grad;
    int acc;
    if (x->requires_grad) {
        conv_ent *e = lookup(ctx, s, &g, g.transposed ? D_FWD : D_BWD_DATA);
        float *gx = e ? nn_grad_acquire(ctx, x, &acc) : NULL;
        if (!gx)
            return -1;
        float beta = acc ? 1.0f : 0.0f;
        if (g.transposed ? conv_fwd(ctx, s, e, gy, nn_f32(w), gx, beta)
                         : conv_bwd_data(ctx, s, e, nn_f32(w), gy, gx, beta))
            return -1;
    }
    if (w->requires_grad) {
        conv_ent *e = lookup(ctx, s, &g, D_BWD_FILTER);
        float *gw = e ? nn_grad_acquire(ctx, w, &acc) : NULL;
        if (!gw)
            return -1;
        float beta = acc ? 1.0f : 0.0f;
        /* conv terms: filter gradient from the conv input and the conv output's gradient */
        if (g.transposed ? conv_bwd_filter(ctx, s, e, gy, nn_f32(x), gw, beta)
                         : conv_bwd_filter(ctx, s, e, nn_f32(x), gy, gw, beta))
            return -1;
    }
    if (b && b->requires_grad) {
        conv_ent *e = lookup(ctx, s, &g, -1);
        float *gb = e ? nn_grad_acquire(ctx, b, &acc) : NULL;
        if (!gb)
            return -1;
        const float one = 1.0f, beta = acc ? 1.0f : 0.0f;
        DNN(cudnnConvolutionBackwardBias(s->dnn, &one, g.transposed ? e->xd : e->yd, gy, &beta,
                                         e->bd, gb));
    }
    return cuda_check(ctx, "conv backward");
fail:
    return -1;
}
