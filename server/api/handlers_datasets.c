/* handlers_datasets.c: POST /datasets, GET /datasets, GET /datasets/{id}.
 * The JSON of a dataset is built by PostgreSQL (json_build_object) so that the row and its
 * representation cannot drift apart. Volumes are added by POST /datasets/{id}/volumes
 * (issue 6). */
#include <stdio.h>
#include <string.h>

#include "handlers.h"

#define DATASET_JSON                                                                              \
    "json_build_object('id', d.id, 'name', d.name, 'modality', d.modality, 'description', "       \
    "d.description, 'created_at', d.created_at, 'volumes', coalesce((SELECT json_agg("             \
    "json_build_object('id', v.id, 'name', v.name, 'dims', v.dims, 'spacing', v.spacing, "        \
    "'sha256', v.sha256, 'has_label', v.label_sha256 IS NOT NULL, 'label_stats', v.label_stats) " \
    "ORDER BY v.id) FROM volumes v WHERE v.dataset_id = d.id), '[]'::json))::text"

static const db_stmt st_insert = {
    "datasets_insert",
    "WITH d AS (INSERT INTO datasets (name, modality, description) VALUES ($1, $2, $3) "
    "RETURNING *) SELECT d.id, " DATASET_JSON " FROM d",
    3};
static const db_stmt st_get = {
    "datasets_get", "SELECT " DATASET_JSON " FROM datasets d WHERE d.id = $1::bigint", 1};
static const db_stmt st_list = {
    "datasets_list",
    "SELECT json_build_object('datasets', coalesce(json_agg(json_build_object('id', d.id, "
    "'name', d.name, 'modality', d.modality, 'description', d.description, 'created_at', "
    "d.created_at, 'volume_count', (SELECT count(*) FROM volumes v WHERE v.dataset_id = d.id)) "
    "ORDER BY d.id), '[]'::json))::text FROM datasets d",
    0};

/* Reads a string field: 0 ok (*out may be NULL when optional and absent), -1 answered. */
static int str_field(http_req *r, const char *name, int required, size_t maxlen, const char **out)
{
    json_t *v = json_object_get(r->json, name);
    *out = NULL;
    if (!v || json_is_null(v)) {
        if (!required)
            return 0;
        http_error(r, 400, "missing_field", name, "field '%s' is required", name);
        return -1;
    }
    if (!json_is_string(v)) {
        http_error(r, 422, "invalid_field", name, "field '%s' must be a string", name);
        return -1;
    }
    size_t n = json_string_length(v);
    if ((required && n == 0) || n > maxlen) {
        http_error(r, 422, "invalid_field", name, "field '%s' must have 1 to %zu characters", name,
                   maxlen);
        return -1;
    }
    if (strlen(json_string_value(v)) != n) {
        http_error(r, 422, "invalid_field", name, "field '%s' must not contain NUL characters", name);
        return -1;
    }
    *out = json_string_value(v);
    return 0;
}

void h_datasets_create(http_req *r)
{
    if (!r->json) {
        http_error(r, 400, "missing_body", NULL, "a JSON object {name, modality, description} is required");
        return;
    }
    if (!json_is_object(r->json)) {
        http_error(r, 400, "invalid_body", NULL, "the body must be a JSON object");
        return;
    }
    const char *key;
    json_t *val;
    json_object_foreach(r->json, key, val) {
        if (strcmp(key, "name") && strcmp(key, "modality") && strcmp(key, "description")) {
            http_error(r, 422, "unknown_field", key, "unknown field '%s' (expected name, modality, description)", key);
            return;
        }
    }
    const char *name, *modality, *desc;
    if (str_field(r, "name", 1, 200, &name) < 0 || str_field(r, "modality", 1, 8, &modality) < 0 ||
        str_field(r, "description", 0, 10000, &desc) < 0)
        return;
    if (strcmp(modality, "ct") && strcmp(modality, "mr")) {
        http_error(r, 422, "invalid_field", "modality", "modality must be 'ct' or 'mr', not '%s'", modality);
        return;
    }
    char err[512];
    db_conn *c = h_db_acquire(r);
    if (!c)
        return;
    const char *v[3] = {name, modality, desc ? desc : ""};
    PGresult *res = NULL;
    if (db_exec(c, &st_insert, v, &res, err, sizeof err) < 0) {
        if (!strcmp(db_sqlstate(c), "23505"))
            http_error(r, 409, "conflict", "name", "a dataset named '%s' exists already", name);
        else if (!strcmp(db_sqlstate(c), "23514"))
            http_error(r, 422, "invalid_field", NULL, "rejected by a database constraint: %s", err);
        else
            h_db_error(r, c, err);
        db_release(r->app->db, c);
        return;
    }
    db_release(r->app->db, c);
    char loc[64];
    snprintf(loc, sizeof loc, "/datasets/%s", PQgetvalue(res, 0, 0));
    http_reply_json(r, 201, json_loads(PQgetvalue(res, 0, 1), 0, NULL));
    http_header(r, "Location", loc);
    PQclear(res);
}

void h_datasets_list(http_req *r) { h_reply_json_row(r, &st_list, NULL, 200, "datasets"); }

void h_datasets_get(http_req *r)
{
    long long id;
    if (http_param_id(r, 0, &id) < 0) {
        http_error(r, 404, "not_found", "id", "dataset '%s' not found (ids are positive integers)",
                   r->params[0]);
        return;
    }
    char ids[24];
    snprintf(ids, sizeof ids, "%lld", id);
    const char *v[1] = {ids};
    char what[64];
    snprintf(what, sizeof what, "dataset %lld", id);
    h_reply_json_row(r, &st_get, v, 200, what);
}
