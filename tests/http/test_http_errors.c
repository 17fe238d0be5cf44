/* test_http_errors.c: error answers never show a server path. Every broken volume of
 * tests/data goes to /segment (as the image and as the label) and to a dataset, a broken model
 * file to /models, and a training job runs on a dataset whose image blob was deleted on disk;
 * every error body (and the job's error) must have the JSON error shape, name the client's
 * file, and contain no path of the server's data folder, its temporary files or /tmp. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "../lib/tform.h"
#include "../lib/tsvc.h"

static tsvc sv; /* the service, its database and scratch folder */

static void start(void) { tsvc_start(&sv, "errors", NULL); }

static void stop(void) { cr_expect_eq(tsvc_stop(&sv), 0); }

TestSuite(errors, .init = start, .fini = stop, .timeout = 600);

/* Asserts that `text` (an answer body or a job error) shows no server path. */
static void no_server_path(const char *what, const char *text)
{
    char real[PATH_MAX] = "";
    if (!realpath(sv.srv.dir, real))
        real[0] = 0;
    const char *tmp = getenv("MKDSEG_TEST_TMP");
    const char *bad[] = {sv.srv.dir, real,       tmp && *tmp ? tmp : NULL,
                         "/tmp/",    "/var/tmp", "data/tmp",
                         "part-",    "blobs/",   NULL};
    for (int i = 0; i < (int)(sizeof bad / sizeof bad[0]) - 1; i++)
        if (bad[i] && *bad[i])
            cr_assert(!strstr(text, bad[i]), "%s shows a server path (%s): %s", what, bad[i], text);
}

/* Checks an error answer: JSON error shape, no server path; returns its message. */
static const char *error_answer(const char *what, const tresp *r)
{
    cr_assert_geq(r->status, 400, "%s: %ld %s", what, r->status, r->body);
    json_t *e = json_object_get(r->json, "error");
    cr_assert(json_is_string(json_object_get(e, "code")) &&
                  json_is_string(json_object_get(e, "message")),
              "%s: not the error shape: %s", what, r->body);
    no_server_path(what, r->body);
    return json_string_value(json_object_get(e, "message"));
}

static const char *broken[] = {"4d.nii.gz",        "bad_datatype.nii",
                               "corrupt.nii.gz",   "empty.nii",
                               "huge_claim.nii",   "huge_claim.nii.gz",
                               "huge_offset.nii",  "inf_scaled.nii",
                               "nan.nii",          "nan_affine.nii",
                               "negative_dim.nii", "not_nifti.nii",
                               "not_nifti.nii.gz", "truncated.nii",
                               "truncated.nii.gz", "unknown_datatype.nii",
                               "zero_dim.nii",     NULL};

static long long create_dataset(const char *name)
{
    char body[128];
    snprintf(body, sizeof body, "{\"name\":\"%s\",\"modality\":\"ct\"}", name);
    const char *ct[] = {"Content-Type: application/json", NULL};
    tresp r;
    cr_assert_eq(thttp(&sv.srv, "POST", "/datasets", ct, body, strlen(body), &r), 0);
    cr_assert_eq(r.status, 201, "%s", r.body);
    long long id = (long long)json_integer_value(json_object_get(r.json, "id"));
    tresp_free(&r);
    return id;
}

static void phantom(const char *image, const char *label)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "'%s' phantom --modality ct --seed 3 --shape 40,40,16 --image '%s' --label '%s' "
             "2>/dev/null",
             tenv("MKDSEG_TEST_BIN"), image, label);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
}

Test(errors, broken_volumes_name_the_field_and_the_clients_file)
{
    long long ds = create_dataset("broken");
    char dsp[64], img[600], lab[600];
    snprintf(dsp, sizeof dsp, "/datasets/%lld/volumes", ds);
    snprintf(img, sizeof img, "%s/good.nii.gz", sv.srv.dir);
    snprintf(lab, sizeof lab, "%s/good_label.nii.gz", sv.srv.dir);
    phantom(img, lab);
    int refused = 0;
    for (int i = 0; broken[i]; i++) {
        char part[600], good[700], what[200];
        snprintf(part, sizeof part, "vol=@tests/data/%s", broken[i]);
        const char *p1[] = {part, NULL};
        tresp r;
        cr_assert_eq(tform_post(&sv.srv, "/segment", p1, NULL, &r), 0);
        if (r.status != 200) {
            snprintf(what, sizeof what, "/segment vol=%s", broken[i]);
            const char *m = error_answer(what, &r);
            const char *code =
                json_string_value(json_object_get(json_object_get(r.json, "error"), "code"));
            if (!strcmp(code, "invalid_volume")) {
                char want[300];
                snprintf(want, sizeof want, "vol: %s:", broken[i]);
                cr_assert(strstr(m, want), "%s: the message names the field and the file: %s", what,
                          m);
            }
            refused++;
        }
        tresp_free(&r);
        /* the same file as the label of a good image */
        snprintf(good, sizeof good, "vol=@%s", img);
        snprintf(part, sizeof part, "label=@tests/data/%s", broken[i]);
        const char *p2[] = {good, part, NULL};
        cr_assert_eq(tform_post(&sv.srv, "/segment", p2, NULL, &r), 0);
        snprintf(what, sizeof what, "/segment label=%s", broken[i]);
        const char *m = error_answer(what, &r);
        cr_assert(strstr(m, "label"), "%s: the message names the field: %s", what, m);
        if (!strncmp(m, "label: ", 7))
            cr_assert(strstr(m, broken[i]), "%s: the message names the file: %s", what, m);
        tresp_free(&r);
        /* and as a dataset's image */
        snprintf(part, sizeof part, "image=@tests/data/%s", broken[i]);
        const char *p3[] = {part, NULL};
        cr_assert_eq(tform_post(&sv.srv, dsp, p3, NULL, &r), 0);
        if (r.status != 201) {
            snprintf(what, sizeof what, "%s image=%s", dsp, broken[i]);
            m = error_answer(what, &r);
            if (!strncmp(m, "image: ", 7))
                cr_assert(strstr(m, broken[i]), "%s: the message names the file: %s", what, m);
        }
        tresp_free(&r);
    }
    cr_assert_geq(refused, 14, "most of the broken files are refused (%d were)", refused);
}

Test(errors, broken_model_file)
{
    char path[600];
    snprintf(path, sizeof path, "%s/cut.safetensors", sv.srv.dir);
    char cmd[1400];
    snprintf(cmd, sizeof cmd, "head -c 3000 models/default.safetensors > '%s'", path);
    cr_assert_eq(system(cmd), 0);
    char part[700];
    snprintf(part, sizeof part, "weights=@%s", path);
    const char *p[] = {part, NULL};
    tresp r;
    cr_assert_eq(tform_post(&sv.srv, "/models", p, NULL, &r), 0);
    error_answer("/models weights=cut.safetensors", &r);
    tresp_free(&r);
}

/* Trains on a one-volume dataset after damage() was done to its image blob on disk; returns the
 * failed job's error (new string). */
static char *train_on_damaged_blob(const char *name, void (*damage)(const char *blob))
{
    long long ds = create_dataset(name);
    char dsp[64], img[600], lab[600], pi[700], pl[700];
    snprintf(dsp, sizeof dsp, "/datasets/%lld/volumes", ds);
    snprintf(img, sizeof img, "%s/v.nii.gz", sv.srv.dir);
    snprintf(lab, sizeof lab, "%s/v_label.nii.gz", sv.srv.dir);
    phantom(img, lab);
    snprintf(pi, sizeof pi, "image=@%s", img);
    snprintf(pl, sizeof pl, "label=@%s", lab);
    const char *p[] = {pi, pl, NULL};
    tresp r;
    cr_assert_eq(tform_post(&sv.srv, dsp, p, NULL, &r), 0);
    cr_assert_eq(r.status, 201, "%s", r.body);
    tresp_free(&r);
    char *rel = tdb_value(sv.pg, "SELECT path FROM volumes");
    cr_assert(rel);
    char blob[1200];
    snprintf(blob, sizeof blob, "%s/data/%s", sv.srv.dir, rel);
    free(rel);
    damage(blob);
    char body[512];
    snprintf(body, sizeof body,
             "{\"target_dataset\":%lld,\"method\":\"baseline\",\"config\":{\"iters\":2,\"size\":32,"
             "\"seg_width\":2,"
             "\"ngf\":4,\"ngen_blocks\":1,\"ndf\":4,\"batch\":2}}",
             ds);
    const char *ct[] = {"Content-Type: application/json", NULL};
    cr_assert_eq(thttp(&sv.srv, "POST", "/train", ct, body, strlen(body), &r), 0);
    cr_assert_eq(r.status, 202, "%s", r.body);
    long long jid = (long long)json_integer_value(json_object_get(r.json, "id"));
    tresp_free(&r);
    char jp[64];
    snprintf(jp, sizeof jp, "/jobs/%lld", jid);
    const char *state = NULL;
    for (int i = 0; i < 6000; i++) {
        cr_assert_eq(thttp(&sv.srv, "GET", jp, NULL, NULL, 0, &r), 0);
        state = json_string_value(json_object_get(r.json, "state"));
        if (state && (!strcmp(state, "failed") || !strcmp(state, "succeeded") ||
                      !strcmp(state, "cancelled")))
            break;
        tresp_free(&r);
        usleep(100000);
    }
    cr_assert_str_eq(state, "failed", "%s", r.body);
    const char *e = json_string_value(json_object_get(r.json, "error"));
    cr_assert(e && *e, "%s", r.body);
    no_server_path("the job's error", r.body);
    char *out = strdup(e);
    tresp_free(&r);
    /* the log keeps the whole reason for the operator */
    cr_assert(tsrv_log_contains(&sv.srv, "\"msg\":\"job failed\""));
    return out;
}

static void remove_blob(const char *blob) { cr_assert_eq(unlink(blob), 0, "remove %s", blob); }

/* flips one byte in the middle of the file: same size, different content */
static void flip_byte(const char *blob)
{
    FILE *f = fopen(blob, "r+b");
    cr_assert(f, "open %s", blob);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, n / 2, SEEK_SET);
    int c = fgetc(f);
    fseek(f, n / 2, SEEK_SET);
    fputc(c ^ 0x5a, f);
    fclose(f);
}

Test(errors, job_error_on_a_missing_blob)
{
    char *e = train_on_damaged_blob("lost", remove_blob);
    cr_assert(strstr(e, "missing from the data folder"), "%s", e);
    free(e);
}

/* a blob's sha256 is checked when it is read: a corrupted volume is an error, not a result */
Test(errors, job_error_on_a_corrupted_blob)
{
    char *e = train_on_damaged_blob("flipped", flip_byte);
    cr_assert(strstr(e, "is corrupt"), "%s", e);
    free(e);
}

/* the promoted model's weights corrupted on disk: /segment says so (and shows no path) */
Test(errors, segment_with_a_corrupted_model_blob)
{
    char *rel = tdb_value(sv.pg, "SELECT weights_path FROM models WHERE is_default");
    cr_assert(rel, "a default model");
    char blob[1200];
    snprintf(blob, sizeof blob, "%s/data/%s", sv.srv.dir, rel);
    free(rel);
    flip_byte(blob);
    char img[600], lab[600], part[700];
    snprintf(img, sizeof img, "%s/s.nii.gz", sv.srv.dir);
    snprintf(lab, sizeof lab, "%s/s_label.nii.gz", sv.srv.dir);
    phantom(img, lab);
    snprintf(part, sizeof part, "vol=@%s", img);
    const char *p[] = {part, NULL};
    tresp r;
    cr_assert_eq(tform_post(&sv.srv, "/segment", p, NULL, &r), 0);
    const char *m = error_answer("/segment with a corrupted model", &r);
    cr_assert(strstr(m, "is corrupt"), "%s", r.body);
    tresp_free(&r);
}

/* a .nii whose magic is not "n+1" (here "abc", and "ni1": a pair's header) is refused with 415
 * before nifticlib can read it as ANALYZE 7.5 */
Test(errors, a_nii_without_the_nifti_magic_is_415)
{
    char img[600], lab[600], raw[600], cmd[2200];
    snprintf(img, sizeof img, "%s/m.nii.gz", sv.srv.dir);
    snprintf(lab, sizeof lab, "%s/m_label.nii.gz", sv.srv.dir);
    phantom(img, lab);
    static const char *const magics[] = {"abc", "ni1"};
    for (int k = 0; k < 2; k++) {
        snprintf(raw, sizeof raw, "%s/magic-%s.nii", sv.srv.dir, magics[k]);
        snprintf(cmd, sizeof cmd,
                 "gzip -dc '%s' > '%s' && printf '%s\\0' | dd of='%s' bs=1 seek=344 conv=notrunc "
                 "2>/dev/null",
                 img, raw, magics[k], raw);
        cr_assert_eq(system(cmd), 0, "%s", cmd);
        char part[700];
        snprintf(part, sizeof part, "vol=@%s", raw);
        const char *p[] = {part, NULL};
        tresp r;
        cr_assert_eq(tform_post(&sv.srv, "/segment", p, NULL, &r), 0);
        cr_assert_eq(r.status, 415, "magic %s: %ld %s", magics[k], r.status, r.body);
        const char *m = error_answer("/segment", &r);
        cr_assert_str_eq(
            json_string_value(json_object_get(json_object_get(r.json, "error"), "code")),
            "not_nifti");
        cr_assert(strstr(m, strrchr(raw, '/') + 1), "names the file: %s", m);
        tresp_free(&r);
    }
}

/* bytes that are not UTF-8 in a path or a file name still give a JSON error (jansson refuses
 * such strings: the answer used to be a 500 "out of memory") */
Test(errors, bytes_that_are_not_utf8_in_a_path_or_a_file_name)
{
    tresp r;
    cr_assert_eq(thttp(&sv.srv, "GET", "/%8A%FFx", NULL, NULL, 0, &r), 0);
    cr_assert_eq(r.status, 404, "%ld %s", r.status, r.body);
    error_answer("GET /%8A%FFx", &r);
    char rid[128], line[200];
    cr_assert(tresp_header(&r, "X-Request-Id", rid, sizeof rid));
    tresp_free(&r);
    /* and its access log line keeps its fields */
    snprintf(line, sizeof line, "\"req\":\"%s\",\"method\":\"GET\",\"path\":\"/??x\"", rid);
    int logged = 0;
    for (int i = 0; i < 3000 && !(logged = tsrv_log_contains(&sv.srv, line)); i++)
        usleep(10000);
    cr_assert(logged, "access log line %s", line);
    char bad[600], part[700];
    snprintf(bad, sizeof bad, "%s/caf\xe9-\xff.nii", sv.srv.dir);
    FILE *f = fopen(bad, "wb");
    cr_assert(f);
    fputs("not a volume at all, but long enough to be read as one............................", f);
    fclose(f);
    snprintf(part, sizeof part, "vol=@%s", bad);
    const char *p[] = {part, NULL};
    cr_assert_eq(tform_post(&sv.srv, "/segment", p, NULL, &r), 0);
    cr_assert_eq(r.status, 415, "%ld %s", r.status, r.body);
    const char *m = error_answer("/segment with a Latin-1 file name", &r);
    cr_assert(strstr(m, "caf?-?.nii"), "the name, its bad bytes replaced: %s", m);
    tresp_free(&r);
    /* a NIfTI header that fails a later check: the message quotes the name too */
    char cmd[1400];
    snprintf(cmd, sizeof cmd, "cp tests/data/truncated.nii '%s'", bad);
    cr_assert_eq(system(cmd), 0);
    cr_assert_eq(tform_post(&sv.srv, "/segment", p, NULL, &r), 0);
    cr_assert_eq(r.status, 422, "%ld %s", r.status, r.body);
    m = error_answer("/segment truncated, with a Latin-1 file name", &r);
    cr_assert(strstr(m, "vol: caf?-?.nii:"), "%s", m);
    tresp_free(&r);
}
