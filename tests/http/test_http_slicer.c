/* test_http_slicer.c: the MONAI Label protocol as 3D Slicer's module speaks it, against the real
 * `mkdseg serve` and a real PostgreSQL. Requests are written byte for byte as the module writes
 * them (its fixed boundary with a '$', a CRLF after the closing delimiter, a Content-Length)
 * over a raw socket, and answers are read from the raw bytes the way its parser reads them: a
 * Content-Length, never chunked, a multipart body split at the boundary. The returned NRRD is
 * decoded here (header + zlib) and compared with the input's geometry and with the labels of
 * mkdseg's own /segment; tests/nibabel/nrrd_helper.py writes the 4-D inputs. */
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <curl/curl.h>
#include <zlib.h>

#include "../lib/tsvc.h"
#include "vol.h"

#define PY "/usr/bin/python3"
#define BOUNDARY "----------lImIt_of_THE_fIle_eW_$" /* the module's fixed boundary */

static tsvc sv; /* the service, its database and scratch folder */

/* ---- server ------------------------------------------------------------------------------ */

static void start(const char *const *extra) { tsvc_start(&sv, "slicer", extra); }

static void cleanup(void) { tsvc_stop(&sv); }
TestSuite(slicer, .fini = cleanup);

/* A 40x40x16 phantom CT at path (the module's default upload format, .nii.gz). */
static void phantom(const char *path, int seed)
{
    tsh("'%s' phantom --modality ct --seed %d --shape 40,40,16 --image '%s' --label "
        "'%s.label.nii.gz' 2>/dev/null",
        tenv("MKDSEG_TEST_BIN"), seed, path, path);
}

/* ---- the wire ---------------------------------------------------------------------------- */

typedef struct {
    int status;
    char *head; /* status line and headers, NUL-terminated */
    char *body;
    size_t len;
    json_t *json; /* the body when it parses as JSON */
} rawresp;

static void rawresp_free(rawresp *r)
{
    free(r->head);
    free(r->body);
    json_decref(r->json);
    memset(r, 0, sizeof *r);
}

/* Header `name` of r into buf (case-insensitive), or NULL. */
static const char *rhdr(const rawresp *r, const char *name, char *buf, size_t buflen)
{
    size_t n = strlen(name);
    for (const char *p = strstr(r->head, "\r\n"); p && p[2]; p = strstr(p + 2, "\r\n")) {
        const char *l = p + 2;
        if (!strncasecmp(l, name, n) && l[n] == ':') {
            const char *v = l + n + 1, *e = strstr(v, "\r\n");
            while (*v == ' ')
                v++;
            snprintf(buf, buflen, "%.*s", (int)(e ? e - v : (long)strlen(v)), v);
            return buf;
        }
    }
    return NULL;
}

/* One request over a fresh socket, read to the end of the connection (Connection: close).
 * Asserts what the module's parser needs: a Content-Length equal to the body, no chunking. */
static void wire(const char *method, const char *path, const char *extra_headers, const char *ctype,
                 const char *body, size_t blen, rawresp *out)
{
    memset(out, 0, sizeof *out);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)sv.srv.port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0, "connect: %s", strerror(errno));
    char head[2048];
    int hn = snprintf(head, sizeof head,
                      "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nAccept-Encoding: identity\r\n"
                      "Connection: close\r\n%s",
                      method, path, sv.srv.port, extra_headers ? extra_headers : "");
    if (body)
        hn += snprintf(head + hn, sizeof head - (size_t)hn,
                       "Content-Type: %s\r\nContent-Length: %zu\r\n", ctype, blen);
    hn += snprintf(head + hn, sizeof head - (size_t)hn, "\r\n");
    cr_assert_eq(send(fd, head, (size_t)hn, MSG_NOSIGNAL), hn);
    for (size_t off = 0; body && off < blen;) {
        ssize_t k = send(fd, body + off, blen - off, MSG_NOSIGNAL);
        if (k <= 0)
            break; /* the server may answer (401, 413) before the body is read */
        off += (size_t)k;
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        struct pollfd p = {fd, POLLIN, 0};
        cr_assert_gt(poll(&p, 1, 120000), 0, "no answer within 120 s (a hang)");
        if (n + 65536 > cap)
            buf = realloc(buf, cap *= 2);
        ssize_t k = recv(fd, buf + n, cap - n - 1, 0);
        if (k <= 0)
            break;
        n += (size_t)k;
    }
    close(fd);
    buf[n] = 0;
    char *sep = strstr(buf, "\r\n\r\n");
    cr_assert(sep, "no header block in the answer");
    out->head = strndup(buf, (size_t)(sep - buf) + 2);
    out->len = n - (size_t)(sep + 4 - buf);
    out->body = malloc(out->len + 1);
    memcpy(out->body, sep + 4, out->len);
    out->body[out->len] = 0;
    free(buf);
    cr_assert_eq(sscanf(out->head, "HTTP/1.1 %d", &out->status), 1, "%s", out->head);
    char v[128];
    cr_assert_null(rhdr(out, "Transfer-Encoding", v, sizeof v), "the answer must not be chunked");
    cr_assert(rhdr(out, "Content-Length", v, sizeof v), "%s %s: no Content-Length", method, path);
    cr_assert_eq(strtoull(v, NULL, 10), out->len, "Content-Length %s but %zu bytes came", v,
                 out->len);
    out->json = json_loadb(out->body, out->len, 0, NULL);
}

/* A multipart body as the module encodes it: every line followed by CRLF, fields first, then
 * files, the closing delimiter and an empty line. file may be NULL. */
static char *ml_multipart(const char *params, const char *file_field, const char *file, size_t *len)
{
    size_t flen = 0;
    char *data = file ? tslurp(file, &flen) : NULL;
    size_t cap = flen + 4096, n = 0;
    char *b = malloc(cap);
    n += (size_t)snprintf(b + n, cap - n,
                          "--%s\r\nContent-Disposition: form-data; name=\"params\"\r\n\r\n%s\r\n",
                          BOUNDARY, params);
    if (file) {
        n += (size_t)snprintf(b + n, cap - n,
                              "--%s\r\nContent-Disposition: form-data; name=\"%s\"; "
                              "filename=\"%s\"\r\nContent-Type: application/x-gzip\r\n\r\n",
                              BOUNDARY, file_field, file);
        memcpy(b + n, data, flen);
        n += flen;
        n += (size_t)snprintf(b + n, cap - n, "\r\n");
    }
    n += (size_t)snprintf(b + n, cap - n, "--%s--\r\n\r\n", BOUNDARY);
    free(data);
    *len = n;
    return b;
}

static void ml_send(const char *method, const char *path, const char *auth, const char *params,
                    const char *file, rawresp *out)
{
    size_t blen;
    char *body = ml_multipart(params, "file", file, &blen);
    wire(method, path, auth, "multipart/form-data; boundary=" BOUNDARY, body, blen, out);
    free(body);
}

typedef struct {
    json_t *params;
    char filename[256];
    char *file;
    size_t file_len;
} mp_answer;

/* Splits a multipart answer at its boundary (from Content-Type): the part without a file name
 * is params (JSON), the part with one is the file. */
static void parse_answer(const rawresp *r, mp_answer *a)
{
    memset(a, 0, sizeof *a);
    char ct[256], delim[300];
    cr_assert(rhdr(r, "Content-Type", ct, sizeof ct));
    cr_assert(!strncmp(ct, "multipart/form-data; boundary=", 30), "%s", ct);
    snprintf(delim, sizeof delim, "--%s", ct + 30);
    size_t dl = strlen(delim);
    const char *end = r->body + r->len, *p = memmem(r->body, r->len, delim, dl);
    cr_assert(p == r->body, "the body starts with the boundary");
    for (int parts = 0;; parts++) {
        p += dl;
        if (p + 2 <= end && !strncmp(p, "--", 2))
            break; /* the closing delimiter */
        cr_assert(parts < 4 && !strncmp(p, "\r\n", 2), "malformed part %d", parts);
        const char *hend = memmem(p, (size_t)(end - p), "\r\n\r\n", 4);
        cr_assert(hend);
        char hdrs[512];
        snprintf(hdrs, sizeof hdrs, "%.*s", (int)(hend - p), p);
        const char *data = hend + 4;
        char nd[320];
        snprintf(nd, sizeof nd, "\r\n%s", delim);
        const char *next = memmem(data, (size_t)(end - data), nd, dl + 2);
        cr_assert(next, "part %d has no end", parts);
        const char *fn = strstr(hdrs, "filename=\"");
        if (fn) {
            fn += 10;
            snprintf(a->filename, sizeof a->filename, "%.*s", (int)strcspn(fn, "\""), fn);
            a->file_len = (size_t)(next - data);
            a->file = malloc(a->file_len);
            memcpy(a->file, data, a->file_len);
        } else {
            cr_assert(strstr(hdrs, "name=\"params\""), "%s", hdrs);
            a->params = json_loadb(data, (size_t)(next - data), 0, NULL);
            cr_assert(a->params, "the params part is JSON");
        }
        p = next + 2;
    }
    cr_assert(a->params && a->file, "params and file parts");
}

/* ---- a small NRRD reader ---------------------------------------------------------------- */

typedef struct {
    int64_t sizes[3];
    double dirs[3][3], origin[3];
    char space[64], type[32], encoding[32];
    uint8_t *data;
} nrrd_img;

static void nrrd_vec(const char *s, double v[3])
{
    cr_assert_eq(sscanf(s, " (%lf,%lf,%lf)", &v[0], &v[1], &v[2]), 3, "vector %s", s);
}

static void nrrd_parse(const char *buf, size_t len, nrrd_img *m)
{
    memset(m, 0, sizeof *m);
    cr_assert(len > 8 && !strncmp(buf, "NRRD000", 7), "not an NRRD file");
    const char *hend = memmem(buf, len, "\n\n", 2);
    cr_assert(hend);
    char *h = strndup(buf, (size_t)(hend - buf)), *save = NULL;
    for (char *l = strtok_r(h, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        char *c = strstr(l, ": ");
        if (l[0] == '#' || !c)
            continue;
        *c = 0;
        const char *v = c + 2;
        if (!strcmp(l, "type"))
            snprintf(m->type, sizeof m->type, "%s", v);
        else if (!strcmp(l, "space"))
            snprintf(m->space, sizeof m->space, "%s", v);
        else if (!strcmp(l, "encoding"))
            snprintf(m->encoding, sizeof m->encoding, "%s", v);
        else if (!strcmp(l, "sizes"))
            cr_assert_eq(sscanf(v, "%ld %ld %ld", &m->sizes[0], &m->sizes[1], &m->sizes[2]), 3);
        else if (!strcmp(l, "space origin"))
            nrrd_vec(v, m->origin);
        else if (!strcmp(l, "space directions")) {
            const char *q = v;
            for (int a = 0; a < 3; a++, q = strchr(q, ')') + 1)
                nrrd_vec(q, m->dirs[a]);
        }
    }
    free(h);
    cr_assert_str_eq(m->type, "uint8");
    cr_assert_str_eq(m->encoding, "gzip");
    size_t n = (size_t)(m->sizes[0] * m->sizes[1] * m->sizes[2]);
    m->data = malloc(n);
    z_stream zs = {0};
    cr_assert_eq(inflateInit2(&zs, 16 + MAX_WBITS), Z_OK);
    zs.next_in = (unsigned char *)hend + 2;
    zs.avail_in = (uInt)(len - (size_t)(hend + 2 - buf));
    zs.next_out = m->data;
    zs.avail_out = (uInt)n;
    cr_assert_eq(inflate(&zs, Z_FINISH), Z_STREAM_END, "the gzip data holds exactly the voxels");
    cr_assert_eq(zs.total_out, n);
    inflateEnd(&zs);
}

/* The NRRD has the grid and the world placement of the NIfTI at path (LPS = RAS with x, y
 * negated), and labels in 0..7 only. */
static void check_geometry(const nrrd_img *m, const char *path, const vol_read_opts *ro)
{
    vol_geom g;
    char err[512];
    cr_assert_eq(vol_read_header(path, ro, &g, NULL, err, sizeof err), 0, "%s", err);
    cr_assert_str_eq(m->space, "left-posterior-superior");
    cr_assert(m->sizes[0] == g.nx && m->sizes[1] == g.ny && m->sizes[2] == g.nz);
    static const double flip[3] = {-1, -1, 1};
    for (int r = 0; r < 3; r++) {
        cr_assert(fabs(m->origin[r] - flip[r] * g.affine[r][3]) < 1e-6, "origin[%d] %.9g vs %.9g",
                  r, m->origin[r], flip[r] * g.affine[r][3]);
        for (int a = 0; a < 3; a++)
            cr_assert(fabs(m->dirs[a][r] - flip[r] * g.affine[r][a]) < 1e-6, "direction %d[%d]", a,
                      r);
    }
    for (int64_t i = 0; i < g.nx * g.ny * g.nz; i++)
        cr_assert_lt(m->data[i], VOL_NCLASSES, "label %d at voxel %ld", m->data[i], (long)i);
}

/* POST /segment through libcurl: vol=@path plus name=value fields (NULL-terminated), the answer
 * written to out. Returns the status. */
static long segment_to(const char *path, const char *const *fields, const char *accept,
                       const char *out)
{
    CURL *c = curl_easy_init();
    char url[256], ah[128];
    snprintf(url, sizeof url, "%s/segment", sv.srv.base);
    curl_mime *m = curl_mime_init(c);
    curl_mimepart *p = curl_mime_addpart(m);
    curl_mime_name(p, "vol");
    curl_mime_filedata(p, path);
    for (int i = 0; fields && fields[i]; i++) {
        const char *eq = strchr(fields[i], '=');
        char name[64];
        snprintf(name, sizeof name, "%.*s", (int)(eq - fields[i]), fields[i]);
        p = curl_mime_addpart(m);
        curl_mime_name(p, name);
        curl_mime_data(p, eq + 1, CURL_ZERO_TERMINATED);
    }
    struct curl_slist *hl = NULL;
    if (accept) {
        snprintf(ah, sizeof ah, "Accept: %s", accept);
        hl = curl_slist_append(hl, ah);
    }
    FILE *f = fopen(out, "wb");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_MIMEPOST, m);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, f);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 120L);
    cr_assert_eq(curl_easy_perform(c), CURLE_OK);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    fclose(f);
    curl_mime_free(m);
    curl_slist_free_all(hl);
    curl_easy_cleanup(c);
    return status;
}

/* mkdseg's own /segment on path (class indices, NIfTI): the reference labels. */
static uint8_t *segment_reference(const char *path, const char *volume)
{
    char out[700], err[512], vf[64];
    snprintf(out, sizeof out, "%s/ref.nii.gz", sv.dir);
    snprintf(vf, sizeof vf, "volume=%s", volume ? volume : "");
    const char *fields[] = {"labels=index", volume ? vf : NULL, NULL};
    long status = segment_to(path, fields, NULL, out);
    cr_assert_eq(status, 200, "/segment of %s: %ld", path, status);
    uint8_t *cls;
    vol_geom g;
    cr_assert_eq(vol_read_labels(out, NULL, VOL_LABELS_INDEX, &g, &cls, err, sizeof err), 0, "%s",
                 err);
    return cls;
}

static const char *detail(const rawresp *r)
{
    const char *d = json_string_value(json_object_get(r->json, "detail"));
    return d ? d : "";
}

/* The labels of /info/, of its model `model` and of an answer's label_names: 1..7 in the same
 * order, background left out. */
static void check_labels(json_t *info, const char *model, json_t *label_names)
{
    json_t *labels = json_object_get(info, "labels");
    cr_assert_eq(json_array_size(labels), VOL_NCLASSES - 1);
    json_t *ml = json_object_get(json_object_get(json_object_get(info, "models"), model), "labels");
    for (int c = 1; c < VOL_NCLASSES; c++) {
        const char *name = json_string_value(json_array_get(labels, (size_t)c - 1));
        cr_assert_str_eq(name, vol_class_names[c]);
        cr_assert_eq(json_integer_value(json_object_get(ml, name)), c, "model label %s", name);
        if (label_names)
            cr_assert_eq(json_integer_value(json_object_get(label_names, name)), c,
                         "label_names %s", name);
    }
}

/* ---- tests ------------------------------------------------------------------------------- */

/* The module's whole automatic-segmentation round with auth off. */
Test(slicer, protocol_round_trip, .timeout = 180)
{
    start(NULL);
    char img[700];
    snprintf(img, sizeof img, "%s/phantom CT.nii.gz", sv.dir);
    phantom(img, 5);
    rawresp r;
    wire("GET", "/monailabel/auth/", NULL, NULL, NULL, 0, &r);
    cr_assert_eq(r.status, 200);
    cr_assert(json_is_false(json_object_get(r.json, "enabled")), "%s", r.body);
    rawresp_free(&r);
    wire("GET", "/monailabel/info/", NULL, NULL, NULL, 0, &r);
    cr_assert_eq(r.status, 200, "%s", r.body);
    json_t *info = json_incref(r.json);
    cr_assert_null(json_object_get(info, "config"), "a top-level config makes the module refuse");
    json_t *def = json_object_get(json_object_get(info, "models"), "default");
    cr_assert_str_eq(json_string_value(json_object_get(def, "type")), "segmentation");
    cr_assert(json_is_string(json_object_get(def, "description")));
    cr_assert(json_is_integer(json_object_get(json_object_get(info, "datastore"), "total")));
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(info, "datastore"), "total")),
                 0);
    check_labels(info, "default", NULL);
    rawresp_free(&r);
    wire("GET", "/monailabel/train/?check_if_running=true", NULL, NULL, NULL, 0, &r);
    cr_assert_eq(r.status, 404, "a 200 would start the module's training poll");
    rawresp_free(&r);

    /* upload under a name with a space, URL-encoded as quote_plus does */
    ml_send("PUT", "/monailabel/datastore/?image=phantom+CT", NULL, "{\"client_id\": \"user-xyz\"}",
            img, &r);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_str_eq(json_string_value(json_object_get(r.json, "image")), "phantom CT");
    rawresp_free(&r);
    char *n = tdb_value(sv.pg, "SELECT name || '|' || ext || '|' || client_id FROM slicer_images");
    cr_assert_str_eq(n, "phantom CT|.nii.gz|user-xyz");
    free(n);

    ml_send("POST", "/monailabel/infer/default?image=phantom+CT", NULL,
            "{\"result_extension\": \".nrrd\", \"result_dtype\": \"uint8\", \"client_id\": "
            "\"user-xyz\"}",
            NULL, &r);
    cr_assert_eq(r.status, 200, "%s", r.body);
    mp_answer a;
    parse_answer(&r, &a);
    cr_assert_str_eq(a.filename, "phantom CT.nrrd");
    check_labels(info, "default", json_object_get(a.params, "label_names"));
    cr_assert(json_is_number(json_object_get(json_object_get(a.params, "latencies"), "total")));
    nrrd_img m;
    nrrd_parse(a.file, a.file_len, &m);
    check_geometry(&m, img, NULL);
    uint8_t *ref = segment_reference(img, NULL);
    long fg = 0;
    for (int64_t i = 0; i < m.sizes[0] * m.sizes[1] * m.sizes[2]; i++) {
        cr_assert_eq(m.data[i], ref[i], "voxel %ld: %d, /segment says %d", (long)i, m.data[i],
                     ref[i]);
        fg += m.data[i] != 0;
    }
    cr_assert_gt(fg, 0, "the phantom's heart is found");
    free(ref), free(m.data), free(a.file), json_decref(a.params);
    rawresp_free(&r);

    /* output=image: the file alone */
    ml_send("POST", "/monailabel/infer/default?image=phantom+CT&output=image", NULL, "{}", NULL,
            &r);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert(r.len > 8 && !memcmp(r.body, "NRRD0004", 8));
    rawresp_free(&r);
    wire("GET", "/monailabel/info/", NULL, NULL, NULL, 0, &r);
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(r.json, "datastore"), "total")),
                 1);
    rawresp_free(&r);

    /* errors the user sees as status and body: short, with detail */
    ml_send("POST", "/monailabel/infer/default?image=missing", NULL, "{}", NULL, &r);
    cr_assert_eq(r.status, 404);
    cr_assert(strstr(detail(&r), "'missing' is not in the datastore"), "%s", r.body);
    rawresp_free(&r);
    ml_send("POST", "/monailabel/infer/nosuchmodel?image=phantom+CT", NULL, "{}", NULL, &r);
    cr_assert_eq(r.status, 404);
    cr_assert(strstr(detail(&r), "model 'nosuchmodel' not found"), "%s", r.body);
    rawresp_free(&r);
    ml_send("PUT", "/monailabel/datastore/?image=bad", NULL, "{}", "models/default.safetensors",
            &r);
    cr_assert_eq(r.status, 415, "%s", r.body);
    cr_assert_null(strstr(r.body, sv.srv.dir), "no server path in %s", r.body);
    rawresp_free(&r);
    json_decref(info);
}

/* Auth on: the module logs in through /auth/token, then carries "bearer <token>". */
Test(slicer, auth_token_then_upload_and_infer, .timeout = 180)
{
    const char *extra[] = {"--auth", "on", NULL};
    start(extra);
    char url[1024], tokfile[700], img[700];
    tdb_url(sv.dbname, url);
    snprintf(tokfile, sizeof tokfile, "%s/token", sv.dir);
    tsh("'%s' token create --name slicer --database-url '%s' > '%s' 2>/dev/null",
        tenv("MKDSEG_TEST_BIN"), url, tokfile);
    size_t tl;
    char *tok = tslurp(tokfile, &tl);
    tok[strcspn(tok, "\r\n")] = 0;
    snprintf(img, sizeof img, "%s/ct a.nii.gz", sv.dir);
    phantom(img, 9);

    rawresp r;
    wire("GET", "/monailabel/auth/", NULL, NULL, NULL, 0, &r);
    cr_assert(json_is_true(json_object_get(r.json, "enabled")), "%s", r.body);
    rawresp_free(&r);
    const char *form_ct = "application/x-www-form-urlencoded";
    wire("POST", "/monailabel/auth/token", NULL, form_ct, "username=slicer&password=wrong", 30, &r);
    cr_assert_eq(r.status, 401, "%s", r.body);
    cr_assert(strstr(detail(&r), "wrong username or password"), "%s", r.body);
    rawresp_free(&r);
    char form[512];
    int fl = snprintf(form, sizeof form, "username=slicer&password=%s", tok);
    wire("POST", "/monailabel/auth/token", NULL, form_ct, form, (size_t)fl, &r);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_str_eq(json_string_value(json_object_get(r.json, "token_type")), "bearer");
    char authz[512];
    snprintf(authz, sizeof authz, "Authorization: bearer %s\r\n",
             json_string_value(json_object_get(r.json, "access_token")));
    rawresp_free(&r);

    wire("GET", "/monailabel/auth/token/valid", authz, NULL, NULL, 0, &r);
    cr_assert_eq(r.status, 200, "%s", r.body);
    rawresp_free(&r);
    wire("GET", "/monailabel/auth/token/valid", "Authorization: bearer nope\r\n", NULL, NULL, 0,
         &r);
    cr_assert_eq(r.status, 401);
    rawresp_free(&r);
    ml_send("PUT", "/monailabel/datastore/?image=ct+a", NULL, "{}", img, &r);
    cr_assert_eq(r.status, 401, "an upload without the token: %s", r.body);
    cr_assert(*detail(&r), "%s", r.body);
    rawresp_free(&r);
    ml_send("PUT", "/monailabel/datastore/?image=ct+a", authz, "{}", img, &r);
    cr_assert_eq(r.status, 200, "%s", r.body);
    rawresp_free(&r);
    ml_send("POST", "/monailabel/infer/default?image=ct+a", authz,
            "{\"result_extension\": \".nrrd\"}", NULL, &r);
    cr_assert_eq(r.status, 200, "%s", r.body);
    mp_answer a;
    parse_answer(&r, &a);
    nrrd_img m;
    nrrd_parse(a.file, a.file_len, &m);
    check_geometry(&m, img, NULL);
    free(m.data), free(a.file), json_decref(a.params), free(tok);
    rawresp_free(&r);
}

/* A 4-D file of three volumes: 422 without a volume, the chosen volume's labels and geometry
 * with one, through /segment and through the protocol. */
Test(slicer, four_d_volume_choice, .timeout = 240)
{
    start(NULL);
    char img[700], four[700], three[700];
    snprintf(img, sizeof img, "%s/base.nii.gz", sv.dir);
    snprintf(four, sizeof four, "%s/four.nii.gz", sv.dir);
    snprintf(three, sizeof three, "%s/vol1.nii.gz", sv.dir);
    phantom(img, 4);
    tsh(PY " tests/nibabel/nrrd_helper.py split4d '%s' '%s' '%s' 3", img, four, three);

    /* /segment: volume 1 of the 4-D file segments exactly like its 3-D copy */
    uint8_t *ref = segment_reference(three, NULL), *pick = segment_reference(four, "1");
    for (int i = 0; i < 40 * 40 * 16; i++)
        cr_assert_eq(pick[i], ref[i], "voxel %d", i);
    free(pick);
    char out[700];
    snprintf(out, sizeof out, "%s/err.json", sv.dir);
    cr_assert_eq(segment_to(four, NULL, NULL, out), 422, "a multi-volume file without volume");
    size_t el;
    char *eb = tslurp(out, &el);
    cr_assert(strstr(eb, "3 volumes") && strstr(eb, "\"field\":\"vol\""), "%s", eb);
    free(eb);
    const char *bad[] = {"volume=3", NULL};
    cr_assert_eq(segment_to(four, bad, NULL, out), 422, "volume 3 of three");

    rawresp r;
    ml_send("PUT", "/monailabel/datastore/?image=four+d", NULL, "{}", four, &r);
    cr_assert_eq(r.status, 200, "a 4-D file is stored: %s", r.body);
    rawresp_free(&r);
    ml_send("POST", "/monailabel/infer/default?image=four+d", NULL, "{}", NULL, &r);
    cr_assert_eq(r.status, 422, "%s", r.body);
    cr_assert(strstr(detail(&r), "image 'four d': a 4-D image with 3 volumes"), "%s", r.body);
    cr_assert(strstr(detail(&r), "params volume"), "the answer says how to choose: %s", r.body);
    cr_assert_null(strstr(r.body, sv.srv.dir), "no server path in %s", r.body);
    rawresp_free(&r);
    ml_send("POST", "/monailabel/infer/default?image=four+d", NULL, "{\"volume\": 3}", NULL, &r);
    cr_assert_eq(r.status, 422, "%s", r.body);
    rawresp_free(&r);
    ml_send("POST", "/monailabel/infer/default?image=four+d", NULL, "{\"volume\": 1}", NULL, &r);
    cr_assert_eq(r.status, 200, "%s", r.body);
    mp_answer a;
    parse_answer(&r, &a);
    nrrd_img m;
    nrrd_parse(a.file, a.file_len, &m);
    vol_read_opts ro = {.has_volume = 1, .volume = 1};
    check_geometry(&m, four, &ro);
    for (int i = 0; i < 40 * 40 * 16; i++)
        cr_assert_eq(m.data[i], ref[i], "voxel %d", i);
    free(ref), free(m.data), free(a.file), json_decref(a.params);
    rawresp_free(&r);
}

/* The prefix is a setting: the protocol answers under it and not under the default; a prefix
 * that would hide one of mkdseg's routes stops the server at start-up. */
Test(slicer, prefix_setting, .timeout = 120)
{
    const char *extra[] = {"--monailabel-prefix", "/slicer/ml", NULL};
    start(extra);
    rawresp r;
    wire("GET", "/slicer/ml/info/", NULL, NULL, NULL, 0, &r);
    cr_assert_eq(r.status, 200, "%s", r.body);
    rawresp_free(&r);
    wire("GET", "/monailabel/info/", NULL, NULL, NULL, 0, &r);
    cr_assert_eq(r.status, 404);
    rawresp_free(&r);
    wire("GET", "/healthz", NULL, NULL, NULL, 0, &r);
    cr_assert_eq(r.status, 200);
    rawresp_free(&r);
    tsrv_stop(&sv.srv);
    char url[1024];
    tdb_url(sv.dbname, url);
    const char *bad[] = {"--monailabel-prefix", "/models", NULL};
    tsrv s2;
    cr_assert_eq(tsrv_start(&s2, url, bad), -1, "--monailabel-prefix /models hides GET /models");
}

/* NRRD from /segment (format=nrrd, or Accept) and from the CLI (--out x.nrrd): decoded by
 * teem-unu, the same voxels and world positions as the NIfTI twin read by nibabel. */
Test(slicer, segment_and_cli_write_nrrd, .timeout = 180)
{
    start(NULL);
    char img[700], nii[700], nrrd[700], nrrd2[700], cli_nii[700], cli_nrrd[700];
    snprintf(img, sizeof img, "%s/ct.nii.gz", sv.dir);
    snprintf(nii, sizeof nii, "%s/seg.nii.gz", sv.dir);
    snprintf(nrrd, sizeof nrrd, "%s/seg.nrrd", sv.dir);
    snprintf(nrrd2, sizeof nrrd2, "%s/seg2.nrrd", sv.dir);
    snprintf(cli_nii, sizeof cli_nii, "%s/cli.nii.gz", sv.dir);
    snprintf(cli_nrrd, sizeof cli_nrrd, "%s/cli.nrrd", sv.dir);
    phantom(img, 6);
    const char *nifti[] = {"labels=mmwhs", NULL},
               *as_nrrd[] = {"labels=mmwhs", "format=nrrd", NULL};
    cr_assert_eq(segment_to(img, nifti, NULL, nii), 200);
    cr_assert_eq(segment_to(img, as_nrrd, NULL, nrrd), 200);
    cr_assert_eq(segment_to(img, nifti, "application/x-nrrd", nrrd2), 200);
    tsh(PY " tests/nibabel/nrrd_helper.py check '%s' '%s' >/dev/null", nrrd, nii);
    tsh(PY " tests/nibabel/nrrd_helper.py check '%s' '%s' >/dev/null", nrrd2, nii);
    const char *badf[] = {"format=dicom", NULL};
    char out[700];
    snprintf(out, sizeof out, "%s/err.json", sv.dir);
    cr_assert_eq(segment_to(img, badf, NULL, out), 422);
    tsh("'%s' segment --model models/default.safetensors --in '%s' --out '%s' --labels index "
        "--threads 1 >/dev/null",
        tenv("MKDSEG_TEST_BIN"), img, cli_nii);
    tsh("'%s' segment --model models/default.safetensors --in '%s' --out '%s' --labels index "
        "--threads 1 >/dev/null",
        tenv("MKDSEG_TEST_BIN"), img, cli_nrrd);
    tsh(PY " tests/nibabel/nrrd_helper.py check '%s' '%s' >/dev/null", cli_nrrd, cli_nii);
}

/* The module waits on its GUI thread: auth/, info/ and train/ answer while a segmentation holds
 * the only engine thread (MKDSEG_SEGMENT_DELAY_MS keeps it busy for 8 s). */
typedef struct {
    atomic_int done;
    int status;
} busy_infer;

static void *infer_thread(void *arg)
{
    busy_infer *b = arg;
    rawresp r;
    ml_send("POST", "/monailabel/infer/default?image=busy", NULL, "{}", NULL, &r);
    b->status = r.status;
    rawresp_free(&r);
    atomic_store(&b->done, 1);
    return NULL;
}

static long in_flight(void)
{
    rawresp r;
    wire("GET", "/metrics", NULL, NULL, NULL, 0, &r);
    static const char key[] = "\nmkdseg_http_requests_in_flight ";
    const char *p = strstr(r.body, key);
    long n = p ? atol(p + sizeof key - 1) : -1;
    rawresp_free(&r);
    return n;
}

Test(slicer, info_answers_while_the_engine_is_busy, .timeout = 120)
{
    setenv("MKDSEG_SEGMENT_DELAY_MS", "8000", 1);
    start(NULL);
    unsetenv("MKDSEG_SEGMENT_DELAY_MS");
    char img[700];
    snprintf(img, sizeof img, "%s/busy.nii.gz", sv.dir);
    phantom(img, 2);
    rawresp r;
    ml_send("PUT", "/monailabel/datastore/?image=busy", NULL, "{}", img, &r);
    cr_assert_eq(r.status, 200, "%s", r.body);
    rawresp_free(&r);
    busy_infer b = {0};
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, infer_thread, &b), 0);
    while (in_flight() < 2 && !atomic_load(&b.done))
        ; /* the infer request is in the server (this /metrics request is the other one) */
    static const char *const paths[] = {"/monailabel/auth/", "/monailabel/info/",
                                        "/monailabel/train/?check_if_running=true"};
    for (int i = 0; i < 3; i++) {
        wire("GET", paths[i], NULL, NULL, NULL, 0, &r);
        cr_assert(r.status == 200 || r.status == 404, "%s: %d", paths[i], r.status);
        rawresp_free(&r);
    }
    cr_assert_not(atomic_load(&b.done), "auth/, info/ and train/ were answered while infer ran");
    pthread_join(th, NULL);
    cr_assert_eq(b.status, 200);
}

/* The same round through Python's http.client and cgi.FieldStorage, the parser the module is
 * built on (tests/tools/ml_client.py): it reads the answer with the Content-Length. */
Test(slicer, python_cgi_client_reads_the_answer, .timeout = 180)
{
    start(NULL);
    char img[700], out[700], cmd[2400], line[4096];
    snprintf(img, sizeof img, "%s/heart scan 2.nii.gz", sv.dir);
    snprintf(out, sizeof out, "%s/result.nrrd", sv.dir);
    phantom(img, 8);
    snprintf(cmd, sizeof cmd,
             PY " tests/tools/ml_client.py %d /monailabel 'heart scan 2' '%s' '%s'", sv.srv.port,
             img, out);
    FILE *p = popen(cmd, "r");
    cr_assert(p);
    cr_assert(fgets(line, sizeof line, p), "the client printed nothing");
    cr_assert_eq(pclose(p), 0, "the client failed: %s", line);
    json_t *j = json_loads(line, 0, NULL);
    cr_assert(j, "%s", line);
    cr_assert_str_eq(json_string_value(json_object_get(j, "filename")), "heart scan 2.nrrd");
    json_t *names = json_object_get(json_object_get(j, "params"), "label_names");
    for (int c = 1; c < VOL_NCLASSES; c++)
        cr_assert_eq(json_integer_value(json_object_get(names, vol_class_names[c])), c);
    json_decref(j);
    size_t len;
    char *buf = tslurp(out, &len);
    nrrd_img m;
    nrrd_parse(buf, len, &m);
    check_geometry(&m, img, NULL);
    uint8_t *ref = segment_reference(img, NULL);
    cr_assert_eq(memcmp(m.data, ref, 40 * 40 * 16), 0, "the labels of /segment");
    free(ref), free(m.data), free(buf);
}
