/* sql_ops.c: statements about no table: the readiness probe's round trip (sql.h). */
#include "sql.h"

const db_stmt sql_ops_ping = {
    "ops_ping",
    "SELECT 1",
    0};
