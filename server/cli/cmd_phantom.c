/* cmd_phantom.c: `mkdseg phantom`: write one synthetic labelled thorax (engine/phantom). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "commands.h"
#include "phantom.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: mkdseg phantom --modality ct|mr --seed N --image F.nii.gz --label F.nii.gz\n"
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

int cmd_phantom(int argc, char **argv)
{
    const char *mod = NULL, *image = NULL, *label = NULL, *shape = NULL, *fov = NULL;
    const char *paired_ct = NULL, *paired_mr = NULL;
    long long seed = -1;
    double noise = 1.0;
    int fixed = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *next = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--fixed-fov")) {
            fixed = 1;
        } else if (next && !strcmp(a, "--modality")) {
            mod = next, i++;
        } else if (next && !strcmp(a, "--seed")) {
            char *end;
            seed = strtoll(next, &end, 10), i++;
            if (*end || seed < 0) {
                fprintf(stderr, "mkdseg phantom: --seed needs a non-negative integer\n");
                return 2;
            }
        } else if (next && !strcmp(a, "--image")) {
            image = next, i++;
        } else if (next && !strcmp(a, "--label")) {
            label = next, i++;
        } else if (next && !strcmp(a, "--shape")) {
            shape = next, i++;
        } else if (next && !strcmp(a, "--fov")) {
            fov = next, i++;
        } else if (next && !strcmp(a, "--paired-ct")) {
            paired_ct = next, i++;
        } else if (next && !strcmp(a, "--paired-mr")) {
            paired_mr = next, i++;
        } else if (next && !strcmp(a, "--noise")) {
            noise = atof(next), i++;
        } else {
            fprintf(stderr, "mkdseg phantom: unknown or incomplete option %s\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (!mod || (strcmp(mod, "ct") && strcmp(mod, "mr")) || seed < 0 || (!image && !label)) {
        fprintf(stderr, "mkdseg phantom: --modality ct|mr, --seed and --image and/or --label are required\n");
        usage(stderr);
        return 2;
    }
    prep_modality m = strcmp(mod, "ct") ? PREP_MR : PREP_CT;
    if ((paired_ct && m != PREP_MR) || (paired_mr && m != PREP_CT)) {
        fprintf(stderr, "mkdseg phantom: --paired-ct goes with --modality mr, --paired-mr with --modality ct\n");
        return 2;
    }
    const char *paired = m == PREP_MR ? paired_ct : paired_mr;
    phantom_opts o;
    phantom_default(&o, m, (uint64_t)seed);
    o.fixed_fov = fixed;
    o.noise = noise;
    double v[3];
    if (shape) {
        if (parse3(shape, v) != 0) {
            fprintf(stderr, "mkdseg phantom: --shape wants X,Y,Z\n");
            return 2;
        }
        for (int i = 0; i < 3; i++)
            o.shape[i] = (int64_t)v[i];
    }
    if (fov) {
        if (parse3(fov, v) != 0) {
            fprintf(stderr, "mkdseg phantom: --fov wants X,Y,Z in mm\n");
            return 2;
        }
        memcpy(o.fov, v, sizeof v);
    }
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
