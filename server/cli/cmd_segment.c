/* cmd_segment.c: `mkdseg segment` — segment one NIfTI volume with a model file. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_util.h"
#include "commands.h"
#include "infer.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: mkdseg segment --model M.safetensors --in IMAGE.nii[.gz] --out LABELS.nii[.gz] [options]\n\n"
            "Segments the heart: the label map is written on the input's exact grid (dims, qform, sform).\n\n"
            "  --model F          model file (safetensors, from mkdseg train or GET /models/{id}/weights)\n"
            "  --in F             input volume (NIfTI-1/-2, .nii or .nii.gz)\n"
            "  --out F            output label map (.nii or .nii.gz)\n"
            "  --labels mmwhs|index  MM-WHS codes as int16 (default) or class indices 0..7 as uint8\n"
            "  --member ensemble|syn|real  which segmentor(s) to use (default ensemble: the mean of both\n"
            "                     probability maps, as the paper; single-segmentor models have one)\n"
            "  --tta              average with flipped passes (test-time augmentation)\n"
            "  --threads N        CPU threads (default MKDSEG_THREADS or all cores)\n"
            "  --max-voxels N     refuse larger inputs (default 268435456)\n");
}

/* Shared by segment and eval: parse --member. */
int cli_parse_member(const char *v, int *member)
{
    if (!strcmp(v, "ensemble")) *member = -1;
    else if (!strcmp(v, "syn") || !strcmp(v, "seg")) *member = 0;
    else if (!strcmp(v, "real")) *member = 1;
    else return -1;
    return 0;
}

int cmd_segment(int argc, char **argv)
{
    const char *model = NULL, *in = NULL, *out = NULL;
    vol_label_mode lm = VOL_LABELS_MMWHS;
    infer_opts o = {-1, 0, 0.5};
    int threads = 0;
    long long maxvox = 0;
    for (int i = 1; i < argc; i++) {
        int miss = 0;
        const char *v;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) { usage(stdout); return 0; }
        else if (!strcmp(argv[i], "--tta")) o.tta = 1;
        else if ((v = cli_opt(argc, argv, &i, "--model", &miss))) model = v;
        else if ((v = cli_opt(argc, argv, &i, "--in", &miss))) in = v;
        else if ((v = cli_opt(argc, argv, &i, "--out", &miss))) out = v;
        else if ((v = cli_opt(argc, argv, &i, "--threads", &miss))) threads = atoi(v);
        else if ((v = cli_opt(argc, argv, &i, "--max-voxels", &miss))) maxvox = atoll(v);
        else if ((v = cli_opt(argc, argv, &i, "--labels", &miss))) {
            if (!strcmp(v, "mmwhs")) lm = VOL_LABELS_MMWHS;
            else if (!strcmp(v, "index")) lm = VOL_LABELS_INDEX;
            else { fprintf(stderr, "mkdseg segment: --labels must be mmwhs or index\n"); return 2; }
        } else if ((v = cli_opt(argc, argv, &i, "--member", &miss))) {
            if (cli_parse_member(v, &o.member)) { fprintf(stderr, "mkdseg segment: --member must be ensemble, syn or real\n"); return 2; }
        } else {
            fprintf(stderr, "mkdseg segment: %s '%s' (see --help)\n", miss ? "missing value for" : "unknown option", argv[i]);
            return 2;
        }
        if (miss) { fprintf(stderr, "mkdseg segment: %s needs a value\n", argv[i]); return 2; }
    }
    if (!model || !in || !out) { fprintf(stderr, "mkdseg segment: --model, --in and --out are required\n"); return 2; }
    nn_set_threads(threads);
    char err[512];
    int rc = 1;
    vol_t v = {0};
    uint8_t *cls = NULL;
    const nn_backend *be = nn_backend_from_env(err, sizeof err);
    infer_model *m = be ? infer_model_load(model, be, err, sizeof err) : NULL;
    if (!m) { fprintf(stderr, "mkdseg segment: %s\n", err); return 1; }
    vol_read_opts ro = {maxvox};
    if (vol_read(in, &ro, &v, err, sizeof err)) { fprintf(stderr, "mkdseg segment: %s: %s\n", in, err); goto done; }
    size_t n = (size_t)(v.geom.nx * v.geom.ny * v.geom.nz);
    cls = malloc(n);
    if (!cls) { fprintf(stderr, "mkdseg segment: out of memory\n"); goto done; }
    infer_timing tm;
    if (infer_volume(m, &v, &o, cls, &tm, err, sizeof err)) { fprintf(stderr, "mkdseg segment: %s\n", err); goto done; }
    if (vol_write_labels(out, &v.geom, cls, lm, err, sizeof err)) { fprintf(stderr, "mkdseg segment: %s\n", err); goto done; }
    long long counts[VOL_NCLASSES] = {0};
    for (size_t i = 0; i < n; i++) if (cls[i] < VOL_NCLASSES) counts[cls[i]]++;
    double sp[3];
    vol_geom_spacing(&v.geom, sp);
    double ml = sp[0] * sp[1] * sp[2] / 1000.0;
    printf("{\"out\":\"%s\",\"model_method\":\"%s\",\"dims\":[%lld,%lld,%lld],\"seconds\":{\"prep\":%.3f,\"net\":%.3f,\"post\":%.3f,\"total\":%.3f},\"volume_ml\":{",
           out, m->method, (long long)v.geom.nx, (long long)v.geom.ny, (long long)v.geom.nz, tm.prep_s, tm.net_s, tm.post_s, tm.total_s);
    for (int c = 1; c < VOL_NCLASSES; c++) printf("%s\"%s\":%.3f", c > 1 ? "," : "", vol_class_names[c], counts[c] * ml);
    printf("}}\n");
    rc = 0;
done:
    free(cls);
    vol_free(&v);
    infer_model_free(m);
    return rc;
}
