/* handlers_jobs.c: POST /train, GET /jobs, GET /jobs/{id}, DELETE /jobs/{id},
 * GET /jobs/{id}/events (Server-Sent Events).
 *
 * POST /train validates everything a worker would trip on (datasets exist and have the right
 * modality and labelled volumes, the config parses and validates with the engine's own
 * train_config functions, the validation split) and stores the resolved volume ids in the
 * job's params, so a job never depends on a dataset changing after it was queued.
 *
 * The event stream runs on the connection's own thread (thread-per-connection mode): the
 * content reader replays job_events after the client's Last-Event-ID, then waits on
 * LISTEN mkdseg_job_events (its own PostgreSQL connection, not the pool's) and ends after the
 * final state event. A comment line every 15 s keeps proxies from closing the stream. */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handlers.h"
#include "handlers_svc.h"
#include "job.h"
#include "svc.h"
#include "train_config.h"

#define JOB_JSON                                                                                   \
    "json_build_object('id', j.id, 'kind', j.kind, 'state', j.state, 'params', j.params, "         \
    "'progress', j.progress, 'result', j.result, 'attempts', j.attempts, 'worker', j.worker, "     \
    "'cancel_requested', j.cancel_requested, 'error', j.error, 'model_id', "                       \
    "(j.result->>'model_id')::bigint, 'created_at', j.created_at, 'started_at', j.started_at, "    \
    "'finished_at', j.finished_at)"

static const db_stmt st_get = {"jobs_get", "SELECT " JOB_JSON "::text FROM jobs j WHERE j.id = $1::bigint", 1};
static const db_stmt st_list = {
    "jobs_list",
    "SELECT json_build_object('jobs', coalesce(json_agg(x.o ORDER BY x.id DESC), '[]'))::text FROM "
    "(SELECT j.id, " JOB_JSON " AS o FROM jobs j WHERE ($1 = '' OR j.state = $1) ORDER BY j.id DESC "
    "LIMIT 200) x",
    1};
static const db_stmt st_cancel = {
    "jobs_cancel",
    "WITH q AS (UPDATE jobs SET state = 'cancelled', cancel_requested = true, finished_at = now(), "
    "updated_at = now(), error = 'cancelled on request' WHERE id = $1::bigint AND state = 'queued' "
    "RETURNING id), r AS (UPDATE jobs SET cancel_requested = true, updated_at = now() WHERE id = "
    "$1::bigint AND state = 'running' RETURNING id), e AS (INSERT INTO job_events (job_id, type, data) "
    "SELECT id, 'state', '{\"state\":\"cancelled\",\"error\":\"cancelled on request\"}'::jsonb FROM q "
    "UNION ALL SELECT id, 'log', '{\"message\":\"cancel requested\"}'::jsonb FROM r) "
    "SELECT (SELECT state FROM jobs WHERE id = $1::bigint), (SELECT count(*) FROM q) + (SELECT count(*) "
    "FROM r), pg_notify('mkdseg_job_events', $1::text)",
    1};
static const db_stmt st_dataset = {
    "train_dataset",
    "SELECT d.modality, coalesce((SELECT json_agg(v.id ORDER BY v.id) FROM volumes v WHERE "
    "v.dataset_id = d.id AND v.label_path IS NOT NULL), '[]')::text FROM datasets d WHERE d.id = $1::bigint",
    1};

static int state_ok(const char *s)
{
    static const char *const st[] = {"queued", "running", "succeeded", "failed", "cancelled"};
    for (int i = 0; i < 5; i++)
        if (!strcmp(s, st[i]))
            return 1;
    return 0;
}

void h_jobs_list(http_req *r)
{
    const char *s = http_query(r, "state");
    if (s && *s && !state_ok(s)) {
        http_error(r, 422, "invalid_field", "state",
                   "state must be queued, running, succeeded, failed or cancelled, not '%s'", s);
        return;
    }
    const char *v[1] = {s ? s : ""};
    h_reply_json_row(r, &st_list, v, 200, "jobs");
}

void h_jobs_get(http_req *r)
{
    long long id;
    char ids[24], what[32];
    if (hs_id(r, "job", &id, ids) < 0)
        return;
    snprintf(what, sizeof what, "job %lld", id);
    const char *v[1] = {ids};
    h_reply_json_row(r, &st_get, v, 200, what);
}

void h_jobs_cancel(http_req *r)
{
    long long id;
    char ids[24];
    if (hs_id(r, "job", &id, ids) < 0)
        return;
    const char *v[1] = {ids};
    PGresult *res = hs_exec(r, &st_cancel, v, NULL);
    if (!res)
        return;
    if (PQgetisnull(res, 0, 0)) {
        PQclear(res);
        http_error(r, 404, "not_found", "id", "job %lld not found", id);
        return;
    }
    int changed = atoi(PQgetvalue(res, 0, 1));
    char state[16];
    snprintf(state, sizeof state, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    if (!changed) {
        http_error(r, 409, "conflict", "id", "job %lld is %s already: nothing to cancel", id, state);
        return;
    }
    h_reply_json_row(r, &st_get, v, 202, "job");
}

/* ---- POST /train ---- */

/* Reads dataset `field` of the body: 0 ok (*ds_id, modality[3], labelled ids (new ref)),
 * 1 absent, -1 answered. */
static int train_dataset(http_req *r, const char *field, long long *ds_id, char modality[4], json_t **vols)
{
    json_t *d = json_object_get(r->json, field);
    if (!d || json_is_null(d))
        return 1;
    if (!json_is_integer(d) || json_integer_value(d) < 1) {
        http_error(r, 422, "invalid_field", field, "%s must be a dataset id (a positive integer)", field);
        return -1;
    }
    *ds_id = (long long)json_integer_value(d);
    char ids[24];
    snprintf(ids, sizeof ids, "%lld", *ds_id);
    const char *v[1] = {ids};
    PGresult *res = hs_exec(r, &st_dataset, v, NULL);
    if (!res)
        return -1;
    if (PQntuples(res) == 0) {
        PQclear(res);
        http_error(r, 404, "not_found", field, "%s: dataset %lld not found", field, *ds_id);
        return -1;
    }
    snprintf(modality, 4, "%s", PQgetvalue(res, 0, 0));
    *vols = json_loads(PQgetvalue(res, 0, 1), 0, NULL);
    PQclear(res);
    if (json_array_size(*vols) == 0) {
        json_decref(*vols);
        *vols = NULL;
        http_error(r, 422, "invalid_field", field, "%s: dataset %lld has no labelled volumes", field, *ds_id);
        return -1;
    }
    return 0;
}

void h_train(http_req *r)
{
    char err[512];
    if (!r->json || !json_is_object(r->json)) {
        http_error(r, 400, "missing_body", NULL,
                   "a JSON object {target_dataset, assistant_dataset, method, config, validation} is required");
        return;
    }
    const char *key;
    json_t *val;
    json_object_foreach(r->json, key, val) {
        if (strcmp(key, "target_dataset") && strcmp(key, "assistant_dataset") && strcmp(key, "method") &&
            strcmp(key, "config") && strcmp(key, "validation")) {
            http_error(r, 422, "unknown_field", key,
                       "unknown field '%s' (expected target_dataset, assistant_dataset, method, config, validation)", key);
            return;
        }
    }
    if (!json_object_get(r->json, "target_dataset")) {
        http_error(r, 400, "missing_field", "target_dataset", "field 'target_dataset' is required");
        return;
    }
    /* config: the engine's own parser and validator */
    train_config c;
    train_config_default(&c);
    json_t *cfg = json_object_get(r->json, "config");
    if (cfg && !json_is_object(cfg)) {
        http_error(r, 422, "invalid_field", "config", "config must be an object");
        return;
    }
    const char *f = NULL;
    if (cfg && train_config_from_json(&c, cfg, err, sizeof err, &f) < 0) {
        char fld[80];
        snprintf(fld, sizeof fld, "config.%s", f ? f : "");
        http_error(r, 422, "invalid_field", f ? fld : "config", "config: %s", err);
        return;
    }
    json_t *meth = json_object_get(r->json, "method");
    if (meth) {
        const char *ms = json_string_value(meth);
        char norm[40];
        snprintf(norm, sizeof norm, "%s", ms ? ms : "");
        for (char *q = norm; *q; q++)
            if (*q == '_')
                *q = '-';
        if (!ms || train_method_parse(norm, &c.method) < 0) {
            http_error(r, 422, "invalid_field", "method",
                       "method must be one of mkd, baseline, joint, finetune, mkd-no-iam, mkd-no-kd-s2r, mkd-no-kd-r2s");
            return;
        }
    }
    if (train_config_validate(&c, err, sizeof err) < 0) {
        http_error(r, 422, "invalid_field", "config", "config: %s", err);
        return;
    }
    long long tid = 0, aid = 0;
    char tmod[4] = "", amod[4] = "";
    json_t *tvols = NULL, *avols = NULL;
    int rc = train_dataset(r, "target_dataset", &tid, tmod, &tvols);
    if (rc != 0)
        return;
    rc = train_dataset(r, "assistant_dataset", &aid, amod, &avols);
    if (rc < 0) {
        json_decref(tvols);
        return;
    }
    if (c.method != TM_BASELINE && !avols) {
        json_decref(tvols);
        http_error(r, 422, "missing_field", "assistant_dataset", "method %s needs an assistant_dataset",
                   train_method_name(c.method));
        return;
    }
    /* validation: explicit volume ids of the target dataset, or a fraction of it (the last ones) */
    json_t *valid = json_object_get(r->json, "validation"), *vvols = json_array(), *train = json_array();
    size_t nt = json_array_size(tvols), i;
    json_t *x;
    if (valid && json_is_array(valid)) {
        json_array_foreach(valid, i, x) {
            int found = 0;
            size_t k;
            json_t *y;
            json_array_foreach(tvols, k, y) found |= json_is_integer(x) && json_integer_value(x) == json_integer_value(y);
            if (!found) {
                http_error(r, 422, "invalid_field", "validation",
                           "validation volume %s is not a labelled volume of the target dataset",
                           json_is_integer(x) ? "id" : "(not an integer)");
                goto fail;
            }
            json_array_append(vvols, x);
        }
        json_array_foreach(tvols, i, x) {
            int in = 0;
            size_t k;
            json_t *y;
            json_array_foreach(vvols, k, y) in |= json_integer_value(x) == json_integer_value(y);
            if (!in)
                json_array_append(train, x);
        }
    } else if (valid && json_is_number(valid)) {
        double fr = json_number_value(valid);
        if (!(fr > 0 && fr < 1)) {
            http_error(r, 422, "invalid_field", "validation", "a validation fraction must be in (0, 1)");
            goto fail;
        }
        size_t nv = (size_t)(fr * (double)nt + 0.5);
        if (nv < 1)
            nv = 1;
        json_array_foreach(tvols, i, x) json_array_append(i + nv >= nt ? vvols : train, x);
    } else if (valid && !json_is_null(valid)) {
        http_error(r, 422, "invalid_field", "validation", "validation must be an array of volume ids or a fraction");
        goto fail;
    } else {
        json_array_extend(train, tvols);
    }
    if (json_array_size(train) == 0) {
        http_error(r, 422, "invalid_field", "validation", "no target volume is left for training");
        goto fail;
    }
    if (!avols)
        avols = json_array();
    char *cs = train_config_to_json(&c);
    json_t *cj = json_loads(cs, 0, NULL);
    free(cs);
    json_t *params = json_pack("{s:I,s:o,s:s,s:o,s:O,s:O,s:O,s:s,s:s}", "target_dataset", (json_int_t)tid,
                               "assistant_dataset", aid ? json_integer(aid) : json_null(), "method",
                               train_method_name(c.method), "config", cj ? cj : json_object(), "target_volumes",
                               train, "assistant_volumes", avols, "validation_volumes", vvols,
                               "target_modality", tmod, "assistant_modality", *amod ? amod : "mr");
    db_conn *conn = h_db_acquire(r);
    if (!conn) {
        json_decref(params);
        goto fail;
    }
    long long jid = 0;
    rc = job_enqueue(db_pg(conn), "train", params, 0, 3, &jid, err, sizeof err);
    json_decref(params);
    if (rc < 0) {
        h_db_error(r, conn, err);
        db_release(r->app->db, conn);
        goto fail;
    }
    db_release(r->app->db, conn);
    char js[24], loc[64];
    snprintf(js, sizeof js, "%lld", jid);
    snprintf(loc, sizeof loc, "/jobs/%lld", jid);
    const char *v[1] = {js};
    h_reply_json_row(r, &st_get, v, 202, "job");
    http_header(r, "Location", loc);
fail:
    json_decref(tvols);
    json_decref(avols);
    json_decref(vvols);
    json_decref(train);
}

/* ---- GET /jobs/{id}/events ---- */

typedef struct {
    app *a;
    PGconn *pg;
    char ids[24];
    long long last_event;
    char *buf;
    size_t len, off;
    int final;        /* the final state was sent */
    int keepalive;    /* waits without news */
} sse_state;

static void sse_free(void *cls)
{
    sse_state *s = cls;
    if (s->pg)
        PQfinish(s->pg);
    free(s->buf);
    free(s);
}

/* Appends the events after last_event to s->buf. -1 on a database error. */
static int sse_fetch(sse_state *s)
{
    char err[256], last[24];
    snprintf(last, sizeof last, "%lld", s->last_event);
    const char *v[2] = {s->ids, last};
    PGresult *r = svc_q(s->pg,
                        "SELECT e.id, e.type, e.data::text, (e.type = 'state' AND e.data->>'state' IN "
                        "('succeeded','failed','cancelled')) FROM job_events e WHERE e.job_id = $1::bigint "
                        "AND e.id > $2::bigint ORDER BY e.id LIMIT 500",
                        2, v, err, sizeof err);
    if (!r)
        return -1;
    FILE *f = NULL;
    char *text = NULL;
    size_t tl = 0;
    if (PQntuples(r) > 0 && (f = open_memstream(&text, &tl))) {
        for (int i = 0; i < PQntuples(r); i++) {
            fprintf(f, "id: %s\nevent: %s\ndata: %s\n\n", PQgetvalue(r, i, 0), PQgetvalue(r, i, 1), PQgetvalue(r, i, 2));
            s->last_event = atoll(PQgetvalue(r, i, 0));
            if (!strcmp(PQgetvalue(r, i, 3), "t"))
                s->final = 1;
        }
        fclose(f);
        free(s->buf);
        s->buf = text;
        s->len = tl;
        s->off = 0;
    }
    PQclear(r);
    return 0;
}

static ssize_t sse_read(void *cls, uint64_t pos, char *out, size_t max)
{
    (void)pos;
    sse_state *s = cls;
    for (;;) {
        if (s->off < s->len) {
            size_t n = s->len - s->off < max ? s->len - s->off : max;
            memcpy(out, s->buf + s->off, n);
            s->off += n;
            return (ssize_t)n;
        }
        if (s->final || atomic_load(&s->a->draining))
            return MHD_CONTENT_READER_END_OF_STREAM;
        if (sse_fetch(s) < 0)
            return MHD_CONTENT_READER_END_WITH_ERROR;
        if (s->off < s->len)
            continue;
        if (s->final)
            return MHD_CONTENT_READER_END_OF_STREAM;
        /* wait for a notification (or 1 s) */
        struct pollfd p = {PQsocket(s->pg), POLLIN, 0};
        poll(&p, 1, 1000);
        PQconsumeInput(s->pg);
        PGnotify *n;
        int news = 0;
        while ((n = PQnotifies(s->pg))) {
            news |= !strcmp(n->extra, s->ids);
            PQfreemem(n);
        }
        if (!news && ++s->keepalive >= 15) {
            s->keepalive = 0;
            static const char ka[] = ": keep-alive\n\n";
            size_t n2 = sizeof ka - 1 < max ? sizeof ka - 1 : max;
            memcpy(out, ka, n2);
            return (ssize_t)n2;
        }
    }
}

void h_jobs_events(http_req *r)
{
    long long id;
    char err[512];
    sse_state *s = calloc(1, sizeof *s);
    if (!s) {
        http_error(r, 500, "internal", NULL, "out of memory");
        return;
    }
    s->a = r->app;
    if (hs_id(r, "job", &id, s->ids) < 0) {
        free(s);
        return;
    }
    const char *lei = http_get_header(r, "Last-Event-ID");
    s->last_event = lei ? atoll(lei) : 0;
    if (!(s->pg = db_connect(r->app->cfg.database_url, 3, err, sizeof err))) {
        free(s);
        http_error(r, 503, "database_unavailable", NULL, "%s", err);
        http_header(r, "Retry-After", "5");
        return;
    }
    const char *v[1] = {s->ids};
    PGresult *res = svc_q(s->pg, "SELECT 1 FROM jobs WHERE id = $1::bigint", 1, v, err, sizeof err);
    PGresult *l = res ? svc_q(s->pg, "LISTEN mkdseg_job_events", 0, NULL, err, sizeof err) : NULL;
    if (!res || !l) {
        PQclear(res);
        sse_free(s);
        http_error(r, 503, "database_unavailable", NULL, "%s", err);
        return;
    }
    PQclear(l);
    int found = PQntuples(res);
    PQclear(res);
    if (!found) {
        sse_free(s);
        http_error(r, 404, "not_found", "id", "job %lld not found", id);
        return;
    }
    struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, sse_read, s, sse_free);
    if (!resp) {
        sse_free(s);
        http_error(r, 500, "internal", NULL, "cannot create the stream");
        return;
    }
    if (r->resp)
        MHD_destroy_response(r->resp);
    r->resp = resp;
    r->status = 200;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
}
