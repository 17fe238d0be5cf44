/* test_nn_conv_cache.c: the CPU backend's buffers kept across oneDNN calls (cpu_conv.c): a
 * parameter's reordered weights (reused while its bytes are unchanged), a training forward's
 * reordered input (reused by the weight gradient) and the output gradient shared by the two
 * backward passes. Each graph runs in one long-lived context, with the weights changed between
 * calls in the ways a program may change them (a direct write of CPU memory, an Adam step), and
 * must give bit for bit what a new context (empty caches) gives for the same weights and
 * inputs. Shapes: channel counts that oneDNN runs in its 8-channel blocked layout (so every
 * argument is reordered), a convolution and a transposed convolution with biases. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "nn.h"

typedef struct {
    int transposed, n, c, h, o, k, stride, pad;
} cshape;

typedef struct {
    nn_params *p;
    nn_tensor *w, *b;
} net;

static void fill(float *v, size_t n, nn_rng *r)
{
    for (size_t i = 0; i < n; i++)
        v[i] = (float)(nn_rng_uniform(r) * 2.0 - 1.0);
}

static net net_new(const cshape *s, nn_rng *r)
{
    char err[256];
    net m;
    m.p = nn_params_new(nn_backend_cpu(), err, sizeof err);
    cr_assert(m.p, "%s", err);
    /* conv2d weights [o, c, k, k]; transposed [c, o, k, k] */
    m.w = nn_param_add(m.p, "w", NN_PARAM, s->transposed ? s->c : s->o, s->transposed ? s->o : s->c,
                       s->k, s->k, err, sizeof err);
    m.b = nn_param_add(m.p, "b", NN_PARAM, s->o, 1, 1, 1, err, sizeof err);
    cr_assert(m.w && m.b, "%s", err);
    fill(nn_f32(m.w), nn_numel(m.w), r);
    fill(nn_f32(m.b), nn_numel(m.b), r);
    return m;
}

static nn_tensor *layer(nn_ctx *ctx, const cshape *s, const net *m, nn_tensor *x)
{
    return s->transposed ? nn_conv_transpose2d(ctx, x, m->w, m->b, s->stride, s->pad, 0)
                         : nn_conv2d(ctx, x, m->w, m->b, s->stride, s->pad, 1);
}

/* y = layer(layer-free input x) twice on the same weights (two uses, as a network called twice
 * in one step), backward of both with gy; returns y of the second use, gx, gw, gb (malloc'd,
 * concatenated) */
static float *step(nn_ctx *ctx, const cshape *s, net *m, const float *x, const float *gy,
                   size_t *len)
{
    char err[256];
    nn_params_zero_grad(m->p);
    nn_tensor *tx = nn_tensor_from(ctx, s->n, s->c, s->h, s->h, x);
    nn_requires_grad(tx);
    nn_tensor *y1 = layer(ctx, s, m, tx);
    nn_tensor *y2 = layer(ctx, s, m, tx);
    cr_assert(y1 && y2, "%s", nn_ctx_error(ctx));
    cr_assert(!nn_backward_from(ctx, y1, gy, err, sizeof err), "%s", err);
    cr_assert(!nn_backward_from(ctx, y2, gy, err, sizeof err), "%s", err);
    const size_t ny = nn_numel(y2), nx = nn_numel(tx), nw = nn_numel(m->w), nb = nn_numel(m->b);
    float *out = malloc((ny + nx + nw + nb) * sizeof *out);
    cr_assert(out);
    memcpy(out, nn_f32(y2), ny * 4);
    memcpy(out + ny, tx->grad, nx * 4);
    memcpy(out + ny + nx, m->w->grad, nw * 4);
    memcpy(out + ny + nx + nw, m->b->grad, nb * 4);
    *len = ny + nx + nw + nb;
    return out;
}

/* the same step in a new context */
static float *fresh_step(const cshape *s, net *m, const float *x, const float *gy, size_t *len)
{
    char err[256];
    nn_ctx *ctx = nn_ctx_new(nn_backend_cpu(), 0, err, sizeof err);
    cr_assert(ctx, "%s", err);
    float *out = step(ctx, s, m, x, gy, len);
    nn_ctx_free(ctx);
    return out;
}

static void expect_same(const float *a, const float *b, size_t n, const char *when)
{
    size_t bad = 0;
    for (size_t i = 0; i < n; i++)
        bad += a[i] != b[i];
    cr_expect(bad == 0, "%s: %zu of %zu values differ from a new context's", when, bad, n);
}

static void check(const cshape *s)
{
    setenv("MKDSEG_CONV_PATH", "onednn", 1);
    char err[256];
    nn_rng r;
    nn_rng_seed(&r, 5 + s->c + s->o);
    net m = net_new(s, &r);
    const int OH = s->transposed ? (s->h - 1) * s->stride - 2 * s->pad + s->k
                                 : (s->h + 2 * s->pad - s->k) / s->stride + 1;
    const size_t nx = (size_t)s->n * s->c * s->h * s->h, ny = (size_t)s->n * s->o * OH * OH;
    float *x = malloc(nx * 4), *gy = malloc(ny * 4);
    cr_assert(x && gy);
    fill(x, nx, &r);
    fill(gy, ny, &r);
    nn_ctx *ctx = nn_ctx_new(nn_backend_cpu(), 0, err, sizeof err);
    nn_adam_cfg cfg = {.lr = 0.01f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f};
    nn_adam *opt = nn_adam_new(m.p, cfg, err, sizeof err);
    cr_assert(ctx && opt, "%s", err);
    size_t n1, n2;
    for (int round = 0; round < 4; round++) {
        float *a = step(ctx, s, &m, x, gy, &n1); /* long-lived context, no reset */
        float *b = fresh_step(s, &m, x, gy, &n2);
        cr_assert_eq(n1, n2);
        expect_same(a, b, n1,
                    round == 0   ? "first call"
                    : round == 1 ? "after a direct write of the weights"
                    : round == 2 ? "after an Adam step"
                                 : "unchanged weights");
        free(a);
        free(b);
        if (round == 0) /* change one weight in place, as CPU code may */
            nn_f32(m.w)[nn_numel(m.w) / 2] += 0.25f;
        else if (round == 1)
            cr_assert(!nn_adam_step(opt, err, sizeof err), "%s", err);
    }
    nn_adam_free(opt);
    nn_ctx_free(ctx);
    free(x);
    free(gy);
    nn_params_free(m.p);
    unsetenv("MKDSEG_CONV_PATH");
}

Test(nn_conv_cache, conv2d_blocked) { check(&(cshape){0, 2, 16, 12, 24, 3, 1, 1}); }
Test(nn_conv_cache, conv2d_strided) { check(&(cshape){0, 2, 8, 16, 16, 4, 2, 1}); }
Test(nn_conv_cache, conv_transpose2d) { check(&(cshape){1, 2, 16, 8, 8, 3, 2, 1}); }
