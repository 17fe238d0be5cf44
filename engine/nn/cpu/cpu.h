/* cpu.h: the CPU backend's internal interface (one function per op family and direction).
 * Each returns 0, or -1 after recording an error with nn_ctx_fail. */
#ifndef MKDSEG_NN_CPU_H
#define MKDSEG_NN_CPU_H

#include "nn_backend.h"

#include <stdio.h>

/* cpu_backend.c: may mkdseg's own kernels use AVX-512 (AVX-512F in cpuid, and MKDSEG_CPU_ISA
 * not avx2); read once. Kernels with an AVX-512 form take it when this is 1, else AVX2. */
int cpu_isa_avx512(void);

/* cpu_par.c: should a loop over about n floats run on the thread team (OpenMP if clause)?
 * No with one thread; with more, above a size set by the measured cost of a parallel region. */
int cpu_par_ok(size_t n);
/* that measured cost, in microseconds (the least of 9 empty regions on two threads) */
double cpu_par_region_us(void);

/* cpu_blk.c: activations in oneDNN's channel-blocked layout between ops (nn_blk). */
int cpu_blk_enabled(void); /* MKDSEG_CPU_LAYOUT is not plain (read once) */
/* may node nd give its output t a blocked form of this block size (unrecorded, enabled, channels
 * a whole number of blocks) */
int cpu_blk_can(const nn_node *nd, const nn_tensor *t, int block);
/* mark t's data blocked (it is to be written so); returns t->data, NULL after an error */
float *cpu_blk_attach(nn_ctx *ctx, nn_tensor *t, int block);
int cpu_blk_sync(const nn_tensor *t); /* t->data to NCHW in place (the backend's blk_sync) */
/* a blocked t's values in NCHW in arena scratch, t left blocked; NULL when out of memory */
const float *cpu_blk_nchw_copy(nn_ctx *ctx, const nn_tensor *t);
/* the op on blocked inputs with a blocked output: 1 done, 0 not applicable (nothing done: the
 * caller runs the NCHW kernel), -1 error */
int cpu_blk_add(nn_ctx *ctx, nn_node *nd);
/* cpu_eltwise.c: y = a + b, then max(y, 0) when relu (NCHW, or two tensors blocked alike) */
void cpu_add_fwd(const float *a, const float *b, float *y, size_t n, int relu);
int cpu_blk_max_pool(nn_ctx *ctx, nn_node *nd);
int cpu_blk_concat(nn_ctx *ctx, nn_node *nd);

/* cpu_conv.c: oneDNN convolutions and transposed convolutions (primitive cache per shape). */
int cpu_conv_fwd(nn_ctx *ctx, nn_node *nd);
int cpu_conv_bwd(nn_ctx *ctx, nn_node *nd);
void cpu_conv_state_free(nn_ctx *ctx);

/* cpu_conv_direct.c: row kernels for narrow convolutions (one input or output channel, or a few
 * channels at stride 1) that oneDNN's channel-blocked kernels run slowly; see the file for the
 * shapes. cpu_conv_direct512.c: their AVX-512 twins, taken when cpu_isa_avx512. */
/* may pass (0 forward, 1 data gradient, 2 weight gradient) run here; strided convolutions from
 * one input channel: both gradients */
int cpu_direct_conv_ok(int transposed, int IC, int OC, int KH, int KW, int stride, int dil, int pad,
                       int pass);
/* does the weight gradient take the tiled multi-channel kernel (cpu_direct_conv_bwd_weights_mc) */
int cpu_direct_wgrad_tiled(int IC, int OC, int KH, int KW, int stride);
/* stride 1: x [N, C, Hp, Wp] padded, w [O, C, KH, KW] -> y [N, O, Hp-KH+1, Wp-KW+1] */
void cpu_direct_conv_fwd(const float *x, int N, int C, int Hp, int Wp, const float *w, int O,
                         int KH, int KW, const float *b, float *y);
/* the data gradient gx [N, 1, H, W] of a strided convolution from one input channel, w [O, 1,
 * KH, KW], gy [N, O, OH, OW]; scratch of cpu_direct_bwd_data_strided_size floats */
size_t cpu_direct_bwd_data_strided_size(int N, int O, int OH, int OW, int KH, int KW, int stride,
                                        int H, int W);
void cpu_direct_conv_bwd_data_strided(const float *gy, int N, int O, int OH, int OW, const float *w,
                                      int KH, int KW, int stride, int pad, float *gx, int H, int W,
                                      float *scratch);
/* x in cpu_direct_pad_to's phase layout [N, C, stride, Hp, Wq]; gy [N, O, OH, OW] */
void cpu_direct_conv_bwd_weights(const float *x, int N, int C, int Hp, int Wq, int stride,
                                 const float *gy, int O, int OH, int OW, int KH, int KW, float *gw,
                                 float *gb);
/* AVX-512 (cpu_conv_direct512.c): the forward of cpu_direct_conv_fwd; the stride-1 weight
 * gradient of x [N, C, Hp, Wp] padded, gy [N, O, OH, OW], any channel counts, KW <= 8, with
 * `zero` OW zeros */
void cpu_direct512_conv_fwd(const float *x, int N, int C, int Hp, int Wp, const float *w, int O,
                            int KH, int KW, const float *b, float *y);
void cpu_direct512_conv_bwd_weights(const float *x, int N, int C, int Hp, int Wp, const float *gy,
                                    int O, int OH, int OW, int KH, int KW, const float *zero,
                                    float *gw, float *gb);
/* x [N, C, H, W] zero-padded by ph, pw into xp [N, C, stride, H+2ph, Wq] (column phases: phase
 * p holds the padded columns p, p + stride, ...; zeros beyond), Wq >= ceil((W+2pw)/stride);
 * stride 1: the plain padded tensor with rows Wq long */
void cpu_direct_pad_to(const float *x, int N, int C, int H, int W, int ph, int pw, int stride,
                       int Wq, float *xp);
/* multi-channel weight gradient (cpu_direct_wgrad_tiled shapes): x in cpu_direct_pad_to's
 * layout with Wq >= OWp + (KW-1)/stride, gp the output gradient packed by cpu_direct_pack_tiles
 * -> gw [O, C, KH, KW] (overwritten) */
void cpu_direct_conv_bwd_weights_mc(const float *x, int N, int C, int Hp, int Wq, int stride,
                                    const float *gp, int O, int OH, int OWp, int KH, int KW,
                                    float *gw);
/* gy [N, O, OH, OW] -> gp [N, ceil(O/3), OH, 3, OWp]: each tile of 3 output channels' rows
 * side by side, zero-padded to OWp (a multiple of 8) and with zero rows past O */
void cpu_direct_pack_tiles(const float *gy, int N, int O, int OH, int OW, int OWp, float *gp);
/* the number of floats cpu_direct_pack_tiles writes */
size_t cpu_direct_pack_size(int N, int O, int OH, int OWp);
/* gb[o] = sum of gy [N, O, plane] over n and the plane */
void cpu_direct_bias_grad(const float *gy, int N, int O, size_t plane, float *gb);
void cpu_direct_flip_weights(const float *w, int O, int C, int KH, int KW, float *wf);

/* cpu_conv_wino.c: Winograd F(2x2, 3x3) for 3x3 stride-1 convolutions on NCHW (see the file).
 * May a conv2d (its geometry: x [N, IC, H, W], pad) run there? */
int cpu_wino_ok(int transposed, int N, int IC, int H, int W, int OC, int KH, int KW, int stride,
                int dil, int pad);
/* the scratch bytes of cpu_wino_fwd (pass 0; the data gradient is a forward) or
 * cpu_wino_bwd_weights (pass 2) on x [N, C, H, W] padded by pad, O output channels */
size_t cpu_wino_scratch(int pass, int N, int C, int H, int W, int pad, int O, int threads);
/* y [N, O, H + 2 pad - 2, W + 2 pad - 2] = x (*) w [O, C, 3, 3] + b (b may be NULL); any pad */
void cpu_wino_fwd(const float *x, int N, int C, int H, int W, int pad, const float *w, int O,
                  const float *b, float *y, void *scratch, int threads);
/* gw [O, C, 3, 3] (overwritten) = the weight gradient of that forward for output gradient gy */
void cpu_wino_bwd_weights(const float *x, int N, int C, int H, int W, int pad, const float *gy,
                          int O, float *gw, void *scratch, int threads);

/* cpu_conv_gemm.c: convolutions as im2col + dnnl_sgemm products on NCHW (see the file); a
 * transposed convolution runs as the adjoint convolution (cpu_conv.c maps its passes). The
 * geometry of the convolution: x [N, C, H, W], w [O, C, KH, KW], y [N, O, OH, OW]. */
typedef struct {
    int N, C, H, W, O, OH, OW, KH, KW, stride, pad;
} cpu_gemm_geom;
/* may a convolution from IC to OC channels run there */
int cpu_gemm_ok(int IC, int OC, int KH, int KW, int dil);
/* the floats of scratch the three passes need */
size_t cpu_gemm_scratch(const cpu_gemm_geom *g);
/* y = x (*) w (+ b per output channel; b may be NULL) */
void cpu_gemm_conv_fwd(const cpu_gemm_geom *g, const float *x, const float *w, const float *b,
                       float *y, float *scratch);
/* gx (overwritten) = the data gradient for output gradient gy (+ b per input channel: the
 * transposed convolution's bias; NULL for none) */
void cpu_gemm_conv_bwd_data(const cpu_gemm_geom *g, const float *gy, const float *w, const float *b,
                            float *gx, float *scratch);
/* gw (overwritten) = the weight gradient, summed over the images */
void cpu_gemm_conv_bwd_weights(const cpu_gemm_geom *g, const float *x, const float *gy, float *gw,
                               float *scratch);

/* cpu_conv_pick.c: oneDNN, the direct kernels, Winograd or im2col + GEMM, per shape (see the
 * file). */
enum {
    CPU_PATH_AUTO,
    CPU_PATH_ONEDNN,
    CPU_PATH_DIRECT,
    CPU_PATH_WINO,
    CPU_PATH_GEMM
}; /* MKDSEG_CONV_PATH */
enum {
    CPU_IMPL_ONEDNN,
    CPU_IMPL_DIRECT,
    CPU_IMPL_WINO,
    CPU_IMPL_GEMM,
    CPU_IMPL_COUNT
}; /* what runs a pass */
/* a timed choice: a path (CPU_IMPL_*) run by the thread team, or by the calling thread alone
 * (impl + CPU_IMPL_COUNT): with more than one thread, short passes are also timed on one, since
 * waking a sleeping team costs tens of microseconds on some machines (passive OpenMP waiting in
 * a VM) and a small convolution's work is not worth it */
#define CPU_PICK_N (2 * CPU_IMPL_COUNT)
/* a shape's key: cpu_conv.c's 16 geometry values, the pass (0 fwd, 1 bwd data, 2 bwd
 * weights) and the thread count */
#define CPU_PICK_KEY 18
/* MKDSEG_CONV_PATH (auto | onednn | direct | winograd | gemm; MKDSEG_CONV_DIRECT=0 / 1:
 * onednn / direct) */
int cpu_conv_path_from_env(void);
/* the cached choice for key (0 .. CPU_PICK_N - 1), -1 not timed yet */
int cpu_conv_pick_get(const int *key);
/* record the times (ms; < 0: the path cannot run the shape) of key; the fastest path becomes
 * its choice, returned (another thread's when it recorded the key first) */
int cpu_conv_pick_put(const int *key, const double ms[CPU_PICK_N]);
/* the table of choices so far, one line per shape */
void cpu_conv_pick_report(FILE *f);

/* cpu_norm.c */
int cpu_instance_norm_fwd(nn_ctx *ctx, nn_node *nd);
int cpu_instance_norm_bwd(nn_ctx *ctx, nn_node *nd);
int cpu_batch_norm_fwd(nn_ctx *ctx, nn_node *nd);
int cpu_batch_norm_bwd(nn_ctx *ctx, nn_node *nd);

/* cpu_eltwise.c: activations, softmax, add, scale */
int cpu_eltwise_fwd(nn_ctx *ctx, nn_node *nd);
int cpu_eltwise_bwd(nn_ctx *ctx, nn_node *nd);
/* y = act(a) elementwise (nn_act; slope: LeakyReLU's); y may be a. NN_ACT_NONE copies. */
void cpu_act_apply(const float *a, float *y, size_t n, int act, float slope);

/* cpu_shape.c: padding, pooling, concat, resize */
int cpu_shape_fwd(nn_ctx *ctx, nn_node *nd);
int cpu_shape_bwd(nn_ctx *ctx, nn_node *nd);

/* cpu_loss.c */
int cpu_loss_fwd(nn_ctx *ctx, nn_node *nd);
int cpu_loss_bwd(nn_ctx *ctx, nn_node *nd);

/* Gradient helper: dst (acquired with nn_grad_acquire) = src when !acc, += src when acc. */
void cpu_grad_store(float *dst, const float *src, size_t n, int acc);

#endif
