/* monailabel.c: the MONAI Label protocol subset for 3D Slicer (see monailabel.h).
 *
 * Uploads are streamed to disk by upload.c and kept as content-addressed blobs, named in
 * slicer_images (sql/0003_slicer_images.sql). Inference goes through the engine pool like
 * /segment (a seg_task), writes the label map as NRRD (or NIfTI when the client asks for
 * .nii/.nii.gz) and answers it in a multipart body with a Content-Length (http_multipart.h). */
#include "monailabel.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "auth.h"
#include "ct_compare.h"
#include "engine_pool.h"
#include "handlers.h"
#include "api_util.h"
#include "sql.h"
#include "http_multipart.h"
#include "svc.h"
#include "upload.h"
#include "version.h"

/* ------------------------------------------------------------------------------------------ */
/* helpers */

/* An engine message names the file it read first ("<path>: ..."): the client never sees our
 * paths, so that prefix goes. */
static const char *strip_path(const char *msg, const char *path)
{
    size_t n = strlen(path);
    return !strncmp(msg, path, n) && !strncmp(msg + n, ": ", 2) ? msg + n + 2 : msg;
}

/* The label table of the protocol: {"MYO": 1, ..., "PA": 7}. New reference. */
static json_t *label_table(void)
{
    json_t *o = json_object();
    for (int c = 1; c < VOL_NCLASSES; c++)
        json_object_set_new(o, vol_class_names[c], json_integer(c));
    return o;
}

/* Value of key in an application/x-www-form-urlencoded body, decoded ('+' and %XX), into out.
 * 0, or -1 when absent, too long or badly escaped. */
static int form_value(const char *body, const char *key, char *out, size_t outlen)
{
    size_t kl = strlen(key);
    for (const char *p = body; p && *p; p = strchr(p, '&') ? strchr(p, '&') + 1 : NULL) {
        if (strncmp(p, key, kl) || p[kl] != '=')
            continue;
        size_t n = 0;
        for (const char *s = p + kl + 1; *s && *s != '&'; s++) {
            int ch = (unsigned char)*s;
            if (ch == '+')
                ch = ' ';
            else if (ch == '%') {
                if (!isxdigit((unsigned char)s[1]) || !isxdigit((unsigned char)s[2]))
                    return -1;
                char hex[3] = {s[1], s[2], 0};
                ch = (int)strtol(hex, NULL, 16);
                s += 2;
            }
            if (n + 1 >= outlen)
                return -1;
            out[n++] = (char)ch;
        }
        out[n] = 0;
        return 0;
    }
    return -1;
}

/* The result's file name: the image name's last path part without a volume extension, '"',
 * '\\' and control characters replaced, plus ext. */
static void result_name(const char *image, const char *ext, char *out, size_t outlen)
{
    const char *b = strrchr(image, '/') ? strrchr(image, '/') + 1 : image;
    char base[200];
    snprintf(base, sizeof base, "%s", *b ? b : "image");
    static const char *const strip[] = {".nii.gz", ".nii", ".nrrd", ".mha", ".mhd"};
    for (size_t i = 0; i < sizeof strip / sizeof strip[0]; i++) {
        size_t n = strlen(base), m = strlen(strip[i]);
        if (n > m && !strcasecmp(base + n - m, strip[i])) {
            base[n - m] = 0;
            break;
        }
    }
    for (char *p = base; *p; p++)
        if (*p == '"' || *p == '\\' || (unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '_';
    snprintf(out, outlen, "%s%s", base, ext);
}

/* ------------------------------------------------------------------------------------------ */
/* auth, info, train */

void ml_auth(http_req *r)
{
    http_reply_json(r, 200,
                    json_pack("{s:b,s:s,s:s}", "enabled", r->app->cfg.auth != 0, "client_id",
                              "mkdseg", "realm", "mkdseg"));
}

void ml_auth_token(http_req *r)
{
    if (!r->app->cfg.auth) {
        http_error(r, 404, "auth_off", NULL, "auth is off on this server: no token is needed");
        return;
    }
    const char *ct = http_get_header(r, MHD_HTTP_HEADER_CONTENT_TYPE);
    if (!ct || strncasecmp(ct, "application/x-www-form-urlencoded", 33)) {
        http_error(
            r, 415, "unsupported_media_type", NULL,
            "expected a form (application/x-www-form-urlencoded) with username and password");
        return;
    }
    char user[256], pass[300], hex[65];
    if (!r->body || form_value(r->body, "username", user, sizeof user) < 0 ||
        form_value(r->body, "password", pass, sizeof pass) < 0 || !*pass) {
        http_error(r, 400, "missing_field", "username",
                   "the form needs username (the token's name) and password (the token)");
        return;
    }
    /* the token is found by its name (not a secret), then its stored hash is compared with
     * the password's in constant time */
    auth_hash_token(pass, hex);
    const char *v[1] = {user};
    PGresult *res = api_exec(r, &sql_api_tokens_by_name, v, NULL);
    if (!res)
        return;
    int ok = PQntuples(res) == 1 && ct_streq(PQgetvalue(res, 0, 0), hex);
    PQclear(res);
    if (!ok) {
        http_error(r, 401, "unauthorized", NULL,
                   "wrong username or password (username: the token's name, password: the token)");
        return;
    }
    http_reply_json(r, 200, json_pack("{s:s,s:s}", "access_token", pass, "token_type", "bearer"));
}

/* With auth on, the token was checked before the handler runs (its route needs the read
 * scope, which every Slicer user needs for info/ anyway). */
void ml_auth_token_valid(http_req *r) { http_reply_json(r, 200, json_pack("{s:b}", "valid", 1)); }

/* One model of /info/: type, labels, dimension, description, config. New reference. */
static json_t *info_model(PGresult *res, int i)
{
    const char *method = PQgetvalue(res, i, 2), *mod = PQgetvalue(res, i, 3);
    int promoted = PQgetvalue(res, i, 4)[0] == 't';
    char desc[300];
    snprintf(desc, sizeof desc, "mkdseg model %s (%s%s%s)%s: the heart's seven structures",
             PQgetvalue(res, i, 1), method, *mod ? ", " : "", mod, promoted ? ", promoted" : "");
    return json_pack("{s:s,s:o,s:i,s:s,s:{}}", "type", "segmentation", "labels", label_table(),
                     "dimension", 3, "description", desc, "config");
}

void ml_info(http_req *r)
{
    PGresult *res = api_exec(r, &sql_models_named, NULL, NULL);
    if (!res)
        return;
    json_t *models = json_object(), *labels = json_array();
    for (int i = 0; i < PQntuples(res); i++)
        json_object_set_new(models, PQgetvalue(res, i, 0), info_model(res, i));
    PQclear(res);
    for (int c = 1; c < VOL_NCLASSES; c++)
        json_array_append_new(labels, json_string(vol_class_names[c]));
    if (!(res = api_exec(r, &sql_slicer_images_count, NULL, NULL))) {
        json_decref(models), json_decref(labels);
        return;
    }
    json_int_t total = (json_int_t)atoll(PQgetvalue(res, 0, 0));
    PQclear(res);
    /* no top-level "config": the module takes it for an old server's answer */
    http_reply_json(r, 200,
                    json_pack("{s:s,s:s,s:s,s:o,s:o,s:{},s:{},s:{},s:{s:I,s:i,s:{}}}", "name",
                              "mkdseg", "description",
                              "mkdseg: whole-heart segmentation of CT and MR (seven structures)",
                              "version", MKDSEG_VERSION, "labels", labels, "models", models,
                              "trainers", "strategies", "scoring", "datastore", "total", total,
                              "completed", 0, "label_tags"));
}

void ml_train_status(http_req *r)
{
    http_error(
        r, 404, "not_found", NULL,
        "no training task is running (mkdseg trains through POST /train, not this protocol)");
}

/* ------------------------------------------------------------------------------------------ */
/* PUT {p}/datastore/?image=NAME */

void ml_datastore_put(http_req *r)
{
    upload *u = upload_finish(r);
    if (!u)
        return;
    const char *image = http_query(r, "image");
    upload_file *f = upload_get_file(u, "file");
    if (!image || !*image || strlen(image) > 1000) {
        http_error(r, 400, "missing_field", "image",
                   "the query parameter image (the volume's name, 1-1000 characters) is required");
        return;
    }
    if (!f) {
        http_error(r, 400, "missing_field", "file",
                   "the multipart field 'file' (the volume) is required");
        return;
    }
    const char *params = upload_get_field(u, "params");
    json_t *pj = params && *params ? json_loads(params, 0, NULL) : NULL;
    if (params && *params && !json_is_object(pj)) {
        json_decref(pj);
        http_error(r, 400, "malformed_json", "params", "the field 'params' must be a JSON object");
        return;
    }
    char client[201] = "";
    snprintf(client, sizeof client, "%s",
             json_string_value(json_object_get(pj, "client_id"))
                 ? json_string_value(json_object_get(pj, "client_id"))
                 : "");
    json_decref(pj);
    int gz = 0;
    if (api_upload_nifti(r, f, &gz) < 0)
        return;
    char err[512], rel[256], size[24];
    vol_read_opts ro = {.has_volume = 1, .volume = 0}; /* a 4-D file is kept; infer picks */
    if (vol_read_header(f->path, &ro, NULL, NULL, err, sizeof err) < 0) {
        http_error(r, 422, "invalid_volume", "file", "file '%s': %s", f->filename,
                   strip_path(err, f->path));
        return;
    }
    if (svc_blob_adopt(r->app->cfg.data_dir, f->path, f->sha256, rel, sizeof rel, err, sizeof err) <
        0) {
        http_error(r, 500, "internal", NULL, "cannot store the volume");
        return;
    }
    f->path[0] = 0;
    snprintf(size, sizeof size, "%lld", f->size);
    const char *v[7] = {
        image, f->sha256, rel, size, gz ? ".nii.gz" : ".nii", f->filename, *client ? client : NULL};
    PGresult *res = api_exec(r, &sql_slicer_images_put, v, NULL);
    if (!res)
        return;
    PQclear(res);
    http_reply_json(r, 200,
                    json_pack("{s:s,s:s,s:I,s:s}", "image", image, "sha256", f->sha256, "size",
                              (json_int_t)f->size, "ext", gz ? ".nii.gz" : ".nii"));
}

/* ------------------------------------------------------------------------------------------ */
/* POST {p}/infer/MODEL?image=NAME */

typedef struct {
    char ext[8];    /* ".nrrd", ".nii.gz" or ".nii" */
    char output[8]; /* "all", "image" or "json" */
    int has_volume;
    long long volume;
} ml_infer_opts;

/* Reads the params field and the query: result_extension, output, volume. 0, or -1 after
 * answering 400/422. */
static int infer_options(http_req *r, upload *u, ml_infer_opts *o)
{
    memset(o, 0, sizeof *o);
    snprintf(o->ext, sizeof o->ext, ".nrrd");
    const char *out = http_query(r, "output"), *params = upload_get_field(u, "params");
    snprintf(o->output, sizeof o->output, "%s", out && *out ? out : "all");
    if (strcmp(o->output, "all") && strcmp(o->output, "image") && strcmp(o->output, "json")) {
        http_error(r, 422, "invalid_field", "output", "output must be all, image or json");
        return -1;
    }
    json_t *pj = params && *params ? json_loads(params, 0, NULL) : json_object();
    if (!json_is_object(pj)) {
        json_decref(pj);
        http_error(r, 400, "malformed_json", "params", "the field 'params' must be a JSON object");
        return -1;
    }
    const char *ext = json_string_value(json_object_get(pj, "result_extension"));
    json_t *vol = json_object_get(pj, "volume");
    const char *qv = http_query(r, "volume");
    int rc = 0;
    if (ext && strcmp(ext, ".nrrd") && strcmp(ext, ".nii.gz") && strcmp(ext, ".nii")) {
        http_error(r, 422, "invalid_field", "result_extension",
                   "result_extension must be .nrrd, .nii.gz or .nii");
        rc = -1;
    } else if ((vol && (!json_is_integer(vol) || json_integer_value(vol) < 0)) ||
               (qv && (!*qv || strspn(qv, "0123456789") != strlen(qv) || strlen(qv) > 9))) {
        http_error(r, 422, "invalid_field", "volume", "volume must be a non-negative integer");
        rc = -1;
    } else {
        if (ext)
            snprintf(o->ext, sizeof o->ext, "%s", ext);
        o->has_volume = vol || qv;
        o->volume = vol ? (long long)json_integer_value(vol) : qv ? atoll(qv) : 0;
    }
    json_decref(pj);
    return rc;
}

/* Fills t's model and image from the route and the datastore. 0, or -1 after answering. */
static int infer_inputs(http_req *r, const char *image, seg_task *t, char *model, size_t modellen,
                        char *link, size_t linklen)
{
    char name[HTTP_PARAM_MAX], err[512];
    snprintf(name, sizeof name, "%s", r->params[0]);
    const char *v[1] = {name};
    PGresult *res = api_exec(r, &sql_models_by_name, v, NULL);
    if (res && PQntuples(res) == 0 && strchr(name, '+')) {
        /* the module writes spaces as '+' (quote_plus) and paths are not form-decoded */
        PQclear(res);
        for (char *p = name; *p; p++)
            *p = *p == '+' ? ' ' : *p;
        res = api_exec(r, &sql_models_by_name, v, NULL);
    }
    if (!res)
        return -1;
    if (PQntuples(res) == 0) {
        PQclear(res);
        http_error(r, 404, "not_found", "model", "model '%s' not found (GET info/ lists them)",
                   name);
        return -1;
    }
    t->model_id = atoll(PQgetvalue(res, 0, 0));
    svc_abs(r->app->cfg.data_dir, PQgetvalue(res, 0, 1), t->model_path, sizeof t->model_path);
    snprintf(model, modellen, "%s", PQgetvalue(res, 0, 2));
    PQclear(res);
    const char *iv[1] = {image};
    if (!(res = api_exec(r, &sql_slicer_images_get, iv, NULL)))
        return -1;
    if (PQntuples(res) == 0) {
        PQclear(res);
        http_error(r, 404, "not_found", "image",
                   "image '%s' is not in the datastore: upload it first (PUT datastore/?image=...)",
                   image);
        return -1;
    }
    int rc =
        svc_nifti_link(r->app->cfg.data_dir, PQgetvalue(res, 0, 0), link, linklen, err, sizeof err);
    PQclear(res);
    if (rc < 0) {
        http_error(r, 500, "internal", NULL, "the stored image '%s' cannot be read", image);
        return -1;
    }
    snprintf(t->vol_path, sizeof t->vol_path, "%s", link);
    return 0;
}

/* Runs t on the engine pool. 0, or -1 after answering (queue full, bad volume, failure). */
static int infer_run(http_req *r, seg_task *t, const char *image)
{
    char err[512];
    vol_read_opts ro = {.has_volume = t->has_volume, .volume = t->volume};
    if (vol_read_header(t->vol_path, &ro, NULL, NULL, err, sizeof err) < 0) {
        int multi = !t->has_volume && strstr(err, "volumes (dims") != NULL;
        http_error(r, 422, "invalid_volume", "volume", "image '%s': %s%s", image,
                   strip_path(err, t->vol_path), multi ? " (params volume=N, or ?volume=N)" : "");
        return -1;
    }
    if (epool_submit(t) < 0) {
        http_error(r, 503, "queue_full", NULL, "the segmentation queue is full; retry later");
        http_header(r, "Retry-After", "5");
        return -1;
    }
    epool_wait(t);
    if (t->status) {
        http_error(r, t->status, t->code, NULL, "%s", strip_path(t->err, t->vol_path));
        if (t->status == 503)
            http_header(r, "Retry-After", "5");
        unlink(t->out_path);
        return -1;
    }
    return 0;
}

/* The params part of the answer: label_names, latencies (seconds), the model and structures. */
static json_t *infer_params(const seg_task *t, const char *model, const char *image)
{
    double ml = t->spacing[0] * t->spacing[1] * t->spacing[2] / 1000.0;
    json_t *st = json_object();
    for (int c = 1; c < VOL_NCLASSES; c++)
        json_object_set_new(
            st, vol_class_names[c],
            json_pack("{s:I,s:f}", "voxels", (json_int_t)t->counts[c], "ml", t->counts[c] * ml));
    return json_pack("{s:o,s:{s:f,s:f,s:f,s:f,s:f,s:f,s:f},s:s,s:I,s:s,s:s,s:o}", "label_names",
                     label_table(), "latencies", "pre", (t->read_ms + t->prep_ms) / 1e3, "infer",
                     t->net_ms / 1e3, "invert", 0.0, "post", t->post_ms / 1e3, "write",
                     t->write_ms / 1e3, "total", t->total_ms / 1e3, "queue", t->queue_ms / 1e3,
                     "model", model, "model_id", (json_int_t)t->model_id, "method", t->method,
                     "image", image, "structures", st);
}

/* Answers the finished task: multipart (params + file), the file alone, or the JSON alone. */
static void infer_answer(http_req *r, const seg_task *t, const ml_infer_opts *o, const char *model,
                         const char *image)
{
    json_t *pj = infer_params(t, model, image);
    char fname[256];
    result_name(image, o->ext, fname, sizeof fname);
    if (!strcmp(o->output, "json")) {
        http_reply_json(r, 200, pj);
        return;
    }
    if (!strcmp(o->output, "image")) {
        json_decref(pj);
        api_reply_file(r, t->out_path, "application/octet-stream", fname);
        return;
    }
    char *ps = json_dumps(pj, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(15));
    json_decref(pj);
    http_multipart *mp = http_mp_new();
    if (!ps || !mp || http_mp_add_data(mp, "params", NULL, NULL, ps, strlen(ps)) < 0 ||
        http_mp_add_file(mp, "file", fname, "application/octet-stream", t->out_path) < 0) {
        free(ps);
        http_mp_free(mp);
        http_error(r, 500, "internal", NULL, "cannot build the answer");
        return;
    }
    free(ps);
    http_reply_multipart(r, 200, mp);
}

void ml_infer(http_req *r)
{
    upload *u = upload_finish(r);
    if (!u)
        return;
    const char *image = http_query(r, "image");
    if (!image || !*image) {
        http_error(r, 400, "missing_field", "image",
                   "the query parameter image (a datastore name) is required");
        return;
    }
    ml_infer_opts o;
    if (infer_options(r, u, &o) < 0)
        return;
    seg_task *t = calloc(1, sizeof *t);
    if (!t) {
        http_error(r, 500, "internal", NULL, "out of memory");
        return;
    }
    char model[256], link[1300] = "";
    if (infer_inputs(r, image, t, model, sizeof model, link, sizeof link) < 0)
        goto done;
    const mkd_config *cfg = &r->app->cfg;
    snprintf(t->out_path, sizeof t->out_path, "%s/tmp/ml-%s%s", cfg->data_dir, r->id, o.ext);
    t->out_mode = VOL_LABELS_INDEX;
    t->has_volume = o.has_volume;
    t->volume = o.volume;
    if (infer_run(r, t, image) < 0)
        goto done;
    infer_answer(r, t, &o, model, image);
    unlink(t->out_path); /* the answer holds an open descriptor */
done:
    if (*link)
        unlink(link);
    free(t);
}
