/* test_models_bench.c: `mkdseg bench`, the C side of `make bench` (server/cli/cmd_bench.c).
 * Runs the built binary ($MKDSEG_TEST_BIN, else build/mkdseg): the workload list matches the
 * PyTorch peer's (tests/bench/torch_bench.py), usage errors exit 2, and --peak reports a
 * plausible FMA rate. The workloads themselves are paper-size and belong to `make bench`. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *bin(void)
{
    const char *b = getenv("MKDSEG_TEST_BIN");
    return b && *b ? b : "build/mkdseg";
}

/* `make test` always builds the binary; a bare `make build/tests/unit` may not have. */
static void need_bin(void)
{
    if (access(bin(), X_OK) != 0)
        cr_skip_test("%s not built (run `make` or `make test`)", bin());
}

/* Run `mkdseg ARGS`, capture stdout into out[len]; returns the exit status (-1 on error). */
static int run(const char *args, char *out, size_t len)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "%s %s 2>/dev/null", bin(), args);
    FILE *p = popen(cmd, "r");
    if (!p)
        return -1;
    size_t n = fread(out, 1, len - 1, p);
    out[n] = 0;
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

Test(models_bench, list_matches_torch_peer)
{
    char out[4096], py[16384];
    need_bin();
    cr_assert_eq(run("bench --list", out, sizeof out), 0, "%s bench --list failed", bin());
    /* the PyTorch peer's names, read from its WORKLOADS table */
    FILE *f = fopen("tests/bench/torch_bench.py", "r");
    cr_assert(f);
    size_t n = fread(py, 1, sizeof py - 1, f);
    py[n] = 0;
    fclose(f);
    char *start = strstr(py, "WORKLOADS = {");
    cr_assert(start);
    char *end = strstr(start, "\n}");
    cr_assert(end);
    int count = 0;
    for (char *q = start; (q = strchr(q, '\'')) && q < end; count++) {
        char name[64];
        char *e = strchr(q + 1, '\'');
        cr_assert(e && e - q - 1 < (long)sizeof name);
        memcpy(name, q + 1, (size_t)(e - q - 1));
        name[e - q - 1] = 0;
        cr_expect(strstr(out, name), "mkdseg bench --list lacks %s", name);
        q = strchr(e, '\n'); /* one workload per line: skip the rest of it */
        cr_assert(q);
    }
    cr_expect_eq(count, 6, "torch_bench.py lists %d workloads", count);
    int lines = 0;
    for (char *q = out; (q = strchr(q, '\n')); q++)
        lines++;
    cr_expect_eq(lines, count, "mkdseg lists %d workloads, PyTorch peer %d", lines, count);
}

Test(models_bench, usage_errors)
{
    char out[4096];
    need_bin();
    cr_expect_eq(run("bench", out, sizeof out), 2);
    cr_expect_eq(run("bench --workload no_such_workload", out, sizeof out), 2);
    cr_expect_eq(run("bench --workload seg_infer_b1 --reps 0", out, sizeof out), 2);
    cr_expect_eq(run("bench --help", out, sizeof out), 0);
    cr_expect(strstr(out, "--workload"), "help text: %s", out);
}

Test(models_bench, peak_json)
{
    char out[256];
    need_bin();
    cr_assert_eq(run("bench --peak --json", out, sizeof out), 0);
    double gf = 0;
    const char *p = strstr(out, "\"peak_gflops_per_core\":");
    cr_assert(p, "%s", out);
    gf = atof(p + strlen("\"peak_gflops_per_core\":"));
    /* a measured rate: how low it goes depends on how busy the machine is, so only a rate that
     * no core reaches (a wrong FLOP count or timer) fails; the vector width is a fact of the
     * build (x86-64-v3: AVX2, 8 floats; 16 with AVX-512) */
    cr_expect(gf > 0 && gf < 1000, "peak %g GFLOP/s", gf);
    const char *l = strstr(out, "\"simd_lanes\":");
    cr_assert(l, "%s", out);
    int lanes = atoi(l + strlen("\"simd_lanes\":"));
    cr_expect(lanes == 8 || lanes == 16, "%d-lane vectors", lanes);
}
