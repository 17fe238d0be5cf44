/* test_safetensors.c: the safetensors reader and writer against an independent Python
 * implementation of the format (tests/tools/safetensors_ref.py), and every malformed case. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "safetensors.h"

static char dir[256];

static void setup(void)
{
    const char *base = getenv("MKDSEG_TEST_TMP");
    snprintf(dir, sizeof dir, "%s/st.XXXXXX", base ? base : "/tmp");
    cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_expect_eq(system(cmd), 0);
}

static json_t *run_json(const char *cmd)
{
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    json_error_t je;
    json_t *j = json_loadf(p, 0, &je);
    cr_assert_eq(pclose(p), 0, "command failed: %s", cmd);
    cr_assert_not_null(j, "bad JSON from %s: %s", cmd, je.text);
    return j;
}

static void write_bytes(const char *path, const void *b, size_t n)
{
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(b, 1, n, f), n);
    fclose(f);
}

TestSuite(safetensors, .init = setup, .fini = teardown);

Test(safetensors, c_writes_python_reads)
{
    float w[2][3] = {{1.5f, -2.25f, 3.0f}, {0.0f, 1e-7f, -4e6f}};
    int64_t it[1] = {123456789012LL};
    uint8_t u[5] = {0, 1, 2, 254, 255};
    int64_t s2[2] = {2, 3}, s1[1] = {1}, s5[1] = {5};
    char err[256], path[300], cmd[600];
    snprintf(path, sizeof path, "%s/a.safetensors", dir);
    st_writer *wr = st_writer_new();
    cr_assert_eq(st_writer_add(wr, "u8s", ST_U8, 1, s5, u, err, sizeof err), 0, "%s", err);
    cr_assert_eq(st_writer_add(wr, "seg.enc0.weight", ST_F32, 2, s2, w, err, sizeof err), 0, "%s",
                 err);
    cr_assert_eq(st_writer_add(wr, "iteration", ST_I64, 1, s1, it, err, sizeof err), 0, "%s", err);
    cr_assert_eq(st_writer_add(wr, "iteration", ST_I64, 1, s1, it, err, sizeof err), -1);
    cr_assert(strstr(err, "duplicate"));
    st_writer_meta(wr, "arch", "unet");
    st_writer_meta(wr, "arch", "resunet");
    st_writer_meta(wr, "json", "{\"a\": [1, 2]}");
    cr_assert_eq(st_writer_write(wr, path, err, sizeof err), 0, "%s", err);
    st_writer_free(wr);

    snprintf(cmd, sizeof cmd, "/usr/bin/python3 tests/tools/safetensors_ref.py read '%s'", path);
    json_t *j = run_json(cmd);
    json_t *meta = json_object_get(j, "meta"), *ts = json_object_get(j, "tensors");
    cr_expect_str_eq(json_string_value(json_object_get(meta, "arch")), "resunet");
    cr_expect_str_eq(json_string_value(json_object_get(meta, "json")), "{\"a\": [1, 2]}");
    json_t *tw = json_object_get(ts, "seg.enc0.weight");
    cr_assert_not_null(tw);
    cr_expect_str_eq(json_string_value(json_object_get(tw, "dtype")), "F32");
    cr_expect_eq(json_integer_value(json_array_get(json_object_get(tw, "shape"), 1)), 3);
    for (int i = 0; i < 6; i++)
        cr_expect_float_eq(json_real_value(json_array_get(json_object_get(tw, "values"), i)),
                           (double)w[i / 3][i % 3], 1e-12 + 1e-7 * fabs((double)w[i / 3][i % 3]));
    cr_expect_eq(json_integer_value(json_array_get(
                     json_object_get(json_object_get(ts, "iteration"), "values"), 0)),
                 123456789012LL);
    cr_expect_eq(json_integer_value(
                     json_array_get(json_object_get(json_object_get(ts, "u8s"), "values"), 4)),
                 255);
    json_decref(j);

    /* and our own reader gets the same back */
    st_file *f;
    cr_assert_eq(st_open(path, 0, &f, err, sizeof err), 0, "%s", err);
    cr_expect_eq(st_count(f), 3);
    const st_tensor *t = st_get(f, "seg.enc0.weight");
    cr_assert_not_null(t);
    cr_expect_eq(memcmp(t->data, w, sizeof w), 0);
    cr_expect_eq(((uintptr_t)t->data) % 8, 0);
    cr_expect_str_eq(st_meta(f, "arch"), "resunet");
    cr_expect_null(st_meta(f, "missing"));
    cr_expect_null(st_get(f, "missing"));
    st_close(f);
}

Test(safetensors, python_writes_c_reads)
{
    char err[256], path[300], cmd[600];
    snprintf(path, sizeof path, "%s/py.safetensors", dir);
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 tests/tools/safetensors_ref.py write '%s'", path);
    cr_assert_eq(system(cmd), 0);
    st_file *f;
    cr_assert_eq(st_open(path, 0, &f, err, sizeof err), 0, "%s", err);
    cr_assert_eq(st_count(f), 3);
    /* file order is by data offset */
    cr_expect_str_eq(st_at(f, 0)->name, "z.last");
    const st_tensor *z = st_get(f, "z.last");
    cr_assert_eq(z->dtype, ST_F32);
    cr_assert_eq(z->ndim, 2);
    cr_expect_eq(z->shape[0], 2);
    const float *zf = z->data;
    for (int i = 0; i < 6; i++)
        cr_expect_float_eq(zf[i], i * 0.5f - 1.0f, 1e-7);
    const st_tensor *a = st_get(f, "a.first");
    cr_expect_eq(((const int64_t *)a->data)[1], -3);
    const st_tensor *m = st_get(f, "m.mid");
    cr_expect_eq(m->ndim, 3);
    cr_expect_eq(((const uint8_t *)m->data)[3], 250);
    cr_expect_str_eq(st_meta(f, "classes"), "8");
    st_close(f);
}

static void expect_parse_error(const char *hdr, size_t datalen, const char *needle)
{
    size_t hn = strlen(hdr), len = 8 + hn + datalen;
    unsigned char *buf = calloc(1, len);
    for (int i = 0; i < 8; i++)
        buf[i] = (unsigned char)((uint64_t)hn >> (8 * i));
    memcpy(buf + 8, hdr, hn);
    st_file *f = NULL;
    char err[256] = "";
    cr_expect_eq(st_parse(buf, len, &f, err, sizeof err), -1, "accepted: %s", hdr);
    cr_expect_null(f);
    cr_expect(strstr(err, needle) != NULL, "error '%s' lacks '%s'", err, needle);
    free(buf);
}

Test(safetensors, malformed_inputs_are_refused_with_reasons)
{
    expect_parse_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                       "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
                       8, "overlaps");
    expect_parse_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8,
                       "hole");
    expect_parse_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8,
                       "needs 12");
    expect_parse_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4,
                       "outside");
    expect_parse_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 12,
                       "trailing");
    expect_parse_error("{\"a\":{\"dtype\":\"BF16\",\"shape\":[1],\"data_offsets\":[0,2]}}", 2,
                       "unsupported dtype");
    expect_parse_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,0]}}", 0,
                       "invalid shape");
    expect_parse_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[1099511627776,1099511627776],\"data_"
                       "offsets\":[0,0]}}",
                       0, "too large");
    expect_parse_error("{\"a\":{\"dtype\":\"F32\"}}", 0, "needs dtype");
    expect_parse_error("{\"__metadata__\":{\"k\":1}}", 0, "not a string");
    expect_parse_error("[1,2]", 0, "not a JSON object");
    expect_parse_error("{\"a\":", 0, "not a JSON object");
    expect_parse_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                       "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
                       4, "not a JSON object");

    /* header length larger than the file, and a file shorter than 8 bytes */
    unsigned char b[16] = {0xff, 0xff, 0, 0, 0, 0, 0, 0, '{', '}'};
    st_file *f = NULL;
    char err[256];
    cr_expect_eq(st_parse(b, sizeof b, &f, err, sizeof err), -1);
    cr_expect(strstr(err, "header length"));
    cr_expect_eq(st_parse(b, 5, &f, err, sizeof err), -1);
    cr_expect(strstr(err, "too short"));
}

Test(safetensors, open_checks_file_and_limit)
{
    char err[256], path[300];
    st_file *f = NULL;
    snprintf(path, sizeof path, "%s/none.safetensors", dir);
    cr_expect_eq(st_open(path, 0, &f, err, sizeof err), -1);
    cr_expect(strstr(err, "cannot open"));
    cr_expect_eq(st_open(dir, 0, &f, err, sizeof err), -1);
    cr_expect(strstr(err, "not a regular file"));
    snprintf(path, sizeof path, "%s/big.safetensors", dir);
    unsigned char junk[64] = {0};
    write_bytes(path, junk, sizeof junk);
    cr_expect_eq(st_open(path, 32, &f, err, sizeof err), -1);
    cr_expect(strstr(err, "limit"));
}
