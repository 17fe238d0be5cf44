/* cpu_conv.c: convolutions and transposed convolutions on oneDNN 2.6 (C API v2).
 *
 * Activations are NCHW (the API layout) between ops, weights in PyTorch's layouts (OIHW for
 * conv2d, IOHW for conv_transpose2d); a oneDNN convolution reorders its inputs into the
 * channel-blocked layout its primitive chose and its output back, except in inference: an
 * unrecorded one reads an input already in its primitive's layout as it is and leaves its
 * output blocked when its channels fill whole blocks (cpu_blk.c). Primitives (forward,
 * backward-data, backward-weights) are created once per shape and kept in a per-context
 * cache; scratchpads come from the context's arena (user scratchpad mode), so a step does no
 * allocation inside oneDNN. Gradients that must be added to an existing one go to an arena
 * buffer first. Convolutions with one input or one output
 * channel and stride 1, the weight gradient of strided ones from one input channel, and the
 * weight gradient of multi-channel 4x4 convolutions can run on the kernels of cpu_conv_direct.c
 * instead, on NCHW, 3x3 stride-1 convolutions of 4 or more channels on the Winograd kernels
 * of cpu_conv_wino.c, and convolutions and transposed convolutions of 8 or more output channels
 * as im2col + GEMM products (cpu_conv_gemm.c): per shape, whichever is fastest on the running
 * machine (timed once per process, cpu_conv_pick.c; MKDSEG_CONV_PATH=onednn|direct|winograd|
 * gemm forces one).
 *
 * Reorders saved (the experiment's small networks run about 2000 oneDNN calls a step, most of
 * them reorders): a parameter's weights are reordered once per layout and kept while their
 * bytes are unchanged (wcache_*), a recorded forward keeps its reordered input for the weight
 * gradient (conv_saved), and the output gradient is reordered once for both backward passes.
 * A transposed convolution's forward bias is added here, not by oneDNN (onednn_bias). */
#include "cpu.h"
#include "mkd_env.h"

#include <oneapi/dnnl/dnnl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <pthread.h>
#include <unistd.h>

enum { K_FWD, K_BWD_DATA, K_BWD_WEIGHTS, K_COUNT };
enum { A_SRC, A_WEI, A_BIAS, A_DST, A_COUNT }; /* diff_ variants in the backward kinds */

/* One argument of one primitive: oneDNN's memory in the layout the primitive chose and,
 * when that is not the plain API layout, a reorder between the two. */
typedef struct {
    dnnl_memory_t mem;        /* primitive layout, handle set per call */
    dnnl_memory_t plain;      /* API layout (only with a reorder) */
    dnnl_primitive_t reorder; /* plain -> mem for inputs, mem -> plain for outputs */
    size_t bytes;             /* size of the primitive-layout buffer */
    dnnl_memory_desc_t md;    /* the primitive's layout (with a reorder) */
    int blk;                  /* 8 or 16: that layout is nChw8c / nChw16c (nn_blk's); else 0 */
} conv_arg;

typedef struct {
    int key[16];
    int nthr; /* the thread count its primitives were created for (oneDNN fixes it then) */
    dnnl_primitive_desc_t fwd_pd; /* hint for the backward ones */
    dnnl_primitive_desc_t pd[K_COUNT];
    dnnl_primitive_t prim[K_COUNT];
    conv_arg arg[K_COUNT][A_COUNT];
    dnnl_memory_t sp_mem[K_COUNT];
    size_t sp[K_COUNT];
} conv_ent;

/* A parameter's weights in one primitive layout, kept across calls. Parameters may be
 * written at any time between calls (Adam, initialisation, loading, or directly: CPU memory),
 * so an entry is checked by content: it keeps a copy of the plain weights it was made from
 * and is used only while they are unchanged (a memcmp of the weights costs a small part of a
 * reorder, whose fixed cost dominates at these sizes). */
typedef struct {
    const void *plain;
    dnnl_memory_desc_t md;
    size_t nbytes; /* of the plain weights */
    void *copy;    /* their bytes when buf was made */
    void *buf;     /* in md */
    int valid;     /* buf holds copy in md */
} wcache_ent;

typedef struct {
    dnnl_engine_t eng;
    dnnl_stream_t st;
    int path;   /* CPU_PATH_* from the environment when the context first convolved */
    int report; /* MKDSEG_NN_PROFILE set: print the path table at free */
    conv_ent *ent;
    int nent, cap;
    wcache_ent *wc;
    int nwc, capwc;
} conv_state;

/* Weights larger than this are reordered on every call: their convolutions are long enough
 * that the reorder is a small part of them, and the copies would cost memory. */
#define WCACHE_MAX_BYTES (1u << 20)
/* A training convolution's input in its forward primitive's layout is kept on the tape for the
 * weight gradient (one reorder less) when it is at most this large. */
#define KEEP_SRC_MAX_BYTES (8u << 20)

/* A buffer that already holds (ready) or is to receive an input argument in the primitive's
 * layout, instead of a temporary: the weight cache, the forward's kept input, the output
 * gradient shared by the two backward passes. */
typedef struct {
    void *buf;
    int ready;
} blk_arg;

#define DN(call)                                                                                   \
    do {                                                                                           \
        dnnl_status_t s_ = (call);                                                                 \
        if (s_ != dnnl_success) {                                                                  \
            nn_ctx_fail(ctx, "oneDNN: %s failed (status %d)", #call, (int)s_);                     \
            goto fail;                                                                             \
        }                                                                                          \
    } while (0)

/* Per kind and argument: oneDNN's execution role, the md query, whether it is an output. */
typedef struct {
    int role, query, idx, out;
} argdef;

static const argdef argdefs[K_COUNT][A_COUNT] = {
    [K_FWD] = {{DNNL_ARG_SRC, dnnl_query_src_md, 0, 0},
               {DNNL_ARG_WEIGHTS, dnnl_query_weights_md, 0, 0},
               {DNNL_ARG_BIAS, dnnl_query_weights_md, 1, 0},
               {DNNL_ARG_DST, dnnl_query_dst_md, 0, 1}},
    [K_BWD_DATA] = {{DNNL_ARG_DIFF_SRC, dnnl_query_diff_src_md, 0, 1},
                    {DNNL_ARG_WEIGHTS, dnnl_query_weights_md, 0, 0},
                    {0, 0, 0, 0},
                    {DNNL_ARG_DIFF_DST, dnnl_query_diff_dst_md, 0, 0}},
    [K_BWD_WEIGHTS] = {{DNNL_ARG_SRC, dnnl_query_src_md, 0, 0},
                       {DNNL_ARG_DIFF_WEIGHTS, dnnl_query_diff_weights_md, 0, 1},
                       {DNNL_ARG_DIFF_BIAS, dnnl_query_diff_weights_md, 1, 1},
                       {DNNL_ARG_DIFF_DST, dnnl_query_diff_dst_md, 0, 0}},
};

static void arg_free(conv_arg *a)
{
    if (a->mem)
        dnnl_memory_destroy(a->mem);
    if (a->plain)
        dnnl_memory_destroy(a->plain);
    if (a->reorder)
        dnnl_primitive_destroy(a->reorder);
}

void cpu_conv_state_free(nn_ctx *ctx)
{
    conv_state *s = *nn_ctx_backend_state(ctx);
    if (!s)
        return;
    if (s->report)
        cpu_conv_pick_report(stderr);
    for (int i = 0; i < s->nent; i++) {
        conv_ent *e = &s->ent[i];
        for (int k = 0; k < K_COUNT; k++) {
            for (int a = 0; a < A_COUNT; a++)
                arg_free(&e->arg[k][a]);
            if (e->sp_mem[k])
                dnnl_memory_destroy(e->sp_mem[k]);
            if (e->prim[k])
                dnnl_primitive_destroy(e->prim[k]);
            if (e->pd[k])
                dnnl_primitive_desc_destroy(e->pd[k]);
        }
        if (e->fwd_pd)
            dnnl_primitive_desc_destroy(e->fwd_pd);
    }
    free(s->ent);
    for (int i = 0; i < s->nwc; i++) {
        free(s->wc[i].buf);
        free(s->wc[i].copy);
    }
    free(s->wc);
    if (s->st)
        dnnl_stream_destroy(s->st);
    if (s->eng)
        dnnl_engine_destroy(s->eng);
    free(s);
    *nn_ctx_backend_state(ctx) = NULL;
}

static conv_state *state(nn_ctx *ctx)
{
    conv_state **sp = (conv_state **)nn_ctx_backend_state(ctx);
    if (*sp)
        return *sp;
    conv_state *s = calloc(1, sizeof *s);
    if (!s)
        return nn_ctx_fail(ctx, "cpu_conv: out of memory");
    DN(dnnl_engine_create(&s->eng, dnnl_cpu, 0));
    DN(dnnl_stream_create(&s->st, s->eng, dnnl_stream_default_flags));
    s->path = cpu_conv_path_from_env();
    s->report = mkd_env_raw(MKD_ENV_NN_PROFILE) != NULL;
    *sp = s;
    return s;
fail:
    if (s->eng)
        dnnl_engine_destroy(s->eng);
    free(s);
    return NULL;
}

/* Geometry of a node, shared by the three primitives. */
typedef struct {
    int transposed, N, IC, H, W, OC, OH, OW, KH, KW, stride, pad, extra, bias;
    int act; /* nn_act post-op (fused forward only) */
    float slope;
} geom;

static geom geometry(const nn_node *nd)
{
    const nn_tensor *x = nd->in[0], *w = nd->in[1], *y = nd->out;
    int fused = nd->op == NN_OP_CONV2D_FUSED;
    geom g = {nd->op == NN_OP_CONV_T2D,
              x->n,
              x->c,
              x->h,
              x->w,
              y->c,
              y->h,
              y->w,
              w->h,
              w->w,
              nd->i[0],
              nd->i[1],
              nd->i[2],
              nd->in[2] != NULL || (fused && nd->in[5] != NULL),
              fused ? nd->i[3] : NN_ACT_NONE,
              fused ? nd->f[1] : 0.0f};
    return g;
}

typedef struct {
    dnnl_memory_desc_t m[A_COUNT];
} mds;

/* any = 1: let oneDNN choose the layouts of src, weights and dst (the primitive's view);
 * any = 0: the plain API layouts. */
static int make_mds(nn_ctx *ctx, const geom *g, mds *m, int any)
{
    dnnl_dims_t sd = {g->N, g->IC, g->H, g->W}, dd = {g->N, g->OC, g->OH, g->OW};
    dnnl_dims_t wd = {g->OC, g->IC, g->KH, g->KW}, bd = {g->OC};
    dnnl_format_tag_t act = any ? dnnl_format_tag_any : dnnl_nchw;
    /* conv2d weights [OC, IC, KH, KW] = oihw; transposed [IC, OC, KH, KW] = iohw */
    dnnl_format_tag_t wt = any ? dnnl_format_tag_any : g->transposed ? dnnl_iohw : dnnl_oihw;
    DN(dnnl_memory_desc_init_by_tag(&m->m[A_SRC], 4, sd, dnnl_f32, act));
    DN(dnnl_memory_desc_init_by_tag(&m->m[A_DST], 4, dd, dnnl_f32, act));
    DN(dnnl_memory_desc_init_by_tag(&m->m[A_WEI], 4, wd, dnnl_f32, wt));
    DN(dnnl_memory_desc_init_by_tag(&m->m[A_BIAS], 1, bd, dnnl_f32, dnnl_x));
    return 0;
fail:
    return -1;
}

/* Does pass k hand the bias to oneDNN? Not the transposed forward: oneDNN 2.6 adds a
 * deconvolution's bias in a reference loop that took 5-10x the whole deconvolution at the
 * experiment's sizes (a 16 -> 8 channel, 32 -> 64 pixel one: 1.1 ms with, 0.16 ms without), so
 * fwd_pass adds it on the plain output instead. */
static int onednn_bias(const geom *g, int k) { return g->bias && !(g->transposed && k == K_FWD); }

/* Initialise an op descriptor of kind k into *desc (a union big enough for both). */
typedef union {
    dnnl_convolution_desc_t conv;
    dnnl_deconvolution_desc_t deconv;
} any_desc;

static int init_desc(nn_ctx *ctx, const geom *g, const mds *md, int k, any_desc *d)
{
    dnnl_dims_t strides = {g->stride, g->stride};
    dnnl_dims_t pl = {g->pad, g->pad};
    const dnnl_memory_desc_t *src = &md->m[A_SRC], *wei = &md->m[A_WEI], *dst = &md->m[A_DST];
    const dnnl_memory_desc_t *bias = onednn_bias(g, k) ? &md->m[A_BIAS] : NULL;
    if (!g->transposed) {
        dnnl_dims_t dil = {g->extra - 1, g->extra - 1};
        if (k == K_FWD)
            DN(dnnl_dilated_convolution_forward_desc_init(&d->conv, dnnl_forward_training,
                                                          dnnl_convolution_direct, src, wei, bias,
                                                          dst, strides, dil, pl, NULL));
        else if (k == K_BWD_DATA)
            DN(dnnl_dilated_convolution_backward_data_desc_init(
                &d->conv, dnnl_convolution_direct, src, wei, dst, strides, dil, pl, NULL));
        else
            DN(dnnl_dilated_convolution_backward_weights_desc_init(
                &d->conv, dnnl_convolution_direct, src, wei, bias, dst, strides, dil, pl, NULL));
    } else {
        /* out = (in-1)s - pl - pr + K  =>  pr = pad - out_pad */
        dnnl_dims_t pr = {g->pad - g->extra, g->pad - g->extra};
        if (k == K_FWD)
            DN(dnnl_deconvolution_forward_desc_init(&d->deconv, dnnl_forward_training,
                                                    dnnl_deconvolution_direct, src, wei, bias, dst,
                                                    strides, pl, pr));
        else if (k == K_BWD_DATA)
            DN(dnnl_deconvolution_backward_data_desc_init(&d->deconv, dnnl_deconvolution_direct,
                                                          src, wei, dst, strides, pl, pr));
        else
            DN(dnnl_deconvolution_backward_weights_desc_init(&d->deconv, dnnl_deconvolution_direct,
                                                             src, wei, bias, dst, strides, pl, pr));
    }
    return 0;
fail:
    return -1;
}

/* The primitive's memory for argument a and, when its layout is not plain, the reorder. */
static int make_arg(nn_ctx *ctx, conv_state *s, conv_ent *e, int k, int a,
                    const dnnl_memory_desc_t *plain)
{
    const argdef *d = &argdefs[k][a];
    conv_arg *ca = &e->arg[k][a];
    const dnnl_memory_desc_t *md = dnnl_primitive_desc_query_md(e->pd[k], d->query, d->idx);
    dnnl_primitive_desc_t rpd = NULL;
    if (!md || md->ndims == 0)
        md = plain;
    DN(dnnl_memory_create(&ca->mem, md, s->eng, DNNL_MEMORY_NONE));
    if (!dnnl_memory_desc_equal(md, plain)) {
        DN(dnnl_memory_create(&ca->plain, plain, s->eng, DNNL_MEMORY_NONE));
        if (d->out)
            DN(dnnl_reorder_primitive_desc_create(&rpd, md, s->eng, plain, s->eng, NULL));
        else
            DN(dnnl_reorder_primitive_desc_create(&rpd, plain, s->eng, md, s->eng, NULL));
        DN(dnnl_primitive_create(&ca->reorder, rpd));
        dnnl_primitive_desc_destroy(rpd);
        ca->bytes = dnnl_memory_desc_get_size(md);
        ca->md = *md;
        for (int b = 8; b <= 16 && plain->ndims == 4; b += 8) {
            dnnl_memory_desc_t bm;
            if (dnnl_memory_desc_init_by_tag(&bm, 4, plain->dims, dnnl_f32,
                                             b == 8 ? dnnl_nChw8c : dnnl_nChw16c) == dnnl_success &&
                dnnl_memory_desc_equal(md, &bm))
                ca->blk = b;
        }
    }
    return 0;
fail:
    if (rpd)
        dnnl_primitive_desc_destroy(rpd);
    return -1;
}

static int create_kind(nn_ctx *ctx, conv_state *s, conv_ent *e, const geom *g, int k)
{
    mds plain, any;
    any_desc d;
    dnnl_primitive_attr_t attr = NULL;
    if (make_mds(ctx, g, &plain, 0) || make_mds(ctx, g, &any, 1))
        return -1;
    DN(dnnl_primitive_attr_create(&attr));
    DN(dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user));
    if (g->act != NN_ACT_NONE) { /* fused activation (forward-only entries) */
        dnnl_post_ops_t po = NULL;
        dnnl_alg_kind_t alg = g->act == NN_ACT_TANH      ? dnnl_eltwise_tanh
                              : g->act == NN_ACT_SIGMOID ? dnnl_eltwise_logistic
                                                         : dnnl_eltwise_relu;
        float alpha = g->act == NN_ACT_LEAKY_RELU ? g->slope : 0.0f;
        DN(dnnl_post_ops_create(&po));
        dnnl_status_t st = dnnl_post_ops_append_eltwise(po, 1.0f, alg, alpha, 0.0f);
        if (st == dnnl_success)
            st = dnnl_primitive_attr_set_post_ops(attr, po);
        dnnl_post_ops_destroy(po);
        DN(st);
    }
    if (!e->fwd_pd) {
        any_desc fd;
        if (init_desc(ctx, g, &any, K_FWD, &fd))
            goto fail;
        DN(dnnl_primitive_desc_create(&e->fwd_pd, &fd, attr, s->eng, NULL));
    }
    if (k == K_FWD) {
        DN(dnnl_primitive_desc_clone(&e->pd[k], e->fwd_pd));
    } else {
        if (init_desc(ctx, g, &any, k, &d))
            goto fail;
        DN(dnnl_primitive_desc_create(&e->pd[k], &d, attr, s->eng, e->fwd_pd));
    }
    DN(dnnl_primitive_create(&e->prim[k], e->pd[k]));
    const dnnl_memory_desc_t *spmd =
        dnnl_primitive_desc_query_md(e->pd[k], dnnl_query_scratchpad_md, 0);
    e->sp[k] = spmd ? dnnl_memory_desc_get_size(spmd) : 0;
    if (e->sp[k])
        DN(dnnl_memory_create(&e->sp_mem[k], spmd, s->eng, DNNL_MEMORY_NONE));
    for (int a = 0; a < A_COUNT; a++)
        if (argdefs[k][a].role && (a != A_BIAS || onednn_bias(g, k)) &&
            make_arg(ctx, s, e, k, a, &plain.m[a]))
            goto fail;
    dnnl_primitive_attr_destroy(attr);
    return 0;
fail:
    if (attr)
        dnnl_primitive_attr_destroy(attr);
    return -1;
}

/* the 16 values that tell a geometry's primitives apart */
static void geom_key(const geom *g, int key[16])
{
    int slope_bits;
    memcpy(&slope_bits, &g->slope, sizeof slope_bits);
    const int k[16] = {g->transposed, g->N,    g->IC,  g->H,      g->W,      g->OC,
                       g->OH,         g->OW,   g->KH,  g->KW,     g->stride, g->pad,
                       g->extra,      g->bias, g->act, slope_bits};
    memcpy(key, k, sizeof k);
}

static conv_ent *lookup(nn_ctx *ctx, conv_state *s, const geom *g, int k)
{
    int key[16];
    geom_key(g, key);
    const int nthr = nn_get_threads();
    conv_ent *e = NULL;
    for (int i = 0; i < s->nent; i++)
        if (!memcmp(s->ent[i].key, key, sizeof key) && s->ent[i].nthr == nthr) {
            e = &s->ent[i];
            break;
        }
    if (!e) {
        if (s->nent == s->cap) {
            int cap = s->cap ? 2 * s->cap : 32;
            conv_ent *n = realloc(s->ent, (size_t)cap * sizeof *n);
            if (!n)
                return nn_ctx_fail(ctx, "cpu_conv: out of memory");
            s->ent = n;
            s->cap = cap;
        }
        e = &s->ent[s->nent++];
        memset(e, 0, sizeof *e);
        memcpy(e->key, key, sizeof key);
        e->nthr = nthr;
    }
    if (!e->prim[k] && create_kind(ctx, s, e, g, k))
        return NULL;
    return e;
}

static int exec(nn_ctx *ctx, conv_state *s, dnnl_primitive_t p, int na, dnnl_exec_arg_t *args)
{
    DN(dnnl_primitive_execute(p, s->st, na, args));
    return 0;
fail:
    return -1;
}

/* Run primitive k of e on plain buffers (NULL = argument unused): inputs are reordered into
 * the primitive's layout first, outputs back afterwards (temporaries from the arena). blk
 * (NULL, or per argument): an input's buffer in the primitive's layout, reordered into unless
 * ready (then marked ready); an output's buffer in the primitive's layout, written there only
 * (not reordered to the plain buffer). */
static int run(nn_ctx *ctx, conv_state *s, conv_ent *e, int k, const geom *g, const float *src,
               const float *wei, const float *bias, const float *dst, blk_arg *blk)
{
    dnnl_exec_arg_t args[A_COUNT + 1];
    int na = 0;
    const void *bufs[A_COUNT] = {src, wei, onednn_bias(g, k) ? bias : NULL, dst};
    nn_arena_mark mark = nn_arena_pos(nn_ctx_arena(ctx)); /* temporaries die here */
    for (int a = 0; a < A_COUNT; a++) {
        const argdef *d = &argdefs[k][a];
        conv_arg *ca = &e->arg[k][a];
        if (!bufs[a] || !d->role)
            continue;
        if (ca->reorder) {
            const int have = blk && blk[a].buf;
            void *tmp = have ? blk[a].buf : nn_ctx_scratch(ctx, ca->bytes);
            if (!tmp)
                return -1;
            DN(dnnl_memory_set_data_handle(ca->plain, (void *)bufs[a]));
            DN(dnnl_memory_set_data_handle(ca->mem, tmp));
            if (d->out || (have && blk[a].ready)) {
                /* written by the primitive, or already in its layout */
            } else {
                dnnl_exec_arg_t r[2] = {{DNNL_ARG_FROM, ca->plain}, {DNNL_ARG_TO, ca->mem}};
                if (exec(ctx, s, ca->reorder, 2, r))
                    return -1;
                if (have)
                    blk[a].ready = 1;
            }
        } else {
            DN(dnnl_memory_set_data_handle(ca->mem, (void *)bufs[a]));
        }
        args[na].arg = d->role;
        args[na].memory = ca->mem;
        na++;
    }
    if (e->sp[k]) {
        void *sp = nn_ctx_scratch(ctx, e->sp[k]);
        if (!sp)
            return -1;
        DN(dnnl_memory_set_data_handle(e->sp_mem[k], sp));
        args[na].arg = DNNL_ARG_SCRATCHPAD;
        args[na].memory = e->sp_mem[k];
        na++;
    }
    if (exec(ctx, s, e->prim[k], na, args))
        return -1;
    for (int a = 0; a < A_COUNT; a++) {
        conv_arg *ca = &e->arg[k][a];
        if (bufs[a] && argdefs[k][a].role && argdefs[k][a].out && ca->reorder &&
            !(blk && blk[a].buf)) {
            dnnl_exec_arg_t r[2] = {{DNNL_ARG_FROM, ca->mem}, {DNNL_ARG_TO, ca->plain}};
            if (exec(ctx, s, ca->reorder, 2, r))
                return -1;
        }
    }
    DN(dnnl_stream_wait(s->st));
    nn_arena_rollback(nn_ctx_arena(ctx), mark);
    return 0;
fail:
    return -1;
}

/* ---- the hand-written paths ----------------------------------------------------------- */

/* may pass k run on the direct kernels / on Winograd (whether it does is dispatch's choice) */
static int direct_ok(const conv_state *s, const geom *g, int k)
{
    return (s->path == CPU_PATH_AUTO || s->path == CPU_PATH_DIRECT) &&
           cpu_direct_conv_ok(g->transposed, g->IC, g->OC, g->KH, g->KW, g->stride, g->extra,
                              g->pad, k);
}

static int wino_ok(const conv_state *s, const geom *g)
{
    return (s->path == CPU_PATH_AUTO || s->path == CPU_PATH_WINO) &&
           cpu_wino_ok(g->transposed, g->N, g->IC, g->H, g->W, g->OC, g->KH, g->KW, g->stride,
                       g->extra, g->pad);
}

/* the convolution the GEMM path computes: the node's own, or for a transposed convolution
 * its adjoint (from the transposed one's output to its input: cpu_conv_gemm.c) */
static cpu_gemm_geom gemm_geom(const geom *g)
{
    if (g->transposed)
        return (cpu_gemm_geom){g->N, g->OC, g->OH, g->OW,     g->IC, g->H,
                               g->W, g->KH, g->KW, g->stride, g->pad};
    return (cpu_gemm_geom){g->N,  g->IC, g->H,  g->W,      g->OC, g->OH,
                           g->OW, g->KH, g->KW, g->stride, g->pad};
}

static int gemm_ok(const conv_state *s, const geom *g)
{
    const cpu_gemm_geom c = gemm_geom(g);
    return (s->path == CPU_PATH_AUTO || s->path == CPU_PATH_GEMM) &&
           cpu_gemm_ok(c.C, c.O, c.KH, c.KW, g->transposed ? 1 : g->extra);
}

/* the clock a timed choice reads: at one thread the calling thread's CPU time, which does
 * not run while the thread waits for a core (on a shared machine, wall times of a
 * millisecond-long call are often a preemption); with a team, wall time */
static double now_ms(int threads)
{
    struct timespec ts;
    clock_gettime(threads == 1 ? CLOCK_THREAD_CPUTIME_ID : CLOCK_MONOTONIC, &ts);
    return 1e3 * (double)ts.tv_sec + 1e-6 * (double)ts.tv_nsec;
}

/* One pass of a node on one path (CPU_IMPL_*: oneDNN, cpu_conv_direct.c, cpu_conv_wino.c);
 * every path overwrites the whole of its outputs, so running several in turn leaves the
 * last one's. */
typedef int (*pass_fn)(nn_ctx *ctx, conv_state *s, const geom *g, const void *args, int impl);

#define PICK_REPS 5 /* timed runs of each path, after one warm-up run */
/* With a team, a pass is also timed on one thread only while the team's least time is at most
 * this: waking a sleeping team costs 35-95 us a region on a KVM guest, so one thread can win
 * only short passes; on a long one a win alone would be a noisy timing, and running a large
 * layer alone for the rest of the process would cost up to the team's speed-up. */
#define ALONE_MAX_MS 2.0

/* Before each timed run the core's L2 cache is filled with other data: in a network a
 * convolution's inputs arrive from the ops before it and its outputs are read by the next, so
 * a path that keeps large temporaries (Winograd's transformed tiles) pays for them in misses
 * that back-to-back runs of one shape would hide. Twice the L2 size (sysconf; 1 MiB when
 * unknown) read once per timed run: microseconds, and only the first time a shape is seen. */
static const float *g_evict;
static size_t g_evict_n;

static void evict_init(void)
{
    long l2 = sysconf(_SC_LEVEL2_CACHE_SIZE);
    size_t n = 2 * (size_t)(l2 > 0 ? l2 : (1L << 20)) / sizeof(float);
    float *b = malloc(n * sizeof(float));
    if (b) {
        for (size_t i = 0; i < n; i++) /* real pages (a calloc'd buffer may be one zero page) */
            b[i] = 1.0f;
        g_evict_n = n;
    }
    g_evict = b;
}

/* reads only: threads timing shapes at the same time (server workers) share the buffer */
static void evict_l2(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, evict_init);
    float s = 0.0f;
    for (size_t i = 0; i < g_evict_n; i += 16)
        s += g_evict[i];
    volatile float sink = s;
    (void)sink;
}

/* Run choice c (cpu_conv_pick.c): path c % CPU_IMPL_COUNT, on the calling thread alone when
 * c >= CPU_IMPL_COUNT (the thread's own count set to 1 for the call: the paths' kernels, oneDNN's
 * primitives, which are created per thread count, and dnnl_sgemm all follow it). */
static int run_choice(nn_ctx *ctx, conv_state *s, const geom *g, pass_fn f, const void *args, int c)
{
    if (c < CPU_IMPL_COUNT)
        return f(ctx, s, g, args, c);
    const int own = nn_get_thread_threads();
    nn_set_thread_threads(1);
    const int rc = f(ctx, s, g, args, c - CPU_IMPL_COUNT);
    nn_set_thread_threads(own);
    return rc;
}

/* Run pass k on the path chosen for its shape (cpu_conv_pick.c): the forced one, the cached
 * timed choice, or, the first time in the process, every path that can run it timed (a
 * warm-up run and PICK_REPS timed runs each, alternating; the least time of each) and the
 * fastest run last so its result is the one kept. With more than one thread each path is
 * timed on the team and, for passes of at most ALONE_MAX_MS, on one thread (wall time for
 * both). */
static int dispatch(nn_ctx *ctx, conv_state *s, const geom *g, int k, pass_fn f, const void *args)
{
    int can[CPU_IMPL_COUNT] = {1, direct_ok(s, g, k), wino_ok(s, g), gemm_ok(s, g)};
    const int forced = s->path == CPU_PATH_DIRECT ? CPU_IMPL_DIRECT
                       : s->path == CPU_PATH_WINO ? CPU_IMPL_WINO
                       : s->path == CPU_PATH_GEMM ? CPU_IMPL_GEMM
                                                  : -1;
    const int threads = nn_get_threads();
    if (forced >= 0 ||
        (threads == 1 && !can[CPU_IMPL_DIRECT] && !can[CPU_IMPL_WINO] && !can[CPU_IMPL_GEMM]))
        return f(ctx, s, g, args, forced >= 0 && can[forced] ? forced : CPU_IMPL_ONEDNN);
    if (s->path == CPU_PATH_ONEDNN) /* forced, and oneDNN on the team: reproducible bits */
        return f(ctx, s, g, args, CPU_IMPL_ONEDNN);
    int key[CPU_PICK_KEY];
    geom_key(g, key);
    key[CPU_PICK_KEY - 2] = k;
    key[CPU_PICK_KEY - 1] = threads;
    int c = cpu_conv_pick_get(key);
    if (c >= 0)
        return run_choice(ctx, s, g, f, args, c);
    double best[CPU_PICK_N];
    for (int p = 0; p < CPU_PICK_N; p++)
        best[p] = can[p % CPU_IMPL_COUNT] && (p < CPU_IMPL_COUNT || threads > 1) ? 1e300 : -1.0;
    for (int r = 0; r < 1 + PICK_REPS; r++) {
        for (int p = 0; p < CPU_PICK_N; p++) {
            if (best[p] < 0)
                continue;
            evict_l2();
            const double t0 = now_ms(threads);
            if (run_choice(ctx, s, g, f, args, p))
                return -1;
            const double t = now_ms(threads) - t0;
            if (r > 0 && t < best[p])
                best[p] = t;
        }
        if (r == 1 && threads > 1) { /* one thread only where the team's wake-up can matter */
            double team = 1e300;
            for (int p = 0; p < CPU_IMPL_COUNT; p++)
                if (best[p] >= 0 && best[p] < team)
                    team = best[p];
            if (team > ALONE_MAX_MS)
                for (int p = CPU_IMPL_COUNT; p < CPU_PICK_N; p++)
                    best[p] = -1.0;
        }
    }
    c = cpu_conv_pick_put(key, best);
    return run_choice(ctx, s, g, f, args, c);
}

/* x [N, C, H, W] zero-padded by ph, pw into the arena in cpu_direct_pad_to's layout with rows
 * of Wq (0: the least, ceil((W + 2 pw) / stride)); x itself when there is nothing to do. */
static const float *padded(nn_ctx *ctx, const float *x, int N, int C, int H, int W, int ph, int pw,
                           int stride, int Wq)
{
    const int Wmin = (W + 2 * pw + stride - 1) / stride;
    Wq = Wq > Wmin ? Wq : Wmin;
    if (!ph && !pw && stride == 1 && Wq == W)
        return x;
    float *xp = nn_ctx_scratch(ctx, (size_t)N * C * stride * (H + 2 * ph) * Wq * sizeof(float));
    if (xp)
        cpu_direct_pad_to(x, N, C, H, W, ph, pw, stride, Wq, xp);
    return xp;
}

static int direct_fwd(nn_ctx *ctx, const geom *g, const float *x, const float *w, const float *b,
                      float *y)
{
    nn_arena_mark m = nn_arena_pos(nn_ctx_arena(ctx));
    const float *xp = padded(ctx, x, g->N, g->IC, g->H, g->W, g->pad, g->pad, 1, 0);
    if (!xp)
        return -1;
    cpu_direct_conv_fwd(xp, g->N, g->IC, g->H + 2 * g->pad, g->W + 2 * g->pad, w, g->OC, g->KH,
                        g->KW, b, y);
    if (g->act != NN_ACT_NONE)
        cpu_act_apply(y, y, (size_t)g->N * g->OC * g->OH * g->OW, g->act, g->slope);
    nn_arena_rollback(nn_ctx_arena(ctx), m);
    return 0;
}

/* gx = the forward convolution of gy, padded by kernel - 1 - pad, with the flipped kernel
 * whose input and output channels are swapped. */
static int direct_bwd_data(nn_ctx *ctx, const geom *g, const float *gy, const float *w, float *gx)
{
    nn_arena_mark m = nn_arena_pos(nn_ctx_arena(ctx));
    if (g->stride > 1) { /* one input channel (cpu_direct_conv_ok): the output phases */
        float *sc =
            nn_ctx_scratch(ctx, cpu_direct_bwd_data_strided_size(g->N, g->OC, g->OH, g->OW, g->KH,
                                                                 g->KW, g->stride, g->H, g->W) *
                                    sizeof(float));
        if (!sc)
            return -1;
        cpu_direct_conv_bwd_data_strided(gy, g->N, g->OC, g->OH, g->OW, w, g->KH, g->KW, g->stride,
                                         g->pad, gx, g->H, g->W, sc);
        nn_arena_rollback(nn_ctx_arena(ctx), m);
        return 0;
    }
    const int qh = g->KH - 1 - g->pad, qw = g->KW - 1 - g->pad;
    const float *gp = padded(ctx, gy, g->N, g->OC, g->OH, g->OW, qh, qw, 1, 0);
    float *wf = nn_ctx_scratch(ctx, (size_t)g->OC * g->IC * g->KH * g->KW * sizeof(float));
    if (!gp || !wf)
        return -1;
    cpu_direct_flip_weights(w, g->OC, g->IC, g->KH, g->KW, wf);
    cpu_direct_conv_fwd(gp, g->N, g->OC, g->OH + 2 * qh, g->OW + 2 * qw, wf, g->IC, g->KH, g->KW,
                        NULL, gx);
    nn_arena_rollback(nn_ctx_arena(ctx), m);
    return 0;
}

static int direct_bwd_weights(nn_ctx *ctx, const geom *g, const float *x, const float *gy,
                              float *gw, float *gb)
{
    nn_arena_mark m = nn_arena_pos(nn_ctx_arena(ctx));
    if (cpu_direct_wgrad_tiled(g->IC, g->OC, g->KH, g->KW, g->stride)) {
        /* multi-channel: gy packed in tiles of 3 output channels with rows padded to a multiple
         * of 8, x's phases long enough for them */
        const int OWp = (g->OW + 7) & ~7, s = g->stride, Hp = g->H + 2 * g->pad;
        const int Wq0 = (g->W + 2 * g->pad + s - 1) / s, Wq1 = OWp + (g->KW - 1) / s;
        const int Wq = Wq0 > Wq1 ? Wq0 : Wq1;
        const float *xp = padded(ctx, x, g->N, g->IC, g->H, g->W, g->pad, g->pad, s, Wq);
        float *gp =
            nn_ctx_scratch(ctx, cpu_direct_pack_size(g->N, g->OC, g->OH, OWp) * sizeof(float));
        if (!xp || !gp)
            return -1;
        cpu_direct_pack_tiles(gy, g->N, g->OC, g->OH, g->OW, OWp, gp);
        cpu_direct_conv_bwd_weights_mc(xp, g->N, g->IC, Hp, Wq, s, gp, g->OC, g->OH, OWp, g->KH,
                                       g->KW, gw);
        if (gb)
            cpu_direct_bias_grad(gy, g->N, g->OC, (size_t)g->OH * g->OW, gb);
        nn_arena_rollback(nn_ctx_arena(ctx), m);
        return 0;
    }
    const float *xp = padded(ctx, x, g->N, g->IC, g->H, g->W, g->pad, g->pad, g->stride, 0);
    if (!xp)
        return -1;
    if (g->stride == 1 && cpu_isa_avx512()) {
        float *zero = nn_ctx_scratch(ctx, (size_t)g->OW * sizeof(float));
        if (!zero)
            return -1;
        memset(zero, 0, (size_t)g->OW * sizeof(float));
        cpu_direct512_conv_bwd_weights(xp, g->N, g->IC, g->H + 2 * g->pad, g->W + 2 * g->pad, gy,
                                       g->OC, g->OH, g->OW, g->KH, g->KW, zero, gw, gb);
        nn_arena_rollback(nn_ctx_arena(ctx), m);
        return 0;
    }
    const int Wq = (g->W + 2 * g->pad + g->stride - 1) / g->stride;
    cpu_direct_conv_bwd_weights(xp, g->N, g->IC, g->H + 2 * g->pad, Wq, g->stride, gy, g->OC, g->OH,
                                g->OW, g->KH, g->KW, gw, gb);
    nn_arena_rollback(nn_ctx_arena(ctx), m);
    return 0;
}

static int wino_fwd(nn_ctx *ctx, const geom *g, const float *x, const float *w, const float *b,
                    float *y)
{
    nn_arena_mark m = nn_arena_pos(nn_ctx_arena(ctx));
    const int thr = nn_get_threads();
    void *sc =
        nn_ctx_scratch(ctx, cpu_wino_scratch(0, g->N, g->IC, g->H, g->W, g->pad, g->OC, thr));
    if (!sc)
        return -1;
    cpu_wino_fwd(x, g->N, g->IC, g->H, g->W, g->pad, w, g->OC, b, y, sc, thr);
    if (g->act != NN_ACT_NONE)
        cpu_act_apply(y, y, (size_t)g->N * g->OC * g->OH * g->OW, g->act, g->slope);
    nn_arena_rollback(nn_ctx_arena(ctx), m);
    return 0;
}

/* gx = the forward convolution of gy padded by 2 - pad with the flipped, transposed kernel */
static int wino_bwd_data(nn_ctx *ctx, const geom *g, const float *gy, const float *w, float *gx)
{
    nn_arena_mark m = nn_arena_pos(nn_ctx_arena(ctx));
    const int thr = nn_get_threads(), q = 2 - g->pad;
    float *wf = nn_ctx_scratch(ctx, (size_t)g->OC * g->IC * 9 * sizeof(float));
    void *sc = nn_ctx_scratch(ctx, cpu_wino_scratch(0, g->N, g->OC, g->OH, g->OW, q, g->IC, thr));
    if (!wf || !sc)
        return -1;
    cpu_direct_flip_weights(w, g->OC, g->IC, 3, 3, wf);
    cpu_wino_fwd(gy, g->N, g->OC, g->OH, g->OW, q, wf, g->IC, NULL, gx, sc, thr);
    nn_arena_rollback(nn_ctx_arena(ctx), m);
    return 0;
}

static int wino_bwd_weights(nn_ctx *ctx, const geom *g, const float *x, const float *gy, float *gw,
                            float *gb)
{
    nn_arena_mark m = nn_arena_pos(nn_ctx_arena(ctx));
    const int thr = nn_get_threads();
    void *sc =
        nn_ctx_scratch(ctx, cpu_wino_scratch(2, g->N, g->IC, g->H, g->W, g->pad, g->OC, thr));
    if (!sc)
        return -1;
    cpu_wino_bwd_weights(x, g->N, g->IC, g->H, g->W, g->pad, gy, g->OC, gw, sc, thr);
    if (gb)
        cpu_direct_bias_grad(gy, g->N, g->OC, (size_t)g->OH * g->OW, gb);
    nn_arena_rollback(nn_ctx_arena(ctx), m);
    return 0;
}

/* One pass on cpu_conv_gemm.c: pass k of a convolution, or of a transposed one its adjoint's
 * pass (forward: the adjoint's data gradient, with the bias; data gradient: the adjoint's
 * forward; weight gradient: the adjoint's with input and output gradient exchanged). */
static int gemm_pass(nn_ctx *ctx, const geom *g, int k, const float *a, const float *w,
                     const float *b, float *out)
{
    nn_arena_mark m = nn_arena_pos(nn_ctx_arena(ctx));
    const cpu_gemm_geom c = gemm_geom(g);
    float *sc = nn_ctx_scratch(ctx, (cpu_gemm_scratch(&c) + 16) * sizeof(float));
    if (!sc)
        return -1;
    const int fwd = (k == K_FWD) != g->transposed;
    if (k == K_BWD_WEIGHTS)
        cpu_gemm_conv_bwd_weights(&c, a, b, out, sc); /* b: the output gradient */
    else if (fwd)
        cpu_gemm_conv_fwd(&c, a, w, b, out, sc);
    else
        cpu_gemm_conv_bwd_data(&c, a, w, b, out, sc);
    nn_arena_rollback(nn_ctx_arena(ctx), m);
    return 0;
}

static int gemm_fwd(nn_ctx *ctx, const geom *g, const float *x, const float *w, const float *b,
                    float *y)
{
    if (gemm_pass(ctx, g, K_FWD, x, w, b, y))
        return -1;
    if (g->act != NN_ACT_NONE)
        cpu_act_apply(y, y, (size_t)g->N * g->OC * g->OH * g->OW, g->act, g->slope);
    return 0;
}

static int gemm_bwd_weights(nn_ctx *ctx, const geom *g, const float *x, const float *gy, float *gw,
                            float *gb)
{
    /* a transposed convolution's weight gradient is its adjoint's with x and gy exchanged */
    if (g->transposed ? gemm_pass(ctx, g, K_BWD_WEIGHTS, gy, NULL, x, gw)
                      : gemm_pass(ctx, g, K_BWD_WEIGHTS, x, NULL, gy, gw))
        return -1;
    if (gb)
        cpu_direct_bias_grad(gy, g->N, g->OC, (size_t)g->OH * g->OW, gb);
    return 0;
}

/* ---- reordered buffers kept across calls ---------------------------------------------- */

/* The weight cache's buffer for parameter tensor w in layout md (buf NULL: not cached: not
 * a parameter, too large, or out of memory; the call then reorders into a temporary). *ent:
 * the entry, to be marked valid (wcache_done) once the call has filled its buffer. */
static blk_arg wcache_get(conv_state *s, const nn_tensor *w, const dnnl_memory_desc_t *md,
                          size_t bytes, wcache_ent **ent)
{
    blk_arg b = {NULL, 0};
    const size_t nbytes = w ? nn_numel(w) * sizeof(float) : 0;
    *ent = NULL;
    if (!w || !w->param || bytes > WCACHE_MAX_BYTES)
        return b;
    wcache_ent *c = NULL;
    for (int i = 0; i < s->nwc && !c; i++)
        if (s->wc[i].plain == w->data && s->wc[i].nbytes == nbytes &&
            dnnl_memory_desc_equal(&s->wc[i].md, md))
            c = &s->wc[i];
    if (!c) {
        if (s->nwc == s->capwc) {
            int cap = s->capwc ? 2 * s->capwc : 64;
            wcache_ent *n = realloc(s->wc, (size_t)cap * sizeof *n);
            if (!n)
                return b;
            s->wc = n;
            s->capwc = cap;
        }
        void *buf = aligned_alloc(64, (bytes + 63) / 64 * 64), *copy = malloc(nbytes);
        if (!buf || !copy) {
            free(buf);
            free(copy);
            return b;
        }
        c = &s->wc[s->nwc++];
        *c = (wcache_ent){w->data, *md, nbytes, copy, buf, 0};
    }
    b.buf = c->buf;
    b.ready = c->valid && !memcmp(c->copy, w->data, nbytes);
    if (!b.ready) {
        memcpy(c->copy, w->data, nbytes);
        c->valid = 0;
        *ent = c;
    }
    return b;
}

static void wcache_done(wcache_ent *c, const blk_arg *b)
{
    if (c && b->ready)
        c->valid = 1;
}

/* What a recorded oneDNN forward keeps in its node for the backward (arena memory). */
typedef struct {
    void *src;             /* x in the forward primitive's source layout, or NULL */
    dnnl_memory_desc_t md; /* that layout */
} conv_saved;

/* ---- entry points -------------------------------------------------------------------- */

typedef struct {
    const float *w, *b; /* the input is nd->in[0]: NCHW (nn_f32) or blocked (nn_blk) */
    float *y;
    nn_node *nd;
    const nn_tensor *wt; /* the weights' tensor when w is its data (not BN-folded), else NULL */
} fwd_args;

/* the forward's input kept for the weight gradient: recorded nodes whose weights need one,
 * when the primitive reorders x and the copy is small (conv_saved in nd->saved) */
static void *keep_src(nn_ctx *ctx, const conv_ent *e, nn_node *nd)
{
    const conv_arg *ca = &e->arg[K_FWD][A_SRC];
    if (!nd->recorded || !nd->in[1]->requires_grad || !ca->reorder ||
        ca->bytes > KEEP_SRC_MAX_BYTES)
        return NULL;
    conv_saved *sv = nd->saved;
    if (!sv) {
        if (!(sv = nn_ctx_scratch(ctx, sizeof *sv)))
            return NULL;
        sv->md = ca->md;
        sv->src = nn_ctx_scratch(ctx, ca->bytes);
        nd->saved = sv;
    }
    return sv->src;
}

static int fwd_pass(nn_ctx *ctx, conv_state *s, const geom *g, const void *args, int impl)
{
    const fwd_args *a = args;
    nn_tensor *xt = a->nd->in[0], *yt = a->nd->out;
    yt->blk = NULL; /* this pass writes NCHW unless the oneDNN one below gives it a blocked form */
    if (impl != CPU_IMPL_ONEDNN) {
        /* a blocked input is converted into a copy, not in place: it stays blocked for its other
         * readers (a residual block's skip convolution reads the block's input too), and the
         * timed choice charges the conversion to the path that needs it */
        nn_arena_mark m = nn_arena_pos(nn_ctx_arena(ctx));
        const float *x =
            nn_is_blocked(xt) && !a->nd->recorded ? cpu_blk_nchw_copy(ctx, xt) : nn_f32(xt);
        const int rc = !x                        ? -1
                       : impl == CPU_IMPL_DIRECT ? direct_fwd(ctx, g, x, a->w, a->b, a->y)
                       : impl == CPU_IMPL_WINO   ? wino_fwd(ctx, g, x, a->w, a->b, a->y)
                                                 : gemm_fwd(ctx, g, x, a->w, a->b, a->y);
        nn_arena_rollback(nn_ctx_arena(ctx), m);
        return rc;
    }
    conv_ent *e = lookup(ctx, s, g, K_FWD);
    if (!e)
        return -1;
    blk_arg blk[A_COUNT] = {{NULL, 0}};
    const conv_arg *cs = &e->arg[K_FWD][A_SRC], *cd = &e->arg[K_FWD][A_DST];
    /* a blocked input in the primitive's own layout is read as it is (unrecorded nodes only:
     * a recorded one keeps its input for the backward pass itself) */
    const int blk_in = nn_is_blocked(xt) && !a->nd->recorded && cs->blk == xt->blk->block;
    const float *x = blk_in ? (const float *)xt->data : nn_f32(xt);
    if (blk_in)
        blk[A_SRC] = (blk_arg){xt->data, 1};
    /* the output stays blocked where nothing recorded needs it and its channels fill whole
     * blocks */
    if (cd->blk && cpu_blk_can(a->nd, yt, cd->blk)) {
        if (!(blk[A_DST].buf = cpu_blk_attach(ctx, yt, cd->blk)))
            return -1;
    }
    wcache_ent *wc = NULL;
    if (e->arg[K_FWD][A_WEI].reorder)
        blk[A_WEI] =
            wcache_get(s, a->wt, &e->arg[K_FWD][A_WEI].md, e->arg[K_FWD][A_WEI].bytes, &wc);
    if (!blk_in)
        blk[A_SRC].buf = keep_src(ctx, e, a->nd);
    if (run(ctx, s, e, K_FWD, g, x, a->w, a->b, a->y, blk))
        return -1;
    wcache_done(wc, &blk[A_WEI]);
    if (g->bias && !onednn_bias(g, K_FWD) && nn_is_blocked(yt)) { /* y [N, OC/B, OH, OW, B] */
        const int B = yt->blk->block, CB = g->OC / B;
        const size_t plane = (size_t)g->OH * g->OW;
#pragma omp parallel for schedule(static) if (cpu_par_ok((size_t)g->N * g->OC * plane))
        for (int q = 0; q < g->N * CB; q++) {
            float *yq = a->y + (size_t)q * plane * B;
            const float *bq = a->b + (size_t)(q % CB) * B;
            for (size_t i = 0; i < plane; i++)
#pragma omp simd
                for (int j = 0; j < B; j++)
                    yq[i * B + j] += bq[j];
        }
    } else if (g->bias && !onednn_bias(g, K_FWD)) /* y [N, OC, OH, OW] += b[oc] */
        for (int n = 0; n < g->N; n++)
#pragma omp parallel for schedule(static) if ((size_t)g->OC * g->OH * g->OW > 65536)
            for (int oc = 0; oc < g->OC; oc++) {
                const size_t plane = (size_t)g->OH * g->OW;
                float *yo = a->y + ((size_t)n * g->OC + oc) * plane;
                const float bo = a->b[oc];
#pragma omp simd
                for (size_t i = 0; i < plane; i++)
                    yo[i] += bo;
            }
    return 0;
}

/* the forward's weights with an eval batch norm folded in (CONV2D_FUSED with statistics):
 * s = gamma / sqrt(rvar + eps), w' = w s, b' = (b - rmean) s + beta, in the arena */
static int fold_bn(nn_ctx *ctx, const nn_node *nd, int OC, const float **w, const float **b)
{
    const float *ga = nd->in[3] ? nn_f32(nd->in[3]) : NULL;
    const float *be = nd->in[4] ? nn_f32(nd->in[4]) : NULL;
    const float *rm = nn_f32(nd->in[5]), *rv = nn_f32(nd->in[6]);
    size_t per = nn_numel(nd->in[1]) / (size_t)OC;
    float *fw = nn_ctx_scratch(ctx, nn_numel(nd->in[1]) * 4);
    float *fb = nn_ctx_scratch(ctx, (size_t)OC * 4);
    if (!fw || !fb)
        return -1;
    /* the scale in double, the per-weight product in float (a vectorised loop: it runs on
     * every inference call, and in double it took 9% of a whole-CT segmentation) */
    for (int oc = 0; oc < OC; oc++) {
        double sc = (ga ? ga[oc] : 1.0) / sqrt((double)rv[oc] + nd->f[0]);
        const float scf = (float)sc, *wo = *w + oc * per;
        float *fo = fw + oc * per;
#pragma omp simd
        for (size_t j = 0; j < per; j++)
            fo[j] = wo[j] * scf;
        fb[oc] = (float)(((*b ? (*b)[oc] : 0.0) - rm[oc]) * sc + (be ? be[oc] : 0.0));
    }
    *w = fw;
    *b = fb;
    return 0;
}

int cpu_conv_fwd(nn_ctx *ctx, nn_node *nd)
{
    conv_state *s = state(ctx);
    geom g = geometry(nd);
    if (!s)
        return -1;
    if (g.transposed && g.pad < g.extra) {
        nn_ctx_fail(ctx, "conv_transpose2d: out_pad > pad is not supported on the CPU");
        return -1;
    }
    nd->saved = NULL;
    fwd_args a = {nn_f32(nd->in[1]), nd->in[2] ? nn_f32(nd->in[2]) : NULL, nn_f32(nd->out), nd,
                  nd->in[1]};
    if (nd->op == NN_OP_CONV2D_FUSED && nd->in[5]) {
        if (fold_bn(ctx, nd, g.OC, &a.w, &a.b))
            return -1;
        a.wt = NULL;
    }
    return dispatch(ctx, s, &g, K_FWD, fwd_pass, &a);
}

typedef struct {
    const float *x, *w, *gy;
    float *gx, *gw, *gb;
    nn_node *nd;
    blk_arg gy_blk; /* gy in gy_md, shared by the two passes (buf NULL: none yet) */
    dnnl_memory_desc_t gy_md;
} bwd_args;

/* the output gradient's buffer in the layout of pass k's argument a (A_DST), shared with the
 * other pass when both primitives take it in the same layout */
static blk_arg *gy_shared(nn_ctx *ctx, const conv_ent *e, int k, bwd_args *a)
{
    const conv_arg *ca = &e->arg[k][A_DST];
    if (!ca->reorder)
        return NULL;
    if (!a->gy_blk.buf) {
        if (!(a->gy_blk.buf = nn_ctx_scratch(ctx, ca->bytes)))
            return NULL;
        a->gy_blk.ready = 0;
        a->gy_md = ca->md;
    }
    return dnnl_memory_desc_equal(&a->gy_md, &ca->md) ? &a->gy_blk : NULL;
}

static int bwd_data_pass(nn_ctx *ctx, conv_state *s, const geom *g, const void *args, int impl)
{
    bwd_args *a = (bwd_args *)args;
    if (impl == CPU_IMPL_DIRECT)
        return direct_bwd_data(ctx, g, a->gy, a->w, a->gx);
    if (impl == CPU_IMPL_WINO)
        return wino_bwd_data(ctx, g, a->gy, a->w, a->gx);
    if (impl == CPU_IMPL_GEMM)
        return gemm_pass(ctx, g, K_BWD_DATA, a->gy, a->w, NULL, a->gx);
    conv_ent *e = lookup(ctx, s, g, K_BWD_DATA);
    if (!e)
        return -1;
    blk_arg blk[A_COUNT] = {{NULL, 0}};
    wcache_ent *wc = NULL;
    if (e->arg[K_BWD_DATA][A_WEI].reorder)
        blk[A_WEI] = wcache_get(s, a->nd->in[1], &e->arg[K_BWD_DATA][A_WEI].md,
                                e->arg[K_BWD_DATA][A_WEI].bytes, &wc);
    blk_arg *gb = gy_shared(ctx, e, K_BWD_DATA, a);
    if (gb)
        blk[A_DST] = *gb;
    if (run(ctx, s, e, K_BWD_DATA, g, a->gx, a->w, NULL, a->gy, blk))
        return -1;
    wcache_done(wc, &blk[A_WEI]);
    if (gb)
        gb->ready = blk[A_DST].ready;
    return 0;
}

static int bwd_weights_pass(nn_ctx *ctx, conv_state *s, const geom *g, const void *args, int impl)
{
    bwd_args *a = (bwd_args *)args;
    if (impl == CPU_IMPL_DIRECT)
        return direct_bwd_weights(ctx, g, a->x, a->gy, a->gw, a->gb);
    if (impl == CPU_IMPL_WINO)
        return wino_bwd_weights(ctx, g, a->x, a->gy, a->gw, a->gb);
    if (impl == CPU_IMPL_GEMM)
        return gemm_bwd_weights(ctx, g, a->x, a->gy, a->gw, a->gb);
    conv_ent *e = lookup(ctx, s, g, K_BWD_WEIGHTS);
    if (!e)
        return -1;
    blk_arg blk[A_COUNT] = {{NULL, 0}};
    const conv_saved *sv = a->nd->saved;
    if (sv && sv->src && e->arg[K_BWD_WEIGHTS][A_SRC].reorder &&
        dnnl_memory_desc_equal(&sv->md, &e->arg[K_BWD_WEIGHTS][A_SRC].md))
        blk[A_SRC] = (blk_arg){sv->src, 1};
    blk_arg *gb = gy_shared(ctx, e, K_BWD_WEIGHTS, a);
    if (gb)
        blk[A_DST] = *gb;
    if (run(ctx, s, e, K_BWD_WEIGHTS, g, a->x, a->gw, a->gb, a->gy, blk))
        return -1;
    if (gb)
        gb->ready = blk[A_DST].ready;
    return 0;
}

int cpu_conv_bwd(nn_ctx *ctx, nn_node *nd)
{
    conv_state *s = state(ctx);
    geom g = geometry(nd);
    nn_tensor *x = nd->in[0], *w = nd->in[1], *b = nd->in[2];
    nn_arena *ar = nn_ctx_arena(ctx);
    bwd_args a = {nn_f32(x), nn_f32(w), nd->out->grad, NULL, NULL, NULL, nd, {NULL, 0}, {0}};
    const int need_w = w->requires_grad, need_b = b && b->requires_grad;
    float *gx = NULL, *gw = NULL, *gb = NULL;
    int acc_x = 0, acc_w = 0, acc_b = 0;
    if (!s)
        return -1;
    if ((x->requires_grad && !(gx = nn_grad_acquire(ctx, x, &acc_x))) ||
        (need_w && !(gw = nn_grad_acquire(ctx, w, &acc_w))) ||
        (need_b && !(gb = nn_grad_acquire(ctx, b, &acc_b))))
        return -1;
    nn_arena_mark m = nn_arena_pos(ar); /* after the gradients: only temporaries follow */
    if (gx) {
        a.gx = acc_x ? nn_ctx_scratch(ctx, nn_numel(x) * 4) : gx;
        if (!a.gx || dispatch(ctx, s, &g, K_BWD_DATA, bwd_data_pass, &a))
            return -1;
        if (acc_x)
            cpu_grad_store(gx, a.gx, nn_numel(x), 1);
    }
    if (need_w || need_b) {
        a.gw = nn_ctx_scratch(ctx, nn_numel(w) * 4);
        a.gb = b ? nn_ctx_scratch(ctx, nn_numel(b) * 4) : NULL;
        if (!a.gw || (b && !a.gb) || dispatch(ctx, s, &g, K_BWD_WEIGHTS, bwd_weights_pass, &a))
            return -1;
        if (need_w)
            cpu_grad_store(gw, a.gw, nn_numel(w), acc_w);
        if (need_b)
            cpu_grad_store(gb, a.gb, nn_numel(b), acc_b);
    }
    nn_arena_rollback(ar, m);
    return 0;
}
