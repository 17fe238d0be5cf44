/* config.h: settings of `mkdseg serve`, `mkdseg worker` and `mkdseg migrate`.
 * One table (config.c) drives parsing, validation and --help. Precedence: command-line flag,
 * then environment variable (MKDSEG_*, and DATABASE_URL for the database), then default. */
#ifndef MKDSEG_CONFIG_H
#define MKDSEG_CONFIG_H

#include <stdio.h>
#include <jansson.h>

/* which commands a setting belongs to (bit mask) */
#define CFG_SERVE 1u
#define CFG_WORKER 2u
#define CFG_MIGRATE 4u

typedef struct {
    char host[256];          /* address to listen on */
    int port;                /* TCP port; 0 = any free port (logged) */
    char database_url[1024]; /* libpq URI or conninfo; "" = libpq defaults (PG* variables) */
    char data_dir[1024];     /* blobs (volumes, weights, masks) */
    long long max_body;      /* bytes, any request body (uploads) */
    long long max_json;      /* bytes, JSON request bodies */
    int max_connections;     /* simultaneous connections */
    int per_ip_connections;  /* simultaneous connections from one IP address */
    int connection_timeout;  /* seconds of inactivity before a connection is closed */
    int http_threads;      /* --http-threads: 0 = a thread per connection; N = N polling threads */
    int workers;           /* job workers (in `serve`: in-process; in `worker`: threads) */
    int queue_size;        /* segmentation requests waiting for an engine worker */
    int db_pool;           /* PostgreSQL connections per process */
    int log_level;         /* log_level (log.h) */
    char cors_origin[256]; /* Access-Control-Allow-Origin; "" = no CORS headers */
    int auth;              /* 1: routes need a bearer token with their scope */
    int rate_limit;        /* requests per second per client address (burst 2x); 0 = off */
    int rate_limit_token;  /* requests per bearer token per window (the burst too); 0 = off */
    int rate_limit_token_window; /* seconds in which rate_limit_token requests are refilled */
    int shutdown_timeout;        /* seconds to let in-flight requests finish on SIGTERM */
    int migrate;                 /* 1: apply migrations at start-up */
    int job_lease;               /* seconds a worker's claim on a job lasts without a heartbeat */
    int job_poll;                /* seconds between queue polls when no NOTIFY arrives */
    int segment_workers;         /* engine threads running /segment requests */
    char default_model[1024];    /* model file registered and promoted when none exists */
    int engine_threads;          /* --threads: CPU threads of each engine task; 0 = all cores */
    char monailabel_prefix[256]; /* path prefix of the MONAI Label protocol (3D Slicer) */
    char dicomweb_allow[4096]; /* DICOMweb roots mkdseg may reach: "URL[|basic:U:P|bearer:T],..." */
    int dicomweb_timeout;      /* seconds for one DICOMweb request */
    long long dicomweb_max_bytes; /* bytes of one series pulled by WADO-RS */
    char ui_dir[1024];            /* the dashboard's static files; "" = no dashboard */
    int gc_grace;       /* seconds: the garbage collector keeps younger blobs and files (gc.h) */
    int min_body_rate;  /* bytes/s a request body must average once body_grace has passed */
    int header_timeout; /* seconds a connection may take to send a request's headers */
    int body_grace;     /* seconds a request body may take before min_body_rate applies */
    unsigned char source[64]; /* cfg_source of each table entry (config.c) */
} mkd_config;

/* Where a setting's value came from. */
typedef enum { CFG_SRC_DEFAULT = 0, CFG_SRC_ENV, CFG_SRC_FLAG } cfg_source;

/* Fills *c for command `cmd` (CFG_SERVE, CFG_WORKER or CFG_MIGRATE) from defaults, the
 * environment and argv[1..argc-1] (argv[0] is the command name). Flags: `--name value`,
 * `--name=value`; booleans take on|off|true|false|yes|no|1|0. Sets *help when --help/-h was
 * given (then nothing is validated). Returns 0, or -1 with a message naming the flag and the
 * environment variable in err. */
int cfg_load(mkd_config *c, unsigned cmd, int argc, char **argv, int *help, char *err,
             size_t errlen);

/* The source (cfg_source) of setting `flag` ("port", ...) after cfg_load; -1 when unknown. */
int cfg_source_of(const mkd_config *c, const char *flag);

/* Prints usage: every setting of `cmd` with its default and environment variable. */
void cfg_usage(FILE *f, unsigned cmd, const char *cmdname, const char *summary);

/* The effective settings of `cmd` as a JSON object (passwords in the database URL masked),
 * for the start-up log. New reference. */
json_t *cfg_to_json(const mkd_config *c, unsigned cmd);

#endif
