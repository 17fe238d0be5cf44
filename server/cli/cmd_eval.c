/* cmd_eval.c: `mkdseg eval` — Dice, ASSD and HD95 of a model on labelled volumes; exit 1 under
 * a Dice floor (for CI pipelines). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_util.h"
#include "commands.h"
#include "infer.h"
#include "seg_metrics.h"

int cli_parse_member(const char *v, int *member);

static void usage(FILE *f)
{
    fprintf(f,
            "usage: mkdseg eval --model M.safetensors (--dir D | --images A,B --labels A,B) [options]\n\n"
            "Segments each volume and compares it with its label map: Dice, ASSD (mm) and HD95 (mm) per\n"
            "structure, per volume and their means over volumes.\n\n"
            "  --model F              model file\n"
            "  --dir D                <name>_image / <name>_label pairs\n"
            "  --images, --labels     comma-separated lists\n"
            "  --member ensemble|syn|real   (default ensemble)\n"
            "  --tta                  flip test-time augmentation\n"
            "  --json                 one JSON document on stdout instead of a table\n"
            "  --min-mean-dice X      exit status 1 when the overall mean Dice is below X\n"
            "  --threads N            CPU threads\n");
}

int cmd_eval(int argc, char **argv)
{
    const char *model = NULL, *dir = NULL, *imgs = NULL, *labs = NULL;
    infer_opts o = {-1, 0, 0.5};
    int json = 0, threads = 0;
    double floor_ = -1;
    for (int i = 1; i < argc; i++) {
        int miss = 0;
        const char *v;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) { usage(stdout); return 0; }
        else if (!strcmp(argv[i], "--tta")) o.tta = 1;
        else if (!strcmp(argv[i], "--json")) json = 1;
        else if ((v = cli_opt(argc, argv, &i, "--model", &miss))) model = v;
        else if ((v = cli_opt(argc, argv, &i, "--dir", &miss))) dir = v;
        else if ((v = cli_opt(argc, argv, &i, "--images", &miss))) imgs = v;
        else if ((v = cli_opt(argc, argv, &i, "--labels", &miss))) labs = v;
        else if ((v = cli_opt(argc, argv, &i, "--threads", &miss))) threads = atoi(v);
        else if ((v = cli_opt(argc, argv, &i, "--min-mean-dice", &miss))) floor_ = atof(v);
        else if ((v = cli_opt(argc, argv, &i, "--member", &miss))) {
            if (cli_parse_member(v, &o.member)) { fprintf(stderr, "mkdseg eval: --member must be ensemble, syn or real\n"); return 2; }
        } else {
            fprintf(stderr, "mkdseg eval: %s '%s' (see --help)\n", miss ? "missing value for" : "unknown option", argv[i]);
            return 2;
        }
        if (miss) { fprintf(stderr, "mkdseg eval: %s needs a value\n", argv[i]); return 2; }
    }
    if (!model || (!dir && !(imgs && labs))) { fprintf(stderr, "mkdseg eval: --model and --dir (or --images and --labels) are required\n"); return 2; }
    nn_set_threads(threads);
    char err[512];
    cli_pairs p = {0};
    if ((dir && cli_pairs_from_dir(&p, dir, err, sizeof err)) || (imgs && cli_pairs_from_lists(&p, imgs, labs, err, sizeof err))) {
        fprintf(stderr, "mkdseg eval: %s\n", err);
        return 2;
    }
    const nn_backend *be = nn_backend_from_env(err, sizeof err);
    infer_model *m = be ? infer_model_load(model, be, err, sizeof err) : NULL;
    if (!m) { fprintf(stderr, "mkdseg eval: %s\n", err); cli_pairs_free(&p); return 1; }
    const int K = VOL_NCLASSES;
    double sum[VOL_NCLASSES][3] = {{0}}, mean_dice = 0, mean_assd = 0, mean_hd = 0;
    int rc = 1;
    if (json) printf("{\"model\":\"%s\",\"volumes\":[", model);
    else {
        printf("%-24s", "volume");
        for (int c = 1; c < K; c++) printf(" %6s", vol_class_names[c]);
        printf("   mean  ASSD(mm) HD95(mm)\n");
    }
    for (int i = 0; i < p.n; i++) {
        vol_t im = {0}, lb = {0};
        uint8_t *pred = NULL, *truth = NULL;
        metrics_struct ms[VOL_NCLASSES];
        int ok = 0;
        if (vol_read(p.image[i], NULL, &im, err, sizeof err) || vol_read(p.label[i], NULL, &lb, err, sizeof err)) goto vfail;
        int64_t n = im.geom.nx * im.geom.ny * im.geom.nz;
        if (lb.geom.nx != im.geom.nx || lb.geom.ny != im.geom.ny || lb.geom.nz != im.geom.nz) {
            snprintf(err, sizeof err, "image and label grids differ");
            goto vfail;
        }
        pred = malloc((size_t)n);
        truth = malloc((size_t)n);
        if (!pred || !truth) { snprintf(err, sizeof err, "out of memory"); goto vfail; }
        if (vol_labels_to_classes(lb.data, n, VOL_LABELS_AUTO, truth, err, sizeof err)) goto vfail;
        if (infer_volume(m, &im, &o, pred, NULL, err, sizeof err)) goto vfail;
        double sp[3];
        vol_geom_spacing(&im.geom, sp);
        if (metrics_compute(pred, truth, im.geom.nx, im.geom.ny, im.geom.nz, sp, K, ms, err, sizeof err)) goto vfail;
        double d, a, h;
        metrics_mean(ms, K, &d, &a, &h);
        mean_dice += d; mean_assd += a; mean_hd += h;
        for (int c = 1; c < K; c++) { sum[c][0] += ms[c].dice; sum[c][1] += ms[c].assd; sum[c][2] += ms[c].hd95; }
        if (json) {
            printf("%s{\"name\":\"%s\",\"mean_dice\":%.4f,\"mean_assd\":%.3f,\"mean_hd95\":%.3f,\"structures\":{", i ? "," : "", p.name[i], d, a, h);
            for (int c = 1; c < K; c++)
                printf("%s\"%s\":{\"dice\":%.4f,\"assd\":%.3f,\"hd95\":%.3f}", c > 1 ? "," : "", vol_class_names[c], ms[c].dice, ms[c].assd, ms[c].hd95);
            printf("}}");
        } else {
            printf("%-24.24s", p.name[i]);
            for (int c = 1; c < K; c++) printf(" %6.3f", ms[c].dice);
            printf(" %6.3f %8.2f %8.2f\n", d, a, h);
        }
        ok = 1;
    vfail:
        free(pred); free(truth); vol_free(&im); vol_free(&lb);
        if (!ok) { fprintf(stderr, "mkdseg eval: %s: %s\n", p.name[i], err); if (json) printf("]}\n"); goto done; }
    }
    double nv = p.n;
    if (json) {
        printf("],\"mean\":{\"dice\":%.4f,\"assd\":%.3f,\"hd95\":%.3f,\"structures\":{", mean_dice / nv, mean_assd / nv, mean_hd / nv);
        for (int c = 1; c < K; c++)
            printf("%s\"%s\":{\"dice\":%.4f,\"assd\":%.3f,\"hd95\":%.3f}", c > 1 ? "," : "", vol_class_names[c], sum[c][0] / nv, sum[c][1] / nv, sum[c][2] / nv);
        printf("}}}\n");
    } else {
        printf("%-24s", "mean");
        for (int c = 1; c < K; c++) printf(" %6.3f", sum[c][0] / nv);
        printf(" %6.3f %8.2f %8.2f\n", mean_dice / nv, mean_assd / nv, mean_hd / nv);
    }
    rc = 0;
    if (floor_ >= 0 && mean_dice / nv < floor_) {
        fprintf(stderr, "mkdseg eval: mean Dice %.4f is below the floor %.4f\n", mean_dice / nv, floor_);
        rc = 1;
    }
done:
    infer_model_free(m);
    cli_pairs_free(&p);
    return rc;
}
