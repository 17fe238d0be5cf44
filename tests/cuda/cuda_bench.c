/* cuda_bench.c: build/tests/cuda-bench, the GPU side of the CUDA benchmark (docs/benchmarks.md).
 *
 *   build/tests/cuda-bench --workload NAME [--device cuda|cpu] [--warmup W] [--reps R]
 *   build/tests/cuda-bench --list
 *
 * The workloads of `mkdseg bench` (server/cli/cmd_bench.c, tests/bench/torch_bench.py: same
 * networks, sizes and steps) plus mkd_iter_b8: one full `mkd` training iteration (six
 * networks, paper size, batch 8 at 256x256) through the trainer (its host work included:
 * sampling, augmentation, uploads, image pools), and seg_infer_512_b8 (8 CT
 * slices at 512x512: a 512x512x300 volume is 38 such batches per ensemble member), and
 * mkd_iter_small (the mkd iteration at 64x64, batch 2, widths 8: for compute-sanitizer). The inputs are uploaded
 * once (as the PyTorch peer's live on the GPU); each repetition ends by waiting for the GPU
 * (inference: cudaDeviceSynchronize, as torch.cuda.synchronize(); training: reading the loss
 * back), so wall time is GPU time plus launch overhead. Prints one JSON line: impl, workload, device, ms (median), times_ms,
 * flops (convolution FLOPs of one repetition, models.h; 0 for mkd_iter_b8). Engine-only: no
 * server libraries, so it runs on the lent GPU machine (tests/gpu/check.sh). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "models.h"
#include "nn.h"
#include "train.h"

#include <cuda_runtime_api.h>

void nn_cuda_profile_reset(void); /* kernels/cuda.h */

typedef enum { NET_SEG, NET_GEN, NET_DISC, NET_MKD } bnet;
typedef enum { M_INFER, M_TRAIN, M_FWDBWD } bmode;

typedef struct {
    const char *name;
    bnet net;
    int size, n, hw;
    bmode mode;
} wl_t;

static const wl_t wls[] = {
    {"seg_infer_b1", NET_SEG, 32, 1, 256, M_INFER},
    {"seg_infer_b8", NET_SEG, 32, 8, 256, M_INFER},
    {"seg_train_b8", NET_SEG, 32, 8, 256, M_TRAIN},
    {"gen_fwd_bwd", NET_GEN, 64, 1, 256, M_FWDBWD},
    {"disc_fwd_bwd", NET_DISC, 64, 1, 256, M_FWDBWD},
    {"seg16_train_128", NET_SEG, 16, 1, 128, M_TRAIN},
    {"mkd_iter_b8", NET_MKD, 32, 8, 256, M_TRAIN},
    {"seg_infer_512_b8", NET_SEG, 32, 8, 512, M_INFER},
    /* small mkd iteration (64x64, batch 2, narrow networks): for compute-sanitizer runs */
    {"mkd_iter_small", NET_MKD, 8, 2, 64, M_TRAIN},
};
#define NWL (int)(sizeof wls / sizeof wls[0])

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

static int cmpd(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

typedef struct {
    const wl_t *wl;
    const nn_backend *be;
    segmentor *seg;
    generator *gen;
    discriminator *disc;
    nn_params *params;
    nn_adam *opt;
    nn_ctx *ctx;
    nn_ctx *dctx; /* the inputs, uploaded once (as the PyTorch peer's) */
    nn_tensor *xin, *tin, *lin;
    trainer *tr;
    train_slices ts[2];
    float *x, *target;
    int32_t *labels;
} st_t;

static int step(st_t *b, char *err, size_t errlen)
{
    const wl_t *wl = b->wl;
    if (wl->net == NET_MKD)
        return trainer_step(b->tr, err, errlen); /* ends by reading its losses: a wait */
    nn_ctx *ctx = b->ctx;
    nn_ctx_reset(ctx);
    if (wl->mode != M_INFER)
        nn_params_zero_grad(b->params);
    nn_tensor *x = b->xin, *y, *loss = NULL;
    if (wl->net == NET_SEG) {
        y = wl->mode == M_INFER ? segmentor_infer(b->seg, ctx, x)
                                : segmentor_forward(b->seg, ctx, x, SEGMENTOR_BN_TRAIN);
        if (wl->mode != M_INFER)
            loss = segmentor_loss(ctx, y, b->lin);
    } else if (wl->net == NET_GEN) {
        y = generator_forward(b->gen, ctx, x);
        loss = nn_loss_l1(ctx, y, b->tin);
    } else {
        y = discriminator_forward(b->disc, ctx, x);
        loss = nn_loss_lsgan(ctx, y, 1.0f);
    }
    if (!y || (wl->mode != M_INFER && !loss)) {
        snprintf(err, errlen, "%s", nn_ctx_error(ctx) ? nn_ctx_error(ctx) : "forward failed");
        return -1;
    }
    if (wl->mode == M_INFER) {
        /* wait for the device, as torch.cuda.synchronize() (the CPU backend is synchronous;
         * reading the logits back would add a copy the peer does not make) */
        if (!strcmp(nn_backend_name(b->be), "cuda") && cudaDeviceSynchronize() != cudaSuccess) {
            snprintf(err, errlen, "cudaDeviceSynchronize failed");
            return -1;
        }
        return 0;
    }
    if (nn_backward(ctx, loss, err, errlen))
        return -1;
    if (wl->mode == M_TRAIN && nn_adam_step(b->opt, err, errlen))
        return -1;
    (void)nn_scalar(loss); /* waits for the device (Adam included) */
    return 0;
}

static int setup(st_t *b, double *flops, char *err, size_t errlen)
{
    const wl_t *wl = b->wl;
    size_t npix = (size_t)wl->n * wl->hw * wl->hw;
    size_t nout = npix * 8; /* room for any output read back */
    nn_rng r;
    nn_rng_seed(&r, 1);
    int train = wl->mode != M_INFER;
    *flops = 0;
    if (wl->net == NET_MKD) {
        train_config c;
        train_config_default(&c);
        c.method = TM_MKD;
        c.iters = 1000;
        if (wl->hw != c.size) { /* the small variant: every width from wl->size */
            c.size = wl->hw;
            c.batch = wl->n;
            c.seg_width = c.ngf = c.ndf = wl->size;
            c.ngen_blocks = 2;
            c.spacing = 0;
        }
        for (int k = 0; k < 2; k++) {
            int ns = 16;
            size_t m = (size_t)ns * c.size * c.size;
            b->ts[k].n = ns;
            b->ts[k].size = c.size;
            b->ts[k].img = malloc(m * sizeof(float));
            b->ts[k].lab = malloc(m * sizeof(int32_t));
            if (!b->ts[k].img || !b->ts[k].lab) {
                snprintf(err, errlen, "out of memory");
                return -1;
            }
            for (size_t i = 0; i < m; i++) {
                b->ts[k].img[i] = nn_rng_normal(&r);
                b->ts[k].lab[i] = (int32_t)(nn_rng_u64(&r) % (uint64_t)c.classes);
            }
        }
        b->tr = trainer_new(&c, b->be, &b->ts[0], &b->ts[1], err, errlen);
        return b->tr ? 0 : -1;
    }
    if (wl->net == NET_SEG) {
        if (!(b->seg = segmentor_new(b->be, wl->size, 8, 1, err, errlen)))
            return -1;
        segmentor_init(b->seg, &r);
        b->params = b->seg->params;
        *flops = segmentor_flops(b->seg, wl->n, wl->hw, wl->hw, train);
    } else if (wl->net == NET_GEN) {
        if (!(b->gen = generator_new(b->be, wl->size, 9, 1, 1, err, errlen)))
            return -1;
        generator_init(b->gen, &r);
        b->params = b->gen->params;
        *flops = generator_flops(b->gen, wl->n, wl->hw, wl->hw, train);
    } else {
        if (!(b->disc = discriminator_new(b->be, wl->size, 1, err, errlen)))
            return -1;
        discriminator_init(b->disc, &r);
        b->params = b->disc->params;
        *flops = discriminator_flops(b->disc, wl->n, wl->hw, wl->hw, train);
    }
    b->x = malloc(npix * sizeof *b->x);
    b->target = malloc(nout * sizeof *b->target);
    b->labels = malloc(npix * sizeof *b->labels);
    if (!b->x || !b->target || !b->labels) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < npix; i++) {
        b->x[i] = nn_rng_normal(&r);
        b->target[i] = 2 * nn_rng_uniform(&r) - 1;
        b->labels[i] = (int32_t)(nn_rng_u64(&r) % 8);
    }
    if (wl->mode == M_TRAIN) {
        nn_adam_cfg cfg = {2e-4f, 0.9f, 0.999f, 1e-8f, 0.0f};
        if (!(b->opt = nn_adam_new(b->params, cfg, err, errlen)))
            return -1;
    }
    if (!(b->ctx = nn_ctx_new(b->be, 0, err, errlen)) ||
        !(b->dctx = nn_ctx_new(b->be, 0, err, errlen)))
        return -1;
    int n = wl->n, hw = wl->hw;
    b->xin = nn_tensor_from(b->dctx, n, 1, hw, hw, b->x);
    b->tin = nn_tensor_from(b->dctx, n, 1, hw, hw, b->target);
    b->lin = nn_labels_from(b->dctx, n, hw, hw, b->labels);
    if (!b->xin || !b->tin || !b->lin) {
        snprintf(err, errlen, "%s", nn_ctx_error(b->dctx) ? nn_ctx_error(b->dctx) : "inputs");
        return -1;
    }
    nn_ctx_set_grad_enabled(b->ctx, train);
    return 0;
}

static void teardown(st_t *b)
{
    trainer_free(b->tr);
    nn_ctx_free(b->ctx);
    nn_ctx_free(b->dctx);
    nn_adam_free(b->opt);
    segmentor_free(b->seg);
    generator_free(b->gen);
    discriminator_free(b->disc);
    for (int k = 0; k < 2; k++) {
        free(b->ts[k].img);
        free(b->ts[k].lab);
    }
    free(b->x);
    free(b->target);
    free(b->labels);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"workload", required_argument, 0, 'w'}, {"device", required_argument, 0, 'd'},
        {"warmup", required_argument, 0, 'u'},   {"reps", required_argument, 0, 'r'},
        {"list", no_argument, 0, 'l'},           {0, 0, 0, 0}};
    const char *name = NULL, *dev = "cuda";
    int warmup = 2, reps = 5, c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'w':
            name = optarg;
            break;
        case 'd':
            dev = optarg;
            break;
        case 'u':
            warmup = atoi(optarg);
            break;
        case 'r':
            reps = atoi(optarg);
            break;
        case 'l':
            for (int i = 0; i < NWL; i++)
                printf("%s\n", wls[i].name);
            return 0;
        default:
            fprintf(stderr, "usage: cuda-bench --workload NAME [--device cuda|cpu] "
                            "[--warmup W] [--reps R] | --list\n");
            return 2;
        }
    }
    st_t b;
    memset(&b, 0, sizeof b);
    for (int i = 0; i < NWL; i++)
        if (name && !strcmp(name, wls[i].name))
            b.wl = &wls[i];
    if (!b.wl || reps < 1 || warmup < 0) {
        fprintf(stderr, "cuda-bench: unknown workload %s (--list)\n", name ? name : "(none)");
        return 2;
    }
    nn_set_threads(0);
    if (!(b.be = nn_backend_by_name(dev))) {
        fprintf(stderr, "cuda-bench: backend %s not available\n", dev);
        return 1;
    }
    char err[512];
    double flops;
    if (setup(&b, &flops, err, sizeof err)) {
        fprintf(stderr, "cuda-bench: %s: %s\n", b.wl->name, err);
        teardown(&b);
        return 1;
    }
    double *t = calloc((size_t)reps, sizeof *t), *sorted = calloc((size_t)reps, sizeof *t);
    int rc = 0;
    for (int i = 0; i < warmup + reps && !rc; i++) {
        if (i == warmup)
            nn_cuda_profile_reset(); /* MKDSEG_CUDA_PROFILE: the measured reps only */
        double t0 = now_ms();
        if (step(&b, err, sizeof err)) {
            fprintf(stderr, "cuda-bench: %s: %s\n", b.wl->name, err);
            rc = 1;
        } else if (i >= warmup) {
            t[i - warmup] = now_ms() - t0;
        }
    }
    if (!rc) {
        memcpy(sorted, t, (size_t)reps * sizeof *t);
        qsort(sorted, (size_t)reps, sizeof *sorted, cmpd);
        double med = reps % 2 ? sorted[reps / 2] : 0.5 * (sorted[reps / 2 - 1] + sorted[reps / 2]);
        printf("{\"impl\": \"mkdseg\", \"workload\": \"%s\", \"device\": \"%s\", \"ms\": %.3f, "
               "\"times_ms\": [",
               b.wl->name, nn_backend_name(b.be), med);
        for (int i = 0; i < reps; i++)
            printf("%s%.3f", i ? ", " : "", t[i]);
        printf("], \"warmup\": %d, \"reps\": %d, \"flops\": %.6g}\n", warmup, reps, flops);
    }
    free(t);
    free(sorted);
    teardown(&b);
    return rc;
}
