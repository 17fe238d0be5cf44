/* test_db_migrate.c: the migration runner against the real PostgreSQL (a scratch database per
 * test): ordering, recording, checksums, refusals, rollback, concurrency, the embedded schema. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "db.h"
#include "db_migrate.h"
#include "../lib/tsrv.h"

static PGconn *pg;
static char dbname[64];

static void setup(void) { pg = tdb_create(dbname); }
static void teardown(void) { tdb_drop(pg, dbname); }

static long count(const char *sql)
{
    char *v = tdb_value(pg, sql);
    long n = v ? atol(v) : -1;
    free(v);
    return n;
}

#define SQL_A "CREATE TABLE a (id int PRIMARY KEY);"
#define SQL_B "CREATE TABLE b (a_id int REFERENCES a (id));"

TestSuite(db_migrate, .init = setup, .fini = teardown);

Test(db_migrate, embedded_schema_applies_once_with_comments)
{
    char err[1024];
    int applied = -1, n = 0;
    while (db_migrations_embedded[n].name)
        n++;
    cr_assert_geq(n, 1);
    cr_assert_eq(db_migrate(pg, db_migrations_embedded, &applied, err, sizeof err), 0, "%s", err);
    cr_assert_eq(applied, n);
    const char *tables[] = {"datasets",   "volumes",    "models",
                            "jobs",       "job_events", "dice_results",
                            "inferences", "api_tokens", "schema_migrations"};
    for (size_t i = 0; i < sizeof tables / sizeof tables[0]; i++) {
        char *c =
            tdb_valuep(pg, "SELECT obj_description(to_regclass($1), 'pg_class')", 1, tables[i]);
        cr_assert(c && strlen(c) > 10, "table %s missing or without COMMENT", tables[i]);
        free(c);
    }
    /* every table of the schema has a comment */
    cr_assert_eq(
        count("SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
              "WHERE n.nspname = 'public' AND c.relkind = 'r' "
              "AND obj_description(c.oid, 'pg_class') IS NULL"),
        0);
    cr_assert_eq(db_migrate(pg, db_migrations_embedded, &applied, err, sizeof err), 0, "%s", err);
    cr_assert_eq(applied, 0, "second run applies nothing");
    cr_assert_eq(db_migrate_check(pg, db_migrations_embedded, err, sizeof err), 0, "%s", err);
    /* recorded checksum is the SHA-256 of the text */
    char hex[65];
    db_migration_checksum(db_migrations_embedded[0].sql, hex);
    char *sum = tdb_value(pg, "SELECT checksum FROM schema_migrations WHERE version = 1");
    cr_assert_str_eq(sum, hex);
    free(sum);
}

Test(db_migrate, schema_constraints_hold)
{
    char err[1024];
    cr_assert_eq(db_migrate(pg, db_migrations_embedded, NULL, err, sizeof err), 0, "%s", err);
    PGresult *r = PQexec(pg, "INSERT INTO datasets (name, modality) VALUES ('x', 'xray')");
    cr_assert_eq(PQresultStatus(r), PGRES_FATAL_ERROR, "modality CHECK");
    cr_assert_str_eq(PQresultErrorField(r, PG_DIAG_SQLSTATE), "23514");
    PQclear(r);
    r = PQexec(pg, "INSERT INTO jobs (kind, state) VALUES ('train', 'exploded')");
    cr_assert_eq(PQresultStatus(r), PGRES_FATAL_ERROR, "job state CHECK");
    PQclear(r);
    r = PQexec(pg, "INSERT INTO jobs (kind, state) VALUES ('train', 'running')");
    cr_assert_eq(PQresultStatus(r), PGRES_FATAL_ERROR, "running needs a worker and a lease");
    PQclear(r);
    r = PQexec(pg, "INSERT INTO job_events (job_id, type) VALUES (12345, 'state')");
    cr_assert_eq(PQresultStatus(r), PGRES_FATAL_ERROR, "job_events FK");
    cr_assert_str_eq(PQresultErrorField(r, PG_DIAG_SQLSTATE), "23503");
    PQclear(r);
    r = PQexec(pg, "INSERT INTO api_tokens (name, token_sha256) VALUES ('t', 'plaintext')");
    cr_assert_eq(PQresultStatus(r), PGRES_FATAL_ERROR, "tokens are stored hashed");
    PQclear(r);
    r = PQexec(pg, "INSERT INTO models (method, weights_sha256, weights_path, is_default) VALUES "
                   "('mkd', repeat('0', 64), 'w1', true), ('mkd', repeat('0', 64), 'w2', true)");
    cr_assert_eq(PQresultStatus(r), PGRES_FATAL_ERROR, "at most one default model");
    PQclear(r);
}

Test(db_migrate, applies_in_version_order_and_records)
{
    char err[1024];
    int applied = 0;
    /* given out of order: 0002 depends on 0001 */
    db_migration list[] = {{"0002_b.sql", SQL_B}, {"0001_a.sql", SQL_A}, {NULL, NULL}};
    cr_assert_eq(db_migrate(pg, list, &applied, err, sizeof err), 0, "%s", err);
    cr_assert_eq(applied, 2);
    char *v =
        tdb_value(pg, "SELECT string_agg(version || ':' || name, ',' ORDER BY applied_at, version) "
                      "FROM schema_migrations");
    cr_assert_str_eq(v, "1:0001_a.sql,2:0002_b.sql");
    free(v);
    cr_assert_eq(count("SELECT count(*) FROM b"), 0);
    /* adding 0003 later applies only it */
    db_migration more[] = {{"0001_a.sql", SQL_A},
                           {"0002_b.sql", SQL_B},
                           {"0003_c.sql", "ALTER TABLE a ADD COLUMN c text;"},
                           {NULL, NULL}};
    cr_assert_eq(db_migrate(pg, more, &applied, err, sizeof err), 0, "%s", err);
    cr_assert_eq(applied, 1);
    cr_assert_eq(count("SELECT count(*) FROM schema_migrations"), 3);
}

Test(db_migrate, refuses_changed_migration)
{
    char err[1024];
    db_migration v1[] = {{"0001_a.sql", SQL_A}, {NULL, NULL}};
    cr_assert_eq(db_migrate(pg, v1, NULL, err, sizeof err), 0, "%s", err);
    db_migration v2[] = {{"0001_a.sql", "CREATE TABLE a (id bigint PRIMARY KEY);"}, {NULL, NULL}};
    cr_assert_eq(db_migrate(pg, v2, NULL, err, sizeof err), -1);
    cr_assert(strstr(err, "0001_a.sql") && strstr(err, "changed"), "%s", err);
    cr_assert_eq(db_migrate_check(pg, v2, err, sizeof err), -1);
    cr_assert(strstr(err, "changed"), "%s", err);
}

Test(db_migrate, refuses_out_of_order_and_unknown)
{
    char err[1024];
    db_migration l13[] = {
        {"0001_a.sql", SQL_A}, {"0003_c.sql", "CREATE TABLE c (x int);"}, {NULL, NULL}};
    cr_assert_eq(db_migrate(pg, l13, NULL, err, sizeof err), 0, "%s", err);
    db_migration l123[] = {{"0001_a.sql", SQL_A},
                           {"0002_b.sql", SQL_B},
                           {"0003_c.sql", "CREATE TABLE c (x int);"},
                           {NULL, NULL}};
    cr_assert_eq(db_migrate(pg, l123, NULL, err, sizeof err), -1);
    cr_assert(strstr(err, "0002_b.sql") && strstr(err, "below"), "%s", err);
    cr_assert_null(tdb_value(pg, "SELECT to_regclass('b')::text"), "0002 must not have run");
    db_migration l1[] = {{"0001_a.sql", SQL_A}, {NULL, NULL}};
    cr_assert_eq(db_migrate(pg, l1, NULL, err, sizeof err), -1);
    cr_assert(strstr(err, "newer than the binary"), "%s", err);
}

Test(db_migrate, failing_migration_rolls_back)
{
    char err[1024];
    int applied = 0;
    db_migration list[] = {{"0001_a.sql", SQL_A},
                           {"0002_bad.sql", "CREATE TABLE t2 (x int); SELECT 1/0;"},
                           {NULL, NULL}};
    cr_assert_eq(db_migrate(pg, list, &applied, err, sizeof err), -1);
    cr_assert_eq(applied, 1);
    cr_assert(strstr(err, "0002_bad.sql") && strstr(err, "division by zero"), "%s", err);
    cr_assert_null(tdb_value(pg, "SELECT to_regclass('t2')::text"), "t2 rolled back");
    cr_assert_eq(count("SELECT count(*) FROM schema_migrations"), 1);
    cr_assert_eq(db_migrate_check(pg, list, err, sizeof err), -1);
    cr_assert(strstr(err, "pending"), "%s", err);
    /* the advisory lock was released: another session can take it at once */
    char url[1024];
    tdb_url(dbname, url);
    PGconn *other = PQconnectdb(url);
    char *got = tdb_value(other, "SELECT pg_try_advisory_lock(x'6d6b64736567'::bigint)");
    cr_assert(got && !strcmp(got, "t"), "lock still held");
    free(got);
    PQfinish(other);
}

Test(db_migrate, rejects_bad_names_and_duplicates)
{
    char err[1024];
    const char *bad[] = {"1_x.sql",    "0001-x.sql", "0000_x.sql",
                         "0001_X.sql", "0001_x.txt", "abcd_x.sql"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        db_migration l[] = {{bad[i], "SELECT 1;"}, {NULL, NULL}};
        cr_assert_eq(db_migrate(pg, l, NULL, err, sizeof err), -1, "%s accepted", bad[i]);
        cr_assert(strstr(err, "bad migration name"), "%s", err);
    }
    db_migration dup[] = {{"0001_a.sql", SQL_A}, {"0001_b.sql", SQL_B}, {NULL, NULL}};
    cr_assert_eq(db_migrate(pg, dup, NULL, err, sizeof err), -1);
    cr_assert(strstr(err, "two migrations with version 0001"), "%s", err);
    cr_assert_eq(db_migration_version("0042_add_x.sql"), 42);
}

Test(db_migrate, concurrent_runners_apply_once)
{
    char url[1024];
    tdb_url(dbname, url);
    int n = 0;
    while (db_migrations_embedded[n].name)
        n++;
    pid_t kids[4];
    for (int i = 0; i < 4; i++) {
        kids[i] = fork();
        if (kids[i] == 0) {
            char err[1024];
            PGconn *c = db_connect(url, 10, err, sizeof err);
            int rc = c ? db_migrate(c, db_migrations_embedded, NULL, err, sizeof err) : -1;
            if (rc < 0)
                fprintf(stderr, "child: %s\n", err);
            if (c)
                PQfinish(c);
            _exit(rc < 0 ? 1 : 0);
        }
    }
    for (int i = 0; i < 4; i++) {
        int st = 0;
        waitpid(kids[i], &st, 0);
        cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "runner %d failed", i);
    }
    cr_assert_eq(count("SELECT count(*) FROM schema_migrations"), n);
}
