/* test_nn_flops.c: the engine's own count of convolution arithmetic (nn_ctx_flops, what
 * `mkdseg train` reports as gflop_per_iter) against the architecture's count of the three
 * networks (segmentor_flops ..., itself checked equal to PyTorch's count by test_models.c):
 * an inference pass counts the forward, a training pass with the input not requiring a
 * gradient the forward, every weight gradient and the data gradient of every layer that does
 * not read the input directly;
 * a pass whose input requires a gradient (a generator's output fed to a frozen network) adds
 * the first layer's data gradient. */
#include <criterion/criterion.h>

#include "models.h"

static nn_tensor *input(nn_ctx *ctx, int n, int h, int w, int grad)
{
    nn_tensor *x = nn_tensor_zeros(ctx, n, 1, h, w);
    cr_assert(x);
    if (grad)
        nn_requires_grad(x);
    return x;
}

/* forward (and, train, the backward of the sum of squares of the output) on a fresh context:
 * the FLOPs the context counted */
static double count(nn_tensor *(*fwd)(void *net, nn_ctx *ctx, nn_tensor *x), void *net, int n,
                    int h, int w, int train, int xgrad)
{
    char err[256];
    nn_ctx *ctx = nn_ctx_new(nn_backend_cpu(), 0, err, sizeof err);
    cr_assert(ctx, "%s", err);
    if (!train)
        nn_ctx_set_grad_enabled(ctx, 0);
    nn_tensor *y = fwd(net, ctx, input(ctx, n, h, w, xgrad));
    cr_assert(y, "%s", nn_ctx_error(ctx));
    if (train) {
        nn_tensor *loss = nn_loss_lsgan(ctx, y, 0.0f);
        cr_assert(loss && nn_backward(ctx, loss, err, sizeof err) == 0, "%s", err);
    }
    double f = nn_ctx_flops(ctx);
    nn_ctx_free(ctx);
    return f;
}

static nn_tensor *seg_fwd(void *s, nn_ctx *c, nn_tensor *x)
{
    return segmentor_forward(s, c, x, 1);
}
static nn_tensor *gen_fwd(void *g, nn_ctx *c, nn_tensor *x) { return generator_forward(g, c, x); }
static nn_tensor *disc_fwd(void *d, nn_ctx *c, nn_tensor *x)
{
    return discriminator_forward(d, c, x);
}

Test(nn_flops, context_count_equals_the_architectures)
{
    char err[256];
    nn_set_threads(1);
    segmentor *s = segmentor_new(nn_backend_cpu(), 4, 8, 1, err, sizeof err);
    generator *g = generator_new(nn_backend_cpu(), 4, 2, 1, 1, err, sizeof err);
    discriminator *d = discriminator_new(nn_backend_cpu(), 4, 1, err, sizeof err);
    cr_assert(s && g && d, "%s", err);
    const int N = 2, H = 32, W = 48;
    cr_expect_eq(count(seg_fwd, s, N, H, W, 0, 0), segmentor_flops(s, N, H, W, 0));
    /* the architecture's training count also charges the data gradient of the first block's
     * 1x1 shortcut from the image (1 -> width channels), which no pass computes */
    const double shortcut = 2.0 * N * H * W * 1 * 4;
    cr_expect_eq(count(seg_fwd, s, N, H, W, 1, 0), segmentor_flops(s, N, H, W, 1) - shortcut);
    cr_expect_eq(count(gen_fwd, g, N, H, W, 0, 0), generator_flops(g, N, H, W, 0));
    cr_expect_eq(count(gen_fwd, g, N, H, W, 1, 0), generator_flops(g, N, H, W, 1));
    cr_expect_eq(count(disc_fwd, d, N, H, W, 1, 0), discriminator_flops(d, N, H, W, 1));
    /* an input that requires a gradient: + the first layer's data gradient, which the
     * architecture's training count leaves out (3 forward - first layer's data gradient) */
    const double df = count(disc_fwd, d, N, H, W, 1, 1) - discriminator_flops(d, N, H, W, 1);
    cr_expect(df > 0 && df < discriminator_flops(d, N, H, W, 0), "first-layer data gradient %g",
              df);
    segmentor_free(s);
    generator_free(g);
    discriminator_free(d);
}
