/* cmd_segment.c: `mkdseg segment` — segment one NIfTI volume with a model file. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_util.h"
#include "commands.h"
#include "dicom.h"
#include "infer.h"

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: mkdseg segment --model M.safetensors --in IMAGE.nii[.gz] --out "
        "LABELS.nii[.gz]|LABELS.nrrd [options]\n\n"
        "Segments the heart: the label map is written on the input's exact grid (dims, qform, "
        "sform).\n\n"
        "  --model F          model file (safetensors, from mkdseg train or GET "
        "/models/{id}/weights)\n"
        "  --in F             input volume (NIfTI-1/-2, .nii or .nii.gz)\n"
        "  --out F            output label map (.nii, .nii.gz, or .nrrd: gzip NRRD in LPS space "
        "for\n"
        "                     ITK / 3D Slicer, same voxels and world coordinates)\n"
        "  --volume N         segment volume N (0-based) of a 4-D input (needed when it has "
        "several)\n"
        "  --seg F            also write a DICOM Segmentation object (DICOM input only)\n"
        "  --labels mmwhs|index  MM-WHS codes as int16 (default) or class indices 0..7 as uint8\n"
        "  --member ensemble|syn|real  which segmentor(s) to use (default ensemble: the mean of "
        "both\n"
        "                     probability maps, as the paper; single-segmentor models have one)\n"
        "  --tta              average with flipped passes (test-time augmentation)\n"
        "  --threads N        CPU threads (default MKDSEG_THREADS or all cores)\n"
        "  --max-voxels N     refuse larger inputs (default 268435456)\n");
}

/* Shared by segment and eval: parse --member. */
int cli_parse_member(const char *v, int *member)
{
    if (!strcmp(v, "ensemble"))
        *member = -1;
    else if (!strcmp(v, "syn") || !strcmp(v, "seg"))
        *member = 0;
    else if (!strcmp(v, "real"))
        *member = 1;
    else
        return -1;
    return 0;
}

/* The command line of one `mkdseg segment`. */
typedef struct {
    const char *model, *in, *out, *segf;
    vol_label_mode lm;
    infer_opts o;
    int threads;
    long long maxvox, volume;
} segment_args;

/* One option with a value (argv[*i] and the next). 1 taken, 0 not this option, 2 refused. */
static int segment_value(segment_args *a, int argc, char **argv, int *i, int *miss)
{
    const char *v;
    if ((v = cli_opt(argc, argv, i, "--model", miss)))
        a->model = v;
    else if ((v = cli_opt(argc, argv, i, "--in", miss)))
        a->in = v;
    else if ((v = cli_opt(argc, argv, i, "--out", miss)))
        a->out = v;
    else if ((v = cli_opt(argc, argv, i, "--seg", miss)))
        a->segf = v;
    else if ((v = cli_opt(argc, argv, i, "--threads", miss)))
        a->threads = atoi(v);
    else if ((v = cli_opt(argc, argv, i, "--max-voxels", miss)))
        a->maxvox = atoll(v);
    else if ((v = cli_opt(argc, argv, i, "--volume", miss))) {
        char *end;
        a->volume = strtoll(v, &end, 10);
        if (end == v || *end || a->volume < 0) {
            fprintf(stderr, "mkdseg segment: --volume must be a non-negative integer\n");
            return 2;
        }
    } else if ((v = cli_opt(argc, argv, i, "--labels", miss))) {
        if (strcmp(v, "mmwhs") && strcmp(v, "index")) {
            fprintf(stderr, "mkdseg segment: --labels must be mmwhs or index\n");
            return 2;
        }
        a->lm = !strcmp(v, "mmwhs") ? VOL_LABELS_MMWHS : VOL_LABELS_INDEX;
    } else if ((v = cli_opt(argc, argv, i, "--member", miss))) {
        if (cli_parse_member(v, &a->o.member)) {
            fprintf(stderr, "mkdseg segment: --member must be ensemble, syn or real\n");
            return 2;
        }
    } else
        return 0;
    return 1;
}

/* Reads the options into a. 0, 1 after --help, 2 on an error (printed). */
static int segment_parse(segment_args *a, int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        int miss = 0, rc = 0;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 1;
        } else if (!strcmp(argv[i], "--tta"))
            a->o.tta = 1;
        else if ((rc = segment_value(a, argc, argv, &i, &miss)) == 2)
            return 2;
        else if (rc == 0) {
            fprintf(stderr, "mkdseg segment: %s '%s' (see --help)\n",
                    miss ? "missing value for" : "unknown option", argv[i]);
            return 2;
        }
        if (miss) {
            fprintf(stderr, "mkdseg segment: %s needs a value\n", argv[i]);
            return 2;
        }
    }
    return 0;
}

int cmd_segment(int argc, char **argv)
{
    segment_args a = {.lm = VOL_LABELS_MMWHS, .o = {-1, 0, 0.5}, .volume = -1};
    int prc = segment_parse(&a, argc, argv);
    if (prc)
        return prc == 1 ? 0 : 2;
    const char *model = a.model, *in = a.in, *out = a.out, *segf = a.segf;
    vol_label_mode lm = a.lm;
    infer_opts o = a.o;
    int threads = a.threads;
    long long maxvox = a.maxvox, volume = a.volume;
    if (!model || !in || !out) {
        fprintf(stderr, "mkdseg segment: --model, --in and --out are required\n");
        return 2;
    }
    if (segf && dicom_sniff(in) != 1) {
        fprintf(stderr, "mkdseg segment: --seg needs a DICOM input\n");
        return 2;
    }
    nn_set_threads(threads);
    char err[512];
    int rc = 1;
    vol_t v = {0};
    uint8_t *cls = NULL;
    const nn_backend *be = nn_backend_from_env(err, sizeof err);
    infer_model *m = be ? infer_model_load(model, be, err, sizeof err) : NULL;
    if (!m) {
        fprintf(stderr, "mkdseg segment: %s\n", err);
        return 1;
    }
    vol_read_opts ro = {
        .max_voxels = maxvox, .has_volume = volume >= 0, .volume = volume >= 0 ? volume : 0};
    if (vol_read_any(in, &ro, &v, err, sizeof err)) {
        fprintf(stderr, "mkdseg segment: %s: %s\n", in, err);
        goto done;
    }
    size_t n = (size_t)(v.geom.nx * v.geom.ny * v.geom.nz);
    cls = malloc(n);
    if (!cls) {
        fprintf(stderr, "mkdseg segment: out of memory\n");
        goto done;
    }
    infer_timing tm;
    if (infer_volume(m, &v, &o, cls, &tm, err, sizeof err)) {
        fprintf(stderr, "mkdseg segment: %s\n", err);
        goto done;
    }
    if (vol_write_labels(out, &v.geom, cls, lm, err, sizeof err)) {
        fprintf(stderr, "mkdseg segment: %s\n", err);
        goto done;
    }
    if (segf && dicom_seg_write(in, cls, segf, NULL, err, sizeof err)) {
        fprintf(stderr, "mkdseg segment: %s\n", err);
        goto done;
    }
    long long counts[VOL_NCLASSES] = {0};
    for (size_t i = 0; i < n; i++)
        if (cls[i] < VOL_NCLASSES)
            counts[cls[i]]++;
    double sp[3];
    vol_geom_spacing(&v.geom, sp);
    double ml = sp[0] * sp[1] * sp[2] / 1000.0;
    printf("{\"out\":\"%s\",\"model_method\":\"%s\",\"dims\":[%lld,%lld,%lld],\"seconds\":{"
           "\"prep\":%.3f,\"net\":%.3f,\"post\":%.3f,\"total\":%.3f},\"volume_ml\":{",
           out, m->method, (long long)v.geom.nx, (long long)v.geom.ny, (long long)v.geom.nz,
           tm.prep_s, tm.net_s, tm.post_s, tm.total_s);
    for (int c = 1; c < VOL_NCLASSES; c++)
        printf("%s\"%s\":%.3f", c > 1 ? "," : "", vol_class_names[c], counts[c] * ml);
    printf("}}\n");
    rc = 0;
done:
    free(cls);
    vol_free(&v);
    infer_model_free(m);
    return rc;
}
