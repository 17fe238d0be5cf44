/* cmd_bench.c: `mkdseg bench`, the C side of `make bench` (the CPU speed and memory comparison with PyTorch, docs/benchmarks.md).
 *
 *   mkdseg bench --workload NAME [--threads T] [--warmup W] [--reps R] [--json]
 *   mkdseg bench --list
 *   mkdseg bench --peak [--json]
 *
 * Runs one workload (the same networks, sizes and steps as tests/bench/torch_bench.py) W times
 * untimed, then R times timed, and prints the median wall time, every time, the process's
 * peak RSS and the convolution FLOPs of one repetition (models.h *_flops). --peak measures one
 * core's FP32 FMA throughput (the "% of peak" denominator of tests/bench/run_bench.py). The
 * driver tests/bench/run_bench.py (`make bench`) runs this and the PyTorch peer side by side. */
#include <getopt.h>
#include <immintrin.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "commands.h"
#include "models.h"

typedef enum { NET_SEG, NET_GEN, NET_DISC } bench_net;
typedef enum { MODE_INFER, MODE_TRAIN, MODE_FWDBWD } bench_mode;

typedef struct {
    const char *name;
    bench_net net;
    int size;  /* segmentor width, generator ngf, discriminator ndf */
    int n, hw; /* input [n, 1, hw, hw] */
    bench_mode mode;
    const char *what;
} bench_workload;

static const bench_workload workloads[] = {
    {"seg_infer_b1", NET_SEG, 32, 1, 256, MODE_INFER, "segmentor w=32, inference, 1x1x256x256"},
    {"seg_infer_b8", NET_SEG, 32, 8, 256, MODE_INFER, "segmentor w=32, inference, 8x1x256x256"},
    {"seg_train_b8", NET_SEG, 32, 8, 256, MODE_TRAIN,
     "segmentor w=32, training step (CE+Dice, Adam), 8x1x256x256"},
    {"gen_fwd_bwd", NET_GEN, 64, 1, 256, MODE_FWDBWD,
     "generator ngf=64, 9 blocks, forward+L1+backward, 1x1x256x256"},
    {"disc_fwd_bwd", NET_DISC, 64, 1, 256, MODE_FWDBWD,
     "discriminator ndf=64, forward+LSGAN+backward, 1x1x256x256"},
    {"seg16_train_128", NET_SEG, 16, 1, 128, MODE_TRAIN,
     "segmentor w=16, training step (CE+Dice, Adam), 1x1x128x128"},
};
#define N_WORKLOADS (int)(sizeof workloads / sizeof workloads[0])

static void usage(FILE *f)
{
    fprintf(f,
            "usage: mkdseg bench --workload NAME [--threads T] [--warmup W] [--reps R] [--json]\n"
            "       mkdseg bench --list | --peak [--json]\n\n"
            "Runs one benchmark workload of the engine (the C side of `make bench`, which runs\n"
            "the PyTorch peer beside it): W untimed then R timed repetitions; prints the median\n"
            "time, peak RSS and GFLOP/s.\n\n"
            "  --workload NAME  one of --list\n"
            "  --threads T      engine threads (default: $MKDSEG_THREADS, else all cores)\n"
            "  --warmup W       untimed repetitions first (default 2)\n"
            "  --reps R         timed repetitions, median reported (default 5)\n"
            "  --seed S         initialisation and data seed (default 0)\n"
            "  --json           one JSON object on stdout instead of text\n"
            "  --list           list the workloads\n"
            "  --peak           measure one core's FP32 FMA peak (GFLOP/s)\n");
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static double peak_rss_mb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss / 1024.0; /* ru_maxrss is in KiB on Linux */
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* ---- one core's FMA peak --------------------------------------------------------------- */

#define PEAK_ACC 12 /* independent accumulators: enough to cover FMA latency */

/* acc_i = acc_i * m + a on PEAK_ACC independent registers, explicit FMA intrinsics (ISO C
 * mode does not contract a*b+c), written out so that the accumulators stay in registers. */
#define PEAK_ALL(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)
#define PEAK_FN(fname, tgt, vt, set1, fmadd, storeu, lanes)                                        \
    __attribute__((target(tgt), noinline)) static float fname(long iters)                          \
    {                                                                                              \
        vt m = set1(0.999999f), a = set1(1e-7f);                                                   \
        PEAK_ALL(PEAK_DECL_##lanes)                                                                \
        for (long it = 0; it < iters; it++) {                                                      \
            PEAK_ALL(PEAK_STEP_##lanes)                                                            \
            __asm__ volatile("" : "+v"(m));                                                        \
        }                                                                                          \
        float s = 0, lane[lanes];                                                                  \
        PEAK_ALL(PEAK_SUM_##lanes)                                                                 \
        return s;                                                                                  \
    }
#define PEAK_DECL_8(i) __m256 acc##i = _mm256_set1_ps((float)(i)*1e-3f);
#define PEAK_STEP_8(i) acc##i = _mm256_fmadd_ps(acc##i, m, a);
#define PEAK_SUM_8(i)                                                                              \
    _mm256_storeu_ps(lane, acc##i);                                                                \
    for (int l = 0; l < 8; l++)                                                                    \
        s += lane[l];
#define PEAK_DECL_16(i) __m512 acc##i = _mm512_set1_ps((float)(i)*1e-3f);
#define PEAK_STEP_16(i) acc##i = _mm512_fmadd_ps(acc##i, m, a);
#define PEAK_SUM_16(i)                                                                             \
    _mm512_storeu_ps(lane, acc##i);                                                                \
    for (int l = 0; l < 16; l++)                                                                   \
        s += lane[l];

PEAK_FN(peak_avx2, "avx2,fma", __m256, _mm256_set1_ps, _mm256_fmadd_ps, _mm256_storeu_ps, 8)
PEAK_FN(peak_avx512, "avx512f", __m512, _mm512_set1_ps, _mm512_fmadd_ps, _mm512_storeu_ps, 16)

/* GFLOP/s of one thread running FMAs (2 FLOPs per lane): the best of 200 bursts of ~1 ms,
 * so that a burst that ran undisturbed is likely even on a shared machine. */
static double measure_peak(int *lanes_out)
{
    int avx512 = __builtin_cpu_supports("avx512f");
    int lanes = avx512 ? 16 : 8;
    long iters = avx512 ? 100000 : 200000;
    double best = 0;
    volatile float sink = 0;
    for (int rep = 0; rep < 200; rep++) {
        double t0 = now_ms();
        sink += avx512 ? peak_avx512(iters) : peak_avx2(iters);
        double ms = now_ms() - t0;
        double gf = 2.0 * lanes * PEAK_ACC * (double)iters / (ms * 1e6);
        if (gf > best)
            best = gf;
    }
    (void)sink;
    *lanes_out = lanes;
    return best;
}

/* ---- workloads ------------------------------------------------------------------------- */

typedef struct {
    const bench_workload *wl;
    segmentor *seg;
    generator *gen;
    discriminator *disc;
    nn_params *params;
    nn_adam *opt;
    nn_ctx *ctx;
    float *x;        /* [n, 1, hw, hw] host input */
    float *target;   /* generator L1 target, same shape */
    int32_t *labels; /* [n, hw, hw] */
} bench_state;

/* One repetition. 0 or -1 (message in err). */
static int bench_step(bench_state *b, char *err, size_t errlen)
{
    const bench_workload *wl = b->wl;
    nn_ctx *ctx = b->ctx;
    int n = wl->n, hw = wl->hw;
    nn_ctx_reset(ctx);
    if (wl->mode != MODE_INFER)
        nn_params_zero_grad(b->params);
    nn_tensor *x = nn_tensor_from(ctx, n, 1, hw, hw, b->x);
    nn_tensor *y, *loss = NULL;
    switch (wl->net) {
    case NET_SEG:
        if (wl->mode == MODE_INFER)
            y = segmentor_infer(b->seg, ctx, x);
        else
            y = segmentor_forward(b->seg, ctx, x, SEGMENTOR_BN_TRAIN);
        if (wl->mode != MODE_INFER)
            loss = segmentor_loss(ctx, y, nn_labels_from(ctx, n, hw, hw, b->labels));
        break;
    case NET_GEN:
        y = generator_forward(b->gen, ctx, x);
        loss = nn_loss_l1(ctx, y, nn_tensor_from(ctx, n, 1, hw, hw, b->target));
        break;
    default:
        y = discriminator_forward(b->disc, ctx, x);
        loss = nn_loss_lsgan(ctx, y, 1.0f);
        break;
    }
    if (!y || (wl->mode != MODE_INFER && !loss)) {
        snprintf(err, errlen, "%s", nn_ctx_error(ctx) ? nn_ctx_error(ctx) : "forward failed");
        return -1;
    }
    if (wl->mode == MODE_INFER)
        return 0;
    if (nn_backward(ctx, loss, err, errlen))
        return -1;
    if (wl->mode == MODE_TRAIN && nn_adam_step(b->opt, err, errlen))
        return -1;
    return 0;
}

static int bench_setup(bench_state *b, uint64_t seed, double *flops, char *err, size_t errlen)
{
    const bench_workload *wl = b->wl;
    size_t npix = (size_t)wl->n * wl->hw * wl->hw;
    nn_rng r;
    nn_rng_seed(&r, seed);
    const nn_backend *be = nn_backend_from_env(err, errlen);
    if (!be)
        return -1;
    int train = wl->mode != MODE_INFER;
    switch (wl->net) {
    case NET_SEG:
        if (!(b->seg = segmentor_new(be, wl->size, 8, 1, err, errlen)))
            return -1;
        segmentor_init(b->seg, &r);
        b->params = b->seg->params;
        *flops = segmentor_flops(b->seg, wl->n, wl->hw, wl->hw, train);
        break;
    case NET_GEN:
        if (!(b->gen = generator_new(be, wl->size, 9, 1, 1, err, errlen)))
            return -1;
        generator_init(b->gen, &r);
        b->params = b->gen->params;
        *flops = generator_flops(b->gen, wl->n, wl->hw, wl->hw, train);
        break;
    default:
        if (!(b->disc = discriminator_new(be, wl->size, 1, err, errlen)))
            return -1;
        discriminator_init(b->disc, &r);
        b->params = b->disc->params;
        *flops = discriminator_flops(b->disc, wl->n, wl->hw, wl->hw, train);
        break;
    }
    if (!(b->x = malloc(npix * sizeof *b->x)) || !(b->target = malloc(npix * sizeof *b->target)) ||
        !(b->labels = malloc(npix * sizeof *b->labels))) {
        snprintf(err, errlen, "bench: out of memory");
        return -1;
    }
    for (size_t i = 0; i < npix; i++) {
        b->x[i] = nn_rng_normal(&r);
        b->target[i] = 2 * nn_rng_uniform(&r) - 1;
        b->labels[i] = (int32_t)(nn_rng_u64(&r) % 8);
    }
    if (wl->mode == MODE_TRAIN) {
        nn_adam_cfg cfg = {2e-4f, 0.9f, 0.999f, 1e-8f, 0.0f};
        if (!(b->opt = nn_adam_new(b->params, cfg, err, errlen)))
            return -1;
    }
    if (!(b->ctx = nn_ctx_new(be, 0, err, errlen)))
        return -1;
    nn_ctx_set_grad_enabled(b->ctx, wl->mode != MODE_INFER);
    return 0;
}

static void bench_teardown(bench_state *b)
{
    nn_ctx_free(b->ctx);
    nn_adam_free(b->opt);
    segmentor_free(b->seg);
    generator_free(b->gen);
    discriminator_free(b->disc);
    free(b->x);
    free(b->target);
    free(b->labels);
}

/* --list: the workloads; else --peak: the measured FP32 FMA peak of one core. */
static void bench_print_info(int list, int json)
{
    if (list) {
        for (int i = 0; i < N_WORKLOADS; i++)
            printf("%-16s %s\n", workloads[i].name, workloads[i].what);
        return;
    }
    int lanes;
    double gf = measure_peak(&lanes);
    if (json)
        printf("{\"peak_gflops_per_core\": %.1f, \"simd_lanes\": %d}\n", gf, lanes);
    else
        printf("FP32 FMA peak, one core: %.1f GFLOP/s (%d-lane vectors)\n", gf, lanes);
}

/* warmup untimed steps, then reps timed ones: *times (malloc'd, reps entries) and their
 * median. 0 / -1 + err. */
static int bench_time(bench_state *b, int warmup, int reps, double **times, double *med, char *err,
                      size_t errlen)
{
    double *t = calloc((size_t)reps, sizeof *t), *sorted = malloc((size_t)reps * sizeof *sorted);
    *times = t;
    if (!t || !sorted) {
        snprintf(err, errlen, "out of memory");
        free(sorted);
        return -1;
    }
    int rc = -1;
    for (int i = 0; i < warmup; i++)
        if (bench_step(b, err, errlen))
            goto done;
    for (int i = 0; i < reps; i++) {
        double t0 = now_ms();
        if (bench_step(b, err, errlen))
            goto done;
        t[i] = now_ms() - t0;
    }
    memcpy(sorted, t, (size_t)reps * sizeof *sorted);
    qsort(sorted, (size_t)reps, sizeof *sorted, cmp_double);
    *med = reps % 2 ? sorted[reps / 2] : 0.5 * (sorted[reps / 2 - 1] + sorted[reps / 2]);
    rc = 0;
done:
    free(sorted);
    return rc;
}

/* The command line of one `mkdseg bench`. */
typedef struct {
    const char *name;
    int threads, warmup, reps, json, list, peak;
    long seed;
} bench_args;

/* Reads the options into a. 0, 1 after --help, 2 on an error (printed). */
static int bench_parse(bench_args *a, int argc, char **argv)
{
    static const struct option opts[] = {
        {"workload", required_argument, 0, 'w'}, {"threads", required_argument, 0, 't'},
        {"warmup", required_argument, 0, 'W'},   {"reps", required_argument, 0, 'r'},
        {"seed", required_argument, 0, 's'},     {"json", no_argument, 0, 'j'},
        {"list", no_argument, 0, 'l'},           {"peak", no_argument, 0, 'p'},
        {"help", no_argument, 0, 'h'},           {0, 0, 0, 0},
    };
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'w')
            a->name = optarg;
        else if (c == 't' || c == 'W' || c == 'r')
            *(c == 't' ? &a->threads : c == 'W' ? &a->warmup : &a->reps) = atoi(optarg);
        else if (c == 's')
            a->seed = atol(optarg);
        else if (c == 'j' || c == 'l' || c == 'p')
            *(c == 'j' ? &a->json : c == 'l' ? &a->list : &a->peak) = 1;
        else if (c == 'h') {
            usage(stdout);
            return 1;
        } else {
            usage(stderr);
            return 2;
        }
    }
    return 0;
}

int cmd_bench(int argc, char **argv)
{
    bench_args a = {.warmup = 2, .reps = 5};
    int prc = bench_parse(&a, argc, argv);
    if (prc)
        return prc == 1 ? 0 : 2;
    const char *name = a.name;
    int threads = a.threads, warmup = a.warmup, reps = a.reps, json = a.json, list = a.list,
        peak = a.peak;
    long seed = a.seed;
    char err[512];
    if (list || peak) {
        bench_print_info(list, json);
        return 0;
    }
    const bench_workload *wl = NULL;
    for (int i = 0; name && i < N_WORKLOADS; i++)
        if (!strcmp(name, workloads[i].name))
            wl = &workloads[i];
    if (!wl || warmup < 0 || reps < 1 || threads < 0) {
        fprintf(stderr, "mkdseg bench: %s\n",
                !wl ? "--workload NAME required (see --list)"
                    : "bad --warmup, --reps or --threads");
        usage(stderr);
        return 2;
    }
    threads = nn_set_threads(threads);

    bench_state b = {.wl = wl};
    double flops = 0, *times = NULL, med = 0;
    int rc = 1;
    if (bench_setup(&b, (uint64_t)seed, &flops, err, sizeof err) ||
        bench_time(&b, warmup, reps, &times, &med, err, sizeof err))
        goto fail;
    double rss = peak_rss_mb();
    if (json) {
        printf("{\"impl\": \"mkdseg\", \"workload\": \"%s\", \"threads\": %d, \"ms\": %.3f, "
               "\"times_ms\": [",
               wl->name, threads, med);
        for (int i = 0; i < reps; i++)
            printf("%s%.3f", i ? ", " : "", times[i]);
        printf("], \"warmup\": %d, \"reps\": %d, \"peak_rss_mb\": %.1f, \"flops\": %.0f, "
               "\"arena_peak_mb\": %.1f}\n",
               warmup, reps, rss, flops, nn_arena_peak(nn_ctx_arena(b.ctx)) / 1048576.0);
    } else {
        printf("%s (%s), %d thread%s: median %.1f ms over %d reps (after %d warm-up), "
               "%.1f GFLOP/s, peak RSS %.1f MB\n",
               wl->name, wl->what, threads, threads == 1 ? "" : "s", med, reps, warmup,
               flops / (med * 1e6), rss);
    }
    rc = 0;
fail:
    if (rc)
        fprintf(stderr, "mkdseg bench: %s\n", err);
    free(times);
    bench_teardown(&b);
    return rc;
}
