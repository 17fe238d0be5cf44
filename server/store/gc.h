/* gc.h: garbage collection of the data folder. Removes the blobs (blob.h) that no database row
 * references any more, the leftovers in <data-dir>/tmp (uploads of requests that died, links of
 * readers that crashed) and the job folders <data-dir>/jobs/<id> of jobs that are neither queued
 * nor running.
 *
 * Safety against concurrent writers: nothing younger than the grace period (by mtime) is
 * removed; storing content that is already present refreshes the existing blob's mtime
 * (blob_touch) before its row is inserted, so a blob about to be referenced again is young. A
 * blob is removed by first renaming it into tmp/ and checking its mtime again: a writer that
 * refreshed it meanwhile gets it put back, and one that comes after the rename finds no file and
 * stores its own copy. The grace period must exceed the time between storing a blob and
 * committing the row that names it (seconds in practice; the default is an hour). */
#ifndef MKDSEG_GC_H
#define MKDSEG_GC_H

#include <stddef.h>
#include <libpq-fe.h>

typedef enum { GC_BLOB = 0, GC_TMP, GC_JOB } gc_kind;

/* Called for each entry removed (or, in a dry run, that would be): relpath is relative to the
 * data folder ("blobs/ab/ab12...", "tmp/part-x", "jobs/12"), bytes its size on disk. */
typedef void (*gc_report_fn)(void *ud, gc_kind kind, const char *relpath, long long bytes);

typedef struct {
    int dry_run;         /* report, remove nothing */
    int force;           /* gc_collect: go on when the database references no blob at all */
    long long grace_s;   /* entries modified less than this many seconds ago are kept */
    gc_report_fn report; /* may be NULL */
    void *ud;
} gc_opts;

typedef struct {
    long long removed[3]; /* by gc_kind (would be removed, in a dry run) */
    long long bytes;      /* their size */
    long long referenced; /* blobs kept because a row names them */
    long long young;      /* entries kept because they are inside the grace period */
} gc_stats;

/* The whole data folder: every unreferenced blob, old tmp entries and finished jobs' folders.
 * The references are read once from pg (sql_blobs_referenced). Refuses (-1) without o->force
 * when no row references any blob while blobs/ holds some: a wrong database for this folder
 * would otherwise empty it. 0 / -1 + err. */
int gc_collect(PGconn *pg, const char *data_dir, const gc_opts *o, gc_stats *st, char *err,
               size_t errlen);

/* Only the blobs with the n digests given (those of rows just deleted), each removed when no row
 * references it (sql_blobs_is_referenced) and it is older than the grace period. 0 / -1 + err. */
int gc_collect_blobs(PGconn *pg, const char *data_dir, const char *const *sha256, int n,
                     const gc_opts *o, gc_stats *st, char *err, size_t errlen);

/* Whether an entry last modified at `mtime` is inside the grace period at `now` (seconds since
 * the epoch): 1 keep, 0 old enough to go. */
int gc_is_young(long long mtime, long long now, long long grace_s);

#endif
