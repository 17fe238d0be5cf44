/* main.c: `mkdseg CMD [options]` dispatch. One binary for the service, the workers and the
 * command-line tools; see server/commands.h for the contract of each command. */
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "nn.h"

const cmd_entry mkdseg_commands[] = {
    {"serve",   cmd_serve,   "run the HTTP service (and in-process workers)"},
    {"worker",  cmd_worker,  "run job workers only, against the same database"},
    {"migrate", cmd_migrate, "apply the SQL migrations in sql/ and exit"},
    {"info",    cmd_info,    "print what a NIfTI file holds: dims, spacing, affine, orientation"},
    {"phantom", cmd_phantom, "generate a labelled synthetic cardiac CT or MR volume"},
    {"train",   cmd_train,   "train a model (mkd, baselines, ablations) from labelled NIfTI files"},
    {"segment", cmd_segment, "segment a NIfTI volume with a model file"},
    {"eval",    cmd_eval,    "Dice, ASSD and HD95 of a model on labelled volumes"},
    {"bench",   cmd_bench,   "run the engine benchmarks (see `make bench`)"},
    {"token",   cmd_token,   "create, list or revoke API bearer tokens (MKDSEG_AUTH=on)"},
    {"dice-check", cmd_dice_check, "evaluate a model on a server and fail under a Dice floor (CI)"},
    {NULL, NULL, NULL},
};

static void usage(FILE *f)
{
    fprintf(f, "mkdseg %s: cardiac segmentation service (cross-modality mutual knowledge distillation)\n\n",
            MKDSEG_VERSION);
    fprintf(f, "usage: mkdseg COMMAND [options]\n       mkdseg COMMAND --help\n\ncommands:\n");
    for (const cmd_entry *c = mkdseg_commands; c->name; c++)
        fprintf(f, "  %-10s %s\n", c->name, c->summary);
    fprintf(f, "\n  --version  print the version and the backends built in\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
#ifdef MKD_HAVE_CUDA
        printf("mkdseg %s (backends: cpu, cuda)\n", MKDSEG_VERSION);
#else
        printf("mkdseg %s (backends: cpu)\n", MKDSEG_VERSION);
#endif
        printf("device: %s\n", nn_device_describe(NULL));
        return 0;
    }
    for (const cmd_entry *c = mkdseg_commands; c->name; c++)
        if (!strcmp(argv[1], c->name))
            return c->fn(argc - 1, argv + 1);
    fprintf(stderr, "mkdseg: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
