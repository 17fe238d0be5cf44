/* cmd_serve.c: `mkdseg serve`: the HTTP service (and in-process job workers).
 *
 * Start-up: settings (flags > MKDSEG_* / DATABASE_URL > defaults), data folder, database pool,
 * migrations (when the database is down they are retried every few seconds; /readyz says 503
 * meanwhile), then libmicrohttpd. SIGTERM/SIGINT: stop accepting, let in-flight requests finish
 * (up to --shutdown-timeout), stop the workers at a safe point, exit 0. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "app.h"
#include "commands.h"
#include "db_migrate.h"
#include "engine_pool.h"
#include "svc.h"
#include "http.h"
#include "job.h"
#include "log.h"
#include "metrics.h"

/* mkdir -p; 0 / -1 with errno. */
static int mkdir_p(const char *path)
{
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = 0;
        if (mkdir(buf, 0755) < 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    return mkdir(buf, 0755) < 0 && errno != EEXIST ? -1 : 0;
}

/* Tries to apply migrations. 1 done, 0 database unreachable (retry later), -1 refused.
 * While the database stays away, a warning is logged at the first attempt and then once a
 * minute (every 30th attempt at the 2 s retry period). */
static int try_migrate(const mkd_config *cfg)
{
    static int failures;
    char err[1024];
    int applied = 0;
    PGconn *pg = db_connect(cfg->database_url, 3, err, sizeof err);
    if (!pg) {
        failures++;
        log_json(failures % 30 == 1 ? LOG_WARN : LOG_DEBUG, NULL,
                 "database unreachable; migrations will be retried",
                 json_pack("{s:s,s:i}", "error", err, "attempts", failures));
        return 0;
    }
    failures = 0;
    int rc = db_migrate(pg, db_migrations_embedded, &applied, err, sizeof err);
    int lost = PQstatus(pg) != CONNECTION_OK;
    PQfinish(pg);
    if (rc < 0) {
        log_json(lost ? LOG_WARN : LOG_ERROR, NULL, err, json_pack("{s:i}", "applied", applied));
        return lost ? 0 : -1;
    }
    log_json(LOG_INFO, NULL, "migrations up to date", json_pack("{s:i}", "applied_now", applied));
    return 1;
}

int cmd_serve(int argc, char **argv)
{
    static app a; /* static: the handlers reach it through each request */
    char err[1024];
    int help = 0, rc = 1;
    job_workers *workers = NULL;
    if (cfg_load(&a.cfg, CFG_SERVE, argc, argv, &help, err, sizeof err) < 0) {
        fprintf(stderr, "mkdseg serve: %s\n", err);
        return 2;
    }
    if (help) {
        cfg_usage(stdout, CFG_SERVE, "serve",
                  "Run the HTTP service: the API of api/openapi.yaml, /healthz, /readyz, /metrics,\n"
                  "/version, and in-process job workers. Logs are JSON lines on stderr.");
        return 0;
    }
    log_set_level((log_level)a.cfg.log_level);
    if (!nn_backend_from_env(err, sizeof err)) {
        fprintf(stderr, "mkdseg serve: %s\n", err);
        return 2;
    }
    log_json(LOG_INFO, NULL, "starting", json_pack("{s:s,s:s,s:o}", "version", MKDSEG_VERSION, "device",
                                                   nn_device_describe(NULL), "config", cfg_to_json(&a.cfg, CFG_SERVE)));
    a.started = time(NULL);
    if (mkdir_p(a.cfg.data_dir) < 0) {
        log_error("cannot create --data-dir %s: %s", a.cfg.data_dir, strerror(errno));
        return 1;
    }
    a.db = db_pool_create(a.cfg.database_url, a.cfg.db_pool, err, sizeof err);
    if (!a.db || metrics_init(http_nroutes) < 0) {
        log_error("%s", a.db ? "out of memory" : err);
        goto done;
    }
    metrics_queue_set(0, a.cfg.queue_size);
    svc_set_config(&a.cfg);
    int migrated = 1;
    if (a.cfg.migrate) {
        migrated = try_migrate(&a.cfg);
        if (migrated < 0)
            goto done;
    }
    if (migrated == 1)
        svc_register_default_model(&a.cfg);

    /* signals: handled synchronously in this thread; every thread started below inherits
     * the blocked mask */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    /* engine threads start after the mask: they must not take SIGTERM */
    if (epool_start(a.cfg.segment_workers, a.cfg.queue_size, err, sizeof err) < 0) {
        log_error("%s", err);
        goto done;
    }
    if (http_start(&a, err, sizeof err) < 0) {
        log_error("%s", err);
        goto done;
    }
    char url[300];
    snprintf(url, sizeof url, strchr(a.cfg.host, ':') ? "http://[%s]:%d" : "http://%s:%d",
             a.cfg.host, a.port);
    log_json(LOG_INFO, NULL, "listening",
             json_pack("{s:s,s:i,s:s,s:s}", "host", a.cfg.host, "port", a.port, "url", url, "threads",
                       a.cfg.threads ? "pool" : "per-connection"));
    if (a.cfg.workers > 0) {
        workers = job_workers_start(&a.cfg, a.cfg.workers, "serve", err, sizeof err);
        if (!workers)
            log_json(LOG_ERROR, NULL, "job workers not started", json_pack("{s:s}", "error", err));
    }

    int sig = 0;
    while (sig <= 0) {
        struct timespec ts = {2, 0};
        sig = sigtimedwait(&sigs, NULL, &ts);
        if (sig < 0 && a.cfg.migrate && migrated == 0) {
            migrated = try_migrate(&a.cfg);
            if (migrated < 0)
                log_error("migrations refused: fix the database or the binary; /readyz stays 503");
            if (migrated == 1)
                svc_register_default_model(&a.cfg);
        }
    }
    log_json(LOG_INFO, NULL, "shutting down",
             json_pack("{s:s,s:I}", "signal", sig == SIGTERM ? "SIGTERM" : "SIGINT", "in_flight",
                       (json_int_t)metrics_inflight()));
    atomic_store(&a.draining, 1);
    http_quiesce(&a);
    /* let in-flight requests finish */
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        if (metrics_inflight() <= 0)
            break;
        clock_gettime(CLOCK_MONOTONIC, &t);
        if (t.tv_sec - t0.tv_sec >= a.cfg.shutdown_timeout) {
            log_json(LOG_WARN, NULL, "shutdown timeout: closing requests still in flight",
                     json_pack("{s:I}", "in_flight", (json_int_t)metrics_inflight()));
            break;
        }
        struct timespec nap = {0, 20 * 1000000L};
        nanosleep(&nap, NULL);
    }
    job_workers_stop(workers);
    workers = NULL;
    http_stop(&a);
    epool_stop();
    rc = 0;
    log_info("stopped");
done:
    job_workers_stop(workers);
    http_stop(&a);
    epool_stop();
    db_pool_destroy(a.db);
    a.db = NULL;
    metrics_free();
    return rc;
}
