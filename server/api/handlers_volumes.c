/* handlers_volumes.c: POST /datasets/{id}/volumes and DELETE /datasets/{id}.
 *
 * An upload is validated before anything is stored: the image must read as NIfTI (415 when it
 * is not NIfTI at all, 422 with vol_read's reason otherwise), the label map must read, hold
 * only known label values (MM-WHS codes or class indices: vol_labels_to_classes names the
 * others) and lie on the image's grid (vol_geom_same). Both files then become content-
 * addressed blobs (the same file uploaded twice is stored once) and the volume row records
 * dims, spacing, affine and label statistics (voxels and mL per structure). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "handlers.h"
#include "handlers_svc.h"
#include "svc.h"
#include "vol.h"

static const db_stmt st_ds = {"vol_dataset", "SELECT modality FROM datasets WHERE id = $1::bigint", 1};
static const db_stmt st_insert = {
    "vol_insert",
    "INSERT INTO volumes (dataset_id, name, modality, dims, spacing, affine, sha256, path, "
    "size_bytes, label_sha256, label_path, label_stats) VALUES ($1::bigint, $2, $3, $4::int[], "
    "$5::float8[], $6::float8[], $7, $8, $9::bigint, $10, $11, $12::jsonb) RETURNING json_build_object("
    "'id', id, 'dataset_id', dataset_id, 'name', name, 'modality', modality, 'dims', dims, 'spacing', "
    "spacing, 'sha256', sha256, 'size_bytes', size_bytes, 'has_label', label_sha256 IS NOT NULL, "
    "'label_sha256', label_sha256, 'label_stats', label_stats, 'created_at', created_at)::text",
    12};
static const db_stmt st_in_use = {
    "dataset_in_use",
    "SELECT (SELECT count(*) FROM model_datasets WHERE dataset_id = $1::bigint), (SELECT count(*) "
    "FROM jobs WHERE state IN ('queued','running') AND (params->>'target_dataset' = $1::text OR "
    "params->>'assistant_dataset' = $1::text OR params->>'dataset_id' = $1::text)), (SELECT count(*) FROM "
    "datasets WHERE id = $1::bigint)",
    1};
static const db_stmt st_delete = {"dataset_delete", "DELETE FROM datasets WHERE id = $1::bigint", 1};

void h_volumes_add(http_req *r)
{
    long long id;
    char ids[24], err[512];
    if (hs_id(r, "dataset", &id, ids) < 0)
        return;
    upload *u = upload_finish(r);
    if (!u)
        return;
    const char *v1[1] = {ids};
    PGresult *res = hs_exec(r, &st_ds, v1, NULL);
    if (!res)
        return;
    if (PQntuples(res) == 0) {
        PQclear(res);
        http_error(r, 404, "not_found", "id", "dataset %lld not found", id);
        return;
    }
    char modality[4];
    snprintf(modality, sizeof modality, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    upload_file *im = upload_get_file(u, "image"), *lb = upload_get_file(u, "label");
    if (!im) {
        http_error(r, 400, "missing_field", "image", "field 'image' (a NIfTI volume) is required");
        return;
    }
    int gz, lgz;
    if (hs_upload_nifti(r, im, &gz) < 0 || (lb && hs_upload_nifti(r, lb, &lgz) < 0))
        return;
    vol_t v = {0};
    uint8_t *cls = NULL;
    json_t *stats = NULL;
    if (vol_read(im->path, NULL, &v, err, sizeof err) < 0) {
        http_error(r, 422, "invalid_volume", "image", "image: %s", err);
        return;
    }
    double sp[3];
    vol_geom_spacing(&v.geom, sp);
    if (lb) {
        vol_geom lg;
        if (vol_read_labels(lb->path, NULL, VOL_LABELS_AUTO, &lg, &cls, err, sizeof err) < 0) {
            http_error(r, 422, "invalid_label", "label", "label: %s", err);
            goto done;
        }
        if (vol_geom_same(&v.geom, &lg, 1e-3, err, sizeof err) < 0) {
            http_error(r, 422, "invalid_label", "label", "label and image grids differ: %s", err);
            goto done;
        }
        long long cnt[VOL_NCLASSES] = {0};
        int64_t n = v.geom.nx * v.geom.ny * v.geom.nz;
        for (int64_t i = 0; i < n; i++)
            cnt[cls[i] < VOL_NCLASSES ? cls[i] : 0]++;
        double ml = sp[0] * sp[1] * sp[2] / 1000.0;
        stats = json_object();
        for (int c = 1; c < VOL_NCLASSES; c++)
            json_object_set_new(stats, vol_class_names[c],
                                json_pack("{s:I,s:f}", "voxels", (json_int_t)cnt[c], "ml", cnt[c] * ml));
    }
    char dims[96], sps[128], aff[1024], size[32];
    snprintf(dims, sizeof dims, "{%lld,%lld,%lld}", (long long)v.geom.nx, (long long)v.geom.ny, (long long)v.geom.nz);
    snprintf(sps, sizeof sps, "{%.9g,%.9g,%.9g}", sp[0], sp[1], sp[2]);
    size_t off = (size_t)snprintf(aff, sizeof aff, "{");
    for (int i = 0; i < 16; i++)
        off += (size_t)snprintf(aff + off, sizeof aff - off, "%s%.9g", i ? "," : "", v.geom.affine[i / 4][i % 4]);
    snprintf(aff + off, sizeof aff - off, "}");
    snprintf(size, sizeof size, "%lld", im->size);
    char irel[256], lrel[256] = "";
    char lsha[65] = "";
    if (lb)
        snprintf(lsha, sizeof lsha, "%s", lb->sha256);
    if (svc_blob_adopt(r->app->cfg.data_dir, im->path, im->sha256, irel, sizeof irel, err, sizeof err) < 0 ||
        (lb && svc_blob_adopt(r->app->cfg.data_dir, lb->path, lb->sha256, lrel, sizeof lrel, err, sizeof err) < 0)) {
        http_error(r, 500, "internal", NULL, "%s", err);
        goto done;
    }
    im->path[0] = 0;
    if (lb)
        lb->path[0] = 0;
    char *ss = stats ? json_dumps(stats, JSON_COMPACT) : NULL;
    const char *vals[12] = {ids, im->filename, modality, dims, sps, aff, im->sha256, irel, size,
                            lb ? lsha : NULL, lb ? lrel : NULL, ss};
    char state[6] = "";
    res = hs_exec(r, &st_insert, vals, state);
    free(ss);
    if (!res) {
        if (!strcmp(state, "23505"))
            http_error(r, 409, "conflict", "image", "this image is in dataset %lld already", id);
        else if (!strcmp(state, "23503"))
            http_error(r, 404, "not_found", "id", "dataset %lld not found", id);
        else if (*state)
            http_error(r, 422, "invalid_volume", "image", "rejected by a database constraint (%s)", state);
        goto done;
    }
    json_t *j = json_loads(PQgetvalue(res, 0, 0), 0, NULL);
    char loc[64];
    snprintf(loc, sizeof loc, "/datasets/%lld", id);
    PQclear(res);
    http_reply_json(r, 201, j);
    http_header(r, "Location", loc);
done:
    json_decref(stats);
    free(cls);
    vol_free(&v);
}

void h_datasets_delete(http_req *r)
{
    long long id;
    char ids[24];
    if (hs_id(r, "dataset", &id, ids) < 0)
        return;
    const char *v[1] = {ids};
    PGresult *res = hs_exec(r, &st_in_use, v, NULL);
    if (!res)
        return;
    long long models = atoll(PQgetvalue(res, 0, 0)), jobs = atoll(PQgetvalue(res, 0, 1)),
              exists = atoll(PQgetvalue(res, 0, 2));
    PQclear(res);
    if (!exists) {
        http_error(r, 404, "not_found", "id", "dataset %lld not found", id);
        return;
    }
    if (models || jobs) {
        http_error(r, 409, "conflict", "id", "dataset %lld is in use by %lld model(s) and %lld active job(s)", id,
                   models, jobs);
        return;
    }
    char state[6] = "";
    if (!(res = hs_exec(r, &st_delete, v, state))) {
        if (*state)
            http_error(r, 409, "conflict", "id", "dataset %lld is in use (%s)", id, state);
        return;
    }
    PQclear(res);
    http_reply_data(r, 204, NULL, "", 0);
}
