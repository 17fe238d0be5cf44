/* omp_region.c: what one OpenMP parallel region costs on this machine (wake the team, run an
 * empty body, the barrier at its end), under the waiting policy of the environment: the
 * figure behind engine/nn/cpu/cpu_par.c's threshold (docs/benchmarks.md). Build and run:
 *   cc -O2 -fopenmp tests/bench/omp_region.c -o build/omp_region
 *   OMP_WAIT_POLICY=passive build/omp_region      # mkdseg's default
 *   GOMP_SPINCOUNT=10000 build/omp_region          # a bounded spin
 * Prints the mean of 2000 back-to-back regions on two threads, three times, and the least
 * single region of the last run. */
#include <omp.h>
#include <stdio.h>
#include <time.h>

static double now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return 1e6 * (double)t.tv_sec + 1e-3 * (double)t.tv_nsec;
}

int main(void)
{
    volatile int sink = 0;
    double least = 1e300;
    for (int run = 0; run < 3; run++) {
        const double t0 = now_us();
        for (int i = 0; i < 2000; i++) {
            const double r0 = now_us();
#pragma omp parallel num_threads(2)
            {
                if (omp_get_thread_num() == 1)
                    sink = sink + 1;
            }
            const double r = now_us() - r0;
            if (run == 2 && r < least)
                least = r;
        }
        printf("%.1f us per region (mean of 2000)\n", (now_us() - t0) / 2000);
    }
    printf("%.1f us least\n", least);
    return sink < 0;
}
