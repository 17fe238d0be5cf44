/* test_gc.c: the garbage collector's parts that need no server: its reference statement covers
 * every blob column of the migrated schema (so a new table with a blob cannot be forgotten),
 * storing content that is stored already makes the blob young again, and the grace decision. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "../lib/tsrv.h"
#include "blob.h"
#include "db_migrate.h"
#include "gc.h"
#include "sql.h"

Test(gc, the_reference_statement_names_every_blob_column_of_the_schema)
{
    char dbname[64], err[512];
    PGconn *pg = tdb_create(dbname);
    cr_assert_eq(db_migrate(pg, db_migrations_embedded, NULL, err, sizeof err), 0, "%s", err);
    PGresult *r = PQexec(pg, "SELECT table_name, column_name FROM information_schema.columns "
                             "WHERE table_schema = current_schema() AND (column_name LIKE "
                             "'%sha256' OR column_name LIKE '%path') ORDER BY 1, 2");
    cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s", PQerrorMessage(pg));
    int checked = 0;
    for (int i = 0; i < PQntuples(r); i++) {
        const char *t = PQgetvalue(r, i, 0), *c = PQgetvalue(r, i, 1);
        /* a token's hash and the digest of a /segment input (not stored) name no blob */
        if (!strcmp(t, "api_tokens") || !strcmp(c, "input_sha256"))
            continue;
        char as_sha[256], as_path[256];
        snprintf(as_sha, sizeof as_sha, "SELECT %s FROM %s", c, t);
        snprintf(as_path, sizeof as_path, "regexp_replace(%s, '^.*/', '') FROM %s", c, t);
        const char *want = strstr(c, "path") ? as_path : as_sha;
        const char *at = strstr(sql_blobs_referenced.sql, want);
        /* the table's name ends there (volumes, not volumes_x) */
        char next = at ? at[strlen(want)] : 0;
        cr_expect(at && (next == ' ' || next == ')'),
                  "%s.%s is not among the garbage collector's references", t, c);
        checked++;
    }
    cr_assert_geq(checked, 10, "the schema's blob columns were found (%d)", checked);
    PQclear(r);
    tdb_drop(pg, dbname);
}

static void store(const char *dir, const char *text, char sha[65])
{
    char err[256], rel[128];
    blob_writer *w = blob_begin(dir, err, sizeof err);
    cr_assert(w, "%s", err);
    cr_assert_eq(blob_write(w, text, strlen(text), err, sizeof err), 0, "%s", err);
    cr_assert_eq(blob_commit(w, sha, rel, sizeof rel, err, sizeof err), 0, "%s", err);
}

Test(gc, storing_stored_content_again_makes_the_blob_young)
{
    char dir[] = "/tmp/mkdseg-gc.XXXXXX", sha[65], sha2[65], path[256];
    cr_assert(mkdtemp(dir));
    store(dir, "same bytes", sha);
    cr_assert_eq(blob_path(dir, sha, path, sizeof path), 0);
    struct timespec t[2] = {{.tv_sec = 1000000000}, {.tv_sec = 1000000000}};
    cr_assert_eq(utimensat(AT_FDCWD, path, t, 0), 0);
    struct stat s;
    cr_assert_eq(stat(path, &s), 0);
    cr_assert_eq((long long)s.st_mtime, 1000000000LL);
    store(dir, "same bytes", sha2);
    cr_assert_str_eq(sha, sha2);
    cr_assert_eq(stat(path, &s), 0);
    cr_assert(gc_is_young((long long)s.st_mtime, (long long)time(NULL), 3600),
              "mtime %lld was not refreshed", (long long)s.st_mtime);
    /* the blob was removed between the two stores: the second one stores it again */
    cr_assert_eq(unlink(path), 0);
    store(dir, "same bytes", sha2);
    cr_assert_eq(stat(path, &s), 0, "stored again");
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

Test(gc, the_grace_decision)
{
    cr_assert(gc_is_young(1000, 1000, 1));
    cr_assert(gc_is_young(1000, 1999, 1000));
    cr_assert_not(gc_is_young(1000, 2000, 1000));
    cr_assert_not(gc_is_young(1000, 1000, 0), "grace 0: everything is old enough");
    cr_assert(gc_is_young(2000, 1000, 10), "an mtime in the future is young");
}
