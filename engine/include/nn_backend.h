/* nn_backend.h: what a backend implements (CPU: engine/nn/cpu/, CUDA: kernels/).
 * Model code never includes this header.
 *
 * The core (engine/nn/nn_core.c) checks shapes, allocates each op's output from the
 * context's arena, builds an nn_node and calls be->forward(ctx, node). When the op is
 * recorded, the node stays on the tape and nn_backward later calls be->backward(ctx, node)
 * for it (in reverse order). One switch over nn_op per backend and direction (ggml style).
 */
#ifndef MKDSEG_NN_BACKEND_H
#define MKDSEG_NN_BACKEND_H

#include "nn.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One op application. in[] and out are arena tensors or parameters; optional inputs are
 * NULL. Integer/float arguments per op:
 *   CONV2D:          i[0] stride, i[1] pad, i[2] dilation
 *   CONV_T2D:        i[0] stride, i[1] pad, i[2] out_pad
 *   PAD_*:           i[0..3] left, right, top, bottom
 *   INSTANCE_NORM:   f[0] eps
 *   BATCH_NORM:      i[0] training, f[0] momentum, f[1] eps
 *   LEAKY_RELU:      f[0] slope
 *   MAX_POOL:        i[0] k, i[1] s
 *   SCALE:           f[0] alpha
 *   LOSS_DICE:       i[0] first_class, f[0] smooth
 *   LOSS_LSGAN:      f[0] target
 *   CONV2D_FUSED:    i[0..2] as CONV2D, i[3] nn_act, f[0] bn eps, f[1] slope
 * saved: whatever the forward kept for the backward (arena memory, backend-defined). */
struct nn_node {
    nn_op op;
    int nin;
    nn_tensor *in[NN_MAX_IN];
    nn_tensor *out;
    int i[8];
    float f[4];
    void *saved;
    int recorded; /* 1: on the tape (forward may skip saving when 0) */
};

struct nn_backend {
    const char *name;
    /* Memory for arenas and parameters. alloc returns 64-byte aligned memory or NULL. */
    void *(*mem_alloc)(size_t bytes);
    void (*mem_free)(void *p);
    void (*mem_upload)(void *dst, const void *host, size_t bytes);
    void (*mem_download)(void *host, const void *src, size_t bytes);
    void (*mem_zero)(void *dst, size_t bytes);
    /* Copy within backend memory; the ranges may overlap (memmove). */
    void (*mem_move)(void *dst, const void *src, size_t bytes);
    /* Compute node->out from node->in. 0, or -1 after nn_ctx_fail(). */
    int (*forward)(nn_ctx *ctx, nn_node *node);
    /* Given node->out->grad (valid), accumulate into the gradient of every input that
     * requires one, through nn_grad_acquire(). 0, or -1 after nn_ctx_fail(). */
    int (*backward)(nn_ctx *ctx, nn_node *node);
    /* One Adam step over the nq parameters qs (already filtered: unfrozen NN_PARAMs that
     * have received a gradient; moments allocated and zeroed, adam_step already
     * incremented). Formula in nn.h (nn_adam_new). 0 or -1. */
    int (*adam_step)(nn_param **qs, int nq, const nn_adam_cfg *cfg);
    /* Argmax over channels into host memory. */
    int (*argmax)(nn_ctx *ctx, const nn_tensor *x, int32_t *out);
    /* Release per-context state (primitive caches); may be NULL. */
    void (*ctx_free)(nn_ctx *ctx);
    /* Convert a blocked tensor's data to NCHW in place (nn_blk in nn.h): 0, or -1 (the data
     * left blocked, the error in its context). NULL for a backend that never makes one. */
    int (*blk_sync)(const nn_tensor *t);
};

/* For backends: the gradient buffer of t to write into during a backward call.
 * Returns its pointer and sets *accumulate: 0 = the buffer holds no valid data and the
 * caller must overwrite every element; 1 = the caller must add to it. Marks the gradient
 * valid. NULL (error recorded) when out of memory. Call only for t->requires_grad. */
float *nn_grad_acquire(nn_ctx *ctx, nn_tensor *t, int *accumulate);
/* Scratch memory from the context's arena (64-byte aligned, uninitialised). */
void *nn_ctx_scratch(nn_ctx *ctx, size_t bytes);
/* Per-context backend state slot (the CPU backend keeps its oneDNN engine/cache here). */
void **nn_ctx_backend_state(nn_ctx *ctx);

#ifdef __cplusplus
}
#endif
#endif
