/* test_http_svc.c: segmentation, volumes, models, jobs and Dice through libcurl against the real `mkdseg serve` and
 * a real PostgreSQL: /segment (NIfTI and JSON answers, errors, queue full), models, datasets
 * and volumes, training and evaluation jobs (SSE, cancel), /dice, bearer tokens, dice-check,
 * and one complete round at a tiny size. Each test gets a fresh database (tdb_create) and its
 * own server; volumes are tiny phantoms (40x40x16) written by `mkdseg phantom`. */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <curl/curl.h>

#include "../lib/tform.h"
#include "../lib/tsvc.h"
#include "vol.h"

static tsvc sv; /* the service, its database and scratch folder */

/* ---- helpers ------------------------------------------------------------------------------ */

/* A phantom pair <sv.dir>/<name>.nii.gz and <sv.dir>/<name>_label.nii.gz (40x40x16). */
static void phantom(const char *name, const char *modality, int seed)
{
    tsh("'%s' phantom --modality %s --seed %d --shape 40,40,16 --image '%s/%s.nii.gz' --label "
        "'%s/%s_label.nii.gz' 2>/dev/null",
        tenv("MKDSEG_TEST_BIN"), modality, seed, sv.dir, name, sv.dir, name);
}

static void start(const char *const *extra) { tsvc_start(&sv, "svc", extra); }

static void stop(void)
{
    int rc = tsvc_stop(&sv);
    cr_expect_eq(rc, 0, "the server must exit 0 on SIGTERM (got %d)", rc);
}

/* a failed assertion ends the test early: the server and the database go anyway */
static void cleanup(void) { tsvc_stop(&sv); }
TestSuite(svc, .fini = cleanup);

/* One multipart request to the suite's server (tform_post, tests/lib/tform.h). */
static int tform(const char *path, const char *const *parts, const char *const *headers, tresp *out)
{
    return tform_post(&sv.srv, path, parts, headers, out);
}

static const char *const json_ct[] = {"Content-Type: application/json", NULL};

static const char *err_code(const tresp *r)
{
    return json_string_value(json_object_get(json_object_get(r->json, "error"), "code"));
}
static const char *err_msg(const tresp *r)
{
    const char *m =
        json_string_value(json_object_get(json_object_get(r->json, "error"), "message"));
    return m ? m : "";
}

static long long create_dataset(const char *name, const char *modality)
{
    char body[256];
    snprintf(body, sizeof body, "{\"name\":\"%s\",\"modality\":\"%s\"}", name, modality);
    tresp r;
    cr_assert_eq(thttp(&sv.srv, "POST", "/datasets", json_ct, body, strlen(body), &r), 0);
    cr_assert_eq(r.status, 201, "%s", r.body);
    long long id = (long long)json_integer_value(json_object_get(r.json, "id"));
    tresp_free(&r);
    return id;
}

static long long add_volume(long long ds, const char *name)
{
    char path[64], img[700], lab[700];
    snprintf(path, sizeof path, "/datasets/%lld/volumes", ds);
    snprintf(img, sizeof img, "image=@%s/%s.nii.gz", sv.dir, name);
    snprintf(lab, sizeof lab, "label=@%s/%s_label.nii.gz", sv.dir, name);
    const char *parts[] = {img, lab, NULL};
    tresp r;
    cr_assert_eq(tform(path, parts, NULL, &r), 0);
    cr_assert_eq(r.status, 201, "%s", r.body);
    long long id = (long long)json_integer_value(json_object_get(r.json, "id"));
    tresp_free(&r);
    return id;
}

/* GET a JSON resource; returns the parsed body (new ref). */
static json_t *get_json(const char *path)
{
    tresp r;
    cr_assert_eq(thttp(&sv.srv, "GET", path, NULL, NULL, 0, &r), 0);
    cr_assert_eq(r.status, 200, "GET %s: %ld %s", path, r.status, r.body);
    json_t *j = json_incref(r.json);
    tresp_free(&r);
    return j;
}

/* Waits until job id reaches a final state (or `want` when not NULL). Returns the job. */
static json_t *wait_job(long long id, const char *want, int timeout_s)
{
    char path[64];
    snprintf(path, sizeof path, "/jobs/%lld", id);
    for (int i = 0; i < timeout_s * 10; i++) {
        json_t *j = get_json(path);
        const char *st = json_string_value(json_object_get(j, "state"));
        if (want ? !strcmp(st, want)
                 : (!strcmp(st, "succeeded") || !strcmp(st, "failed") || !strcmp(st, "cancelled")))
            return j;
        json_decref(j);
        usleep(100000);
    }
    cr_assert_fail("job %lld did not reach %s in %d s", id, want ? want : "a final state",
                   timeout_s);
    return NULL;
}

/* Dice of every class of the label map `mask` against `truth`, counted voxel by voxel (1 when a
 * class is absent from both), in per[]; returns their mean over the seven structures. */
static double dice_by_count(const char *mask, const char *truth, double per[VOL_NCLASSES])
{
    vol_geom ga, gb;
    uint8_t *a = NULL, *b = NULL;
    char err[512];
    cr_assert_eq(vol_read_labels(mask, NULL, VOL_LABELS_AUTO, &ga, &a, err, sizeof err), 0, "%s",
                 err);
    cr_assert_eq(vol_read_labels(truth, NULL, VOL_LABELS_AUTO, &gb, &b, err, sizeof err), 0, "%s",
                 err);
    int64_t n = ga.nx * ga.ny * ga.nz;
    cr_assert_eq(n, gb.nx * gb.ny * gb.nz);
    long long na[VOL_NCLASSES] = {0}, nb[VOL_NCLASSES] = {0}, both[VOL_NCLASSES] = {0};
    for (int64_t i = 0; i < n; i++) {
        na[a[i]]++, nb[b[i]]++;
        both[a[i]] += a[i] == b[i];
    }
    double mean = 0;
    for (int c = 0; c < VOL_NCLASSES; c++) {
        per[c] = na[c] + nb[c] ? 2.0 * (double)both[c] / (double)(na[c] + nb[c]) : 1.0;
        mean += c ? per[c] / (VOL_NCLASSES - 1) : 0;
    }
    free(a);
    free(b);
    return mean;
}

/* ---- /segment ----------------------------------------------------------------------------- */

Test(svc, segment_nifti_json_and_mask, .init = NULL, .timeout = 120)
{
    start(NULL);
    phantom("ct", "ct", 5);
    /* the default model was registered and promoted at start-up */
    json_t *ms = get_json("/models");
    cr_assert_eq(json_array_size(json_object_get(ms, "models")), 1, "%s", json_dumps(ms, 0));
    json_t *m0 = json_array_get(json_object_get(ms, "models"), 0);
    cr_assert(json_is_true(json_object_get(m0, "is_default")));
    long long mid = (long long)json_integer_value(json_object_get(m0, "id"));
    json_decref(ms);

    char vol[600];
    snprintf(vol, sizeof vol, "vol=@%s/ct.nii.gz", sv.dir);
    const char *parts[] = {vol, NULL};
    tresp r;
    cr_assert_eq(tform("/segment", parts, NULL, &r), 0);
    cr_assert_eq(r.status, 200, "%s", r.body);
    char h[128];
    cr_assert_str_eq(tresp_header(&r, "Content-Type", h, sizeof h), "application/gzip");
    cr_assert_eq(atoll(tresp_header(&r, "X-Mkdseg-Model", h, sizeof h)), mid);
    cr_assert(tresp_header(&r, "X-Mkdseg-Time-Ms", h, sizeof h) && atof(h) > 0);
    cr_assert(r.len > 2 && (unsigned char)r.body[0] == 0x1f && (unsigned char)r.body[1] == 0x8b,
              "gzip answer");
    /* the label map lies on the input's grid */
    char out[600], err[256];
    snprintf(out, sizeof out, "%s/seg.nii.gz", sv.dir);
    FILE *f = fopen(out, "wb");
    cr_assert(f);
    fwrite(r.body, 1, r.len, f);
    fclose(f);
    tresp_free(&r);
    vol_geom gi, go;
    vol_header ho;
    char in[600];
    snprintf(in, sizeof in, "%s/ct.nii.gz", sv.dir);
    cr_assert_eq(vol_read_header(in, NULL, &gi, NULL, err, sizeof err), 0, "%s", err);
    cr_assert_eq(vol_read_header(out, NULL, &go, &ho, err, sizeof err), 0, "%s", err);
    cr_assert_eq(vol_geom_same(&gi, &go, 1e-4, err, sizeof err), 0, "%s", err);
    cr_assert_eq(ho.datatype, VOL_DT_INT16, "MM-WHS codes by default");

    /* JSON answer with a label: Dice per structure, stored mask */
    char lab[600];
    snprintf(lab, sizeof lab, "label=@%s/ct_label.nii.gz", sv.dir);
    const char *parts2[] = {vol, lab, "labels=index", NULL};
    const char *acc[] = {"Accept: application/json", NULL};
    cr_assert_eq(tform("/segment", parts2, acc, &r), 0);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_eq(json_integer_value(json_object_get(r.json, "model")), mid);
    json_t *dice = json_incref(json_object_get(r.json, "dice")); /* kept past this answer */
    cr_assert(json_is_object(dice), "%s", r.body);
    double md = json_number_value(json_object_get(dice, "mean"));
    json_t *lv = json_object_get(json_object_get(r.json, "structures"), "LV");
    cr_assert(json_is_integer(json_object_get(lv, "voxels")), "%s", r.body);
    cr_assert(json_number_value(json_object_get(json_object_get(r.json, "timings_ms"), "total")) >
              0);
    char url[128];
    snprintf(url, sizeof url, "%s", json_string_value(json_object_get(r.json, "mask_url")));
    long long iid = (long long)json_integer_value(json_object_get(r.json, "id"));
    tresp_free(&r);
    cr_assert_eq(thttp(&sv.srv, "GET", url, NULL, NULL, 0, &r), 0);
    cr_assert_eq(r.status, 200);
    cr_assert(r.len > 100 && (unsigned char)r.body[0] == 0x1f);
    /* the Dice answered is the one of the stored mask against the label, counted here */
    char maskf[600];
    snprintf(maskf, sizeof maskf, "%s/mask.nii.gz", sv.dir);
    f = fopen(maskf, "wb");
    cr_assert(f);
    fwrite(r.body, 1, r.len, f);
    fclose(f);
    tresp_free(&r);
    double per[VOL_NCLASSES];
    cr_assert_float_eq(md, dice_by_count(maskf, lab + strlen("label=@"), per), 1e-9, "mean Dice %g",
                       md);
    for (int c = 1; c < VOL_NCLASSES; c++)
        cr_assert_float_eq(json_number_value(json_object_get(dice, vol_class_names[c])), per[c],
                           1e-9, "%s", vol_class_names[c]);
    json_decref(dice);
    /* every inference is recorded */
    char ids[24];
    snprintf(ids, sizeof ids, "%lld", iid);
    char *n = tdb_value(sv.pg, "SELECT count(*) FROM inferences WHERE mask_path IS NOT NULL");
    cr_assert_str_eq(n, "2");
    free(n);
    n = tdb_valuep(sv.pg,
                   "SELECT dice->>'mean' IS NOT NULL AND input_sha256 ~ '^[0-9a-f]{64}$' FROM "
                   "inferences WHERE id = $1::bigint",
                   1, ids);
    cr_assert_str_eq(n, "t");
    free(n);

    /* an uncompressed upload gets an uncompressed answer */
    char raw[600];
    snprintf(raw, sizeof raw, "%s/ct.nii", sv.dir);
    tsh("gzip -dc '%s' > '%s'", in, raw);
    snprintf(vol, sizeof vol, "vol=@%s", raw);
    const char *parts3[] = {vol, "tta=1", NULL};
    cr_assert_eq(tform("/segment", parts3, NULL, &r), 0);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_str_eq(tresp_header(&r, "Content-Type", h, sizeof h), "application/octet-stream");
    cr_assert(r.len >= 352 && !memcmp(r.body + 344, "n+1", 4), "plain NIfTI-1");
    tresp_free(&r);
    stop();
}

Test(svc, segment_errors, .timeout = 120)
{
    const char *extra[] = {"--max-body", "40K", "--max-json", "8K", NULL};
    start(extra);
    phantom("ct", "ct", 6);
    tresp r;
    /* missing field */
    const char *p1[] = {"labels=mmwhs", NULL};
    cr_assert_eq(tform("/segment", p1, NULL, &r), 0);
    cr_assert_eq(r.status, 400, "%s", r.body);
    cr_assert_str_eq(err_code(&r), "missing_field");
    tresp_free(&r);
    /* not NIfTI: 415 with the reason */
    const char *p2[] = {"vol=@Makefile", NULL};
    cr_assert_eq(tform("/segment", p2, NULL, &r), 0);
    cr_assert_eq(r.status, 415, "%s", r.body);
    cr_assert(strstr(err_msg(&r), "not a NIfTI file"), "%s", r.body);
    tresp_free(&r);
    /* NIfTI header but bad data: 422 with vol_read's reason */
    const char *p3[] = {"vol=@tests/data/truncated.nii", NULL};
    cr_assert_eq(tform("/segment", p3, NULL, &r), 0);
    cr_assert_eq(r.status, 422, "%s", r.body);
    cr_assert(strstr(err_msg(&r), "truncated"), "%s", r.body);
    tresp_free(&r);
    /* not multipart, and not a DICOMweb request (JSON) either */
    const char *text_ct[] = {"Content-Type: text/plain", NULL};
    cr_assert_eq(thttp(&sv.srv, "POST", "/segment", text_ct, "{}", 2, &r), 0);
    cr_assert_eq(r.status, 415, "%s", r.body);
    tresp_free(&r);
    cr_assert_eq(thttp(&sv.srv, "POST", "/segment", json_ct, "{}", 2, &r), 0);
    cr_assert_eq(r.status, 400, "%s", r.body);
    cr_assert_str_eq(err_code(&r), "missing_field");
    tresp_free(&r);
    /* too large (max-body 40K; the uncompressed volume is about 51 KB, the gzip one 33 KB) */
    char in[600], raw[600], vol[700];
    snprintf(in, sizeof in, "%s/ct.nii.gz", sv.dir);
    snprintf(raw, sizeof raw, "%s/ct.nii", sv.dir);
    tsh("gzip -dc '%s' > '%s'", in, raw);
    snprintf(vol, sizeof vol, "vol=@%s", raw);
    const char *p4[] = {vol, NULL};
    cr_assert_eq(tform("/segment", p4, NULL, &r), 0);
    cr_assert_eq(r.status, 413, "%s", r.body);
    tresp_free(&r);
    /* unknown model, bad labels value */
    snprintf(vol, sizeof vol, "vol=@%s", in);
    const char *p5[] = {vol, "model=nosuchmodel", NULL};
    cr_assert_eq(tform("/segment", p5, NULL, &r), 0);
    cr_assert_eq(r.status, 404, "%s", r.body);
    tresp_free(&r);
    const char *p6[] = {vol, "labels=codes", NULL};
    cr_assert_eq(tform("/segment", p6, NULL, &r), 0);
    cr_assert_eq(r.status, 422, "%s", r.body);
    tresp_free(&r);
    /* no partial or temporary upload is left behind */
    char cmd[700];
    snprintf(cmd, sizeof cmd, "test -z \"$(ls '%s/data/tmp' 2>/dev/null)\"", sv.srv.dir);
    cr_assert_eq(system(cmd), 0, "temporary files left in %s/data/tmp", sv.srv.dir);
    /* unknown resources */
    const char *paths[] = {
        "/models/999",      "/models/999/weights", "/inferences/999/mask", "/jobs/999",
        "/jobs/999/events", "/datasets/999",       "/models/abc",          NULL};
    for (int i = 0; paths[i]; i++) {
        cr_assert_eq(thttp(&sv.srv, "GET", paths[i], NULL, NULL, 0, &r), 0);
        cr_assert_eq(r.status, 404, "%s: %ld %s", paths[i], r.status, r.body);
        tresp_free(&r);
    }
    cr_assert_eq(thttp(&sv.srv, "POST", "/models/999/promote", NULL, NULL, 0, &r), 0);
    cr_assert_eq(r.status, 404, "%s", r.body);
    tresp_free(&r);
    const char *p7[] = {vol, NULL};
    char lab[700];
    snprintf(lab, sizeof lab, "image=@%s", in);
    const char *p8[] = {lab, NULL};
    (void)p7;
    cr_assert_eq(tform("/datasets/999/volumes", p8, NULL, &r), 0);
    cr_assert_eq(r.status, 404, "%s", r.body);
    tresp_free(&r);
    const char *tr = "{\"target_dataset\": 999, \"method\": \"baseline\"}";
    cr_assert_eq(thttp(&sv.srv, "POST", "/train", json_ct, tr, strlen(tr), &r), 0);
    cr_assert_eq(r.status, 404, "%s", r.body);
    tresp_free(&r);
    stop();
}

typedef struct {
    long status;
    char retry[16];
    int done; /* set (atomically) when the answer is in */
} seg_result;

static char *g_vol;

static void *seg_thread(void *arg)
{
    seg_result *res = arg;
    const char *parts[] = {g_vol, NULL};
    tresp r;
    if (tform("/segment", parts, NULL, &r) == 0) {
        res->status = r.status;
        if (!tresp_header(&r, "Retry-After", res->retry, sizeof res->retry))
            res->retry[0] = 0;
    }
    tresp_free(&r);
    __atomic_store_n(&res->done, 1, __ATOMIC_SEQ_CST);
    return NULL;
}

/* How many times `needle` occurs in the server's log. */
static int log_count(const char *needle)
{
    FILE *f = fopen(sv.srv.log, "r");
    int n = 0;
    char line[8192];
    while (f && fgets(line, sizeof line, f))
        n += strstr(line, needle) != NULL;
    if (f)
        fclose(f);
    return n;
}

/* One engine worker and a queue of one, the worker held at a gate file
 * (MKDSEG_TEST_SEGMENT_GATE) until the test removes it: of four requests in flight exactly two
 * are taken (one held, one waiting) and two are refused with 503 + Retry-After, and /healthz
 * answers while the pool is full. Every wait is on an event; the limits only catch hangs. */
Test(svc, queue_full_503_and_health_stays_fast, .timeout = 180)
{
    const char *tmp = getenv("MKDSEG_TEST_TMP");
    char gate[600];
    snprintf(gate, sizeof gate, "%s/gate.%d", tmp && *tmp ? tmp : "/tmp", (int)getpid());
    FILE *gf = fopen(gate, "w");
    cr_assert(gf);
    fclose(gf);
    setenv("MKDSEG_TEST_SEGMENT_GATE", gate, 1);
    const char *extra[] = {"--queue-size", "1", "--segment-workers", "1", NULL};
    start(extra);
    unsetenv("MKDSEG_TEST_SEGMENT_GATE");
    phantom("ct", "ct", 7);
    char vol[600];
    snprintf(vol, sizeof vol, "vol=@%s/ct.nii.gz", sv.dir);
    g_vol = vol;
    pthread_t th[4];
    seg_result res[4];
    memset(res, 0, sizeof res);
    for (int i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, seg_thread, &res[i]);
    /* two answers come back while the gate is shut, and the held task has started */
    int answered = 0;
    for (int i = 0; i < 1200 && (answered < 2 || !log_count("segmentation held")); i++) {
        answered = 0;
        for (int k = 0; k < 4; k++)
            answered += __atomic_load_n(&res[k].done, __ATOMIC_SEQ_CST);
        usleep(50000);
    }
    cr_assert_eq(answered, 2, "two of four requests answered while the pool was held");
    cr_assert_eq(log_count("segmentation held"), 1, "one engine worker holds one task");
    tresp r;
    cr_assert_eq(thttp(&sv.srv, "GET", "/healthz", NULL, NULL, 0, &r), 0,
                 "/healthz answers while the pool is full");
    cr_assert_eq(r.status, 200);
    tresp_free(&r);
    for (int k = 0; k < 4; k++)
        if (__atomic_load_n(&res[k].done, __ATOMIC_SEQ_CST)) {
            cr_assert_eq(res[k].status, 503, "a refused request: %ld", res[k].status);
            cr_assert(atoi(res[k].retry) > 0, "503 without Retry-After");
        }
    unlink(gate);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    int ok = 0, full = 0;
    for (int i = 0; i < 4; i++) {
        ok += res[i].status == 200;
        full += res[i].status == 503;
    }
    cr_assert_eq(ok, 2, "statuses %ld %ld %ld %ld", res[0].status, res[1].status, res[2].status,
                 res[3].status);
    cr_assert_eq(full, 2);
    cr_assert_eq(log_count("segmentation held"), 1, "the waiting task ran after the gate opened");
    stop();
}

/* ---- volumes and datasets ----------------------------------------------------------------- */

Test(svc, volumes_validated_and_stored_once, .timeout = 120)
{
    start(NULL);
    phantom("a", "ct", 11);
    phantom("b", "ct", 12);
    long long d1 = create_dataset("d1", "ct"), d2 = create_dataset("d2", "ct");
    long long v1 = add_volume(d1, "a");
    cr_assert_gt(v1, 0);
    tresp r;
    char path[64], img[700], lab[700];
    /* the same image twice in one dataset: 409 */
    snprintf(path, sizeof path, "/datasets/%lld/volumes", d1);
    snprintf(img, sizeof img, "image=@%s/a.nii.gz", sv.dir);
    snprintf(lab, sizeof lab, "label=@%s/a_label.nii.gz", sv.dir);
    const char *same[] = {img, lab, NULL};
    cr_assert_eq(tform(path, same, NULL, &r), 0);
    cr_assert_eq(r.status, 409, "%s", r.body);
    tresp_free(&r);
    /* a label on another grid: 422 */
    snprintf(lab, sizeof lab, "label=@%s/b_label.nii.gz", sv.dir);
    const char *grid[] = {img, lab, NULL};
    snprintf(path, sizeof path, "/datasets/%lld/volumes", d2);
    cr_assert_eq(tform(path, grid, NULL, &r), 0);
    cr_assert_eq(r.status, 422, "%s", r.body);
    cr_assert(strstr(err_msg(&r), "grid"), "%s", r.body);
    tresp_free(&r);
    /* unknown label values (the CT image itself as a label map): 422 naming them */
    snprintf(lab, sizeof lab, "label=@%s/a.nii.gz", sv.dir);
    const char *vals[] = {img, lab, NULL};
    cr_assert_eq(tform(path, vals, NULL, &r), 0);
    cr_assert_eq(r.status, 422, "%s", r.body);
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(r.json, "error"), "field")),
                     "label");
    tresp_free(&r);
    /* the same files in another dataset: stored once */
    char cmd[700], count[600];
    snprintf(count, sizeof count, "%s/blobs.count", sv.dir);
    snprintf(cmd, sizeof cmd, "find '%s/data/blobs' -type f | wc -l > '%s'", sv.srv.dir, count);
    tsh("%s", cmd);
    long long v2 = add_volume(d2, "a");
    cr_assert_neq(v1, v2);
    snprintf(cmd, sizeof cmd, "test $(find '%s/data/blobs' -type f | wc -l) -eq $(cat '%s')",
             sv.srv.dir, count);
    cr_assert_eq(system(cmd), 0, "image and label stored once each");
    /* GET /datasets/{id}: dims, spacing, label statistics */
    snprintf(path, sizeof path, "/datasets/%lld", d2);
    json_t *d = get_json(path);
    json_t *v = json_array_get(json_object_get(d, "volumes"), 0);
    cr_assert_eq(json_integer_value(json_array_get(json_object_get(v, "dims"), 0)), 40);
    cr_assert_eq(json_integer_value(json_array_get(json_object_get(v, "dims"), 2)), 16);
    cr_assert(json_is_true(json_object_get(v, "has_label")));
    cr_assert_gt(json_integer_value(json_object_get(
                     json_object_get(json_object_get(v, "label_stats"), "LV"), "voxels")),
                 0);
    json_decref(d);
    /* delete: 204, then 404 */
    cr_assert_eq(thttp(&sv.srv, "DELETE", path, NULL, NULL, 0, &r), 0);
    cr_assert_eq(r.status, 204, "%s", r.body);
    tresp_free(&r);
    cr_assert_eq(thttp(&sv.srv, "DELETE", path, NULL, NULL, 0, &r), 0);
    cr_assert_eq(r.status, 404, "%s", r.body);
    tresp_free(&r);
    stop();
}

/* ---- auth ----------------------------------------------------------------------------------- */

Test(svc, bearer_tokens, .timeout = 120)
{
    const char *extra[] = {"--auth", "on", NULL};
    start(extra);
    phantom("ct", "ct", 8);
    char url[1024], tokfile[600];
    tdb_url(sv.dbname, url);
    snprintf(tokfile, sizeof tokfile, "%s/token", sv.dir);
    tsh("'%s' token create --name ci --database-url '%s' > '%s' 2>/dev/null",
        tenv("MKDSEG_TEST_BIN"), url, tokfile);
    char tok[128] = "";
    FILE *f = fopen(tokfile, "r");
    cr_assert(f && fgets(tok, sizeof tok, f));
    fclose(f);
    tok[strcspn(tok, "\n")] = 0;
    cr_assert_eq(strncmp(tok, "mkd_", 4), 0, "%s", tok);
    char *stored = tdb_value(sv.pg, "SELECT token_sha256 FROM api_tokens WHERE name = 'ci'");
    cr_assert(stored && !strstr(stored, tok + 4), "only the hash is stored");
    free(stored);
    char vol[600], good[200];
    snprintf(vol, sizeof vol, "vol=@%s/ct.nii.gz", sv.dir);
    snprintf(good, sizeof good, "Authorization: Bearer %s", tok);
    const char *parts[] = {vol, NULL};
    const char *bad[] = {"Authorization: Bearer mkd_wrong", NULL}, *ok[] = {good, NULL};
    tresp r;
    cr_assert_eq(tform("/segment", parts, NULL, &r), 0);
    cr_assert_eq(r.status, 401, "%s", r.body);
    tresp_free(&r);
    cr_assert_eq(tform("/segment", parts, bad, &r), 0);
    cr_assert_eq(r.status, 401, "%s", r.body);
    cr_assert(strstr(err_msg(&r), "unknown token"), "%s", r.body);
    tresp_free(&r);
    cr_assert_eq(tform("/segment", parts, ok, &r), 0);
    cr_assert_eq(r.status, 200, "%s", r.body);
    tresp_free(&r);
    /* reading needs the token too (without --scopes it holds admin, which implies read) */
    cr_assert_eq(thttp(&sv.srv, "GET", "/models", NULL, NULL, 0, &r), 0);
    cr_assert_eq(r.status, 401);
    tresp_free(&r);
    cr_assert_eq(thttp(&sv.srv, "GET", "/models", ok, NULL, 0, &r), 0);
    cr_assert_eq(r.status, 200, "%s", r.body);
    tresp_free(&r);
    /* a revoked token is refused */
    tsh("'%s' token revoke --name ci --database-url '%s' 2>/dev/null", tenv("MKDSEG_TEST_BIN"),
        url);
    cr_assert_eq(tform("/segment", parts, ok, &r), 0);
    cr_assert_eq(r.status, 401, "%s", r.body);
    cr_assert(strstr(err_msg(&r), "revoked"), "%s", r.body);
    tresp_free(&r);
    stop();
}

/* ---- jobs: cancel ------------------------------------------------------------------------- */

static const char *tiny_cfg =
    "\"size\":32,\"seg_width\":2,\"ngf\":4,\"ngen_blocks\":1,\"ndf\":4,\"batch\":2";

Test(svc, train_cancel_and_queued_cancel, .timeout = 900)
{
    start(NULL);
    phantom("c1", "ct", 31);
    long long d = create_dataset("ct", "ct");
    add_volume(d, "c1");
    char body[512];
    snprintf(body, sizeof body,
             "{\"target_dataset\":%lld,\"method\":\"baseline\",\"config\":{\"iters\":100000,%s}}",
             d, tiny_cfg);
    tresp r;
    cr_assert_eq(thttp(&sv.srv, "POST", "/train", json_ct, body, strlen(body), &r), 0);
    cr_assert_eq(r.status, 202, "%s", r.body);
    char loc[64];
    cr_assert(tresp_header(&r, "Location", loc, sizeof loc));
    long long jid = (long long)json_integer_value(json_object_get(r.json, "id"));
    tresp_free(&r);
    /* running with progress */
    char path[64];
    snprintf(path, sizeof path, "/jobs/%lld", jid);
    cr_assert_str_eq(loc, path);
    int seen = 0;
    for (int i = 0; i < 3000 && seen < 2; i++) {
        json_t *j = get_json(path);
        seen =
            (int)json_integer_value(json_object_get(json_object_get(j, "progress"), "iteration"));
        const char *st = json_string_value(json_object_get(j, "state"));
        cr_assert(st && (!strcmp(st, "queued") || !strcmp(st, "running")), "job %s before it ran",
                  st ? st : "?");
        if (seen >= 2)
            cr_assert_str_eq(st, "running", "progress comes from a running job");
        json_decref(j);
        if (seen < 2)
            usleep(100000);
    }
    cr_assert_geq(seen, 2, "the job was running and reported iterations");
    /* the dataset is in use */
    char dp[64];
    snprintf(dp, sizeof dp, "/datasets/%lld", d);
    cr_assert_eq(thttp(&sv.srv, "DELETE", dp, NULL, NULL, 0, &r), 0);
    cr_assert_eq(r.status, 409, "%s", r.body);
    tresp_free(&r);
    cr_assert_eq(thttp(&sv.srv, "DELETE", path, NULL, NULL, 0, &r), 0);
    cr_assert_eq(r.status, 202, "%s", r.body);
    tresp_free(&r);
    /* 100000 iterations cannot finish within the outer limit: only the cancel ends the job */
    json_t *j = wait_job(jid, NULL, 600);
    cr_assert_str_eq(json_string_value(json_object_get(j, "state")), "cancelled", "%s",
                     json_dumps(j, 0));
    int it = (int)json_integer_value(json_object_get(json_object_get(j, "progress"), "iteration"));
    cr_assert_geq(it, seen, "progress kept after the cancel (%d, had %d)", it, seen);
    json_decref(j);
    char jids[24];
    snprintf(jids, sizeof jids, "%lld", jid);
    char *nm = tdb_valuep(sv.pg, "SELECT count(*) FROM models WHERE job_id = $1::bigint", 1, jids);
    cr_assert_str_eq(nm, "0", "a cancelled training registers no model");
    free(nm);
    nm = tdb_valuep(sv.pg,
                    "SELECT count(*) FROM job_events WHERE job_id = $1::bigint AND type = 'state' "
                    "AND data->>'state' = 'cancelled'",
                    1, jids);
    cr_assert_str_eq(nm, "1", "one cancelled transition");
    free(nm);
    cr_assert_eq(thttp(&sv.srv, "DELETE", path, NULL, NULL, 0, &r), 0);
    cr_assert_eq(r.status, 409, "%s", r.body);
    tresp_free(&r);
    /* bad requests */
    const char *bad[] = {
        "{\"target_dataset\":1,\"method\":\"magic\"}",
        "{\"target_dataset\":1,\"config\":{\"nope\":1}}",
        "{\"target_dataset\":1,\"config\":{\"size\":30}}",
        "{\"method\":\"baseline\"}",
        "{\"target_dataset\":1,\"method\":\"mkd\"}",
        "{\"target_dataset\":1,\"method\":\"joint-dsbn\",\"config\":{\"iam\":\"oracle\"}}",
        NULL};
    const long want[] = {422, 422, 422, 400, 422, 422};
    const char *want_field[] = {"method", "config", "config", "target_dataset", NULL, "config.iam"};
    for (int i = 0; bad[i]; i++) {
        char b[256];
        snprintf(b, sizeof b, "%s", bad[i]);
        if (strstr(b, "\"target_dataset\":1"))
            snprintf(b, sizeof b, "%.*s%lld%s", (int)(strstr(bad[i], ":1") + 1 - bad[i]), bad[i], d,
                     strstr(bad[i], ":1") + 2);
        cr_assert_eq(thttp(&sv.srv, "POST", "/train", json_ct, b, strlen(b), &r), 0);
        cr_assert_eq(r.status, want[i], "%s -> %ld %s", b, r.status, r.body);
        if (want_field[i])
            cr_assert_str_eq(
                json_string_value(json_object_get(json_object_get(r.json, "error"), "field")),
                want_field[i], "%s -> %s", b, r.body);
        if (i == 0)
            cr_assert(strstr(r.body, "joint-dsbn"), "the method list names every method: %s",
                      r.body);
        tresp_free(&r);
    }
    /* GET /jobs filters by state */
    json_t *l = get_json("/jobs?state=cancelled");
    cr_assert_eq(json_array_size(json_object_get(l, "jobs")), 1);
    json_decref(l);
    cr_assert_eq(thttp(&sv.srv, "GET", "/jobs?state=nope", NULL, NULL, 0, &r), 0);
    cr_assert_eq(r.status, 422);
    tresp_free(&r);
    stop();
}

/* ---- the complete round ------------------------------------------------------------------- */

static size_t sse_data(char *ptr, size_t size, size_t nmemb, void *ud)
{
    return tbuf_write(ptr, size, nmemb, ud);
}

Test(svc, complete_round_train_sse_promote_segment_evaluate_dice, .timeout = 240)
{
    start(NULL);
    phantom("c1", "ct", 41);
    phantom("c2", "ct", 42);
    phantom("c3", "ct", 43);
    phantom("m1", "mr", 51);
    phantom("m2", "mr", 52);
    long long ct = create_dataset("ct", "ct"), mr = create_dataset("mr", "mr");
    add_volume(ct, "c1");
    add_volume(ct, "c2");
    long long v3 = add_volume(ct, "c3");
    add_volume(mr, "m1");
    add_volume(mr, "m2");
    char body[512];
    snprintf(body, sizeof body,
             "{\"target_dataset\":%lld,\"assistant_dataset\":%lld,\"method\":\"mkd\",\"config\":{"
             "\"iters\":40,"
             "\"iters_per_epoch\":20,\"checkpoint_every\":10,\"lr_seg\":0.001,%s},\"validation\":[%"
             "lld]}",
             ct, mr, tiny_cfg, v3);
    tresp r;
    cr_assert_eq(thttp(&sv.srv, "POST", "/train", json_ct, body, strlen(body), &r), 0);
    cr_assert_eq(r.status, 202, "%s", r.body);
    long long jid = (long long)json_integer_value(json_object_get(r.json, "id"));
    cr_assert_eq(
        json_array_size(json_object_get(json_object_get(r.json, "params"), "validation_volumes")),
        1);
    tresp_free(&r);
    /* watch it through Server-Sent Events until the final state */
    char url[256];
    snprintf(url, sizeof url, "%s/jobs/%lld/events", sv.srv.base, jid);
    CURL *c = curl_easy_init();
    tbuf ev = {0};
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sse_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &ev);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 180L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    CURLcode cc = curl_easy_perform(c);
    long st = 0;
    char *ct_h = NULL;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &st);
    curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ct_h);
    cr_assert_eq(cc, CURLE_OK, "%s", curl_easy_strerror(cc));
    cr_assert_eq(st, 200);
    cr_assert(ct_h && strstr(ct_h, "text/event-stream"));
    curl_easy_cleanup(c);
    cr_assert(ev.p && strstr(ev.p, "event: progress"), "%s", ev.p ? ev.p : "");
    cr_assert(strstr(ev.p, "\"iteration\""), "progress carries the iteration");
    cr_assert(strstr(ev.p, "\"eta_s\""), "progress carries an ETA");
    const char *last = strstr(ev.p, "\"state\": \"succeeded\"");
    cr_assert(last, "the stream ends with the final state: %s",
              ev.p + (ev.n > 600 ? ev.n - 600 : 0));
    free(ev.p);
    char jp[64];
    snprintf(jp, sizeof jp, "/jobs/%lld", jid);
    json_t *j = get_json(jp);
    cr_assert_str_eq(json_string_value(json_object_get(j, "state")), "succeeded", "%s",
                     json_dumps(j, 0));
    long long mid = (long long)json_integer_value(json_object_get(j, "model_id"));
    cr_assert_gt(mid, 0);
    json_decref(j);
    /* the model: method, datasets, Dice of the validation evaluation */
    char mp[64];
    snprintf(mp, sizeof mp, "/models/%lld", mid);
    json_t *m = get_json(mp);
    cr_assert_str_eq(json_string_value(json_object_get(m, "method")), "mkd");
    cr_assert_eq(json_array_size(json_object_get(m, "datasets")), 3,
                 "target, assistant, validation");
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(m, "config"), "seg_width")), 2);
    { /* a float setting reads as it was given (15 digits, not 0.0010000000000000000208) */
        tresp rr;
        cr_assert_eq(thttp(&sv.srv, "GET", mp, NULL, NULL, 0, &rr), 0);
        cr_expect(strstr(rr.body, "\"lr_seg\":0.001,"), "%.400s",
                  strstr(rr.body, "lr_seg") ? strstr(rr.body, "lr_seg") : rr.body);
        tresp_free(&rr);
    }
    cr_assert(json_is_object(json_object_get(json_object_get(m, "dice"), "1")) ||
                  json_object_size(json_object_get(m, "dice")) == 1,
              "%s", json_dumps(m, 0));
    json_decref(m);
    /* promote, then segment with the default: it is the new model */
    char pp[64];
    snprintf(pp, sizeof pp, "/models/%lld/promote", mid);
    cr_assert_eq(thttp(&sv.srv, "POST", pp, NULL, NULL, 0, &r), 0);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert(json_is_true(json_object_get(r.json, "is_default")));
    tresp_free(&r);
    char *nd = tdb_value(sv.pg, "SELECT count(*) FROM models WHERE is_default");
    cr_assert_str_eq(nd, "1");
    free(nd);
    char vol[600], h[64];
    snprintf(vol, sizeof vol, "vol=@%s/c3.nii.gz", sv.dir);
    const char *parts[] = {vol, NULL};
    cr_assert_eq(tform("/segment", parts, NULL, &r), 0);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_eq(atoll(tresp_header(&r, "X-Mkdseg-Model", h, sizeof h)), mid);
    tresp_free(&r);
    /* evaluate on the CT dataset (a job), then read the Dice back */
    char ep[64], eb[64];
    snprintf(ep, sizeof ep, "/models/%lld/evaluate", mid);
    snprintf(eb, sizeof eb, "{\"dataset\":%lld}", ct);
    cr_assert_eq(thttp(&sv.srv, "POST", ep, json_ct, eb, strlen(eb), &r), 0);
    cr_assert_eq(r.status, 202, "%s", r.body);
    long long ej = (long long)json_integer_value(json_object_get(r.json, "id"));
    tresp_free(&r);
    j = wait_job(ej, NULL, 60);
    cr_assert_str_eq(json_string_value(json_object_get(j, "state")), "succeeded", "%s",
                     json_dumps(j, 0));
    json_decref(j);
    char dp[96];
    snprintf(dp, sizeof dp, "/dice?model=%lld&dataset=%lld", mid, ct);
    json_t *dice = get_json(dp);
    json_t *runs = json_object_get(dice, "runs");
    cr_assert_eq(json_array_size(runs), 2, "the validation run and the evaluation: %s",
                 json_dumps(dice, 0));
    json_t *run = json_array_get(runs, 1);
    cr_assert_eq(json_integer_value(json_object_get(run, "job_id")), ej);
    double md = json_number_value(json_object_get(run, "mean_dice"));
    /* the run's mean is the mean of its per-volume rows, and each structure's the mean of its */
    json_t *rows = json_object_get(dice, "results"), *row;
    size_t ri;
    double sum = 0, ssum[VOL_NCLASSES] = {0};
    int nrow = 0, nper[VOL_NCLASSES] = {0};
    json_array_foreach (rows, ri, row) {
        if (json_integer_value(json_object_get(row, "job_id")) != ej ||
            json_is_null(json_object_get(row, "volume_id")))
            continue;
        double dv = json_number_value(json_object_get(row, "dice"));
        sum += dv, nrow++;
        for (int c = 1; c < VOL_NCLASSES; c++)
            if (!strcmp(json_string_value(json_object_get(row, "structure")), vol_class_names[c]))
                ssum[c] += dv, nper[c]++;
    }
    cr_assert_eq(nrow, 3 * 7, "3 volumes x 7 structures");
    /* within 1e-5: the rows are stored as written by the job (about 6 significant digits) */
    cr_assert_float_eq(md, sum / nrow, 1e-5, "mean Dice %g vs its rows %g", md, sum / nrow);
    for (int c = 1; c < VOL_NCLASSES; c++) {
        cr_assert_eq(nper[c], 3, "%s", vol_class_names[c]);
        json_t *sd = json_object_get(
            json_object_get(json_object_get(run, "structures"), vol_class_names[c]), "dice");
        cr_assert_float_eq(json_number_value(sd), ssum[c] / 3, 1e-5, "%s", vol_class_names[c]);
    }
    cr_assert(json_is_number(
        json_object_get(json_object_get(json_object_get(run, "structures"), "LV"), "hd95")));
    /* per volume and structure: 3 volumes x 7 structures + 7 means, plus the validation run's 7 + 7 */
    cr_assert_eq(json_array_size(json_object_get(dice, "results")), 3 * 7 + 7 + 7 + 7);
    json_decref(dice);
    /* weights round trip: download, upload as a new model */
    char wp[64], wf[600], wpart[700];
    snprintf(wp, sizeof wp, "/models/%lld/weights", mid);
    cr_assert_eq(thttp(&sv.srv, "GET", wp, NULL, NULL, 0, &r), 0);
    cr_assert_eq(r.status, 200);
    snprintf(wf, sizeof wf, "%s/w.safetensors", sv.dir);
    FILE *f = fopen(wf, "wb");
    fwrite(r.body, 1, r.len, f);
    fclose(f);
    tresp_free(&r);
    snprintf(wpart, sizeof wpart, "weights=@%s", wf);
    const char *up[] = {wpart, "name=copy", NULL};
    cr_assert_eq(tform("/models", up, NULL, &r), 0);
    cr_assert_eq(r.status, 201, "%s", r.body);
    cr_assert_str_eq(json_string_value(json_object_get(r.json, "method")), "mkd");
    tresp_free(&r);
    const char *upbad[] = {"weights=@Makefile", NULL};
    cr_assert_eq(tform("/models", upbad, NULL, &r), 0);
    cr_assert_eq(r.status, 415, "%s", r.body);
    tresp_free(&r);
    /* the CT dataset is used by the model */
    char dsp[64];
    snprintf(dsp, sizeof dsp, "/datasets/%lld", ct);
    cr_assert_eq(thttp(&sv.srv, "DELETE", dsp, NULL, NULL, 0, &r), 0);
    cr_assert_eq(r.status, 409, "%s", r.body);
    tresp_free(&r);
    /* dice-check: passes a zero floor, fails an impossible one */
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "'%s' dice-check --server %s --model %lld --dataset %lld --min-mean 0 --max-drop 1 > "
             "/dev/null 2>&1",
             tenv("MKDSEG_TEST_BIN"), sv.srv.base, mid, ct);
    int rc = system(cmd);
    cr_assert_eq(WEXITSTATUS(rc), 0, "dice-check with a zero floor");
    snprintf(
        cmd, sizeof cmd,
        "'%s' dice-check --server %s --model %lld --dataset %lld --min-mean 1.01 > /dev/null 2>&1",
        tenv("MKDSEG_TEST_BIN"), sv.srv.base, mid, ct);
    rc = system(cmd);
    cr_assert_eq(WEXITSTATUS(rc), 1, "dice-check under the floor exits 1");
    stop();
}

/* ---- a killed server's job resumes elsewhere, whatever stage it died at ------------------ */

/* Waits until job jid reports {"stage":"hold"} (MKDSEG_TEST_HOLD reached); the outer limit
 * only catches a hang. */
static void wait_hold(long long jid, const char *point)
{
    char path[64];
    snprintf(path, sizeof path, "/jobs/%lld", jid);
    for (int i = 0; i < 3000; i++) {
        json_t *j = get_json(path);
        json_t *pr = json_object_get(j, "progress");
        const char *st = json_string_value(json_object_get(pr, "stage"));
        const char *at = json_string_value(json_object_get(pr, "at"));
        int held = st && at && !strcmp(st, "hold") && !strcmp(at, point);
        const char *state = json_string_value(json_object_get(j, "state"));
        cr_assert(state && (!strcmp(state, "queued") || !strcmp(state, "running")),
                  "job %lld reached '%s' before its hold point %s", jid, state ? state : "?",
                  point);
        json_decref(j);
        if (held)
            return;
        usleep(100000);
    }
    cr_assert_fail("job %lld never reached its hold point %s", jid, point);
}

/* Starts a server on a fresh database that holds its jobs at `hold` (NULL: none). url and data
 * are kept for a second server on the same database and blob store. */
static void start_shared(const char *hold, char *url, size_t urllen, char *data, size_t datalen)
{
    const char *tmp = getenv("MKDSEG_TEST_TMP");
    if (!sv.dir[0]) {
        snprintf(sv.dir, sizeof sv.dir, "%s/svc.XXXXXX", tmp && *tmp ? tmp : "/tmp");
        cr_assert(mkdtemp(sv.dir));
        sv.pg = tdb_create(sv.dbname);
    }
    snprintf(data, datalen, "%s/data", sv.dir);
    char u[1024];
    tdb_url(sv.dbname, u);
    snprintf(url, urllen, "%s", u);
    setenv("MKDSEG_THREADS", "1", 1);
    if (hold)
        setenv("MKDSEG_TEST_HOLD", hold, 1);
    else
        unsetenv("MKDSEG_TEST_HOLD");
    const char *args[] = {"--data-dir",      data, "--job-lease", "3", "--job-poll", "1",
                          "--default-model", "",   NULL};
    cr_assert_eq(tsrv_start(&sv.srv, url, args), 0);
    unsetenv("MKDSEG_TEST_HOLD");
}

/* Kills the server with SIGKILL while its job is held at `hold`, starts another one on the
 * same database and blob store, and waits for the job to finish there. Returns the job. */
static json_t *kill_and_take_over(long long jid, const char *hold, char *url, size_t urllen,
                                  char *data, size_t datalen)
{
    wait_hold(jid, hold);
    kill(sv.srv.pid, SIGKILL);
    cr_assert_eq(tsrv_stop(&sv.srv), 137);
    start_shared(NULL, url, urllen, data, datalen);
    json_t *j = wait_job(jid, NULL, 300);
    cr_assert_str_eq(json_string_value(json_object_get(j, "state")), "succeeded", "%s",
                     json_dumps(j, 0));
    cr_assert_eq(json_integer_value(json_object_get(j, "attempts")), 2, "%s", json_dumps(j, 0));
    return j;
}

static char *job_sql(const char *sql, long long jid)
{
    char ids[24];
    snprintf(ids, sizeof ids, "%lld", jid);
    return tdb_valuep(sv.pg, sql, 1, ids);
}

/* A training job of `iters` iterations (checkpoint every 10) with two validation volumes,
 * killed at `hold`; the retry must finish it with exactly one model row and one validation
 * run, resuming from iteration `resume` (-1: no training left to resume). */
static void kill_training_at(const char *hold, int iters, int resume)
{
    char url[1024], data[600];
    start_shared(hold, url, sizeof url, data, sizeof data);
    phantom("c1", "ct", 61);
    phantom("c2", "ct", 62);
    phantom("c3", "ct", 63);
    long long d = create_dataset("ct", "ct");
    add_volume(d, "c1");
    long long v2 = add_volume(d, "c2"), v3 = add_volume(d, "c3");
    char body[512];
    snprintf(body, sizeof body,
             "{\"target_dataset\":%lld,\"method\":\"baseline\",\"validation\":[%lld,%lld],"
             "\"config\":{\"iters\":%d,\"checkpoint_every\":10,%s}}",
             d, v2, v3, iters, tiny_cfg);
    tresp r;
    cr_assert_eq(thttp(&sv.srv, "POST", "/train", json_ct, body, strlen(body), &r), 0);
    cr_assert_eq(r.status, 202, "%s", r.body);
    long long jid = (long long)json_integer_value(json_object_get(r.json, "id"));
    tresp_free(&r);
    json_t *j = kill_and_take_over(jid, hold, url, sizeof url, data, sizeof data);
    long long mid =
        (long long)json_integer_value(json_object_get(json_object_get(j, "result"), "model_id"));
    cr_assert_gt(mid, 0, "%s", json_dumps(j, 0));
    cr_assert(json_is_number(json_object_get(json_object_get(j, "result"), "mean_dice")),
              "validated: %s", json_dumps(j, 0));
    json_decref(j);
    char *n = job_sql("SELECT count(*) FROM models WHERE job_id = $1::bigint", jid);
    cr_assert_str_eq(n, "1", "exactly one model row");
    free(n);
    n = job_sql("SELECT count(*) FROM model_datasets d JOIN models m ON m.id = d.model_id WHERE "
                "m.job_id = $1::bigint",
                jid);
    cr_assert_str_eq(n, "2", "the model's target and validation links");
    free(n);
    /* one validation run: 2 volumes x 7 structures + 7 means, none twice */
    n = job_sql("SELECT count(*) FROM dice_results WHERE job_id = $1::bigint", jid);
    cr_assert_str_eq(n, "21");
    free(n);
    char *resumed = job_sql(
        "SELECT max((data->>'iteration')::int) FROM job_events WHERE job_id = $1::bigint AND "
        "data->>'stage' = 'resume'",
        jid);
    if (resume < 0) {
        cr_assert(!resumed || !*resumed, "nothing left to train, yet it resumed at %s", resumed);
    } else {
        cr_assert(resumed && *resumed, "no resume event");
        cr_assert_eq(atoi(resumed), resume,
                     "resumed from iteration %s, not from the checkpoint at %d", resumed, resume);
    }
    free(resumed);
    /* the job's checkpoint folder is gone once the model is committed */
    char jd[800];
    snprintf(jd, sizeof jd, "%s/jobs/%lld", data, jid);
    struct stat sb;
    cr_assert_neq(stat(jd, &sb), 0, "%s is left behind", jd);
    stop();
}

Test(svc, killed_in_training_resumes_from_checkpoint, .timeout = 400)
{
    kill_training_at("train:30", 40, 30);
}

Test(svc, killed_after_training_resumes_at_the_end, .timeout = 400)
{
    kill_training_at("train:saved", 20, 20);
}

Test(svc, killed_after_commit_keeps_one_model, .timeout = 400)
{
    kill_training_at("train:committed", 20, -1);
}

Test(svc, killed_in_validation_keeps_one_model, .timeout = 400)
{
    kill_training_at("evaluate:1", 20, -1);
}

Test(svc, killed_evaluation_runs_again_once, .timeout = 400)
{
    char url[1024], data[600];
    start_shared(NULL, url, sizeof url, data, sizeof data);
    phantom("c1", "ct", 71);
    phantom("c2", "ct", 72);
    long long d = create_dataset("ct", "ct");
    add_volume(d, "c1");
    add_volume(d, "c2");
    char body[512];
    snprintf(body, sizeof body,
             "{\"target_dataset\":%lld,\"method\":\"baseline\",\"config\":{\"iters\":10,%s}}", d,
             tiny_cfg);
    tresp r;
    cr_assert_eq(thttp(&sv.srv, "POST", "/train", json_ct, body, strlen(body), &r), 0);
    cr_assert_eq(r.status, 202, "%s", r.body);
    long long tj = (long long)json_integer_value(json_object_get(r.json, "id"));
    tresp_free(&r);
    json_t *j = wait_job(tj, NULL, 300);
    cr_assert_str_eq(json_string_value(json_object_get(j, "state")), "succeeded", "%s",
                     json_dumps(j, 0));
    long long mid =
        (long long)json_integer_value(json_object_get(json_object_get(j, "result"), "model_id"));
    json_decref(j);
    /* restart holding evaluations after their first volume */
    cr_assert_eq(tsrv_stop(&sv.srv), 0);
    start_shared("evaluate:1", url, sizeof url, data, sizeof data);
    char ep[64], eb[64];
    snprintf(ep, sizeof ep, "/models/%lld/evaluate", mid);
    snprintf(eb, sizeof eb, "{\"dataset\":%lld}", d);
    cr_assert_eq(thttp(&sv.srv, "POST", ep, json_ct, eb, strlen(eb), &r), 0);
    cr_assert_eq(r.status, 202, "%s", r.body);
    long long ej = (long long)json_integer_value(json_object_get(r.json, "id"));
    tresp_free(&r);
    j = kill_and_take_over(ej, "evaluate:1", url, sizeof url, data, sizeof data);
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(j, "result"), "volumes")), 2);
    json_decref(j);
    char *n = job_sql("SELECT count(*) FROM dice_results WHERE job_id = $1::bigint", ej);
    cr_assert_str_eq(n, "21",
                     "2 volumes x 7 structures + 7 means, the first attempt's rows replaced");
    free(n);
    n = job_sql(
        "SELECT count(*) FROM dice_results WHERE job_id = $1::bigint AND volume_id IS NOT NULL "
        "GROUP BY volume_id, structure HAVING count(*) > 1",
        ej);
    cr_assert(!n || !*n, "a volume scored twice");
    free(n);
    stop();
}

/* ---- DICOM input and SEG answers (engine/io/dicom_*, server/api/handlers_dicom.c) ---------- */

/* A DICOM series zip of the phantom <sv.dir>/<name>.nii.gz written by pydicom, plus defects. */
static void dicom_zip(const char *name, const char *zipname, const char *extra)
{
    tsh("/usr/bin/python3 tests/tools/dicom_series.py '%s/%s' --from-nifti '%s/%s.nii.gz' "
        "--intercept -1024 %s > /dev/null",
        sv.dir, zipname, sv.dir, name, extra);
}

static void save(const tresp *r, const char *path)
{
    FILE *f = fopen(path, "wb");
    cr_assert(f);
    cr_assert_eq(fwrite(r->body, 1, r->len, f), r->len);
    fclose(f);
}

/* ---- the ensemble's disagreement map ---------------------------------------------------- */

/* Writes an answer body to sv.dir/name and returns the path in out. */
static void save_body(const tresp *r, const char *name, char *out, size_t len)
{
    snprintf(out, len, "%s/%s", sv.dir, name);
    FILE *f = fopen(out, "wb");
    cr_assert(f);
    cr_assert_eq(fwrite(r->body, 1, r->len, f), r->len);
    fclose(f);
}

Test(svc, segment_dicom_series_seg_answer, .timeout = 300)
{
    start(NULL);
    phantom("ct", "ct", 5);
    dicom_zip("ct", "ct.zip", "--orient axial-ff");
    char vol[600], p[600];
    snprintf(vol, sizeof vol, "vol=@%s/ct.zip", sv.dir);
    /* the NIfTI label map of the series, then its SEG */
    const char *parts[] = {vol, "labels=index", NULL};
    tresp r;
    cr_assert_eq(tform("/segment", parts, NULL, &r), 0);
    cr_assert_eq(r.status, 200, "%s", r.body);
    snprintf(p, sizeof p, "%s/mask.nii", sv.dir);
    save(&r, p);
    tresp_free(&r);
    const char *parts2[] = {vol, "format=seg", NULL};
    cr_assert_eq(tform("/segment", parts2, NULL, &r), 0);
    cr_assert_eq(r.status, 200, "%s", r.body);
    char h[128];
    cr_assert_str_eq(tresp_header(&r, "Content-Type", h, sizeof h), "application/dicom");
    cr_assert(tresp_header(&r, "X-Mkdseg-Seg-Sop-Instance-Uid", h, sizeof h) && strlen(h) > 10);
    cr_assert(r.len > 132 && !memcmp(r.body + 128, "DICM", 4), "a DICOM Part 10 file");
    snprintf(p, sizeof p, "%s/seg.dcm", sv.dir);
    save(&r, p);
    tresp_free(&r);
    tsh("dciodvfy '%s/seg.dcm' > '%s/dciodvfy.txt' 2>&1; ! grep -q '^Error' '%s/dciodvfy.txt'",
        sv.dir, sv.dir, sv.dir);
    tsh("/usr/bin/python3 tests/tools/seg_check.py '%s/seg.dcm' '%s/ct.zip' '%s/mask.nii' > "
        "/dev/null",
        sv.dir, sv.dir, sv.dir);
    /* Accept: application/dicom asks for the same */
    const char *acc[] = {"Accept: application/dicom", NULL};
    cr_assert_eq(tform("/segment", parts, acc, &r), 0);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_str_eq(tresp_header(&r, "Content-Type", h, sizeof h), "application/dicom");
    tresp_free(&r);
    stop();
}

Test(svc, segment_dicom_refusals, .timeout = 300)
{
    start(NULL);
    phantom("ct", "ct", 6);
    struct {
        const char *defect, *code;
        long status;
    } cases[] = {
        {"--defect two-series", "several_series", 422},
        {"--defect drop-slice", "nonuniform_spacing", 422},
        {"--defect tilt", "gantry_tilt", 422},
        {"--defect one-slice", "one_slice", 422},
        {"--defect no-pixels", "no_pixel_data", 422},
        {"--defect jpeg2000", "unsupported_transfer_syntax", 415},
        {"--defect truncate", "invalid_dicom", 422},
        {"--zip-defect traversal", "unsafe_archive", 422},
        {"--zip-defect bomb", "unsafe_archive", 422},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        dicom_zip("ct", "bad.zip", cases[i].defect);
        char vol[600];
        snprintf(vol, sizeof vol, "vol=@%s/bad.zip", sv.dir);
        const char *parts[] = {vol, NULL};
        tresp r;
        cr_assert_eq(tform("/segment", parts, NULL, &r), 0);
        cr_assert_eq(r.status, cases[i].status, "%s: %ld %s", cases[i].defect, r.status, r.body);
        cr_assert_str_eq(err_code(&r), cases[i].code, "%s: %s", cases[i].defect, r.body);
        cr_assert(strstr(err_msg(&r), sv.dir) == NULL, "a server path in the message: %s", r.body);
        tresp_free(&r);
    }
    /* a SEG answer needs DICOM input */
    char vol[600];
    snprintf(vol, sizeof vol, "vol=@%s/ct.nii.gz", sv.dir);
    const char *parts[] = {vol, "format=seg", NULL};
    tresp r;
    cr_assert_eq(tform("/segment", parts, NULL, &r), 0);
    cr_assert_eq(r.status, 422, "%s", r.body);
    cr_assert_str_eq(err_code(&r), "seg_needs_dicom");
    tresp_free(&r);
    cr_assert_eq(thttp(&sv.srv, "GET", "/healthz", NULL, NULL, 0, &r), 0);
    cr_assert_eq(r.status, 200, "the server survived every refusal");
    tresp_free(&r);
    stop();
}

Test(svc, dataset_volume_from_dicom, .timeout = 300)
{
    start(NULL);
    phantom("ct", "ct", 7);
    dicom_zip("ct", "ct.zip", "--orient coronal");
    long long id = create_dataset("dicom-ct", "ct");
    char path[64], img[600];
    snprintf(path, sizeof path, "/datasets/%lld/volumes", id);
    snprintf(img, sizeof img, "image=@%s/ct.zip", sv.dir);
    const char *parts[] = {img, NULL};
    tresp r;
    cr_assert_eq(tform(path, parts, NULL, &r), 0);
    cr_assert_eq(r.status, 201, "%s", r.body);
    json_t *dims = json_object_get(r.json, "dims");
    cr_assert_eq(json_integer_value(json_array_get(dims, 0)), 40, "%s", r.body);
    cr_assert_eq(json_integer_value(json_array_get(dims, 2)), 16, "%s", r.body);
    tresp_free(&r);
    /* the stored volume is the NIfTI conversion: the same voxels as `mkdseg convert` */
    char *rel = tdb_value(sv.pg, "SELECT path FROM volumes");
    cr_assert(rel);
    tsh("'%s' convert '%s/ct.zip' '%s/conv.nii.gz'", tenv("MKDSEG_TEST_BIN"), sv.dir, sv.dir);
    tsh("cp '%s/data/%s' '%s/stored.nii.gz'", sv.srv.dir, rel, sv.dir);
    tsh("/usr/bin/python3 -c \"import nibabel as n, numpy as np, sys; a=n.load(sys.argv[1]); "
        "b=n.load(sys.argv[2]); "
        "sys.exit(0 if np.array_equal(a.get_fdata(), b.get_fdata()) and np.allclose(a.affine, "
        "b.affine, atol=1e-4) else 1)\" "
        "'%s/stored.nii.gz' '%s/conv.nii.gz'",
        sv.dir, sv.dir);
    free(rel);
    stop();
}

/* ---- DICOMweb round trip with a real PACS (Orthanc, scripts/orthanc.sh; MKDSEG_TEST_ORTHANC) */

static void orthanc_start_server(const char *root)
{
    static char allow[1200];
    snprintf(allow, sizeof allow, "%s", root);
    const char *extra[] = {"--dicomweb-allow", allow, "--dicomweb-timeout", "60", NULL};
    start(extra);
}

static void json_field(const char *body, const char *key, char *out, size_t outlen)
{
    json_t *j = json_loads(body, 0, NULL);
    cr_assert(j, "not JSON: %s", body);
    snprintf(out, outlen, "%s",
             json_string_value(json_object_get(j, key)) ? json_string_value(json_object_get(j, key))
                                                        : "");
    json_decref(j);
}

Test(svc, dicomweb_orthanc_round_trip, .timeout = 600)
{
    const char *root = tenv("MKDSEG_TEST_ORTHANC");
    orthanc_start_server(root);
    phantom("ct", "ct", 8);
    dicom_zip("ct", "ct.zip", "--orient axial-hf");
    char gen_json[700], study[80], series[80];
    snprintf(gen_json, sizeof gen_json, "%s/uids.json", sv.dir);
    tsh("/usr/bin/python3 tests/tools/dicom_series.py '%s/ct2.zip' --from-nifti '%s/ct.nii.gz' "
        "--intercept -1024 > '%s'",
        sv.dir, sv.dir, gen_json);
    FILE *f = fopen(gen_json, "r");
    char line[8192] = "";
    cr_assert(f && fgets(line, sizeof line, f));
    fclose(f);
    json_field(line, "study", study, sizeof study);
    json_field(line, "series", series, sizeof series);
    tsh("/usr/bin/python3 tests/tools/dicomweb_tool.py stow '%s' '%s/ct2.zip'", root, sv.dir);
    /* segment by UIDs: the SEG goes back to the PACS */
    char body[1200];
    snprintf(body, sizeof body,
             "{\"dicomweb\":\"%s\",\"study\":\"%s\",\"series\":\"%s\",\"labels\":\"index\"}", root,
             study, series);
    tresp r;
    cr_assert_eq(thttp(&sv.srv, "POST", "/segment", json_ct, body, strlen(body), &r), 0);
    cr_assert_eq(r.status, 200, "%s", r.body);
    json_t *seg = json_object_get(r.json, "seg");
    cr_assert(json_is_object(seg), "%s", r.body);
    char segseries[80], mask_url[128];
    snprintf(segseries, sizeof segseries, "%s",
             json_string_value(json_object_get(seg, "series_instance_uid")));
    snprintf(mask_url, sizeof mask_url, "%s",
             json_string_value(json_object_get(r.json, "mask_url")));
    cr_assert_str_eq(json_string_value(json_object_get(seg, "study_instance_uid")), study);
    tresp_free(&r);
    /* QIDO-RS finds it as a SEG series of the study; WADO-RS brings it back; it is checked */
    tsh("/usr/bin/python3 tests/tools/dicomweb_tool.py qido '%s' '%s' SEG > '%s/qido.txt'", root,
        study, sv.dir);
    tsh("grep -qx '%s' '%s/qido.txt'", segseries, sv.dir);
    tsh("/usr/bin/python3 tests/tools/dicomweb_tool.py wado '%s' '%s' '%s' '%s/seg.dcm'", root,
        study, segseries, sv.dir);
    cr_assert_eq(thttp(&sv.srv, "GET", mask_url, NULL, NULL, 0, &r), 0);
    cr_assert_eq(r.status, 200);
    char p[700];
    snprintf(p, sizeof p, "%s/mask.nii%s", sv.dir, (unsigned char)r.body[0] == 0x1f ? ".gz" : "");
    save(&r, p);
    tresp_free(&r);
    tsh("dciodvfy '%s/seg.dcm' > '%s/dciodvfy.txt' 2>&1; ! grep -q '^Error' '%s/dciodvfy.txt'",
        sv.dir, sv.dir, sv.dir);
    tsh("/usr/bin/python3 tests/tools/seg_check.py '%s/seg.dcm' '%s/ct2.zip' '%s' > /dev/null",
        sv.dir, sv.dir, p);
    /* the same series into a dataset */
    long long id = create_dataset("pacs-ct", "ct");
    char path[64];
    snprintf(path, sizeof path, "/datasets/%lld/volumes", id);
    snprintf(body, sizeof body, "{\"dicomweb\":\"%s\",\"study\":\"%s\",\"series\":\"%s\"}", root,
             study, series);
    cr_assert_eq(thttp(&sv.srv, "POST", path, json_ct, body, strlen(body), &r), 0);
    cr_assert_eq(r.status, 201, "%s", r.body);
    tresp_free(&r);
    /* an unknown series on an allowed PACS: 404 */
    snprintf(body, sizeof body, "{\"dicomweb\":\"%s\",\"study\":\"%s\",\"series\":\"1.2.3.4\"}",
             root, study);
    cr_assert_eq(thttp(&sv.srv, "POST", "/segment", json_ct, body, strlen(body), &r), 0);
    cr_assert_eq(r.status, 404, "%s", r.body);
    cr_assert_str_eq(err_code(&r), "series_not_found");
    tresp_free(&r);
    stop();
}

Test(svc, dicomweb_deny_by_default, .timeout = 120)
{
    const char *root = tenv("MKDSEG_TEST_ORTHANC");
    orthanc_start_server(root);
    char body[1400];
    /* not on the list: another path on the same host, a longer URL, another host */
    const char *urls[3];
    char u1[600], u2[600];
    snprintf(u1, sizeof u1, "%s-other", root);
    snprintf(u2, sizeof u2, "%s/studies/1", root);
    urls[0] = u1, urls[1] = u2, urls[2] = "http://127.0.0.2:9/dicom-web";
    for (int i = 0; i < 3; i++) {
        snprintf(body, sizeof body, "{\"dicomweb\":\"%s\",\"study\":\"1.2\",\"series\":\"1.3\"}",
                 urls[i]);
        tresp r;
        cr_assert_eq(thttp(&sv.srv, "POST", "/segment", json_ct, body, strlen(body), &r), 0);
        cr_assert_eq(r.status, 403, "%s: %s", urls[i], r.body);
        cr_assert_str_eq(err_code(&r), "pacs_not_allowed");
        tresp_free(&r);
    }
    /* UIDs that are not UIDs never reach a URL */
    snprintf(body, sizeof body, "{\"dicomweb\":\"%s\",\"study\":\"1.2/../x\",\"series\":\"1.3\"}",
             root);
    tresp r;
    cr_assert_eq(thttp(&sv.srv, "POST", "/segment", json_ct, body, strlen(body), &r), 0);
    cr_assert_eq(r.status, 422, "%s", r.body);
    tresp_free(&r);
    stop();
    /* a server without the setting refuses every PACS */
    start(NULL);
    snprintf(body, sizeof body, "{\"dicomweb\":\"%s\",\"study\":\"1.2\",\"series\":\"1.3\"}", root);
    cr_assert_eq(thttp(&sv.srv, "POST", "/segment", json_ct, body, strlen(body), &r), 0);
    cr_assert_eq(r.status, 403, "%s", r.body);
    tresp_free(&r);
    stop();
}

/* The files of a series as several parts of one field (curl -F vol=@a.dcm -F vol=@b.dcm ...):
 * the same label map as the zip of those files. */
Test(svc, segment_dicom_files_in_one_field, .timeout = 300)
{
    start(NULL);
    phantom("ct", "ct", 9);
    dicom_zip("ct", "ct.zip", "--orient coronal");
    tsh("mkdir -p '%s/files' && cd '%s/files' && unzip -q -j ../ct.zip", sv.dir, sv.dir);
    static char vols[64][700];
    const char *parts[70];
    int n = 0;
    char cmd[700];
    snprintf(cmd, sizeof cmd, "ls '%s/files'", sv.dir);
    FILE *ls = popen(cmd, "r");
    char name[256];
    while (ls && n < 64 && fgets(name, sizeof name, ls)) {
        name[strcspn(name, "\n")] = 0;
        snprintf(vols[n], sizeof vols[n], "vol=@%s/files/%s", sv.dir, name);
        parts[n] = vols[n];
        n++;
    }
    pclose(ls);
    cr_assert_eq(n, 16, "the phantom has 16 slices");
    parts[n++] = "labels=index";
    parts[n] = NULL;
    tresp r;
    cr_assert_eq(tform("/segment", parts, NULL, &r), 0);
    cr_assert_eq(r.status, 200, "%s", r.body);
    char p1[700], p2[700];
    snprintf(p1, sizeof p1, "%s/parts.nii", sv.dir);
    save(&r, p1);
    tresp_free(&r);
    char zipv[700];
    snprintf(zipv, sizeof zipv, "vol=@%s/ct.zip", sv.dir);
    const char *zparts[] = {zipv, "labels=index", NULL};
    cr_assert_eq(tform("/segment", zparts, NULL, &r), 0);
    cr_assert_eq(r.status, 200, "%s", r.body);
    snprintf(p2, sizeof p2, "%s/zip.nii", sv.dir);
    save(&r, p2);
    tresp_free(&r);
    tsh("cmp '%s' '%s'", p1, p2);
    /* several NIfTI files in one field are no series: refused */
    char a[700], b[700];
    snprintf(a, sizeof a, "vol=@%s/ct.nii.gz", sv.dir);
    snprintf(b, sizeof b, "vol=@%s/ct_label.nii.gz", sv.dir);
    const char *nparts[] = {a, b, NULL};
    cr_assert_eq(tform("/segment", nparts, NULL, &r), 0);
    cr_assert_eq(r.status, 422, "%s", r.body);
    cr_assert_str_eq(err_code(&r), "not_dicom");
    tresp_free(&r);
    /* no part file is left behind once the requests are complete (the server frees an upload
     * after its response is sent: wait for that, 30 s at most) */
    tsh("for i in $(seq 300); do test -z \"$(ls -A '%s/data/tmp' 2>/dev/null)\" && exit 0; sleep "
        "0.1; done; "
        "ls -la '%s/data/tmp'; exit 1",
        sv.srv.dir, sv.srv.dir);
    stop();
}

/* With an mkd ensemble as the default model (tests/data/mkd_ensemble.safetensors, fixed, so that
 * the test does not change with the shipped default) the answer carries the disagreement summary, the map lies on the
 * input grid with values in [0, 1], and the per-structure means in the JSON are the means of the
 * map over the voxels the mask gives each structure (recomputed here from the two downloaded
 * files). */
Test(svc, segment_uncertainty_map_and_its_means, .timeout = 120)
{
    const char *ensemble[] = {"--default-model", "tests/data/mkd_ensemble.safetensors", NULL};
    start(ensemble);
    phantom("ct", "ct", 5);
    char vol[600];
    snprintf(vol, sizeof vol, "vol=@%s/ct.nii.gz", sv.dir);
    const char *parts[] = {vol, "labels=index", NULL};
    const char *acc[] = {"Accept: application/json", NULL};
    tresp r;
    cr_assert_eq(tform("/segment", parts, acc, &r), 0);
    cr_assert_eq(r.status, 200, "%s", r.body);
    json_t *u = json_object_get(r.json, "uncertainty");
    cr_assert(json_is_object(u), "%s", r.body);
    cr_assert_str_eq(json_string_value(json_object_get(u, "measure")), "js_divergence_bits");
    json_t *means = json_incref(json_object_get(u, "structures"));
    double all = json_number_value(json_object_get(u, "mean"));
    char uurl[128], murl[128];
    snprintf(uurl, sizeof uurl, "%s", json_string_value(json_object_get(u, "url")));
    snprintf(murl, sizeof murl, "%s", json_string_value(json_object_get(r.json, "mask_url")));
    tresp_free(&r);

    char upath[700], mpath[700], in[700], err[256];
    cr_assert_eq(thttp(&sv.srv, "GET", uurl, NULL, NULL, 0, &r), 0);
    cr_assert_eq(r.status, 200, "%s", r.body);
    char h[128];
    cr_assert_str_eq(tresp_header(&r, "Content-Type", h, sizeof h), "application/gzip");
    save_body(&r, "unc.nii.gz", upath, sizeof upath);
    tresp_free(&r);
    cr_assert_eq(thttp(&sv.srv, "GET", murl, NULL, NULL, 0, &r), 0);
    cr_assert_eq(r.status, 200);
    save_body(&r, "mask.nii.gz", mpath, sizeof mpath);
    tresp_free(&r);

    vol_t uv = {0}, mv = {0}, iv = {0};
    snprintf(in, sizeof in, "%s/ct.nii.gz", sv.dir);
    cr_assert_eq(vol_read(upath, NULL, &uv, err, sizeof err), 0, "%s", err);
    cr_assert_eq(vol_read(mpath, NULL, &mv, err, sizeof err), 0, "%s", err);
    cr_assert_eq(vol_read_header(in, NULL, &iv.geom, NULL, err, sizeof err), 0, "%s", err);
    cr_assert_eq(uv.hdr.datatype, VOL_DT_FLOAT32);
    cr_assert_eq(vol_geom_same(&iv.geom, &uv.geom, 1e-4, err, sizeof err), 0, "%s", err);
    size_t n = (size_t)(uv.geom.nx * uv.geom.ny * uv.geom.nz);
    double sum[VOL_NCLASSES] = {0}, tot = 0;
    long long cnt[VOL_NCLASSES] = {0};
    for (size_t i = 0; i < n; i++) {
        cr_assert(uv.data[i] >= 0 && uv.data[i] <= 1, "voxel %zu: %g", i, uv.data[i]);
        int c = (int)mv.data[i];
        cr_assert(c >= 0 && c < VOL_NCLASSES);
        sum[c] += uv.data[i], cnt[c]++, tot += uv.data[i];
    }
    cr_expect_float_eq(all, tot / (double)n, 1e-6);
    for (int c = 1; c < VOL_NCLASSES; c++) {
        double want = cnt[c] ? sum[c] / (double)cnt[c] : 0;
        json_t *got = json_object_get(means, vol_class_names[c]);
        cr_assert(json_is_number(got), "%s missing", vol_class_names[c]);
        cr_expect_float_eq(json_number_value(got), want, 1e-6, "%s: %g vs %g", vol_class_names[c],
                           json_number_value(got), want);
    }
    cr_expect_gt(tot, 0, "two trained segmentors disagree somewhere");
    json_decref(means);
    vol_free(&uv), vol_free(&mv);

    cr_assert_eq(thttp(&sv.srv, "GET", "/inferences/999999/uncertainty", NULL, NULL, 0, &r), 0);
    cr_expect_eq(r.status, 404);
    cr_expect_str_eq(err_code(&r), "not_found");
    tresp_free(&r);

    /* a single segmentor (baseline) has no map: null in the answer, 404 no_uncertainty */
    long long d = create_dataset("ct", "ct");
    add_volume(d, "ct");
    char body[512];
    snprintf(body, sizeof body,
             "{\"target_dataset\":%lld,\"method\":\"baseline\",\"config\":{\"iters\":10,%s}}", d,
             tiny_cfg);
    cr_assert_eq(thttp(&sv.srv, "POST", "/train", json_ct, body, strlen(body), &r), 0);
    cr_assert_eq(r.status, 202, "%s", r.body);
    long long jid = (long long)json_integer_value(json_object_get(r.json, "id"));
    tresp_free(&r);
    json_t *j = wait_job(jid, NULL, 100);
    cr_assert_str_eq(json_string_value(json_object_get(j, "state")), "succeeded");
    char model[64];
    snprintf(model, sizeof model, "model=%lld",
             (long long)json_integer_value(json_object_get(j, "model_id")));
    json_decref(j);
    const char *parts2[] = {vol, model, NULL};
    cr_assert_eq(tform("/segment", parts2, acc, &r), 0);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_expect(json_is_null(json_object_get(r.json, "uncertainty")), "%s", r.body);
    char path[96];
    snprintf(path, sizeof path, "/inferences/%lld/uncertainty",
             (long long)json_integer_value(json_object_get(r.json, "id")));
    tresp_free(&r);
    cr_assert_eq(thttp(&sv.srv, "GET", path, NULL, NULL, 0, &r), 0);
    cr_expect_eq(r.status, 404);
    cr_expect_str_eq(err_code(&r), "no_uncertainty");
    tresp_free(&r);
    stop();
}
