/* test_cli_omp.c: every mkdseg command runs with OpenMP threads that sleep when they wait
 * (server/cli/cli_omp.c: it re-executes itself with OMP_WAIT_POLICY=passive), unless the user
 * chose: `mkdseg --version` reports what the process runs with. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/tsrv.h"

/* the "openmp waiting:" line of `env ENV mkdseg --version` */
static void waiting(const char *env, char *out, size_t len)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "env -u OMP_WAIT_POLICY -u GOMP_SPINCOUNT %s '%s' --version", env,
             tenv("MKDSEG_TEST_BIN"));
    FILE *p = popen(cmd, "r");
    cr_assert(p, "%s", cmd);
    char line[256];
    out[0] = 0;
    while (fgets(line, sizeof line, p))
        if (!strncmp(line, "openmp waiting: ", 16))
            snprintf(out, len, "%s", line + 16);
    cr_assert_eq(pclose(p), 0, "%s", cmd);
    out[strcspn(out, "\n")] = 0;
}

Test(cli_omp, passive_unless_the_user_chose)
{
    char w[512];
    waiting("", w, sizeof w);
    cr_expect_str_eq(w, "passive");
    waiting("OMP_WAIT_POLICY=active", w, sizeof w);
    cr_expect_str_eq(w, "active");
    waiting("GOMP_SPINCOUNT=10000", w, sizeof w);
    cr_expect_str_eq(w, "libgomp's default, GOMP_SPINCOUNT=10000");
}
