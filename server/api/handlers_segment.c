/* handlers_segment.c: POST /segment and GET /inferences/{id}/mask.
 *
 * POST /segment: the multipart upload is already on disk (upload.c) when the handler runs;
 * the handler checks the fields, resolves the model (the named one, else the promoted one),
 * queues a seg_task on the engine pool (503 + Retry-After when the queue is full), waits,
 * stores the mask as a blob, records the inference and answers the label map (NIfTI, gzip
 * when the upload was gzip; NRRD with format=nrrd) or, with Accept: application/json, the
 * inference as JSON. A DICOM series (a zip or a multi-frame file, handlers_dicom.c), or a series
 * pulled from a PACS by a JSON body (handlers_dicomweb.c), is accepted as 'vol' too; its answer
 * is then a DICOM SEG on request (format=seg or Accept: application/dicom), and a pulled
 * series' SEG goes back to the PACS. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "engine_pool.h"
#include "api_dicom.h"
#include "api_ui.h"
#include "api_util.h"
#include "handlers.h"
#include "sql.h"
#include "svc.h"

/* ------------------------------------------------------------------------------------------ */
/* POST /segment */

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

/* The answer's format: the `format` field (nifti | nrrd | seg), else the Accept header
 * (application/x-nrrd, application/dicom). Sets *nrrd and *seg; 0, or -1 after answering 422. */
static int answer_format(http_req *r, const char *format, int *nrrd, int *seg)
{
    const char *a = http_get_header(r, MHD_HTTP_HEADER_ACCEPT);
    if (format && *format) {
        if (strcmp(format, "nrrd") && strcmp(format, "nifti") && strcmp(format, "seg")) {
            http_error(r, 422, "invalid_field", "format",
                       "format must be 'nifti', 'nrrd' or 'seg', not '%s'", format);
            return -1;
        }
        *nrrd = !strcmp(format, "nrrd"), *seg = !strcmp(format, "seg");
        return 0;
    }
    *nrrd = a && strstr(a, "application/x-nrrd") != NULL;
    *seg = a && strstr(a, "application/dicom") != NULL;
    return 0;
}

/* The `volume` field (a 4-D image's volume, 0-based) into ro. 0, or -1 after answering 422. */
static int volume_field(http_req *r, const char *s, vol_read_opts *ro)
{
    if (!s || !*s)
        return 0;
    if (strspn(s, "0123456789") != strlen(s) || strlen(s) > 9) {
        http_error(r, 422, "invalid_field", "volume",
                   "volume must be a non-negative integer (0 is the first)");
        return -1;
    }
    ro->has_volume = 1;
    ro->volume = atoll(s);
    return 0;
}

/* One POST /segment from its fields to its answer. */
typedef struct {
    upload_file *vf, *lf; /* the volume and the optional label map */
    int gz;               /* the volume came gzip-compressed: so does the mask */
    int nrrd;             /* the label map is asked for as NRRD */
    int seg, dcm, dweb;   /* a DICOM SEG is asked for; the input is DICOM; pulled by DICOMweb */
    vol_read_opts ro;     /* the volume of a 4-D input */
    seg_task *t;
    char msha[65], mrel[256]; /* the mask blob */
    char usha[65], urel[256]; /* the disagreement map's blob ("" none) */
    json_t *structs, *dice, *tim, *unc;
    long long inf_id;
} seg_request;

/* The fields: vol (NIfTI, required), label (optional), labels, tta, model. 0, or -1 answered. */
static int seg_fields(http_req *r, upload *u, seg_request *q, const char **model)
{
    q->vf = upload_get_file(u, "vol"), q->lf = upload_get_file(u, "label");
    if (!q->vf) {
        http_error(r, 400, "missing_field", "vol",
                   "field 'vol' (the NIfTI volume, curl -F vol=@ct.nii.gz) is required");
        return -1;
    }
    const char *labels = upload_get_field(u, "labels"), *tta_s = upload_get_field(u, "tta");
    *model = upload_get_field(u, "model");
    q->t->out_mode = VOL_LABELS_MMWHS;
    if (labels && !strcmp(labels, "index"))
        q->t->out_mode = VOL_LABELS_INDEX;
    else if (labels && *labels && strcmp(labels, "mmwhs")) {
        http_error(r, 422, "invalid_field", "labels", "labels must be 'mmwhs' or 'index', not '%s'",
                   labels);
        return -1;
    }
    if (parse_bool_field(tta_s, &q->t->tta) < 0) {
        http_error(r, 422, "invalid_field", "tta", "tta must be 0, 1, true or false");
        return -1;
    }
    int lgz = 0;
    if (answer_format(r, upload_get_field(u, "format"), &q->nrrd, &q->seg) < 0 ||
        volume_field(r, upload_get_field(u, "volume"), &q->ro) < 0 ||
        (q->dcm = api_upload_dicom(r, q->vf)) < 0)
        return -1;
    if (q->seg && !q->dcm) {
        http_error(r, 422, "seg_needs_dicom", "format",
                   "a DICOM SEG answer (format=seg, Accept: application/dicom) needs a DICOM "
                   "series as 'vol'");
        return -1;
    }
    if ((!q->dcm && api_upload_nifti(r, q->vf, &q->gz) < 0) ||
        (q->lf && api_upload_nifti(r, q->lf, &lgz) < 0))
        return -1;
    char err[512];
    if (!q->dcm && vol_read_header(q->vf->path, &q->ro, NULL, NULL, err, sizeof err) < 0) {
        http_error(r, 422, "invalid_volume", "vol", "vol: %s", err);
        return -1;
    }
    return 0;
}

/* The model: the one named (id or name), else the promoted one. 0, or -1 answered. */
static int seg_model(http_req *r, const char *model, seg_task *t)
{
    PGresult *res;
    const char *v[1] = {model};
    int named = model && *model;
    if (!(res = api_exec(r, named ? &sql_models_by_ref : &sql_models_default, named ? v : NULL,
                         NULL)))
        return -1;
    if (PQntuples(res) == 0) {
        PQclear(res);
        if (named) {
            http_error(r, 404, "not_found", "model", "model '%s' not found", model);
        } else {
            http_error(r, 503, "no_model", NULL,
                       "no model is promoted: POST /models/{id}/promote (or start with "
                       "--default-model)");
            http_header(r, "Retry-After", "30");
        }
        return -1;
    }
    t->model_id = atoll(PQgetvalue(res, 0, 0));
    svc_abs(r->app->cfg.data_dir, PQgetvalue(res, 0, 1), t->model_path, sizeof t->model_path);
    PQclear(res);
    return 0;
}

/* Runs the task on the engine pool and waits. 0, or -1 answered (503 when the queue is full,
 * the task's own status when it failed). */
static int seg_run(http_req *r, seg_request *q)
{
    seg_task *t = q->t;
    snprintf(t->vol_path, sizeof t->vol_path, "%s", q->vf->path);
    if (q->lf)
        snprintf(t->label_path, sizeof t->label_path, "%s", q->lf->path);
    snprintf(t->out_path, sizeof t->out_path, "%s/tmp/mask-%s%s", r->app->cfg.data_dir, r->id,
             q->nrrd ? ".nrrd"
             : q->gz ? ".nii.gz"
                     : ".nii");
    snprintf(t->unc_path, sizeof t->unc_path, "%s/tmp/unc-%s.nii.gz", r->app->cfg.data_dir, r->id);
    t->has_volume = q->ro.has_volume;
    t->volume = q->ro.volume;
    if (epool_submit(t) < 0) {
        int w, run;
        epool_depth(&w, &run);
        http_error(r, 503, "queue_full", NULL,
                   "the segmentation queue is full (%d waiting, %d running); retry later", w, run);
        http_header(r, "Retry-After", "5");
        return -1;
    }
    epool_wait(t);
    if (t->status) {
        http_error(r, t->status, t->code,
                   t->status == 422 && !strncmp(t->code, "invalid_label", 13) ? "label"
                   : t->status == 422                                         ? "vol"
                                                                              : NULL,
                   "%s%s", !strcmp(t->code, "invalid_volume") ? "vol: " : "", t->err);
        if (t->status == 503 || t->status == 507)
            http_header(r, "Retry-After", "5");
        unlink(t->out_path);
        unlink(t->unc_path);
        return -1;
    }
    return 0;
}

/* The per-structure volumes, the Dice scores (with a label map) and the timings as JSON. */
static void seg_summaries(seg_request *q)
{
    const seg_task *t = q->t;
    double ml = t->spacing[0] * t->spacing[1] * t->spacing[2] / 1000.0;
    q->structs = json_object(), q->dice = t->has_dice ? json_object() : NULL;
    for (int c = 1; c < VOL_NCLASSES; c++) {
        json_object_set_new(
            q->structs, vol_class_names[c],
            json_pack("{s:I,s:f}", "voxels", (json_int_t)t->counts[c], "ml", t->counts[c] * ml));
        if (q->dice)
            json_object_set_new(q->dice, vol_class_names[c], json_real(t->ms[c].dice));
    }
    if (q->dice)
        json_object_set_new(q->dice, "mean", json_real(t->dice_mean));
    q->tim = json_pack("{s:f,s:f,s:f,s:f,s:f,s:f,s:f,s:f,s:f}", "queue", t->queue_ms, "load",
                       t->load_ms, "read", t->read_ms, "prep", t->prep_ms, "net", t->net_ms, "post",
                       t->post_ms, "dice", t->dice_ms, "write", t->write_ms, "total", t->total_ms);
}

/* Stores the mask as a blob and records the inference. 0, or -1 answered. */
static int seg_record(http_req *r, seg_request *q)
{
    const seg_task *t = q->t;
    char err[512];
    long long msize = 0;
    if (svc_sha256_file(t->out_path, q->msha, &msize) < 0 ||
        svc_blob_adopt(r->app->cfg.data_dir, t->out_path, q->msha, q->mrel, sizeof q->mrel, err,
                       sizeof err) < 0) {
        unlink(t->out_path);
        http_error(r, 500, "internal", NULL, "cannot store the mask");
        return -1;
    }
    if (api_unc_store(r, t, q->usha, q->urel, &q->unc) < 0)
        return -1;
    seg_summaries(q);
    char *ss = json_dumps(q->structs, JSON_COMPACT),
         *ds = q->dice ? json_dumps(q->dice, JSON_COMPACT) : NULL,
         *ts = json_dumps(q->tim, JSON_COMPACT),
         *us = q->unc ? json_dumps(q->unc, JSON_COMPACT) : NULL;
    char mid[24], dims[96], sp[128];
    snprintf(mid, sizeof mid, "%lld", t->model_id);
    snprintf(dims, sizeof dims, "{%lld,%lld,%lld}", (long long)t->dims[0], (long long)t->dims[1],
             (long long)t->dims[2]);
    snprintf(sp, sizeof sp, "{%.9g,%.9g,%.9g}", t->spacing[0], t->spacing[1], t->spacing[2]);
    const char *v[14] = {mid, r->id, q->vf->filename, q->vf->sha256, dims, sp, q->msha, q->mrel, ss,
                         ds,  ts,    q->usha,         q->urel,       us};
    PGresult *res = api_exec(r, &sql_inferences_insert, v, NULL);
    free(ss), free(ds), free(ts), free(us);
    if (!res)
        return -1;
    q->inf_id = atoll(PQgetvalue(res, 0, 0));
    PQclear(res);
    return 0;
}

/* The DICOM outputs: the SEG written next to the mask (when asked for, and the answer is not
 * plain JSON, or the series came by DICOMweb) and stored back on the PACS for DICOMweb.
 * 0, or -1 answered. */
static int seg_dicom(http_req *r, seg_request *q, char segpath[1300], char uids[2][65])
{
    const char *dd = r->app->cfg.data_dir;
    char mpath[1400], err[512];
    snprintf(segpath, 1300, "%s/tmp/seg-%s.dcm", dd, r->id);
    q->seg = q->seg && (q->dweb || !wants_json(r));
    if (q->seg) {
        if (svc_nifti_link(dd, q->mrel, mpath, sizeof mpath, err, sizeof err) < 0) {
            http_error(r, 500, "internal", NULL, "cannot read the label map back");
            return -1;
        }
        int wrc = api_write_seg(r, q->vf->path, mpath, segpath, uids);
        unlink(mpath);
        if (wrc < 0)
            return -1;
    }
    if (q->dweb) {
        int src = api_dicomweb_store(r, segpath);
        unlink(segpath);
        if (src < 0)
            return -1;
    }
    return 0;
}

/* The label map (NIfTI, gzip when the upload was; NRRD on request), the SEG, or, with Accept:
 * application/json (and always for DICOMweb), the inference as JSON; headers name the model,
 * the time and the inference. */
static void seg_reply(http_req *r, seg_request *q)
{
    const seg_task *t = q->t;
    char tms[32], iid[24], url[64], mid[24], segpath[1300], uids[2][65] = {"", ""};
    if (seg_dicom(r, q, segpath, uids) < 0)
        return;
    snprintf(mid, sizeof mid, "%lld", t->model_id);
    snprintf(tms, sizeof tms, "%.1f", t->total_ms);
    snprintf(iid, sizeof iid, "%lld", q->inf_id);
    snprintf(url, sizeof url, "/inferences/%lld/mask", q->inf_id);
    if (q->seg && !q->dweb) {
        int rc = api_reply_file(r, segpath, "application/dicom", "seg.dcm");
        unlink(segpath); /* the response holds the open file */
        if (rc < 0)
            return;
        http_header(r, "X-Mkdseg-Seg-Sop-Instance-Uid", uids[0]);
        http_header(r, "X-Mkdseg-Seg-Series-Uid", uids[1]);
    } else if (q->dweb || wants_json(r)) {
        json_t *b = json_pack(
            "{s:I,s:I,s:s,s:[I,I,I],s:[f,f,f],s:O,s:O,s:O,s:s,s:s}", "id", (json_int_t)q->inf_id,
            "model", (json_int_t)t->model_id, "method", t->method, "dims", (json_int_t)t->dims[0],
            (json_int_t)t->dims[1], (json_int_t)t->dims[2], "spacing", t->spacing[0], t->spacing[1],
            t->spacing[2], "structures", q->structs, "dice", q->dice ? q->dice : json_null(),
            "timings_ms", q->tim, "mask_url", url, "mask_sha256", q->msha);
        if (q->dweb)
            json_object_set_new(b, "seg",
                                json_pack("{s:s,s:s,s:s,s:s}", "sop_instance_uid", uids[0],
                                          "series_instance_uid", uids[1], "study_instance_uid",
                                          api_dicomweb_study(r), "stored_to", api_dicomweb_url(r)));
        if (q->unc) {
            char uurl[80];
            snprintf(uurl, sizeof uurl, "/inferences/%lld/uncertainty", q->inf_id);
            json_object_set_new(q->unc, "url", json_string(uurl));
            json_object_set_new(q->unc, "sha256", json_string(q->usha));
        }
        json_object_set(b, "uncertainty", q->unc ? q->unc : json_null());
        http_reply_json(r, 200, b);
    } else {
        char path[1400];
        svc_abs(r->app->cfg.data_dir, q->mrel, path, sizeof path);
        if (api_reply_file(r, path,
                           q->nrrd ? "application/x-nrrd"
                           : q->gz ? "application/gzip"
                                   : "application/octet-stream",
                           q->nrrd ? "seg.nrrd"
                           : q->gz ? "seg.nii.gz"
                                   : "seg.nii") < 0)
            return;
    }
    http_header(r, "X-Mkdseg-Model", mid);
    http_header(r, "X-Mkdseg-Time-Ms", tms);
    http_header(r, "X-Mkdseg-Inference", iid);
    http_header(r, "Location", url);
}

void h_segment(http_req *r)
{
    seg_request q = {.dweb = api_is_dicomweb(r)};
    const char *model = NULL;
    upload *u = q.dweb ? api_dicomweb_pull(r, "vol") : upload_finish(r);
    if (!u)
        return;
    if (!(q.t = calloc(1, sizeof *q.t))) {
        http_error(r, 500, "internal", NULL, "out of memory");
        return;
    }
    if (seg_fields(r, u, &q, &model) == 0 && seg_model(r, model, q.t) == 0 && seg_run(r, &q) == 0 &&
        seg_record(r, &q) == 0)
        seg_reply(r, &q);
    json_decref(q.structs), json_decref(q.dice), json_decref(q.tim), json_decref(q.unc);
    free(q.t);
}

/* ------------------------------------------------------------------------------------------ */
/* GET /inferences/{id}/mask */

void h_inference_mask(http_req *r)
{
    long long id;
    char path[1400], why[128];
    if (api_stored_path(r, "inference", &sql_inferences_mask_path, &id, path, sizeof path) < 0)
        return;
    int gz = 0;
    char magic[4] = {0};
    FILE *mf = fopen(path, "rb");
    if (mf) {
        if (fread(magic, 1, sizeof magic, mf) != sizeof magic)
            magic[0] = 0;
        fclose(mf);
    }
    if (!memcmp(magic, "NRRD", 4)) { /* asked for as NRRD (format=nrrd) */
        api_reply_file(r, path, "application/x-nrrd", "seg.nrrd");
        return;
    }
    svc_nifti_sniff(path, &gz, why, sizeof why);
    api_reply_file(r, path, gz ? "application/gzip" : "application/octet-stream",
                   gz ? "seg.nii.gz" : "seg.nii");
}
