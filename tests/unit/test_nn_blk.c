/* test_nn_blk.c: activations kept in oneDNN's channel-blocked layout between inference ops
 * (engine/nn/cpu/cpu_blk.c, nn_blk in nn.h).
 *  - an unrecorded oneDNN convolution leaves its output blocked, and its NCHW values (nn_f32,
 *    nn_tensor_read) are bit for bit those of the same convolution recorded (which writes NCHW
 *    through oneDNN's own reorder);
 *  - each op that reads blocked inputs (add and add + ReLU with both or one input blocked, max
 *    pooling 2x2 and 3/2 with a NaN, concatenation, a transposed convolution's bias) gives bit
 *    for bit what its NCHW kernel gives on the same values;
 *  - a blocked tensor survives nn_ctx_scope_end and nn_detach;
 *  - a whole segmentor's inference gives the same bits with MKDSEG_CPU_LAYOUT=plain and auto
 *    (each in its own child process: the setting is read once per process). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "models.h"
#include "nn.h"

static nn_ctx *ctx_new(void)
{
    char err[256];
    setenv("MKDSEG_CONV_PATH", "onednn", 1); /* read when the context first convolves */
    nn_ctx *c = nn_ctx_new(nn_backend_cpu(), 0, err, sizeof err);
    cr_assert(c, "%s", err);
    return c;
}

static nn_tensor *rand_tensor(nn_ctx *c, int n, int ch, int h, int w, nn_rng *r)
{
    const size_t k = (size_t)n * ch * h * w;
    float *v = malloc(k * sizeof *v);
    for (size_t i = 0; i < k; i++)
        v[i] = nn_rng_uniform(r) * 2.0f - 1.0f;
    nn_tensor *t = nn_tensor_from(c, n, ch, h, w, v);
    free(v);
    cr_assert(t);
    return t;
}

/* an NCHW copy of t's values (never blocked) */
static nn_tensor *plain_copy(nn_ctx *c, const nn_tensor *t)
{
    float *v = malloc(nn_numel(t) * sizeof *v);
    cr_assert_eq(nn_tensor_read(t, v), 0);
    nn_tensor *p = nn_tensor_from(c, t->n, t->c, t->h, t->w, v);
    free(v);
    return p;
}

static size_t ndiff(const nn_tensor *a, const nn_tensor *b)
{
    cr_assert_eq(nn_numel(a), nn_numel(b));
    const float *x = nn_f32(a), *y = nn_f32(b);
    size_t d = 0;
    for (size_t i = 0; i < nn_numel(a); i++)
        d += memcmp(&x[i], &y[i], sizeof x[i]) != 0;
    return d;
}

/* a blocked tensor [n, ch, h, w] (an unrecorded 3x3 convolution's output) and, in *plain, its
 * values in NCHW (the same convolution run again, converted: the runs give the same bits) */
static nn_tensor *blocked(nn_ctx *c, int n, int ch, int h, int w, nn_rng *r, nn_tensor **plain)
{
    nn_tensor *x = rand_tensor(c, n, ch, h, w, r), *wt = rand_tensor(c, ch, ch, 3, 3, r);
    nn_tensor *b = rand_tensor(c, ch, 1, 1, 1, r);
    const int was = nn_ctx_set_grad_enabled(c, 0);
    nn_tensor *y = nn_conv2d(c, x, wt, b, 1, 1, 1), *y2 = nn_conv2d(c, x, wt, b, 1, 1, 1);
    nn_ctx_set_grad_enabled(c, was);
    cr_assert(y && y2, "%s", nn_ctx_error(c));
    cr_assert(nn_is_blocked(y) && nn_is_blocked(y2),
              "an unrecorded %d-channel oneDNN convolution gave NCHW", ch);
    if (plain) {
        *plain = plain_copy(c, y2);
        cr_assert(*plain && !nn_is_blocked(*plain));
    }
    return y;
}

Test(nn_blk, convolution_output_blocked_and_equal_to_the_recorded_one)
{
    nn_rng r;
    nn_rng_seed(&r, 1);
    for (int ch = 16; ch <= 32; ch += 16) {
        nn_ctx *c = ctx_new();
        nn_tensor *x = rand_tensor(c, 2, ch, 13, 11, &r), *wt = rand_tensor(c, ch, ch, 3, 3, &r);
        nn_tensor *b = rand_tensor(c, ch, 1, 1, 1, &r);
        nn_ctx_set_grad_enabled(c, 0);
        nn_tensor *y = nn_conv2d(c, x, wt, b, 1, 1, 1);
        nn_ctx_set_grad_enabled(c, 1);
        cr_assert(y && nn_is_blocked(y), "%d channels: not blocked", ch);
        nn_tensor *ref = nn_conv2d(c, nn_requires_grad(plain_copy(c, x)), wt, b, 1, 1, 1);
        cr_assert(ref && !nn_is_blocked(ref), "a recorded convolution's output is NCHW");
        float *v = malloc(nn_numel(y) * sizeof *v);
        cr_assert_eq(nn_tensor_read(y, v), 0);
        cr_expect_not(nn_is_blocked(y), "read converts in place, once");
        cr_expect_eq(memcmp(v, nn_f32(ref), nn_numel(y) * sizeof *v), 0, "%d channels", ch);
        cr_expect_eq(ndiff(y, ref), 0);
        free(v);
        nn_ctx_free(c);
    }
}

Test(nn_blk, add_with_both_or_one_input_blocked)
{
    nn_rng r;
    nn_rng_seed(&r, 2);
    nn_ctx *c = ctx_new();
    nn_ctx_set_grad_enabled(c, 0);
    for (int relu = 0; relu <= 1; relu++)
        for (int which = 0; which < 3; which++) { /* 0: both blocked, 1: a only, 2: b only */
            nn_tensor *pa, *pb;
            nn_tensor *a = blocked(c, 2, 16, 9, 7, &r, &pa), *b = blocked(c, 2, 16, 9, 7, &r, &pb);
            if (which == 2)
                a = pa;
            if (which == 1)
                b = pb;
            nn_tensor *y = relu ? nn_add_relu(c, a, b) : nn_add(c, a, b);
            nn_tensor *ref = relu ? nn_add_relu(c, pa, pb) : nn_add(c, pa, pb);
            cr_assert(y && ref, "%s", nn_ctx_error(c));
            cr_expect(nn_is_blocked(y), "relu %d case %d: the sum is NCHW", relu, which);
            cr_expect_eq(ndiff(y, ref), 0, "relu %d case %d", relu, which);
        }
    nn_ctx_free(c);
}

Test(nn_blk, max_pool_blocked_with_a_nan)
{
    static const int kk[][2] = {{2, 2}, {3, 2}, {2, 1}};
    nn_rng r;
    nn_rng_seed(&r, 3);
    for (int bsel = 0; bsel < 2; bsel++)
        for (size_t t = 0; t < sizeof kk / sizeof kk[0]; t++) {
            nn_ctx *c = ctx_new();
            nn_ctx_set_grad_enabled(c, 0);
            const int ch = bsel ? 32 : 16;
            /* a NaN in one input pixel reaches every channel of the output pixels around it */
            nn_tensor *x = rand_tensor(c, 2, ch, 10, 9, &r), *wt = rand_tensor(c, ch, ch, 3, 3, &r);
            nn_f32(x)[(size_t)1 * ch * 90 + 3 * 9 + 4] = NAN;
            nn_tensor *y = nn_conv2d(c, x, wt, NULL, 1, 1, 1),
                      *y2 = nn_conv2d(c, x, wt, NULL, 1, 1, 1);
            cr_assert(y && nn_is_blocked(y));
            nn_tensor *py = plain_copy(c, y2);
            nn_tensor *p = nn_max_pool2d(c, y, kk[t][0], kk[t][1]);
            nn_tensor *ref = nn_max_pool2d(c, py, kk[t][0], kk[t][1]);
            cr_assert(p && ref, "%s", nn_ctx_error(c));
            cr_expect(nn_is_blocked(p), "pool %d/%d: NCHW", kk[t][0], kk[t][1]);
            size_t nans = 0;
            for (size_t i = 0; i < nn_numel(ref); i++)
                nans += isnan(nn_f32(ref)[i]);
            cr_assert_gt(nans, 0, "the NaN did not reach the pooled output");
            cr_expect_eq(ndiff(p, ref), 0, "pool %d/%d, %d channels", kk[t][0], kk[t][1], ch);
            nn_ctx_free(c);
        }
}

Test(nn_blk, concat_blocked_and_mixed)
{
    nn_rng r;
    nn_rng_seed(&r, 4);
    nn_ctx *c = ctx_new();
    nn_ctx_set_grad_enabled(c, 0);
    for (int mixed = 0; mixed <= 1; mixed++) {
        nn_tensor *pa, *pb;
        nn_tensor *a = blocked(c, 2, 16, 8, 6, &r, &pa), *b = blocked(c, 2, 32, 8, 6, &r, &pb);
        nn_tensor *y = nn_concat2(c, a, mixed ? pb : b), *ref = nn_concat2(c, pa, pb);
        cr_assert(y && ref, "%s", nn_ctx_error(c));
        cr_expect_eq(nn_is_blocked(y), !mixed, "mixed %d", mixed);
        cr_expect_eq(ndiff(y, ref), 0, "mixed %d", mixed);
    }
    nn_ctx_free(c);
}

Test(nn_blk, transposed_convolution_bias_on_the_blocked_output)
{
    nn_rng r;
    nn_rng_seed(&r, 5);
    nn_ctx *c = ctx_new();
    nn_tensor *px;
    nn_tensor *x = blocked(c, 2, 32, 6, 5, &r, &px);
    nn_tensor *w = rand_tensor(c, 32, 32, 2, 2, &r), *b = rand_tensor(c, 32, 1, 1, 1, &r);
    nn_ctx_set_grad_enabled(c, 0);
    nn_tensor *y = nn_conv_transpose2d(c, x, w, b, 2, 0, 0);
    nn_ctx_set_grad_enabled(c, 1);
    nn_tensor *ref = nn_conv_transpose2d(c, nn_requires_grad(px), w, b, 2, 0, 0);
    cr_assert(y && ref, "%s", nn_ctx_error(c));
    cr_expect(nn_is_blocked(y));
    cr_expect_eq(ndiff(y, ref), 0);
    nn_ctx_free(c);
}

Test(nn_blk, scope_end_and_detach_keep_the_values)
{
    nn_rng r;
    nn_rng_seed(&r, 6);
    nn_ctx *c = ctx_new();
    nn_ctx_set_grad_enabled(c, 0);
    nn_tensor *px;
    nn_scope sc = nn_ctx_scope(c);
    (void)rand_tensor(c, 4, 16, 32, 32, &r); /* dies with the scope: the kept one moves down */
    nn_tensor *x = blocked(c, 2, 16, 9, 7, &r, &px);
    float *v = malloc(nn_numel(px) * 4);
    cr_assert_eq(nn_tensor_read(px, v), 0);
    nn_tensor *k = nn_ctx_scope_end(c, sc, x);
    cr_assert(k, "%s", nn_ctx_error(c));
    cr_expect(nn_is_blocked(k), "the kept tensor stays blocked");
    nn_tensor *d = nn_detach(c, k);
    cr_assert(d && nn_is_blocked(d));
    nn_tensor *t = nn_tensor_from(c, k->n, k->c, k->h, k->w, v);
    cr_expect_eq(ndiff(d, t), 0, "values after scope_end, read through the detached twin");
    cr_expect_not(nn_is_blocked(k), "the twin's conversion is the original's");
    cr_expect_eq(memcmp(nn_f32(k), v, nn_numel(k) * 4), 0);
    free(v);
    nn_ctx_free(c);
}

/* logits of a width-16 segmentor's inference on fixed inputs, in a child process with
 * MKDSEG_CPU_LAYOUT=layout and MKDSEG_CONV_PATH=path. The path is forced: the timed choice
 * may pick another path for a layer in each process (as it does when an input arrives
 * blocked), and the bits would then differ with the machine's timing. */
static void seg_child(const char *layout, const char *path, int threads, float *out, size_t n)
{
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        char err[256];
        setenv("MKDSEG_CPU_LAYOUT", layout, 1);
        setenv("MKDSEG_CONV_PATH", path, 1);
        nn_set_threads(threads);
        segmentor *s = segmentor_new(nn_backend_cpu(), 16, 4, 1, err, sizeof err);
        nn_rng r;
        nn_rng_seed(&r, 7);
        if (!s || segmentor_init(s, &r))
            _exit(2);
        /* running statistics that are not the identity, so folding them matters, and small
         * means, so the activations do not die in the ReLUs (zeros in any layout are zeros) */
        for (int i = 0; i < nn_params_count(s->params); i++) {
            nn_param *q = nn_params_at(s->params, i);
            if (q->kind == NN_BUFFER && strstr(q->name, "running_mean"))
                nn_init_uniform(&q->t, -0.1f, 0.1f, &r);
            else if (q->kind == NN_BUFFER && strstr(q->name, "running_var"))
                nn_init_uniform(&q->t, 0.5f, 1.5f, &r);
        }
        nn_ctx *c = nn_ctx_new(nn_backend_cpu(), 0, err, sizeof err);
        if (!c)
            _exit(3);
        const size_t nx = (size_t)2 * 64 * 64;
        float *xv = malloc(nx * 4);
        for (size_t i = 0; i < nx; i++)
            xv[i] = nn_rng_uniform(&r) * 2.0f - 1.0f;
        nn_tensor *x = nn_tensor_from(c, 2, 1, 64, 64, xv);
        nn_tensor *y = x ? segmentor_infer(s, c, x) : NULL;
        if (!y || nn_numel(y) != n || nn_tensor_read(y, out))
            _exit(4);
        _exit(0);
    }
    int st = 0;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child (%s, %s) failed: %d", layout, path,
              WEXITSTATUS(st));
}

Test(nn_blk, segmentor_inference_same_bits_blocked_and_plain)
{
    /* oneDNN everywhere; and GEMM or Winograd wherever they apply, so that blocked outputs of
     * the layers oneDNN still runs reach the hand-written paths through their NCHW copy */
    static const char *const paths[] = {"onednn", "gemm", "winograd"};
    const size_t n = (size_t)2 * 4 * 64 * 64;
    for (size_t p = 0; p < sizeof paths / sizeof paths[0]; p++)
        for (int threads = 1; threads <= 2; threads++) {
            float *m =
                mmap(NULL, 2 * n * 4, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
            cr_assert(m != MAP_FAILED);
            seg_child("plain", paths[p], threads, m, n);
            seg_child("auto", paths[p], threads, m + n, n);
            size_t d = 0, distinct = 0;
            for (size_t i = 0; i < n; i++) {
                d += memcmp(&m[i], &m[n + i], 4) != 0;
                distinct += i && m[i] != m[i - 1];
            }
            /* logits that vary from pixel to pixel: the comparison sees the layers' values */
            cr_assert_gt(distinct, n / 2, "%s: the logits are nearly constant", paths[p]);
            cr_expect_eq(d, 0, "%s, %d thread(s): %zu of %zu logits differ", paths[p], threads, d,
                         n);
            munmap(m, 2 * n * 4);
        }
}
