/* handlers_models.c: GET /models, GET /models/{id}, GET /models/{id}/weights, POST /models,
 * POST /models/{id}/promote, POST /models/{id}/evaluate, DELETE /models/{id}.
 * Model rows are immutable; promotion flips is_default inside one transaction (at most one
 * default: models_one_default). /segment resolves the default per request and the engine's
 * model cache keeps the old model alive for requests in flight (engine_pool.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api_util.h"
#include "handlers.h"
#include "infer.h"
#include "job.h"
#include "sql.h"
#include "svc.h"

void h_models_list(http_req *r) { api_reply_json_row(r, &sql_models_list, NULL, 200, "models"); }

void h_models_get(http_req *r) { api_reply_by_id(r, "model", &sql_models_get); }

void h_models_weights(http_req *r)
{
    long long id;
    char path[1400], fn[64];
    if (api_stored_path(r, "model", &sql_models_weights_path, &id, path, sizeof path) < 0)
        return;
    snprintf(fn, sizeof fn, "model-%lld.safetensors", id);
    api_reply_file(r, path, "application/octet-stream", fn);
}

void h_models_upload(http_req *r)
{
    upload *u = upload_finish(r);
    if (!u)
        return;
    upload_file *f = upload_get_file(u, "weights");
    const char *name = upload_get_field(u, "name");
    if (!f) {
        http_error(r, 400, "missing_field", "weights",
                   "field 'weights' (a safetensors model file, curl -F weights=@m.safetensors) is "
                   "required");
        return;
    }
    if (name && strlen(name) > 200) {
        http_error(r, 422, "invalid_field", "name", "name must have at most 200 characters");
        return;
    }
    char err[512];
    unsigned char m8[8] = {0};
    FILE *fp = fopen(f->path, "rb");
    size_t got = fp ? fread(m8, 1, 8, fp) : 0;
    if (fp)
        fclose(fp);
    uint64_t hl = 0;
    memcpy(&hl, m8, 8);
    if (got < 8 || hl < 2 || hl > (uint64_t)f->size) {
        http_error(r, 415, "not_safetensors", "weights",
                   "field 'weights' is not a safetensors file (no valid header length)");
        return;
    }
    infer_model *m = infer_model_load(f->path, nn_backend_cpu(), err, sizeof err);
    if (!m) {
        http_error(r, 422, "invalid_model", "weights", "%s", err);
        return;
    }
    char method[32];
    snprintf(method, sizeof method, "%s", m->method);
    infer_model_free(m);
    json_t *meta = svc_model_metadata(f->path, err, sizeof err);
    if (!meta) {
        http_error(r, 422, "invalid_model", "weights", "%s", err);
        return;
    }
    char rel[256], size[32];
    snprintf(size, sizeof size, "%lld", f->size);
    if (svc_blob_adopt(r->app->cfg.data_dir, f->path, f->sha256, rel, sizeof rel, err, sizeof err) <
        0) {
        json_decref(meta);
        http_error(r, 500, "internal", NULL, "%s", err);
        return;
    }
    f->path[0] = 0; /* now a blob */
    json_t *c = json_object_get(meta, "mkdseg.config");
    char *cfgs = json_is_object(c) ? json_dumps(c, JSON_COMPACT) : strdup("{}");
    char *metas = json_dumps(meta, JSON_COMPACT);
    const char *modality = svc_meta_modality(meta);
    const char *v[8] = {name ? name : "", method, modality, cfgs, metas, f->sha256, rel, size};
    char state[6] = "";
    PGresult *res = api_exec(r, &sql_models_insert, v, state);
    free(cfgs), free(metas);
    json_decref(meta);
    if (!res) {
        if (!strcmp(state, "23505"))
            http_error(r, 409, "conflict", "name", "a model named '%s' exists already", name);
        else if (*state)
            http_error(r, 422, "invalid_field", NULL, "rejected by a database constraint (%s)",
                       state);
        return;
    }
    api_reply_created(r, "/models", res);
}

void h_models_promote(http_req *r)
{
    long long id;
    char ids[24], err[512];
    if (api_id(r, "model", &id, ids) < 0)
        return;
    db_conn *c = api_db_acquire(r);
    if (!c)
        return;
    const char *v[1] = {ids};
    PGresult *res = NULL;
    if (db_simple(c, "BEGIN", err, sizeof err) < 0 ||
        db_exec(c, &sql_models_unpromote, v, NULL, err, sizeof err) < 0 ||
        db_exec(c, &sql_models_promote, v, &res, err, sizeof err) < 0) {
        api_db_error(r, c, err);
        db_simple(c, "ROLLBACK", err, sizeof err);
        db_release(r->app->db, c);
        return;
    }
    if (PQntuples(res) == 0) {
        PQclear(res);
        db_simple(c, "ROLLBACK", err, sizeof err);
        db_release(r->app->db, c);
        http_error(r, 404, "not_found", "id", "model %lld not found", id);
        return;
    }
    PQclear(res);
    if (db_simple(c, "COMMIT", err, sizeof err) < 0) {
        api_db_error(r, c, err);
        db_release(r->app->db, c);
        return;
    }
    db_release(r->app->db, c);
    api_reply_json_row(r, &sql_models_get_plain, v, 200, "model");
}

void h_models_evaluate(http_req *r)
{
    long long id;
    char ids[24];
    if (api_id(r, "model", &id, ids) < 0)
        return;
    json_t *d = r->json ? json_object_get(r->json, "dataset") : NULL;
    if (!r->json || !json_is_object(r->json) || !d) {
        http_error(r, 400, "missing_field", "dataset",
                   "a JSON object {\"dataset\": ID} is required");
        return;
    }
    if (!json_is_integer(d) || json_integer_value(d) < 1) {
        http_error(r, 422, "invalid_field", "dataset", "dataset must be a positive integer id");
        return;
    }
    char dss[24];
    snprintf(dss, sizeof dss, "%lld", (long long)json_integer_value(d));
    const char *v[1] = {ids}, *vd[1] = {dss};
    char what[64];
    snprintf(what, sizeof what, "model %lld", id);
    PGresult *res = api_exec_row(r, &sql_models_exists, v, "id", what);
    if (!res)
        return;
    PQclear(res);
    snprintf(what, sizeof what, "dataset %s", dss);
    if (!(res = api_exec_row(r, &sql_datasets_labelled_count, vd, "dataset", what)))
        return;
    long long nl = atoll(PQgetvalue(res, 0, 1));
    PQclear(res);
    if (nl == 0) {
        http_error(r, 422, "invalid_field", "dataset",
                   "dataset %s has no labelled volumes to evaluate on", dss);
        return;
    }
    api_enqueue_job(
        r, "evaluate",
        json_pack("{s:I,s:I}", "model_id", (json_int_t)id, "dataset_id", json_integer_value(d)),
        &sql_jobs_get_brief);
}

/* A model goes unless it is the default one (promote another first) or a queued or running
 * job uses it; its dice results and dataset links go with it, inferences keep their masks with
 * no model, and its weights blob is removed when nothing else names it. */
void h_models_delete(http_req *r)
{
    long long id;
    PGresult *res = api_row_by_id(r, "model", &sql_models_in_use, &id);
    if (!res)
        return;
    int is_default = PQgetvalue(res, 0, 0)[0] == 't';
    long long jobs = atoll(PQgetvalue(res, 0, 1));
    PQclear(res);
    if (is_default || jobs) {
        if (is_default)
            http_error(r, 409, "conflict", "id",
                       "model %lld is the default model: promote another one first", id);
        else
            http_error(r, 409, "conflict", "id", "model %lld is in use by %lld active job(s)", id,
                       jobs);
        return;
    }
    char ids[24];
    snprintf(ids, sizeof ids, "%lld", id);
    const char *v[1] = {ids};
    if (!(res = api_exec(r, &sql_models_delete, v, NULL)))
        return;
    if (PQntuples(res) == 0) { /* promoted (or deleted) meanwhile */
        PQclear(res);
        http_error(r, 409, "conflict", "id", "model %lld changed meanwhile: try again", id);
        return;
    }
    api_collect_blobs(r, res); /* RETURNING weights_sha256 */
    http_reply_data(r, 204, NULL, "", 0);
}
