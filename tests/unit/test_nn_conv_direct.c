/* test_nn_conv_direct.c: the hand-written convolutions of the CPU backend against a plain
 * double-precision convolution written here: the direct row kernels (one input or one output
 * channel, or a few channels, at stride 1, the weight gradient of strided convolutions from
 * one channel, and the tiled weight gradient of multi-channel 4x4 convolutions:
 * engine/nn/cpu/cpu_conv_direct.c, and their AVX-512 twins in cpu_conv_direct512.c)
 * and Winograd F(2x2, 3x3) (3x3 stride-1 convolutions of 4 or more channels, pad 0 or 1:
 * engine/nn/cpu/cpu_conv_wino.c) and im2col + GEMM (engine/nn/cpu/cpu_conv_gemm.c), each
 * forward and all three gradients, on shapes whose rows are not
 * multiples of the 8-float vector (masked tails) and with the pads the networks use; then the
 * same graph through oneDNN (MKDSEG_CONV_PATH=onednn) and through the timed per-shape choice
 * between them (auto). Tolerance: max |a - ref| <= 1e-4 x
 * max(max |ref|, 1) (float32 sums of up to a few thousand terms). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn.h"
#include "../../engine/nn/cpu/cpu.h"

#define TOL 1e-4

typedef struct {
    int n, c, h, w, o, k, pad, act, stride; /* stride 0 = 1 */
} shape;

static double err_rel(const float *a, const double *ref, size_t n)
{
    double s = 1.0, e = 0;
    for (size_t i = 0; i < n; i++)
        s = fmax(s, fabs(ref[i]));
    for (size_t i = 0; i < n; i++)
        e = fmax(e, fabs(a[i] - ref[i]));
    return e / s;
}

static void fill(float *p, size_t n, nn_rng *r)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (float)(nn_rng_uniform(r) * 2.0 - 1.0);
}

/* One shape: forward (with the fused activation when act) and the gradients of x, w, b for a
 * random output gradient, against the reference, on the path MKDSEG_CONV_PATH forces: "direct"
 * (the kernels of cpu_conv_direct.c wherever they apply), "winograd" (cpu_conv_wino.c wherever
 * it applies), "onednn", or "auto" (the timed per-shape choice of cpu_conv_pick.c, whichever it
 * takes). */
static void check(const shape *s, const char *path)
{
    setenv("MKDSEG_CONV_PATH", path, 1);
    const int st = s->stride ? s->stride : 1;
    const int OH = (s->h + 2 * s->pad - s->k) / st + 1, OW = (s->w + 2 * s->pad - s->k) / st + 1;
    const size_t nx = (size_t)s->n * s->c * s->h * s->w, nw = (size_t)s->o * s->c * s->k * s->k;
    const size_t ny = (size_t)s->n * s->o * OH * OW;
    float *x = malloc(nx * 4), *w = malloc(nw * 4), *b = malloc(s->o * 4), *gy = malloc(ny * 4);
    double *y = calloc(ny, 8), *gx = calloc(nx, 8), *gw = calloc(nw, 8), *gb = calloc(s->o, 8);
    cr_assert(x && w && b && gy && y && gx && gw && gb);
    nn_rng r;
    nn_rng_seed(&r, 7 + s->c * 31 + s->o);
    fill(x, nx, &r);
    fill(w, nw, &r);
    fill(b, s->o, &r);
    fill(gy, ny, &r);
    /* reference: y = b + sum w x, then the activation; gradients with act NONE only */
    for (int n = 0; n < s->n; n++)
        for (int o = 0; o < s->o; o++)
            for (int oh = 0; oh < OH; oh++)
                for (int ow = 0; ow < OW; ow++) {
                    size_t yi = (((size_t)n * s->o + o) * OH + oh) * OW + ow;
                    double acc = b[o];
                    for (int c = 0; c < s->c; c++)
                        for (int kh = 0; kh < s->k; kh++)
                            for (int kw = 0; kw < s->k; kw++) {
                                int ih = oh * st + kh - s->pad, iw = ow * st + kw - s->pad;
                                if (ih < 0 || iw < 0 || ih >= s->h || iw >= s->w)
                                    continue;
                                size_t xi = (((size_t)n * s->c + c) * s->h + ih) * s->w + iw;
                                size_t wi = (((size_t)o * s->c + c) * s->k + kh) * s->k + kw;
                                acc += (double)w[wi] * x[xi];
                                gx[xi] += (double)w[wi] * gy[yi];
                                gw[wi] += (double)x[xi] * gy[yi];
                            }
                    gb[o] += gy[yi];
                    y[yi] = s->act == NN_ACT_TANH                    ? tanh(acc)
                            : s->act == NN_ACT_LEAKY_RELU && acc < 0 ? 0.2 * acc
                                                                     : acc;
                }
    char err[256];
    nn_ctx *ctx = nn_ctx_new(nn_backend_cpu(), 0, err, sizeof err);
    cr_assert(ctx, "%s", err);
    /* with an activation: no gradient, so the fused inference op runs */
    nn_tensor *tx = nn_tensor_from(ctx, s->n, s->c, s->h, s->w, x);
    nn_tensor *tw = nn_tensor_from(ctx, s->o, s->c, s->k, s->k, w);
    nn_tensor *tb = nn_tensor_from(ctx, s->o, 1, 1, 1, b);
    cr_assert(tx && tw && tb);
    if (!s->act) {
        nn_requires_grad(tx);
        nn_requires_grad(tw);
        nn_requires_grad(tb);
    }
    nn_tensor *ty = s->act ? nn_conv2d_bn_act(ctx, tx, tw, tb, st, s->pad, 1, NULL, NULL, NULL,
                                              NULL, 0.0f, (nn_act)s->act, 0.2f)
                           : nn_conv2d(ctx, tx, tw, tb, st, s->pad, 1);
    cr_assert(ty && ty->h == OH && ty->w == OW, "%s",
              nn_ctx_error(ctx) ? nn_ctx_error(ctx) : "shape");
    float *out = malloc(ny * 4);
    cr_assert(nn_tensor_read(ty, out) == 0);
    double e = err_rel(out, y, ny);
    cr_expect(e <= TOL, "%s forward n%d c%d %dx%d o%d k%d p%d act%d: error %.3g", path, s->n, s->c,
              s->h, s->w, s->o, s->k, s->pad, s->act, e);
    if (!s->act) {
        cr_assert(nn_backward_from(ctx, ty, gy, err, sizeof err) == 0, "%s", err);
        cr_expect((e = err_rel(tx->grad, gx, nx)) <= TOL, "%s grad x c%d o%d k%d p%d: %.3g", path,
                  s->c, s->o, s->k, s->pad, e);
        cr_expect((e = err_rel(tw->grad, gw, nw)) <= TOL, "%s grad w c%d o%d k%d p%d: %.3g", path,
                  s->c, s->o, s->k, s->pad, e);
        cr_expect((e = err_rel(tb->grad, gb, s->o)) <= TOL, "%s grad b c%d o%d k%d p%d: %.3g", path,
                  s->c, s->o, s->k, s->pad, e);
    }
    nn_ctx_free(ctx);
    free(out);
    free(x);
    free(w);
    free(b);
    free(gy);
    free(y);
    free(gx);
    free(gw);
    free(gb);
    unsetenv("MKDSEG_CONV_PATH");
}

static const shape shapes[] = {
    {2, 8, 13, 21, 1, 7, 0, 0, 1}, /* generator's last conv after reflection pad (pad 0) */
    {2, 1, 19, 23, 6, 7, 0, 0, 1}, /* generator's first conv */
    {1, 12, 11, 9, 1, 4, 1, 0, 1}, /* discriminator's last conv (4x4, pad 1, even kernel) */
    {3, 1, 16, 40, 5, 3, 1, 0, 1}, /* segmentor's first conv; row 40 = 2 x 16 + 8 */
    {2, 1, 8, 5, 4, 1, 0, 0, 1},   /* 1x1 from one channel */
    {2, 5, 9, 17, 1, 3, 2, 0, 1},  /* pad = kernel - 1 */
    {2, 8, 12, 30, 1, 7, 0, NN_ACT_TANH, 1},
    {1, 1, 10, 12, 3, 3, 1, NN_ACT_LEAKY_RELU, 1},
    /* strided, one input channel: the weight gradient runs on the column phases */
    {1, 1, 22, 38, 5, 4, 1, 0, 2}, /* the discriminator's first conv */
    {2, 1, 13, 27, 3, 3, 0, 0, 2}, /* odd width: phases of unequal length */
    {1, 1, 17, 29, 2, 5, 2, 0, 3},
    /* multi-channel 4x4 weight gradients (the discriminator's), tiles of 3 output channels:
     * 10 and 8 channels leave tiles of 1 and 2; output rows of 10 and 9 are padded to 16 */
    {2, 9, 11, 9, 10, 4, 1, 0, 1},
    {2, 8, 14, 19, 8, 4, 1, 0, 2},
    {1, 16, 8, 8, 9, 4, 1, 0, 2}, /* rows of 4 */
    /* a few channels at stride 1 (the segmentors' top levels; on AVX-512 every pass, on AVX2
     * the forward and data gradient): register blocks of 8, 4, 2 and 1 output channels, rows
     * of 2 vectors of 16 and a tail of 5, of 4 + 1 vectors; the weight gradient's tiles of
     * several kernel rows (one output channel) and of 1x1 and 7x7 kernels */
    {2, 8, 13, 37, 8, 3, 1, 0, 1},
    {1, 16, 9, 20, 9, 3, 1, 0, 1},
    {2, 5, 11, 70, 7, 3, 1, 0, 1},
    {1, 3, 12, 18, 2, 7, 0, 0, 1},
    {2, 6, 10, 17, 11, 1, 0, 0, 1},
    {1, 9, 15, 21, 1, 5, 2, 0, 1},
    {1, 8, 9, 33, 8, 3, 1, NN_ACT_LEAKY_RELU, 1},
};

/* Winograd's shapes: odd output sides (partial tiles), rows of tiles that are and are not
 * multiples of 8 (the row and the gathered transforms), channel counts that leave tails in the
 * product's register blocks (4 output and 3 input channels), pad 0 and 1, tile counts past one
 * chunk, and the networks' own layers (the generators' residual blocks after reflection pad,
 * the segmentors' levels) */
static const shape wino_shapes[] = {
    {4, 32, 18, 18, 32, 3, 0, 0, 1}, /* generator residual block: 16x16 out, rows of 8 tiles */
    {2, 8, 64, 64, 8, 3, 1, 0, 1},   /* segmentor top level: 1024 tiles a plane */
    {2, 16, 32, 32, 8, 3, 1, 0, 1},
    {3, 5, 9, 13, 7, 3, 1, 0, 1},                 /* odd sides, channel tails */
    {2, 9, 35, 37, 6, 3, 1, 0, 1},                /* 18x19 tiles: some rows end mid-vector */
    {1, 12, 7, 7, 13, 3, 0, 0, 1},                /* 5x5 out: partial tiles, pad 0 */
    {2, 64, 4, 4, 128, 3, 1, 0, 1},               /* 2x2 tiles a plane: every group gathered */
    {1, 4, 40, 6, 4, 3, 1, NN_ACT_LEAKY_RELU, 1}, /* the fused inference op */
    {2, 8, 12, 30, 8, 3, 1, NN_ACT_TANH, 1},
};
#define N_WINO (sizeof wino_shapes / sizeof wino_shapes[0])

Test(nn_conv_direct, winograd_matches_reference)
{
    nn_set_threads(1);
    for (size_t i = 0; i < N_WINO; i++)
        check(&wino_shapes[i], "winograd");
}

Test(nn_conv_direct, winograd_two_threads_match_reference)
{
    nn_set_threads(2);
    for (size_t i = 0; i < N_WINO; i++)
        check(&wino_shapes[i], "winograd");
}

Test(nn_conv_direct, winograd_shapes_on_every_path)
{
    /* the same shapes on oneDNN and on the timed choice (twice: timed, then cached) */
    nn_set_threads(1);
    for (size_t i = 0; i < N_WINO; i++)
        check(&wino_shapes[i], "onednn");
    for (int rep = 0; rep < 2; rep++)
        for (size_t i = 0; i < N_WINO; i++)
            check(&wino_shapes[i], "auto");
}

/* im2col + GEMM's shapes (cpu_conv_gemm.c): the 1x1 convolutions it runs without col, with
 * and without a bias; pads that clip taps at every edge, strides 2 and 3 (taps that skip
 * columns), the discriminator's 4x4 layers, dilation-free 7x7; and a layer whose col is larger
 * than one block (64 channels x 16 taps x 71 columns: 14 rows a block, 71 rows), so the
 * forward and data gradient write in blocks and the weight gradient sums over them */
static const shape gemm_shapes[] = {
    {2, 16, 9, 13, 8, 1, 0, 0, 1},           /* 1x1: gx = w^T gy, gw = gy x^T */
    {2, 8, 11, 17, 12, 3, 1, 0, 1},          /* 3x3 pad 1, odd sides */
    {2, 8, 14, 19, 16, 4, 1, 0, 2},          /* the discriminator's 4x4 stride 2 */
    {1, 12, 13, 10, 9, 4, 1, 0, 1},          /* 4x4 stride 1 */
    {2, 6, 17, 23, 8, 3, 2, 0, 3},           /* stride 3, pad 2 */
    {1, 8, 12, 30, 8, 7, 0, NN_ACT_TANH, 1}, /* the fused inference op */
    {1, 16, 9, 9, 10, 3, 1, NN_ACT_LEAKY_RELU, 1},
    {1, 64, 70, 70, 8, 4, 2, 0, 1}, /* col in 6 blocks of output rows */
    {4, 8, 16, 16, 8, 1, 0, 0, 1},  /* the fewest terms it takes: 8 (8 -> 8 1x1) */
    {2, 1, 15, 15, 8, 3, 1, 0, 1},  /* one input channel, 9 terms */
};
#define N_GEMM (sizeof gemm_shapes / sizeof gemm_shapes[0])

Test(nn_conv_direct, gemm_matches_reference)
{
    nn_set_threads(1);
    for (size_t i = 0; i < N_GEMM; i++)
        check(&gemm_shapes[i], "gemm");
}

Test(nn_conv_direct, gemm_two_threads_match_reference)
{
    nn_set_threads(2);
    for (size_t i = 0; i < N_GEMM; i++)
        check(&gemm_shapes[i], "gemm");
}

Test(nn_conv_direct, gemm_shapes_through_the_timed_choice)
{
    nn_set_threads(1);
    for (int rep = 0; rep < 2; rep++)
        for (size_t i = 0; i < N_GEMM; i++)
            check(&gemm_shapes[i], "auto");
}

Test(nn_conv_direct, matches_reference)
{
    nn_set_threads(1);
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        check(&shapes[i], "direct");
}

/* the AVX2 row kernels on a machine that has AVX-512 (MKDSEG_CPU_ISA=avx2, read once per
 * process: each Criterion test runs in its own); on an AVX2 machine matches_reference covers
 * them */
Test(nn_conv_direct, avx2_kernels_match_reference)
{
    if (!__builtin_cpu_supports("avx512f"))
        cr_skip_test("no AVX-512F on this CPU: matches_reference runs the AVX2 kernels");
    setenv("MKDSEG_CPU_ISA", "avx2", 1);
    cr_assert_eq(cpu_isa_avx512(), 0, "MKDSEG_CPU_ISA=avx2 still chose AVX-512");
    nn_set_threads(1);
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        check(&shapes[i], "direct");
    nn_set_threads(2);
    check(&shapes[14], "direct");
    unsetenv("MKDSEG_CPU_ISA");
}

Test(nn_conv_direct, onednn_path_matches_reference)
{
    nn_set_threads(1);
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        check(&shapes[i], "onednn");
}

Test(nn_conv_direct, timed_choice_matches_reference)
{
    /* twice: the first call of each shape times both paths, the second takes the cached one */
    nn_set_threads(1);
    for (int rep = 0; rep < 2; rep++)
        for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
            check(&shapes[i], "auto");
}

Test(nn_conv_direct, two_threads_match_reference)
{
    nn_set_threads(2);
    check(&shapes[0], "direct");
    check(&shapes[2], "direct");
    check(&shapes[12], "direct");
    check(&shapes[14], "direct");
    check(&shapes[16], "direct");
    check(&shapes[19], "direct");
}

/* with a team of two, the timed choice also runs each short pass on one thread (cpu_conv.c's
 * run_choice); whichever it keeps, and again from the cache, the results hold */
Test(nn_conv_direct, two_threads_through_the_timed_choice)
{
    nn_set_threads(2);
    for (int rep = 0; rep < 2; rep++) {
        for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
            check(&shapes[i], "auto");
        for (size_t i = 0; i < N_GEMM; i++)
            check(&gemm_shapes[i], "auto");
    }
    cr_expect_eq(nn_get_threads(), 2, "the team's size was not restored after a pass alone");
}
