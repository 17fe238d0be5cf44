/* api_util.c: see api_util.h. */
#include "api_util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gc.h"
#include "job.h"
#include "log.h"
#include "svc.h"

db_conn *api_db_acquire(http_req *r)
{
    char err[512];
    db_conn *c = db_acquire(r->app->db, 2000, err, sizeof err);
    if (!c) {
        http_error(r, 503, "database_unavailable", NULL, "%s", err);
        http_header(r, "Retry-After", "5");
    }
    return c;
}

void api_db_error(http_req *r, db_conn *c, const char *err)
{
    if (!db_pg(c) || PQstatus(db_pg(c)) != CONNECTION_OK || !*db_sqlstate(c) ||
        !strncmp(db_sqlstate(c), "08", 2) || !strncmp(db_sqlstate(c), "57P", 3)) {
        http_error(r, 503, "database_unavailable", NULL, "%s", err);
        http_header(r, "Retry-After", "5");
    } else {
        http_error(r, 500, "internal", NULL, "%s", err);
    }
}

void api_reply_json_row(http_req *r, const db_stmt *st, const char *const *values, int status,
                        const char *what)
{
    char err[512];
    db_conn *c = api_db_acquire(r);
    if (!c)
        return;
    PGresult *res = NULL;
    if (db_exec(c, st, values, &res, err, sizeof err) < 0) {
        api_db_error(r, c, err);
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

PGresult *api_exec_by_id(http_req *r, const char *what, const db_stmt *st, long long *id,
                         char ids[24])
{
    if (api_id(r, what, id, ids) < 0)
        return NULL;
    const char *v[1] = {ids};
    return api_exec(r, st, v, NULL);
}

PGresult *api_exec_row(http_req *r, const db_stmt *st, const char *const *v, const char *field,
                       const char *what)
{
    PGresult *res = api_exec(r, st, v, NULL);
    if (res && PQntuples(res) == 0) {
        PQclear(res);
        res = NULL;
        http_error(r, 404, "not_found", field, "%s not found", what);
    }
    return res;
}

void api_reply_created(http_req *r, const char *base, PGresult *res)
{
    char loc[128];
    snprintf(loc, sizeof loc, "%s/%s", base, PQgetvalue(res, 0, 0));
    http_reply_json(r, 201, json_loads(PQgetvalue(res, 0, 1), 0, NULL));
    http_header(r, "Location", loc);
    PQclear(res);
}

void api_reply_by_id(http_req *r, const char *what, const db_stmt *st)
{
    long long id;
    char ids[24], w[64];
    if (api_id(r, what, &id, ids) < 0)
        return;
    const char *v[1] = {ids};
    snprintf(w, sizeof w, "%s %lld", what, id);
    api_reply_json_row(r, st, v, 200, w);
}

PGresult *api_row_by_id(http_req *r, const char *what, const db_stmt *st, long long *id)
{
    char ids[24], w[64];
    if (api_id(r, what, id, ids) < 0)
        return NULL;
    const char *v[1] = {ids};
    snprintf(w, sizeof w, "%s %lld", what, *id);
    return api_exec_row(r, st, v, "id", w);
}

int api_stored_path(http_req *r, const char *what, const db_stmt *st, long long *id, char *path,
                    size_t pathlen)
{
    PGresult *res = api_row_by_id(r, what, st, id);
    if (!res)
        return -1;
    svc_abs(r->app->cfg.data_dir, PQgetvalue(res, 0, 0), path, pathlen);
    PQclear(res);
    return 0;
}

void api_enqueue_job(http_req *r, const char *kind, json_t *params, const db_stmt *reply)
{
    char err[512], js[24], loc[64];
    long long jid = 0;
    db_conn *c = api_db_acquire(r);
    int rc = c ? job_enqueue(db_pg(c), kind, params, 0, 3, &jid, err, sizeof err) : -1;
    json_decref(params);
    if (!c)
        return;
    if (rc < 0)
        api_db_error(r, c, err);
    db_release(r->app->db, c);
    if (rc < 0)
        return;
    snprintf(js, sizeof js, "%lld", jid);
    snprintf(loc, sizeof loc, "/jobs/%lld", jid);
    const char *vj[1] = {js};
    api_reply_json_row(r, reply, vj, 202, "job");
    http_header(r, "Location", loc);
}

int api_id(http_req *r, const char *what, long long *id, char ids[24])
{
    if (http_param_id(r, 0, id) < 0) {
        http_error(r, 404, "not_found", "id", "%s '%s' not found (ids are positive integers)", what,
                   r->params[0]);
        return -1;
    }
    snprintf(ids, 24, "%lld", *id);
    return 0;
}

int api_reply_file(http_req *r, const char *path, const char *ctype, const char *filename)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
        if (fd >= 0)
            close(fd);
        http_error(r, errno == ENOENT ? 404 : 500, errno == ENOENT ? "not_found" : "internal", NULL,
                   "the stored file is missing: %s", strerror(errno));
        return -1;
    }
    struct MHD_Response *resp = MHD_create_response_from_fd((uint64_t)st.st_size, fd);
    if (!resp) {
        close(fd);
        http_error(r, 500, "internal", NULL, "cannot create the response");
        return -1;
    }
    if (r->resp)
        MHD_destroy_response(r->resp);
    r->resp = resp;
    r->status = 200;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    if (filename) {
        char cd[300];
        snprintf(cd, sizeof cd, "attachment; filename=\"%s\"", filename);
        MHD_add_response_header(resp, "Content-Disposition", cd);
    }
    return 0;
}

int api_upload_nifti(http_req *r, upload_file *f, int *gz)
{
    if (f->is_dir) {
        http_error(
            r, 415, "not_nifti", f->field,
            "field '%s' came as %d files: only the files of a DICOM series may share a field",
            f->field, f->nparts);
        return -1;
    }
    char why[256];
    int ok = svc_nifti_sniff(f->path, gz, why, sizeof why);
    if (ok <= 0) {
        http_error(r, ok < 0 ? 500 : 415, ok < 0 ? "internal" : "not_nifti", f->field,
                   "field '%s' (%s): %s", f->field, f->filename, why);
        return -1;
    }
    char np[1200];
    snprintf(np, sizeof np, "%.1180s.nii%s", f->path, *gz ? ".gz" : "");
    if (rename(f->path, np) < 0) {
        http_error(r, 500, "internal", NULL, "cannot rename the upload: %s", strerror(errno));
        return -1;
    }
    snprintf(f->path, sizeof f->path, "%s", np);
    return 0;
}

PGresult *api_exec(http_req *r, const db_stmt *st, const char *const *v, char sqlstate[6])
{
    char err[512];
    db_conn *c = api_db_acquire(r);
    if (!c)
        return NULL;
    PGresult *res = NULL;
    if (db_exec(c, st, v, &res, err, sizeof err) < 0) {
        if (sqlstate)
            snprintf(sqlstate, 6, "%s", db_sqlstate(c));
        /* constraint and data errors (classes 22, 23) are left to the caller when it asked */
        if (!sqlstate || (strncmp(db_sqlstate(c), "22", 2) && strncmp(db_sqlstate(c), "23", 2)))
            api_db_error(r, c, err);
        db_release(r->app->db, c);
        return NULL;
    }
    db_release(r->app->db, c);
    return res;
}

void api_collect_blobs(http_req *r, PGresult *shas)
{
    int n = shas ? PQntuples(shas) : 0;
    const char **v = n ? calloc((size_t)n, sizeof *v) : NULL;
    char err[512] = "";
    db_conn *c = v ? db_acquire(r->app->db, 2000, err, sizeof err) : NULL;
    gc_opts o = {.grace_s = r->app->cfg.gc_grace};
    gc_stats st;
    if (c) {
        for (int i = 0; i < n; i++)
            v[i] = PQgetvalue(shas, i, 0);
        if (gc_collect_blobs(db_pg(c), r->app->cfg.data_dir, v, n, &o, &st, err, sizeof err) == 0)
            log_json(LOG_INFO, r->id, "blobs collected",
                     json_pack("{s:I,s:I,s:I,s:I}", "removed", (json_int_t)st.removed[GC_BLOB],
                               "bytes", (json_int_t)st.bytes, "referenced",
                               (json_int_t)st.referenced, "young", (json_int_t)st.young));
        db_release(r->app->db, c);
    }
    if (n && (!c || *err))
        log_json(LOG_WARN, r->id, "blobs not collected (mkdseg gc will)",
                 json_pack("{s:s}", "error", *err ? err : "out of memory"));
    free(v);
    PQclear(shas);
}
