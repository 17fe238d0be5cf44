/* sql_ops.c: statements about no table: the readiness probe's round trip, and BEGIN / COMMIT
 * for direct connections (pooled ones use db_simple) (sql.h). */
#include "sql.h"

const db_stmt sql_ops_ping = {"ops_ping", "SELECT 1", 0};

const db_stmt sql_tx_begin = {"tx_begin", "BEGIN", 0};

const db_stmt sql_tx_commit = {"tx_commit", "COMMIT", 0};
