/* cli_util.h: helpers shared by the command-line tools (train, segment, eval). */
#ifndef MKDSEG_CLI_UTIL_H
#define MKDSEG_CLI_UTIL_H

#include <signal.h>
#include <stddef.h>

/* A list of image/label path pairs. */
typedef struct {
    int n, cap;
    char **image, **label; /* owned */
    char **name;           /* the case name (file name without _image.nii[.gz]) */
} cli_pairs;

/* Adds every <name>_image.nii[.gz] in dir whose <name>_label.nii[.gz] exists, sorted by name.
 * A folder with no pair is an error. 0 or -1. */
int cli_pairs_from_dir(cli_pairs *p, const char *dir, char *err, size_t errlen);
/* Adds the pairs of two comma-separated lists of equal length (labels may be NULL: images
 * only). 0 or -1. */
int cli_pairs_from_lists(cli_pairs *p, const char *images, const char *labels, char *err,
                         size_t errlen);
void cli_pairs_free(cli_pairs *p);

/* Value of option argv[*i] ("--name VALUE" or "--name=VALUE") when it is `name`; advances *i
 * past the value. NULL when argv[*i] is another option. Sets *missing when the value is absent. */
const char *cli_opt(int argc, char **argv, int *i, const char *name, int *missing);

/* For the long-running commands (serve, worker): blocks SIGTERM and SIGINT in the calling
 * thread, so that every thread started afterwards inherits the mask and the caller takes them
 * synchronously (sigwait on *sigs), and ignores SIGPIPE. */
void cli_block_signals(sigset_t *sigs);

/* Every command: re-execute the process (argv: main's) with OMP_WAIT_POLICY=passive unless
 * OMP_WAIT_POLICY or GOMP_SPINCOUNT is set (cli_omp.c); returns only when it does not. */
void cli_omp_default(char **argv);

#endif
