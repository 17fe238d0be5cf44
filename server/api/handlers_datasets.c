/* handlers_datasets.c: POST /datasets, GET /datasets, GET /datasets/{id}, DELETE /datasets/{id}.
 * The JSON of a dataset is built by PostgreSQL (json_build_object) so that the row and its
 * representation cannot drift apart. Volumes are added by POST /datasets/{id}/volumes
 * (handlers_volumes.c). A dataset is deleted only when no model and no active job uses it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_util.h"
#include "handlers.h"
#include "prep.h"
#include "sql.h"

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
        http_error(r, 422, "invalid_field", name, "field '%s' must not contain NUL characters",
                   name);
        return -1;
    }
    *out = json_string_value(v);
    return 0;
}

void h_datasets_create(http_req *r)
{
    if (!r->json) {
        http_error(r, 400, "missing_body", NULL,
                   "a JSON object {name, modality, description} is required");
        return;
    }
    if (!json_is_object(r->json)) {
        http_error(r, 400, "invalid_body", NULL, "the body must be a JSON object");
        return;
    }
    const char *key;
    json_t *val;
    json_object_foreach (r->json, key, val) {
        if (strcmp(key, "name") && strcmp(key, "modality") && strcmp(key, "description")) {
            http_error(r, 422, "unknown_field", key,
                       "unknown field '%s' (expected name, modality, description)", key);
            return;
        }
    }
    const char *name, *modality, *desc;
    if (str_field(r, "name", 1, 200, &name) < 0 || str_field(r, "modality", 1, 8, &modality) < 0 ||
        str_field(r, "description", 0, 10000, &desc) < 0)
        return;
    prep_modality m;
    if (prep_modality_parse(modality, &m) < 0) {
        http_error(r, 422, "invalid_field", "modality", "modality must be 'ct' or 'mr', not '%s'",
                   modality);
        return;
    }
    char err[512];
    db_conn *c = api_db_acquire(r);
    if (!c)
        return;
    const char *v[3] = {name, modality, desc ? desc : ""};
    PGresult *res = NULL;
    if (db_exec(c, &sql_datasets_insert, v, &res, err, sizeof err) < 0) {
        if (!strcmp(db_sqlstate(c), "23505"))
            http_error(r, 409, "conflict", "name", "a dataset named '%s' exists already", name);
        else if (!strcmp(db_sqlstate(c), "23514"))
            http_error(r, 422, "invalid_field", NULL, "rejected by a database constraint: %s", err);
        else
            api_db_error(r, c, err);
        db_release(r->app->db, c);
        return;
    }
    db_release(r->app->db, c);
    api_reply_created(r, "/datasets", res);
}

void h_datasets_list(http_req *r)
{
    api_reply_json_row(r, &sql_datasets_list, NULL, 200, "datasets");
}

void h_datasets_get(http_req *r) { api_reply_by_id(r, "dataset", &sql_datasets_get); }

void h_datasets_delete(http_req *r)
{
    long long id;
    char ids[24];
    PGresult *res = api_exec_by_id(r, "dataset", &sql_datasets_in_use, &id, ids);
    if (!res)
        return;
    const char *v[1] = {ids};
    long long models = atoll(PQgetvalue(res, 0, 0)), jobs = atoll(PQgetvalue(res, 0, 1)),
              exists = atoll(PQgetvalue(res, 0, 2));
    PQclear(res);
    if (!exists) {
        http_error(r, 404, "not_found", "id", "dataset %lld not found", id);
        return;
    }
    if (models || jobs) {
        http_error(r, 409, "conflict", "id",
                   "dataset %lld is in use by %lld model(s) and %lld active job(s)", id, models,
                   jobs);
        return;
    }
    char state[6] = "";
    PGresult *blobs = api_exec(r, &sql_blobs_of_dataset, v, NULL);
    if (!blobs)
        return;
    if (!(res = api_exec(r, &sql_datasets_delete, v, state))) {
        if (*state)
            http_error(r, 409, "conflict", "id", "dataset %lld is in use (%s)", id, state);
        PQclear(blobs);
        return;
    }
    PQclear(res);
    api_collect_blobs(r, blobs); /* the volumes' blobs that no other row names */
    http_reply_data(r, 204, NULL, "", 0);
}
