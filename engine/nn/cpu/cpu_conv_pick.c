/* cpu_conv_pick.c: which implementation runs a convolution pass: oneDNN, the hand-written
 * kernels of cpu_conv_direct.c, the Winograd ones of cpu_conv_wino.c or the im2col + GEMM
 * products of cpu_conv_gemm.c.
 *
 * The hand kernels were tuned on an AVX2-only CPU (AMD Zen 1), where they beat oneDNN's
 * jit:avx2 kernels on the shapes cpu_direct_conv_ok accepts; on an AVX-512 CPU oneDNN's
 * avx512 kernels can win on the same shapes (docs/benchmarks.md). So the choice is measured
 * on the running machine: the first time a shape (geometry, pass and thread count) is seen in
 * the process, every path that can run it runs a few times on the real arguments and the
 * fastest (least of 5 timed runs each, after a warm-up run that also creates oneDNN's
 * primitive; CPU time of the calling thread at one thread, wall time with more) is kept in a
 * process-wide table, like the CUDA backend's algorithm choice. Every later call of that shape
 * takes the cached path. With more than one thread, a short pass (cpu_conv.c's ALONE_MAX_MS) is
 * also timed with each path on the calling thread alone, a choice of its own (CPU_PICK_N), since
 * waking a sleeping team can cost more than such a pass gains from it. Winograd's rounding differs from a direct sum's, so on a shape where
 * it wins the timed choice also decides the last bits of the result. MKDSEG_CONV_PATH=
 * onednn|direct|winograd|gemm (read when a context first convolves)
 * forces one path for every shape the kernels support, for tests and for runs that must be
 * bit-reproducible across processes (a timed choice can differ from one process to the
 * next when the two paths are close); MKDSEG_CONV_DIRECT=0 is the older spelling of onednn.
 * With MKDSEG_NN_PROFILE set, the table is printed to stderr when a context is freed. */
#include "cpu.h"
#include "mkd_env.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int key[CPU_PICK_KEY];
    int impl;              /* the choice: 0 .. CPU_PICK_N - 1 */
    double ms[CPU_PICK_N]; /* least time of each (< 0: cannot run the shape, or not timed) */
} pick_ent;

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static pick_ent *g_ent;
static int g_n, g_cap;

int cpu_conv_path_from_env(void)
{
    const char *p = mkd_env_raw(MKD_ENV_CONV_PATH), *d = mkd_env_raw(MKD_ENV_CONV_DIRECT);
    if (p && !strcmp(p, "onednn"))
        return CPU_PATH_ONEDNN;
    if (p && !strcmp(p, "direct"))
        return CPU_PATH_DIRECT;
    if (p && !strcmp(p, "winograd"))
        return CPU_PATH_WINO;
    if (p && !strcmp(p, "gemm"))
        return CPU_PATH_GEMM;
    if (p && *p && strcmp(p, "auto"))
        fprintf(stderr,
                "mkdseg: MKDSEG_CONV_PATH=%s is not auto, onednn, direct, winograd or gemm: auto\n",
                p);
    if (!(p && *p) && d && !strcmp(d, "0"))
        return CPU_PATH_ONEDNN;
    if (!(p && *p) && d && !strcmp(d, "1"))
        return CPU_PATH_DIRECT;
    return CPU_PATH_AUTO;
}

int cpu_conv_pick_get(const int *key)
{
    int r = -1;
    pthread_mutex_lock(&g_lock);
    for (int i = 0; i < g_n; i++)
        if (!memcmp(g_ent[i].key, key, sizeof g_ent[i].key)) {
            r = g_ent[i].impl;
            break;
        }
    pthread_mutex_unlock(&g_lock);
    return r;
}

int cpu_conv_pick_put(const int *key, const double ms[CPU_PICK_N])
{
    int best = CPU_IMPL_ONEDNN;
    for (int p = 1; p < CPU_PICK_N; p++)
        if (ms[p] >= 0 && ms[p] < ms[best])
            best = p;
    pthread_mutex_lock(&g_lock);
    for (int i = 0; i < g_n; i++)
        if (!memcmp(g_ent[i].key, key, sizeof g_ent[i].key)) {
            best = g_ent[i].impl; /* another thread timed it first: keep its choice */
            goto done;
        }
    if (g_n == g_cap) {
        int cap = g_cap ? 2 * g_cap : 64;
        pick_ent *n = realloc(g_ent, (size_t)cap * sizeof *n);
        if (!n)
            goto done; /* not cached: timed again next call */
        g_ent = n;
        g_cap = cap;
    }
    pick_ent *e = &g_ent[g_n++];
    memcpy(e->key, key, sizeof e->key);
    memcpy(e->ms, ms, sizeof e->ms);
    e->impl = best;
done:
    pthread_mutex_unlock(&g_lock);
    return best;
}

void cpu_conv_pick_report(FILE *f)
{
    static const char *const pass[] = {"fwd", "bwd_data", "bwd_weights"};
    static const char *const impl[] = {"onednn", "direct", "winograd", "gemm"};
    pthread_mutex_lock(&g_lock);
    if (g_n)
        fprintf(f, "conv path per shape (timed, least of 5): pass, N IC->OC HxW kernel stride pad "
                   "threads: oneDNN ms, direct ms, winograd ms, gemm ms (-: cannot run it; with "
                   "more than one thread, team/alone: on the team and on one thread) -> choice "
                   "(@1: on one thread)\n");
    for (int i = 0; i < g_n; i++) {
        const int *k = g_ent[i].key;
        const double *ms = g_ent[i].ms;
        char t[CPU_IMPL_COUNT][48];
        for (int p = 0; p < CPU_IMPL_COUNT; p++) {
            const double a = ms[p], b = ms[p + CPU_IMPL_COUNT];
            if (a < 0)
                snprintf(t[p], sizeof t[p], "-");
            else if (b < 0)
                snprintf(t[p], sizeof t[p], "%.4f", a);
            else
                snprintf(t[p], sizeof t[p], "%.4f/%.4f", a, b);
        }
        const int c = g_ent[i].impl;
        fprintf(f, "  %-11s %s%d %d->%d %dx%d k%dx%d s%d p%d t%d: %s %s %s %s -> %s%s\n",
                pass[k[CPU_PICK_KEY - 2]], k[0] ? "T " : "", k[1], k[2], k[5], k[3], k[4], k[8],
                k[9], k[10], k[11], k[CPU_PICK_KEY - 1], t[0], t[1], t[2], t[3],
                impl[c % CPU_IMPL_COUNT], c >= CPU_IMPL_COUNT ? "@1" : "");
    }
    pthread_mutex_unlock(&g_lock);
}
