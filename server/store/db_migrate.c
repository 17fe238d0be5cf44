/* db_migrate.c: the migration runner (see db_migrate.h). The migration scripts are run with
 * PQexec (the simple protocol runs a multi-statement script); everything else is a
 * parameterised statement. */
#include "db_migrate.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sha256.h"

static const char *const create_table_sql =
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    " version integer PRIMARY KEY CHECK (version > 0),"
    " name text NOT NULL,"
    " checksum text NOT NULL CHECK (checksum ~ '^[0-9a-f]{64}$'),"
    " applied_at timestamptz NOT NULL DEFAULT now());"
    "COMMENT ON TABLE schema_migrations IS"
    " 'Applied SQL migrations (sql/NNNN_name.sql): version, file name, SHA-256 of the text, when.'";

void db_migration_checksum(const char *text, char hex[65]) { sha256_hex(text, strlen(text), hex); }

int db_migration_version(const char *name)
{
    if (!name)
        return -1;
    for (int i = 0; i < 4; i++)
        if (!isdigit((unsigned char)name[i]))
            return -1;
    if (name[4] != '_')
        return -1;
    size_t n = strlen(name);
    if (n < 10 || strcmp(name + n - 4, ".sql"))
        return -1;
    for (size_t i = 5; i < n - 4; i++)
        if (!(islower((unsigned char)name[i]) || isdigit((unsigned char)name[i]) || name[i] == '_'))
            return -1;
    int v = (name[0] - '0') * 1000 + (name[1] - '0') * 100 + (name[2] - '0') * 10 + (name[3] - '0');
    return v > 0 ? v : -1;
}

typedef struct {
    int version;
    const db_migration *m;
    char checksum[65];
} mig;

static int cmp_mig(const void *a, const void *b)
{
    return ((const mig *)a)->version - ((const mig *)b)->version;
}

/* Validates and sorts `list` into a new array (caller frees). */
static mig *sorted_list(const db_migration *list, int *n_out, char *err, size_t errlen)
{
    int n = 0;
    while (list[n].name)
        n++;
    mig *v = calloc((size_t)n + 1, sizeof *v);
    if (!v) {
        snprintf(err, errlen, "migrate: out of memory");
        return NULL;
    }
    for (int i = 0; i < n; i++) {
        v[i].version = db_migration_version(list[i].name);
        v[i].m = &list[i];
        if (v[i].version < 0 || !list[i].sql) {
            snprintf(err, errlen, "migrate: bad migration name '%s' (expected NNNN_name.sql)",
                     list[i].name);
            free(v);
            return NULL;
        }
        db_migration_checksum(list[i].sql, v[i].checksum);
    }
    qsort(v, (size_t)n, sizeof *v, cmp_mig);
    for (int i = 1; i < n; i++)
        if (v[i].version == v[i - 1].version) {
            snprintf(err, errlen, "migrate: two migrations with version %04d: %s and %s",
                     v[i].version, v[i - 1].m->name, v[i].m->name);
            free(v);
            return NULL;
        }
    *n_out = n;
    return v;
}

static int exec_ok(PGconn *pg, PGresult *res, const char *what, char *err, size_t errlen)
{
    ExecStatusType st = PQresultStatus(res);
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
        return 0;
    const char *msg = res ? PQresultErrorMessage(res) : PQerrorMessage(pg);
    if (!msg || !*msg)
        msg = PQerrorMessage(pg);
    snprintf(err, errlen, "migrate: %s: %s", what, msg);
    size_t n = strlen(err);
    while (n && (err[n - 1] == '\n' || err[n - 1] == ' '))
        err[--n] = 0;
    return -1;
}

static int simple(PGconn *pg, const char *sql, const char *what, char *err, size_t errlen)
{
    PGresult *r = PQexec(pg, sql);
    int rc = exec_ok(pg, r, what, err, errlen);
    PQclear(r);
    return rc;
}

/* Compares the applied rows with the list. Sets *first_pending to the index of the first
 * migration to apply (n when none). */
static int compare_applied(PGresult *res, const mig *v, int n, int *first_pending, char *err,
                           size_t errlen)
{
    int rows = PQntuples(res), max_applied = 0;
    for (int r = 0; r < rows; r++) {
        int ver = atoi(PQgetvalue(res, r, 0));
        const char *name = PQgetvalue(res, r, 1), *sum = PQgetvalue(res, r, 2);
        const mig *m = NULL;
        for (int i = 0; i < n; i++)
            if (v[i].version == ver)
                m = &v[i];
        if (!m) {
            snprintf(err, errlen,
                     "migrate: the database has migration %04d (%s) which this binary does not "
                     "know: the database is newer than the binary",
                     ver, name);
            return -1;
        }
        if (strcmp(m->checksum, sum)) {
            snprintf(err, errlen,
                     "migrate: migration %s was changed after it was applied (checksum %.12s... "
                     "in the database, %.12s... now); add a new migration instead",
                     m->m->name, sum, m->checksum);
            return -1;
        }
        if (ver > max_applied)
            max_applied = ver;
    }
    *first_pending = n;
    for (int i = 0; i < n; i++) {
        int applied = 0;
        for (int r = 0; r < rows && !applied; r++)
            applied = atoi(PQgetvalue(res, r, 0)) == v[i].version;
        if (applied)
            continue;
        if (v[i].version < max_applied) {
            snprintf(err, errlen,
                     "migrate: migration %s is numbered below the newest applied one (%04d): "
                     "renumber it after %04d",
                     v[i].m->name, max_applied, max_applied);
            return -1;
        }
        if (*first_pending == n)
            *first_pending = i;
    }
    return 0;
}

static const char *const select_applied_sql =
    "SELECT version, name, checksum FROM schema_migrations ORDER BY version";

int db_migrate(PGconn *pg, const db_migration *list, int *applied, char *err, size_t errlen)
{
    int n = 0, locked = 0, count = 0, first = 0;
    PGresult *res = NULL;
    mig *v = sorted_list(list, &n, err, errlen);
    if (!v)
        return -1;
    if (applied)
        *applied = 0;

    char key[32];
    snprintf(key, sizeof key, "%lld", DB_MIGRATE_LOCK_KEY);
    const char *kp[1] = {key};
    res = PQexecParams(pg, "SELECT pg_advisory_lock($1::bigint)", 1, NULL, kp, NULL, NULL, 0);
    if (exec_ok(pg, res, "advisory lock", err, errlen) < 0)
        goto fail;
    PQclear(res);
    res = NULL;
    locked = 1;

    if (simple(pg, create_table_sql, "create schema_migrations", err, errlen) < 0)
        goto fail;
    res = PQexecParams(pg, select_applied_sql, 0, NULL, NULL, NULL, NULL, 0);
    if (exec_ok(pg, res, "read schema_migrations", err, errlen) < 0)
        goto fail;
    if (compare_applied(res, v, n, &first, err, errlen) < 0)
        goto fail;
    PQclear(res);
    res = NULL;

    /* compare_applied guarantees that every migration from `first` on is pending (a pending
     * one below an applied one was refused) */
    for (int i = first; i < n; i++) {
        if (simple(pg, "BEGIN", "begin", err, errlen) < 0)
            goto fail;
        char what[256];
        snprintf(what, sizeof what, "applying %s", v[i].m->name);
        if (simple(pg, v[i].m->sql, what, err, errlen) < 0) {
            PQclear(PQexec(pg, "ROLLBACK"));
            goto fail;
        }
        char ver[16];
        snprintf(ver, sizeof ver, "%d", v[i].version);
        const char *p[3] = {ver, v[i].m->name, v[i].checksum};
        res = PQexecParams(pg,
                           "INSERT INTO schema_migrations (version, name, checksum) "
                           "VALUES ($1::integer, $2, $3)",
                           3, NULL, p, NULL, NULL, 0);
        if (exec_ok(pg, res, "record migration", err, errlen) < 0) {
            PQclear(PQexec(pg, "ROLLBACK"));
            goto fail;
        }
        PQclear(res);
        res = NULL;
        if (simple(pg, "COMMIT", what, err, errlen) < 0)
            goto fail;
        count++;
    }
    res = PQexecParams(pg, "SELECT pg_advisory_unlock($1::bigint)", 1, NULL, kp, NULL, NULL, 0);
    PQclear(res);
    free(v);
    if (applied)
        *applied = count;
    return 0;
fail:
    PQclear(res);
    if (locked && PQstatus(pg) == CONNECTION_OK)
        PQclear(
            PQexecParams(pg, "SELECT pg_advisory_unlock($1::bigint)", 1, NULL, kp, NULL, NULL, 0));
    free(v);
    if (applied)
        *applied = count;
    return -1;
}

int db_migrate_check(PGconn *pg, const db_migration *list, char *err, size_t errlen)
{
    int n = 0, first = 0, rc = -1;
    PGresult *res = NULL;
    mig *v = sorted_list(list, &n, err, errlen);
    if (!v)
        return -1;
    res = PQexecParams(pg, "SELECT to_regclass('schema_migrations') IS NOT NULL", 0, NULL, NULL,
                       NULL, NULL, 0);
    if (exec_ok(pg, res, "check", err, errlen) < 0)
        goto done;
    if (strcmp(PQgetvalue(res, 0, 0), "t")) {
        snprintf(err, errlen, "migrations not applied (no schema_migrations table)");
        goto done;
    }
    PQclear(res);
    res = PQexecParams(pg, select_applied_sql, 0, NULL, NULL, NULL, NULL, 0);
    if (exec_ok(pg, res, "read schema_migrations", err, errlen) < 0)
        goto done;
    if (compare_applied(res, v, n, &first, err, errlen) < 0)
        goto done;
    if (first < n) {
        snprintf(err, errlen, "migrations pending: %s and %d more", v[first].m->name,
                 n - first - 1);
        goto done;
    }
    rc = 0;
done:
    PQclear(res);
    free(v);
    return rc;
}
