/* test_nn_golden.c: every op and loss against PyTorch 1.13 (files tests/golden/ops/CASE.bin
 * written by tests/golden/gen_ops.py; format in tests/lib/golden.h).
 *
 * Per case: the inputs are loaded as leaf tensors (those with a "grad_<name>" entry require
 * a gradient), the op runs forward, nn_backward_from seeds the file's upstream gradient "gy",
 * and the output and every input gradient are compared. Errors are max |c - ref| / scale with
 * scale = max(max |ref|, 1e-6):
 *   forward (and BN running statistics)   <= 1e-4        (TOL_FWD)
 *   each gradient                          <= 1e-3        (TOL_GRAD)
 * Adam: 5 steps of torch.optim.Adam(lr 0.01, betas (0.5, 0.999)) on a conv + LSGAN loss;
 * each step's loss within TOL_FWD of |ref|, the parameters within TOL_FWD of max |ref|.
 * norm_large_planes: instance and batch norm at larger planes against the formulas in double. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/golden.h"
#include "nn.h"

#define TOL_FWD 1e-4
#define TOL_GRAD 1e-3

typedef struct {
    golden_file *g;
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
    nn_tensor *t;
    if (ge->dtype == 1)
        t = nn_labels_from(e->ctx, d[0], d[2], d[3], ge->data);
    else
        t = nn_tensor_from(e->ctx, d[0], d[1], d[2], d[3], ge->data);
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

static const int *iargs(env *e)
{
    const golden_entry *ge = golden_get(e->g, "iargs");
    return ge ? (const int *)ge->data : NULL;
}

static const float *fargs(env *e) { return golden_f32(e->g, "fargs"); }

static int starts(const char *s, const char *p) { return !strncmp(s, p, strlen(p)); }

static nn_tensor *build(env *e, const char *cs)
{
    nn_ctx *c = e->ctx;
    const int *ia = iargs(e);
    const float *fa = fargs(e);
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

static void check(const char *what, const float *got, const golden_entry *ref, double tol)
{
    cr_assert(ref && ref->dtype == 0, "%s: reference missing", what);
    double err = golden_rel_err(got, ref->data, ref->numel, 1e-6);
    cr_expect(err <= tol, "%s: relative error %.3g > %.3g", what, err, tol);
}

static void run_case(const char *cs)
{
    char path[256], err[256];
    env e = {0};
    snprintf(path, sizeof path, "tests/golden/ops/%s.bin", cs);
    e.g = golden_load(path, err, sizeof err);
    cr_assert(e.g, "%s (run `make golden-ops`)", err);
    e.ctx = nn_ctx_new(nn_backend_cpu(), 1 << 20, err, sizeof err);
    cr_assert(e.ctx, "%s", err);

    nn_tensor *out = build(&e, cs);
    cr_assert(out, "%s: %s", cs, nn_ctx_error(e.ctx));
    const golden_entry *ro = golden_get(e.g, "out");
    cr_assert_eq(nn_numel(out), ro->numel, "%s: output size %zu, want %zu", cs, nn_numel(out),
                 ro->numel);
    check("out", nn_f32(out), ro, TOL_FWD);
    if (starts(cs, "batch_norm")) {
        check("rmean_out", nn_f32(T(&e, "rmean")), golden_get(e.g, "rmean_out"), TOL_FWD);
        check("rvar_out", nn_f32(T(&e, "rvar")), golden_get(e.g, "rvar_out"), TOL_FWD);
    }
    cr_assert(nn_backward_from(e.ctx, out, golden_f32(e.g, "gy"), err, sizeof err) == 0, "%s: %s",
              cs, err);
    int ngrad = 0;
    for (int i = 0; i < e.g->count; i++) {
        const golden_entry *ge = &e.g->e[i];
        if (strncmp(ge->name, "grad_", 5))
            continue;
        nn_tensor *t = T(&e, ge->name + 5);
        cr_assert(t && t->grad && t->grad_valid, "%s: no gradient for %s", cs, ge->name + 5);
        cr_assert_eq(nn_numel(t), ge->numel);
        check(ge->name, t->grad, ge, TOL_GRAD);
        ngrad++;
    }
    cr_expect(ngrad > 0, "%s: no gradient compared", cs);
    nn_ctx_free(e.ctx);
    golden_free(e.g);
}

#define GOLDEN(cs)                                                                                 \
    Test(nn_golden, cs) { run_case(#cs); }
/* convolutions also on each forced path (MKDSEG_CONV_PATH; the default is the timed choice) */
#define GOLDEN_CONV(cs)                                                                            \
    GOLDEN(cs)                                                                                     \
    Test(nn_golden, cs##_onednn)                                                                   \
    {                                                                                              \
        setenv("MKDSEG_CONV_PATH", "onednn", 1);                                                   \
        run_case(#cs);                                                                             \
    }                                                                                              \
    Test(nn_golden, cs##_direct)                                                                   \
    {                                                                                              \
        setenv("MKDSEG_CONV_PATH", "direct", 1);                                                   \
        run_case(#cs);                                                                             \
    }                                                                                              \
    Test(nn_golden, cs##_winograd)                                                                 \
    {                                                                                              \
        setenv("MKDSEG_CONV_PATH", "winograd", 1);                                                 \
        run_case(#cs);                                                                             \
    }                                                                                              \
    Test(nn_golden, cs##_gemm)                                                                     \
    {                                                                                              \
        setenv("MKDSEG_CONV_PATH", "gemm", 1);                                                     \
        run_case(#cs);                                                                             \
    }

GOLDEN_CONV(conv2d_3x3)
GOLDEN_CONV(conv2d_4x4_s2)
GOLDEN_CONV(conv2d_dil2)
GOLDEN_CONV(conv2d_1x1)
GOLDEN_CONV(conv2d_7x7)
GOLDEN_CONV(convt_3x3_s2)
GOLDEN_CONV(convt_2x2_s2)
GOLDEN_CONV(convt_4x4_s1)
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

Test(nn_golden, adam_5_steps)
{
    char err[256];
    golden_file *g = golden_load("tests/golden/ops/adam.bin", err, sizeof err);
    cr_assert(g, "%s", err);
    const float *fa = golden_f32(g, "fargs");
    nn_params *p = nn_params_new(nn_backend_cpu(), err, sizeof err);
    cr_assert(p);
    nn_tensor *w = nn_param_add(p, "w", NN_PARAM, 3, 2, 3, 3, err, sizeof err);
    nn_tensor *b = nn_param_add(p, "b", NN_PARAM, 3, 1, 1, 1, err, sizeof err);
    cr_assert(w && b, "%s", err);
    nn_tensor_write(w, golden_f32(g, "w"));
    nn_tensor_write(b, golden_f32(g, "b"));
    nn_adam_cfg cfg = {fa[0], fa[1], fa[2], fa[3], 0.0f};
    nn_adam *opt = nn_adam_new(p, cfg, err, sizeof err);
    nn_ctx *ctx = nn_ctx_new(NULL, 0, err, sizeof err);
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
        snprintf(nm, sizeof nm, "loss_%d", k);
        float l = nn_scalar(loss);
        check(nm, &l, golden_get(g, nm), TOL_FWD);
        snprintf(nm, sizeof nm, "w_%d", k);
        check(nm, nn_f32(w), golden_get(g, nm), TOL_FWD);
        snprintf(nm, sizeof nm, "b_%d", k);
        check(nm, nn_f32(b), golden_get(g, nm), TOL_FWD);
    }
    nn_ctx_free(ctx);
    nn_adam_free(opt);
    nn_params_free(p);
    golden_free(g);
}

/* Instance and batch norm on planes far larger than the PyTorch cases (37x41 = 1517 values:
 * cpu_norm.c's 256-value summation blocks, an 8-wide remainder and a scalar tail), with the
 * mean 8 to 9 standard deviations from 0 (x = 4 + 0.5 c + 0.5 N(0, 1)), against the formulas
 * evaluated in double here. Each op runs alone (dx written) and as norm(x) + x (dx added to the gradient the add
 * left). Errors as above, within NORM_TOL: a few float ulps (about 2e-7 here), far below
 * TOL_FWD/TOL_GRAD, so a sum that loses precision fails too. */
#define NORM_TOL 2e-6
Test(nn_golden, norm_large_planes)
{
    enum { N = 3, C = 2, H = 37, W = 41, HW = H * W, NE = N * C * HW };
    static float x[NE], gy[NE], want_y[NE], want_dx[NE];
    float gam[C] = {0.7f, -1.3f}, bet[C] = {0.25f, -0.5f}, rm0[C] = {3.9f, 4.6f},
          rv0[C] = {0.3f, 0.2f};
    nn_rng r;
    nn_rng_seed(&r, 7);
    for (int i = 0; i < NE; i++) {
        x[i] = 4.0f + 0.5f * (float)((i / HW) % C) + 0.5f * nn_rng_normal(&r);
        gy[i] = nn_rng_normal(&r);
    }
    char err[256];
    for (int kind = 0; kind < 3; kind++) { /* IN, BN training, BN eval */
        int bn = kind > 0, training = kind < 2, G = bn ? C : N * C, P = bn ? N : 1;
        double want_g[C] = {0}, want_b[C] = {0}, want_rm[C], want_rv[C];
        for (int gi = 0; gi < G; gi++) {
            int c = bn ? gi : gi % C;
            double s = 0, s2 = 0, cnt = (double)HW * P, m, var;
#define IDX(n, j) (((size_t)(bn ? C * (n) + gi : gi)) * HW + (j))
            for (int n = 0; n < P; n++)
                for (int j = 0; j < HW; j++)
                    s += x[IDX(n, j)];
            m = s / cnt;
            for (int n = 0; n < P; n++)
                for (int j = 0; j < HW; j++)
                    s2 += (x[IDX(n, j)] - m) * (x[IDX(n, j)] - m);
            var = s2 / cnt;
            if (bn && training) { /* momentum 0.1, unbiased variance */
                want_rm[c] = 0.9 * rm0[c] + 0.1 * m;
                want_rv[c] = 0.9 * rv0[c] + 0.1 * var * cnt / (cnt - 1);
            } else if (bn) { /* eval: normalised by the running statistics, left as they are */
                want_rm[c] = m = rm0[c];
                want_rv[c] = var = rv0[c];
            }
            double is = 1.0 / sqrt(var + 1e-5), sg = 0, sgx = 0;
            for (int n = 0; n < P; n++)
                for (int j = 0; j < HW; j++) {
                    size_t i = IDX(n, j);
                    double xh = (x[i] - m) * is;
                    want_y[i] = (float)(gam[c] * xh + bet[c]);
                    sg += gy[i];
                    sgx += gy[i] * xh;
                }
            want_g[c] += sgx;
            want_b[c] += sg;
            for (int n = 0; n < P; n++)
                for (int j = 0; j < HW; j++) {
                    size_t i = IDX(n, j);
                    double xh = (x[i] - m) * is, g = gy[i];
                    if (training)
                        g -= (sg + xh * sgx) / cnt;
                    want_dx[i] = (float)(gam[c] * is * g);
                }
#undef IDX
        }
        for (int plus_x = 0; plus_x < 2; plus_x++) {
            nn_ctx *ctx = nn_ctx_new(nn_backend_cpu(), 1 << 20, err, sizeof err);
            cr_assert(ctx, "%s", err);
            nn_tensor *tx = nn_requires_grad(nn_tensor_from(ctx, N, C, H, W, x));
            nn_tensor *tg = nn_requires_grad(nn_tensor_from(ctx, 1, C, 1, 1, gam));
            nn_tensor *tb = nn_requires_grad(nn_tensor_from(ctx, 1, C, 1, 1, bet));
            nn_tensor *trm = nn_tensor_from(ctx, 1, C, 1, 1, rm0);
            nn_tensor *trv = nn_tensor_from(ctx, 1, C, 1, 1, rv0);
            nn_tensor *y = bn ? nn_batch_norm(ctx, tx, tg, tb, trm, trv, training, 0.1f, 1e-5f)
                              : nn_instance_norm(ctx, tx, tg, tb, 1e-5f);
            cr_assert(y, "%s", nn_ctx_error(ctx));
            const char *what = kind == 0 ? "IN" : kind == 1 ? "BN train" : "BN eval";
            double e = golden_rel_err(nn_f32(y), want_y, NE, 1e-6);
            cr_expect(e <= NORM_TOL, "%s: y error %.3g", what, e);
            if (bn) {
                float rm[C], rv[C];
                for (int c = 0; c < C; c++)
                    rm[c] = (float)want_rm[c], rv[c] = (float)want_rv[c];
                e = fmax(golden_rel_err(nn_f32(trm), rm, C, 1e-6),
                         golden_rel_err(nn_f32(trv), rv, C, 1e-6));
                cr_expect(e <= NORM_TOL, "%s: running statistics error %.3g", what, e);
            }
            nn_tensor *out = plus_x ? nn_add(ctx, y, tx) : y;
            cr_assert(out && nn_backward_from(ctx, out, gy, err, sizeof err) == 0, "%s", err);
            static float dx[NE];
            float dg[C], db[C];
            for (int i = 0; i < NE; i++)
                dx[i] = want_dx[i] + (plus_x ? gy[i] : 0.0f);
            for (int c = 0; c < C; c++)
                dg[c] = (float)want_g[c], db[c] = (float)want_b[c];
            e = golden_rel_err(tx->grad, dx, NE, 1e-6);
            cr_expect(e <= NORM_TOL, "%s%s: dx error %.3g", what, plus_x ? " + x" : "", e);
            e = fmax(golden_rel_err(tg->grad, dg, C, 1e-6), golden_rel_err(tb->grad, db, C, 1e-6));
            cr_expect(e <= NORM_TOL, "%s: dgamma/dbeta error %.3g", what, e);
            nn_ctx_free(ctx);
        }
    }
}
