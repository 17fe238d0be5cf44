/* cmd_migrate.c: `mkdseg migrate`: apply the embedded SQL migrations and exit.
 * Exit status: 0 applied or nothing to do, 1 database or migration error, 2 usage error. */
#include <stdio.h>

#include "commands.h"
#include "config.h"
#include "db.h"
#include "db_migrate.h"
#include "log.h"

int cmd_migrate(int argc, char **argv)
{
    mkd_config cfg;
    char err[1024];
    int help = 0, applied = 0;
    if (cfg_load(&cfg, CFG_MIGRATE, argc, argv, &help, err, sizeof err) < 0) {
        fprintf(stderr, "mkdseg migrate: %s\n", err);
        return 2;
    }
    if (help) {
        cfg_usage(stdout, CFG_MIGRATE, "migrate",
                  "Apply the SQL migrations built into this binary (sql/NNNN_*.sql) in order, "
                  "under an advisory lock,\neach in a transaction, recorded in "
                  "schema_migrations. Refuses when an applied migration changed.");
        return 0;
    }
    log_set_level((log_level)cfg.log_level);
    PGconn *pg = db_connect(cfg.database_url, 10, err, sizeof err);
    if (!pg) {
        log_error("migrate: %s", err);
        return 1;
    }
    int rc = db_migrate(pg, db_migrations_embedded, &applied, err, sizeof err);
    PQfinish(pg);
    if (rc < 0) {
        log_json(LOG_ERROR, NULL, err, json_pack("{s:i}", "applied", applied));
        return 1;
    }
    int total = 0;
    while (db_migrations_embedded[total].name)
        total++;
    log_json(LOG_INFO, NULL, "migrations up to date",
             json_pack("{s:i,s:i}", "applied_now", applied, "known", total));
    return 0;
}
