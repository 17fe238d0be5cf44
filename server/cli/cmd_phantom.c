/* cmd_phantom.c: `mkdseg phantom`: write one synthetic labelled thorax (engine/phantom). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "commands.h"
#include "phantom.h"

static void usage(FILE *f)
{
    fprintf(
        f, "usage: mkdseg phantom --modality ct|mr --seed N --image F.nii.gz --label F.nii.gz\n"
           "                      [--shape X,Y,Z] [--fov X,Y,Z] [--fixed-fov] [--noise S]\n"
           "                      [--paired-ct F.nii.gz | --paired-mr F.nii.gz]\n"
           "  Writes a synthetic thorax: the image (CT: int16 HU; MR: float32 bSSFP-like signal)\n"
           "  and its label map (int16 MM-WHS codes: MYO 205, LA 420, LV 500, RA 550, RV 600,\n"
           "  AA 820, PA 850). The same seed and options give the same files; CT and MR with the\n"
           "  same seed are different subjects. See docs/phantom.md.\n"
           "  --shape X,Y,Z  array size (default CT 96,96,80; MR 80,80,40)\n"
           "  --fov X,Y,Z    field of view in mm (default CT 220,220,160; MR 300,300,160),\n"
           "                 varied by +-6%% per subject unless --fixed-fov\n"
           "  --noise S      multiplier on the modality's noise level (default 1)\n"
           "  --paired-ct F  (with --modality mr) also write the same subject on the same grid\n"
           "                 rendered as CT with fresh noise (int16 HU); its labels are the MR's.\n"
           "                 A research oracle for the alignment module (train --iam oracle)\n"
           "  --paired-mr F  (with --modality ct) the same, rendered as MR (float32)\n");
}

static int parse3(const char *s, double v[3])
{
    char *end;
    for (int i = 0; i < 3; i++) {
        v[i] = strtod(s, &end);
        if (end == s || (i < 2 && *end != ',') || (i == 2 && *end))
            return -1;
        s = end + 1;
    }
    return 0;
}

/* --shape and --fov (either may be NULL) into o. 0, or -1 printed. */
static int phantom_geometry(phantom_opts *o, const char *shape, const char *fov)
{
    double v[3];
    if (shape) {
        if (parse3(shape, v) != 0) {
            fprintf(stderr, "mkdseg phantom: --shape wants X,Y,Z\n");
            return -1;
        }
        for (int i = 0; i < 3; i++)
            o->shape[i] = (int64_t)v[i];
    }
    if (fov) {
        if (parse3(fov, v) != 0) {
            fprintf(stderr, "mkdseg phantom: --fov wants X,Y,Z in mm\n");
            return -1;
        }
        memcpy(o->fov, v, sizeof v);
    }
    return 0;
}

/* The command line of one `mkdseg phantom`. */
typedef struct {
    const char *mod, *image, *label, *shape, *fov, *paired_ct, *paired_mr;
    long long seed;
    double noise;
    int fixed;
} phantom_args;

/* Reads the options into a. 0, 1 after --help, 2 on an error (printed). */
static int phantom_parse(phantom_args *a, int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        const char *next = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(o, "--help") || !strcmp(o, "-h")) {
            usage(stdout);
            return 1;
        } else if (!strcmp(o, "--fixed-fov")) {
            a->fixed = 1;
        } else if (next && !strcmp(o, "--seed")) {
            char *end;
            a->seed = strtoll(next, &end, 10), i++;
            if (*end || a->seed < 0) {
                fprintf(stderr, "mkdseg phantom: --seed needs a non-negative integer\n");
                return 2;
            }
        } else if (next && !strcmp(o, "--noise")) {
            a->noise = atof(next), i++;
        } else if (next && (!strcmp(o, "--modality") || !strcmp(o, "--image") ||
                            !strcmp(o, "--label") || !strcmp(o, "--shape") || !strcmp(o, "--fov") ||
                            !strcmp(o, "--paired-ct") || !strcmp(o, "--paired-mr"))) {
            const char **dst = !strcmp(o, "--modality")    ? &a->mod
                               : !strcmp(o, "--image")     ? &a->image
                               : !strcmp(o, "--label")     ? &a->label
                               : !strcmp(o, "--shape")     ? &a->shape
                               : !strcmp(o, "--fov")       ? &a->fov
                               : !strcmp(o, "--paired-ct") ? &a->paired_ct
                                                           : &a->paired_mr;
            *dst = next, i++;
        } else {
            fprintf(stderr, "mkdseg phantom: unknown or incomplete option %s\n", o);
            usage(stderr);
            return 2;
        }
    }
    return 0;
}

int cmd_phantom(int argc, char **argv)
{
    phantom_args a = {.seed = -1, .noise = 1.0};
    int prc = phantom_parse(&a, argc, argv);
    if (prc)
        return prc == 1 ? 0 : 2;
    const char *mod = a.mod, *image = a.image, *label = a.label, *paired_ct = a.paired_ct,
               *paired_mr = a.paired_mr;
    long long seed = a.seed;
    prep_modality m = PREP_CT;
    if (prep_modality_parse(mod, &m) < 0 || seed < 0 || (!image && !label)) {
        fprintf(
            stderr,
            "mkdseg phantom: --modality ct|mr, --seed and --image and/or --label are required\n");
        usage(stderr);
        return 2;
    }
    if ((paired_ct && m != PREP_MR) || (paired_mr && m != PREP_CT)) {
        fprintf(stderr, "mkdseg phantom: --paired-ct goes with --modality mr, --paired-mr with "
                        "--modality ct\n");
        return 2;
    }
    const char *paired = m == PREP_MR ? paired_ct : paired_mr;
    phantom_opts o;
    phantom_default(&o, m, (uint64_t)seed);
    o.fixed_fov = a.fixed;
    o.noise = a.noise;
    if (phantom_geometry(&o, a.shape, a.fov) < 0)
        return 2;
    char err[512];
    phantom_vol p;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (phantom_generate(&o, &p, err, sizeof err) != 0) {
        fprintf(stderr, "mkdseg phantom: %s\n", err);
        return 1;
    }
    int rc = phantom_write(&p, m, image, label, err, sizeof err);
    phantom_free(&p);
    if (rc == 0 && paired) {
        prep_modality other = m == PREP_MR ? PREP_CT : PREP_MR;
        o.paired = 1;
        rc = phantom_generate(&o, &p, err, sizeof err);
        if (rc == 0) {
            rc = phantom_write(&p, other, paired, NULL, err, sizeof err);
            phantom_free(&p);
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (rc != 0) {
        fprintf(stderr, "mkdseg phantom: %s\n", err);
        return 1;
    }
    fprintf(stderr, "mkdseg phantom: %s seed %lld, %lldx%lldx%lld, %.2f s\n", mod, seed,
            (long long)o.shape[0], (long long)o.shape[1], (long long)o.shape[2],
            (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec));
    return 0;
}
