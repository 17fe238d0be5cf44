/* conv_rate.c: one convolution's weight gradient (x needs no gradient, so the backward pass is
 * the weight and bias gradients only) through the engine, with the direct kernels
 * (engine/nn/cpu/cpu_conv_direct.c) and with oneDNN alone (MKDSEG_CONV_DIRECT=0), the best of
 * `reps` calls each, to decide which shapes the direct kernels should take
 * (docs/benchmarks.md). Build and run:
 *   make build/conv_rate
 *   build/conv_rate N C H W O K stride pad threads reps   # e.g. 1 256 32 32 512 4 1 1 1 5 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "nn.h"

static double seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static double best_ms(int direct, const int *a, int reps, double *checksum)
{
    setenv("MKDSEG_CONV_DIRECT", direct ? "1" : "0", 1);
    char err[256];
    nn_ctx *ctx = nn_ctx_new(nn_backend_cpu(), 0, err, sizeof err);
    if (!ctx) {
        fprintf(stderr, "%s\n", err);
        exit(1);
    }
    const int N = a[0], C = a[1], H = a[2], W = a[3], O = a[4], K = a[5], s = a[6], p = a[7];
    const size_t nx = (size_t)N * C * H * W, nw = (size_t)O * C * K * K;
    float *x = malloc(nx * 4), *w = malloc(nw * 4), *b = calloc(O, 4);
    nn_rng r;
    nn_rng_seed(&r, 1);
    for (size_t i = 0; i < nx; i++)
        x[i] = (float)nn_rng_uniform(&r) - 0.5f;
    for (size_t i = 0; i < nw; i++)
        w[i] = (float)nn_rng_uniform(&r) - 0.5f;
    double best = 1e30;
    for (int rep = 0; rep < reps + 1; rep++) {
        nn_ctx_reset(ctx);
        nn_tensor *tx = nn_tensor_from(ctx, N, C, H, W, x),
                  *tw = nn_tensor_from(ctx, O, C, K, K, w);
        nn_tensor *tb = nn_tensor_from(ctx, O, 1, 1, 1, b);
        nn_requires_grad(tw);
        nn_requires_grad(tb);
        nn_tensor *y = nn_conv2d(ctx, tx, tw, tb, s, p, 1);
        if (!y) {
            fprintf(stderr, "%s\n", nn_ctx_error(ctx));
            exit(1);
        }
        float *gy = malloc(nn_numel(y) * 4);
        for (size_t i = 0; i < nn_numel(y); i++)
            gy[i] = (float)nn_rng_uniform(&r) - 0.5f;
        double t0 = seconds();
        if (nn_backward_from(ctx, y, gy, err, sizeof err)) {
            fprintf(stderr, "%s\n", err);
            exit(1);
        }
        double t = (seconds() - t0) * 1e3;
        if (rep > 0 && t < best)
            best = t;
        *checksum = 0;
        for (size_t i = 0; i < nw; i++)
            *checksum += tw->grad[i];
        free(gy);
    }
    nn_ctx_free(ctx);
    free(x);
    free(w);
    free(b);
    return best;
}

int main(int argc, char **argv)
{
    if (argc != 11) {
        fprintf(stderr, "usage: %s N C H W O K stride pad threads reps\n", argv[0]);
        return 2;
    }
    int a[8];
    for (int i = 0; i < 8; i++)
        a[i] = atoi(argv[i + 1]);
    nn_set_threads(atoi(argv[9]));
    const int reps = atoi(argv[10]);
    const int OH = (a[2] + 2 * a[7] - a[5]) / a[6] + 1, OW = (a[3] + 2 * a[7] - a[5]) / a[6] + 1;
    const double flops = 2.0 * a[0] * a[4] * a[1] * a[5] * a[5] * OH * OW;
    double c1, c0;
    double d = best_ms(1, a, reps, &c1), o = best_ms(0, a, reps, &c0);
    printf("N%d C%d %dx%d O%d K%d s%d p%d: direct %.2f ms (%.1f GFLOP/s), oneDNN %.2f ms (%.1f "
           "GFLOP/s), "
           "ratio %.2f, checksums %.4g / %.4g\n",
           a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], d, flops / d / 1e6, o, flops / o / 1e6,
           d / o, c1, c0);
    return 0;
}
