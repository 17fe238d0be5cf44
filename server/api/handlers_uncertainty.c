/* handlers_uncertainty.c: the disagreement map of an ensemble inference. POST /segment (on a
 * two-member model) stores the map the engine wrote as a blob and records its summary;
 * GET /inferences/{id}/uncertainty answers the map as a gzip float32 NIfTI on the input grid.
 *
 * The value at a voxel is the Jensen-Shannon divergence, in bits, between the class
 * probabilities of the two segmentors (S_syn, S_real): 0 where they agree exactly, 1 where
 * each puts all its mass on a different class. It shows where the two networks trained on
 * different views of the data differ; it is not a calibrated probability of error. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "engine_pool.h"
#include "api_ui.h"
#include "api_util.h"
#include "sql.h"
#include "handlers.h"
#include "svc.h"

int api_unc_store(http_req *r, const seg_task *t, char sha[65], char rel[256], json_t **summary)
{
    *summary = NULL;
    sha[0] = rel[0] = 0;
    if (!t->has_unc)
        return 0;
    char err[512];
    long long size = 0;
    if (svc_sha256_file(t->unc_path, sha, &size) < 0 ||
        svc_blob_adopt(r->app->cfg.data_dir, t->unc_path, sha, rel, 256, err, sizeof err) < 0) {
        unlink(t->unc_path);
        http_error(r, 500, "internal", NULL, "cannot store the uncertainty map");
        return -1;
    }
    json_t *st = json_object();
    for (int c = 1; c < VOL_NCLASSES; c++)
        json_object_set_new(st, vol_class_names[c], json_real(t->unc_mean[c]));
    *summary = json_pack("{s:s,s:f,s:o}", "measure", "js_divergence_bits", "mean", t->unc_all,
                         "structures", st);
    return 0;
}

void h_inference_uncertainty(http_req *r)
{
    long long id;
    PGresult *res = api_row_by_id(r, "inference", &sql_inferences_uncertainty_path, &id);
    if (!res)
        return;
    if (PQgetisnull(res, 0, 0)) {
        PQclear(res);
        http_error(r, 404, "no_uncertainty", "id",
                   "inference %lld has no uncertainty map: its model has one segmentor (only an "
                   "ensemble of two, method mkd, has one)",
                   id);
        return;
    }
    char path[1400];
    svc_abs(r->app->cfg.data_dir, PQgetvalue(res, 0, 0), path, sizeof path);
    PQclear(res);
    api_reply_file(r, path, "application/gzip", "uncertainty.nii.gz");
}
