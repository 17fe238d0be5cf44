/* handlers_volumes.c: POST /datasets/{id}/volumes.
 *
 * An upload is validated before anything is stored: the image must read as NIfTI (415 when it
 * is not NIfTI at all, 422 with vol_read's reason otherwise), the label map must read, hold
 * only known label values (MM-WHS codes or class indices: vol_labels_to_classes names the
 * others) and lie on the image's grid (vol_geom_same). Both files then become content-
 * addressed blobs (the same file uploaded twice is stored once) and the volume row records
 * dims, spacing, affine and label statistics (voxels and mL per structure). A DICOM series
 * (handlers_dicom.c) is checked the same way and stored as its NIfTI conversion (float32,
 * the RAS affine of the series), so that training reads every volume alike. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api_dicom.h"
#include "api_util.h"
#include "handlers.h"
#include "sql.h"
#include "svc.h"
#include "vol.h"

/* The modality of dataset ids (must exist). 0, or -1 answered. */
static int vol_dataset(http_req *r, long long id, const char *ids, char modality[4])
{
    const char *v1[1] = {ids};
    char what[64];
    snprintf(what, sizeof what, "dataset %lld", id);
    PGresult *res = api_exec_row(r, &sql_datasets_modality, v1, "id", what);
    if (!res)
        return -1;
    snprintf(modality, 4, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    return 0;
}

/* Reads the label map at path, checks it lies on v's grid and counts voxels and mL per
 * structure into *stats (new reference). 0, or -1 answered. */
static int vol_label_stats(http_req *r, const vol_t *v, const char *path, json_t **stats)
{
    char err[512];
    vol_geom lg;
    uint8_t *cls = NULL;
    int rc = -1;
    if (vol_read_labels(path, NULL, VOL_LABELS_AUTO, &lg, &cls, err, sizeof err) < 0) {
        http_error(r, 422, "invalid_label", "label", "label: %s", err);
        goto done;
    }
    if (vol_geom_same(&v->geom, &lg, 1e-3, err, sizeof err) < 0) {
        http_error(r, 422, "invalid_label", "label", "label and image grids differ: %s", err);
        goto done;
    }
    long long cnt[VOL_NCLASSES] = {0};
    int64_t n = v->geom.nx * v->geom.ny * v->geom.nz;
    for (int64_t i = 0; i < n; i++)
        cnt[cls[i] < VOL_NCLASSES ? cls[i] : 0]++;
    double sp[3];
    vol_geom_spacing(&v->geom, sp);
    double ml = sp[0] * sp[1] * sp[2] / 1000.0;
    *stats = json_object();
    for (int c = 1; c < VOL_NCLASSES; c++)
        json_object_set_new(
            *stats, vol_class_names[c],
            json_pack("{s:I,s:f}", "voxels", (json_int_t)cnt[c], "ml", cnt[c] * ml));
    rc = 0;
done:
    free(cls);
    return rc;
}

/* The volume's geometry as PostgreSQL array literals: dims, spacing, the 4x4 affine. */
static void vol_geom_text(const vol_geom *g, char dims[96], char sps[128], char aff[1024])
{
    double sp[3];
    vol_geom_spacing(g, sp);
    snprintf(dims, 96, "{%lld,%lld,%lld}", (long long)g->nx, (long long)g->ny, (long long)g->nz);
    snprintf(sps, 128, "{%.9g,%.9g,%.9g}", sp[0], sp[1], sp[2]);
    size_t off = (size_t)snprintf(aff, 1024, "{");
    for (int i = 0; i < 16; i++)
        off += (size_t)snprintf(aff + off, 1024 - off, "%s%.9g", i ? "," : "",
                                g->affine[i / 4][i % 4]);
    snprintf(aff + off, 1024 - off, "}");
}

/* Both files become blobs and the volume gets its row; answers 201 with it. */
static void vol_insert(http_req *r, long long id, const char *ids, const char *modality,
                       const vol_t *v, upload_file *im, upload_file *lb, const json_t *stats)
{
    char err[512], dims[96], sps[128], aff[1024], size[32], irel[256], lrel[256] = "",
                                                                       lsha[65] = "";
    vol_geom_text(&v->geom, dims, sps, aff);
    snprintf(size, sizeof size, "%lld", im->size);
    if (lb)
        snprintf(lsha, sizeof lsha, "%s", lb->sha256);
    if (svc_blob_adopt(r->app->cfg.data_dir, im->path, im->sha256, irel, sizeof irel, err,
                       sizeof err) < 0 ||
        (lb && svc_blob_adopt(r->app->cfg.data_dir, lb->path, lb->sha256, lrel, sizeof lrel, err,
                              sizeof err) < 0)) {
        http_error(r, 500, "internal", NULL, "%s", err);
        return;
    }
    im->path[0] = 0;
    if (lb)
        lb->path[0] = 0;
    char *ss = stats ? json_dumps(stats, JSON_COMPACT) : NULL;
    const char *vals[12] = {
        ids,  im->filename,     modality,         dims, sps, aff, im->sha256, irel,
        size, lb ? lsha : NULL, lb ? lrel : NULL, ss};
    char state[6] = "";
    PGresult *res = api_exec(r, &sql_volumes_insert, vals, state);
    free(ss);
    if (!res) {
        if (!strcmp(state, "23505"))
            http_error(r, 409, "conflict", "image", "this image is in dataset %lld already", id);
        else if (!strcmp(state, "23503"))
            http_error(r, 404, "not_found", "id", "dataset %lld not found", id);
        else if (*state)
            http_error(r, 422, "invalid_volume", "image", "rejected by a database constraint (%s)",
                       state);
        return;
    }
    json_t *j = json_loads(PQgetvalue(res, 0, 0), 0, NULL);
    char loc[64];
    snprintf(loc, sizeof loc, "/datasets/%lld", id);
    PQclear(res);
    http_reply_json(r, 201, j);
    http_header(r, "Location", loc);
}

void h_volumes_add(http_req *r)
{
    long long id;
    char ids[24], err[512], modality[4];
    if (api_id(r, "dataset", &id, ids) < 0)
        return;
    upload *u = api_is_dicomweb(r) ? api_dicomweb_pull(r, "image") : upload_finish(r);
    if (!u || vol_dataset(r, id, ids, modality) < 0)
        return;
    upload_file *im = upload_get_file(u, "image"), *lb = upload_get_file(u, "label");
    if (!im) {
        http_error(r, 400, "missing_field", "image",
                   "field 'image' (a NIfTI volume or DICOM series zip) is required");
        return;
    }
    int gz, lgz, is_dcm = api_upload_dicom(r, im);
    if (is_dcm < 0 || (is_dcm && api_dicom_to_nifti(r, im) < 0))
        return;
    if ((!is_dcm && api_upload_nifti(r, im, &gz) < 0) || (lb && api_upload_nifti(r, lb, &lgz) < 0))
        return;
    vol_t v = {0};
    json_t *stats = NULL;
    if (vol_read(im->path, NULL, &v, err, sizeof err) < 0) {
        http_error(r, 422, "invalid_volume", "image", "image: %s", err);
        return;
    }
    if (!lb || vol_label_stats(r, &v, lb->path, &stats) == 0)
        vol_insert(r, id, ids, modality, &v, im, lb, stats);
    json_decref(stats);
    vol_free(&v);
}
