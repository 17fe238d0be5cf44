/* nn_core.c: arenas, contexts, tensors, the tape and backward, rng, threads, op names.
 * The op front-ends (shape checks, node building) are in nn_ops.c; parameters and Adam in
 * nn_params.c; the kernels in the backends (engine/nn/cpu/). */
#include "nn_backend.h"
#include "nn_internal.h"
#include "mkd_env.h"

#include <math.h>
#include <omp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- op names ------------------------------------------------------------------------ */

static const char *const op_names[] = {
    "conv2d",         "conv_transpose2d",
    "pad_reflect",    "pad_zero",
    "instance_norm",  "batch_norm",
    "relu",           "leaky_relu",
    "tanh",           "sigmoid",
    "softmax",        "max_pool2d",
    "concat",         "add",
    "scale",          "resize_bilinear",
    "resize_nearest", "loss_cross_entropy",
    "loss_dice",      "loss_kd",
    "loss_l1",        "loss_lsgan",
    "conv2d_fused",
};
_Static_assert(sizeof op_names / sizeof op_names[0] == NN_OP_COUNT,
               "op_names must name every nn_op");

const char *nn_op_name(nn_op op) { return (unsigned)op < NN_OP_COUNT ? op_names[op] : "?"; }

/* ---- threads ------------------------------------------------------------------------- */

static int g_threads;

int nn_set_threads(int n)
{
    if (n <= 0) {
        n = (int)mkd_env_pos(MKD_ENV_THREADS);
        if (n <= 0)
            n = omp_get_num_procs();
    }
    if (n < 1)
        n = 1;
    omp_set_num_threads(n);
    g_threads = n;
    return n;
}

/* a calling thread's own count (nn_set_thread_threads), 0: the process-wide one */
static _Thread_local int t_threads;

int nn_get_threads(void)
{
    if (t_threads > 0)
        return t_threads;
    return g_threads > 0 ? g_threads : nn_set_threads(0);
}

int nn_get_thread_threads(void) { return t_threads; }

void nn_set_thread_threads(int n)
{
    t_threads = n > 0 ? n : 0;
    omp_set_num_threads(nn_get_threads());
}

/* omp_set_num_threads sets the calling thread's value only: a pthread that runs ops (a
 * server worker) would otherwise use OpenMP's default. Applied before every kernel. */
void nn_threads_apply(void)
{
    int n = nn_get_threads();
    if (omp_get_max_threads() != n)
        omp_set_num_threads(n);
}

/* ---- rng: the engine's generator (rng.h) ------------------------------------------------ */

void nn_rng_seed(nn_rng *r, uint64_t seed) { mkd_rng_seed(r, seed); }

uint64_t nn_rng_u64(nn_rng *r) { return mkd_rng_u64(r); }

float nn_rng_uniform(nn_rng *r) { return (float)(nn_rng_u64(r) >> 40) * (1.0f / 16777216.0f); }

float nn_rng_normal(nn_rng *r)
{
    double u1 = ((double)(nn_rng_u64(r) >> 11) + 1.0) * (1.0 / 9007199254740993.0);
    double u2 = (double)(nn_rng_u64(r) >> 11) * (1.0 / 9007199254740992.0);
    return (float)(sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2));
}

/* ---- arena --------------------------------------------------------------------------- */

typedef struct chunk {
    struct chunk *next;
    size_t size, used;
    char *base;
} chunk;

struct nn_arena {
    chunk *cur; /* list, newest first */
    size_t used, peak, capacity;
    void *(*alloc)(size_t);
    void (*free)(void *);
};

#define ARENA_ALIGN 64
#define ARENA_DEFAULT (64u << 20)

static void *host_alloc(size_t n)
{
    return aligned_alloc(ARENA_ALIGN, (n + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN);
}

static chunk *chunk_new(nn_arena *a, size_t size)
{
    chunk *c = malloc(sizeof *c);
    if (!c)
        return NULL;
    c->base = a->alloc(size);
    if (!c->base) {
        free(c);
        return NULL;
    }
    c->size = size;
    c->used = 0;
    c->next = a->cur;
    a->cur = c;
    a->capacity += size;
    return c;
}

nn_arena *nn_arena_new_with(size_t bytes, void *(*alloc)(size_t), void (*fr)(void *))
{
    nn_arena *a = calloc(1, sizeof *a);
    if (!a)
        return NULL;
    a->alloc = alloc;
    a->free = fr;
    if (!chunk_new(a, bytes ? bytes : ARENA_DEFAULT)) {
        free(a);
        return NULL;
    }
    return a;
}

nn_arena *nn_arena_new(size_t bytes) { return nn_arena_new_with(bytes, host_alloc, free); }

void *nn_arena_alloc(nn_arena *a, size_t bytes)
{
    size_t need = (bytes + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN;
    if (need == 0)
        need = ARENA_ALIGN;
    chunk *c = a->cur;
    if (c->used + need > c->size) {
        size_t sz = a->capacity > need ? a->capacity : need;
        if (!(c = chunk_new(a, sz)))
            return NULL;
    }
    void *p = c->base + c->used;
    c->used += need;
    a->used += need;
    if (a->used > a->peak)
        a->peak = a->used;
    return p;
}

void nn_arena_reset(nn_arena *a)
{
    if (a->cur->next) { /* merge every chunk into one of the peak size */
        size_t want = a->peak + a->peak / 8;
        while (a->cur) {
            chunk *n = a->cur->next;
            a->free(a->cur->base);
            free(a->cur);
            a->cur = n;
        }
        a->capacity = 0;
        if (!chunk_new(a, want))
            chunk_new(a, ARENA_DEFAULT); /* last resort; next alloc may fail cleanly */
    }
    if (a->cur)
        a->cur->used = 0;
    a->used = 0;
}

nn_arena_mark nn_arena_pos(const nn_arena *a)
{
    nn_arena_mark m = {a->cur, a->cur->used, a->used};
    return m;
}

void nn_arena_rollback(nn_arena *a, nn_arena_mark m)
{
    chunk *c;
    for (c = a->cur; c && c != (chunk *)m.chunk; c = c->next)
        ;
    if (!c || m.chunk_used > c->used)
        return; /* not a mark of this arena's current state: ignore */
    for (c = a->cur; c != (chunk *)m.chunk; c = c->next)
        c->used = 0; /* newer chunks: emptied (the head one is reused next) */
    c->used = m.chunk_used;
    a->used = m.used;
}

size_t nn_arena_used(const nn_arena *a) { return a->used; }
size_t nn_arena_peak(const nn_arena *a) { return a->peak; }

void nn_arena_free(nn_arena *a)
{
    if (!a)
        return;
    while (a->cur) {
        chunk *n = a->cur->next;
        a->free(a->cur->base);
        free(a->cur);
        a->cur = n;
    }
    free(a);
}

/* ---- context ------------------------------------------------------------------------- */

struct nn_ctx {
    int profile; /* $MKDSEG_NN_PROFILE set: time every op, print at free */
    double prof_s[NN_OP_COUNT][2];
    long prof_n[NN_OP_COUNT][2];
    double prof_flop[NN_OP_COUNT][2];
    double flops; /* convolution FLOPs run since the context was made */
    /* the profile's convolutions by shape (op, N, IC, OC, H, W, KH, KW, stride, pad):
     * [0] forward, [1] backward; shapes past PROF_SHAPES are counted in the op table only */
    struct prof_shape {
        int key[10];
        double s[2], flop[2];
        long n[2];
    } * shapes;
    int nshapes;
    const nn_backend *be;
    nn_arena *arena;
    nn_node **tape;
    size_t ntape, captape;
    nn_arena *meta; /* host arena for tensor structs and tape nodes when the
                                backend's memory is not host memory (CUDA); else NULL and
                                they share `arena` */
    int grad_enabled;
    int has_err;
    char err[512];
    void *bstate;
    /* gradient buffers of intermediate tensors freed during backward, for reuse (arena
     * blocks; forgotten at reset) */
    struct gblk {
        void *p;
        size_t bytes;
    } * pool;
    size_t npool, cappool;
};

nn_ctx *nn_ctx_new(const nn_backend *be, size_t arena_bytes, char *err, size_t errlen)
{
    nn_ctx *ctx = calloc(1, sizeof *ctx);
    if (!be)
        be = nn_backend_cpu();
    if (!ctx)
        goto fail;
    ctx->be = be;
    ctx->grad_enabled = 1;
    ctx->profile = mkd_env_raw(MKD_ENV_NN_PROFILE) != NULL;
    ctx->arena = nn_arena_new_with(arena_bytes, be->mem_alloc, be->mem_free);
    if (!ctx->arena)
        goto fail;
    if (be != nn_backend_cpu() && !(ctx->meta = nn_arena_new(1u << 20)))
        goto fail;
    nn_get_threads();
    return ctx;
fail:
    snprintf(err, errlen, "nn_ctx_new: out of memory");
    if (ctx)
        nn_arena_free(ctx->arena);
    free(ctx);
    return NULL;
}

void nn_ctx_reset(nn_ctx *ctx)
{
    ctx->ntape = 0;
    ctx->npool = 0;
    nn_arena_reset(ctx->arena);
    if (ctx->meta)
        nn_arena_reset(ctx->meta);
    ctx->has_err = 0;
    ctx->err[0] = 0;
}

/* the profile's clock: at one thread the thread's CPU time (on a shared machine a wall time
 * also counts the waits for a core), with a team wall time */
static double now_s(void)
{
    struct timespec ts;
    clock_gettime(nn_get_threads() == 1 ? CLOCK_THREAD_CPUTIME_ID : CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The floating-point operations of one run of a convolution node: 2 per multiply-add of the
 * forward pass, once for the forward and, in the backward, once for the data gradient (x
 * requires one) and once for the weight gradient (w requires one). Other ops: 0 (they move
 * memory; their arithmetic is a few operations per element). */
static double node_flops(const nn_node *nd, int backward)
{
    if (nd->op != NN_OP_CONV2D && nd->op != NN_OP_CONV_T2D && nd->op != NN_OP_CONV2D_FUSED)
        return 0;
    const nn_tensor *x = nd->in[0], *w = nd->in[1], *y = nd->out;
    /* conv2d: every output pixel takes IC KH KW products; transposed: every input pixel
     * spreads OC KH KW of them (w is [IC, OC, KH, KW] there) */
    const nn_tensor *spread = nd->op == NN_OP_CONV_T2D ? x : y;
    const double macs =
        (double)spread->n * spread->h * spread->w * (double)w->n * w->c * w->h * w->w;
    if (!backward)
        return 2 * macs;
    return 2 * macs * ((x->requires_grad ? 1 : 0) + (w->requires_grad ? 1 : 0));
}

#define PROF_SHAPES 512

/* the profile's entry of a convolution node's shape, NULL for other ops or a full table */
static struct prof_shape *prof_shape_of(nn_ctx *ctx, const nn_node *nd)
{
    if (nd->op != NN_OP_CONV2D && nd->op != NN_OP_CONV_T2D && nd->op != NN_OP_CONV2D_FUSED)
        return NULL;
    const nn_tensor *x = nd->in[0], *w = nd->in[1], *y = nd->out;
    const int key[10] = {nd->op, x->n, x->c, y->c, x->h, x->w, w->h, w->w, nd->i[0], nd->i[1]};
    for (int k = 0; k < ctx->nshapes; k++)
        if (!memcmp(ctx->shapes[k].key, key, sizeof key))
            return &ctx->shapes[k];
    if (!ctx->shapes && !(ctx->shapes = calloc(PROF_SHAPES, sizeof *ctx->shapes)))
        return NULL;
    if (ctx->nshapes == PROF_SHAPES)
        return NULL;
    struct prof_shape *e = &ctx->shapes[ctx->nshapes++];
    memcpy(e->key, key, sizeof key);
    return e;
}

int nn_run_node(nn_ctx *ctx, nn_node *nd, int backward)
{
    nn_threads_apply();
    const double fl = node_flops(nd, backward);
    ctx->flops += fl;
    if (!ctx->profile)
        return backward ? ctx->be->backward(ctx, nd) : ctx->be->forward(ctx, nd);
    double t0 = now_s();
    int rc = backward ? ctx->be->backward(ctx, nd) : ctx->be->forward(ctx, nd);
    const double dt = now_s() - t0;
    ctx->prof_s[nd->op][backward] += dt;
    ctx->prof_n[nd->op][backward]++;
    ctx->prof_flop[nd->op][backward] += fl;
    struct prof_shape *e = prof_shape_of(ctx, nd);
    if (e) {
        e->s[backward] += dt;
        e->n[backward]++;
        e->flop[backward] += fl;
    }
    return rc;
}

double nn_ctx_flops(const nn_ctx *ctx) { return ctx->flops; }

static int by_time(const void *a, const void *b)
{
    const struct prof_shape *p = a, *q = b;
    const double tp = p->s[0] + p->s[1], tq = q->s[0] + q->s[1];
    return tp < tq ? 1 : tp > tq ? -1 : 0;
}

/* the convolutions by shape, most time first: where a speed-up of the convolutions pays */
static void profile_print_shapes(const nn_ctx *ctx)
{
    if (!ctx->nshapes)
        return;
    struct prof_shape *v = malloc(sizeof *v * (size_t)ctx->nshapes);
    if (!v)
        return;
    memcpy(v, ctx->shapes, sizeof *v * (size_t)ctx->nshapes);
    qsort(v, (size_t)ctx->nshapes, sizeof *v, by_time);
    fprintf(stderr, "  convolutions by shape (N IC->OC HxW kernel stride pad), most time first:\n");
    fprintf(stderr, "  %-40s %7s %9s %7s %9s %8s %8s\n", "shape", "fwd n", "fwd ms", "bwd n",
            "bwd ms", "fwd GF/s", "bwd GF/s");
    for (int k = 0; k < ctx->nshapes; k++) {
        const int *q = v[k].key;
        char shape[64];
        snprintf(shape, sizeof shape, "%s %d %d->%d %dx%d k%dx%d s%d p%d",
                 q[0] == NN_OP_CONV_T2D ? "convT" : "conv", q[1], q[2], q[3], q[4], q[5], q[6],
                 q[7], q[8], q[9]);
        fprintf(stderr, "  %-40s %7ld %9.1f %7ld %9.1f %8.1f %8.1f\n", shape, v[k].n[0],
                v[k].s[0] * 1e3, v[k].n[1], v[k].s[1] * 1e3,
                v[k].s[0] > 0 ? v[k].flop[0] * 1e-9 / v[k].s[0] : 0.0,
                v[k].s[1] > 0 ? v[k].flop[1] * 1e-9 / v[k].s[1] : 0.0);
    }
    free(v);
}

static void profile_print(const nn_ctx *ctx)
{
    double tot = 0;
    for (int o = 0; o < NN_OP_COUNT; o++)
        tot += ctx->prof_s[o][0] + ctx->prof_s[o][1];
    fprintf(stderr, "nn profile (%s backend, %s), total %.1f ms\n", ctx->be->name,
            nn_get_threads() == 1 ? "thread CPU time" : "wall time", tot * 1e3);
    fprintf(stderr, "  %-20s %8s %10s %8s %10s %10s %8s\n", "op", "fwd n", "fwd ms", "bwd n",
            "bwd ms", "GFLOP", "GFLOP/s");
    for (int o = 0; o < NN_OP_COUNT; o++) {
        if (!ctx->prof_n[o][0] && !ctx->prof_n[o][1])
            continue;
        const double fl = ctx->prof_flop[o][0] + ctx->prof_flop[o][1];
        const double s = ctx->prof_s[o][0] + ctx->prof_s[o][1];
        fprintf(stderr, "  %-20s %8ld %10.1f %8ld %10.1f", nn_op_name((nn_op)o), ctx->prof_n[o][0],
                ctx->prof_s[o][0] * 1e3, ctx->prof_n[o][1], ctx->prof_s[o][1] * 1e3);
        if (fl > 0)
            fprintf(stderr, " %10.2f %8.1f", fl * 1e-9, s > 0 ? fl * 1e-9 / s : 0.0);
        fputc('\n', stderr);
    }
    profile_print_shapes(ctx);
}

void nn_ctx_free(nn_ctx *ctx)
{
    if (!ctx)
        return;
    if (ctx->profile)
        profile_print(ctx);
    if (ctx->be->ctx_free)
        ctx->be->ctx_free(ctx);
    nn_arena_free(ctx->arena);
    nn_arena_free(ctx->meta);
    free(ctx->tape);
    free(ctx->pool);
    free(ctx->shapes);
    free(ctx);
}

const nn_backend *nn_ctx_backend(const nn_ctx *ctx) { return ctx->be; }
nn_arena *nn_ctx_arena(nn_ctx *ctx) { return ctx->arena; }
void **nn_ctx_backend_state(nn_ctx *ctx) { return &ctx->bstate; }
size_t nn_ctx_tape_len(const nn_ctx *ctx) { return ctx->ntape; }
int nn_ctx_grad_enabled(const nn_ctx *ctx) { return ctx->grad_enabled; }

int nn_ctx_set_grad_enabled(nn_ctx *ctx, int enabled)
{
    int old = ctx->grad_enabled;
    ctx->grad_enabled = enabled != 0;
    return old;
}

const char *nn_ctx_error(const nn_ctx *ctx) { return ctx->has_err ? ctx->err : NULL; }

void *nn_ctx_fail(nn_ctx *ctx, const char *fmt, ...)
{
    if (!ctx->has_err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(ctx->err, sizeof ctx->err, fmt, ap);
        va_end(ap);
        ctx->has_err = 1;
    }
    return NULL;
}

void *nn_ctx_scratch(nn_ctx *ctx, size_t bytes)
{
    void *p = nn_arena_alloc(ctx->arena, bytes);
    if (!p)
        nn_ctx_fail(ctx, "out of memory (arena, %zu bytes)", bytes);
    return p;
}

void *nn_ctx_meta(nn_ctx *ctx, size_t bytes)
{
    if (!ctx->meta)
        return nn_ctx_scratch(ctx, bytes);
    void *p = nn_arena_alloc(ctx->meta, bytes);
    if (!p)
        nn_ctx_fail(ctx, "out of memory (host arena, %zu bytes)", bytes);
    return p;
}

nn_scope nn_ctx_scope(nn_ctx *ctx)
{
    nn_scope s = {nn_arena_pos(ctx->arena), ctx->ntape};
    return s;
}

nn_tensor *nn_ctx_scope_end(nn_ctx *ctx, nn_scope s, nn_tensor *keep)
{
    if (nn_ctx_error(ctx))
        return NULL;
    if (ctx->ntape != s.tape)
        return nn_ctx_fail(ctx, "scope_end: ops inside the scope were recorded on the tape "
                                "(use no_grad mode)");
    if (!keep) {
        nn_arena_rollback(ctx->arena, s.mark);
        return NULL;
    }
    nn_tensor k = *keep;
    size_t bytes = nn_numel(&k) * 4;
    const nn_blk kb = nn_is_blocked(&k) ? *k.blk : (nn_blk){0};
    nn_arena_rollback(ctx->arena, s.mark);
    /* the new block may overlap the old data: move first, then allocate the structs */
    void *data = nn_ctx_scratch(ctx, bytes);
    if (!data)
        return NULL;
    ctx->be->mem_move(data, k.data, bytes);
    nn_blk *nb = NULL;
    if (kb.blocked && (nb = nn_ctx_meta(ctx, sizeof *nb)))
        *nb = kb;
    nn_tensor *t = nn_ctx_meta(ctx, sizeof *t);
    if (!t || (kb.blocked && !nb))
        return NULL;
    *t = k;
    t->data = data;
    t->blk = nb;
    t->grad = NULL;
    t->grad_valid = 0;
    return t;
}

int nn_tape_push(nn_ctx *ctx, nn_node *node)
{
    if (ctx->ntape == ctx->captape) {
        size_t cap = ctx->captape ? ctx->captape * 2 : 256;
        nn_node **t = realloc(ctx->tape, cap * sizeof *t);
        if (!t) {
            nn_ctx_fail(ctx, "out of memory (tape)");
            return -1;
        }
        ctx->tape = t;
        ctx->captape = cap;
    }
    ctx->tape[ctx->ntape++] = node;
    return 0;
}

/* ---- tensors ------------------------------------------------------------------------- */

nn_tensor *nn_tensor_alloc(nn_ctx *ctx, int n, int c, int h, int w, nn_dtype dt)
{
    if (n <= 0 || c <= 0 || h <= 0 || w <= 0)
        return nn_ctx_fail(ctx, "tensor: bad shape [%d,%d,%d,%d]", n, c, h, w);
    nn_tensor *t = nn_ctx_meta(ctx, sizeof *t);
    if (!t)
        return NULL;
    memset(t, 0, sizeof *t);
    t->n = n;
    t->c = c;
    t->h = h;
    t->w = w;
    t->dtype = dt;
    t->be = ctx->be;
    t->data = nn_ctx_scratch(ctx, nn_numel(t) * 4);
    return t->data ? t : NULL;
}

nn_tensor *nn_tensor_new(nn_ctx *ctx, int n, int c, int h, int w)
{
    return nn_tensor_alloc(ctx, n, c, h, w, NN_F32);
}

nn_tensor *nn_tensor_zeros(nn_ctx *ctx, int n, int c, int h, int w)
{
    nn_tensor *t = nn_tensor_alloc(ctx, n, c, h, w, NN_F32);
    if (t)
        ctx->be->mem_zero(t->data, nn_numel(t) * 4);
    return t;
}

nn_tensor *nn_tensor_from(nn_ctx *ctx, int n, int c, int h, int w, const float *host)
{
    nn_tensor *t = nn_tensor_alloc(ctx, n, c, h, w, NN_F32);
    if (t)
        ctx->be->mem_upload(t->data, host, nn_numel(t) * 4);
    return t;
}

/* the range of labels uploaded from the host (a device backend's losses check it there) */
static void label_range(nn_tensor *t, const int32_t *v)
{
    size_t n = nn_numel(t);
    int32_t lo = n ? v[0] : 0, hi = n ? v[0] : 0;
    for (size_t i = 1; i < n; i++) {
        lo = v[i] < lo ? v[i] : lo;
        hi = v[i] > hi ? v[i] : hi;
    }
    t->lab_lo = lo;
    t->lab_hi = hi;
    t->lab_known = 1;
}

nn_tensor *nn_labels_from(nn_ctx *ctx, int n, int h, int w, const int32_t *host)
{
    nn_tensor *t = nn_tensor_alloc(ctx, n, 1, h, w, NN_I32);
    if (t) {
        ctx->be->mem_upload(t->data, host, nn_numel(t) * 4);
        label_range(t, host);
    }
    return t;
}

float *nn_f32(const nn_tensor *t)
{
    if (nn_is_blocked(t) && t->be->blk_sync(t) == 0)
        t->blk->blocked = 0;
    return (float *)t->data;
}

int nn_tensor_write(nn_tensor *t, const void *host)
{
    if (!t || !t->data || !t->be)
        return -1;
    if (t->blk) /* NCHW values (shared with a detached twin) */
        t->blk->blocked = 0;
    t->be->mem_upload(t->data, host, nn_numel(t) * 4);
    if (t->dtype == NN_I32)
        label_range(t, host);
    return 0;
}

int nn_tensor_read(const nn_tensor *t, void *host)
{
    if (!t || !t->data || !t->be)
        return -1;
    const float *v = nn_f32(t); /* NCHW: only floats are blocked */
    if (nn_is_blocked(t))
        return -1; /* the conversion failed (out of memory: the context's error) */
    t->be->mem_download(host, v, nn_numel(t) * 4);
    return 0;
}

float nn_scalar(const nn_tensor *t)
{
    float v;
    if (!t || nn_tensor_read(t, &v))
        return NAN;
    return v;
}

nn_tensor *nn_requires_grad(nn_tensor *t)
{
    if (t && !t->param && !t->node)
        t->requires_grad = 1;
    return t;
}

nn_tensor *nn_detach(nn_ctx *ctx, nn_tensor *t)
{
    if (!t)
        return NULL;
    nn_tensor *d = nn_ctx_meta(ctx, sizeof *d);
    if (!d)
        return NULL;
    memset(d, 0, sizeof *d);
    d->n = t->n;
    d->c = t->c;
    d->h = t->h;
    d->w = t->w;
    d->dtype = t->dtype;
    d->data = t->data;
    d->blk = t->blk; /* the same values: whichever of the two syncs, both see it */
    d->be = t->be;
    return d;
}

/* ---- autograd ------------------------------------------------------------------------ */

/* A freed gradient block of exactly `bytes`, or NULL. */
static void *pool_take(nn_ctx *ctx, size_t bytes)
{
    for (size_t i = ctx->npool; i-- > 0;)
        if (ctx->pool[i].bytes == bytes) {
            void *p = ctx->pool[i].p;
            ctx->pool[i] = ctx->pool[--ctx->npool];
            return p;
        }
    return NULL;
}

static void pool_put(nn_ctx *ctx, void *p, size_t bytes)
{
    if (ctx->npool == ctx->cappool) {
        size_t cap = ctx->cappool ? 2 * ctx->cappool : 64;
        struct gblk *n = realloc(ctx->pool, cap * sizeof *n);
        if (!n)
            return; /* the block is simply not reused */
        ctx->pool = n;
        ctx->cappool = cap;
    }
    ctx->pool[ctx->npool].p = p;
    ctx->pool[ctx->npool].bytes = bytes;
    ctx->npool++;
}

float *nn_grad_acquire(nn_ctx *ctx, nn_tensor *t, int *accumulate)
{
    if (!t->grad) {
        size_t bytes = nn_numel(t) * 4;
        t->grad = t->node ? pool_take(ctx, bytes) : NULL;
        if (!t->grad)
            t->grad = nn_ctx_scratch(ctx, bytes);
        if (!t->grad)
            return NULL;
        t->grad_valid = 0;
    }
    *accumulate = t->grad_valid;
    t->grad_valid = 1;
    if (t->param)
        t->param->ever_grad = 1;
    return t->grad;
}

int nn_backward(nn_ctx *ctx, nn_tensor *loss, char *err, size_t errlen)
{
    const float one = 1.0f;
    if (loss && (nn_numel(loss) != 1 || loss->dtype != NN_F32)) {
        snprintf(err, errlen, "backward: the loss must be a 1x1x1x1 float tensor");
        return -1;
    }
    return nn_backward_from(ctx, loss, &one, err, errlen);
}

int nn_backward_from(nn_ctx *ctx, nn_tensor *out, const float *gy, char *err, size_t errlen)
{
    size_t end;
    if (nn_ctx_error(ctx)) {
        snprintf(err, errlen, "backward: earlier error: %s", nn_ctx_error(ctx));
        return -1;
    }
    if (!out || out->dtype != NN_F32 || !gy) {
        snprintf(err, errlen, "backward: no output or no seed gradient");
        return -1;
    }
    if (!out->requires_grad || !out->node) {
        snprintf(err, errlen,
                 "backward: the output does not require a gradient "
                 "(no_grad mode, or nothing it depends on requires one)");
        return -1;
    }
    for (end = ctx->ntape; end > 0 && ctx->tape[end - 1] != out->node; end--)
        ;
    if (end == 0) {
        snprintf(err, errlen, "backward: the output is not on this context's tape");
        return -1;
    }
    /* intermediate gradients are per backward call */
    for (size_t i = 0; i < end; i++) {
        ctx->tape[i]->out->grad = NULL;
        ctx->tape[i]->out->grad_valid = 0;
    }
    int acc;
    float *g = nn_grad_acquire(ctx, out, &acc);
    if (!g)
        goto fail;
    ctx->be->mem_upload(g, gy, nn_numel(out) * sizeof *gy);
    for (size_t i = end; i-- > 0;) {
        nn_node *nd = ctx->tape[i];
        if (!nd->out->grad_valid)
            continue; /* the output does not depend on it */
        if (nn_run_node(ctx, nd, 1))
            goto fail;
        /* every consumer of nd->out ran its backward before nd: its gradient is dead */
        pool_put(ctx, nd->out->grad, nn_numel(nd->out) * 4);
        nd->out->grad = NULL;
        nd->out->grad_valid = 0;
    }
    return 0;
fail:
    snprintf(err, errlen, "backward: %s", nn_ctx_error(ctx) ? nn_ctx_error(ctx) : "failed");
    return -1;
}
