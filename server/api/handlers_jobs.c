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

#include "api_util.h"
#include "handlers.h"
#include "job.h"
#include "sql.h"
#include "svc.h"
#include "train_config.h"
#include "train_params.h"

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
    api_reply_json_row(r, &sql_jobs_list, v, 200, "jobs");
}

void h_jobs_get(http_req *r) { api_reply_by_id(r, "job", &sql_jobs_get); }

void h_jobs_cancel(http_req *r)
{
    long long id;
    char ids[24];
    PGresult *res = api_exec_by_id(r, "job", &sql_jobs_cancel, &id, ids);
    if (!res)
        return;
    const char *v[1] = {ids};
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
        http_error(r, 409, "conflict", "id", "job %lld is %s already: nothing to cancel", id,
                   state);
        return;
    }
    api_reply_json_row(r, &sql_jobs_get, v, 202, "job");
}

/* ---- POST /train ---- */

/* Reads dataset `field` of the body: 0 ok (*ds_id, its modality, its labelled volumes), 1 absent,
 * -1 answered. */
static int train_dataset(http_req *r, const char *field, long long *ds_id, prep_modality *modality,
                         train_ids *vols)
{
    json_t *d = json_object_get(r->json, field);
    if (!d || json_is_null(d))
        return 1;
    if (!json_is_integer(d) || json_integer_value(d) < 1) {
        http_error(r, 422, "invalid_field", field, "%s must be a dataset id (a positive integer)",
                   field);
        return -1;
    }
    *ds_id = (long long)json_integer_value(d);
    char ids[24];
    snprintf(ids, sizeof ids, "%lld", *ds_id);
    const char *v[1] = {ids};
    char what[96];
    snprintf(what, sizeof what, "%s: dataset %lld", field, *ds_id);
    PGresult *res = api_exec_row(r, &sql_datasets_labelled_volumes, v, field, what);
    if (!res)
        return -1;
    json_t *a = json_loads(PQgetvalue(res, 0, 1), 0, NULL);
    int ok = prep_modality_parse(PQgetvalue(res, 0, 0), modality) == 0 &&
             train_ids_from_json(vols, a) == 0;
    PQclear(res);
    json_decref(a);
    if (!ok) {
        http_error(r, 500, "internal", NULL, "the database returned a dataset it should not hold");
        return -1;
    }
    if (vols->n == 0) {
        http_error(r, 422, "invalid_field", field, "%s: dataset %lld has no labelled volumes",
                   field, *ds_id);
        return -1;
    }
    return 0;
}

/* The body is an object of known fields with a target_dataset. 0, or -1 answered. */
static int train_body(http_req *r)
{
    if (!r->json || !json_is_object(r->json)) {
        http_error(r, 400, "missing_body", NULL,
                   "a JSON object {target_dataset, assistant_dataset, method, config, validation} "
                   "is required");
        return -1;
    }
    const char *key;
    json_t *val;
    json_object_foreach (r->json, key, val) {
        if (strcmp(key, "target_dataset") && strcmp(key, "assistant_dataset") &&
            strcmp(key, "method") && strcmp(key, "config") && strcmp(key, "validation")) {
            http_error(r, 422, "unknown_field", key,
                       "unknown field '%s' (expected target_dataset, assistant_dataset, method, "
                       "config, validation)",
                       key);
            return -1;
        }
    }
    if (!json_object_get(r->json, "target_dataset")) {
        http_error(r, 400, "missing_field", "target_dataset", "field 'target_dataset' is required");
        return -1;
    }
    return 0;
}

/* config and method through the engine's own parser and validator. 0, or -1 answered. */
static int train_body_config(http_req *r, train_config *c)
{
    char err[512];
    train_config_default(c);
    json_t *cfg = json_object_get(r->json, "config");
    if (cfg && !json_is_object(cfg)) {
        http_error(r, 422, "invalid_field", "config", "config must be an object");
        return -1;
    }
    const char *f = NULL;
    if (cfg && train_config_from_json(c, cfg, err, sizeof err, &f) < 0) {
        char fld[80];
        snprintf(fld, sizeof fld, "config.%s", f ? f : "");
        http_error(r, 422, "invalid_field", f ? fld : "config", "config: %s", err);
        return -1;
    }
    json_t *meth = json_object_get(r->json, "method");
    if (meth) {
        const char *ms = json_string_value(meth);
        char norm[40];
        snprintf(norm, sizeof norm, "%s", ms ? ms : "");
        for (char *q = norm; *q; q++)
            if (*q == '_')
                *q = '-';
        if (!ms || train_method_parse(norm, &c->method) < 0) {
            char names[256];
            size_t off = 0;
            for (int i = 0; i < TM_COUNT && off < sizeof names; i++)
                off += (size_t)snprintf(names + off, sizeof names - off, "%s%s", i ? ", " : "",
                                        train_method_name((train_method)i));
            http_error(r, 422, "invalid_field", "method", "method must be one of %s", names);
            return -1;
        }
    }
    if (train_config_validate(c, err, sizeof err) < 0) {
        http_error(r, 422, "invalid_field", "config", "config: %s", err);
        return -1;
    }
    if (c->iam == TI_ORACLE) { /* the paired renderings exist only for phantom data, on the CLI */
        http_error(r, 422, "invalid_field", "config.iam",
                   "iam 'oracle' is a research setting for phantom data: it needs the assistant "
                   "volumes' paired renderings (mkdseg phantom --paired-ct, mkdseg train "
                   "--assistant-oracle), which a dataset does not hold");
        return -1;
    }
    return 0;
}

/* The datasets and the validation split into p. 0, or -1 answered. */
static int train_body_datasets(http_req *r, train_params *p)
{
    char err[256];
    train_ids all = {0};
    int rc = -1;
    p->assistant_modality = PREP_MR;
    if (train_dataset(r, "target_dataset", &p->target_dataset, &p->target_modality, &all) != 0 ||
        train_dataset(r, "assistant_dataset", &p->assistant_dataset, &p->assistant_modality,
                      &p->assistant_volumes) < 0)
        goto done;
    if (p->config.method != TM_BASELINE && !p->assistant_dataset) {
        http_error(r, 422, "missing_field", "assistant_dataset",
                   "method %s needs an assistant_dataset", train_method_name(p->config.method));
        goto done;
    }
    if (train_split_validation(json_object_get(r->json, "validation"), &all, &p->target_volumes,
                               &p->validation_volumes, err, sizeof err) < 0) {
        http_error(r, 422, "invalid_field", "validation", "%s", err);
        goto done;
    }
    rc = 0;
done:
    free(all.id);
    return rc;
}

void h_train(http_req *r)
{
    train_params p = {0};
    if (train_body(r) < 0 || train_body_config(r, &p.config) < 0 || train_body_datasets(r, &p) < 0)
        goto done;
    api_enqueue_job(r, "train", train_params_to_json(&p), &sql_jobs_get);
done:
    train_params_free(&p);
}

/* ---- GET /jobs/{id}/events ---- */

typedef struct {
    app *a;
    PGconn *pg;
    char ids[24];
    long long last_event;
    char *buf;
    size_t len, off;
    int final;     /* the final state was sent */
    int keepalive; /* waits without news */
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
    PGresult *r = db_query(s->pg, &sql_job_events_after, v, err, sizeof err);
    if (!r)
        return -1;
    FILE *f = NULL;
    char *text = NULL;
    size_t tl = 0;
    if (PQntuples(r) > 0 && (f = open_memstream(&text, &tl))) {
        for (int i = 0; i < PQntuples(r); i++) {
            fprintf(f, "id: %s\nevent: %s\ndata: %s\n\n", PQgetvalue(r, i, 0), PQgetvalue(r, i, 1),
                    PQgetvalue(r, i, 2));
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
    if (api_id(r, "job", &id, s->ids) < 0) {
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
    PGresult *res = db_query(s->pg, &sql_jobs_exists, v, err, sizeof err);
    PGresult *l = res ? db_query(s->pg, &sql_job_events_listen, NULL, err, sizeof err) : NULL;
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
    struct MHD_Response *resp =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, sse_read, s, sse_free);
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
