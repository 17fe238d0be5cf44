/* test_http_data.c: the data folder's life cycle against the real `mkdseg serve` and a real
 * PostgreSQL: deleting datasets and models removes the blobs nothing references any more (at
 * once when they are older than the grace period), `mkdseg gc --dry-run` lists what `mkdseg gc`
 * then removes (exactly that: unreferenced blobs, old tmp/ entries, folders of jobs that do not
 * run) and neither touches a referenced or a young blob; `mkdseg backup` and `restore` carry
 * a service with an uploaded, promoted model into a fresh database and data folder where the
 * same CT segments to the same mask. Ages are set with utimensat, never waited for. */
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "../lib/tform.h"
#include "../lib/tsvc.h"
#include "vol.h"

static tsvc sv; /* the service, its database and scratch folder */
static char data[800];

/* Runs a shell command and returns its stdout (malloc'd); *status gets its exit status. */
static char *capture(int *status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static char *capture(int *status, const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    FILE *p = popen(cmd, "r");
    cr_assert(p, "popen %s", cmd);
    size_t cap = 1 << 16, n = 0;
    char *out = malloc(cap);
    size_t k;
    while ((k = fread(out + n, 1, cap - n - 1, p)) > 0) {
        n += k;
        if (n + 1 >= cap)
            out = realloc(out, cap *= 2);
    }
    out[n] = 0;
    int st = pclose(p);
    *status = WIFEXITED(st) ? WEXITSTATUS(st) : 128;
    return out;
}

static void start(void)
{
    tsvc_start(&sv, "data", NULL);
    snprintf(data, sizeof data, "%s/data", sv.srv.dir);
}

static void cleanup(void) { tsvc_stop(&sv); }
TestSuite(data, .fini = cleanup);

static const char *const json_ct[] = {"Content-Type: application/json", NULL};

static long long post_id(const char *path, const char *body, const char *const *parts)
{
    tresp r;
    int rc = parts ? tform_post(&sv.srv, path, parts, NULL, &r)
                   : thttp(&sv.srv, "POST", path, json_ct, body, strlen(body), &r);
    cr_assert_eq(rc, 0);
    cr_assert_eq(r.status, 201, "POST %s: %ld %s", path, r.status, r.body);
    long long id = (long long)json_integer_value(json_object_get(r.json, "id"));
    tresp_free(&r);
    return id;
}

static long delete_status(const char *path)
{
    tresp r;
    cr_assert_eq(thttp(&sv.srv, "DELETE", path, NULL, NULL, 0, &r), 0);
    long st = r.status;
    tresp_free(&r);
    return st;
}

static long long dataset(const char *name)
{
    char body[128];
    snprintf(body, sizeof body, "{\"name\":\"%s\",\"modality\":\"ct\"}", name);
    return post_id("/datasets", body, NULL);
}

/* Adds <sv.dir>/<name>.nii.gz with its label to dataset ds. */
static void volume(long long ds, const char *name)
{
    char path[64], img[700], lab[700];
    snprintf(path, sizeof path, "/datasets/%lld/volumes", ds);
    snprintf(img, sizeof img, "image=@%s/%s.nii.gz", sv.dir, name);
    snprintf(lab, sizeof lab, "label=@%s/%s_label.nii.gz", sv.dir, name);
    const char *parts[] = {img, lab, NULL};
    post_id(path, NULL, parts);
}

static void phantom(const char *name, int seed)
{
    tsh("'%s' phantom --modality ct --seed %d --shape 32,32,8 --image '%s/%s.nii.gz' --label "
        "'%s/%s_label.nii.gz' 2>/dev/null",
        tenv("MKDSEG_TEST_BIN"), seed, sv.dir, name, sv.dir, name);
}

/* The sha256 (hex) of a file. */
static void file_sha(const char *path, char out[65])
{
    int st;
    char *o = capture(&st, "sha256sum '%s'", path);
    cr_assert_eq(st, 0);
    snprintf(out, 65, "%.64s", o);
    free(o);
}

static int blob_exists(const char *sha)
{
    char p[900];
    struct stat s;
    snprintf(p, sizeof p, "%s/blobs/%.2s/%s", data, sha, sha);
    return stat(p, &s) == 0;
}

/* Sets the mtime of path (and of what a folder holds, one level) to `ago` seconds ago. */
static void age(const char *path, int ago)
{
    struct timespec t[2];
    clock_gettime(CLOCK_REALTIME, &t[0]);
    t[0].tv_sec -= ago;
    t[1] = t[0];
    cr_assert_eq(utimensat(AT_FDCWD, path, t, AT_SYMLINK_NOFOLLOW), 0, "utimensat %s", path);
}

/* Ages every blob on disk by two hours (past the default grace period of one hour). */
static void age_blobs(void)
{
    tsh("find '%s/blobs' -type f -exec touch -h -d '-2 hours' {} +", data);
}

/* How many lines of text start with prefix. */
static int lines_starting(const char *text, const char *prefix)
{
    int n = 0;
    for (const char *q = text; q && *q; q = strchr(q, '\n'), q = q ? q + 1 : NULL)
        n += !strncmp(q, prefix, strlen(prefix));
    return n;
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert(f, "%s", path);
    fputs(text, f);
    fclose(f);
}

/* A copy of the default model whose bytes differ (one more space of header padding, which the
 * safetensors format allows), so that its blob is its own. */
static void model_variant(const char *out)
{
    tsh("python3 -c \"import struct,sys; b=open('models/default.safetensors','rb').read(); "
        "n=struct.unpack('<Q',b[:8])[0]; h=b[8:8+n]+b'        '; "
        "open(sys.argv[1],'wb').write(struct.pack('<Q',len(h))+h+b[8+n:])\" '%s'",
        out);
}

Test(data, deletes_and_gc_remove_exactly_the_unreferenced_blobs, .timeout = 300)
{
    start();
    phantom("a", 1);
    phantom("b", 2);
    phantom("c", 3);
    /* A = {a, b}, B = {a, c}: a's blobs are shared */
    long long A = dataset("A"), B = dataset("B");
    volume(A, "a");
    volume(A, "b");
    volume(B, "a");
    volume(B, "c");
    char sa[65], sal[65], sb[65], sbl[65], sc[65], sdef[65], sm[65], f[1000];
    snprintf(f, sizeof f, "%s/a.nii.gz", sv.dir), file_sha(f, sa);
    snprintf(f, sizeof f, "%s/a_label.nii.gz", sv.dir), file_sha(f, sal);
    snprintf(f, sizeof f, "%s/b.nii.gz", sv.dir), file_sha(f, sb);
    snprintf(f, sizeof f, "%s/b_label.nii.gz", sv.dir), file_sha(f, sbl);
    snprintf(f, sizeof f, "%s/c.nii.gz", sv.dir), file_sha(f, sc);
    file_sha("models/default.safetensors", sdef);
    cr_assert(blob_exists(sa) && blob_exists(sb) && blob_exists(sbl) && blob_exists(sc));
    cr_assert(blob_exists(sdef), "the default model is registered as a blob");

    /* a dataset deleted while its blobs are young keeps them (grace), for gc to collect */
    long long Y = dataset("young");
    phantom("y", 4);
    volume(Y, "y");
    char sy[65], syl[65];
    snprintf(f, sizeof f, "%s/y.nii.gz", sv.dir), file_sha(f, sy);
    snprintf(f, sizeof f, "%s/y_label.nii.gz", sv.dir), file_sha(f, syl);
    snprintf(f, sizeof f, "/datasets/%lld", Y);
    cr_assert_eq(delete_status(f), 204);
    cr_assert(blob_exists(sy) && blob_exists(syl),
              "blobs inside the grace period stay after the delete");

    /* old blobs go with the delete at once, shared ones stay */
    age_blobs();
    char p[64];
    snprintf(p, sizeof p, "/datasets/%lld", A);
    cr_assert_eq(delete_status(p), 204);
    cr_assert(!blob_exists(sb) && !blob_exists(sbl), "b's image and label are gone");
    cr_assert(blob_exists(sa) && blob_exists(sal), "a's blobs are still named by dataset B");
    cr_assert(blob_exists(sc) && blob_exists(sdef));

    /* a model of its own: the default one cannot be deleted, the other goes (blob kept: young) */
    char mfile[700], mpart[720];
    snprintf(mfile, sizeof mfile, "%s/variant.safetensors", sv.dir);
    model_variant(mfile);
    file_sha(mfile, sm);
    snprintf(mpart, sizeof mpart, "weights=@%s", mfile);
    const char *mparts[] = {mpart, "name=variant", NULL};
    long long M = post_id("/models", NULL, mparts);
    cr_assert(blob_exists(sm));
    char *def = tdb_value(sv.pg, "SELECT id FROM models WHERE is_default");
    cr_assert(def);
    snprintf(p, sizeof p, "/models/%s", def);
    free(def);
    cr_assert_eq(delete_status(p), 409, "the default model is refused");
    snprintf(p, sizeof p, "/models/%lld", M);
    cr_assert_eq(delete_status(p), 204);
    cr_assert_eq(delete_status(p), 404);
    cr_assert(blob_exists(sm), "young: kept for gc");

    /* leftovers: an old and a new temporary file, a job folder of no job, an old stray blob and
     * a young one */
    char t_old[900], t_new[900], job[900], stray[900], fresh[900];
    const char *s_old = "00aa00aa00aa00aa00aa00aa00aa00aa00aa00aa00aa00aa00aa00aa00aa00aa",
               *s_new = "00bb00bb00bb00bb00bb00bb00bb00bb00bb00bb00bb00bb00bb00bb00bb00bb";
    snprintf(t_old, sizeof t_old, "%s/tmp/part-old", data);
    snprintf(t_new, sizeof t_new, "%s/tmp/part-new", data);
    snprintf(job, sizeof job, "%s/jobs/999", data);
    snprintf(stray, sizeof stray, "%s/blobs/00/%s", data, s_old);
    snprintf(fresh, sizeof fresh, "%s/blobs/00/%s", data, s_new);
    tsh("mkdir -p '%s/tmp' '%s' '%s/blobs/00'", data, job, data);
    write_file(t_old, "partial upload");
    write_file(t_new, "upload in progress");
    snprintf(f, sizeof f, "%s/checkpoint.safetensors", job);
    write_file(f, "ckpt");
    write_file(stray, "stray");
    age_blobs(); /* every blob is old now, the variant model's too */
    write_file(fresh, "fresh");
    age(t_old, 7200);
    age(f, 7200);
    age(job, 7200);

    char url[1024];
    tdb_url(sv.dbname, url);
    int st;
    char *dry = capture(&st, "'%s' gc --dry-run --data-dir '%s' --database-url '%s' 2>&1",
                        tenv("MKDSEG_TEST_BIN"), data, url);
    cr_assert_eq(st, 0, "%s", dry);
    /* exactly these six, in the dry run's words: the young dataset's two blobs (old now), the
     * deleted model's, the stray one, the old temporary file, the job folder */
    char want[6][200];
    snprintf(want[0], sizeof want[0], "would remove blob blobs/%.2s/%s ", sm, sm);
    snprintf(want[1], sizeof want[1], "would remove blob blobs/00/%s ", s_old);
    snprintf(want[2], sizeof want[2], "would remove tmp tmp/part-old ");
    snprintf(want[3], sizeof want[3], "would remove job jobs/999 ");
    snprintf(want[4], sizeof want[4], "would remove blob blobs/%.2s/%s ", sy, sy);
    snprintf(want[5], sizeof want[5], "would remove blob blobs/%.2s/%s ", syl, syl);
    for (int i = 0; i < 6; i++)
        cr_assert(strstr(dry, want[i]), "dry run lacks '%s':\n%s", want[i], dry);
    cr_assert_eq(lines_starting(dry, "would remove "), 6, "six entries, no more:\n%s", dry);
    cr_assert(blob_exists(sm) && blob_exists(s_old) && blob_exists(sy) && blob_exists(syl),
              "a dry run removes nothing");
    cr_assert_eq(access(t_old, F_OK), 0);
    cr_assert_eq(access(job, F_OK), 0);

    char *out = capture(&st, "'%s' gc --data-dir '%s' --database-url '%s' 2>&1",
                        tenv("MKDSEG_TEST_BIN"), data, url);
    cr_assert_eq(st, 0, "%s", out);
    for (int i = 0; i < 6; i++) {
        const char *what = want[i] + strlen("would remove ");
        char line[220];
        snprintf(line, sizeof line, "removed %s", what);
        cr_assert(strstr(out, line), "gc lacks '%s':\n%s", line, out);
    }
    cr_assert(!blob_exists(sm) && !blob_exists(s_old) && !blob_exists(sy) && !blob_exists(syl));
    cr_assert_neq(access(t_old, F_OK), 0);
    cr_assert_neq(access(job, F_OK), 0);
    /* untouched: every referenced blob, the young stray, the new temporary file */
    cr_assert(blob_exists(sa) && blob_exists(sal) && blob_exists(sc) && blob_exists(sdef));
    cr_assert(blob_exists(s_new), "a young unreferenced blob stays");
    cr_assert_eq(access(t_new, F_OK), 0);
    free(dry);
    free(out);

    /* what B names still reads back whole: its volumes' images through the API */
    tresp r;
    char *vid = tdb_value(sv.pg, "SELECT min(id) FROM volumes");
    snprintf(p, sizeof p, "/volumes/%s/image", vid);
    free(vid);
    cr_assert_eq(thttp(&sv.srv, "GET", p, NULL, NULL, 0, &r), 0);
    cr_assert_eq(r.status, 200, "%s", r.body);
    tresp_free(&r);
    /* a second run has nothing left to do */
    out = capture(&st, "'%s' gc --data-dir '%s' --database-url '%s' 2>&1", tenv("MKDSEG_TEST_BIN"),
                  data, url);
    cr_assert_eq(st, 0);
    cr_assert(strstr(out, "removed 0 blob(s), 0 temporary entr(ies), 0 job folder(s)"), "%s", out);
    free(out);
}

Test(data, gc_refuses_a_database_that_references_nothing, .timeout = 120)
{
    start();
    char other[64], url[1024];
    PGconn *o = tdb_create(other);
    tdb_url(other, url);
    /* migrated, empty: the schema exists, no row names a blob */
    int st;
    char *out = capture(&st, "'%s' migrate --database-url '%s' 2>&1", tenv("MKDSEG_TEST_BIN"), url);
    cr_assert_eq(st, 0, "%s", out);
    free(out);
    age_blobs();
    out = capture(&st, "'%s' gc --data-dir '%s' --database-url '%s' 2>&1", tenv("MKDSEG_TEST_BIN"),
                  data, url);
    cr_assert_eq(st, 1, "%s", out);
    cr_assert(strstr(out, "references no blob"), "%s", out);
    free(out);
    char sdef[65];
    file_sha("models/default.safetensors", sdef);
    cr_assert(blob_exists(sdef), "nothing removed");
    tdb_drop(o, other);
}

/* ---- backup and restore ------------------------------------------------------------------- */

/* The body of GET path (status 200 asserted), written to file. */
static void get_to_file(const char *path, const char *file)
{
    tresp r;
    cr_assert_eq(thttp(&sv.srv, "GET", path, NULL, NULL, 0, &r), 0);
    cr_assert_eq(r.status, 200, "GET %s: %ld %s", path, r.status, r.body);
    FILE *f = fopen(file, "wb");
    cr_assert(f);
    fwrite(r.body, 1, r.len, f);
    fclose(f);
    tresp_free(&r);
}

/* POST /segment of <sv.dir>/<name>.nii.gz: the NIfTI answer into file; returns the model id. */
static long long segment_to(const char *name, const char *file)
{
    char vol[700], h[64];
    snprintf(vol, sizeof vol, "vol=@%s/%s.nii.gz", sv.dir, name);
    const char *parts[] = {vol, NULL};
    tresp r;
    cr_assert_eq(tform_post(&sv.srv, "/segment", parts, NULL, &r), 0);
    cr_assert_eq(r.status, 200, "%s", r.body);
    long long mid = atoll(tresp_header(&r, "X-Mkdseg-Model", h, sizeof h));
    FILE *f = fopen(file, "wb");
    cr_assert(f);
    fwrite(r.body, 1, r.len, f);
    fclose(f);
    tresp_free(&r);
    return mid;
}

/* The label maps in files a and b hold the same voxels; returns the foreground count. */
static long long same_labels(const char *a, const char *b)
{
    vol_geom ga, gb;
    uint8_t *la = NULL, *lb = NULL;
    char err[512];
    cr_assert_eq(vol_read_labels(a, NULL, VOL_LABELS_AUTO, &ga, &la, err, sizeof err), 0, "%s",
                 err);
    cr_assert_eq(vol_read_labels(b, NULL, VOL_LABELS_AUTO, &gb, &lb, err, sizeof err), 0, "%s",
                 err);
    int64_t n = ga.nx * ga.ny * ga.nz;
    cr_assert_eq(n, gb.nx * gb.ny * gb.nz);
    long long fg = 0, diff = 0;
    for (int64_t i = 0; i < n; i++)
        fg += la[i] != 0, diff += la[i] != lb[i];
    free(la);
    free(lb);
    cr_assert_eq(diff, 0, "%lld voxels differ", diff);
    return fg;
}

static int user_tables(PGconn *c)
{
    char *v = tdb_value(c, "SELECT count(*) FROM pg_tables WHERE schemaname NOT IN "
                           "('pg_catalog', 'information_schema')");
    int n = v ? atoi(v) : -1;
    free(v);
    return n;
}

/* An uploaded model promoted, a dataset, a stored mask; then the backup. */
static void backup_source(const char *bk, char mask_url[128], long long *mid, const char *m1)
{
    char mfile[700], mpart[720];
    snprintf(mfile, sizeof mfile, "%s/variant.safetensors", sv.dir);
    model_variant(mfile);
    snprintf(mpart, sizeof mpart, "weights=@%s", mfile);
    const char *mparts[] = {mpart, "name=uploaded", NULL};
    *mid = post_id("/models", NULL, mparts);
    char p[64];
    snprintf(p, sizeof p, "/models/%lld/promote", *mid);
    tresp r;
    cr_assert_eq(thttp(&sv.srv, "POST", p, NULL, NULL, 0, &r), 0);
    cr_assert_eq(r.status, 200, "%s", r.body);
    tresp_free(&r);
    volume(dataset("kept"), "a");
    /* a JSON answer stores the mask (an inference blob) */
    char vol[700];
    snprintf(vol, sizeof vol, "vol=@%s/p.nii.gz", sv.dir);
    const char *parts[] = {vol, NULL}, *acc[] = {"Accept: application/json", NULL};
    cr_assert_eq(tform_post(&sv.srv, "/segment", parts, acc, &r), 0);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_eq(json_integer_value(json_object_get(r.json, "model")), *mid);
    snprintf(mask_url, 128, "%s", json_string_value(json_object_get(r.json, "mask_url")));
    tresp_free(&r);
    get_to_file(mask_url, m1);
    char url[1024];
    tdb_url(sv.dbname, url);
    int st;
    char *out = capture(&st, "'%s' backup --out '%s' --data-dir '%s' --database-url '%s' 2>&1",
                        tenv("MKDSEG_TEST_BIN"), bk, data, url);
    cr_assert_eq(st, 0, "%s", out);
    free(out);
}

Test(data, backup_and_restore_into_a_fresh_database_segment_the_same, .timeout = 300)
{
    start();
    phantom("p", 7);
    phantom("a", 1);
    char bk[700], m1[700], m2[700], m3[700], mask_url[128], url[1024];
    long long mid;
    snprintf(bk, sizeof bk, "%s/backup", sv.dir);
    snprintf(m1, sizeof m1, "%s/mask-before.nii.gz", sv.dir);
    snprintf(m2, sizeof m2, "%s/mask-stored-after.nii.gz", sv.dir);
    snprintf(m3, sizeof m3, "%s/mask-new-after.nii.gz", sv.dir);
    backup_source(bk, mask_url, &mid, m1);
    tdb_url(sv.dbname, url);
    int st;
    /* not into a database with tables */
    char *out = capture(&st, "'%s' restore --from '%s' --database '%s' --data-dir '%s/x' 2>&1",
                        tenv("MKDSEG_TEST_BIN"), bk, url, sv.dir);
    cr_assert_eq(st, 1, "%s", out);
    cr_assert(strstr(out, "holds"), "%s", out);
    free(out);

    /* a damaged copy is refused before anything is restored */
    char fresh[64], furl[1024], bad[700];
    PGconn *fpg = tdb_create(fresh);
    tdb_url(fresh, furl);
    snprintf(bad, sizeof bad, "%s/backup-bad", sv.dir);
    tsh("cp -r '%s' '%s' && f=$(find '%s/blobs' -type f | head -1) && printf 'X' | dd of=\"$f\" "
        "bs=1 seek=100 conv=notrunc 2>/dev/null",
        bk, bad, bad);
    out = capture(&st, "'%s' restore --from '%s' --database '%s' --data-dir '%s/restored' 2>&1",
                  tenv("MKDSEG_TEST_BIN"), bad, furl, sv.dir);
    cr_assert_eq(st, 1, "%s", out);
    cr_assert(strstr(out, "damaged"), "%s", out);
    free(out);
    cr_assert_eq(user_tables(fpg), 0, "nothing restored from a damaged backup");

    /* the real one, into the fresh database and a fresh folder */
    out = capture(&st, "'%s' restore --from '%s' --database '%s' --data-dir '%s/restored' 2>&1",
                  tenv("MKDSEG_TEST_BIN"), bk, furl, sv.dir);
    cr_assert_eq(st, 0, "%s", out);
    free(out);
    cr_assert_eq(tsrv_stop(&sv.srv), 0, "the first server is gone");
    char rdata[700];
    snprintf(rdata, sizeof rdata, "%s/restored", sv.dir);
    const char *args[] = {"--data-dir", rdata, "--default-model", "", "--job-poll", "1", NULL};
    cr_assert_eq(tsrv_start(&sv.srv, furl, args), 0, "server on the restored data");
    snprintf(data, sizeof data, "%s", rdata);
    /* the stored mask reads back, and the restored model segments the CT the same */
    get_to_file(mask_url, m2);
    cr_assert_eq(segment_to("p", m3), mid, "the restored default model");
    long long fg = same_labels(m1, m2);
    cr_assert_gt(fg, 100, "the mask is not empty (%lld voxels)", fg);
    same_labels(m1, m3);
    char *name = tdb_value(fpg, "SELECT name FROM models WHERE is_default");
    cr_assert_str_eq(name, "uploaded");
    free(name);
    char *vid = tdb_value(fpg, "SELECT min(id) FROM volumes"), p[64];
    snprintf(p, sizeof p, "/volumes/%s/image", vid);
    free(vid);
    get_to_file(p, m2);
    cr_assert_eq(tsrv_stop(&sv.srv), 0);
    tdb_drop(fpg, fresh);
}
