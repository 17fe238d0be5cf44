/* nn.h: the engine core — tensors, arenas, a define-by-run autograd tape, parameters,
 * every op and loss the networks need, Adam and learning-rate schedules, thread count,
 * and the backend table (engine/include/nn_backend.h holds what a backend implements).
 *
 * Model code (engine/models/) includes only this header. It never touches a backend.
 *
 * ---- Conventions -----------------------------------------------------------------------
 * - Every tensor is float32 (or int32 for class labels), 4-D NCHW, contiguous:
 *   element (n, c, h, w) is at data[((n*C + c)*H + h)*W + w].
 * - t->data lives in the backend's memory. On the CPU backend that is ordinary host memory
 *   and may be read and written directly; portable code uses nn_tensor_write/nn_tensor_read
 *   (the CUDA backend keeps device pointers there).
 * - Activations and their gradients are allocated from the context's arena and live until
 *   nn_ctx_reset(); nothing in an op calls malloc once the arena has reached its peak size.
 * - Parameters and buffers (BN running statistics) are allocated once by an nn_params
 *   registry and live until nn_params_free().
 * - Errors: an op that cannot run (shape mismatch, NULL input, out of memory, backend
 *   failure) returns NULL and records the first error in the context ("sticky"); every op
 *   given a NULL input returns NULL at once. So model code may chain ops and check once:
 *       y = nn_relu(ctx, nn_conv2d(ctx, x, w, b, 1, 1, 1));
 *       if (!y) { fprintf(stderr, "%s\n", nn_ctx_error(ctx)); ... }
 *   Functions that return int return 0 on success and -1 on error.
 * - Autograd: an op records a tape node when gradients are enabled in the context
 *   (nn_ctx_set_grad_enabled) and at least one input requires a gradient. Its output then
 *   requires a gradient. nn_backward(loss) walks the tape from the loss back to the start.
 *   Ops keep references to their inputs (not copies): do not modify an input or a parameter
 *   between the forward pass and nn_backward (PyTorch would raise; here the gradient would
 *   silently use the new values).
 * - Leaves: parameters (unless frozen) and tensors marked with nn_requires_grad() are leaves.
 *   Leaf gradients ACCUMULATE over backward calls (and over several uses of the same
 *   parameter in one graph): a parameter's until nn_params_zero_grad() (nn_ctx_reset keeps
 *   them), an arena leaf's until nn_ctx_reset(). Gradients of
 *   intermediate tensors (op outputs) are scratch: each is freed for reuse as soon as its
 *   op's backward has run, so after nn_backward only leaves hold gradients, and the peak
 *   memory of a backward pass is that of the gradients alive at once. Several nn_backward
 *   calls on overlapping graphs within one step are allowed (like retain_graph=True).
 * - Freezing: a frozen parameter receives no gradient and is skipped by Adam, but gradients
 *   still flow through the ops that use it into their other inputs (G_a2t through a frozen
 *   S_syn, docs/method.md Algorithm 1 step 2).
 * - Calling the same network several times in one graph is allowed; parameter gradients add.
 * - Inference memory: wrap blocks in nn_ctx_scope/nn_ctx_scope_end (no_grad mode) so a
 *   forward pass does not keep every activation; use nn_conv2d_bn_act for conv-BN-act.
 * - CPU backend: convolutions run in oneDNN's preferred (blocked) layouts, with reorders
 *   from and back to NCHW around each one (a few % of the conv time; a parameter's reordered
 *   weights are kept while its bytes are unchanged, so writing a parameter directly is safe);
 *   other ops are OpenMP loops on NCHW. MKDSEG_NN_PROFILE=1 prints a per-op time table at
 *   nn_ctx_free (thread CPU time at one thread, wall time with more).
 * - Threads: nn_set_threads() (default $MKDSEG_THREADS, else all cores) holds for every
 *   calling thread, including server worker pthreads.
 */
#ifndef MKDSEG_NN_H
#define MKDSEG_NN_H

#include <stddef.h>
#include <stdint.h>

#include "rng.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ======================================================================================
 * Backends and the closed list of ops
 * ====================================================================================== */

/* Every op the tape can hold. Closed: adding one means adding it to nn_op_names (a static
 * assert in nn_core.c checks the table's length) and to every backend's switch. */
typedef enum {
    NN_OP_CONV2D = 0,      /* in: x, w, b?                    */
    NN_OP_CONV_T2D,        /* in: x, w, b?                    */
    NN_OP_PAD_REFLECT,     /* in: x                           */
    NN_OP_PAD_ZERO,        /* in: x                           */
    NN_OP_INSTANCE_NORM,   /* in: x, gamma?, beta?            */
    NN_OP_BATCH_NORM,      /* in: x, gamma?, beta?, rmean, rvar */
    NN_OP_RELU,            /* in: x                           */
    NN_OP_LEAKY_RELU,      /* in: x                           */
    NN_OP_TANH,            /* in: x                           */
    NN_OP_SIGMOID,         /* in: x                           */
    NN_OP_SOFTMAX,         /* in: x (softmax over channels)   */
    NN_OP_MAX_POOL,        /* in: x                           */
    NN_OP_CONCAT,          /* in: x0..xk (over channels)      */
    NN_OP_ADD,             /* in: a, b                        */
    NN_OP_SCALE,           /* in: x                           */
    NN_OP_RESIZE_BILINEAR, /* in: x                           */
    NN_OP_RESIZE_NEAREST,  /* in: x                           */
    NN_OP_LOSS_CE,         /* in: logits, labels, weights?    */
    NN_OP_LOSS_DICE,       /* in: probs, labels               */
    NN_OP_LOSS_KD,         /* in: target probs (detached), probs */
    NN_OP_LOSS_L1,         /* in: a, b                        */
    NN_OP_LOSS_LSGAN,      /* in: x                           */
    NN_OP_CONV2D_FUSED,    /* in: x, w, b?, gamma?, beta?, rmean?, rvar?; forward only */
    NN_OP_COUNT
} nn_op;

/* The op's name ("conv2d", "conv_transpose2d", ...); "?" when out of range. */
const char *nn_op_name(nn_op op);

typedef struct nn_backend nn_backend; /* defined in nn_backend.h */

/* The CPU backend (oneDNN + OpenMP); always available. */
const nn_backend *nn_backend_cpu(void);
/* A backend by name: "cpu", "cuda" (NULL when not built), "auto" (cuda when built and a
 * device is present, else cpu). */
const nn_backend *nn_backend_by_name(const char *name);
const char *nn_backend_name(const nn_backend *be);
/* 1 for a device backend (any backend but the CPU's): memory is plentiful and batch 1 leaves
 * it idle, so inference batches (segmentor_infer, infer_volume); 0 for the CPU. */
int nn_backend_is_device(const nn_backend *be);
/* What a device choice resolves to, for `mkdseg --version` and /version: name as for
 * nn_backend_by_name (NULL: $MKDSEG_DEVICE, else "auto"). "cpu (N threads)",
 * "cuda (<GPU>, cc X.Y, N GiB, cuDNN V)" or "none (<reason>)". Static storage (overwritten
 * by the next call). */
const char *nn_device_describe(const char *name);
/* The backend MKDSEG_DEVICE names (auto when unset): NULL, with the reason in err, when that
 * device is unknown or absent (MKDSEG_DEVICE=cuda without a GPU is an error, not a fallback). */
const nn_backend *nn_backend_from_env(char *err, size_t errlen);

/* ======================================================================================
 * Threads
 * ====================================================================================== */

/* Set the number of CPU threads used by the engine (OpenMP and oneDNN).
 * n > 0: use n. n <= 0: use $MKDSEG_THREADS when set to a positive integer, else all cores.
 * Returns the number now in use. Process-wide; call before building contexts (the CLI's
 * --threads calls it). */
int nn_set_threads(int n);
int nn_get_threads(void);
/* The calling thread's own count, over the process-wide one (n <= 0: back to that): for a
 * thread that runs its own ops inside a team of such threads (the CPU inference's slices run
 * one per thread, each op on one). Its ops then see and time n threads. */
void nn_set_thread_threads(int n);
/* The calling thread's own count as set (0: none, the process-wide one applies), to restore
 * after a temporary nn_set_thread_threads: the CPU backend runs a pass on one thread where
 * that is faster than the team (cpu_conv.c's timed choice). */
int nn_get_thread_threads(void);

/* ======================================================================================
 * Random numbers (deterministic, for initialisation and tests)
 * ====================================================================================== */

typedef mkd_rng nn_rng; /* rng.h: one generator for the whole engine */
void nn_rng_seed(nn_rng *r, uint64_t seed);
uint64_t nn_rng_u64(nn_rng *r);
float nn_rng_uniform(nn_rng *r); /* in [0, 1) */
float nn_rng_normal(nn_rng *r);  /* N(0, 1), Box-Muller */

/* ======================================================================================
 * Arena: a bump allocator. Blocks are 64-byte aligned.
 * ====================================================================================== */

typedef struct nn_arena nn_arena;

/* A new arena with `bytes` reserved up front (0: a default of 64 MiB). It grows by adding
 * chunks when needed; nn_arena_reset() merges them into one chunk of the peak size, so a
 * loop of identical steps allocates only during the first one. Host memory (CPU arenas);
 * the context creates its arena through its backend. NULL when out of memory. */
nn_arena *nn_arena_new(size_t bytes);
void *nn_arena_alloc(nn_arena *a, size_t bytes); /* NULL when out of memory */
void nn_arena_reset(nn_arena *a);                /* frees every block at once */
size_t nn_arena_used(const nn_arena *a);
size_t nn_arena_peak(const nn_arena *a);
void nn_arena_free(nn_arena *a);
/* A position in an arena, and a rollback to it: every block allocated after the mark is
 * freed at once (their memory is reused by the next allocations). */
typedef struct {
    void *chunk;
    size_t chunk_used, used;
} nn_arena_mark;
nn_arena_mark nn_arena_pos(const nn_arena *a);
void nn_arena_rollback(nn_arena *a, nn_arena_mark m);

/* ======================================================================================
 * Tensors
 * ====================================================================================== */

typedef enum { NN_F32 = 0, NN_I32 = 1 } nn_dtype;

#define NN_MAX_IN 8 /* most inputs an op takes (concat: at most 8 tensors) */

typedef struct nn_param nn_param;
typedef struct nn_node nn_node;

/* A tensor whose data holds its values in a channel-blocked layout instead of NCHW (oneDNN's
 * nChw8c / nChw16c: [n, c/B, h, w, B], B = block, c a multiple of B), as the CPU backend keeps
 * activations between ops that can read them so, rather than converting them to and from NCHW
 * around every convolution. nn_f32 and nn_tensor_read convert data to NCHW in place the first
 * time it is read (blocked is then 0 and stays 0). */
typedef struct nn_blk {
    int block;          /* 8 or 16 */
    int blocked;        /* 1: data is in the blocked layout */
    struct nn_ctx *ctx; /* the context whose arena gives the conversion its scratch */
} nn_blk;

typedef struct nn_tensor {
    int n, c, h, w;         /* shape, NCHW */
    nn_dtype dtype;         /* NN_F32, or NN_I32 for labels */
    void *data;             /* [n, c, h, w] in backend memory (float* for NN_F32); read it */
                            /* through nn_f32 / nn_tensor_read, which resolve blk */
    nn_blk *blk;            /* data in a channel-blocked layout while blk->blocked; NULL: NCHW */
    float *grad;            /* [n, c, h, w] gradient, NULL when none was computed */
    int grad_valid;         /* 0: grad's contents are undefined and mean zeros */
    int requires_grad;      /* set by ops/params; change with nn_requires_grad only */
    nn_node *node;          /* the tape node that produced it, NULL for leaves */
    nn_param *param;        /* the parameter it belongs to, NULL otherwise */
    const nn_backend *be;   /* whose memory data/grad live in */
    int lab_known;          /* NN_I32 from the host: lab_lo..lab_hi is the range of its values */
    int32_t lab_lo, lab_hi; /* (device backends check label ranges without a download) */
} nn_tensor;

static inline size_t nn_numel(const nn_tensor *t)
{
    return (size_t)t->n * (size_t)t->c * (size_t)t->h * (size_t)t->w;
}
/* is t's data in a channel-blocked layout (nn_blk) */
static inline int nn_is_blocked(const nn_tensor *t) { return t->blk && t->blk->blocked; }
/* the tensor's NCHW values (converted in place first when blocked; should that fail, out of
 * memory, the tensor stays blocked and the error is its context's) */
float *nn_f32(const nn_tensor *t);

typedef struct nn_ctx nn_ctx;

/* A context: one backend, one arena for activations, one tape, the grad-enabled flag and
 * the sticky error. One per training loop or per inference request; not thread-safe (use
 * one per thread). `arena_bytes` = initial arena size (0: default). NULL on error. */
nn_ctx *nn_ctx_new(const nn_backend *be, size_t arena_bytes, char *err, size_t errlen);
/* Forget the tape and every tensor allocated from the arena (keeps the memory). Leaf
 * gradients of arena tensors go too; parameter gradients are kept. Clears the error. */
void nn_ctx_reset(nn_ctx *ctx);
void nn_ctx_free(nn_ctx *ctx);
const nn_backend *nn_ctx_backend(const nn_ctx *ctx);
nn_arena *nn_ctx_arena(nn_ctx *ctx);
/* Enable (1) or disable (0) recording; returns the previous setting. Default: enabled.
 * Disabled = no_grad mode: ops compute only, nothing is recorded or kept for backward. */
int nn_ctx_set_grad_enabled(nn_ctx *ctx, int enabled);
int nn_ctx_grad_enabled(const nn_ctx *ctx);
/* The first error since the last reset, or NULL. */
const char *nn_ctx_error(const nn_ctx *ctx);
/* Record an error (printf-style) unless one is already recorded. Returns NULL. */
void *nn_ctx_fail(nn_ctx *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Number of nodes on the tape (tests: no_grad records nothing). */
size_t nn_ctx_tape_len(const nn_ctx *ctx);
/* Convolution FLOPs (2 per multiply-add; forward, data and weight gradients as run) done
 * through this context since it was made; the other ops count 0. */
double nn_ctx_flops(const nn_ctx *ctx);

/* Scopes for inference memory: the arena frees nothing until nn_ctx_reset, so a no_grad
 * forward keeps every intermediate tensor alive. Wrap each block of a network:
 *     nn_scope s = nn_ctx_scope(ctx);
 *     y = block(ctx, x);                  (x and older tensors stay valid)
 *     y = nn_ctx_scope_end(ctx, s, y);    (everything made inside is freed but y, which
 *                                          moves; use the returned pointer)
 * Only for code that recorded nothing inside the scope (no_grad mode, or nothing required
 * a gradient): otherwise nn_ctx_scope_end fails (NULL, error recorded). keep may be NULL. */
typedef struct {
    nn_arena_mark mark;
    size_t tape;
} nn_scope;
nn_scope nn_ctx_scope(nn_ctx *ctx);
nn_tensor *nn_ctx_scope_end(nn_ctx *ctx, nn_scope s, nn_tensor *keep);

/* A new uninitialised float tensor [n, c, h, w] in the context's arena. */
nn_tensor *nn_tensor_new(nn_ctx *ctx, int n, int c, int h, int w);
nn_tensor *nn_tensor_zeros(nn_ctx *ctx, int n, int c, int h, int w);
/* A new float tensor holding a copy of host[n*c*h*w]. */
nn_tensor *nn_tensor_from(nn_ctx *ctx, int n, int c, int h, int w, const float *host);
/* Class labels [n, 1, h, w], int32, a copy of host[n*h*w] (values 0..classes-1). */
nn_tensor *nn_labels_from(nn_ctx *ctx, int n, int h, int w, const int32_t *host);
/* Copy host data into / out of a tensor (numel elements of its dtype). 0 or -1. */
int nn_tensor_write(nn_tensor *t, const void *host);
int nn_tensor_read(const nn_tensor *t, void *host);
/* The value of a 1x1x1x1 tensor (a loss), NAN for NULL. */
float nn_scalar(const nn_tensor *t);
/* Mark a leaf tensor as requiring a gradient (tests, inputs whose gradient is wanted).
 * After nn_backward, t->grad holds it (in the arena). Returns t. */
nn_tensor *nn_requires_grad(nn_tensor *t);
/* A tensor sharing t's data with no history: gradients stop here (PyTorch's .detach()). */
nn_tensor *nn_detach(nn_ctx *ctx, nn_tensor *t);

/* ======================================================================================
 * Parameters and buffers: a named registry per network
 * ====================================================================================== */

typedef enum { NN_PARAM = 0, NN_BUFFER = 1 } nn_param_kind;

struct nn_param {
    char name[96];          /* e.g. "enc1.conv1.weight", PyTorch state_dict style */
    nn_param_kind kind;     /* NN_PARAM: trained by Adam; NN_BUFFER: saved, not trained */
    int frozen;             /* 1: no gradient, not stepped (see nn_params_set_frozen) */
    nn_tensor t;            /* the value; t.grad is persistent (NN_PARAM only) */
    int ever_grad;          /* 1 once a gradient has been accumulated (Adam skips others,
                                like PyTorch skips params whose .grad is None) */
    float *adam_m, *adam_v; /* Adam moments (owned by the registry, NULL until used) */
    int64_t adam_step;      /* Adam steps taken on this parameter */
};

typedef struct nn_params nn_params;

/* A new empty registry whose memory comes from backend `be`. NULL on error. */
nn_params *nn_params_new(const nn_backend *be, char *err, size_t errlen);
void nn_params_free(nn_params *p);
/* Add a parameter (requires a gradient unless frozen) or a buffer, zero-filled, shape
 * [n, c, h, w] (bias: [c,1,1,1] stored as n=c, c=h=w=1; see each op for the shape it wants).
 * Names must be unique. Returns the tensor (owned by the registry), NULL on error. */
nn_tensor *nn_param_add(nn_params *p, const char *name, nn_param_kind kind, int n, int c, int h,
                        int w, char *err, size_t errlen);
int nn_params_count(const nn_params *p);
nn_param *nn_params_at(nn_params *p, int i); /* in insertion order */
nn_param *nn_params_find(nn_params *p, const char *name);
size_t nn_params_numel(const nn_params *p, nn_param_kind kind);
/* Freeze (1) or unfreeze (0) every NN_PARAM of the registry. */
void nn_params_set_frozen(nn_params *p, int frozen);
void nn_param_set_frozen(nn_param *q, int frozen);
/* Zero every parameter gradient (PyTorch's zero_grad(set_to_none=False)). Lazy: it sets
 * grad_valid = 0, which means "all zeros"; the next backward overwrites instead of adding. */
void nn_params_zero_grad(nn_params *p);

/* Initialisation helpers (host side, then written to the backend). */
void nn_init_uniform(nn_tensor *t, float lo, float hi, nn_rng *r);
void nn_init_normal(nn_tensor *t, float mean, float std, nn_rng *r);
void nn_init_const(nn_tensor *t, float v);
/* PyTorch's default for Conv2d/ConvTranspose2d weights and biases: U(-b, b) with
 * b = 1/sqrt(fan_in), fan_in = size(1)*kh*kw of the weight as stored (for transposed
 * weights [in, out, kh, kw] PyTorch uses out*kh*kw; pass the weight as stored). */
void nn_init_torch_conv(nn_tensor *w, nn_tensor *b, nn_rng *r);

/* ======================================================================================
 * Ops. All return a new arena tensor or NULL (error recorded in ctx).
 * Shapes: x [N, C, H, W]. Weights of conv2d: [OC, IC, KH, KW]; of conv_transpose2d:
 * [IC, OC, KH, KW] (PyTorch's layouts); biases [OC, 1, 1, 1] (any shape with OC elements).
 * ====================================================================================== */

/* 2-D convolution (cross-correlation), symmetric stride/padding/dilation, zero padding.
 * b may be NULL. Output [N, OC, (H + 2p - d(KH-1) - 1)/s + 1, likewise W]. */
nn_tensor *nn_conv2d(nn_ctx *ctx, nn_tensor *x, nn_tensor *w, nn_tensor *b, int stride, int pad,
                     int dilation);
/* Transposed convolution (PyTorch ConvTranspose2d, dilation 1): output
 * [N, OC, (H-1)s - 2p + KH + out_pad, likewise W]; out_pad < stride. b may be NULL. */
nn_tensor *nn_conv_transpose2d(nn_ctx *ctx, nn_tensor *x, nn_tensor *w, nn_tensor *b, int stride,
                               int pad, int out_pad);
/* Activations for fused ops. */
typedef enum {
    NN_ACT_NONE = 0,
    NN_ACT_RELU,
    NN_ACT_LEAKY_RELU,
    NN_ACT_TANH,
    NN_ACT_SIGMOID
} nn_act;
/* act(bn_eval(conv2d(x, w, b))): a convolution, then optionally batch norm with its running
 * statistics (eval mode; pass rmean == NULL for none: gamma/beta may then be NULL too), then
 * an activation (slope: LeakyReLU's). Always equal to composing nn_conv2d, nn_batch_norm
 * (training = 0, eps) and the activation op. When a gradient is needed it is exactly that
 * composition on the tape; otherwise (inference) the CPU runs it as one oneDNN primitive,
 * the batch norm folded into the weights and bias and the activation a post-op. */
nn_tensor *nn_conv2d_bn_act(nn_ctx *ctx, nn_tensor *x, nn_tensor *w, nn_tensor *b, int stride,
                            int pad, int dilation, nn_tensor *gamma, nn_tensor *beta,
                            nn_tensor *rmean, nn_tensor *rvar, float eps, nn_act act, float slope);
/* Padding (PyTorch F.pad order): left, right, top, bottom. Reflection needs pad < size. */
nn_tensor *nn_pad_reflect(nn_ctx *ctx, nn_tensor *x, int left, int right, int top, int bottom);
nn_tensor *nn_pad_zero(nn_ctx *ctx, nn_tensor *x, int left, int right, int top, int bottom);
/* Instance norm over (H, W) per sample and channel, biased variance, like
 * InstanceNorm2d(track_running_stats=False). gamma, beta: C elements or both NULL. */
nn_tensor *nn_instance_norm(nn_ctx *ctx, nn_tensor *x, nn_tensor *gamma, nn_tensor *beta,
                            float eps);
/* Batch norm over (N, H, W) per channel, like BatchNorm2d. gamma/beta: C elements or both
 * NULL. rmean/rvar: C-element buffers (running statistics).
 * training = 1: normalise with the batch mean and biased variance and update, in the
 *   forward pass, rmean = (1-m) rmean + m mean, rvar = (1-m) rvar + m var_unbiased
 *   (PyTorch: momentum m = 0.1, unbiased var uses N*H*W-1); momentum 0 leaves rmean/rvar
 *   untouched (batch statistics without tracking).
 * training = 0: normalise with rmean/rvar (eval); gradients still flow to x, gamma, beta. */
nn_tensor *nn_batch_norm(nn_ctx *ctx, nn_tensor *x, nn_tensor *gamma, nn_tensor *beta,
                         nn_tensor *rmean, nn_tensor *rvar, int training, float momentum,
                         float eps);
/* nn_relu of nn_instance_norm / nn_batch_norm as one op: the same values and gradients as
 * the composition, without the normalised tensor in between (one pass over the data fewer
 * each way). */
nn_tensor *nn_instance_norm_relu(nn_ctx *ctx, nn_tensor *x, nn_tensor *gamma, nn_tensor *beta,
                                 float eps);
nn_tensor *nn_batch_norm_relu(nn_ctx *ctx, nn_tensor *x, nn_tensor *gamma, nn_tensor *beta,
                              nn_tensor *rmean, nn_tensor *rvar, int training, float momentum,
                              float eps);
nn_tensor *nn_relu(nn_ctx *ctx, nn_tensor *x);
/* nn_relu(nn_add(a, b)) as one op (the same values and gradients) */
nn_tensor *nn_add_relu(nn_ctx *ctx, nn_tensor *a, nn_tensor *b);
nn_tensor *nn_leaky_relu(nn_ctx *ctx, nn_tensor *x, float slope);
nn_tensor *nn_tanh(nn_ctx *ctx, nn_tensor *x);
nn_tensor *nn_sigmoid(nn_ctx *ctx, nn_tensor *x);
/* Softmax over the channel dimension at each pixel. */
nn_tensor *nn_softmax(nn_ctx *ctx, nn_tensor *x);
/* Max pooling, window k, stride s, no padding, floor mode. Ties: the first maximum in
 * row-major window order gets the gradient (as PyTorch). */
nn_tensor *nn_max_pool2d(nn_ctx *ctx, nn_tensor *x, int k, int s);
/* Concatenate k >= 1 tensors (k <= NN_MAX_IN) with equal N, H, W over channels. */
nn_tensor *nn_concat(nn_ctx *ctx, nn_tensor **xs, int k);
static inline nn_tensor *nn_concat2(nn_ctx *ctx, nn_tensor *a, nn_tensor *b)
{
    nn_tensor *xs[2] = {a, b};
    return nn_concat(ctx, xs, 2);
}
/* a + b, same shape. */
nn_tensor *nn_add(nn_ctx *ctx, nn_tensor *a, nn_tensor *b);
/* alpha * x. */
nn_tensor *nn_scale(nn_ctx *ctx, nn_tensor *x, float alpha);
/* Bilinear resize to [oh, ow], align_corners=False, like F.interpolate (PyTorch's
 * source index (dst + 0.5) * in/out - 0.5, clamped at 0). */
nn_tensor *nn_resize_bilinear(nn_ctx *ctx, nn_tensor *x, int oh, int ow);
/* Nearest resize to [oh, ow] like F.interpolate(mode='nearest'):
 * src = min(floor(dst * in/out), in-1). */
nn_tensor *nn_resize_nearest(nn_ctx *ctx, nn_tensor *x, int oh, int ow);

/* ======================================================================================
 * Losses: each returns a 1x1x1x1 tensor.
 * ====================================================================================== */

/* Multi-class cross-entropy of logits [N, K, H, W] against labels [N, 1, H, W] (int32,
 * 0..K-1), log-softmax inside. weights: K class weights (a tensor with K elements) or
 * NULL. Like F.cross_entropy(reduction='mean'):
 *   L = sum_i w[y_i] * -log softmax(x_i)[y_i] / sum_i w[y_i]   (w = 1 without weights). */
nn_tensor *nn_loss_cross_entropy(nn_ctx *ctx, nn_tensor *logits, nn_tensor *labels,
                                 nn_tensor *weights);
/* Soft Dice over classes of probabilities p [N, K, H, W] against labels [N, 1, H, W]
 * (one-hot g), sums over the whole batch (N, H, W):
 *   L = 1 - 1/|C| * sum_{c in C} (2 sum_i p_ic g_ic + smooth) / (sum_i p_ic + sum_i g_ic + smooth)
 * with C = {first_class, ..., K-1} (first_class 0 includes background, 1 excludes it).
 * The models use smooth = 1, first_class = 0. */
nn_tensor *nn_loss_dice(nn_ctx *ctx, nn_tensor *probs, nn_tensor *labels, int first_class,
                        float smooth);
/* Distillation cross-entropy (docs/method.md Eq. 7) of a probability map p against a soft target
 * probability map t (same shape [N, K, H, W]); t is treated as detached (no gradient):
 *   L = -1/(N H W) * sum_{n,h,w} sum_c t_c log(max(p_c, NN_KD_EPS)). */
#define NN_KD_EPS 1e-7f
nn_tensor *nn_loss_kd(nn_ctx *ctx, nn_tensor *target, nn_tensor *probs);
/* Mean absolute error, mean over all elements; a and b may both require gradients
 * (sign(0) = 0 as PyTorch). */
nn_tensor *nn_loss_l1(nn_ctx *ctx, nn_tensor *a, nn_tensor *b);
/* Least-squares GAN loss: mean over all elements of (x - target)^2 (target 1 for real,
 * 0 for fake). */
nn_tensor *nn_loss_lsgan(nn_ctx *ctx, nn_tensor *x, float target);

/* Per-pixel argmax over channels of x [N, K, H, W] into out[N*H*W] (host); no tape. */
int nn_argmax_channels(nn_ctx *ctx, const nn_tensor *x, int32_t *out);

/* ======================================================================================
 * Autograd
 * ====================================================================================== */

/* Backpropagate from a 1x1x1x1 `loss` (seed dL/dloss = 1): every tensor on the tape that
 * loss depends on gets its gradient; leaves (unfrozen parameters, nn_requires_grad tensors)
 * accumulate. 0 on success; -1 (message in err and in the context) when loss is not a
 * scalar, does not require a gradient, or a backward kernel fails. */
int nn_backward(nn_ctx *ctx, nn_tensor *loss, char *err, size_t errlen);
/* The same from any tensor `out` that requires a gradient, seeded with the upstream
 * gradient gy[numel(out)] (host memory): computes the gradient of sum(out * gy). */
int nn_backward_from(nn_ctx *ctx, nn_tensor *out, const float *gy, char *err, size_t errlen);

/* ======================================================================================
 * Optimiser and schedules
 * ====================================================================================== */

typedef struct {
    float lr;           /* learning rate (PyTorch default 1e-3; the paper: 2e-4) */
    float beta1, beta2; /* (0.9, 0.999) by default; CycleGAN: (0.5, 0.999) */
    float eps;          /* 1e-8 */
    float weight_decay; /* L2 added to the gradient, as torch.optim.Adam; 0 default */
} nn_adam_cfg;
#define NN_ADAM_DEFAULT ((nn_adam_cfg){1e-3f, 0.9f, 0.999f, 1e-8f, 0.0f})

typedef struct nn_adam nn_adam;
/* An Adam optimiser over the NN_PARAMs of one registry (torch.optim.Adam, amsgrad off):
 *   g += wd * p; m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
 *   p -= lr * (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps)       (t counted per parameter)
 * Frozen parameters and parameters that never received a gradient are skipped. */
nn_adam *nn_adam_new(nn_params *p, nn_adam_cfg cfg, char *err, size_t errlen);
int nn_adam_step(nn_adam *opt, char *err, size_t errlen);
void nn_adam_set_lr(nn_adam *opt, float lr);
float nn_adam_lr(const nn_adam *opt);
void nn_adam_free(nn_adam *opt);

/* Step decay: base * gamma^floor(epoch / every) (the paper: gamma 0.9, every 2 epochs). */
float nn_lr_step_decay(float base, int epoch, int every, float gamma);
/* Linear decay (CycleGAN): base for epochs [0, n_const), then linearly towards 0 over
 * n_decay epochs: base * (1 - max(0, epoch + 1 - n_const) / (n_decay + 1)). */
float nn_lr_linear_decay(float base, int epoch, int n_const, int n_decay);

#ifdef __cplusplus
}
#endif
#endif
