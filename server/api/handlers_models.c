/* handlers_models.c: GET /models, GET /models/{id}, GET /models/{id}/weights, POST /models,
 * POST /models/{id}/promote, POST /models/{id}/evaluate, GET /dice.
 * Model rows are immutable; promotion flips is_default inside one transaction (at most one
 * default: models_one_default). /segment resolves the default per request and the engine's
 * model cache keeps the old model alive for requests in flight (engine_pool.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "handlers.h"
#include "handlers_svc.h"
#include "infer.h"
#include "job.h"
#include "svc.h"

#define MODEL_JSON                                                                                 \
    "json_build_object('id', m.id, 'name', m.name, 'method', m.method, 'modality', m.modality, "   \
    "'config', m.config, 'weights_sha256', m.weights_sha256, 'weights_size', m.weights_size, "     \
    "'job_id', m.job_id, 'is_default', m.is_default, 'created_at', m.created_at, 'datasets', "     \
    "coalesce((SELECT json_agg(json_build_object('dataset_id', md.dataset_id, 'role', md.role) "   \
    "ORDER BY md.role, md.dataset_id) FROM model_datasets md WHERE md.model_id = m.id), '[]'))"

/* Dice summary: per dataset, the mean rows (volume_id NULL) of the newest evaluation. */
#define MODEL_DICE                                                                                 \
    "coalesce((SELECT json_object_agg(x.dataset_id::text, x.s) FROM (SELECT d.dataset_id, "        \
    "json_build_object('job_id', d.job_id, 'created_at', max(d.created_at), 'mean', avg(d.dice), " \
    "'structures', json_object_agg(d.structure, d.dice)) AS s FROM dice_results d WHERE "          \
    "d.model_id = m.id AND d.volume_id IS NULL AND d.job_id IS NOT DISTINCT FROM (SELECT d2.job_id " \
    "FROM dice_results d2 WHERE d2.model_id = m.id AND d2.dataset_id = d.dataset_id ORDER BY "     \
    "d2.id DESC LIMIT 1) GROUP BY d.dataset_id, d.job_id) x), '{}')"

static const db_stmt st_list = {
    "models_list",
    "SELECT json_build_object('models', coalesce(json_agg(" MODEL_JSON " ORDER BY m.id), '[]'))::text "
    "FROM models m",
    0};
static const db_stmt st_get = {
    "models_get",
    "SELECT (jsonb_build_object('metadata', m.metadata, 'dice', " MODEL_DICE ") || (" MODEL_JSON
    ")::jsonb)::text FROM models m WHERE m.id = $1::bigint",
    1};
static const db_stmt st_weights = {"models_weights", "SELECT weights_path FROM models WHERE id = $1::bigint", 1};
static const db_stmt st_insert = {
    "models_insert",
    "WITH m AS (INSERT INTO models (name, method, modality, config, metadata, weights_sha256, "
    "weights_path, weights_size) VALUES (nullif($1, ''), $2, $3, $4::jsonb, $5::jsonb, $6, $7, "
    "$8::bigint) RETURNING *) SELECT m.id, (" MODEL_JSON ")::text FROM m",
    8};
static const db_stmt st_exists = {"models_exists", "SELECT 1 FROM models WHERE id = $1::bigint", 1};
static const db_stmt st_unpromote = {
    "models_unpromote", "UPDATE models SET is_default = false WHERE is_default AND id <> $1::bigint", 1};
static const db_stmt st_promote = {
    "models_promote", "UPDATE models SET is_default = true WHERE id = $1::bigint RETURNING id", 1};
static const db_stmt st_get_plain = {
    "models_get_plain", "SELECT (" MODEL_JSON ")::text FROM models m WHERE m.id = $1::bigint", 1};
static const db_stmt st_dataset_labelled = {
    "models_dataset_labelled",
    "SELECT d.modality, (SELECT count(*) FROM volumes v WHERE v.dataset_id = d.id AND "
    "v.label_path IS NOT NULL) FROM datasets d WHERE d.id = $1::bigint",
    1};
static const db_stmt st_job_json = {
    "models_job_json",
    "SELECT json_build_object('id', j.id, 'kind', j.kind, 'state', j.state, 'params', j.params, "
    "'progress', j.progress, 'attempts', j.attempts, 'error', j.error, 'model_id', "
    "(j.result->>'model_id')::bigint, 'created_at', j.created_at, 'started_at', j.started_at, "
    "'finished_at', j.finished_at)::text FROM jobs j WHERE j.id = $1::bigint",
    1};

void h_models_list(http_req *r) { h_reply_json_row(r, &st_list, NULL, 200, "models"); }

void h_models_get(http_req *r)
{
    long long id;
    char ids[24], what[48];
    if (hs_id(r, "model", &id, ids) < 0)
        return;
    snprintf(what, sizeof what, "model %lld", id);
    const char *v[1] = {ids};
    h_reply_json_row(r, &st_get, v, 200, what);
}

void h_models_weights(http_req *r)
{
    long long id;
    char ids[24];
    if (hs_id(r, "model", &id, ids) < 0)
        return;
    const char *v[1] = {ids};
    PGresult *res = hs_exec(r, &st_weights, v, NULL);
    if (!res)
        return;
    if (PQntuples(res) == 0) {
        PQclear(res);
        http_error(r, 404, "not_found", "id", "model %lld not found", id);
        return;
    }
    char path[1400], fn[64];
    svc_abs(r->app->cfg.data_dir, PQgetvalue(res, 0, 0), path, sizeof path);
    PQclear(res);
    snprintf(fn, sizeof fn, "model-%lld.safetensors", id);
    hs_reply_file(r, path, "application/octet-stream", fn);
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
                   "field 'weights' (a safetensors model file, curl -F weights=@m.safetensors) is required");
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
    if (svc_blob_adopt(r->app->cfg.data_dir, f->path, f->sha256, rel, sizeof rel, err, sizeof err) < 0) {
        json_decref(meta);
        http_error(r, 500, "internal", NULL, "%s", err);
        return;
    }
    f->path[0] = 0; /* now a blob */
    json_t *c = json_object_get(meta, "mkdseg.config"), *mod = json_object_get(meta, "mkdseg.modality");
    char *cfgs = json_is_object(c) ? json_dumps(c, JSON_COMPACT) : strdup("{}");
    char *metas = json_dumps(meta, JSON_COMPACT);
    const char *modality = json_is_string(mod) && (!strcmp(json_string_value(mod), "ct") ||
                                                   !strcmp(json_string_value(mod), "mr"))
                               ? json_string_value(mod) : NULL;
    const char *v[8] = {name ? name : "", method, modality, cfgs, metas, f->sha256, rel, size};
    char state[6] = "";
    PGresult *res = hs_exec(r, &st_insert, v, state);
    free(cfgs), free(metas);
    json_decref(meta);
    if (!res) {
        if (!strcmp(state, "23505"))
            http_error(r, 409, "conflict", "name", "a model named '%s' exists already", name);
        else if (*state)
            http_error(r, 422, "invalid_field", NULL, "rejected by a database constraint (%s)", state);
        return;
    }
    char loc[64];
    snprintf(loc, sizeof loc, "/models/%s", PQgetvalue(res, 0, 0));
    http_reply_json(r, 201, json_loads(PQgetvalue(res, 0, 1), 0, NULL));
    http_header(r, "Location", loc);
    PQclear(res);
}

void h_models_promote(http_req *r)
{
    long long id;
    char ids[24], err[512];
    if (hs_id(r, "model", &id, ids) < 0)
        return;
    db_conn *c = h_db_acquire(r);
    if (!c)
        return;
    const char *v[1] = {ids};
    PGresult *res = NULL;
    if (db_simple(c, "BEGIN", err, sizeof err) < 0 || db_exec(c, &st_unpromote, v, NULL, err, sizeof err) < 0 ||
        db_exec(c, &st_promote, v, &res, err, sizeof err) < 0) {
        h_db_error(r, c, err);
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
        h_db_error(r, c, err);
        db_release(r->app->db, c);
        return;
    }
    db_release(r->app->db, c);
    h_reply_json_row(r, &st_get_plain, v, 200, "model");
}

void h_models_evaluate(http_req *r)
{
    long long id;
    char ids[24], err[512];
    if (hs_id(r, "model", &id, ids) < 0)
        return;
    json_t *d = r->json ? json_object_get(r->json, "dataset") : NULL;
    if (!r->json || !json_is_object(r->json) || !d) {
        http_error(r, 400, "missing_field", "dataset", "a JSON object {\"dataset\": ID} is required");
        return;
    }
    if (!json_is_integer(d) || json_integer_value(d) < 1) {
        http_error(r, 422, "invalid_field", "dataset", "dataset must be a positive integer id");
        return;
    }
    char dss[24];
    snprintf(dss, sizeof dss, "%lld", (long long)json_integer_value(d));
    const char *v[1] = {ids};
    PGresult *res = hs_exec(r, &st_exists, v, NULL);
    if (!res)
        return;
    int found = PQntuples(res);
    PQclear(res);
    if (!found) {
        http_error(r, 404, "not_found", "id", "model %lld not found", id);
        return;
    }
    const char *vd[1] = {dss};
    if (!(res = hs_exec(r, &st_dataset_labelled, vd, NULL)))
        return;
    if (PQntuples(res) == 0) {
        PQclear(res);
        http_error(r, 404, "not_found", "dataset", "dataset %s not found", dss);
        return;
    }
    long long nl = atoll(PQgetvalue(res, 0, 1));
    PQclear(res);
    if (nl == 0) {
        http_error(r, 422, "invalid_field", "dataset", "dataset %s has no labelled volumes to evaluate on", dss);
        return;
    }
    db_conn *c = h_db_acquire(r);
    if (!c)
        return;
    json_t *params = json_pack("{s:I,s:I}", "model_id", (json_int_t)id, "dataset_id", json_integer_value(d));
    long long jid = 0;
    int rc = job_enqueue(db_pg(c), "evaluate", params, 0, 3, &jid, err, sizeof err);
    json_decref(params);
    if (rc < 0) {
        h_db_error(r, c, err);
        db_release(r->app->db, c);
        return;
    }
    db_release(r->app->db, c);
    char js[24], loc[64];
    snprintf(js, sizeof js, "%lld", jid);
    snprintf(loc, sizeof loc, "/jobs/%lld", jid);
    const char *vj[1] = {js};
    h_reply_json_row(r, &st_job_json, vj, 202, "job");
    http_header(r, "Location", loc);
}

/* GET /dice?model=&dataset= */
static const db_stmt st_dice = {
    "dice_list",
    "WITH f AS (SELECT * FROM dice_results WHERE ($1 = '' OR model_id = nullif($1, '')::bigint) "
    "AND ($2 = '' OR dataset_id = nullif($2, '')::bigint)) "
    "SELECT json_build_object("
    "'runs', coalesce((SELECT json_agg(x ORDER BY x.created_at, x.job_id) FROM (SELECT job_id, "
    "model_id, dataset_id, min(created_at) AS created_at, avg(dice) AS mean_dice, avg(assd) AS "
    "mean_assd, avg(hd95) AS mean_hd95, json_object_agg(structure, json_build_object('dice', dice, "
    "'assd', assd, 'hd95', hd95)) AS structures FROM f WHERE volume_id IS NULL GROUP BY job_id, "
    "model_id, dataset_id) x), '[]'), "
    "'results', coalesce((SELECT json_agg(json_build_object('model_id', model_id, 'dataset_id', "
    "dataset_id, 'volume_id', volume_id, 'job_id', job_id, 'structure', structure, 'dice', dice, "
    "'assd', assd, 'hd95', hd95, 'created_at', created_at) ORDER BY id) FROM f), '[]'))::text",
    2};

static int query_id(http_req *r, const char *name, char out[24])
{
    const char *s = http_query(r, name);
    out[0] = 0;
    if (!s || !*s)
        return 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (*end || v < 1) {
        http_error(r, 422, "invalid_field", name, "query parameter '%s' must be a positive integer", name);
        return -1;
    }
    snprintf(out, 24, "%lld", v);
    return 0;
}

void h_dice(http_req *r)
{
    char m[24], d[24];
    if (query_id(r, "model", m) < 0 || query_id(r, "dataset", d) < 0)
        return;
    const char *v[2] = {m, d};
    h_reply_json_row(r, &st_dice, v, 200, "results");
}
