/* cli_omp.c: the OpenMP waiting of every mkdseg command (the service's serve and worker, and
 * the command-line tools: segment, eval, train, ...).
 *
 * libgomp reads OMP_WAIT_POLICY and GOMP_SPINCOUNT once, when it is loaded, so a process can
 * choose them only for its next image: when neither is set, mkdseg re-executes itself with
 * OMP_WAIT_POLICY=passive (threads sleep at once at a barrier instead of spinning first).
 * On a machine whose cores are shared by several tasks (segmentations, training jobs, other
 * programs) a spinning thread takes the core its descheduled team mate needs: a 2-thread
 * `mkdseg segment` beside two trainings took 43-88 s spinning and 3.4-3.7 s passive;
 * docs/service.md gives the measurements (tests/bench/share_bench.py). Setting either variable
 * keeps the user's choice (OMP_WAIT_POLICY=active for a dedicated machine, if it pays there). */
#include "cli_util.h"

#include <stdlib.h>
#include <unistd.h>

void cli_omp_default(char **argv)
{
    if (getenv("OMP_WAIT_POLICY") || getenv("GOMP_SPINCOUNT"))
        return;
    if (setenv("OMP_WAIT_POLICY", "passive", 1) != 0)
        return;
    execv("/proc/self/exe", argv);
    /* no /proc: run on with libgomp's default (the variable is set for child processes) */
}
