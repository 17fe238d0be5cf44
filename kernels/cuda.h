/* cuda.h: the CUDA backend (kernels/ *.cu files), the twin of engine/nn/cpu/.
 *
 * The C part (extern "C") is what the engine sees: the backend table and device queries.
 * The C++ part (nvcc only) is the backend's internal interface, one function per op family
 * and direction, mirroring engine/nn/cpu/cpu.h; each returns 0, or -1 after recording an
 * error with nn_ctx_fail.
 *
 * Memory: tensors, gradients, Adam moments and every op's saved data live in device memory
 * (cudaMalloc; no managed memory). Host code never dereferences them: copies happen only
 * at the API boundary (nn_tensor_write/read, nn_backward_from's seed, argmax). Tensor
 * structs and tape nodes are host records from nn_ctx_meta (a host arena beside the
 * device arena). Every kernel and cuDNN call is issued on the legacy default stream, so
 * the order of ops is the order of calls and cudaMemcpy to the host waits for them. */
#ifndef MKDSEG_KERNELS_CUDA_H
#define MKDSEG_KERNELS_CUDA_H

#include "nn_backend.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The CUDA backend table (always returned; check nn_cuda_device_count before use). */
const nn_backend *nn_backend_cuda(void);
/* Number of CUDA devices usable by this process (0 without a driver or a GPU). */
int nn_cuda_device_count(void);
/* "NVIDIA H100 80GB HBM3, cc 9.0, cuDNN 91900" or a reason there is none; a static
 * string. */
const char *nn_cuda_device_describe(void);
/* MKDSEG_CUDA_PROFILE=1: forget what the profile holds (e.g. after a warm-up). */
void nn_cuda_profile_reset(void);
/* Host memory for records (engine/nn/nn_core.c; see nn_internal.h). */
void *nn_ctx_meta(nn_ctx *ctx, size_t bytes);

#ifdef __cplusplus
}

#include <cuda_runtime.h>
#include <cudnn.h>

/* ---- shared helpers (cuda_backend.cu) ------------------------------------------------ */

/* Per-context state (nn_ctx_backend_state): the cuDNN handle, the convolution cache and
 * its workspace. Created on first use; NULL after recording an error. */
struct cuda_conv_cache;
typedef struct {
    cudnnHandle_t dnn;
    struct cuda_conv_cache *conv;
    void *ws;                /* cuDNN workspace (cudaMalloc), ws_bytes long */
    size_t ws_bytes;
} cuda_state;
cuda_state *cuda_state_get(nn_ctx *ctx);

/* After kernel launches: -1 with the error recorded when a launch failed. */
int cuda_check(nn_ctx *ctx, const char *what);
/* dst (from nn_grad_acquire) = src when !acc, += src when acc; n floats, device memory. */
int cuda_grad_store(nn_ctx *ctx, float *dst, const float *src, size_t n, int acc);
/* Launch geometry for n elements (one thread each, grid capped; kernels grid-stride). */
static inline unsigned cuda_blocks(size_t n)
{
    size_t b = (n + 255) / 256;
    return (unsigned)(b < 1 ? 1 : b > 65535u * 16u ? 65535u * 16u : b);
}
#define CUDA_THREADS 256
/* Grid-stride loop over i < n (size_t). */
#define CUDA_FOR(i, n)                                                              \
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < (size_t)(n); \
         i += (size_t)blockDim.x * gridDim.x)

/* ---- families ---------------------------------------------------------------------- */

/* cuda_conv.cu: cuDNN convolutions and transposed convolutions (algorithms per shape). */
int  cuda_conv_fwd(nn_ctx *ctx, nn_node *nd);
int  cuda_conv_bwd(nn_ctx *ctx, nn_node *nd);
void cuda_conv_cache_free(struct cuda_conv_cache *c);

/* cuda_norm.cu */
int cuda_instance_norm_fwd(nn_ctx *ctx, nn_node *nd);
int cuda_instance_norm_bwd(nn_ctx *ctx, nn_node *nd);
int cuda_batch_norm_fwd(nn_ctx *ctx, nn_node *nd);
int cuda_batch_norm_bwd(nn_ctx *ctx, nn_node *nd);

/* cuda_eltwise.cu: activations, softmax, add, scale; and an in-place activation for the
 * fused inference convolution. */
int cuda_eltwise_fwd(nn_ctx *ctx, nn_node *nd);
int cuda_eltwise_bwd(nn_ctx *ctx, nn_node *nd);
int cuda_act_inplace(nn_ctx *ctx, float *y, size_t n, int act, float slope);
/* y = act(y + b[c]) over [.., C, hw] planes in one pass (b may be NULL: act alone). */
int cuda_bias_act_inplace(nn_ctx *ctx, float *y, size_t n, size_t hw, int C, const float *b,
                          int act, float slope);

/* cuda_shape.cu: padding, pooling, concat, resize */
int cuda_shape_fwd(nn_ctx *ctx, nn_node *nd);
int cuda_shape_bwd(nn_ctx *ctx, nn_node *nd);

/* cuda_loss.cu */
int cuda_loss_fwd(nn_ctx *ctx, nn_node *nd);
int cuda_loss_bwd(nn_ctx *ctx, nn_node *nd);
/* Argmax over channels into host memory. */
int cuda_argmax(nn_ctx *ctx, const nn_tensor *x, int32_t *out);

/* cuda_adam.cu: one fused kernel over every parameter. */
int cuda_adam(nn_param **qs, int nq, const nn_adam_cfg *cfg);

#endif /* __cplusplus */
#endif
