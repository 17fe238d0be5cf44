/* handlers_ops.c: GET /healthz, /readyz, /metrics, /version, and helpers shared by handlers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nn.h"
#include "db_migrate.h"
#include "handlers.h"
#include "log.h"
#include "metrics.h"

db_conn *h_db_acquire(http_req *r)
{
    char err[512];
    db_conn *c = db_acquire(r->app->db, 2000, err, sizeof err);
    if (!c) {
        http_error(r, 503, "database_unavailable", NULL, "%s", err);
        http_header(r, "Retry-After", "5");
    }
    return c;
}

void h_db_error(http_req *r, db_conn *c, const char *err)
{
    if (!db_pg(c) || PQstatus(db_pg(c)) != CONNECTION_OK || !*db_sqlstate(c) ||
        !strncmp(db_sqlstate(c), "08", 2) || !strncmp(db_sqlstate(c), "57P", 3)) {
        http_error(r, 503, "database_unavailable", NULL, "%s", err);
        http_header(r, "Retry-After", "5");
    } else {
        http_error(r, 500, "internal", NULL, "%s", err);
    }
}

void h_reply_json_row(http_req *r, const db_stmt *st, const char *const *values, int status,
                      const char *what)
{
    char err[512];
    db_conn *c = h_db_acquire(r);
    if (!c)
        return;
    PGresult *res = NULL;
    if (db_exec(c, st, values, &res, err, sizeof err) < 0) {
        h_db_error(r, c, err);
        db_release(r->app->db, c);
        return;
    }
    db_release(r->app->db, c);
    if (PQntuples(res) < 1) {
        http_error(r, 404, "not_found", NULL, "%s not found", what);
    } else {
        /* re-serialised compactly, keys in PostgreSQL's order */
        json_t *j = json_loads(PQgetvalue(res, 0, 0), 0, NULL);
        if (j)
            http_reply_json(r, status, j);
        else
            http_error(r, 500, "internal", NULL, "the database returned invalid JSON");
    }
    PQclear(res);
}

void h_healthz(http_req *r)
{
    http_reply_json(r, 200, json_pack("{s:s,s:I}", "status", "ok", "uptime_s",
                                      (json_int_t)(time(NULL) - r->app->started)));
}

static const db_stmt st_ping = {"ops_ping", "SELECT 1", 0};

void h_readyz(http_req *r)
{
    char err[512];
    if (atomic_load(&r->app->draining)) {
        http_error(r, 503, "shutting_down", NULL, "the server is shutting down");
        http_header(r, "Retry-After", "5");
        return;
    }
    db_conn *c = db_acquire(r->app->db, 2000, err, sizeof err);
    if (!c) {
        http_error(r, 503, "database_unavailable", NULL, "%s", err);
        http_header(r, "Retry-After", "5");
        return;
    }
    if (db_exec(c, &st_ping, NULL, NULL, err, sizeof err) < 0) {
        db_release(r->app->db, c);
        http_error(r, 503, "database_unavailable", NULL, "%s", err);
        http_header(r, "Retry-After", "5");
        return;
    }
    int rc = db_migrate_check(db_pg(c), db_migrations_embedded, err, sizeof err);
    db_release(r->app->db, c);
    if (rc < 0) {
        http_error(r, 503, "migrations_pending", NULL, "%s", err);
        http_header(r, "Retry-After", "5");
        return;
    }
    int n = 0;
    while (db_migrations_embedded[n].name)
        n++;
    http_reply_json(r, 200, json_pack("{s:s,s:s,s:i}", "status", "ready", "database", "ok",
                                      "migrations", n));
}

static const char *route_label(int i) { return http_routes[i].pattern; }
static const char *route_method(int i) { return http_routes[i].method; }

static const db_stmt st_jobs_by_state = {
    "ops_jobs_by_state",
    "SELECT s.state, count(j.id) FROM unnest(ARRAY['queued','running','succeeded','failed',"
    "'cancelled']) AS s(state) LEFT JOIN jobs j ON j.state = s.state GROUP BY s.state ORDER BY 1",
    0};

void h_metrics(http_req *r)
{
    char *text = NULL, err[512];
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) {
        http_error(r, 500, "internal", NULL, "out of memory");
        return;
    }
    metrics_write(f, http_nroutes, route_label, route_method);
    int size = 0, in_use = 0, connected = 0;
    db_pool_stats(r->app->db, &size, &in_use, &connected);
    fprintf(f, "# HELP mkdseg_db_pool_connections PostgreSQL connections of this process.\n"
               "# TYPE mkdseg_db_pool_connections gauge\n"
               "mkdseg_db_pool_connections{state=\"open\"} %d\n"
               "mkdseg_db_pool_connections{state=\"in_use\"} %d\n"
               "mkdseg_db_pool_connections{state=\"max\"} %d\n", connected, in_use, size);
    int db_up = 0;
    db_conn *c = db_acquire(r->app->db, 500, err, sizeof err);
    PGresult *res = NULL;
    if (c && db_exec(c, &st_jobs_by_state, NULL, &res, err, sizeof err) == 0) {
        db_up = 1;
        fprintf(f, "# HELP mkdseg_jobs Jobs in the database, by state.\n# TYPE mkdseg_jobs gauge\n");
        for (int i = 0; i < PQntuples(res); i++)
            fprintf(f, "mkdseg_jobs{state=\"%s\"} %s\n", PQgetvalue(res, i, 0), PQgetvalue(res, i, 1));
        PQclear(res);
    }
    if (c)
        db_release(r->app->db, c);
    fprintf(f, "# HELP mkdseg_db_up Whether the last database query for metrics worked.\n"
               "# TYPE mkdseg_db_up gauge\nmkdseg_db_up %d\n", db_up);
    fprintf(f, "# HELP mkdseg_build_info Build version.\n# TYPE mkdseg_build_info gauge\n"
               "mkdseg_build_info{version=\"%s\"} 1\n", MKDSEG_VERSION);
    fprintf(f, "# HELP mkdseg_uptime_seconds Seconds since start.\n# TYPE mkdseg_uptime_seconds gauge\n"
               "mkdseg_uptime_seconds %ld\n", (long)(time(NULL) - r->app->started));
    fclose(f);
    http_reply_data(r, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
    free(text);
}

void h_version(http_req *r)
{
    json_t *b = json_array();
    json_array_append_new(b, json_string("cpu"));
#ifdef MKD_HAVE_CUDA
    json_array_append_new(b, json_string("cuda"));
#endif
    int n = 0;
    while (db_migrations_embedded[n].name)
        n++;
    const char *last = n ? db_migrations_embedded[n - 1].name : "";
    http_reply_json(r, 200, json_pack("{s:s,s:o,s:s,s:s,s:s}", "version", MKDSEG_VERSION, "backends", b,
                                      "device", nn_device_describe(NULL), "schema", last, "api",
                                      "openapi 3.1: api/openapi.yaml"));
}
