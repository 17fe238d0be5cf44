/* nn_internal.h: declarations shared by the engine/nn/ sources (not a public header). */
#ifndef MKDSEG_NN_INTERNAL_H
#define MKDSEG_NN_INTERNAL_H

#include "nn_backend.h"

/* An arena whose chunks come from alloc/free (a backend's memory). */
nn_arena *nn_arena_new_with(size_t bytes, void *(*alloc)(size_t), void (*fr)(void *));
/* Append a node to the context's tape. 0 or -1 (error recorded). */
int nn_tape_push(nn_ctx *ctx, nn_node *node);
/* A new arena tensor of the given dtype (contents undefined). NULL: error recorded. */
nn_tensor *nn_tensor_alloc(nn_ctx *ctx, int n, int c, int h, int w, nn_dtype dt);

/* Host memory for tensor structs and tape nodes, freed at nn_ctx_reset: the context's
 * arena when the backend's memory is host memory (CPU), else a host arena beside it
 * (kernels/ declares the same function for the CUDA backend's host-side records). */
void *nn_ctx_meta(nn_ctx *ctx, size_t bytes);

/* Run a node's forward (backward = 0) or backward through the context's backend, timing it
 * when $MKDSEG_NN_PROFILE is set (a per-op table goes to stderr at nn_ctx_free). */
int nn_run_node(nn_ctx *ctx, nn_node *nd, int backward);

/* Make the calling thread use nn_get_threads() OpenMP threads. */
void nn_threads_apply(void);

#endif
