/* gc.c: see gc.h. */
#include "gc.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "blob.h"
#include "sql.h"

int gc_is_young(long long mtime, long long now, long long grace_s) { return now - mtime < grace_s; }

static void report(const gc_opts *o, gc_stats *st, gc_kind k, const char *rel, long long bytes)
{
    st->removed[k]++;
    st->bytes += bytes;
    if (o->report)
        o->report(o->ud, k, rel, bytes);
}

/* The newest mtime and the total size of path (a file, a link, or a folder and what it holds,
 * recursively). -1 when it cannot be read. */
static int newest(const char *path, long long *mtime, long long *bytes)
{
    struct stat s;
    if (lstat(path, &s) < 0)
        return -1;
    if ((long long)s.st_mtime > *mtime)
        *mtime = (long long)s.st_mtime;
    if (!S_ISDIR(s.st_mode)) {
        *bytes += (long long)s.st_size;
        return 0;
    }
    DIR *d = opendir(path);
    if (!d)
        return -1;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        char sub[2048];
        snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
        newest(sub, mtime, bytes);
    }
    closedir(d);
    return 0;
}

/* Removes path and, when it is a folder, everything in it. */
static void remove_tree(const char *path)
{
    struct stat s;
    if (lstat(path, &s) < 0)
        return;
    if (S_ISDIR(s.st_mode)) {
        DIR *d = opendir(path);
        struct dirent *e;
        while (d && (e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                continue;
            char sub[2048];
            snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
            remove_tree(sub);
        }
        if (d)
            closedir(d);
        rmdir(path);
    } else {
        unlink(path);
    }
}

/* One unreferenced blob: kept when young; otherwise renamed into tmp/ and checked again (a
 * writer that refreshed it in between gets it back), then removed. */
static void remove_blob(const char *dd, const char *sha, const gc_opts *o, gc_stats *st)
{
    char path[1200], trash[1300], rel[128];
    struct stat s;
    if (blob_path(dd, sha, path, sizeof path) < 0 || lstat(path, &s) < 0)
        return;
    long long now = (long long)time(NULL);
    if (gc_is_young((long long)s.st_mtime, now, o->grace_s)) {
        st->young++;
        return;
    }
    snprintf(rel, sizeof rel, "blobs/%.2s/%s", sha, sha);
    if (o->dry_run) {
        report(o, st, GC_BLOB, rel, (long long)s.st_size);
        return;
    }
    snprintf(trash, sizeof trash, "%s/tmp/gc-%s-%ld", dd, sha, (long)getpid());
    if (rename(path, trash) < 0)
        return; /* gone already, or tmp/ missing: nothing removed */
    if (stat(trash, &s) == 0 && gc_is_young((long long)s.st_mtime, now, o->grace_s)) {
        if (link(trash, path) < 0 && errno != EEXIST) /* EEXIST: stored again meanwhile */
            rename(trash, path);
        unlink(trash);
        st->young++;
        return;
    }
    unlink(trash);
    report(o, st, GC_BLOB, rel, (long long)s.st_size);
}

/* Sorted unique digests for bsearch. */
static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Whether blobs/ holds at least one file. */
static int any_blob(const char *dd)
{
    char top[1100];
    snprintf(top, sizeof top, "%s/blobs", dd);
    DIR *d = opendir(top);
    struct dirent *e;
    int found = 0;
    while (d && !found && (e = readdir(d))) {
        if (strlen(e->d_name) != 2)
            continue;
        char sub[1200];
        snprintf(sub, sizeof sub, "%s/%s", top, e->d_name);
        DIR *d2 = opendir(sub);
        struct dirent *f;
        while (d2 && !found && (f = readdir(d2)))
            found = strlen(f->d_name) == 64;
        if (d2)
            closedir(d2);
    }
    if (d)
        closedir(d);
    return found;
}

/* Every blob under blobs/ that is not in refs (n sorted strings). */
static void sweep_blobs(const char *dd, char **refs, int n, const gc_opts *o, gc_stats *st)
{
    char top[1100];
    snprintf(top, sizeof top, "%s/blobs", dd);
    DIR *d = opendir(top);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (strlen(e->d_name) != 2)
            continue;
        char sub[1200];
        snprintf(sub, sizeof sub, "%s/%s", top, e->d_name);
        DIR *d2 = opendir(sub);
        struct dirent *f;
        while (d2 && (f = readdir(d2))) {
            char probe[1200];
            const char *name = f->d_name;
            if (strlen(name) != 64 || blob_path(dd, name, probe, sizeof probe) < 0 ||
                strncmp(name, e->d_name, 2))
                continue; /* not a blob's name: left alone */
            if (bsearch(&name, refs, (size_t)n, sizeof *refs, cmp_str)) {
                st->referenced++;
                continue;
            }
            remove_blob(dd, name, o, st);
        }
        if (d2)
            closedir(d2);
    }
    if (d)
        closedir(d);
}

/* Every entry of <dd>/<folder> older than the grace period for which keep() says no. */
static void sweep_folder(const char *dd, const char *folder, gc_kind kind,
                         int (*keep)(const char *name, void *ud), void *ud, const gc_opts *o,
                         gc_stats *st)
{
    char top[1100];
    snprintf(top, sizeof top, "%s/%s", dd, folder);
    DIR *d = opendir(top);
    struct dirent *e;
    long long now = (long long)time(NULL);
    while (d && (e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") || (keep && keep(e->d_name, ud)))
            continue;
        char path[1400], rel[400];
        long long mtime = 0, bytes = 0;
        snprintf(path, sizeof path, "%s/%s", top, e->d_name);
        if (newest(path, &mtime, &bytes) < 0)
            continue;
        if (gc_is_young(mtime, now, o->grace_s)) {
            st->young++;
            continue;
        }
        snprintf(rel, sizeof rel, "%s/%.300s", folder, e->d_name);
        if (!o->dry_run)
            remove_tree(path);
        report(o, st, kind, rel, bytes);
    }
    if (d)
        closedir(d);
}

/* keep() of jobs/: folders of queued or running jobs (ud: the PGresult of their ids), and
 * anything that is not a job id. */
static int keep_job(const char *name, void *ud)
{
    PGresult *active = ud;
    char *end;
    long long id = strtoll(name, &end, 10);
    if (end == name || *end || id <= 0)
        return 1;
    for (int i = 0; i < PQntuples(active); i++)
        if (atoll(PQgetvalue(active, i, 0)) == id)
            return 1;
    return 0;
}

/* The folder a blob is renamed into before it is removed (same file system as blobs/). */
static void make_tmp(const char *dd)
{
    char t[1100];
    snprintf(t, sizeof t, "%s/tmp", dd);
    mkdir(t, 0755);
}

int gc_collect(PGconn *pg, const char *data_dir, const gc_opts *o, gc_stats *st, char *err,
               size_t errlen)
{
    memset(st, 0, sizeof *st);
    make_tmp(data_dir);
    PGresult *refs = db_query(pg, &sql_blobs_referenced, NULL, err, errlen);
    if (!refs)
        return -1;
    PGresult *jobs = db_query(pg, &sql_blobs_active_jobs, NULL, err, errlen);
    int n = PQntuples(refs);
    char **v = calloc((size_t)n + 1, sizeof *v);
    if (!jobs || !v) {
        if (!v)
            snprintf(err, errlen, "gc: out of memory");
        PQclear(refs);
        PQclear(jobs);
        free(v);
        return -1;
    }
    int rc = 0;
    if (n == 0 && !o->force && any_blob(data_dir)) {
        snprintf(err, errlen,
                 "the database references no blob while the data folder holds some: is this the "
                 "database of this data folder? (force to collect anyway)");
        rc = -1;
        goto done;
    }
    for (int i = 0; i < n; i++)
        v[i] = PQgetvalue(refs, i, 0);
    qsort(v, (size_t)n, sizeof *v, cmp_str);
    sweep_blobs(data_dir, v, n, o, st);
    sweep_folder(data_dir, "tmp", GC_TMP, NULL, NULL, o, st);
    sweep_folder(data_dir, "jobs", GC_JOB, keep_job, jobs, o, st);
done:
    free(v);
    PQclear(refs);
    PQclear(jobs);
    return rc;
}

int gc_collect_blobs(PGconn *pg, const char *data_dir, const char *const *sha256, int n,
                     const gc_opts *o, gc_stats *st, char *err, size_t errlen)
{
    memset(st, 0, sizeof *st);
    make_tmp(data_dir);
    for (int i = 0; i < n; i++) {
        const char *v[1] = {sha256[i]};
        PGresult *r = db_query(pg, &sql_blobs_is_referenced, v, err, errlen);
        if (!r)
            return -1;
        int used = PQgetvalue(r, 0, 0)[0] == 't';
        PQclear(r);
        if (used)
            st->referenced++;
        else
            remove_blob(data_dir, sha256[i], o, st);
    }
    return 0;
}
