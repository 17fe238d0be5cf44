/* cpu_par.c: is a loop worth waking the thread team for (cpu_par_ok).
 *
 * A parallel region costs the wake-up of the team's threads and the barrier at its end. With
 * spinning threads that is about a microsecond; with passive waiting, mkdseg's default on a
 * shared machine (server/cli/cli_omp.c), each region wakes sleeping threads through the kernel:
 * 35-95 us measured in a KVM guest (tests/bench/omp_region.c, docs/benchmarks.md). An experiment-scale training step
 * runs thousands of regions over tensors of 50 000 - 150 000 floats, each a few tens of
 * microseconds of work on one core, and ran 2.3 times slower on two threads than on one. So the
 * backend's elementwise, norm, shape and loss loops run on the team only above a size measured
 * once per process: the least time of an empty region on two threads, over 9 tries after a
 * warm-up, in two classes so that the same machine and setting give the same split (and the
 * same reduction order) from one run to the next:
 *   under 10 us (spinning threads): loops of 32 768 floats or more;
 *   10 us or more (sleeping threads): loops of 524 288 floats or more.
 * A one-thread process never measures. The convolutions decide by timing instead
 * (cpu_conv.c's choice, which includes "on one thread"). */
#include "cpu.h"

#include <omp.h>
#include <pthread.h>
#include <time.h>

#define PAR_MIN_SPIN ((size_t)32768)
#define PAR_MIN_SLEEP ((size_t)524288)
#define SLOW_REGION_US 10.0

static size_t g_min;
static double g_region_us;

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return 1e6 * (double)ts.tv_sec + 1e-3 * (double)ts.tv_nsec;
}

static void measure(void)
{
    double best = 1e300;
    volatile int sink = 0;
    for (int r = 0; r < 10; r++) {
        const double t0 = now_us();
#pragma omp parallel num_threads(2)
        {
            if (omp_get_thread_num() == 1)
                sink = 1;
        }
        const double t = now_us() - t0;
        if (r > 0 && t < best)
            best = t;
    }
    (void)sink;
    g_region_us = best;
    g_min = best < SLOW_REGION_US ? PAR_MIN_SPIN : PAR_MIN_SLEEP;
}

static pthread_once_t g_once = PTHREAD_ONCE_INIT;

int cpu_par_ok(size_t n)
{
    if (nn_get_threads() < 2 || omp_in_parallel())
        return 0;
    pthread_once(&g_once, measure);
    return n >= g_min;
}

double cpu_par_region_us(void)
{
    pthread_once(&g_once, measure);
    return g_region_us;
}
