/* db_migrate.h: numbered SQL migrations (sql/NNNN_name.sql), applied in order under a
 * PostgreSQL advisory lock, each in its own transaction, and recorded in schema_migrations
 * (version, name, checksum = SHA-256 hex of the file, applied_at).
 *
 * Rules enforced:
 *   - names match NNNN_[a-z0-9_]+.sql with NNNN >= 1, and versions are unique;
 *   - an applied migration whose text changed (checksum differs) is refused, as is one the
 *     binary does not know (database newer than the binary);
 *   - a new migration numbered below the highest applied one is refused (out of order). */
#ifndef MKDSEG_DB_MIGRATE_H
#define MKDSEG_DB_MIGRATE_H

#include <stddef.h>
#include <libpq-fe.h>

typedef struct {
    const char *name; /* file name, e.g. "0001_init.sql"; NULL ends a list */
    const char *sql;  /* the file's text, NUL-terminated */
} db_migration;

/* The sql/ files embedded at build time (mk/server.mk), sorted by name, NULL-terminated. */
extern const db_migration db_migrations_embedded[];

/* The advisory lock key used by db_migrate ('mkdseg' in ASCII). */
#define DB_MIGRATE_LOCK_KEY 0x6d6b64736567LL

/* Writes the SHA-256 of text as 64 lowercase hex digits + NUL into hex[65]. */
void db_migration_checksum(const char *text, char hex[65]);

/* Applies the pending migrations of `list` (NULL-terminated, any order) on `pg`.
 * *applied (may be NULL) receives how many were applied now. 0 on success, -1 with err
 * (nothing of the failing migration is kept; earlier ones stay applied). */
int db_migrate(PGconn *pg, const db_migration *list, int *applied, char *err, size_t errlen);

/* Read-only check for /readyz: 0 when every migration of `list` is applied with the same
 * checksum; -1 with the reason in err otherwise (database error, pending, changed). */
int db_migrate_check(PGconn *pg, const db_migration *list, char *err, size_t errlen);

/* Parses the version of a migration file name; -1 when the name is not NNNN_[a-z0-9_]+.sql. */
int db_migration_version(const char *name);

#endif
