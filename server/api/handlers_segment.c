/* handlers_segment.c: POST /segment and GET /inferences/{id}/mask, plus helpers shared by the
 * handlers of issue 6 (handlers_svc.h).
 *
 * POST /segment: the multipart upload is already on disk (upload.c) when the handler runs;
 * the handler checks the fields, resolves the model (the named one, else the promoted one),
 * queues a seg_task on the engine pool (503 + Retry-After when the queue is full), waits,
 * stores the mask as a blob, records the inference and answers the label map (NIfTI, gzip
 * when the upload was gzip) or, with Accept: application/json, the inference as JSON. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine_pool.h"
#include "handlers.h"
#include "handlers_svc.h"
#include "svc.h"

/* ------------------------------------------------------------------------------------------ */
/* helpers */

int hs_id(http_req *r, const char *what, long long *id, char ids[24])
{
    if (http_param_id(r, 0, id) < 0) {
        http_error(r, 404, "not_found", "id", "%s '%s' not found (ids are positive integers)", what,
                   r->params[0]);
        return -1;
    }
    snprintf(ids, 24, "%lld", *id);
    return 0;
}

int hs_reply_file(http_req *r, const char *path, const char *ctype, const char *filename)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
        if (fd >= 0)
            close(fd);
        http_error(r, errno == ENOENT ? 404 : 500, errno == ENOENT ? "not_found" : "internal", NULL,
                   "the stored file is missing: %s", strerror(errno));
        return -1;
    }
    struct MHD_Response *resp = MHD_create_response_from_fd((uint64_t)st.st_size, fd);
    if (!resp) {
        close(fd);
        http_error(r, 500, "internal", NULL, "cannot create the response");
        return -1;
    }
    if (r->resp)
        MHD_destroy_response(r->resp);
    r->resp = resp;
    r->status = 200;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    if (filename) {
        char cd[300];
        snprintf(cd, sizeof cd, "attachment; filename=\"%s\"", filename);
        MHD_add_response_header(resp, "Content-Disposition", cd);
    }
    return 0;
}

int hs_upload_nifti(http_req *r, upload_file *f, int *gz)
{
    char why[256];
    int ok = svc_nifti_sniff(f->path, gz, why, sizeof why);
    if (ok <= 0) {
        http_error(r, ok < 0 ? 500 : 415, ok < 0 ? "internal" : "not_nifti", f->field,
                   "field '%s' (%s): %s", f->field, f->filename, why);
        return -1;
    }
    char np[1200];
    snprintf(np, sizeof np, "%.1180s.nii%s", f->path, *gz ? ".gz" : "");
    if (rename(f->path, np) < 0) {
        http_error(r, 500, "internal", NULL, "cannot rename the upload: %s", strerror(errno));
        return -1;
    }
    snprintf(f->path, sizeof f->path, "%s", np);
    return 0;
}

PGresult *hs_exec(http_req *r, const db_stmt *st, const char *const *v, char sqlstate[6])
{
    char err[512];
    db_conn *c = h_db_acquire(r);
    if (!c)
        return NULL;
    PGresult *res = NULL;
    if (db_exec(c, st, v, &res, err, sizeof err) < 0) {
        if (sqlstate)
            snprintf(sqlstate, 6, "%s", db_sqlstate(c));
        /* constraint and data errors (classes 22, 23) are left to the caller when it asked */
        if (!sqlstate || (strncmp(db_sqlstate(c), "22", 2) && strncmp(db_sqlstate(c), "23", 2)))
            h_db_error(r, c, err);
        db_release(r->app->db, c);
        return NULL;
    }
    db_release(r->app->db, c);
    return res;
}

/* ------------------------------------------------------------------------------------------ */
/* POST /segment */

static const db_stmt st_model_by_ref = {
    "seg_model_by_ref",
    "SELECT id, weights_path, coalesce(name, '') FROM models WHERE id::text = $1 OR name = $1 "
    "ORDER BY (id::text = $1) DESC LIMIT 1",
    1};
static const db_stmt st_model_default = {
    "seg_model_default",
    "SELECT id, weights_path, coalesce(name, '') FROM models WHERE is_default", 0};
static const db_stmt st_infer_insert = {
    "seg_infer_insert",
    "INSERT INTO inferences (model_id, request_id, input_name, input_sha256, dims, spacing, "
    "mask_sha256, mask_path, structures, dice, timings_ms) VALUES ($1::bigint, $2, $3, $4, "
    "$5::int[], $6::float8[], $7, $8, $9::jsonb, $10::jsonb, $11::jsonb) RETURNING id",
    11};

static int parse_bool_field(const char *s, int *out)
{
    if (!s || !*s || !strcasecmp(s, "0") || !strcasecmp(s, "false") || !strcasecmp(s, "no") ||
        !strcasecmp(s, "off"))
        *out = 0;
    else if (!strcasecmp(s, "1") || !strcasecmp(s, "true") || !strcasecmp(s, "yes") ||
             !strcasecmp(s, "on"))
        *out = 1;
    else
        return -1;
    return 0;
}

static int wants_json(http_req *r)
{
    const char *a = http_get_header(r, MHD_HTTP_HEADER_ACCEPT);
    return a && strstr(a, "application/json") != NULL;
}

void h_segment(http_req *r)
{
    upload *u = upload_finish(r);
    if (!u)
        return;
    const mkd_config *cfg = &r->app->cfg;
    upload_file *vf = upload_get_file(u, "vol"), *lf = upload_get_file(u, "label");
    if (!vf) {
        http_error(r, 400, "missing_field", "vol",
                   "field 'vol' (the NIfTI volume, curl -F vol=@ct.nii.gz) is required");
        return;
    }
    const char *labels = upload_get_field(u, "labels"), *tta_s = upload_get_field(u, "tta"),
               *model_s = upload_get_field(u, "model");
    vol_label_mode mode = VOL_LABELS_MMWHS;
    if (labels && !strcmp(labels, "index"))
        mode = VOL_LABELS_INDEX;
    else if (labels && *labels && strcmp(labels, "mmwhs")) {
        http_error(r, 422, "invalid_field", "labels", "labels must be 'mmwhs' or 'index', not '%s'", labels);
        return;
    }
    int tta = 0;
    if (parse_bool_field(tta_s, &tta) < 0) {
        http_error(r, 422, "invalid_field", "tta", "tta must be 0, 1, true or false");
        return;
    }
    int gz = 0, lgz = 0;
    if (hs_upload_nifti(r, vf, &gz) < 0 || (lf && hs_upload_nifti(r, lf, &lgz) < 0))
        return;
    char err[512];
    vol_read_opts ro = {0};
    if (vol_read_header(vf->path, &ro, NULL, NULL, err, sizeof err) < 0) {
        http_error(r, 422, "invalid_volume", "vol", "vol: %s", err);
        return;
    }
    /* the model */
    PGresult *res;
    if (model_s && *model_s) {
        const char *v[1] = {model_s};
        if (!(res = hs_exec(r, &st_model_by_ref, v, NULL)))
            return;
        if (PQntuples(res) == 0) {
            PQclear(res);
            http_error(r, 404, "not_found", "model", "model '%s' not found", model_s);
            return;
        }
    } else {
        if (!(res = hs_exec(r, &st_model_default, NULL, NULL)))
            return;
        if (PQntuples(res) == 0) {
            PQclear(res);
            http_error(r, 503, "no_model", NULL,
                       "no model is promoted: POST /models/{id}/promote (or start with "
                       "--default-model)");
            http_header(r, "Retry-After", "30");
            return;
        }
    }
    seg_task *t = calloc(1, sizeof *t);
    if (!t) {
        PQclear(res);
        http_error(r, 500, "internal", NULL, "out of memory");
        return;
    }
    t->model_id = atoll(PQgetvalue(res, 0, 0));
    svc_abs(cfg->data_dir, PQgetvalue(res, 0, 1), t->model_path, sizeof t->model_path);
    PQclear(res);
    snprintf(t->vol_path, sizeof t->vol_path, "%s", vf->path);
    if (lf)
        snprintf(t->label_path, sizeof t->label_path, "%s", lf->path);
    snprintf(t->out_path, sizeof t->out_path, "%s/tmp/mask-%s.nii%s", cfg->data_dir, r->id, gz ? ".gz" : "");
    t->out_mode = mode;
    t->tta = tta;
    if (epool_submit(t) < 0) {
        free(t);
        int w, run;
        epool_depth(&w, &run);
        http_error(r, 503, "queue_full", NULL,
                   "the segmentation queue is full (%d waiting, %d running); retry later", w, run);
        http_header(r, "Retry-After", "5");
        return;
    }
    epool_wait(t);
    if (t->status) {
        http_error(r, t->status, t->code, t->status == 422 && !strncmp(t->code, "invalid_label", 13) ? "label" : t->status == 422 ? "vol" : NULL,
                   "%s", t->err);
        if (t->status == 503)
            http_header(r, "Retry-After", "5");
        unlink(t->out_path);
        free(t);
        return;
    }
    /* store the mask, record the inference */
    char msha[65], mrel[256];
    long long msize = 0;
    if (svc_sha256_file(t->out_path, msha, &msize) < 0 ||
        svc_blob_adopt(cfg->data_dir, t->out_path, msha, mrel, sizeof mrel, err, sizeof err) < 0) {
        unlink(t->out_path);
        free(t);
        http_error(r, 500, "internal", NULL, "cannot store the mask");
        return;
    }
    double ml = t->spacing[0] * t->spacing[1] * t->spacing[2] / 1000.0;
    json_t *structs = json_object(), *dice = t->has_dice ? json_object() : NULL;
    for (int c = 1; c < VOL_NCLASSES; c++) {
        json_object_set_new(structs, vol_class_names[c],
                            json_pack("{s:I,s:f}", "voxels", (json_int_t)t->counts[c], "ml", t->counts[c] * ml));
        if (dice)
            json_object_set_new(dice, vol_class_names[c], json_real(t->ms[c].dice));
    }
    if (dice)
        json_object_set_new(dice, "mean", json_real(t->dice_mean));
    json_t *tim = json_pack("{s:f,s:f,s:f,s:f,s:f,s:f,s:f,s:f,s:f}", "queue", t->queue_ms, "load", t->load_ms,
                            "read", t->read_ms, "prep", t->prep_ms, "net", t->net_ms, "post", t->post_ms,
                            "dice", t->dice_ms, "write", t->write_ms, "total", t->total_ms);
    char *ss = json_dumps(structs, JSON_COMPACT), *ds = dice ? json_dumps(dice, JSON_COMPACT) : NULL,
         *ts = json_dumps(tim, JSON_COMPACT);
    char mid[24], dims[96], sp[128];
    snprintf(mid, sizeof mid, "%lld", t->model_id);
    snprintf(dims, sizeof dims, "{%lld,%lld,%lld}", (long long)t->dims[0], (long long)t->dims[1], (long long)t->dims[2]);
    snprintf(sp, sizeof sp, "{%.9g,%.9g,%.9g}", t->spacing[0], t->spacing[1], t->spacing[2]);
    const char *v[11] = {mid, r->id, vf->filename, vf->sha256, dims, sp, msha, mrel, ss, ds, ts};
    res = hs_exec(r, &st_infer_insert, v, NULL);
    free(ss), free(ds), free(ts);
    if (!res) {
        json_decref(structs), json_decref(dice), json_decref(tim);
        free(t);
        return;
    }
    long long inf_id = atoll(PQgetvalue(res, 0, 0));
    PQclear(res);
    char tms[32], iid[24], url[64];
    snprintf(tms, sizeof tms, "%.1f", t->total_ms);
    snprintf(iid, sizeof iid, "%lld", inf_id);
    snprintf(url, sizeof url, "/inferences/%lld/mask", inf_id);
    if (wants_json(r)) {
        json_t *b = json_pack("{s:I,s:I,s:s,s:[I,I,I],s:[f,f,f],s:o,s:o,s:o,s:s,s:s}", "id", (json_int_t)inf_id,
                              "model", (json_int_t)t->model_id, "method", t->method, "dims",
                              (json_int_t)t->dims[0], (json_int_t)t->dims[1], (json_int_t)t->dims[2], "spacing",
                              t->spacing[0], t->spacing[1], t->spacing[2], "structures", structs, "dice",
                              dice ? dice : json_null(), "timings_ms", tim, "mask_url", url, "mask_sha256", msha);
        http_reply_json(r, 200, b);
    } else {
        json_decref(structs), json_decref(dice), json_decref(tim);
        char path[1400];
        svc_abs(cfg->data_dir, mrel, path, sizeof path);
        if (hs_reply_file(r, path, gz ? "application/gzip" : "application/octet-stream",
                          gz ? "seg.nii.gz" : "seg.nii") < 0) {
            free(t);
            return;
        }
    }
    http_header(r, "X-Mkdseg-Model", mid);
    http_header(r, "X-Mkdseg-Time-Ms", tms);
    http_header(r, "X-Mkdseg-Inference", iid);
    http_header(r, "Location", url);
    free(t);
}

/* ------------------------------------------------------------------------------------------ */
/* GET /inferences/{id}/mask */

static const db_stmt st_mask = {"seg_mask", "SELECT mask_path FROM inferences WHERE id = $1::bigint AND mask_path IS NOT NULL", 1};

void h_inference_mask(http_req *r)
{
    long long id;
    char ids[24];
    if (hs_id(r, "inference", &id, ids) < 0)
        return;
    const char *v[1] = {ids};
    PGresult *res = hs_exec(r, &st_mask, v, NULL);
    if (!res)
        return;
    if (PQntuples(res) == 0) {
        PQclear(res);
        http_error(r, 404, "not_found", "id", "inference %lld not found", id);
        return;
    }
    char path[1400];
    svc_abs(r->app->cfg.data_dir, PQgetvalue(res, 0, 0), path, sizeof path);
    PQclear(res);
    int gz = 0;
    char why[128];
    svc_nifti_sniff(path, &gz, why, sizeof why);
    hs_reply_file(r, path, gz ? "application/gzip" : "application/octet-stream", gz ? "seg.nii.gz" : "seg.nii");
}
