/* db.h: PostgreSQL access through libpq: a small connection pool that survives a restarted or
 * vanished server, and prepared statements with $n parameters (never built with sprintf).
 *
 * Every statement is a `db_stmt` of sql.h (defined in sql_<table>.c); each pooled connection
 * prepares it (PQprepare) the first time it runs there and re-prepares after a reconnect;
 * direct connections run it through db_query. */
#ifndef MKDSEG_DB_H
#define MKDSEG_DB_H

#include <stddef.h>
#include <libpq-fe.h>

typedef struct {
    const char *name; /* unique statement name, e.g. "datasets_insert" */
    const char *sql;  /* SQL with $1..$n placeholders */
    int nparams;
} db_stmt;

typedef struct db_pool db_pool;
typedef struct db_conn db_conn;

/* Opens a direct connection (not pooled) to `url` (a libpq URI or key=value string; "" means
 * libpq's defaults and PG* variables), with a connect timeout of `timeout_s` seconds.
 * Returns the connection (caller PQfinish-es it) or NULL with a message in err. */
PGconn *db_connect(const char *url, int timeout_s, char *err, size_t errlen);

/* Same, but connects to database `dbname` on the server `url` names (used by tests). */
PGconn *db_connect_db(const char *url, const char *dbname, int timeout_s, char *err, size_t errlen);

/* Creates a pool of at most `size` connections to `url`. Connections are opened lazily.
 * Returns NULL (with err) only on bad arguments or out of memory. */
db_pool *db_pool_create(const char *url, int size, char *err, size_t errlen);
/* Closes every connection. All connections must have been released. */
void db_pool_destroy(db_pool *pool);

/* Borrows a connection, waiting up to `timeout_ms` for a free one, and (re)connects it when
 * needed. Returns NULL with a message in err when none is free in time or the server cannot be
 * reached (after a failed connect, further attempts within 500 ms fail at once).
 * The caller must db_release() it. */
db_conn *db_acquire(db_pool *pool, int timeout_ms, char *err, size_t errlen);
/* Returns a connection to the pool; a broken connection (or one left inside a transaction)
 * is closed and reopened on its next use. */
void db_release(db_pool *pool, db_conn *c);

/* The underlying libpq connection (owned by the pool). */
PGconn *db_pg(db_conn *c);

/* Runs `stmt` with text parameters `values[0..stmt->nparams-1]` (NULL entries are SQL NULL).
 * On success returns 0 and stores the result in *out (caller PQclear-s it; out may be NULL to
 * discard). On failure returns -1, *out = NULL, message in err; db_sqlstate(c) tells the
 * SQLSTATE ("" when the connection failed). When the very first statement on a connection
 * fails because the server went away, the connection is reopened and the statement retried
 * once (a pooled connection may be stale after a PostgreSQL restart). */
int db_exec(db_conn *c, const db_stmt *stmt, const char *const *values, PGresult **out, char *err,
            size_t errlen);

/* Runs `stmt` on a direct (not pooled) connection through PQexecParams with text parameters
 * `values[0..stmt->nparams-1]`: the result (caller PQclear-s it), or NULL with "database: ..."
 * in err. For the connections that job workers, event streams and commands hold themselves. */
PGresult *db_query(PGconn *pg, const db_stmt *stmt, const char *const *values, char *err,
                   size_t errlen);

/* Runs a parameterless SQL command (BEGIN, COMMIT, ROLLBACK, LISTEN x) through the simple
 * protocol. 0 / -1 with err. */
int db_simple(db_conn *c, const char *sql, char *err, size_t errlen);

/* SQLSTATE of the last failed db_exec/db_simple on this connection ("" if none/not a server
 * error), e.g. "23505" for a unique violation. */
const char *db_sqlstate(const db_conn *c);

/* Pool statistics for /metrics. */
void db_pool_stats(db_pool *pool, int *size, int *in_use, int *connected);

#endif
