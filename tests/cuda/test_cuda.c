/* test_cuda.c: the CUDA backend against the PyTorch golden files (tests/golden/ops) and
 * against the CPU backend (build/tests/cuda; `make cuda-test`, tests/gpu/check.sh).
 *
 * TF32 is off (NVIDIA_TF32_OVERRIDE=0 is set before the first CUDA call, and the backend
 * runs cuDNN with FMA math unless MKDSEG_CUDA_TF32=1). Errors are max |got - ref| / scale,
 * scale = max(max |ref|, 1e-6) (tests/lib/golden.h). Tolerances per op family:
 *   convolutions (cuDNN may use Winograd/FFT/implicit GEMM: other summation orders)
 *                                         forward 2e-4, gradients 2e-3
 *   everything else                       forward 1e-4, gradients 1e-3 (as the CPU's tests)
 * against both the golden file and the CPU backend on the same inputs. BN running
 * statistics: 1e-4. Adam: 5 steps, 1e-4 (as the CPU). The mkd iteration: the losses of one
 * trainer_step within 1e-3 relative, and every parameter of the six networks within
 * 2.5 lr + 1e-5 absolute of the CPU's (one Adam step moves a parameter by about lr, in the
 * direction of its gradient's sign; a gradient that is zero up to rounding may get either
 * sign), with at most 1% of the elements further apart than 0.1 lr.
 *
 * Without a GPU every test is skipped. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/golden.h"
#include "../lib/ttrain.h"
#include "nn.h"
#include "nn_backend.h"
#include "train.h"
#include "infer.h"
#include "phantom.h"
#include <unistd.h>

/* kernels/cuda.h (C part) */
const nn_backend *nn_backend_cuda(void);
int nn_cuda_device_count(void);
const char *nn_cuda_device_describe(void);

static void setup(void)
{
    setenv("NVIDIA_TF32_OVERRIDE", "0", 1);
    unsetenv("MKDSEG_CUDA_TF32");
    nn_set_threads(1);
}

#define NEED_GPU()                                                                                 \
    do {                                                                                           \
        setup();                                                                                   \
        if (nn_cuda_device_count() <= 0)                                                           \
            cr_skip_test("no CUDA device: %s", nn_cuda_device_describe());                         \
    } while (0)

/* ---- host copies ---------------------------------------------------------------------- */

static float *host_data(const nn_tensor *t)
{
    float *h = malloc(nn_numel(t) * 4 + 4);
    cr_assert(h);
    cr_assert(nn_tensor_read(t, h) == 0);
    return h;
}

static float *host_grad(const nn_tensor *t)
{
    cr_assert(t->grad && t->grad_valid, "no gradient");
    nn_tensor v = *t;
    v.data = t->grad;
    return host_data(&v);
}

/* ---- one golden case on one backend ---------------------------------------------------- */

typedef struct {
    const golden_file *g;
    nn_ctx *ctx;
    char names[16][32];
    nn_tensor *ts[16];
    int n;
} env;

static nn_tensor *T(env *e, const char *name)
{
    for (int i = 0; i < e->n; i++)
        if (!strcmp(e->names[i], name))
            return e->ts[i];
    const golden_entry *ge = golden_get(e->g, name);
    if (!ge)
        return NULL;
    int d[4];
    cr_assert(golden_nchw(e->g, name, d) == 0, "%s: not 4-D", name);
    nn_tensor *t = ge->dtype == 1 ? nn_labels_from(e->ctx, d[0], d[2], d[3], ge->data)
                                  : nn_tensor_from(e->ctx, d[0], d[1], d[2], d[3], ge->data);
    cr_assert(t, "%s: %s", name, nn_ctx_error(e->ctx));
    char gname[48];
    snprintf(gname, sizeof gname, "grad_%s", name);
    if (golden_get(e->g, gname))
        nn_requires_grad(t);
    cr_assert(e->n < 16);
    snprintf(e->names[e->n], sizeof e->names[0], "%s", name);
    e->ts[e->n++] = t;
    return t;
}

static int starts(const char *s, const char *p) { return !strncmp(s, p, strlen(p)); }

static nn_tensor *build(env *e, const char *cs)
{
    nn_ctx *c = e->ctx;
    const golden_entry *ie = golden_get(e->g, "iargs");
    const int *ia = ie ? (const int *)ie->data : NULL;
    const float *fa = golden_f32(e->g, "fargs");
    if (starts(cs, "conv2d"))
        return nn_conv2d(c, T(e, "x"), T(e, "w"), T(e, "b"), ia[0], ia[1], ia[2]);
    if (starts(cs, "convt"))
        return nn_conv_transpose2d(c, T(e, "x"), T(e, "w"), T(e, "b"), ia[0], ia[1], ia[2]);
    if (starts(cs, "pad_reflect"))
        return nn_pad_reflect(c, T(e, "x"), ia[0], ia[1], ia[2], ia[3]);
    if (starts(cs, "pad_zero"))
        return nn_pad_zero(c, T(e, "x"), ia[0], ia[1], ia[2], ia[3]);
    if (starts(cs, "instance_norm"))
        return nn_instance_norm(c, T(e, "x"), T(e, "gamma"), T(e, "beta"), fa[0]);
    if (starts(cs, "batch_norm"))
        return nn_batch_norm(c, T(e, "x"), T(e, "gamma"), T(e, "beta"), T(e, "rmean"), T(e, "rvar"),
                             ia[0], fa[0], fa[1]);
    if (!strcmp(cs, "relu"))
        return nn_relu(c, T(e, "x"));
    if (!strcmp(cs, "leaky_relu"))
        return nn_leaky_relu(c, T(e, "x"), fa[0]);
    if (!strcmp(cs, "tanh"))
        return nn_tanh(c, T(e, "x"));
    if (!strcmp(cs, "sigmoid"))
        return nn_sigmoid(c, T(e, "x"));
    if (!strcmp(cs, "softmax"))
        return nn_softmax(c, T(e, "x"));
    if (!strcmp(cs, "scale"))
        return nn_scale(c, T(e, "x"), fa[0]);
    if (!strcmp(cs, "add"))
        return nn_add(c, T(e, "a"), T(e, "b2"));
    if (!strcmp(cs, "concat")) {
        nn_tensor *xs[3] = {T(e, "x0"), T(e, "x1"), T(e, "x2")};
        return nn_concat(c, xs, 3);
    }
    if (starts(cs, "max_pool"))
        return nn_max_pool2d(c, T(e, "x"), ia[0], ia[1]);
    if (starts(cs, "bilinear"))
        return nn_resize_bilinear(c, T(e, "x"), ia[0], ia[1]);
    if (starts(cs, "nearest"))
        return nn_resize_nearest(c, T(e, "x"), ia[0], ia[1]);
    if (starts(cs, "loss_ce"))
        return nn_loss_cross_entropy(c, T(e, "x"), T(e, "labels"), T(e, "weights"));
    if (starts(cs, "loss_dice"))
        return nn_loss_dice(c, T(e, "x"), T(e, "labels"), ia[0], fa[0]);
    if (!strcmp(cs, "loss_kd"))
        return nn_loss_kd(c, T(e, "target"), T(e, "x"));
    if (!strcmp(cs, "loss_l1"))
        return nn_loss_l1(c, T(e, "a"), T(e, "b2"));
    if (!strcmp(cs, "loss_lsgan"))
        return nn_loss_lsgan(c, T(e, "x"), fa[0]);
    cr_assert_fail("unknown case %s", cs);
    return NULL;
}

/* Results of one case on one backend, host copies: out, rmean/rvar after (BN), and the
 * gradient of every "grad_<name>" entry in file order. */
typedef struct {
    float *out, *rm, *rv;
    float *grad[16];
    size_t nout;
} result;

static void run_on(const nn_backend *be, const golden_file *g, const char *cs, result *r)
{
    char err[256];
    env e = {0};
    e.g = g;
    e.ctx = nn_ctx_new(be, 1 << 20, err, sizeof err);
    cr_assert(e.ctx, "%s", err);
    memset(r, 0, sizeof *r);
    nn_tensor *out = build(&e, cs);
    cr_assert(out, "%s on %s: %s", cs, nn_backend_name(be), nn_ctx_error(e.ctx));
    r->nout = nn_numel(out);
    r->out = host_data(out);
    if (starts(cs, "batch_norm")) {
        r->rm = host_data(T(&e, "rmean"));
        r->rv = host_data(T(&e, "rvar"));
    }
    cr_assert(nn_backward_from(e.ctx, out, golden_f32(g, "gy"), err, sizeof err) == 0,
              "%s on %s: %s", cs, nn_backend_name(be), err);
    int k = 0;
    for (int i = 0; i < g->count && k < 16; i++) {
        const golden_entry *ge = &g->e[i];
        if (strncmp(ge->name, "grad_", 5))
            continue;
        nn_tensor *t = T(&e, ge->name + 5);
        cr_assert(t && t->grad && t->grad_valid, "%s on %s: no gradient for %s", cs,
                  nn_backend_name(be), ge->name + 5);
        cr_assert_eq(nn_numel(t), ge->numel);
        r->grad[k++] = host_grad(t);
    }
    nn_ctx_free(e.ctx);
}

static void result_free(result *r)
{
    free(r->out);
    free(r->rm);
    free(r->rv);
    for (int k = 0; k < 16; k++)
        free(r->grad[k]);
}

static void cmp(const char *cs, const char *what, const char *vs, const float *got,
                const float *ref, size_t n, double tol)
{
    double err = golden_rel_err(got, ref, n, 1e-6);
    cr_expect(err <= tol, "%s %s vs %s: relative error %.3g > %.3g", cs, what, vs, err, tol);
}

static void run_case(const char *cs)
{
    NEED_GPU();
    char path[256], err[256];
    snprintf(path, sizeof path, "tests/golden/ops/%s.bin", cs);
    golden_file *g = golden_load(path, err, sizeof err);
    cr_assert(g, "%s", err);
    int conv = starts(cs, "conv");
    double tf = conv ? 2e-4 : 1e-4, tg = conv ? 2e-3 : 1e-3;
    result rg, rc;
    run_on(nn_backend_cuda(), g, cs, &rg);
    run_on(nn_backend_cpu(), g, cs, &rc);
    const golden_entry *ro = golden_get(g, "out");
    cr_assert_eq(rg.nout, ro->numel, "%s: output size %zu, want %zu", cs, rg.nout, ro->numel);
    cmp(cs, "out", "torch", rg.out, ro->data, ro->numel, tf);
    cmp(cs, "out", "cpu", rg.out, rc.out, rg.nout, tf);
    if (rg.rm) {
        const golden_entry *m = golden_get(g, "rmean_out"), *v = golden_get(g, "rvar_out");
        cmp(cs, "rmean", "torch", rg.rm, m->data, m->numel, 1e-4);
        cmp(cs, "rvar", "torch", rg.rv, v->data, v->numel, 1e-4);
    }
    int k = 0;
    for (int i = 0; i < g->count && k < 16; i++) {
        const golden_entry *ge = &g->e[i];
        if (strncmp(ge->name, "grad_", 5))
            continue;
        cmp(cs, ge->name, "torch", rg.grad[k], ge->data, ge->numel, tg);
        cmp(cs, ge->name, "cpu", rg.grad[k], rc.grad[k], ge->numel, tg);
        k++;
    }
    cr_expect(k > 0, "%s: no gradient compared", cs);
    result_free(&rg);
    result_free(&rc);
    golden_free(g);
}

#define GOLDEN(cs)                                                                                 \
    Test(cuda_golden, cs) { run_case(#cs); }

GOLDEN(conv2d_3x3)
GOLDEN(conv2d_4x4_s2)
GOLDEN(conv2d_dil2)
GOLDEN(conv2d_1x1)
GOLDEN(conv2d_7x7)
GOLDEN(convt_3x3_s2)
GOLDEN(convt_2x2_s2)
GOLDEN(convt_4x4_s1)
GOLDEN(pad_reflect3)
GOLDEN(pad_reflect_asym)
GOLDEN(pad_zero)
GOLDEN(instance_norm)
GOLDEN(instance_norm_affine)
GOLDEN(batch_norm_train)
GOLDEN(batch_norm_eval)
GOLDEN(relu)
GOLDEN(leaky_relu)
GOLDEN(tanh)
GOLDEN(sigmoid)
GOLDEN(softmax)
GOLDEN(scale)
GOLDEN(add)
GOLDEN(concat)
GOLDEN(max_pool_2)
GOLDEN(max_pool_3s2)
GOLDEN(bilinear_up)
GOLDEN(bilinear_down)
GOLDEN(nearest_up)
GOLDEN(nearest_down)
GOLDEN(loss_ce)
GOLDEN(loss_ce_weighted)
GOLDEN(loss_dice)
GOLDEN(loss_dice_nobg)
GOLDEN(loss_kd)
GOLDEN(loss_l1)
GOLDEN(loss_lsgan)

/* ---- Adam ----------------------------------------------------------------------------- */

Test(cuda_adam, golden_5_steps)
{
    NEED_GPU();
    char err[256];
    golden_file *g = golden_load("tests/golden/ops/adam.bin", err, sizeof err);
    cr_assert(g, "%s", err);
    const float *fa = golden_f32(g, "fargs");
    const nn_backend *be = nn_backend_cuda();
    nn_params *p = nn_params_new(be, err, sizeof err);
    cr_assert(p);
    nn_tensor *w = nn_param_add(p, "w", NN_PARAM, 3, 2, 3, 3, err, sizeof err);
    nn_tensor *b = nn_param_add(p, "b", NN_PARAM, 3, 1, 1, 1, err, sizeof err);
    cr_assert(w && b, "%s", err);
    nn_tensor_write(w, golden_f32(g, "w"));
    nn_tensor_write(b, golden_f32(g, "b"));
    nn_adam_cfg cfg = {fa[0], fa[1], fa[2], fa[3], 0.0f};
    nn_adam *opt = nn_adam_new(p, cfg, err, sizeof err);
    nn_ctx *ctx = nn_ctx_new(be, 0, err, sizeof err);
    cr_assert(opt && ctx);
    for (int k = 0; k < 5; k++) {
        char nm[16];
        nn_ctx_reset(ctx);
        nn_params_zero_grad(p);
        nn_tensor *x = nn_tensor_from(ctx, 2, 2, 6, 6, golden_f32(g, "x"));
        nn_tensor *loss = nn_loss_lsgan(ctx, nn_conv2d(ctx, x, w, b, 1, 1, 1), fa[4]);
        cr_assert(loss, "%s", nn_ctx_error(ctx));
        cr_assert(nn_backward(ctx, loss, err, sizeof err) == 0, "%s", err);
        cr_assert(nn_adam_step(opt, err, sizeof err) == 0, "%s", err);
        float l = nn_scalar(loss), *hw = host_data(w), *hb = host_data(b);
        const golden_entry *e;
        snprintf(nm, sizeof nm, "loss_%d", k);
        e = golden_get(g, nm);
        cmp("adam", nm, "torch", &l, e->data, 1, 1e-4);
        snprintf(nm, sizeof nm, "w_%d", k);
        e = golden_get(g, nm);
        cmp("adam", nm, "torch", hw, e->data, e->numel, 1e-4);
        snprintf(nm, sizeof nm, "b_%d", k);
        e = golden_get(g, nm);
        cmp("adam", nm, "torch", hb, e->data, e->numel, 1e-4);
        free(hw);
        free(hb);
    }
    nn_ctx_free(ctx);
    nn_adam_free(opt);
    nn_params_free(p);
    golden_free(g);
}

/* ---- ops without a golden file: fused inference conv, argmax, scopes, errors ---------- */

static void fill(float *v, size_t n, uint64_t seed)
{
    nn_rng r;
    nn_rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++)
        v[i] = nn_rng_normal(&r);
}

/* nn_conv2d_bn_act in no_grad mode on the GPU (folded BN, activation in place) against the
 * composed ops on the CPU */
Test(cuda_ops, conv2d_bn_act_matches_cpu_composition)
{
    NEED_GPU();
    char err[256];
    enum { N = 2, IC = 3, OC = 5, H = 9, W = 7 };
    float x[N * IC * H * W], w[OC * IC * 9], b[OC], ga[OC], be_[OC], rm[OC], rv[OC];
    fill(x, sizeof x / 4, 1);
    fill(w, sizeof w / 4, 2);
    fill(b, OC, 3);
    fill(ga, OC, 4);
    fill(be_, OC, 5);
    fill(rm, OC, 6);
    for (int c = 0; c < OC; c++)
        rv[c] = 0.5f + 0.1f * (float)c;
    const nn_act acts[] = {NN_ACT_NONE, NN_ACT_RELU, NN_ACT_LEAKY_RELU, NN_ACT_TANH,
                           NN_ACT_SIGMOID};
    for (int a = 0; a < 5; a++) {
        float *outs[2];
        for (int k = 0; k < 2; k++) {
            const nn_backend *bk = k ? nn_backend_cpu() : nn_backend_cuda();
            nn_ctx *ctx = nn_ctx_new(bk, 0, err, sizeof err);
            cr_assert(ctx, "%s", err);
            nn_ctx_set_grad_enabled(ctx, 0);
            nn_tensor *tx = nn_tensor_from(ctx, N, IC, H, W, x);
            nn_tensor *tw = nn_tensor_from(ctx, OC, IC, 3, 3, w);
            nn_tensor *tb = nn_tensor_from(ctx, OC, 1, 1, 1, b);
            nn_tensor *tg = nn_tensor_from(ctx, OC, 1, 1, 1, ga);
            nn_tensor *tbe = nn_tensor_from(ctx, OC, 1, 1, 1, be_);
            nn_tensor *trm = nn_tensor_from(ctx, OC, 1, 1, 1, rm);
            nn_tensor *trv = nn_tensor_from(ctx, OC, 1, 1, 1, rv);
            nn_tensor *y;
            if (k == 0) {
                y = nn_conv2d_bn_act(ctx, tx, tw, tb, 1, 1, 1, tg, tbe, trm, trv, 1e-5f, acts[a],
                                     0.2f);
            } else {
                y = nn_batch_norm(ctx, nn_conv2d(ctx, tx, tw, tb, 1, 1, 1), tg, tbe, trm, trv, 0,
                                  0.1f, 1e-5f);
                if (acts[a] == NN_ACT_RELU)
                    y = nn_relu(ctx, y);
                if (acts[a] == NN_ACT_LEAKY_RELU)
                    y = nn_leaky_relu(ctx, y, 0.2f);
                if (acts[a] == NN_ACT_TANH)
                    y = nn_tanh(ctx, y);
                if (acts[a] == NN_ACT_SIGMOID)
                    y = nn_sigmoid(ctx, y);
            }
            cr_assert(y, "%s", nn_ctx_error(ctx));
            outs[k] = host_data(y);
            nn_ctx_free(ctx);
        }
        char what[32];
        snprintf(what, sizeof what, "act %d", a);
        cmp("conv2d_bn_act", what, "cpu", outs[0], outs[1], (size_t)N * OC * H * W, 2e-4);
        free(outs[0]);
        free(outs[1]);
    }
}

Test(cuda_ops, argmax_matches_cpu)
{
    NEED_GPU();
    char err[256];
    enum { N = 2, K = 6, H = 17, W = 13 };
    float x[N * K * H * W];
    fill(x, sizeof x / 4, 9);
    int32_t a[2][N * H * W];
    for (int k = 0; k < 2; k++) {
        nn_ctx *ctx = nn_ctx_new(k ? nn_backend_cpu() : nn_backend_cuda(), 0, err, sizeof err);
        cr_assert(ctx, "%s", err);
        nn_tensor *t = nn_tensor_from(ctx, N, K, H, W, x);
        cr_assert(nn_argmax_channels(ctx, t, a[k]) == 0, "%s", nn_ctx_error(ctx));
        nn_ctx_free(ctx);
    }
    cr_expect(memcmp(a[0], a[1], sizeof a[0]) == 0, "argmax differs between GPU and CPU");
}

/* a scope moves its kept tensor down to the scope's start: here the kept tensor (4 KiB) is
 * larger than the distance it moves (2 KiB), the overlapping case of the backend's mem_move */
Test(cuda_ops, scope_keeps_its_tensor)
{
    NEED_GPU();
    char err[256];
    float x[256], y[4 * 256];
    fill(x, 256, 11);
    nn_ctx *ctx = nn_ctx_new(nn_backend_cuda(), 0, err, sizeof err);
    cr_assert(ctx, "%s", err);
    nn_ctx_set_grad_enabled(ctx, 0);
    nn_tensor *t = nn_tensor_from(ctx, 1, 4, 8, 8, x);
    nn_scope s = nn_ctx_scope(ctx);
    nn_tensor *r = nn_relu(ctx, nn_scale(ctx, t, 2.0f));
    nn_tensor *xs[4] = {r, r, r, r};
    nn_tensor *u = nn_ctx_scope_end(ctx, s, nn_concat(ctx, xs, 4));
    cr_assert(u, "%s", nn_ctx_error(ctx));
    cr_assert(u->c == 16);
    cr_assert(nn_tensor_read(u, y) == 0);
    for (int k = 0; k < 4; k++)
        for (int i = 0; i < 256; i++)
            cr_expect_float_eq(y[k * 256 + i], x[i] > 0 ? 2 * x[i] : 0.0f, 1e-6f,
                               "copy %d element %d", k, i);
    nn_ctx_free(ctx);
}

Test(cuda_ops, bad_label_fails_the_loss)
{
    NEED_GPU();
    char err[256];
    float x[2 * 3 * 4 * 4];
    int32_t lab[2 * 4 * 4] = {0};
    fill(x, sizeof x / 4, 12);
    lab[7] = 3; /* 3 classes: 0..2 */
    nn_ctx *ctx = nn_ctx_new(nn_backend_cuda(), 0, err, sizeof err);
    cr_assert(ctx, "%s", err);
    nn_tensor *t = nn_tensor_from(ctx, 2, 3, 4, 4, x);
    nn_tensor *l = nn_loss_cross_entropy(ctx, t, nn_labels_from(ctx, 2, 4, 4, lab), NULL);
    cr_expect_null(l);
    cr_expect(nn_ctx_error(ctx) && strstr(nn_ctx_error(ctx), "label"), "error: %s",
              nn_ctx_error(ctx) ? nn_ctx_error(ctx) : "(none)");
    nn_ctx_free(ctx);
    /* labels of unknown range (not uploaded from the host): the device's count decides, for
     * both losses; in range they pass */
    for (int op = 0; op < 2; op++)
        for (int badl = 0; badl < 2; badl++) {
            lab[7] = badl ? 3 : 2;
            ctx = nn_ctx_new(nn_backend_cuda(), 0, err, sizeof err);
            cr_assert(ctx, "%s", err);
            t = nn_tensor_from(ctx, 2, 3, 4, 4, x);
            nn_tensor *lt = nn_labels_from(ctx, 2, 4, 4, lab);
            cr_assert(lt);
            lt->lab_known = 0;
            l = op ? nn_loss_dice(ctx, nn_softmax(ctx, t), lt, 0, 1.0f)
                   : nn_loss_cross_entropy(ctx, t, lt, NULL);
            cr_expect(badl ? l == NULL : l != NULL, "%s, label %d: %s", op ? "dice" : "ce", lab[7],
                      nn_ctx_error(ctx) ? nn_ctx_error(ctx) : "(no error)");
            nn_ctx_free(ctx);
        }
}

/* gradients accumulate (two uses of one parameter; the cuDNN beta = 1 paths) */
Test(cuda_ops, parameter_used_twice_accumulates_like_cpu)
{
    NEED_GPU();
    char err[256];
    float x[2 * 3 * 8 * 8], w[4 * 3 * 9], b[4];
    fill(x, sizeof x / 4, 21);
    fill(w, sizeof w / 4, 22);
    fill(b, 4, 23);
    float *gw[2], *gb[2], *gx[2], loss[2];
    for (int k = 0; k < 2; k++) {
        const nn_backend *be = k ? nn_backend_cpu() : nn_backend_cuda();
        nn_params *p = nn_params_new(be, err, sizeof err);
        nn_tensor *tw = nn_param_add(p, "w", NN_PARAM, 4, 3, 3, 3, err, sizeof err);
        nn_tensor *tb = nn_param_add(p, "b", NN_PARAM, 4, 1, 1, 1, err, sizeof err);
        cr_assert(tw && tb, "%s", err);
        nn_tensor_write(tw, w);
        nn_tensor_write(tb, b);
        nn_ctx *ctx = nn_ctx_new(be, 0, err, sizeof err);
        nn_tensor *tx = nn_requires_grad(nn_tensor_from(ctx, 2, 3, 8, 8, x));
        nn_tensor *y1 = nn_conv2d(ctx, tx, tw, tb, 1, 1, 1);
        nn_tensor *y2 = nn_conv2d(ctx, tx, tw, tb, 2, 1, 1);
        nn_tensor *l = nn_add(ctx, nn_loss_lsgan(ctx, y1, 1.0f),
                              nn_loss_l1(ctx, nn_resize_nearest(ctx, y2, 8, 8), y1));
        cr_assert(l, "%s", nn_ctx_error(ctx));
        cr_assert(nn_backward(ctx, l, err, sizeof err) == 0, "%s", err);
        loss[k] = nn_scalar(l);
        gw[k] = host_grad(tw);
        gb[k] = host_grad(tb);
        gx[k] = host_grad(tx);
        nn_ctx_free(ctx);
        nn_params_free(p);
    }
    cmp("reuse", "loss", "cpu", &loss[0], &loss[1], 1, 1e-4);
    cmp("reuse", "grad_w", "cpu", gw[0], gw[1], 4 * 3 * 9, 2e-3);
    cmp("reuse", "grad_b", "cpu", gb[0], gb[1], 4, 2e-3);
    cmp("reuse", "grad_x", "cpu", gx[0], gx[1], 2 * 3 * 8 * 8, 2e-3);
    for (int k = 0; k < 2; k++) {
        free(gw[k]);
        free(gb[k]);
        free(gx[k]);
    }
}

/* ---- one full mkd iteration, GPU against CPU ------------------------------------------ */

#define S TTRAIN_S

/* method mkd at tiny sizes: S-pixel tiles, batch 2, every width 4, one generator block */
static train_config tiny_mkd(int iters, uint64_t seed)
{
    train_config c;
    train_config_default(&c);
    c.method = TM_MKD;
    c.size = S;
    c.batch = 2;
    c.seg_width = 4;
    c.ngf = 4;
    c.ngen_blocks = 1;
    c.ndf = 4;
    c.iters_per_epoch = iters;
    c.iters = iters;
    c.pool_size = 3;
    c.seed = seed;
    c.threads = 1;
    return c;
}

Test(cuda_train, mkd_iteration_matches_cpu, .timeout = 300)
{
    NEED_GPU();
    train_slices tg = ttrain_slices(6, 1, 1.0f), as = ttrain_slices(6, 2, -1.0f);
    train_config c = tiny_mkd(4, 7);
    c.classes = 3;
    char err[256];
    trainer *t[2];
    for (int k = 0; k < 2; k++) {
        t[k] = trainer_new(&c, k ? nn_backend_cpu() : nn_backend_cuda(), &tg, &as, err, sizeof err);
        cr_assert_not_null(t[k], "%s", err);
        cr_assert_eq(trainer_step(t[k], err, sizeof err), 0, "%s step: %s", k ? "cpu" : "cuda",
                     err);
    }
    const train_progress *pg = trainer_progress(t[0]), *pc = trainer_progress(t[1]);
    int nloss = 0;
    for (int l = 0; l < TL_COUNT; l++) {
        if (isnan(pc->loss[l])) {
            cr_expect(isnan(pg->loss[l]), "loss %s: cpu NaN (unused), cuda %g",
                      train_loss_name((train_loss)l), pg->loss[l]);
            continue;
        }
        double d = fabs((double)pg->loss[l] - pc->loss[l]);
        cr_expect(d <= 1e-3 * fmax(1.0, fabs(pc->loss[l])), "loss %s: cuda %.7g cpu %.7g",
                  train_loss_name((train_loss)l), pg->loss[l], pc->loss[l]);
        nloss++;
    }
    cr_expect(nloss >= 6, "only %d losses reported", nloss);
    nn_params *nets[2][6];
    for (int k = 0; k < 2; k++) {
        nets[k][0] = trainer_segmentor(t[k], 0)->params;
        nets[k][1] = trainer_segmentor(t[k], 1)->params;
        nets[k][2] = trainer_g_a2t(t[k])->params;
        nets[k][3] = trainer_g_t2a(t[k])->params;
        nets[k][4] = trainer_d_t(t[k])->params;
        nets[k][5] = trainer_d_a(t[k])->params;
    }
    static const char *names[6] = {"S_syn", "S_real", "G_a2t", "G_t2a", "D_t", "D_a"};
    double lr = fmax(c.lr_seg, c.lr_gan);
    for (int j = 0; j < 6; j++) {
        size_t ng, nc, far = 0;
        float *pgv = ttrain_snap(nets[0][j], &ng), *pcv = ttrain_snap(nets[1][j], &nc);
        cr_assert_eq(ng, nc);
        double worst = 0;
        for (size_t i = 0; i < ng; i++) {
            double d = fabs((double)pgv[i] - pcv[i]);
            worst = fmax(worst, d);
            far += d > 0.1 * lr;
        }
        cr_expect(worst <= 2.5 * lr + 1e-5, "%s: max |cuda - cpu| %.3g > %.3g", names[j], worst,
                  2.5 * lr + 1e-5);
        cr_expect(far <= ng / 100, "%s: %zu of %zu parameters differ by more than 0.1 lr", names[j],
                  far, ng);
        free(pgv);
        free(pcv);
    }
    trainer_free(t[0]);
    trainer_free(t[1]);
    ttrain_free(&tg);
    ttrain_free(&as);
}

/* ---- volume inference, GPU against CPU -------------------------------------------------- */

/* infer_volume on the GPU batches several slices per network call (MKDSEG_INFER_TILES) and
 * runs segmentor_infer's batch in one pass; the CPU goes slice by slice, sample by sample.
 * Same model file, same phantom volume, test-time augmentation on: the class maps agree but
 * for near-ties (at most 0.5% of voxels). 20 tiles a call over 12 slices of 4 tiles: groups
 * of 5, 5 and 2 slices, so a short last group is exercised too. */
static void infer_compare(const nn_backend *be)
{
    setenv("MKDSEG_INFER_TILES", "20", 1);
    train_slices tg = ttrain_slices(6, 3, 1.0f), as = ttrain_slices(6, 4, -1.0f);
    train_config c = tiny_mkd(3, 9);
    char err[256], path[300];
    trainer *t = trainer_new(&c, nn_backend_cpu(), &tg, &as, err, sizeof err);
    cr_assert_not_null(t, "%s", err);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(trainer_step(t, err, sizeof err), 0, "%s", err);
    /* weights of a larger spread than a trained model's: class maps of many classes, so the
     * comparison has boundaries to disagree on */
    nn_rng r;
    nn_rng_seed(&r, 17);
    for (int k = 0; k < 2; k++) {
        nn_params *p = trainer_segmentor(t, k)->params;
        for (int i = 0; i < nn_params_count(p); i++) {
            nn_param *q = nn_params_at(p, i);
            if (q->kind == NN_PARAM)
                nn_init_normal(&q->t, 0.0f, 0.3f, &r);
        }
    }
    const char *base = getenv("MKDSEG_TEST_TMP");
    snprintf(path, sizeof path, "%s/cuda-infer-%d.safetensors", base ? base : "/tmp",
             (int)getpid());
    prep_norm pn;
    prep_norm_default(&pn, PREP_CT);
    char norm[256];
    prep_norm_to_string(&pn, norm, sizeof norm);
    /* 32-pixel tiles at 2.5 mm: the 64x56 phantom slice (FOV about 220 mm) needs 4 tiles */
    const char *kv[] = {"mkdseg.prep.norm", norm, "mkdseg.prep.spacing", "2.5",
                        "mkdseg.prep.size", "32"};
    cr_assert_eq(trainer_save_model(t, path, kv, 3, err, sizeof err), 0, "%s", err);
    trainer_free(t);
    phantom_opts po;
    phantom_default(&po, PREP_CT, 5);
    po.shape[0] = 64;
    po.shape[1] = 56;
    po.shape[2] = 12;
    phantom_vol pv;
    cr_assert_eq(phantom_generate(&po, &pv, err, sizeof err), 0, "%s", err);
    vol_t v;
    memset(&v, 0, sizeof v);
    v.geom = pv.geom;
    v.data = pv.image;
    size_t n = (size_t)(v.geom.nx * v.geom.ny * v.geom.nz);
    uint8_t *cls[2] = {malloc(n), malloc(n)};
    for (int k = 0; k < 2; k++) {
        infer_model *m = infer_model_load(path, k ? nn_backend_cpu() : be, err, sizeof err);
        cr_assert_not_null(m, "%s", err);
        infer_opts o = {-1, 1, 0.5};
        memset(cls[k], 255, n);
        cr_assert_eq(infer_volume(m, &v, &o, cls[k], NULL, err, sizeof err), 0, "%s: %s",
                     k ? "cpu" : nn_backend_name(be), err);
        infer_model_free(m);
    }
    size_t diff = 0, fg = 0, seen[256] = {0};
    int classes = 0;
    for (size_t i = 0; i < n; i++) {
        diff += cls[0][i] != cls[1][i];
        fg += cls[1][i] != 0;
        classes += seen[cls[1][i]]++ == 0;
    }
    cr_expect(classes >= 3, "the cpu map has %d classes: too uniform to compare", classes);
    cr_expect(cls[0][0] != 255 && cls[0][n - 1] != 255, "cuda left voxels unwritten");
    cr_expect(diff * 200 <= n, "%zu of %zu voxels differ between %s and cpu", diff, n,
              nn_backend_name(be));
    cr_log_info("%s vs cpu inference: %zu of %zu voxels differ (%zu non-background on cpu)",
                nn_backend_name(be), diff, n, fg);
    unlink(path);
    free(cls[0]);
    free(cls[1]);
    phantom_free(&pv);
    ttrain_free(&tg);
    ttrain_free(&as);
    unsetenv("MKDSEG_INFER_TILES");
}

Test(cuda_infer, volume_matches_cpu_with_slices_batched, .timeout = 300)
{
    NEED_GPU();
    infer_compare(nn_backend_cuda());
}

/* The batched path's bookkeeping (slice groups, tile offsets, the short last group, the
 * whole-batch segmentor pass) is backend-independent: a renamed copy of the CPU table takes
 * it (any backend not named "cpu" does), so it is checked here without a GPU, against the
 * CPU's slice-by-slice path; the results must then agree exactly. */
Test(cuda_core, batched_inference_path_equals_slice_by_slice, .timeout = 300)
{
    setup();
    static nn_backend copy;
    copy = *nn_backend_cpu();
    copy.name = "cpu-batched";
    infer_compare(&copy);
}

/* ---- the core's host-record path, checkable without a GPU ------------------------------- */

/* A copy of the CPU backend table is "another backend" to the core: tensor structs and tape
 * nodes then come from the host arena beside the data arena (nn_ctx_meta), the path every
 * CUDA context takes. Same results as the CPU backend itself, scopes included. Runs here. */
Test(cuda_core, host_records_beside_the_data_arena)
{
    setup();
    static nn_backend copy;
    copy = *nn_backend_cpu();
    copy.name = "cpu-copy";
    char err[256];
    float x[2 * 3 * 8 * 8], w[4 * 3 * 9], out[2][2 * 4 * 8 * 8], gw[2][4 * 3 * 9];
    fill(x, sizeof x / 4, 31);
    fill(w, sizeof w / 4, 32);
    float loss[2];
    for (int k = 0; k < 2; k++) {
        const nn_backend *be = k ? nn_backend_cpu() : &copy;
        nn_params *p = nn_params_new(be, err, sizeof err);
        nn_tensor *tw = nn_param_add(p, "w", NN_PARAM, 4, 3, 3, 3, err, sizeof err);
        cr_assert(tw, "%s", err);
        nn_tensor_write(tw, w);
        nn_ctx *ctx = nn_ctx_new(be, 1 << 16, err, sizeof err); /* small: forces growth */
        cr_assert(ctx, "%s", err);
        for (int rep = 0; rep < 2; rep++) { /* reset, then again */
            nn_ctx_reset(ctx);
            nn_params_zero_grad(p);
            nn_tensor *tx = nn_tensor_from(ctx, 2, 3, 8, 8, x);
            nn_tensor *y = nn_relu(ctx, nn_conv2d(ctx, tx, tw, NULL, 1, 1, 1));
            nn_tensor *l = nn_loss_lsgan(ctx, y, 0.5f);
            cr_assert(l, "%s", nn_ctx_error(ctx));
            cr_assert(nn_backward(ctx, l, err, sizeof err) == 0, "%s", err);
            loss[k] = nn_scalar(l);
            cr_assert(nn_tensor_read(y, out[k]) == 0);
        }
        nn_tensor tg = *tw;
        tg.data = tw->grad;
        cr_assert(nn_tensor_read(&tg, gw[k]) == 0);
        /* a no_grad scope keeps its tensor */
        nn_ctx_set_grad_enabled(ctx, 0);
        nn_tensor *tx = nn_tensor_from(ctx, 2, 3, 8, 8, x);
        nn_scope s = nn_ctx_scope(ctx);
        nn_tensor *k2 = nn_ctx_scope_end(ctx, s, nn_scale(ctx, nn_relu(ctx, tx), 3.0f));
        cr_assert(k2, "%s", nn_ctx_error(ctx));
        float h[2 * 3 * 8 * 8];
        cr_assert(nn_tensor_read(k2, h) == 0);
        for (int i = 0; i < 2 * 3 * 8 * 8; i++)
            cr_expect_float_eq(h[i], x[i] > 0 ? 3 * x[i] : 0.0f, 1e-6f, "scope element %d", i);
        cr_expect_eq(nn_ctx_tape_len(ctx), 3u, "tape holds the 3 recorded ops of the step");
        nn_ctx_free(ctx);
        nn_params_free(p);
    }
    cr_expect(memcmp(out[0], out[1], sizeof out[0]) == 0, "outputs differ");
    cr_expect(memcmp(gw[0], gw[1], sizeof gw[0]) == 0, "weight gradients differ");
    cr_expect_eq(loss[0], loss[1]);
}
