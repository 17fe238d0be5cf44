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
    fprintf(f, "usage: mkdseg eval --model M.safetensors (--dir D | --images A,B --labels A,B) "
               "[options]\n\n"
               "Segments each volume and compares it with its label map: Dice, ASSD (mm) and HD95 "
               "(mm) per\n"
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

/* The command line of one `mkdseg eval`. */
typedef struct {
    const char *model, *dir, *imgs, *labs;
    infer_opts o;
    int json, threads;
    double floor_;
} eval_args;

/* 0, 1 after --help, 2 on an error (printed). */
static int eval_parse(eval_args *e, int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        int miss = 0;
        const char *v;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 1;
        } else if (!strcmp(argv[i], "--tta"))
            e->o.tta = 1;
        else if (!strcmp(argv[i], "--json"))
            e->json = 1;
        else if ((v = cli_opt(argc, argv, &i, "--model", &miss)))
            e->model = v;
        else if ((v = cli_opt(argc, argv, &i, "--dir", &miss)))
            e->dir = v;
        else if ((v = cli_opt(argc, argv, &i, "--images", &miss)))
            e->imgs = v;
        else if ((v = cli_opt(argc, argv, &i, "--labels", &miss)))
            e->labs = v;
        else if ((v = cli_opt(argc, argv, &i, "--threads", &miss)))
            e->threads = atoi(v);
        else if ((v = cli_opt(argc, argv, &i, "--min-mean-dice", &miss)))
            e->floor_ = atof(v);
        else if ((v = cli_opt(argc, argv, &i, "--member", &miss))) {
            if (cli_parse_member(v, &e->o.member)) {
                fprintf(stderr, "mkdseg eval: --member must be ensemble, syn or real\n");
                return 2;
            }
        } else {
            fprintf(stderr, "mkdseg eval: %s '%s' (see --help)\n",
                    miss ? "missing value for" : "unknown option", argv[i]);
            return 2;
        }
        if (miss) {
            fprintf(stderr, "mkdseg eval: %s needs a value\n", argv[i]);
            return 2;
        }
    }
    if (!e->model || (!e->dir && !(e->imgs && e->labs))) {
        fprintf(stderr, "mkdseg eval: --model and --dir (or --images and --labels) are required\n");
        return 2;
    }
    return 0;
}

/* Segments the image and scores it against the label map into ms. 0 / -1 + err. */
static int eval_volume(const infer_model *m, const infer_opts *o, const char *image,
                       const char *label, metrics_struct ms[VOL_NCLASSES], char *err, size_t errlen)
{
    vol_t im = {0}, lb = {0};
    uint8_t *pred = NULL, *truth = NULL;
    int rc = -1;
    if (vol_read(image, NULL, &im, err, errlen) || vol_read(label, NULL, &lb, err, errlen))
        goto done;
    int64_t n = im.geom.nx * im.geom.ny * im.geom.nz;
    if (lb.geom.nx != im.geom.nx || lb.geom.ny != im.geom.ny || lb.geom.nz != im.geom.nz) {
        snprintf(err, errlen, "image and label grids differ");
        goto done;
    }
    pred = malloc((size_t)n);
    truth = malloc((size_t)n);
    if (!pred || !truth) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    if (vol_labels_to_classes(lb.data, n, VOL_LABELS_AUTO, truth, err, errlen))
        goto done;
    if (infer_volume(m, &im, o, pred, NULL, err, errlen))
        goto done;
    double sp[3];
    vol_geom_spacing(&im.geom, sp);
    if (metrics_compute(pred, truth, im.geom.nx, im.geom.ny, im.geom.nz, sp, VOL_NCLASSES, ms, err,
                        errlen))
        goto done;
    rc = 0;
done:
    free(pred);
    free(truth);
    vol_free(&im);
    vol_free(&lb);
    return rc;
}

/* One row of the table or one element of the JSON "volumes" array. */
static void eval_print_row(int json, int first, const char *name, const metrics_struct *ms,
                           double d, double a, double h)
{
    const int K = VOL_NCLASSES;
    if (json) {
        printf("%s{\"name\":\"%s\",\"mean_dice\":%.4f,\"mean_assd\":%.3f,\"mean_hd95\":%.3f,"
               "\"structures\":{",
               first ? "" : ",", name, d, a, h);
        for (int c = 1; c < K; c++)
            printf("%s\"%s\":{\"dice\":%.4f,\"assd\":%.3f,\"hd95\":%.3f}", c > 1 ? "," : "",
                   vol_class_names[c], ms[c].dice, ms[c].assd, ms[c].hd95);
        printf("}}");
    } else {
        printf("%-24.24s", name);
        for (int c = 1; c < K; c++)
            printf(" %6.3f", ms[c].dice);
        printf(" %6.3f %8.2f %8.2f\n", d, a, h);
    }
}

/* The means over nv volumes: the table's last row or the JSON document's end. */
static void eval_print_mean(int json, double sum[VOL_NCLASSES][3], double dice, double assd,
                            double hd, double nv)
{
    const int K = VOL_NCLASSES;
    if (json) {
        printf("],\"mean\":{\"dice\":%.4f,\"assd\":%.3f,\"hd95\":%.3f,\"structures\":{", dice / nv,
               assd / nv, hd / nv);
        for (int c = 1; c < K; c++)
            printf("%s\"%s\":{\"dice\":%.4f,\"assd\":%.3f,\"hd95\":%.3f}", c > 1 ? "," : "",
                   vol_class_names[c], sum[c][0] / nv, sum[c][1] / nv, sum[c][2] / nv);
        printf("}}}\n");
    } else {
        printf("%-24s", "mean");
        for (int c = 1; c < K; c++)
            printf(" %6.3f", sum[c][0] / nv);
        printf(" %6.3f %8.2f %8.2f\n", dice / nv, assd / nv, hd / nv);
    }
}

int cmd_eval(int argc, char **argv)
{
    eval_args e = {.o = {-1, 0, 0.5}, .floor_ = -1};
    int prc = eval_parse(&e, argc, argv);
    if (prc)
        return prc == 1 ? 0 : 2;
    nn_set_threads(e.threads);
    char err[512];
    cli_pairs p = {0};
    if ((e.dir && cli_pairs_from_dir(&p, e.dir, err, sizeof err)) ||
        (e.imgs && cli_pairs_from_lists(&p, e.imgs, e.labs, err, sizeof err))) {
        fprintf(stderr, "mkdseg eval: %s\n", err);
        return 2;
    }
    const nn_backend *be = nn_backend_from_env(err, sizeof err);
    infer_model *m = be ? infer_model_load(e.model, be, err, sizeof err) : NULL;
    if (!m) {
        fprintf(stderr, "mkdseg eval: %s\n", err);
        cli_pairs_free(&p);
        return 1;
    }
    double sum[VOL_NCLASSES][3] = {{0}}, mean_dice = 0, mean_assd = 0, mean_hd = 0;
    int rc = 1;
    if (e.json)
        printf("{\"model\":\"%s\",\"volumes\":[", e.model);
    else {
        printf("%-24s", "volume");
        for (int c = 1; c < VOL_NCLASSES; c++)
            printf(" %6s", vol_class_names[c]);
        printf("   mean  ASSD(mm) HD95(mm)\n");
    }
    for (int i = 0; i < p.n; i++) {
        metrics_struct ms[VOL_NCLASSES];
        if (eval_volume(m, &e.o, p.image[i], p.label[i], ms, err, sizeof err) < 0) {
            fprintf(stderr, "mkdseg eval: %s: %s\n", p.name[i], err);
            if (e.json)
                printf("]}\n");
            goto done;
        }
        double d, a, h;
        metrics_mean(ms, VOL_NCLASSES, &d, &a, &h);
        mean_dice += d;
        mean_assd += a;
        mean_hd += h;
        for (int c = 1; c < VOL_NCLASSES; c++) {
            sum[c][0] += ms[c].dice;
            sum[c][1] += ms[c].assd;
            sum[c][2] += ms[c].hd95;
        }
        eval_print_row(e.json, i == 0, p.name[i], ms, d, a, h);
    }
    double nv = p.n;
    eval_print_mean(e.json, sum, mean_dice, mean_assd, mean_hd, nv);
    rc = 0;
    if (e.floor_ >= 0 && mean_dice / nv < e.floor_) {
        fprintf(stderr, "mkdseg eval: mean Dice %.4f is below the floor %.4f\n", mean_dice / nv,
                e.floor_);
        rc = 1;
    }
done:
    infer_model_free(m);
    cli_pairs_free(&p);
    return rc;
}
