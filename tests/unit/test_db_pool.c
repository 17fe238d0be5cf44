/* test_db_pool.c: the libpq pool against the real PostgreSQL: prepared statements, SQLSTATE,
 * a pooled connection killed under it (reconnect + retry), pool exhaustion. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "db.h"
#include "../lib/tsrv.h"

static PGconn *pg;
static char dbname[64], url[1024];

static void setup(void)
{
    pg = tdb_create(dbname);
    tdb_url(dbname, url);
    PGresult *r = PQexec(pg, "CREATE TABLE t (k text PRIMARY KEY)");
    cr_assert_eq(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);
}
static void teardown(void) { tdb_drop(pg, dbname); }

TestSuite(db_pool, .init = setup, .fini = teardown);

static const db_stmt st_pid = {"test_pid", "SELECT pg_backend_pid()::text", 0};
static const db_stmt st_ins = {"test_ins", "INSERT INTO t (k) VALUES ($1) RETURNING k", 1};

Test(db_pool, prepared_statements_and_sqlstate)
{
    char err[512];
    db_pool *p = db_pool_create(url, 2, err, sizeof err);
    cr_assert(p, "%s", err);
    db_conn *c = db_acquire(p, 1000, err, sizeof err);
    cr_assert(c, "%s", err);
    const char *v[1] = {"a'; DROP TABLE t; --"};
    PGresult *res = NULL;
    cr_assert_eq(db_exec(c, &st_ins, v, &res, err, sizeof err), 0, "%s", err);
    cr_assert_str_eq(PQgetvalue(res, 0, 0), v[0], "parameters are data, never SQL");
    PQclear(res);
    cr_assert_eq(db_exec(c, &st_ins, v, &res, err, sizeof err), -1, "duplicate key");
    cr_assert_null(res);
    cr_assert_str_eq(db_sqlstate(c), "23505");
    cr_assert(strstr(err, "duplicate key"), "%s", err);
    db_release(p, c);
    char *n = tdb_value(pg, "SELECT count(*) FROM t");
    cr_assert_str_eq(n, "1");
    free(n);
    db_pool_destroy(p);
}

Test(db_pool, killed_connection_is_replaced_transparently)
{
    char err[512];
    db_pool *p = db_pool_create(url, 1, err, sizeof err);
    db_conn *c = db_acquire(p, 1000, err, sizeof err);
    cr_assert(c, "%s", err);
    PGresult *res = NULL;
    cr_assert_eq(db_exec(c, &st_pid, NULL, &res, err, sizeof err), 0, "%s", err);
    char pid1[32];
    snprintf(pid1, sizeof pid1, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    db_release(p, c);
    /* kill that backend from outside, as a PostgreSQL restart would */
    char *ok = tdb_valuep(pg, "SELECT pg_terminate_backend($1::int)", 1, pid1);
    cr_assert_str_eq(ok, "t");
    free(ok);
    c = db_acquire(p, 1000, err, sizeof err);
    cr_assert(c, "%s", err);
    cr_assert_eq(db_exec(c, &st_pid, NULL, &res, err, sizeof err), 0,
                 "the first statement on a stale connection is retried on a new one: %s", err);
    cr_assert_str_neq(PQgetvalue(res, 0, 0), pid1, "a new backend");
    PQclear(res);
    /* the statement was prepared again on the new connection */
    const char *v[1] = {"x"};
    cr_assert_eq(db_exec(c, &st_ins, v, NULL, err, sizeof err), 0, "%s", err);
    db_release(p, c);
    db_pool_destroy(p);
}

Test(db_pool, exhausted_pool_times_out_and_bad_url_fails_fast)
{
    char err[512];
    db_pool *p = db_pool_create(url, 1, err, sizeof err);
    db_conn *c = db_acquire(p, 1000, err, sizeof err);
    cr_assert(c, "%s", err);
    cr_assert_null(db_acquire(p, 100, err, sizeof err), "only one connection");
    cr_assert(strstr(err, "no free connection"), "%s", err);
    db_release(p, c);
    c = db_acquire(p, 100, err, sizeof err);
    cr_assert(c, "free again: %s", err);
    db_release(p, c);
    db_pool_destroy(p);

    char bad[1100];
    tdb_url("mkdseg_no_such_database", bad);
    p = db_pool_create(bad, 2, err, sizeof err);
    cr_assert_null(db_acquire(p, 1000, err, sizeof err));
    cr_assert(strstr(err, "mkdseg_no_such_database"), "%s", err);
    /* a transaction left open is not handed to the next borrower */
    db_pool_destroy(p);
    p = db_pool_create(url, 1, err, sizeof err);
    c = db_acquire(p, 1000, err, sizeof err);
    cr_assert_eq(db_simple(c, "BEGIN", err, sizeof err), 0, "%s", err);
    const char *v[1] = {"in-txn"};
    cr_assert_eq(db_exec(c, &st_ins, v, NULL, err, sizeof err), 0, "%s", err);
    db_release(p, c); /* closes it: the insert is rolled back */
    char *n = tdb_value(pg, "SELECT count(*) FROM t WHERE k = 'in-txn'");
    cr_assert_str_eq(n, "0");
    free(n);
    db_pool_destroy(p);
}
