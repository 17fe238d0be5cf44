/* test_server_blob.c: the content-addressed blob store. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <criterion/criterion.h>

#include "blob.h"

static char dir[256];

static void setup(void)
{
    const char *tmp = getenv("MKDSEG_TEST_TMP");
    snprintf(dir, sizeof dir, "%s/blob.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    cr_assert(mkdtemp(dir));
}
static void teardown(void)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_expect_eq(system(cmd), 0);
}

static int count_entries(const char *path)
{
    DIR *d = opendir(path);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *b = malloc(1 << 16);
    *len = fread(b, 1, 1 << 16, f);
    fclose(f);
    return b;
}

TestSuite(server_blob, .init = setup, .fini = teardown);

Test(server_blob, streamed_chunks_get_their_sha256_address)
{
    char err[256], sha[65], rel[256], abs[512];
    blob_writer *w = blob_begin(dir, err, sizeof err);
    cr_assert(w, "%s", err);
    cr_assert_eq(blob_write(w, "hello ", 6, err, sizeof err), 0);
    cr_assert_eq(blob_write(w, "world", 5, err, sizeof err), 0);
    cr_assert_eq(blob_size(w), 11);
    cr_assert_eq(blob_commit(w, sha, rel, sizeof rel, err, sizeof err), 0, "%s", err);
    /* SHA-256("hello world"), a published test vector */
    cr_assert_str_eq(sha, "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9");
    cr_assert_str_eq(rel,
                     "blobs/b9/b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9");
    cr_assert_eq(blob_path(dir, sha, abs, sizeof abs), 0);
    size_t len = 0;
    char *got = slurp(abs, &len);
    cr_assert(got && len == 11 && !memcmp(got, "hello world", 11));
    free(got);
    char tmpdir[300];
    snprintf(tmpdir, sizeof tmpdir, "%s/tmp", dir);
    cr_assert_eq(count_entries(tmpdir), 0, "no temporary file left");
}

Test(server_blob, same_content_is_stored_once_and_abort_cleans_up)
{
    char err[256], sha1[65], sha2[65], sub[300], tmpdir[300];
    for (int i = 0; i < 2; i++) {
        blob_writer *w = blob_begin(dir, err, sizeof err);
        cr_assert(w, "%s", err);
        cr_assert_eq(blob_write(w, "abc", 3, err, sizeof err), 0);
        cr_assert_eq(blob_commit(w, i ? sha2 : sha1, NULL, 0, err, sizeof err), 0, "%s", err);
    }
    cr_assert_str_eq(sha1, sha2);
    snprintf(sub, sizeof sub, "%s/blobs/%.2s", dir, sha1);
    cr_assert_eq(count_entries(sub), 1, "one file for one content");
    blob_writer *w = blob_begin(dir, err, sizeof err);
    cr_assert_eq(blob_write(w, "partial", 7, err, sizeof err), 0);
    snprintf(tmpdir, sizeof tmpdir, "%s/tmp", dir);
    cr_assert_eq(count_entries(tmpdir), 1, "the upload is on disk while it runs");
    blob_abort(w);
    cr_assert_eq(count_entries(tmpdir), 0, "a failed upload leaves nothing");
    char out[16];
    cr_assert_eq(blob_path(dir, "not-a-digest", out, sizeof out), -1);
    cr_assert_eq(blob_path(dir, sha1, out, sizeof out), -1, "too small a buffer");
}
