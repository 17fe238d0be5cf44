/* test_nn_par.c: the CPU backend's choice of threads and of vector width.
 *  - cpu_par_ok (engine/nn/cpu/cpu_par.c): loops run on the thread team only with more than one
 *    thread, outside another parallel region, and above the measured size;
 *  - cpu_isa_avx512 (cpu_backend.c): on an AVX-512 CPU, Winograd's forward product runs 16 tiles
 *    to a vector; it must give bit for bit what the AVX2 kernel gives (each output is the same
 *    chain of fused multiply-adds), so each form runs in its own child process (the ISA is read
 *    once per process) on the same inputs and the outputs are compared. */
#include <criterion/criterion.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "nn.h"
#include "../../engine/nn/cpu/cpu.h"

Test(nn_par, one_thread_never_wakes_a_team)
{
    nn_set_threads(1);
    cr_expect_not(cpu_par_ok((size_t)1 << 30));
}

Test(nn_par, team_only_above_the_measured_size)
{
    nn_set_threads(2);
    const double us = cpu_par_region_us();
    cr_expect(us > 0 && us < 1e6, "region cost %g us", us);
    cr_expect_not(cpu_par_ok(1000), "a 1000-float loop on the team (region %g us)", us);
    cr_expect(cpu_par_ok((size_t)1 << 24), "a 16M-float loop alone (region %g us)", us);
    /* the size is one of two classes: the same answer for every size between them */
    cr_expect_eq(cpu_par_ok(32767), 0);
    cr_expect_eq(cpu_par_ok(524288), 1);
}

Test(nn_par, never_inside_a_parallel_region)
{
    nn_set_threads(2);
    int inside[2] = {-1, -1};
#pragma omp parallel num_threads(2)
    inside[omp_get_thread_num()] = cpu_par_ok((size_t)1 << 24);
    if (inside[1] == -1) /* the runtime gave one thread: nothing to check there */
        inside[1] = 0;
    cr_expect_eq(inside[0], 0);
    cr_expect_eq(inside[1], 0);
}

/* y of cpu_wino_fwd on deterministic inputs, computed in a child with MKDSEG_CPU_ISA=isa */
static void wino_child(const char *isa, int N, int C, int H, int O, int threads, float *out,
                       int *wide)
{
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        setenv("MKDSEG_CPU_ISA", isa, 1);
        nn_set_threads(threads);
        const size_t nx = (size_t)N * C * H * H, nw = (size_t)O * C * 9;
        float *x = malloc(nx * 4), *w = malloc(nw * 4), *b = malloc((size_t)O * 4);
        nn_rng r;
        nn_rng_seed(&r, 42);
        for (size_t i = 0; i < nx; i++)
            x[i] = nn_rng_uniform(&r) * 2 - 1;
        for (size_t i = 0; i < nw; i++)
            w[i] = nn_rng_uniform(&r) * 2 - 1;
        for (int i = 0; i < O; i++)
            b[i] = nn_rng_uniform(&r);
        void *sc = malloc(cpu_wino_scratch(0, N, C, H, H, 1, O, threads));
        cpu_wino_fwd(x, N, C, H, H, 1, w, O, b, out, sc, threads);
        *wide = cpu_isa_avx512();
        _exit(0);
    }
    int st = 0;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child for %s failed", isa);
}

Test(nn_par, winograd_avx512_product_is_bit_identical_to_avx2)
{
    if (!__builtin_cpu_supports("avx512f"))
        cr_skip_test("no AVX-512F on this CPU: only the AVX2 product exists here");
    /* channel counts with tails of the 8-row block, tiles with an odd vector of 8 and several
     * chunks; one and two threads */
    static const int shapes[][5] = {
        {2, 20, 37, 13, 1}, {1, 32, 64, 64, 2}, {4, 8, 18, 8, 1}, {1, 5, 9, 7, 2}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int N = shapes[s][0], C = shapes[s][1], H = shapes[s][2], O = shapes[s][3],
                  thr = shapes[s][4];
        const size_t ny = (size_t)N * O * H * H;
        float *m =
            mmap(NULL, 2 * ny * 4 + 64, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        cr_assert(m != MAP_FAILED);
        int *wide = (int *)(m + 2 * ny);
        wino_child("avx2", N, C, H, O, thr, m, &wide[0]);
        wino_child("auto", N, C, H, O, thr, m + ny, &wide[1]);
        cr_expect_eq(wide[0], 0, "MKDSEG_CPU_ISA=avx2 still chose AVX-512");
        cr_expect_eq(wide[1], 1, "AVX-512 not chosen on an AVX-512 CPU");
        size_t diff = 0;
        for (size_t i = 0; i < ny; i++)
            diff += memcmp(&m[i], &m[ny + i], 4) != 0;
        cr_expect_eq(diff, 0, "shape %zu: %zu of %zu outputs differ", s, diff, ny);
        munmap(m, 2 * ny * 4 + 64);
    }
}
