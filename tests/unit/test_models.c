/* test_models.c: the three networks against PyTorch (the files tests/golden/models/NAME.bin, written by
 * tests/golden/gen_models.py from tests/golden/torch_models.py; see that script for the sizes
 * and entries).
 *
 * For each tiny network: the parameter names and order equal PyTorch's named_parameters; the
 * training-mode output at the reference parameters, the loss, every parameter's gradient, the
 * losses of 5 Adam steps, the output after them (eval mode) and the BN running statistics
 * match the float64 PyTorch reference.
 * Tolerances, errors measured as max |c - ref| / scale:
 *   output, final output     scale = max |ref|                       <= 1e-4
 *   loss, each Adam loss     scale = |ref|                           <= 1e-4
 *   Adam loss changes L_k - L_0 (the part Adam moves; lr 2e-4 makes it small)
 *                            scale = max_k |ref L_k - ref L_0|        <= 2e-2
 *   each parameter gradient  scale = max(max |ref grad of that parameter|,
 *                                        1e-3 * max over all parameters of max |ref grad|)
 *                                                                    <= 1e-3
 *     (the floor keeps tiny gradients from demanding more than float32 can give)
 *   gradients that are zero in exact arithmetic (reference max <= 1e-9 of the network's
 *   largest: conv biases followed by instance norm): max |c| <= 1e-5 of the network's
 *   largest reference gradient (float32 rounding noise, far below a wired-in gradient)
 *   BN running statistics    scale = max |ref|                       <= 1e-4
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/golden.h"
#include "models.h"

#define TOL_FWD 1e-4
#define TOL_GRAD 1e-3
#define TOL_DLOSS 2e-2
#define TOL_ZERO_GRAD 1e-5

typedef enum { NET_SEG, NET_GEN, NET_DISC } net_kind;

typedef struct {
    net_kind kind;
    segmentor *seg;
    generator *gen;
    discriminator *disc;
    nn_params *params;
} net_any;

static golden_file *load(const char *name)
{
    char path[256], err[256];
    snprintf(path, sizeof path, "tests/golden/models/%s.bin", name);
    golden_file *g = golden_load(path, err, sizeof err);
    cr_assert(g, "%s (run `make golden-models`)", err);
    return g;
}

static const int *cfg_of(const golden_file *g, int want)
{
    const golden_entry *e = golden_get(g, "config");
    cr_assert(e && e->dtype == 1 && (int)e->numel == want, "bad config entry");
    return (const int *)e->data;
}

static nn_tensor *forward(net_any *n, nn_ctx *ctx, nn_tensor *x, int training)
{
    switch (n->kind) {
    case NET_SEG:
        return segmentor_forward(n->seg, ctx, x, training);
    case NET_GEN:
        return generator_forward(n->gen, ctx, x);
    default:
        return discriminator_forward(n->disc, ctx, x);
    }
}

static nn_tensor *loss_of(net_any *n, nn_ctx *ctx, nn_tensor *y, const golden_file *g)
{
    int d[4];
    switch (n->kind) {
    case NET_SEG: {
        const golden_entry *e = golden_get(g, "labels");
        cr_assert(e && e->dtype == 1 && e->ndim == 3);
        return segmentor_loss(
            ctx, y,
            nn_labels_from(ctx, e->dims[0], e->dims[1], e->dims[2], (const int32_t *)e->data));
    }
    case NET_GEN:
        cr_assert(golden_nchw(g, "target", d) == 0);
        return nn_loss_l1(ctx, y,
                          nn_tensor_from(ctx, d[0], d[1], d[2], d[3], golden_f32(g, "target")));
    default:
        return nn_loss_lsgan(ctx, y, 1.0f);
    }
}

static double check_tensor(const char *what, const nn_tensor *t, const golden_file *g,
                           const char *name, double floor, double tol)
{
    int d[4];
    cr_assert(t, "%s: no tensor", what);
    cr_assert(golden_nchw(g, name, d) == 0, "%s: no golden entry %s", what, name);
    cr_assert_eq((size_t)d[0] * d[1] * d[2] * d[3], nn_numel(t), "%s: %zu elements, ref %d", what,
                 nn_numel(t), d[0] * d[1] * d[2] * d[3]);
    double e = golden_rel_err(nn_f32(t), golden_f32(g, name), nn_numel(t), floor);
    cr_expect(e <= tol, "%s: relative error %.3g > %.1g", what, e, tol);
    return e;
}

/* Load every "param/NAME" entry; check names and order equal the registry's NN_PARAMs. */
static void load_params(nn_params *p, const golden_file *g)
{
    char err[256];
    int k = 0;
    for (int i = 0; i < g->count; i++) {
        const golden_entry *e = &g->e[i];
        if (strncmp(e->name, "param/", 6))
            continue;
        nn_param *q = NULL;
        while (k < nn_params_count(p) && (q = nn_params_at(p, k++))->kind != NN_PARAM)
            q = NULL;
        cr_assert(q, "registry has fewer parameters than PyTorch (next: %s)", e->name + 6);
        cr_assert_str_eq(q->name, e->name + 6, "parameter order differs from PyTorch");
        cr_assert(models_param_set(p, e->name + 6, (const float *)e->data, e->numel, err,
                                   sizeof err) == 0,
                  "%s", err);
    }
    while (k < nn_params_count(p))
        cr_assert(nn_params_at(p, k++)->kind != NN_PARAM, "registry has parameters PyTorch lacks");
}

static void run_golden(net_any *n, const golden_file *g)
{
    char err[256];
    int d[4];
    const float *adam = golden_f32(g, "adam");
    const float *ref_losses = golden_f32(g, "adam_losses");
    cr_assert(adam && ref_losses);
    load_params(n->params, g);

    nn_ctx *ctx = nn_ctx_new(nn_backend_cpu(), 0, err, sizeof err);
    cr_assert(ctx, "%s", err);
    nn_adam *opt = nn_adam_new(n->params, (nn_adam_cfg){adam[0], adam[1], adam[2], adam[3], 0}, err,
                               sizeof err);
    cr_assert(opt, "%s", err);
    cr_assert(golden_nchw(g, "input", d) == 0);

    float losses[5];
    for (int step = 0; step < 5; step++) {
        nn_ctx_reset(ctx);
        nn_params_zero_grad(n->params);
        nn_tensor *x = nn_tensor_from(ctx, d[0], d[1], d[2], d[3], golden_f32(g, "input"));
        nn_tensor *y = forward(n, ctx, x, 1);
        nn_tensor *loss = loss_of(n, ctx, y, g);
        cr_assert(loss, "step %d: %s", step, nn_ctx_error(ctx));
        cr_assert(nn_backward(ctx, loss, err, sizeof err) == 0, "%s", err);
        losses[step] = nn_scalar(loss);
        if (step == 0) {
            cr_log_info("output relative error %.3g",
                        check_tensor("output", y, g, "output", 0, TOL_FWD));
            double rl = golden_f32(g, "loss")[0];
            cr_expect(fabs(losses[0] - rl) <= TOL_FWD * fabs(rl), "loss %.8g, ref %.8g", losses[0],
                      rl);
            /* the gradient floor: 1e-3 of the largest reference gradient of the network */
            double gmax = 0;
            for (int i = 0; i < g->count; i++)
                if (!strncmp(g->e[i].name, "grad/", 5))
                    for (size_t j = 0; j < g->e[i].numel; j++)
                        gmax = fmax(gmax, fabs(((const float *)g->e[i].data)[j]));
            cr_assert(gmax > 0);
            int ngrads = 0, nzero = 0;
            double gworst = 0;
            const char *gworst_name = "";
            for (int i = 0; i < nn_params_count(n->params); i++) {
                nn_param *q = nn_params_at(n->params, i);
                char gname[128];
                if (q->kind != NN_PARAM)
                    continue;
                snprintf(gname, sizeof gname, "grad/%s", q->name);
                cr_assert(q->t.grad && q->ever_grad, "%s: no gradient", q->name);
                nn_tensor gt = q->t;
                gt.data = q->t.grad;
                const float *ref = golden_f32(g, gname);
                double rmax = 0;
                for (size_t j = 0; ref && j < nn_numel(&gt); j++)
                    rmax = fmax(rmax, fabs(ref[j]));
                if (ref && rmax <= 1e-9 * gmax) {
                    /* zero in exact arithmetic (a conv bias under instance norm): the float32
                     * value must be rounding noise, far below any real gradient */
                    double cmax = 0;
                    for (size_t j = 0; j < nn_numel(&gt); j++)
                        cmax = fmax(cmax, fabs(nn_f32(&gt)[j]));
                    cr_expect(cmax <= TOL_ZERO_GRAD * gmax,
                              "%s: gradient should be 0, max "
                              "|g| is %.3g of the network's largest",
                              q->name, cmax / gmax);
                    nzero++;
                    continue;
                }
                double e = check_tensor(q->name, &gt, g, gname, 1e-3 * gmax, TOL_GRAD);
                if (e >= gworst) {
                    gworst = e;
                    gworst_name = q->name;
                }
                ngrads++;
            }
            cr_assert_gt(ngrads, 0);
            cr_log_info("%d gradients, worst relative error %.3g (%s); %d exactly-zero "
                        "gradients within noise",
                        ngrads, gworst, gworst_name, nzero);
        }
        cr_assert(nn_adam_step(opt, err, sizeof err) == 0, "%s", err);
    }
    double dmax = 0;
    for (int k = 1; k < 5; k++)
        dmax = fmax(dmax, fabs(ref_losses[k] - ref_losses[0]));
    cr_assert(dmax > 0, "reference losses did not move");
    double lworst = 0, dworst = 0;
    for (int k = 0; k < 5; k++) {
        lworst = fmax(lworst, fabs(losses[k] - ref_losses[k]) / fabs(ref_losses[k]));
        dworst = fmax(
            dworst,
            fabs(((double)losses[k] - losses[0]) - ((double)ref_losses[k] - ref_losses[0])) / dmax);
        cr_expect(fabs(losses[k] - ref_losses[k]) <= TOL_FWD * fabs(ref_losses[k]),
                  "Adam step %d: loss %.8g, ref %.8g", k, losses[k], ref_losses[k]);
        double dc = (double)losses[k] - losses[0], dr = (double)ref_losses[k] - ref_losses[0];
        cr_expect(fabs(dc - dr) <= TOL_DLOSS * dmax, "Adam step %d: loss change %.6g, ref %.6g", k,
                  dc, dr);
    }

    cr_log_info("Adam losses: worst relative error %.3g, loss changes %.3g (of %.3g)", lworst,
                dworst, dmax);

    /* after the 5 steps: eval-mode output (no tape) and the running statistics */
    nn_ctx_reset(ctx);
    nn_ctx_set_grad_enabled(ctx, 0);
    nn_tensor *x = nn_tensor_from(ctx, d[0], d[1], d[2], d[3], golden_f32(g, "input"));
    size_t used0 = nn_arena_used(nn_ctx_arena(ctx));
    nn_tensor *y = forward(n, ctx, x, 0);
    size_t used1 = nn_arena_used(nn_ctx_arena(ctx));
    cr_assert(y, "%s", nn_ctx_error(ctx));
    cr_expect_eq(nn_ctx_tape_len(ctx), 0, "no_grad forward recorded %zu nodes",
                 nn_ctx_tape_len(ctx));
    cr_log_info("eval output after 5 Adam steps: relative error %.3g",
                check_tensor("final output", y, g, "final_output", 0, TOL_FWD));
    if (n->kind == NET_SEG) {
        /* the bounded-memory inference path computes the same eval-mode logits, sample by
         * sample and block by block, keeping only the result in ctx, and its arena peak is
         * below the plain forward's */
        nn_ctx *ictx = nn_ctx_new(nn_backend_cpu(), 0, err, sizeof err);
        cr_assert(ictx, "%s", err);
        for (int rep = 0; rep < 2; rep++) {
            nn_tensor *xi = nn_tensor_from(ictx, d[0], d[1], d[2], d[3], golden_f32(g, "input"));
            size_t before = nn_arena_used(nn_ctx_arena(ictx));
            nn_tensor *yi = segmentor_infer(n->seg, ictx, xi);
            cr_assert(yi, "%s", nn_ctx_error(ictx));
            cr_expect_eq(nn_ctx_tape_len(ictx), 0);
            cr_expect(nn_ctx_grad_enabled(ictx), "segmentor_infer left no_grad mode on");
            check_tensor("segmentor_infer", yi, g, "final_output", 0, TOL_FWD);
            double diff = golden_rel_err(nn_f32(yi), nn_f32(y), nn_numel(y), 0);
            cr_expect(diff <= 1e-6, "segmentor_infer differs from segmentor_forward by %.3g", diff);
            size_t kept = nn_arena_used(nn_ctx_arena(ictx)) - before;
            cr_expect_leq(kept, nn_numel(y) * sizeof(float) + 256, "kept %zu bytes in ctx", kept);
            cr_expect_lt(nn_arena_peak(nn_ctx_arena(ictx)), used1 - used0,
                         "segmentor_infer arena peak %zu, plain forward %zu",
                         nn_arena_peak(nn_ctx_arena(ictx)), used1 - used0);
            nn_ctx_reset(ictx);
        }
        nn_ctx_free(ictx);
    }
    int nbuf = 0;
    for (int i = 0; i < nn_params_count(n->params); i++) {
        nn_param *q = nn_params_at(n->params, i);
        char bname[128];
        if (q->kind != NN_BUFFER)
            continue;
        snprintf(bname, sizeof bname, "buffer/%s", q->name);
        check_tensor(q->name, &q->t, g, bname, 0, TOL_FWD);
        nbuf++;
    }
    cr_expect_eq(n->kind == NET_SEG, nbuf > 0);
    nn_adam_free(opt);
    nn_ctx_free(ctx);
}

static void check_flops(double fwd, double train, const golden_file *g)
{
    const golden_entry *e = golden_get(g, "flops");
    cr_assert(e && e->dtype == 2 && e->numel == 2);
    const double *r = e->data;
    cr_expect(fwd == r[0], "forward FLOPs %.0f, PyTorch count %.0f", fwd, r[0]);
    cr_expect(train == r[1], "training FLOPs %.0f, PyTorch count %.0f", train, r[1]);
}

static void golden_segmentor(void)
{
    char err[256];
    golden_file *g = load("segmentor");
    const int *c = cfg_of(g, 5); /* width, classes, N, H, W */
    net_any n = {.kind = NET_SEG};
    n.seg = segmentor_new(nn_backend_cpu(), c[0], c[1], 1, err, sizeof err);
    cr_assert(n.seg, "%s", err);
    n.params = n.seg->params;
    check_flops(segmentor_flops(n.seg, c[2], c[3], c[4], 0),
                segmentor_flops(n.seg, c[2], c[3], c[4], 1), g);
    run_golden(&n, g);
    segmentor_free(n.seg);
    golden_free(g);
}

static void golden_generator(void)
{
    char err[256];
    golden_file *g = load("generator");
    const int *c = cfg_of(g, 5); /* ngf, blocks, N, H, W */
    net_any n = {.kind = NET_GEN};
    n.gen = generator_new(nn_backend_cpu(), c[0], c[1], 1, 1, err, sizeof err);
    cr_assert(n.gen, "%s", err);
    n.params = n.gen->params;
    check_flops(generator_flops(n.gen, c[2], c[3], c[4], 0),
                generator_flops(n.gen, c[2], c[3], c[4], 1), g);
    run_golden(&n, g);
    generator_free(n.gen);
    golden_free(g);
}

static void golden_discriminator(void)
{
    char err[256];
    golden_file *g = load("discriminator");
    const int *c = cfg_of(g, 4); /* ndf, N, H, W */
    net_any n = {.kind = NET_DISC};
    n.disc = discriminator_new(nn_backend_cpu(), c[0], 1, err, sizeof err);
    cr_assert(n.disc, "%s", err);
    n.params = n.disc->params;
    check_flops(discriminator_flops(n.disc, c[1], c[2], c[3], 0),
                discriminator_flops(n.disc, c[1], c[2], c[3], 1), g);
    run_golden(&n, g);
    discriminator_free(n.disc);
    golden_free(g);
}

/* Paper-size networks: parameter and buffer counts equal PyTorch's for the same architecture
 * (sum of numel over torch_models.Segmentor(32) / Generator(64, 9) / Discriminator(64)
 * parameters and float buffers), and CycleGAN's init has the stated statistics. */
/* Each network on each convolution path (MKDSEG_CONV_PATH, read when its context first
 * convolves): the default timed choice, oneDNN alone, the direct kernels wherever they apply,
 * and Winograd wherever it applies, so every kernel any path can run is pinned to the PyTorch
 * reference. */
#define GOLDEN_PATHS(net)                                                                          \
    Test(models_golden, net) { golden_##net(); }                                                   \
    Test(models_golden, net##_onednn)                                                              \
    {                                                                                              \
        setenv("MKDSEG_CONV_PATH", "onednn", 1);                                                   \
        golden_##net();                                                                            \
    }                                                                                              \
    Test(models_golden, net##_direct)                                                              \
    {                                                                                              \
        setenv("MKDSEG_CONV_PATH", "direct", 1);                                                   \
        golden_##net();                                                                            \
    }                                                                                              \
    Test(models_golden, net##_winograd)                                                            \
    {                                                                                              \
        setenv("MKDSEG_CONV_PATH", "winograd", 1);                                                 \
        golden_##net();                                                                            \
    }                                                                                              \
    Test(models_golden, net##_gemm)                                                                \
    {                                                                                              \
        setenv("MKDSEG_CONV_PATH", "gemm", 1);                                                     \
        golden_##net();                                                                            \
    }
GOLDEN_PATHS(segmentor)
GOLDEN_PATHS(generator)
GOLDEN_PATHS(discriminator)

Test(models_paper, sizes_and_init)
{
    char err[256];
    nn_rng r;
    nn_rng_seed(&r, 7);
    segmentor *s = segmentor_new(nn_backend_cpu(), 32, 8, 1, err, sizeof err);
    generator *g = generator_new(nn_backend_cpu(), 64, 9, 1, 1, err, sizeof err);
    discriminator *d = discriminator_new(nn_backend_cpu(), 64, 1, err, sizeof err);
    cr_assert(s && g && d, "%s", err);
    cr_expect_eq(nn_params_numel(s->params, NN_PARAM), 8113832);
    cr_expect_eq(nn_params_numel(s->params, NN_BUFFER), 8832);
    cr_expect_eq(nn_params_numel(g->params, NN_PARAM), 11365633);
    cr_expect_eq(nn_params_numel(g->params, NN_BUFFER), 0);
    cr_expect_eq(nn_params_numel(d->params, NN_PARAM), 2762689);
    cr_expect_eq(nn_params_count(g->params), 48);
    cr_expect_eq(nn_params_count(d->params), 10);
    cr_assert_eq(segmentor_init(s, &r), 0);
    /* PyTorch's defaults: conv and transposed-conv weights and biases U(-b, b) with
     * b = 1/sqrt(size(1)*kh*kw) of the weight, so w/b is U(-1, 1) (mean 0, variance 1/3);
     * BN gamma 1, beta 0, running mean 0, running var 1 */
    double su = 0, su2 = 0;
    size_t nu = 0;
    float bound = 0;
    for (int i = 0; i < nn_params_count(s->params); i++) {
        nn_param *q = nn_params_at(s->params, i);
        const float *v = nn_f32(&q->t);
        size_t n = nn_numel(&q->t);
        const char *suf = strrchr(q->name, '.') + 1;
        int is_bn = strstr(q->name, "bn") != NULL;
        if (!is_bn && !strcmp(suf, "weight"))
            bound = 1.0f /
                    sqrtf((float)(q->t.c * q->t.h * q->t.w)); /* the bias that follows shares it */
        for (size_t j = 0; j < n; j++) {
            if (is_bn) {
                float want = !strcmp(suf, "weight") || !strcmp(suf, "running_var") ? 1.0f : 0.0f;
                cr_expect_eq(v[j], want, "%s", q->name);
            } else {
                cr_expect(fabsf(v[j]) <= bound, "%s: %g outside +-%g", q->name, v[j], bound);
                su += v[j] / bound;
                su2 += (double)(v[j] / bound) * (v[j] / bound);
                nu++;
            }
        }
    }
    double mu = su / nu;
    cr_expect(fabs(mu) < 2e-3, "scaled conv weight mean %g", mu);
    cr_expect(fabs(su2 / nu - mu * mu - 1.0 / 3.0) < 3e-3, "scaled conv weight variance %g (1/3)",
              su2 / nu - mu * mu);
    segmentor_free(s);
    generator_free(g);
    discriminator_free(d);
}

/* Inputs of the wrong shape fail with a message instead of crashing. */
Test(models_shapes, bad_inputs)
{
    char err[256];
    segmentor *s = segmentor_new(nn_backend_cpu(), 2, 3, 1, err, sizeof err);
    generator *g = generator_new(nn_backend_cpu(), 2, 1, 1, 1, err, sizeof err);
    discriminator *d = discriminator_new(nn_backend_cpu(), 2, 1, err, sizeof err);
    nn_ctx *ctx = nn_ctx_new(nn_backend_cpu(), 0, err, sizeof err);
    cr_assert(s && g && d && ctx, "%s", err);
    cr_expect_null(segmentor_new(nn_backend_cpu(), 0, 3, 1, err, sizeof err));
    cr_expect(strstr(err, "segmentor"), "%s", err);
    nn_tensor *x = nn_tensor_zeros(ctx, 1, 1, 24, 24);
    cr_expect_null(segmentor_forward(s, ctx, x, SEGMENTOR_BN_TRAIN));
    cr_expect(nn_ctx_error(ctx) && strstr(nn_ctx_error(ctx), "multiples of 16"));
    nn_ctx_reset(ctx);
    x = nn_tensor_zeros(ctx, 1, 2, 32, 32);
    cr_expect_null(generator_forward(g, ctx, x));
    cr_expect(nn_ctx_error(ctx) && strstr(nn_ctx_error(ctx), "generator"));
    nn_ctx_reset(ctx);
    x = nn_tensor_zeros(ctx, 1, 1, 20, 20);
    cr_expect_null(discriminator_forward(d, ctx, x));
    cr_expect(nn_ctx_error(ctx) && strstr(nn_ctx_error(ctx), "discriminator"));
    nn_ctx_reset(ctx);
    cr_expect_null(segmentor_forward(s, ctx, NULL, SEGMENTOR_BN_RUNNING));
    /* the right shapes give the documented output shapes */
    nn_ctx_reset(ctx);
    nn_tensor *y =
        segmentor_forward(s, ctx, nn_tensor_zeros(ctx, 2, 1, 32, 48), SEGMENTOR_BN_RUNNING);
    cr_assert(y, "%s", nn_ctx_error(ctx));
    cr_expect(y->n == 2 && y->c == 3 && y->h == 32 && y->w == 48);
    /* batch 1 through segmentor_infer (the golden test covers batch 2) */
    {
        nn_rng r;
        float xs[32 * 48];
        nn_rng_seed(&r, 11);
        segmentor_init(s, &r);
        for (int i = 0; i < 32 * 48; i++)
            xs[i] = nn_rng_normal(&r);
        nn_tensor *x1 = nn_tensor_from(ctx, 1, 1, 32, 48, xs);
        nn_tensor *ya = segmentor_forward(s, ctx, x1, SEGMENTOR_BN_RUNNING);
        nn_tensor *yb = segmentor_infer(s, ctx, x1);
        cr_assert(ya && yb, "%s", nn_ctx_error(ctx));
        cr_expect(yb->n == 1 && yb->c == 3 && yb->h == 32 && yb->w == 48);
        double e = golden_rel_err(nn_f32(yb), nn_f32(ya), nn_numel(ya), 0);
        cr_expect(e <= 1e-6, "segmentor_infer (batch 1) differs by %.3g", e);
    }
    y = generator_forward(g, ctx, nn_tensor_zeros(ctx, 1, 1, 16, 24));
    cr_assert(y, "%s", nn_ctx_error(ctx));
    cr_expect(y->n == 1 && y->c == 1 && y->h == 16 && y->w == 24);
    y = discriminator_forward(d, ctx, nn_tensor_zeros(ctx, 1, 1, 32, 40));
    cr_assert(y, "%s", nn_ctx_error(ctx));
    cr_expect(y->c == 1 && y->h == 2 && y->w == 3);
    nn_ctx_free(ctx);
    segmentor_free(s);
    generator_free(g);
    discriminator_free(d);
}

/* Algorithm 1, step 2: a frozen segmentor passes gradients to its input (the generator's
 * output) but its own parameters get none and Adam leaves them alone. */
Test(models_frozen, gradient_flows_through)
{
    char err[256];
    nn_rng r;
    nn_rng_seed(&r, 3);
    generator *g = generator_new(nn_backend_cpu(), 2, 1, 1, 1, err, sizeof err);
    segmentor *s = segmentor_new(nn_backend_cpu(), 2, 4, 1, err, sizeof err);
    nn_ctx *ctx = nn_ctx_new(nn_backend_cpu(), 0, err, sizeof err);
    cr_assert(g && s && ctx, "%s", err);
    generator_init(g, &r);
    segmentor_init(s, &r);
    nn_params_set_frozen(s->params, 1);
    nn_adam *og = nn_adam_new(g->params, NN_ADAM_DEFAULT, err, sizeof err);
    nn_adam *os = nn_adam_new(s->params, NN_ADAM_DEFAULT, err, sizeof err);
    cr_assert(og && os, "%s", err);
    float xs[2 * 32 * 32];
    int32_t lab[2 * 32 * 32];
    for (int i = 0; i < 2 * 32 * 32; i++) {
        xs[i] = 2 * nn_rng_uniform(&r) - 1;
        lab[i] = (int32_t)(nn_rng_u64(&r) % 4);
    }
    nn_param *sw = nn_params_find(s->params, "enc2.conv1.weight");
    nn_param *gw = nn_params_find(g->params, "stem.weight");
    cr_assert(sw && gw);
    float s_before = nn_f32(&sw->t)[5], g_before = nn_f32(&gw->t)[5];
    nn_tensor *x = nn_tensor_from(ctx, 2, 1, 32, 32, xs);
    nn_tensor *fake = generator_forward(g, ctx, x);
    nn_tensor *loss = segmentor_loss(ctx, segmentor_forward(s, ctx, fake, SEGMENTOR_BN_TRAIN),
                                     nn_labels_from(ctx, 2, 32, 32, lab));
    cr_assert(loss, "%s", nn_ctx_error(ctx));
    cr_assert_eq(nn_backward(ctx, loss, err, sizeof err), 0, "%s", err);
    cr_expect(gw->ever_grad && gw->t.grad, "generator got no gradient");
    double gsum = 0;
    for (size_t i = 0; i < nn_numel(&gw->t); i++)
        gsum += fabs(gw->t.grad[i]);
    cr_expect_gt(gsum, 0, "generator gradient is zero");
    for (int i = 0; i < nn_params_count(s->params); i++)
        cr_expect(!nn_params_at(s->params, i)->ever_grad, "%s got a gradient",
                  nn_params_at(s->params, i)->name);
    cr_assert_eq(nn_adam_step(og, err, sizeof err), 0, "%s", err);
    cr_assert_eq(nn_adam_step(os, err, sizeof err), 0, "%s", err);
    cr_expect_neq(nn_f32(&gw->t)[5], g_before, "generator did not move");
    cr_expect_eq(nn_f32(&sw->t)[5], s_before, "frozen segmentor moved");
    nn_adam_free(og);
    nn_adam_free(os);
    nn_ctx_free(ctx);
    segmentor_free(s);
    generator_free(g);
}
