/* sgemm_rate.c: the FLOP rate of oneDNN's dnnl_sgemm for one GEMM shape (the best of 5 calls),
 * to judge whether a convolution's weight gradient would gain from im2col + GEMM
 * (docs/benchmarks.md). Build and run:
 *   cc -O2 tests/bench/sgemm_rate.c -o build/sgemm_rate -ldnnl
 *   OMP_NUM_THREADS=1 build/sgemm_rate 512 4096 961     # M N K: C[M,N] = A[M,K] B[K,N] */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <oneapi/dnnl/dnnl.h>

static double seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: %s M N K\n", argv[0]);
        return 2;
    }
    const long M = atol(argv[1]), N = atol(argv[2]), K = atol(argv[3]);
    float *a = malloc(sizeof(float) * M * K), *b = malloc(sizeof(float) * K * N);
    float *c = malloc(sizeof(float) * M * N);
    if (M < 1 || N < 1 || K < 1 || !a || !b || !c) {
        fprintf(stderr, "bad shape or out of memory\n");
        return 1;
    }
    for (long i = 0; i < M * K; i++)
        a[i] = (float)(i % 7) * 0.1f;
    for (long i = 0; i < K * N; i++)
        b[i] = (float)(i % 5) * 0.1f;
    double best = 1e30;
    for (int r = 0; r < 5; r++) {
        double t = seconds();
        if (dnnl_sgemm('N', 'N', M, N, K, 1.0f, a, K, b, N, 0.0f, c, N) != dnnl_success) {
            fprintf(stderr, "dnnl_sgemm failed\n");
            return 1;
        }
        t = seconds() - t;
        best = t < best ? t : best;
    }
    printf("M %ld N %ld K %ld: %.1f ms, %.1f GFLOP/s\n", M, N, K, best * 1e3,
           2.0 * M * N * K / best / 1e9);
    free(a);
    free(b);
    free(c);
    return 0;
}
