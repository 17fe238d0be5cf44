/* cmd_gc.c: `mkdseg gc [--dry-run]`: removes what nothing references from the data folder:
 * blobs no row names, old leftovers in tmp/, the folders of jobs that are neither queued nor
 * running (gc.h; safe while the service runs). Prints one line per entry removed ("would
 * remove" in a dry run) on stdout and a summary on stderr.
 * Exit status: 0 done, 1 database or folder error, 2 usage error. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_util.h"
#include "commands.h"
#include "db.h"
#include "gc.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: mkdseg gc [--dry-run] [--grace SECONDS] [--data-dir DIR] [--database-url URL]\n"
            "                 [--force]\n\n"
            "Removes from the data folder the blobs that no database row references (volumes,\n"
            "labels, model weights, masks, uncertainty maps, Slicer images), entries of tmp/\n"
            "and folders of finished jobs under jobs/, when older than the grace period (default\n"
            "MKDSEG_GC_GRACE or 3600 s; storing a blob again makes it young). Safe to run while\n"
            "the service runs, e.g. hourly from cron. --dry-run lists and removes nothing.\n"
            "--force: collect even when the database references no blob at all.\n"
            "The folder comes from --data-dir, MKDSEG_DATA_DIR or var/data; the database from\n"
            "--database-url, MKDSEG_DATABASE_URL or DATABASE_URL.\n");
}

static const char *const kind_names[] = {"blob", "tmp", "job"};

static void print_entry(void *ud, gc_kind kind, const char *relpath, long long bytes)
{
    const gc_opts *o = ud;
    printf("%s %s %s (%lld bytes)\n", o->dry_run ? "would remove" : "removed", kind_names[kind],
           relpath, bytes);
}

/* Parses the options into o, *dir and *url. 0, 1 (--help shown) or 2 (usage error). */
static int parse(int argc, char **argv, gc_opts *o, const char **dir, const char **url)
{
    for (int i = 1; i < argc; i++) {
        int miss = 0;
        const char *v;
        char *end;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 1;
        } else if (!strcmp(argv[i], "--dry-run")) {
            o->dry_run = 1;
        } else if (!strcmp(argv[i], "--force")) {
            o->force = 1;
        } else if ((v = cli_opt(argc, argv, &i, "--grace", &miss))) {
            o->grace_s = strtoll(v, &end, 10);
            if (end == v || *end || o->grace_s < 0) {
                fprintf(stderr, "mkdseg gc: --grace needs a number of seconds, not '%s'\n", v);
                return 2;
            }
        } else if ((v = cli_opt(argc, argv, &i, "--data-dir", &miss))) {
            *dir = v;
        } else if ((v = cli_opt(argc, argv, &i, "--database-url", &miss))) {
            *url = v;
        } else {
            fprintf(stderr, "mkdseg gc: %s '%s'\n", miss ? "missing value for" : "unknown option",
                    argv[i]);
            return 2;
        }
    }
    return 0;
}

int cmd_gc(int argc, char **argv)
{
    const char *e = getenv("MKDSEG_GC_GRACE");
    gc_opts o = {.grace_s = e && *e ? atoll(e) : 3600, .report = print_entry};
    o.ud = &o;
    const char *dir = getenv("MKDSEG_DATA_DIR"), *url = getenv("MKDSEG_DATABASE_URL");
    if (!dir || !*dir)
        dir = "var/data";
    if (!url || !*url)
        url = getenv("DATABASE_URL");
    int p = parse(argc, argv, &o, &dir, &url);
    if (p)
        return p == 1 ? 0 : 2;
    char err[1024];
    PGconn *pg = db_connect(url ? url : "", 10, err, sizeof err);
    if (!pg) {
        fprintf(stderr, "mkdseg gc: %s\n", err);
        return 1;
    }
    gc_stats st;
    int rc = gc_collect(pg, dir, &o, &st, err, sizeof err);
    PQfinish(pg);
    if (rc < 0) {
        fprintf(stderr, "mkdseg gc: %s\n", err);
        return 1;
    }
    fprintf(stderr,
            "mkdseg gc: %s %lld blob(s), %lld temporary entr(ies), %lld job folder(s), %lld "
            "bytes; kept %lld referenced blob(s) and %lld entr(ies) younger than %lld s\n",
            o.dry_run ? "would remove" : "removed", st.removed[GC_BLOB], st.removed[GC_TMP],
            st.removed[GC_JOB], st.bytes, st.referenced, st.young, o.grace_s);
    return 0;
}
