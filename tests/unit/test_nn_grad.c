/* test_nn_grad.c: finite-difference gradient checks of every op and loss.
 *
 * For an op y = f(x1, .., xk) and a fixed random R (same shape as y), L = sum(y * R) is
 * computed in double from the float32 output; the analytic gradient comes from
 * nn_backward_from(y, R). For each input that requires a gradient, up to MAX_PROBE elements
 * (spread over the tensor) are perturbed by +-EPS and the central difference
 * (L+ - L-) / (2 EPS) is compared with the analytic value.
 * Error = max |fd - analytic| / max(max |analytic|, 1e-2) over the probed elements; it must
 * be <= TOL. With float32 forward passes, EPS = 1e-2 keeps the rounding error of L/(2 EPS)
 * near 1e-5 and the truncation error O(EPS^2) near 1e-4 for these smooth inputs, so
 * TOL = 1e-2 leaves a wide margin while catching any wrong term (which gives O(1) errors).
 * Non-smooth ops get inputs away from their kinks: |x| >= 0.1 for ReLU/LeakyReLU/L1,
 * values at least 0.05 apart for max-pool (EPS never changes an argmax). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn.h"

#define EPS 1e-2f
#define TOL 1e-2
#define MAX_PROBE 48

enum { K_NORMAL, K_AWAY, K_DISTINCT, K_POS, K_PROBS, K_LABELS };

typedef struct {
    int n, c, h, w;
    int grad; /* requires a gradient */
    int kind;
    int classes; /* K_LABELS: values 0..classes-1 */
} spec;

typedef nn_tensor *(*build_fn)(nn_ctx *ctx, nn_tensor **in, const float *arg);

static size_t numel(const spec *s) { return (size_t)s->n * s->c * s->h * s->w; }

static void fill(const spec *s, float *f, int32_t *l, nn_rng *r)
{
    size_t n = numel(s), hw = (size_t)s->h * s->w;
    switch (s->kind) {
    case K_NORMAL:
        for (size_t i = 0; i < n; i++)
            f[i] = nn_rng_normal(r);
        break;
    case K_AWAY:
        for (size_t i = 0; i < n; i++) {
            float v = 0.1f + nn_rng_uniform(r);
            f[i] = nn_rng_uniform(r) < 0.5f ? -v : v;
        }
        break;
    case K_DISTINCT: /* a shuffled ramp: values 0.05 apart */
        for (size_t i = 0; i < n; i++)
            f[i] = 0.05f * (float)i - 0.025f * (float)n;
        for (size_t i = n - 1; i > 0; i--) {
            size_t j = nn_rng_u64(r) % (i + 1);
            float t = f[i];
            f[i] = f[j];
            f[j] = t;
        }
        break;
    case K_POS:
        for (size_t i = 0; i < n; i++)
            f[i] = 0.5f + nn_rng_uniform(r);
        break;
    case K_PROBS:
        for (int b = 0; b < s->n; b++)
            for (size_t i = 0; i < hw; i++) {
                float sum = 0;
                for (int c = 0; c < s->c; c++)
                    sum += (f[((size_t)b * s->c + c) * hw + i] = 0.2f + nn_rng_uniform(r));
                for (int c = 0; c < s->c; c++)
                    f[((size_t)b * s->c + c) * hw + i] /= sum;
            }
        break;
    case K_LABELS:
        for (size_t i = 0; i < n; i++)
            l[i] = (int32_t)(nn_rng_u64(r) % (uint64_t)s->classes);
        break;
    }
}

typedef struct {
    int nin;
    spec *sp;
    float *host[8];
    int32_t *lab[8];
    nn_tensor *t[8];
} inputs;

static nn_tensor *forward(nn_ctx *ctx, inputs *in, build_fn f, const float *arg, int grads)
{
    nn_ctx_reset(ctx);
    for (int k = 0; k < in->nin; k++) {
        const spec *s = &in->sp[k];
        if (s->kind == K_LABELS)
            in->t[k] = nn_labels_from(ctx, s->n, s->h, s->w, in->lab[k]);
        else
            in->t[k] = nn_tensor_from(ctx, s->n, s->c, s->h, s->w, in->host[k]);
        cr_assert(in->t[k]);
        if (grads && s->grad)
            nn_requires_grad(in->t[k]);
    }
    nn_tensor *y = f(ctx, in->t, arg);
    cr_assert(y, "forward failed: %s", nn_ctx_error(ctx));
    return y;
}

static double dot(const nn_tensor *y, const float *R)
{
    double s = 0;
    for (size_t i = 0; i < nn_numel(y); i++)
        s += (double)nn_f32(y)[i] * R[i];
    return s;
}

static void fd_check(const char *name, int nin, spec *sp, build_fn f, const float *arg)
{
    char err[256];
    nn_rng r;
    nn_rng_seed(&r, 42);
    inputs in = {.nin = nin, .sp = sp};
    for (int k = 0; k < nin; k++) {
        in.host[k] = calloc(numel(&sp[k]), sizeof(float));
        in.lab[k] = calloc(numel(&sp[k]), sizeof(int32_t));
        fill(&sp[k], in.host[k], in.lab[k], &r);
    }
    nn_ctx *ctx = nn_ctx_new(NULL, 1 << 20, err, sizeof err);
    cr_assert(ctx, "%s", err);

    nn_tensor *y = forward(ctx, &in, f, arg, 1);
    size_t ny = nn_numel(y);
    float *R = malloc(ny * sizeof *R);
    for (size_t i = 0; i < ny; i++)
        R[i] = nn_rng_normal(&r);
    cr_assert(nn_backward_from(ctx, y, R, err, sizeof err) == 0, "%s: %s", name, err);
    float *an[8] = {0};
    for (int k = 0; k < nin; k++) {
        if (!sp[k].grad)
            continue;
        nn_tensor *t = in.t[k];
        cr_assert(t->grad && t->grad_valid, "%s: input %d has no gradient", name, k);
        an[k] = malloc(nn_numel(t) * sizeof(float));
        memcpy(an[k], t->grad, nn_numel(t) * sizeof(float));
    }
    for (int k = 0; k < nin; k++) {
        if (!sp[k].grad)
            continue;
        size_t n = numel(&sp[k]);
        size_t step = n > MAX_PROBE ? n / MAX_PROBE : 1;
        double scale = 1e-2, worst = 0;
        for (size_t i = 0; i < n; i++)
            scale = fmax(scale, fabs(an[k][i]));
        for (size_t i = 0; i < n; i += step) {
            float keep = in.host[k][i];
            in.host[k][i] = keep + EPS;
            double lp = dot(forward(ctx, &in, f, arg, 0), R);
            in.host[k][i] = keep - EPS;
            double lm = dot(forward(ctx, &in, f, arg, 0), R);
            in.host[k][i] = keep;
            double fd = (lp - lm) / (2.0 * EPS);
            worst = fmax(worst, fabs(fd - an[k][i]));
            if (getenv("FD_DEBUG"))
                fprintf(stderr, "%s in%d [%zu] fd %.6g an %.6g\n", name, k, i, fd, an[k][i]);
        }
        cr_expect(worst / scale <= TOL, "%s: input %d: fd error %.3g (scale %.3g) > %.3g", name, k,
                  worst / scale, scale, TOL);
    }
    for (int k = 0; k < nin; k++) {
        free(in.host[k]);
        free(in.lab[k]);
        free(an[k]);
    }
    free(R);
    nn_ctx_free(ctx);
}

/* ---- builders ------------------------------------------------------------------------ */

static nn_tensor *b_conv(nn_ctx *c, nn_tensor **x, const float *a)
{
    return nn_conv2d(c, x[0], x[1], x[2], (int)a[0], (int)a[1], (int)a[2]);
}
static nn_tensor *b_convt(nn_ctx *c, nn_tensor **x, const float *a)
{
    return nn_conv_transpose2d(c, x[0], x[1], x[2], (int)a[0], (int)a[1], (int)a[2]);
}
static nn_tensor *b_pad_reflect(nn_ctx *c, nn_tensor **x, const float *a)
{
    (void)a;
    return nn_pad_reflect(c, x[0], 2, 1, 3, 2);
}
static nn_tensor *b_pad_zero(nn_ctx *c, nn_tensor **x, const float *a)
{
    (void)a;
    return nn_pad_zero(c, x[0], 0, 2, 1, 1);
}
static nn_tensor *b_in(nn_ctx *c, nn_tensor **x, const float *a)
{
    (void)a;
    return nn_instance_norm(c, x[0], x[1], x[2], 1e-5f);
}
static nn_tensor *b_in_plain(nn_ctx *c, nn_tensor **x, const float *a)
{
    (void)a;
    return nn_instance_norm(c, x[0], NULL, NULL, 1e-5f);
}
static nn_tensor *b_bn(nn_ctx *c, nn_tensor **x, const float *a)
{
    return nn_batch_norm(c, x[0], x[1], x[2], x[3], x[4], (int)a[0], 0.1f, 1e-5f);
}
static nn_tensor *b_relu(nn_ctx *c, nn_tensor **x, const float *a)
{
    (void)a;
    return nn_relu(c, x[0]);
}
static nn_tensor *b_leaky(nn_ctx *c, nn_tensor **x, const float *a)
{
    (void)a;
    return nn_leaky_relu(c, x[0], 0.2f);
}
static nn_tensor *b_tanh(nn_ctx *c, nn_tensor **x, const float *a)
{
    (void)a;
    return nn_tanh(c, x[0]);
}
static nn_tensor *b_sigmoid(nn_ctx *c, nn_tensor **x, const float *a)
{
    (void)a;
    return nn_sigmoid(c, x[0]);
}
static nn_tensor *b_softmax(nn_ctx *c, nn_tensor **x, const float *a)
{
    (void)a;
    return nn_softmax(c, x[0]);
}
static nn_tensor *b_scale(nn_ctx *c, nn_tensor **x, const float *a)
{
    (void)a;
    return nn_scale(c, x[0], -1.3f);
}
static nn_tensor *b_add(nn_ctx *c, nn_tensor **x, const float *a)
{
    (void)a;
    return nn_add(c, x[0], x[1]);
}
static nn_tensor *b_concat(nn_ctx *c, nn_tensor **x, const float *a)
{
    (void)a;
    return nn_concat(c, x, 3);
}
static nn_tensor *b_pool(nn_ctx *c, nn_tensor **x, const float *a)
{
    return nn_max_pool2d(c, x[0], (int)a[0], (int)a[1]);
}
static nn_tensor *b_bilinear(nn_ctx *c, nn_tensor **x, const float *a)
{
    return nn_resize_bilinear(c, x[0], (int)a[0], (int)a[1]);
}
static nn_tensor *b_nearest(nn_ctx *c, nn_tensor **x, const float *a)
{
    return nn_resize_nearest(c, x[0], (int)a[0], (int)a[1]);
}
static nn_tensor *b_ce(nn_ctx *c, nn_tensor **x, const float *a)
{
    (void)a;
    return nn_loss_cross_entropy(c, x[0], x[1], x[2]);
}
static nn_tensor *b_dice(nn_ctx *c, nn_tensor **x, const float *a)
{
    return nn_loss_dice(c, x[0], x[1], (int)a[0], a[1]);
}
static nn_tensor *b_kd(nn_ctx *c, nn_tensor **x, const float *a)
{
    (void)a;
    return nn_loss_kd(c, x[0], x[1]);
}
static nn_tensor *b_l1(nn_ctx *c, nn_tensor **x, const float *a)
{
    (void)a;
    return nn_loss_l1(c, x[0], x[1]);
}
static nn_tensor *b_lsgan(nn_ctx *c, nn_tensor **x, const float *a)
{
    return nn_loss_lsgan(c, x[0], a[0]);
}
/* a small chain (smooth, so no kinks within EPS): conv -> IN -> tanh -> reflect pad ->
 * conv+bias -> softmax -> Dice + 0.5 KD (softmax output used twice: gradients add) */
static nn_tensor *b_chain(nn_ctx *c, nn_tensor **x, const float *a)
{
    (void)a;
    nn_tensor *h =
        nn_tanh(c, nn_instance_norm(c, nn_conv2d(c, x[0], x[1], NULL, 1, 1, 1), NULL, NULL, 1e-5f));
    h = nn_softmax(c, nn_conv2d(c, nn_pad_reflect(c, h, 1, 1, 1, 1), x[2], x[3], 1, 0, 1));
    return nn_add(c, nn_loss_dice(c, h, x[4], 0, 1.0f), nn_scale(c, nn_loss_kd(c, x[5], h), 0.5f));
}

#define S(n, c, h, w, g, k)                                                                        \
    {                                                                                              \
        n, c, h, w, g, k, 0                                                                        \
    }

/* Thousands of tiny forward passes: one thread each (Criterion runs two test processes at
 * once on this 2-core machine; OpenMP's spinning threads would oversubscribe it). The
 * multi-threaded paths are covered by nn_golden and nn_autograd. */
static void one_thread(void) { nn_set_threads(1); }
TestSuite(nn_grad, .init = one_thread);

Test(nn_grad, conv2d)
{
    spec sp[] = {S(2, 3, 6, 5, 1, K_NORMAL), S(4, 3, 3, 3, 1, K_NORMAL),
                 S(4, 1, 1, 1, 1, K_NORMAL)};
    float a1[] = {1, 1, 1}, a2[] = {2, 1, 1}, a3[] = {1, 2, 2};
    fd_check("conv2d s1", 3, sp, b_conv, a1);
    fd_check("conv2d s2", 3, sp, b_conv, a2);
    fd_check("conv2d dil2", 3, sp, b_conv, a3);
}

Test(nn_grad, conv_transpose2d)
{
    spec sp[] = {S(2, 3, 4, 5, 1, K_NORMAL), S(3, 2, 3, 3, 1, K_NORMAL),
                 S(2, 1, 1, 1, 1, K_NORMAL)};
    float a1[] = {2, 1, 1}, a2[] = {1, 1, 0};
    fd_check("convt s2 op1", 3, sp, b_convt, a1);
    fd_check("convt s1", 3, sp, b_convt, a2);
    spec sp2[] = {S(1, 3, 3, 3, 1, K_NORMAL), S(3, 2, 2, 2, 1, K_NORMAL),
                  S(2, 1, 1, 1, 1, K_NORMAL)};
    float a3[] = {2, 0, 0};
    fd_check("convt 2x2 s2", 3, sp2, b_convt, a3);
}

Test(nn_grad, pad)
{
    spec sp[] = {S(2, 2, 4, 5, 1, K_NORMAL)};
    fd_check("pad_reflect", 1, sp, b_pad_reflect, NULL);
    fd_check("pad_zero", 1, sp, b_pad_zero, NULL);
}

Test(nn_grad, instance_norm)
{
    spec sp[] = {S(2, 3, 4, 5, 1, K_NORMAL), S(3, 1, 1, 1, 1, K_NORMAL),
                 S(3, 1, 1, 1, 1, K_NORMAL)};
    fd_check("instance_norm affine", 3, sp, b_in, NULL);
    fd_check("instance_norm", 1, sp, b_in_plain, NULL);
}

Test(nn_grad, batch_norm)
{
    spec sp[] = {S(3, 2, 3, 4, 1, K_NORMAL), S(2, 1, 1, 1, 1, K_NORMAL), S(2, 1, 1, 1, 1, K_NORMAL),
                 S(2, 1, 1, 1, 0, K_NORMAL), S(2, 1, 1, 1, 0, K_POS)};
    float train[] = {1}, eval[] = {0};
    fd_check("batch_norm train", 5, sp, b_bn, train);
    fd_check("batch_norm eval", 5, sp, b_bn, eval);
}

Test(nn_grad, activations)
{
    spec n[] = {S(2, 3, 3, 4, 1, K_NORMAL)}, away[] = {S(2, 3, 3, 4, 1, K_AWAY)};
    fd_check("relu", 1, away, b_relu, NULL);
    fd_check("leaky_relu", 1, away, b_leaky, NULL);
    fd_check("tanh", 1, n, b_tanh, NULL);
    fd_check("sigmoid", 1, n, b_sigmoid, NULL);
    fd_check("softmax", 1, n, b_softmax, NULL);
    fd_check("scale", 1, n, b_scale, NULL);
}

Test(nn_grad, add_concat)
{
    spec sp[] = {S(2, 3, 3, 4, 1, K_NORMAL), S(2, 3, 3, 4, 1, K_NORMAL)};
    fd_check("add", 2, sp, b_add, NULL);
    spec sc[] = {S(2, 1, 3, 4, 1, K_NORMAL), S(2, 2, 3, 4, 0, K_NORMAL),
                 S(2, 3, 3, 4, 1, K_NORMAL)};
    fd_check("concat", 3, sc, b_concat, NULL);
}

Test(nn_grad, max_pool)
{
    spec sp[] = {S(2, 2, 6, 7, 1, K_DISTINCT)};
    float a1[] = {2, 2}, a2[] = {3, 2};
    fd_check("max_pool 2/2", 1, sp, b_pool, a1);
    fd_check("max_pool 3/2", 1, sp, b_pool, a2);
}

Test(nn_grad, resize)
{
    spec sp[] = {S(2, 2, 4, 5, 1, K_NORMAL)};
    float up[] = {9, 7}, down[] = {3, 2};
    fd_check("bilinear up", 1, sp, b_bilinear, up);
    fd_check("bilinear down", 1, sp, b_bilinear, down);
    fd_check("nearest up", 1, sp, b_nearest, up);
    fd_check("nearest down", 1, sp, b_nearest, down);
}

Test(nn_grad, losses)
{
    spec ce[] = {S(2, 4, 3, 4, 1, K_NORMAL), {2, 1, 3, 4, 0, K_LABELS, 4}, S(4, 1, 1, 1, 0, K_POS)};
    fd_check("cross_entropy weighted", 3, ce, b_ce, NULL);
    fd_check("cross_entropy", 2, ce, b_ce, NULL);
    spec di[] = {S(2, 4, 3, 4, 1, K_PROBS), {2, 1, 3, 4, 0, K_LABELS, 4}};
    float d0[] = {0, 1.0f}, d1[] = {1, 1e-5f};
    fd_check("dice", 2, di, b_dice, d0);
    fd_check("dice no background", 2, di, b_dice, d1);
    spec kd[] = {S(2, 4, 3, 4, 0, K_PROBS), S(2, 4, 3, 4, 1, K_PROBS)};
    fd_check("kd", 2, kd, b_kd, NULL);
    spec l1[] = {S(2, 1, 3, 4, 1, K_AWAY), S(2, 1, 3, 4, 1, K_AWAY)};
    fd_check("l1", 2, l1, b_l1, NULL);
    spec ls[] = {S(2, 1, 3, 4, 1, K_NORMAL)};
    float t[] = {1.0f};
    fd_check("lsgan", 1, ls, b_lsgan, t);
}

Test(nn_grad, chain)
{
    spec sp[] = {S(2, 2, 5, 5, 1, K_NORMAL),   S(3, 2, 3, 3, 1, K_NORMAL),
                 S(4, 3, 3, 3, 1, K_NORMAL),   S(4, 1, 1, 1, 1, K_NORMAL),
                 {2, 1, 5, 5, 0, K_LABELS, 4}, S(2, 4, 5, 5, 0, K_PROBS)};
    fd_check("chain", 6, sp, b_chain, NULL);
}
