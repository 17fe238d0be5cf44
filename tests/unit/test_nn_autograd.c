/* test_nn_autograd.c: tape semantics (freezing, a network used twice, no_grad, detach,
 * accumulation over backward calls), parameter registries, arenas, errors, schedules,
 * threads. Gradient comparisons between two ways of computing the same thing use
 * max |a - b| / max(max |b|, 1e-6) <= 1e-5 (same float operations up to summation order). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn.h"

#define TOL_SAME 1e-5

static double rel(const float *a, const float *b, size_t n)
{
    double s = 1e-6, e = 0;
    for (size_t i = 0; i < n; i++)
        s = fmax(s, fabs(b[i]));
    for (size_t i = 0; i < n; i++)
        e = fmax(e, fabs((double)a[i] - b[i]));
    return e / s;
}

typedef struct {
    nn_params *p;
    nn_tensor *w1, *b1, *w2, *b2;
} tiny_net;

/* conv3x3(c->4) + bias, ReLU, conv3x3(4->c) + bias */
static tiny_net net_new(int c, uint64_t seed)
{
    char err[256];
    nn_rng r;
    tiny_net n;
    nn_rng_seed(&r, seed);
    n.p = nn_params_new(NULL, err, sizeof err);
    cr_assert(n.p);
    n.w1 = nn_param_add(n.p, "conv1.weight", NN_PARAM, 4, c, 3, 3, err, sizeof err);
    n.b1 = nn_param_add(n.p, "conv1.bias", NN_PARAM, 4, 1, 1, 1, err, sizeof err);
    n.w2 = nn_param_add(n.p, "conv2.weight", NN_PARAM, c, 4, 3, 3, err, sizeof err);
    n.b2 = nn_param_add(n.p, "conv2.bias", NN_PARAM, c, 1, 1, 1, err, sizeof err);
    cr_assert(n.w1 && n.b1 && n.w2 && n.b2, "%s", err);
    nn_init_torch_conv(n.w1, n.b1, &r);
    nn_init_torch_conv(n.w2, n.b2, &r);
    return n;
}

static nn_tensor *net_fwd(nn_ctx *ctx, tiny_net *n, nn_tensor *x)
{
    nn_tensor *h = nn_relu(ctx, nn_conv2d(ctx, x, n->w1, n->b1, 1, 1, 1));
    return nn_conv2d(ctx, h, n->w2, n->b2, 1, 1, 1);
}

static nn_tensor *rand_tensor(nn_ctx *ctx, int n, int c, int h, int w, uint64_t seed)
{
    nn_rng r;
    nn_rng_seed(&r, seed);
    nn_tensor *t = nn_tensor_new(ctx, n, c, h, w);
    cr_assert(t);
    nn_init_normal(t, 0, 1, &r);
    return t;
}

static nn_ctx *ctx_new(void)
{
    char err[256];
    nn_ctx *ctx = nn_ctx_new(nn_backend_cpu(), 1 << 20, err, sizeof err);
    cr_assert(ctx, "%s", err);
    return ctx;
}

static float *copy_grad(const nn_tensor *t)
{
    float *g = malloc(nn_numel(t) * 4);
    memcpy(g, t->grad, nn_numel(t) * 4);
    return g;
}

/* G -> S: S frozen. S gets no gradient, G gets exactly the gradient it gets when S is not
 * frozen, Adam leaves S alone. */
Test(nn_autograd, frozen_network_passes_gradient)
{
    char err[256];
    tiny_net g = net_new(1, 1), s = net_new(1, 2);
    nn_ctx *ctx = ctx_new();
    float *ref_w1 = NULL;
    for (int frozen = 0; frozen < 2; frozen++) {
        nn_ctx_reset(ctx);
        nn_params_zero_grad(g.p);
        nn_params_zero_grad(s.p);
        nn_params_set_frozen(s.p, frozen);
        nn_tensor *x = rand_tensor(ctx, 2, 1, 8, 8, 7);
        nn_tensor *loss = nn_loss_lsgan(ctx, net_fwd(ctx, &s, net_fwd(ctx, &g, x)), 1.0f);
        cr_assert(loss, "%s", nn_ctx_error(ctx));
        cr_assert(nn_backward(ctx, loss, err, sizeof err) == 0, "%s", err);
        cr_assert(g.w1->grad_valid && g.b2->grad_valid, "G got no gradient");
        if (!frozen) {
            ref_w1 = copy_grad(g.w1);
            cr_assert(s.w1->grad_valid, "unfrozen S got no gradient");
        } else {
            for (int i = 0; i < nn_params_count(s.p); i++) {
                nn_param *q = nn_params_at(s.p, i);
                cr_expect(!q->t.grad_valid, "frozen %s got a gradient", q->name);
                cr_expect(!q->t.requires_grad);
            }
            cr_expect(rel(g.w1->grad, ref_w1, nn_numel(g.w1)) <= TOL_SAME,
                      "G's gradient changed when S was frozen");
        }
    }
    /* Adam over S (frozen) moves nothing */
    float before = nn_f32(s.w1)[0];
    nn_adam *opt = nn_adam_new(s.p, NN_ADAM_DEFAULT, err, sizeof err);
    cr_assert(nn_adam_step(opt, err, sizeof err) == 0, "%s", err);
    cr_expect(nn_f32(s.w1)[0] == before, "Adam moved a frozen parameter");
    nn_params_set_frozen(s.p, 0);
    cr_expect(s.w1->requires_grad);
    nn_adam_free(opt);
    free(ref_w1);
    nn_ctx_free(ctx);
    nn_params_free(g.p);
    nn_params_free(s.p);
}

/* One network on two inputs in one graph: parameter gradients are the sum of the two
 * separate passes. */
Test(nn_autograd, network_called_twice_adds_gradients)
{
    char err[256];
    tiny_net n = net_new(2, 3);
    nn_ctx *ctx = ctx_new();
    float *sep[4] = {0};
    nn_tensor *ps[4] = {n.w1, n.b1, n.w2, n.b2};
    for (int which = 0; which < 2; which++) { /* separate passes, summed by accumulation */
        nn_ctx_reset(ctx);
        if (which == 0)
            nn_params_zero_grad(n.p);
        nn_tensor *x = rand_tensor(ctx, 1, 2, 6, 6, 10 + which);
        nn_tensor *loss = nn_loss_lsgan(ctx, net_fwd(ctx, &n, x), which ? 0.0f : 1.0f);
        cr_assert(nn_backward(ctx, loss, err, sizeof err) == 0, "%s", err);
    }
    for (int k = 0; k < 4; k++)
        sep[k] = copy_grad(ps[k]);
    nn_ctx_reset(ctx);
    nn_params_zero_grad(n.p);
    nn_tensor *x0 = rand_tensor(ctx, 1, 2, 6, 6, 10), *x1 = rand_tensor(ctx, 1, 2, 6, 6, 11);
    nn_tensor *loss = nn_add(ctx, nn_loss_lsgan(ctx, net_fwd(ctx, &n, x0), 1.0f),
                             nn_loss_lsgan(ctx, net_fwd(ctx, &n, x1), 0.0f));
    cr_assert(nn_backward(ctx, loss, err, sizeof err) == 0, "%s", err);
    for (int k = 0; k < 4; k++) {
        cr_expect(rel(ps[k]->grad, sep[k], nn_numel(ps[k])) <= TOL_SAME,
                  "param %d: twice-called gradient differs from the sum", k);
        free(sep[k]);
    }
    nn_ctx_free(ctx);
    nn_params_free(n.p);
}

Test(nn_autograd, no_grad_records_nothing)
{
    char err[256];
    tiny_net n = net_new(1, 4);
    nn_ctx *ctx = ctx_new();
    cr_assert(nn_ctx_grad_enabled(ctx));
    cr_assert_eq(nn_ctx_set_grad_enabled(ctx, 0), 1);
    nn_tensor *x = nn_requires_grad(rand_tensor(ctx, 1, 1, 6, 6, 5));
    nn_tensor *y = net_fwd(ctx, &n, x);
    nn_tensor *loss = nn_loss_lsgan(ctx, y, 1.0f);
    cr_assert(loss, "%s", nn_ctx_error(ctx));
    cr_expect_eq(nn_ctx_tape_len(ctx), 0u);
    cr_expect(!y->requires_grad && !y->node && !loss->requires_grad);
    cr_expect_eq(nn_backward(ctx, loss, err, sizeof err), -1);
    /* the same forward with recording gives the same values */
    float v = nn_scalar(loss);
    cr_assert_eq(nn_ctx_set_grad_enabled(ctx, 1), 0);
    nn_tensor *loss2 = nn_loss_lsgan(ctx, net_fwd(ctx, &n, x), 1.0f);
    cr_expect_eq(nn_ctx_tape_len(ctx), 4u); /* conv, relu, conv, loss */
    cr_expect_eq(nn_scalar(loss2), v);
    cr_expect_eq(nn_backward(ctx, loss2, err, sizeof err), 0, "%s", err);
    cr_expect(x->grad_valid);
    nn_ctx_free(ctx);
    nn_params_free(n.p);
}

Test(nn_autograd, detach_and_input_only_grad)
{
    char err[256];
    nn_ctx *ctx = ctx_new();
    nn_tensor *x = nn_requires_grad(rand_tensor(ctx, 1, 2, 4, 4, 1));
    nn_tensor *a = nn_tanh(ctx, x);
    nn_tensor *d = nn_detach(ctx, a);
    cr_expect(!d->requires_grad && d->data == a->data);
    nn_tensor *loss = nn_loss_l1(ctx, a, d); /* gradient flows only through a */
    cr_assert(nn_backward(ctx, loss, err, sizeof err) == 0, "%s", err);
    cr_expect(!d->grad_valid);
    cr_expect(x->grad_valid);
    /* nothing requires a gradient: an op on plain tensors records nothing */
    size_t before = nn_ctx_tape_len(ctx);
    cr_expect(nn_relu(ctx, d));
    cr_expect_eq(nn_ctx_tape_len(ctx), before);
    nn_ctx_free(ctx);
}

/* Leaf gradients accumulate over backward calls; zero_grad restarts; two backward calls on
 * overlapping graphs equal one backward of the sum. */
Test(nn_autograd, accumulation_over_backward_calls)
{
    char err[256];
    tiny_net n = net_new(1, 6);
    nn_ctx *ctx = ctx_new();
    nn_tensor *x = rand_tensor(ctx, 1, 1, 6, 6, 3);
    nn_tensor *y = net_fwd(ctx, &n, x);
    nn_tensor *l1 = nn_loss_lsgan(ctx, y, 1.0f), *l2 = nn_loss_lsgan(ctx, y, -1.0f);
    nn_tensor *sum = nn_add(ctx, l1, l2);
    nn_params_zero_grad(n.p);
    cr_assert(nn_backward(ctx, sum, err, sizeof err) == 0, "%s", err);
    float *ref = copy_grad(n.w1);
    nn_params_zero_grad(n.p);
    cr_expect(!n.w1->grad_valid);
    cr_assert(nn_backward(ctx, l1, err, sizeof err) == 0, "%s", err);
    cr_assert(nn_backward(ctx, l2, err, sizeof err) == 0, "%s", err);
    cr_expect(rel(n.w1->grad, ref, nn_numel(n.w1)) <= TOL_SAME, "l1 then l2 != l1 + l2");
    cr_assert(nn_backward(ctx, sum, err, sizeof err) == 0, "%s", err);
    for (size_t i = 0; i < nn_numel(n.w1); i++)
        cr_expect(fabsf(n.w1->grad[i] - 2 * ref[i]) <= 1e-5f * (1 + fabsf(ref[i])));
    free(ref);
    nn_ctx_free(ctx);
    nn_params_free(n.p);
}

Test(nn_autograd, batch_norm_running_stats_in_no_grad)
{
    char err[256];
    nn_params *p = nn_params_new(NULL, err, sizeof err);
    nn_tensor *rm = nn_param_add(p, "bn.running_mean", NN_BUFFER, 2, 1, 1, 1, err, sizeof err);
    nn_tensor *rv = nn_param_add(p, "bn.running_var", NN_BUFFER, 2, 1, 1, 1, err, sizeof err);
    cr_assert(rm && rv && !rm->requires_grad && !rm->grad);
    nn_init_const(rv, 1.0f);
    nn_ctx *ctx = ctx_new();
    nn_ctx_set_grad_enabled(ctx, 0);
    nn_tensor *x = rand_tensor(ctx, 4, 2, 3, 3, 9);
    /* eval: stats untouched; train: updated even without recording (as PyTorch) */
    cr_assert(nn_batch_norm(ctx, x, NULL, NULL, rm, rv, 0, 0.1f, 1e-5f));
    cr_expect(nn_f32(rm)[0] == 0.0f && nn_f32(rv)[0] == 1.0f);
    cr_assert(nn_batch_norm(ctx, x, NULL, NULL, rm, rv, 1, 0.1f, 1e-5f));
    double m = 0;
    for (int n = 0; n < 4; n++)
        for (int j = 0; j < 9; j++)
            m += nn_f32(x)[n * 18 + j];
    cr_expect(fabs(nn_f32(rm)[0] - 0.1 * m / 36) < 1e-6, "running mean %g want %g", nn_f32(rm)[0],
              0.1 * m / 36);
    cr_expect_eq(nn_params_numel(p, NN_BUFFER), 4u);
    cr_expect_eq(nn_params_numel(p, NN_PARAM), 0u);
    nn_ctx_free(ctx);
    nn_params_free(p);
}

Test(nn_autograd, params_registry)
{
    char err[256];
    nn_params *p = nn_params_new(NULL, err, sizeof err);
    cr_assert(nn_param_add(p, "a.weight", NN_PARAM, 3, 2, 1, 1, err, sizeof err));
    cr_expect(!nn_param_add(p, "a.weight", NN_PARAM, 1, 1, 1, 1, err, sizeof err));
    cr_expect(strstr(err, "duplicate"), "%s", err);
    cr_expect(!nn_param_add(p, "bad", NN_PARAM, 0, 1, 1, 1, err, sizeof err));
    cr_assert(nn_param_add(p, "a.bias", NN_PARAM, 3, 1, 1, 1, err, sizeof err));
    cr_expect_eq(nn_params_count(p), 2);
    cr_expect_str_eq(nn_params_at(p, 1)->name, "a.bias");
    cr_expect(nn_params_find(p, "a.weight") == nn_params_at(p, 0));
    cr_expect(!nn_params_find(p, "nope"));
    cr_expect_eq(nn_params_numel(p, NN_PARAM), 9u);
    for (int i = 0; i < 6; i++)
        cr_expect_eq(nn_f32(&nn_params_at(p, 0)->t)[i], 0.0f);
    nn_params_free(p);
}

/* The same step twice: the arena's peak does not grow and a reset empties it. */
Test(nn_autograd, arena_reuse)
{
    char err[256];
    tiny_net n = net_new(1, 8);
    nn_ctx *ctx = nn_ctx_new(NULL, 4096, err, sizeof err); /* tiny: forces growth */
    size_t peak[3];
    for (int s = 0; s < 3; s++) {
        nn_ctx_reset(ctx);
        cr_expect_eq(nn_arena_used(nn_ctx_arena(ctx)), 0u);
        nn_tensor *x = rand_tensor(ctx, 2, 1, 16, 16, 1);
        nn_tensor *loss = nn_loss_lsgan(ctx, net_fwd(ctx, &n, x), 1.0f);
        cr_assert(nn_backward(ctx, loss, err, sizeof err) == 0, "%s", err);
        peak[s] = nn_arena_peak(nn_ctx_arena(ctx));
    }
    cr_expect(peak[0] > 4096);
    cr_expect_eq(peak[1], peak[0]);
    cr_expect_eq(peak[2], peak[0]);
    nn_ctx_free(ctx);
    nn_params_free(n.p);

    nn_arena *a = nn_arena_new(1000);
    void *p1 = nn_arena_alloc(a, 10), *p2 = nn_arena_alloc(a, 5000);
    cr_expect(p1 && p2 && ((uintptr_t)p1 % 64) == 0 && ((uintptr_t)p2 % 64) == 0);
    nn_arena_free(a);
}

Test(nn_autograd, errors_are_sticky)
{
    nn_ctx *ctx = ctx_new();
    nn_tensor *x = rand_tensor(ctx, 1, 3, 5, 5, 1), *w = rand_tensor(ctx, 2, 4, 3, 3, 2);
    cr_expect(!nn_conv2d(ctx, x, w, NULL, 1, 1, 1));
    cr_assert(nn_ctx_error(ctx));
    cr_expect(strstr(nn_ctx_error(ctx), "conv2d"), "%s", nn_ctx_error(ctx));
    cr_expect(!nn_relu(ctx, x), "an op after an error must fail");
    cr_expect(!nn_relu(ctx, NULL));
    nn_ctx_reset(ctx);
    cr_expect(!nn_ctx_error(ctx));
    x = rand_tensor(ctx, 1, 3, 5, 5, 1);
    cr_expect(!nn_add(ctx, x, rand_tensor(ctx, 1, 3, 5, 4, 1)));
    nn_ctx_reset(ctx);
    x = rand_tensor(ctx, 1, 3, 5, 5, 1);
    cr_expect(!nn_pad_reflect(ctx, x, 5, 0, 0, 0), "reflect pad >= size must fail");
    nn_ctx_reset(ctx);
    int32_t lab[4] = {0, 1, 7, 0};
    nn_tensor *y = nn_labels_from(ctx, 1, 2, 2, lab);
    cr_expect(!nn_loss_cross_entropy(ctx, rand_tensor(ctx, 1, 3, 2, 2, 1), y, NULL),
              "label 7 of 3 classes must fail");
    nn_ctx_free(ctx);
}

Test(nn_autograd, argmax_and_names)
{
    nn_ctx *ctx = ctx_new();
    float d[12] = {0, 5, 1, 1, 2, 0, 0, 3, 1, 9, 0, 2}; /* [1, 3, 2, 2] */
    nn_tensor *x = nn_tensor_from(ctx, 1, 3, 2, 2, d);
    int32_t out[4];
    cr_assert_eq(nn_argmax_channels(ctx, x, out), 0);
    cr_expect(out[0] == 1 && out[1] == 2 && out[2] == 0 && out[3] == 1);
    cr_expect_str_eq(nn_op_name(NN_OP_CONV2D), "conv2d");
    cr_expect_str_eq(nn_op_name(NN_OP_LOSS_LSGAN), "loss_lsgan");
    cr_expect_str_eq(nn_op_name(NN_OP_COUNT), "?");
    cr_expect_str_eq(nn_backend_name(nn_backend_by_name("cpu")), "cpu");
    nn_ctx_free(ctx);
}

Test(nn_autograd, schedules)
{
    cr_expect_float_eq(nn_lr_step_decay(2e-4f, 0, 2, 0.9f), 2e-4f, 1e-12);
    cr_expect_float_eq(nn_lr_step_decay(2e-4f, 1, 2, 0.9f), 2e-4f, 1e-12);
    cr_expect_float_eq(nn_lr_step_decay(2e-4f, 2, 2, 0.9f), 1.8e-4f, 1e-10);
    cr_expect_float_eq(nn_lr_step_decay(2e-4f, 5, 2, 0.9f), 2e-4f * 0.81f, 1e-10);
    /* CycleGAN: 100 constant + 100 decay epochs */
    cr_expect_float_eq(nn_lr_linear_decay(1.0f, 98, 100, 100), 1.0f, 1e-7);
    cr_expect_float_eq(nn_lr_linear_decay(1.0f, 99, 100, 100), 1.0f, 1e-7);
    cr_expect_float_eq(nn_lr_linear_decay(1.0f, 100, 100, 100), 1.0f - 1.0f / 101, 1e-6);
    cr_expect_float_eq(nn_lr_linear_decay(1.0f, 199, 100, 100), 1.0f / 101, 1e-6);
    cr_expect_float_eq(nn_lr_linear_decay(1.0f, 400, 100, 100), 0.0f, 1e-7);
}

Test(nn_autograd, threads)
{
    cr_expect_eq(nn_set_threads(1), 1);
    cr_expect_eq(nn_get_threads(), 1);
    setenv("MKDSEG_THREADS", "3", 1);
    cr_expect_eq(nn_set_threads(0), 3);
    unsetenv("MKDSEG_THREADS");
    cr_expect(nn_set_threads(0) >= 1);
    cr_expect_eq(nn_set_threads(2), 2);
}

/* Scopes free what a no_grad block made and keep (move) its result; recording fails. */
Test(nn_autograd, scope_frees_inference_temporaries)
{
    tiny_net n = net_new(2, 12);
    nn_ctx *ctx = ctx_new();
    nn_ctx_set_grad_enabled(ctx, 0);
    nn_tensor *x = rand_tensor(ctx, 1, 2, 16, 16, 1);
    nn_tensor *ref = net_fwd(ctx, &n, x);
    size_t nref = nn_numel(ref);
    float *want = malloc(nref * 4);
    memcpy(want, nn_f32(ref), nref * 4);
    size_t used0 = nn_arena_used(nn_ctx_arena(ctx));
    for (int i = 0; i < 3; i++) {
        nn_scope s = nn_ctx_scope(ctx);
        nn_tensor *y = nn_ctx_scope_end(ctx, s, net_fwd(ctx, &n, x));
        cr_assert(y, "%s", nn_ctx_error(ctx));
        cr_expect(memcmp(nn_f32(y), want, nref * 4) == 0, "kept tensor changed");
        cr_expect(nn_f32(x)[0] == nn_f32(x)[0] && x->n == 1, "older tensor damaged");
        /* only y (struct + data, 64-byte blocks) stays */
        cr_expect(nn_arena_used(nn_ctx_arena(ctx)) <= used0 + nref * 4 + 128,
                  "scope kept %zu bytes", nn_arena_used(nn_ctx_arena(ctx)) - used0);
        nn_ctx_scope_end(ctx, s, NULL);
        cr_expect_eq(nn_arena_used(nn_ctx_arena(ctx)), used0);
    }
    nn_ctx_set_grad_enabled(ctx, 1);
    nn_scope s = nn_ctx_scope(ctx);
    cr_assert(net_fwd(ctx, &n, x));
    cr_expect(!nn_ctx_scope_end(ctx, s, NULL) && nn_ctx_error(ctx),
              "a scope over recorded ops must fail");
    free(want);
    nn_ctx_free(ctx);
    nn_params_free(n.p);
}

/* The fused inference conv (BN folded, activation as a oneDNN post-op) equals the composed
 * ops within 1e-5 of the output scale; with gradients it records the composition. */
Test(nn_autograd, conv2d_bn_act_fused_equals_composed)
{
    char err[256];
    nn_ctx *ctx = ctx_new();
    nn_rng r;
    nn_rng_seed(&r, 5);
    nn_tensor *x = rand_tensor(ctx, 2, 3, 9, 8, 1), *w = rand_tensor(ctx, 5, 3, 3, 3, 2);
    nn_tensor *b = rand_tensor(ctx, 5, 1, 1, 1, 3), *ga = rand_tensor(ctx, 5, 1, 1, 1, 4);
    nn_tensor *be = rand_tensor(ctx, 5, 1, 1, 1, 5), *rm = rand_tensor(ctx, 5, 1, 1, 1, 6);
    nn_tensor *rv = nn_tensor_new(ctx, 5, 1, 1, 1);
    nn_init_uniform(rv, 0.5f, 2.0f, &r);
    nn_ctx_set_grad_enabled(ctx, 0);
    for (int act = NN_ACT_NONE; act <= NN_ACT_SIGMOID; act++)
        for (int bn = 0; bn < 2; bn++)
            for (int bias = 0; bias < 2; bias++) {
                nn_tensor *bb = bias ? b : NULL;
                nn_tensor *f =
                    nn_conv2d_bn_act(ctx, x, w, bb, 2, 1, 1, bn ? ga : NULL, bn ? be : NULL,
                                     bn ? rm : NULL, bn ? rv : NULL, 1e-5f, (nn_act)act, 0.2f);
                nn_tensor *c = nn_conv2d(ctx, x, w, bb, 2, 1, 1);
                if (bn)
                    c = nn_batch_norm(ctx, c, ga, be, rm, rv, 0, 0.1f, 1e-5f);
                c = act == NN_ACT_RELU         ? nn_relu(ctx, c)
                    : act == NN_ACT_LEAKY_RELU ? nn_leaky_relu(ctx, c, 0.2f)
                    : act == NN_ACT_TANH       ? nn_tanh(ctx, c)
                    : act == NN_ACT_SIGMOID    ? nn_sigmoid(ctx, c)
                                               : c;
                cr_assert(f && c, "%s", nn_ctx_error(ctx));
                cr_assert_eq(nn_numel(f), nn_numel(c));
                cr_expect(rel(nn_f32(f), nn_f32(c), nn_numel(c)) <= 1e-5,
                          "act %d bn %d bias %d: fused differs by %.3g", act, bn, bias,
                          rel(nn_f32(f), nn_f32(c), nn_numel(c)));
            }
    cr_expect_eq(nn_ctx_tape_len(ctx), 0u);
    nn_ctx_set_grad_enabled(ctx, 1);
    nn_requires_grad(w);
    nn_tensor *y =
        nn_conv2d_bn_act(ctx, x, w, b, 1, 1, 1, ga, be, rm, rv, 1e-5f, NN_ACT_LEAKY_RELU, 0.2f);
    cr_expect_eq(nn_ctx_tape_len(ctx), 3u, "conv, batch_norm, leaky_relu recorded");
    cr_assert(nn_backward(ctx, nn_loss_lsgan(ctx, y, 0.5f), err, sizeof err) == 0, "%s", err);
    cr_expect(w->grad_valid);
    nn_ctx_free(ctx);
}

#include <omp.h>
#include <pthread.h>

static void *thread_body(void *arg)
{
    int *seen = arg;
    nn_ctx *ctx = ctx_new();
    nn_tensor *x = rand_tensor(ctx, 1, 1, 4, 4, 1);
    cr_assert(nn_relu(ctx, x));
    *seen = omp_get_max_threads();
    nn_ctx_free(ctx);
    return NULL;
}

/* The engine's thread count also holds in another pthread (a server worker). */
Test(nn_autograd, threads_in_worker_pthread)
{
    int seen = 0;
    pthread_t t;
    nn_set_threads(1);
    cr_assert(pthread_create(&t, NULL, thread_body, &seen) == 0);
    pthread_join(t, NULL);
    cr_expect_eq(seen, 1, "worker thread ran with %d OpenMP threads", seen);
}

/* Backward reuses the gradient buffers of intermediate tensors: along a chain of 20 ops the
 * backward pass needs a few gradient buffers, not 20. */
Test(nn_autograd, backward_reuses_intermediate_gradients)
{
    char err[256];
    nn_ctx *ctx = ctx_new();
    nn_tensor *x = nn_requires_grad(rand_tensor(ctx, 1, 4, 64, 64, 3));
    size_t S = nn_numel(x) * 4;
    nn_tensor *h = x;
    for (int i = 0; i < 20; i++)
        h = i % 2 ? nn_tanh(ctx, h) : nn_scale(ctx, h, 0.9f);
    nn_tensor *loss = nn_loss_lsgan(ctx, h, 0.1f);
    size_t fwd = nn_arena_used(nn_ctx_arena(ctx));
    cr_assert(nn_backward(ctx, loss, err, sizeof err) == 0, "%s", err);
    size_t extra = nn_arena_peak(nn_ctx_arena(ctx)) - fwd;
    cr_expect(extra <= 4 * S, "backward used %zu bytes for gradients (%zu per tensor)", extra, S);
    cr_expect(x->grad_valid && !h->grad, "leaf keeps its gradient, intermediates do not");
    /* and the result is right: d/dx of mean((f(x) - 0.1)^2) by the same chain twice */
    float *g1 = copy_grad(x);
    x->grad_valid = 0;
    cr_assert(nn_backward(ctx, loss, err, sizeof err) == 0, "%s", err);
    cr_expect(rel(x->grad, g1, nn_numel(x)) == 0.0, "second backward differs");
    free(g1);
    nn_ctx_free(ctx);
}

/* 2x2 / stride-2 max pooling (the U-Net's; the CPU backend writes its window out) keeps the
 * general rule on ties and NaN: the first maximum in row order takes the gradient, a NaN wins */
Test(nn_autograd, max_pool_2x2_ties_go_to_the_first_maximum_and_nan_wins)
{
    enum { C = 3, H = 6, W = 20, OH = 3, OW = 10 }; /* 8 outputs a row at once, then 2 */
    char err[256];
    nn_ctx *ctx = nn_ctx_new(nn_backend_cpu(), 1 << 20, err, sizeof err);
    cr_assert(ctx, "%s", err);
    float xh[C * H * W], far[C * OH * OW];
    nn_rng r;
    nn_rng_seed(&r, 5);
    for (int i = 0; i < C * H * W; i++)
        xh[i] = (float)(nn_rng_u64(&r) % 3); /* three levels: most windows tie */
    for (int i = 0; i < C * OH * OW; i++)
        far[i] = -100.0f; /* every output above its target: d|y - t| / dy = +1/n */
    nn_tensor *x = nn_requires_grad(nn_tensor_from(ctx, 1, C, H, W, xh));
    nn_tensor *y = nn_max_pool2d(ctx, x, 2, 2);
    nn_tensor *loss = nn_loss_l1(ctx, y, nn_tensor_from(ctx, 1, C, OH, OW, far));
    cr_assert(loss);
    cr_assert_eq(nn_backward(ctx, loss, err, sizeof err), 0, "%s", err);
    float yh[C * OH * OW], gx[C * H * W];
    nn_tensor_read(y, yh);
    memcpy(gx, x->grad, sizeof gx);
    const float g = 1.0f / (C * OH * OW);
    int ties = 0;
    for (int c = 0; c < C; c++)
        for (int oh = 0; oh < OH; oh++)
            for (int ow = 0; ow < OW; ow++) {
                const float *p = xh + c * H * W;
                int at[4] = {2 * oh * W + 2 * ow, 2 * oh * W + 2 * ow + 1,
                             (2 * oh + 1) * W + 2 * ow, (2 * oh + 1) * W + 2 * ow + 1};
                int b = 0;
                for (int q = 1; q < 4; q++)
                    if (p[at[q]] > p[at[b]])
                        b = q;
                for (int q = 0; q < 4; q++)
                    ties += q != b && p[at[q]] == p[at[b]];
                cr_expect_eq(yh[(c * OH + oh) * OW + ow], p[at[b]]);
                for (int q = 0; q < 4; q++)
                    cr_expect_float_eq(gx[c * H * W + at[q]], q == b ? g : 0.0f, 1e-9,
                                       "plane %d window (%d, %d) element %d", c, oh, ow, q);
            }
    cr_expect_gt(ties, 10, "the input must exercise ties");
    /* a NaN anywhere in a window is its maximum */
    xh[W + 1] = NAN;             /* window (0, 0) of plane 0, second row */
    xh[H * W + 2 * W + 3] = NAN; /* window (1, 1) of plane 1, first row */
    nn_ctx_reset(ctx);
    y = nn_max_pool2d(ctx, nn_tensor_from(ctx, 1, C, H, W, xh), 2, 2);
    nn_tensor_read(y, yh);
    for (int i = 0; i < C * OH * OW; i++)
        cr_expect_eq(isnan(yh[i]), i == 0 || i == OH * OW + OW + 1, "output %d: %g", i, yh[i]);
    nn_ctx_free(ctx);
}

/* One norm (bn: batch norm, else instance norm) followed by a ReLU, built either as the fused
 * op (nn_*_norm_relu) or as nn_relu of the norm; z = y + x, so that x's gradient arrives from
 * two ops (the norm's accumulates). Returns z's values, x's, gamma's and beta's gradients and
 * the running statistics after the step, concatenated into out. */
static size_t norm_relu_run(int fused, int bn, int affine, int training, float *out)
{
    enum { N = 3, C = 4, H = 5, W = 7 };
    nn_ctx *ctx = ctx_new();
    nn_tensor *x = nn_requires_grad(rand_tensor(ctx, N, C, H, W, 21));
    nn_tensor *ga = affine ? nn_requires_grad(rand_tensor(ctx, C, 1, 1, 1, 22)) : NULL;
    nn_tensor *be = affine ? nn_requires_grad(rand_tensor(ctx, C, 1, 1, 1, 23)) : NULL;
    nn_tensor *rm = rand_tensor(ctx, C, 1, 1, 1, 24), *rv = rand_tensor(ctx, C, 1, 1, 1, 25);
    for (int c = 0; c < C; c++)
        nn_f32(rv)[c] = 0.5f + fabsf(nn_f32(rv)[c]);
    nn_tensor *y;
    if (bn)
        y = fused ? nn_batch_norm_relu(ctx, x, ga, be, rm, rv, training, 0.1f, 1e-5f)
                  : nn_relu(ctx, nn_batch_norm(ctx, x, ga, be, rm, rv, training, 0.1f, 1e-5f));
    else
        y = fused ? nn_instance_norm_relu(ctx, x, ga, be, 1e-5f)
                  : nn_relu(ctx, nn_instance_norm(ctx, x, ga, be, 1e-5f));
    nn_tensor *z = nn_add(ctx, y, x);
    cr_assert(z, "%s", nn_ctx_error(ctx));
    nn_tensor *gy = rand_tensor(ctx, N, C, H, W, 26);
    char err[256];
    cr_assert(nn_backward_from(ctx, z, nn_f32(gy), err, sizeof err) == 0, "%s", err);
    size_t k = 0, nx = nn_numel(x);
    memcpy(out + k, nn_f32(z), nx * 4), k += nx;
    memcpy(out + k, x->grad, nx * 4), k += nx;
    if (affine) {
        memcpy(out + k, ga->grad, C * 4), k += C;
        memcpy(out + k, be->grad, C * 4), k += C;
    }
    memcpy(out + k, nn_f32(rm), C * 4), k += C;
    memcpy(out + k, nn_f32(rv), C * 4), k += C;
    nn_ctx_free(ctx);
    return k;
}

Test(nn_autograd, norm_relu_fused_equals_composition)
{
    /* bit for bit: the same float operations, the ReLU's mask read from the fused op's output
     * instead of the norm's */
    static float a[1024], b[1024];
    for (int bn = 0; bn < 2; bn++)
        for (int affine = 0; affine < 2; affine++)
            for (int training = !bn; training < 2; training++) { /* instance norm: always */
                size_t na = norm_relu_run(0, bn, affine, training, a);
                size_t nb = norm_relu_run(1, bn, affine, training, b);
                cr_assert(na == nb && na > 840);
                size_t diff = 0;
                for (size_t i = 0; i < na; i++)
                    diff += memcmp(&a[i], &b[i], sizeof a[i]) != 0;
                cr_expect_eq(diff, 0, "%s affine %d training %d: %zu of %zu values differ",
                             bn ? "batch_norm" : "instance_norm", affine, training, diff, na);
            }
}

/* z = relu(a + b) + a, the ReLU fused into the add or not: z, a's gradient (from two ops) and
 * b's, concatenated into out */
static size_t add_relu_run(int fused, float *out)
{
    nn_ctx *ctx = ctx_new();
    nn_tensor *a = nn_requires_grad(rand_tensor(ctx, 2, 3, 5, 9, 31));
    nn_tensor *b = nn_requires_grad(rand_tensor(ctx, 2, 3, 5, 9, 32));
    nn_tensor *y = fused ? nn_add_relu(ctx, a, b) : nn_relu(ctx, nn_add(ctx, a, b));
    nn_tensor *z = nn_add(ctx, y, a), *gy = rand_tensor(ctx, 2, 3, 5, 9, 33);
    char err[256];
    cr_assert(z && nn_backward_from(ctx, z, nn_f32(gy), err, sizeof err) == 0, "%s", err);
    size_t n = nn_numel(a);
    memcpy(out, nn_f32(z), n * 4);
    memcpy(out + n, a->grad, n * 4);
    memcpy(out + 2 * n, b->grad, n * 4);
    nn_ctx_free(ctx);
    return 3 * n;
}

Test(nn_autograd, add_relu_fused_equals_composition)
{
    static float u[1024], v[1024];
    size_t n = add_relu_run(0, u);
    cr_assert_eq(add_relu_run(1, v), n);
    size_t diff = 0, masked = 0;
    for (size_t i = 0; i < n; i++) {
        diff += memcmp(&u[i], &v[i], sizeof u[i]) != 0;
        masked += i >= 2 * n / 3 && u[i] == 0.0f; /* b's gradient is 0 where the sum is not > 0 */
    }
    cr_expect_eq(diff, 0, "%zu of %zu values differ", diff, n);
    cr_expect(masked > 0 && masked < n / 3, "the ReLU masks %zu of %zu", masked, n / 3);
}
