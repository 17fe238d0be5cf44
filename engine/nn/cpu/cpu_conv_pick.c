/* cpu_conv_pick.c: which implementation runs a convolution pass: oneDNN or the hand-written
 * kernels of cpu_conv_direct.c.
 *
 * The hand kernels were tuned on an AVX2-only CPU (AMD Zen 1), where they beat oneDNN's
 * jit:avx2 kernels on the shapes cpu_direct_conv_ok accepts; on an AVX-512 CPU oneDNN's
 * avx512 kernels can win on the same shapes (docs/benchmarks.md). So the choice is measured
 * on the running machine: the first time a shape (geometry, pass and thread count) is seen in
 * the process, both paths run a few times on the real arguments and the faster one (least of
 * 5 timed runs each, after a warm-up run that also creates oneDNN's primitive; CPU time of
 * the calling thread at one thread, wall time with more) is kept in a process-wide table, like the CUDA backend's algorithm choice. Every later call of that shape
 * takes the cached path. MKDSEG_CONV_PATH=onednn|direct (read when a context first convolves)
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
    int direct;   /* the choice: 1 the hand kernel, 0 oneDNN */
    double ms[2]; /* least time of each: [0] oneDNN, [1] direct */
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
    if (p && *p && strcmp(p, "auto"))
        fprintf(stderr, "mkdseg: MKDSEG_CONV_PATH=%s is not auto, onednn or direct: auto\n", p);
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
            r = g_ent[i].direct;
            break;
        }
    pthread_mutex_unlock(&g_lock);
    return r;
}

void cpu_conv_pick_put(const int *key, double ms_onednn, double ms_direct)
{
    pthread_mutex_lock(&g_lock);
    for (int i = 0; i < g_n; i++)
        if (!memcmp(g_ent[i].key, key, sizeof g_ent[i].key))
            goto done; /* another thread timed it first: keep its choice */
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
    e->ms[0] = ms_onednn;
    e->ms[1] = ms_direct;
    e->direct = ms_direct < ms_onednn;
done:
    pthread_mutex_unlock(&g_lock);
}

void cpu_conv_pick_report(FILE *f)
{
    static const char *const pass[] = {"fwd", "bwd_data", "bwd_weights"};
    pthread_mutex_lock(&g_lock);
    if (g_n)
        fprintf(f, "conv path per shape (timed, least of 5): pass, N IC->OC HxW kernel stride pad "
                   "threads: oneDNN ms, direct ms -> choice\n");
    for (int i = 0; i < g_n; i++) {
        const int *k = g_ent[i].key;
        fprintf(f, "  %-11s %s%d %d->%d %dx%d k%dx%d s%d p%d t%d: %.4f %.4f -> %s\n",
                pass[k[CPU_PICK_KEY - 2]], k[0] ? "T " : "", k[1], k[2], k[5], k[3], k[4], k[8],
                k[9], k[10], k[11], k[CPU_PICK_KEY - 1], g_ent[i].ms[0], g_ent[i].ms[1],
                g_ent[i].direct ? "direct" : "onednn");
    }
    pthread_mutex_unlock(&g_lock);
}
