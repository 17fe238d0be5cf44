/* cmd_worker.c: `mkdseg worker`: job workers without the HTTP server, against the same
 * database (e.g. on a GPU machine). SIGTERM/SIGINT: workers stop at a safe point (running jobs
 * are requeued unless they finish), exit 0. */
#include <signal.h>
#include <stdio.h>

#include "cli_util.h"
#include "commands.h"
#include "config.h"
#include "db.h"
#include "db_migrate.h"
#include "job.h"
#include "log.h"
#include "svc.h"

int cmd_worker(int argc, char **argv)
{
    mkd_config cfg;
    char err[1024];
    int help = 0;
    if (cfg_load(&cfg, CFG_WORKER, argc, argv, &help, err, sizeof err) < 0) {
        fprintf(stderr, "mkdseg worker: %s\n", err);
        return 2;
    }
    if (help) {
        cfg_usage(stdout, CFG_WORKER, "worker",
                  "Run job workers (training, evaluation, ...) against the database, without the "
                  "HTTP server.\nJobs are claimed with FOR UPDATE SKIP LOCKED; LISTEN/NOTIFY wakes "
                  "the workers.");
        return 0;
    }
    if (cfg.workers < 1)
        cfg.workers = 1;
    if (!nn_backend_from_env(err, sizeof err)) {
        fprintf(stderr, "mkdseg worker: %s\n", err);
        return 2;
    }
    svc_set_config(&cfg);
    log_set_level((log_level)cfg.log_level);
    if (cfg.migrate) {
        PGconn *pg = db_connect(cfg.database_url, 10, err, sizeof err);
        if (!pg || db_migrate(pg, db_migrations_embedded, NULL, err, sizeof err) < 0) {
            log_error("%s", err);
            if (pg)
                PQfinish(pg);
            return 1;
        }
        PQfinish(pg);
    }
    sigset_t sigs;
    cli_block_signals(&sigs);
    job_workers *w = job_workers_start(&cfg, cfg.workers, "worker", err, sizeof err);
    if (!w) {
        log_error("%s", err);
        return 1;
    }
    int sig = 0;
    sigwait(&sigs, &sig);
    log_json(LOG_INFO, NULL, "stopping workers",
             json_pack("{s:s}", "signal", sig == SIGTERM ? "SIGTERM" : "SIGINT"));
    job_workers_stop(w);
    log_info("stopped");
    return 0;
}
