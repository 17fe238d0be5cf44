/* cmd_train.c: `mkdseg train` — train a model from labelled NIfTI files (no server needed;
 * the server's training jobs call the same engine functions). */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli_util.h"
#include "commands.h"
#include "dataset.h"
#include "train.h"
#include "train_config.h"

static volatile sig_atomic_t cancelled;
static void on_sigint(int sig) { (void)sig; cancelled = 1; }

static void usage(FILE *f)
{
    fprintf(f,
            "usage: mkdseg train --target-dir D [--assistant-dir D] --out MODEL.safetensors [options]\n"
            "       mkdseg train --target-images A,B --target-labels A,B [--assistant-images ... --assistant-labels ...] ...\n\n"
            "Trains a segmentation model on labelled target-modality volumes, helped (every method but\n"
            "baseline) by labelled assistant-modality volumes. Folders hold <name>_image.nii[.gz] /\n"
            "<name>_label.nii[.gz] pairs (labels: MM-WHS codes or class indices 0..7).\n\n"
            "data and output:\n"
            "  --target-dir D            target-modality pairs\n"
            "  --target-images LIST      comma-separated image files (with --target-labels)\n"
            "  --assistant-dir D         assistant-modality pairs\n"
            "  --assistant-images LIST   (with --assistant-labels)\n"
            "  --target-modality ct|mr   (default ct)\n"
            "  --assistant-modality ct|mr (default mr)\n"
            "  --out F                   the model file (safetensors) to write (required)\n"
            "  --checkpoint F            checkpoint file (default: OUT.ckpt)\n"
            "  --resume                  continue from the checkpoint\n"
            "  --empty-every N           keep every N-th slice without labels (default 4; 0: none)\n"
            "  --json                    progress as JSON lines even on a terminal\n\n"
            "training settings (also accepted by POST /train as config fields with '_' for '-'):\n");
    train_config_usage(f);
}

typedef struct {
    int tty;
    double last;
} progress_state;

static int on_progress(const train_progress *p, void *user)
{
    progress_state *ps = user;
    if (ps->tty) {
        fprintf(stderr, "\r[%6d/%d] ep %d ", p->iter, p->total, p->epoch);
        for (int i = 0; i < TL_COUNT; i++)
            if (!isnan(p->loss[i])) fprintf(stderr, "%s %.3f ", train_loss_name((train_loss)i), p->loss[i]);
        fprintf(stderr, "| %.2f it/s ETA %.0fs   ", p->iters_per_s, p->eta_s);
        if (p->iter == p->total) fputc('\n', stderr);
    } else {
        fprintf(stderr, "{\"event\":\"progress\",\"iter\":%d,\"total\":%d,\"epoch\":%d,\"lr_seg\":%.6g", p->iter, p->total,
                p->epoch, p->lr_seg);
        for (int i = 0; i < TL_COUNT; i++)
            if (!isnan(p->loss[i])) fprintf(stderr, ",\"%s\":%.6g", train_loss_name((train_loss)i), p->loss[i]);
        fprintf(stderr, ",\"iters_per_s\":%.4g,\"eta_s\":%.1f}\n", p->iters_per_s, p->eta_s);
    }
    return cancelled ? 1 : 0;
}

static int parse_modality(const char *s, prep_modality *m)
{
    if (!strcmp(s, "ct")) *m = PREP_CT;
    else if (!strcmp(s, "mr")) *m = PREP_MR;
    else return -1;
    return 0;
}

static int load_set(train_slices *s, const cli_pairs *p, const dataset_opts *o, char *err, size_t errlen)
{
    for (int i = 0; i < p->n; i++)
        if (dataset_add_files(s, o, p->image[i], p->label[i], 0, err, errlen)) return -1;
    return 0;
}

int cmd_train(int argc, char **argv)
{
    train_config c;
    train_config_default(&c);
    char err[512];
    char **rest = calloc(argc + 1, sizeof *rest);
    int nrest = 0, rc = 2;
    cli_pairs tp = {0}, ap = {0};
    train_slices ts = {0}, as = {0};
    trainer *t = NULL;
    const char *tdir = NULL, *adir = NULL, *timgs = NULL, *tlabs = NULL, *aimgs = NULL, *alabs = NULL, *out = NULL,
               *ckpt = NULL;
    prep_modality tmod = PREP_CT, amod = PREP_MR;
    int resume = 0, json = 0, empty_every = 4;
    char ckbuf[4096];

    if (train_config_from_argv(&c, argc - 1, argv + 1, rest, &nrest, err, sizeof err)) {
        fprintf(stderr, "mkdseg train: %s\n", err);
        goto done;
    }
    for (int i = 0; i < nrest; i++) {
        int miss = 0;
        const char *v;
        if (!strcmp(rest[i], "--help") || !strcmp(rest[i], "-h")) { usage(stdout); rc = 0; goto done; }
        else if (!strcmp(rest[i], "--resume")) resume = 1;
        else if (!strcmp(rest[i], "--json")) json = 1;
        else if ((v = cli_opt(nrest, rest, &i, "--target-dir", &miss))) tdir = v;
        else if ((v = cli_opt(nrest, rest, &i, "--assistant-dir", &miss))) adir = v;
        else if ((v = cli_opt(nrest, rest, &i, "--target-images", &miss))) timgs = v;
        else if ((v = cli_opt(nrest, rest, &i, "--target-labels", &miss))) tlabs = v;
        else if ((v = cli_opt(nrest, rest, &i, "--assistant-images", &miss))) aimgs = v;
        else if ((v = cli_opt(nrest, rest, &i, "--assistant-labels", &miss))) alabs = v;
        else if ((v = cli_opt(nrest, rest, &i, "--out", &miss))) out = v;
        else if ((v = cli_opt(nrest, rest, &i, "--checkpoint", &miss))) ckpt = v;
        else if ((v = cli_opt(nrest, rest, &i, "--empty-every", &miss))) empty_every = atoi(v);
        else if ((v = cli_opt(nrest, rest, &i, "--target-modality", &miss))) {
            if (parse_modality(v, &tmod)) { fprintf(stderr, "mkdseg train: --target-modality must be ct or mr\n"); goto done; }
        } else if ((v = cli_opt(nrest, rest, &i, "--assistant-modality", &miss))) {
            if (parse_modality(v, &amod)) { fprintf(stderr, "mkdseg train: --assistant-modality must be ct or mr\n"); goto done; }
        } else {
            fprintf(stderr, "mkdseg train: %s '%s' (see mkdseg train --help)\n", miss ? "missing value for" : "unknown option",
                    rest[i]);
            goto done;
        }
        if (miss) { fprintf(stderr, "mkdseg train: %s needs a value\n", rest[i]); goto done; }
    }
    if (!out) { fprintf(stderr, "mkdseg train: --out is required\n"); goto done; }
    if (!tdir && !timgs) { fprintf(stderr, "mkdseg train: give --target-dir or --target-images/--target-labels\n"); goto done; }
    if ((timgs && !tlabs) || (aimgs && !alabs)) { fprintf(stderr, "mkdseg train: image lists need label lists\n"); goto done; }
    if (train_config_validate(&c, err, sizeof err)) { fprintf(stderr, "mkdseg train: %s\n", err); goto done; }
    if (c.method != TM_BASELINE && !adir && !aimgs) {
        fprintf(stderr, "mkdseg train: method %s needs assistant data (--assistant-dir or --assistant-images)\n",
                train_method_name(c.method));
        goto done;
    }
    rc = 1;
    if ((tdir && cli_pairs_from_dir(&tp, tdir, err, sizeof err)) || (timgs && cli_pairs_from_lists(&tp, timgs, tlabs, err, sizeof err)) ||
        (adir && cli_pairs_from_dir(&ap, adir, err, sizeof err)) || (aimgs && cli_pairs_from_lists(&ap, aimgs, alabs, err, sizeof err))) {
        fprintf(stderr, "mkdseg train: %s\n", err);
        goto done;
    }
    nn_set_threads(c.threads);
    dataset_opts to = {.spacing = c.spacing, .size = c.size, .empty_every = empty_every, .seed = c.seed};
    dataset_opts ao = to;
    prep_norm_default(&to.norm, tmod);
    prep_norm_default(&ao.norm, amod);
    ao.seed = c.seed + 1;
    if (load_set(&ts, &tp, &to, err, sizeof err) || load_set(&as, &ap, &ao, err, sizeof err)) {
        fprintf(stderr, "mkdseg train: %s\n", err);
        goto done;
    }
    fprintf(stderr, "mkdseg train: %s, %d target volumes (%d slices), %d assistant volumes (%d slices), %d iterations, %d threads\n",
            train_method_name(c.method), tp.n, ts.n, ap.n, as.n, train_config_total_iters(&c), nn_get_threads());
    const nn_backend *be = nn_backend_from_env(err, sizeof err);
    t = be ? trainer_new(&c, be, &ts, ap.n ? &as : NULL, err, sizeof err) : NULL;
    if (!t) { fprintf(stderr, "mkdseg train: %s\n", err); goto done; }
    if (!ckpt) { snprintf(ckbuf, sizeof ckbuf, "%s.ckpt", out); ckpt = ckbuf; }
    if (resume) {
        if (trainer_load_checkpoint(t, ckpt, err, sizeof err)) { fprintf(stderr, "mkdseg train: %s\n", err); goto done; }
        fprintf(stderr, "mkdseg train: resumed from %s at iteration %d\n", ckpt, trainer_iter(t));
    }
    progress_state ps = {isatty(2) && !json, 0};
    signal(SIGINT, on_sigint);
    signal(SIGTERM, on_sigint);
    int r = trainer_run(t, on_progress, &ps, ckpt, err, sizeof err);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    if (r < 0) { fprintf(stderr, "mkdseg train: %s\n", err); goto done; }
    if (r == 1) {
        fprintf(stderr, "mkdseg train: cancelled at iteration %d; checkpoint %s (continue with --resume)\n", trainer_iter(t), ckpt);
        rc = 130;
        goto done;
    }
    char norm[256], sp[32], sz[32], mod[8];
    prep_norm_to_string(&to.norm, norm, sizeof norm);
    snprintf(sp, sizeof sp, "%g", c.spacing);
    snprintf(sz, sizeof sz, "%d", c.size);
    snprintf(mod, sizeof mod, "%s", tmod == PREP_CT ? "ct" : "mr");
    const char *kv[] = {"mkdseg.prep.norm", norm, "mkdseg.prep.spacing", sp, "mkdseg.prep.size", sz,
                        "mkdseg.modality", mod, "mkdseg.revision", MKDSEG_VERSION};
    if (trainer_save_model(t, out, kv, 5, err, sizeof err)) { fprintf(stderr, "mkdseg train: %s\n", err); goto done; }
    printf("{\"model\":\"%s\",\"method\":\"%s\",\"iterations\":%d,\"target_slices\":%d,\"assistant_slices\":%d}\n", out,
           train_method_name(c.method), trainer_iter(t), ts.n, as.n);
    rc = 0;
done:
    trainer_free(t);
    dataset_free(&ts);
    dataset_free(&as);
    cli_pairs_free(&tp);
    cli_pairs_free(&ap);
    free(rest);
    return rc;
}
