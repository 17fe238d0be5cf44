/* job_train.c: see job_train.h. */
#include "job_train.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "dataset.h"
#include "db.h"
#include "infer.h"
#include "log.h"
#include "seg_metrics.h"
#include "svc.h"
#include "train.h"
#include "train_config.h"

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* "{1,2,3}" from a JSON array of ids. */
static void id_array(const json_t *a, char *out, size_t len)
{
    size_t off = (size_t)snprintf(out, len, "{");
    size_t i;
    json_t *v;
    json_array_foreach(a, i, v) {
        if (off < len)
            off += (size_t)snprintf(out + off, len - off, "%s%lld", i ? "," : "", (long long)json_integer_value(v));
    }
    if (off < len)
        snprintf(out + off, len - off, "}");
}

typedef struct {
    int n;
    long long id[512];
    char image[512][256], label[512][256];
} vol_list;

/* The labelled volumes among ids (or of dataset ds when ids is NULL). */
static int load_vols(PGconn *pg, const json_t *ids, const char *ds, vol_list *L, char *err, size_t errlen)
{
    char arr[8192];
    PGresult *r;
    L->n = 0;
    if (ids) {
        id_array(ids, arr, sizeof arr);
        const char *v[1] = {arr};
        r = svc_q(pg, "SELECT id, path, label_path FROM volumes WHERE id = ANY($1::bigint[]) AND "
                      "label_path IS NOT NULL ORDER BY id", 1, v, err, errlen);
    } else {
        const char *v[1] = {ds};
        r = svc_q(pg, "SELECT id, path, label_path FROM volumes WHERE dataset_id = $1::bigint AND "
                      "label_path IS NOT NULL ORDER BY id", 1, v, err, errlen);
    }
    if (!r)
        return -1;
    for (int i = 0; i < PQntuples(r) && L->n < 512; i++) {
        L->id[L->n] = atoll(PQgetvalue(r, i, 0));
        snprintf(L->image[L->n], 256, "%s", PQgetvalue(r, i, 1));
        snprintf(L->label[L->n], 256, "%s", PQgetvalue(r, i, 2));
        L->n++;
    }
    PQclear(r);
    return 0;
}

/* Reads every volume of L into slices. */
static int add_slices(train_slices *s, const dataset_opts *o, const vol_list *L, char *err, size_t errlen)
{
    const char *dd = svc_config()->data_dir;
    for (int i = 0; i < L->n; i++) {
        char im[1400], lb[1400];
        if (svc_nifti_link(dd, L->image[i], im, sizeof im, err, errlen) < 0)
            return -1;
        if (svc_nifti_link(dd, L->label[i], lb, sizeof lb, err, errlen) < 0) {
            unlink(im);
            return -1;
        }
        int rc = dataset_add_files(s, o, im, lb, 0, err, errlen);
        unlink(im);
        unlink(lb);
        if (rc < 0)
            return -1;
    }
    return 0;
}

/* Evaluates model m on the volumes of L: rows per volume and structure, then the means
 * (volume_id NULL). *mean gets the mean Dice over volumes and structures. */
static int evaluate(job_ctx *j, PGconn *pg, const infer_model *m, const char *model_id,
                    const char *dataset_id, const vol_list *L, double *mean, char *err, size_t errlen)
{
    const char *dd = svc_config()->data_dir;
    const int K = VOL_NCLASSES;
    double sum[VOL_NCLASSES][3] = {{0}};
    char jid[24];
    snprintf(jid, sizeof jid, "%lld", job_id(j));
    int done = 0;
    for (int i = 0; i < L->n; i++) {
        if (job_should_stop(j))
            return 1;
        char im[1400], lb[1400] = "";
        vol_t v = {0};
        uint8_t *pred = NULL, *truth = NULL;
        vol_geom lg;
        metrics_struct ms[VOL_NCLASSES];
        int ok = 0;
        if (svc_nifti_link(dd, L->image[i], im, sizeof im, err, errlen) < 0)
            return -1;
        if (svc_nifti_link(dd, L->label[i], lb, sizeof lb, err, errlen) < 0)
            goto vdone;
        if (vol_read(im, NULL, &v, err, errlen) < 0 ||
            vol_read_labels(lb, NULL, VOL_LABELS_AUTO, &lg, &truth, err, errlen) < 0)
            goto vdone;
        int64_t n = v.geom.nx * v.geom.ny * v.geom.nz;
        if (!(pred = malloc((size_t)n))) {
            snprintf(err, errlen, "out of memory");
            goto vdone;
        }
        if (infer_volume(m, &v, &(infer_opts){-1, 0, 0.5}, pred, NULL, err, errlen) < 0)
            goto vdone;
        double sp[3];
        vol_geom_spacing(&v.geom, sp);
        if (metrics_compute(pred, truth, v.geom.nx, v.geom.ny, v.geom.nz, sp, K, ms, err, errlen) < 0)
            goto vdone;
        char vid[24];
        snprintf(vid, sizeof vid, "%lld", L->id[i]);
        for (int c = 1; c < K; c++) {
            char d[32], a[32], h[32];
            snprintf(d, sizeof d, "%.6f", ms[c].dice);
            snprintf(a, sizeof a, "%.6f", ms[c].assd);
            snprintf(h, sizeof h, "%.6f", ms[c].hd95);
            const char *vv[8] = {model_id, dataset_id, vid, jid, vol_class_names[c], d, a, h};
            PGresult *r = svc_q(pg, "INSERT INTO dice_results (model_id, dataset_id, volume_id, job_id, "
                                    "structure, dice, assd, hd95) VALUES ($1::bigint, $2::bigint, $3::bigint, "
                                    "$4::bigint, $5, $6::float8, $7::float8, $8::float8)", 8, vv, err, errlen);
            if (!r)
                goto vdone;
            PQclear(r);
            sum[c][0] += ms[c].dice, sum[c][1] += ms[c].assd, sum[c][2] += ms[c].hd95;
        }
        ok = 1;
        done++;
        job_progress(j, json_pack("{s:s,s:i,s:i}", "stage", "evaluate", "volume", done, "volumes", L->n));
    vdone:
        unlink(im);
        if (*lb)
            unlink(lb);
        vol_free(&v);
        free(pred);
        free(truth);
        if (!ok)
            return -1;
    }
    double total = 0;
    for (int c = 1; c < K; c++) {
        char d[32], a[32], h[32];
        double nv = done ? done : 1;
        snprintf(d, sizeof d, "%.6f", sum[c][0] / nv);
        snprintf(a, sizeof a, "%.6f", sum[c][1] / nv);
        snprintf(h, sizeof h, "%.6f", sum[c][2] / nv);
        total += sum[c][0] / nv;
        const char *vv[7] = {model_id, dataset_id, jid, vol_class_names[c], d, a, h};
        PGresult *r = svc_q(pg, "INSERT INTO dice_results (model_id, dataset_id, volume_id, job_id, "
                                "structure, dice, assd, hd95) VALUES ($1::bigint, $2::bigint, NULL, $3::bigint, "
                                "$4, $5::float8, $6::float8, $7::float8)", 7, vv, err, errlen);
        if (!r)
            return -1;
        PQclear(r);
    }
    *mean = total / (K - 1);
    return 0;
}

/* ------------------------------------------------------------------------------------------ */

typedef struct {
    job_ctx *j;
    double last;
} prog_state;

static int on_progress(const train_progress *p, void *user)
{
    prog_state *ps = user;
    double t = now_s();
    if (t - ps->last >= 0.5 || p->iter == p->total || p->iter == 1) {
        ps->last = t;
        json_t *losses = json_object();
        for (int i = 0; i < TL_COUNT; i++)
            if (!isnan(p->loss[i]))
                json_object_set_new(losses, train_loss_name((train_loss)i), json_real(p->loss[i]));
        job_progress(ps->j, json_pack("{s:s,s:i,s:i,s:i,s:o,s:f,s:f,s:f}", "stage", "train", "iteration", p->iter,
                                      "total", p->total, "epoch", p->epoch, "losses", losses, "iters_per_s",
                                      p->iters_per_s, "eta_s", p->eta_s, "lr_seg", (double)p->lr_seg));
    }
    return job_should_stop(ps->j) ? 1 : 0;
}

static int parse_mod(const char *s, prep_modality *m)
{
    if (s && !strcmp(s, "mr"))
        *m = PREP_MR;
    else
        *m = PREP_CT;
    return 0;
}

static void mkdir_p2(const char *a, const char *b)
{
    mkdir(a, 0755);
    mkdir(b, 0755);
}

job_status job_train(job_ctx *j, char *err, size_t errlen)
{
    const mkd_config *cfg = svc_config();
    const json_t *p = job_params(j);
    job_status st = JOB_FAILED;
    PGconn *pg = NULL;
    trainer *t = NULL;
    train_slices ts = {0}, as = {0};
    vol_list *tv = calloc(1, sizeof *tv), *av = calloc(1, sizeof *av), *vv = calloc(1, sizeof *vv);
    infer_model *m = NULL;
    char jdir[1200], ckpt[1300], model_path[1300];
    snprintf(jdir, sizeof jdir, "%s/jobs/%lld", cfg->data_dir, job_id(j));
    char top[1100];
    snprintf(top, sizeof top, "%s/jobs", cfg->data_dir);
    mkdir_p2(top, jdir);
    snprintf(ckpt, sizeof ckpt, "%s/checkpoint.safetensors", jdir);
    snprintf(model_path, sizeof model_path, "%s/model.safetensors", jdir);
    if (!tv || !av || !vv) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    if (!(pg = db_connect(cfg->database_url, 5, err, errlen)))
        goto done;
    svc_engine_threads();
    char tds[24];
    snprintf(tds, sizeof tds, "%lld", (long long)json_integer_value(json_object_get(p, "target_dataset")));
    /* a model registered by an earlier attempt that died before finishing */
    char jid[24];
    snprintf(jid, sizeof jid, "%lld", job_id(j));
    const char *vj[1] = {jid};
    PGresult *r = svc_q(pg, "SELECT id FROM models WHERE job_id = $1::bigint", 1, vj, err, errlen);
    if (!r)
        goto done;
    if (PQntuples(r) > 0) {
        job_set_result(j, json_pack("{s:I,s:b}", "model_id", (json_int_t)atoll(PQgetvalue(r, 0, 0)), "recovered", 1));
        PQclear(r);
        st = JOB_DONE;
        goto done;
    }
    PQclear(r);

    train_config c;
    train_config_default(&c);
    const char *field = NULL;
    if (train_config_from_json(&c, json_object_get(p, "config"), err, errlen, &field) < 0 ||
        train_config_validate(&c, err, errlen) < 0)
        goto done;
    if (load_vols(pg, json_object_get(p, "target_volumes"), NULL, tv, err, errlen) < 0 ||
        load_vols(pg, json_object_get(p, "assistant_volumes"), NULL, av, err, errlen) < 0 ||
        load_vols(pg, json_object_get(p, "validation_volumes"), NULL, vv, err, errlen) < 0)
        goto done;
    if (tv->n == 0) {
        snprintf(err, errlen, "no labelled target volumes to train on");
        goto done;
    }
    prep_modality tmod, amod;
    parse_mod(json_string_value(json_object_get(p, "target_modality")), &tmod);
    parse_mod(json_string_value(json_object_get(p, "assistant_modality")), &amod);
    dataset_opts to = {.spacing = c.spacing, .size = c.size, .empty_every = 4, .seed = c.seed};
    dataset_opts ao = to;
    prep_norm_default(&to.norm, tmod);
    prep_norm_default(&ao.norm, amod);
    ao.seed = c.seed + 1;
    job_progress(j, json_pack("{s:s,s:i,s:i}", "stage", "load", "target_volumes", tv->n, "assistant_volumes", av->n));
    if (add_slices(&ts, &to, tv, err, errlen) < 0 || add_slices(&as, &ao, av, err, errlen) < 0)
        goto done;
    if (c.method != TM_BASELINE && as.n == 0) {
        snprintf(err, errlen, "method %s needs labelled assistant volumes", train_method_name(c.method));
        goto done;
    }
    t = trainer_new(&c, svc_backend(), &ts, as.n ? &as : NULL, err, errlen);
    if (!t)
        goto done;
    struct stat sb;
    if (stat(ckpt, &sb) == 0) {
        if (trainer_load_checkpoint(t, ckpt, err, errlen) < 0)
            goto done;
        log_json(LOG_INFO, NULL, "training job resumed from its checkpoint",
                 json_pack("{s:I,s:i,s:i}", "job", (json_int_t)job_id(j), "iteration", trainer_iter(t), "attempt", job_attempt(j)));
        job_progress(j, json_pack("{s:s,s:i,s:i}", "stage", "resume", "iteration", trainer_iter(t), "attempt", job_attempt(j)));
    }
    prog_state ps = {j, 0};
    int rc = trainer_run(t, on_progress, &ps, ckpt, err, errlen);
    if (rc < 0)
        goto done;
    if (rc == 1) {
        st = JOB_STOPPED;
        goto done;
    }
    /* the model file and its row */
    char norm[256], sp[32], sz[32], ids[256];
    prep_norm_to_string(&to.norm, norm, sizeof norm);
    snprintf(sp, sizeof sp, "%g", c.spacing);
    snprintf(sz, sizeof sz, "%d", c.size);
    snprintf(ids, sizeof ids, "{\"target\":%s,\"assistant\":%s,\"job\":%lld}", tds,
             json_is_integer(json_object_get(p, "assistant_dataset")) ? "" : "null", job_id(j));
    if (json_is_integer(json_object_get(p, "assistant_dataset")))
        snprintf(ids, sizeof ids, "{\"target\":%s,\"assistant\":%lld,\"job\":%lld}", tds,
                 (long long)json_integer_value(json_object_get(p, "assistant_dataset")), job_id(j));
    const char *kv[] = {"mkdseg.prep.norm", norm, "mkdseg.prep.spacing", sp, "mkdseg.prep.size", sz,
                        "mkdseg.modality", tmod == PREP_CT ? "ct" : "mr", "mkdseg.revision", MKDSEG_VERSION,
                        "mkdseg.datasets", ids};
    if (trainer_save_model(t, model_path, kv, 6, err, errlen) < 0)
        goto done;
    if (!(m = infer_model_load(model_path, svc_backend(), err, errlen)))
        goto done;
    json_t *meta = svc_model_metadata(model_path, err, errlen);
    if (!meta)
        goto done;
    char sha[65], rel[256], size[32];
    long long bytes = 0;
    if (svc_sha256_file(model_path, sha, &bytes) < 0 ||
        svc_blob_adopt(cfg->data_dir, model_path, sha, rel, sizeof rel, err, errlen) < 0) {
        json_decref(meta);
        goto done;
    }
    snprintf(size, sizeof size, "%lld", bytes);
    char *cfgs = train_config_to_json(&c), *metas = json_dumps(meta, JSON_COMPACT);
    json_decref(meta);
    const char *mv[8] = {train_method_name(c.method), tmod == PREP_CT ? "ct" : "mr", cfgs, metas, sha, rel, size, jid};
    r = svc_q(pg, "INSERT INTO models (method, modality, config, metadata, weights_sha256, weights_path, "
                  "weights_size, job_id) VALUES ($1, $2, $3::jsonb, $4::jsonb, $5, $6, $7::bigint, $8::bigint) "
                  "RETURNING id", 8, mv, err, errlen);
    free(cfgs), free(metas);
    if (!r)
        goto done;
    char mid[24];
    snprintf(mid, sizeof mid, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    const char *roles[3] = {"target", "assistant", "validation"};
    char ads[24] = "";
    if (json_is_integer(json_object_get(p, "assistant_dataset")))
        snprintf(ads, sizeof ads, "%lld", (long long)json_integer_value(json_object_get(p, "assistant_dataset")));
    const char *dsets[3] = {tds, ads, vv->n ? tds : ""};
    for (int i = 0; i < 3; i++) {
        if (!*dsets[i])
            continue;
        const char *v3[3] = {mid, dsets[i], roles[i]};
        r = svc_q(pg, "INSERT INTO model_datasets (model_id, dataset_id, role) VALUES ($1::bigint, "
                      "$2::bigint, $3) ON CONFLICT DO NOTHING", 3, v3, err, errlen);
        if (!r)
            goto done;
        PQclear(r);
    }
    json_t *res = json_pack("{s:I,s:i}", "model_id", (json_int_t)atoll(mid), "iterations", trainer_iter(t));
    if (vv->n) {
        double mean = 0;
        int erc = evaluate(j, pg, m, mid, tds, vv, &mean, err, errlen);
        if (erc < 0) {
            json_decref(res);
            goto done;
        }
        if (erc == 0)
            json_object_set_new(res, "mean_dice", json_real(mean));
    }
    job_set_result(j, res);
    /* the checkpoint is no longer needed */
    unlink(ckpt);
    rmdir(jdir);
    st = JOB_DONE;
done:
    infer_model_free(m);
    trainer_free(t);
    dataset_free(&ts);
    dataset_free(&as);
    free(tv), free(av), free(vv);
    if (pg)
        PQfinish(pg);
    return st;
}

job_status job_evaluate(job_ctx *j, char *err, size_t errlen)
{
    const mkd_config *cfg = svc_config();
    const json_t *p = job_params(j);
    job_status st = JOB_FAILED;
    PGconn *pg = NULL;
    infer_model *m = NULL;
    vol_list *L = calloc(1, sizeof *L);
    char mid[24], dsid[24];
    snprintf(mid, sizeof mid, "%lld", (long long)json_integer_value(json_object_get(p, "model_id")));
    snprintf(dsid, sizeof dsid, "%lld", (long long)json_integer_value(json_object_get(p, "dataset_id")));
    if (!L || !(pg = db_connect(cfg->database_url, 5, err, errlen)))
        goto done;
    svc_engine_threads();
    const char *v[1] = {mid};
    PGresult *r = svc_q(pg, "SELECT weights_path FROM models WHERE id = $1::bigint", 1, v, err, errlen);
    if (!r)
        goto done;
    if (PQntuples(r) == 0) {
        PQclear(r);
        snprintf(err, errlen, "model %s not found", mid);
        goto done;
    }
    char path[1400];
    svc_abs(cfg->data_dir, PQgetvalue(r, 0, 0), path, sizeof path);
    PQclear(r);
    if (!(m = infer_model_load(path, svc_backend(), err, errlen)))
        goto done;
    if (load_vols(pg, NULL, dsid, L, err, errlen) < 0)
        goto done;
    if (L->n == 0) {
        snprintf(err, errlen, "dataset %s has no labelled volumes", dsid);
        goto done;
    }
    /* an earlier attempt's rows are replaced */
    char jid[24];
    snprintf(jid, sizeof jid, "%lld", job_id(j));
    const char *vj[1] = {jid};
    if (!(r = svc_q(pg, "DELETE FROM dice_results WHERE job_id = $1::bigint", 1, vj, err, errlen)))
        goto done;
    PQclear(r);
    double mean = 0;
    int rc = evaluate(j, pg, m, mid, dsid, L, &mean, err, errlen);
    if (rc < 0)
        goto done;
    if (rc == 1) {
        st = JOB_STOPPED;
        goto done;
    }
    job_set_result(j, json_pack("{s:I,s:I,s:f,s:i}", "model_id", json_integer_value(json_object_get(p, "model_id")),
                                "dataset_id", json_integer_value(json_object_get(p, "dataset_id")), "mean_dice", mean,
                                "volumes", L->n));
    st = JOB_DONE;
done:
    infer_model_free(m);
    free(L);
    if (pg)
        PQfinish(pg);
    return st;
}
