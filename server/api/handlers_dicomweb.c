/* handlers_dicomweb.c: the DICOMweb form of the volume routes. POST /segment and POST
 * /datasets/{id}/volumes take, instead of a multipart upload, a JSON body
 *   {"dicomweb": ROOT_URL, "study": UID, "series": UID}   (/segment also: model, labels, tta)
 * The series is pulled by WADO-RS (dicomweb.c) into a private folder that then stands in for
 * the uploaded file, so the handlers run their usual path (checks, engine, storage); /segment
 * stores its SEG back by STOW-RS and answers JSON with the SEG's UIDs. PACS roots outside the
 * dicomweb-allow setting are refused with 403 before any request leaves. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dicomweb.h"
#include "api_dicom.h"
#include "api_util.h"
#include "svc.h"

typedef struct {
    upload u; /* first: upload_finish-compatible view of the pulled series */
    char *body;
    size_t n, cap;
    dw_pacs pacs;
    char dir[1100];
    char study[65], series[65];
} dw_req;

static void dw_free(http_req *r)
{
    dw_req *d = r->user;
    if (!d)
        return;
    if (d->dir[0]) {
        char cmd[1200];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", d->dir);
        if (system(cmd) != 0)
            fprintf(stderr, "mkdseg: cannot remove a DICOMweb folder\n");
    }
    free(d->body);
    free(d);
    r->user = NULL;
    r->user_free = NULL;
}

int api_is_dicomweb(http_req *r) { return r->user && r->user_free == dw_free; }

static int is_json(http_req *r)
{
    const char *ct = http_get_header(r, MHD_HTTP_HEADER_CONTENT_TYPE);
    return ct && !strncasecmp(ct, "application/json", 16);
}

int api_volume_body(http_req *r, const char *data, size_t len)
{
    if (!is_json(r) || (r->user && !api_is_dicomweb(r)))
        return upload_on_body(r, data, len);
    dw_req *d = r->user;
    if (!d) {
        if (!(d = calloc(1, sizeof *d))) {
            http_error(r, 500, "internal", NULL, "out of memory");
            return -1;
        }
        r->user = d;
        r->user_free = dw_free;
    }
    if ((long long)(d->n + len) > r->app->cfg.max_json) {
        http_error(r, 413, "too_large", NULL, "the JSON body is larger than %lld bytes",
                   r->app->cfg.max_json);
        return -1;
    }
    if (d->n + len + 1 > d->cap) {
        size_t nc = (d->n + len + 1) * 2;
        char *nb = realloc(d->body, nc);
        if (!nb) {
            http_error(r, 500, "internal", NULL, "out of memory");
            return -1;
        }
        d->body = nb, d->cap = nc;
    }
    memcpy(d->body + d->n, data, len);
    d->n += len;
    d->body[d->n] = 0;
    return 0;
}

static void add_field(upload *u, const char *name, const char *value)
{
    if (!value || u->nfields >= UPLOAD_MAX_FIELDS)
        return;
    snprintf(u->fields[u->nfields].name, sizeof u->fields[0].name, "%s", name);
    snprintf(u->fields[u->nfields].value, sizeof u->fields[0].value, "%s", value);
    u->fields[u->nfields].len = strlen(u->fields[u->nfields].value);
    u->nfields++;
}

/* The request's JSON: the PACS (allowed), the UIDs and the optional fields. */
static int parse_request(http_req *r, dw_req *d)
{
    json_error_t je;
    json_t *j = d->body ? json_loadb(d->body, d->n, 0, &je) : NULL;
    if (!json_is_object(j)) {
        json_decref(j);
        http_error(r, 400, "invalid_json", NULL,
                   "the body must be a JSON object {\"dicomweb\",\"study\",\"series\"}");
        return -1;
    }
    const char *url = json_string_value(json_object_get(j, "dicomweb")),
               *st = json_string_value(json_object_get(j, "study")),
               *se = json_string_value(json_object_get(j, "series"));
    int rc = -1;
    const mkd_config *c = &r->app->cfg;
    if (!url || !st || !se) {
        http_error(
            r, 400, "missing_field",
            !url  ? "dicomweb"
            : !st ? "study"
                  : "series",
            "'dicomweb' (the PACS's DICOMweb root), 'study' and 'series' (UIDs) are required");
    } else if (!dw_uid_ok(st) || !dw_uid_ok(se)) {
        http_error(r, 422, "invalid_field", dw_uid_ok(st) ? "series" : "study",
                   "study and series must be DICOM UIDs");
    } else if (!dw_allowed(c->dicomweb_allow, url, &d->pacs)) {
        http_error(r, 403, "pacs_not_allowed", "dicomweb",
                   "this DICOMweb root is not in the dicomweb-allow setting of the server");
    } else {
        d->pacs.timeout_s = c->dicomweb_timeout;
        d->pacs.max_bytes = c->dicomweb_max_bytes;
        snprintf(d->study, sizeof d->study, "%s", st);
        snprintf(d->series, sizeof d->series, "%s", se);
        const char *keys[] = {"model", "labels", "tta"};
        for (int i = 0; i < 3; i++) {
            json_t *v = json_object_get(j, keys[i]);
            char num[32];
            if (json_is_integer(v))
                snprintf(num, sizeof num, "%lld", (long long)json_integer_value(v));
            add_field(&d->u, keys[i],
                      json_is_string(v)    ? json_string_value(v)
                      : json_is_integer(v) ? num
                      : json_is_boolean(v) ? (json_is_true(v) ? "1" : "0")
                                           : NULL);
        }
        rc = 0;
    }
    json_decref(j);
    return rc;
}

upload *api_dicomweb_pull(http_req *r, const char *field)
{
    dw_req *d = r->user;
    if (d->u.finished)
        return &d->u;
    if (parse_request(r, d) < 0)
        return NULL;
    snprintf(d->dir, sizeof d->dir, "%s/tmp/dw-XXXXXX", r->app->cfg.data_dir);
    char tdir[1100];
    snprintf(tdir, sizeof tdir, "%s/tmp", r->app->cfg.data_dir);
    mkdir(r->app->cfg.data_dir, 0755);
    mkdir(tdir, 0755);
    if (!mkdtemp(d->dir)) {
        d->dir[0] = 0;
        http_error(r, 500, "internal", NULL, "cannot create a folder for the series");
        return NULL;
    }
    dw_result res;
    if (dw_wado_series(&d->pacs, d->study, d->series, d->dir, &res) < 0) {
        if (res.too_large)
            http_error(r, 413, "too_large", "series", "%s", res.err);
        else if (res.http_status == 404)
            http_error(r, 404, "series_not_found", "series",
                       "the PACS has no series %s in study %s", d->series, d->study);
        else
            http_error(r, 502, "pacs_error", "dicomweb", "WADO-RS: %s", res.err);
        return NULL;
    }
    upload_file *f = &d->u.files[0];
    memset(f, 0, sizeof *f);
    f->fd = -1;
    snprintf(f->field, sizeof f->field, "%s", field);
    snprintf(f->filename, sizeof f->filename, "%s", d->series);
    snprintf(f->path, sizeof f->path, "%s", d->dir);
    f->is_dir = 1;
    snprintf(f->sha256, sizeof f->sha256, "%s", res.sha256);
    d->u.nfiles = 1;
    d->u.finished = 1;
    if (!strcmp(field, "vol"))
        add_field(&d->u, "format", "seg");
    return &d->u;
}

int api_dicomweb_store(http_req *r, const char *seg_path)
{
    dw_req *d = r->user;
    dw_result res;
    if (dw_stow(&d->pacs, seg_path, &res) < 0) {
        http_error(r, 502, "pacs_error", "dicomweb", "STOW-RS of the SEG: %s", res.err);
        return -1;
    }
    return 0;
}

const char *api_dicomweb_url(http_req *r)
{
    return api_is_dicomweb(r) ? ((dw_req *)r->user)->pacs.url : NULL;
}

const char *api_dicomweb_study(http_req *r)
{
    return api_is_dicomweb(r) ? ((dw_req *)r->user)->study : NULL;
}
