/* config.c: the settings table and its parser (see config.h). */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "log.h"

typedef enum {
    T_STR,
    T_INT,
    T_SIZE,
    T_BOOL,
    T_LEVEL,
    T_PREFIX
} cfg_type; /* T_PREFIX: a URL path prefix */

typedef struct {
    const char *flag; /* --flag */
    const char *env;  /* primary environment variable */
    const char *env2; /* fallback environment variable (or NULL) */
    cfg_type type;
    const char *def; /* default, as text */
    size_t off;      /* offset in mkd_config */
    size_t size;     /* T_STR: buffer size */
    long long min, max;
    unsigned cmds; /* CFG_SERVE | CFG_WORKER | CFG_MIGRATE */
    const char *help;
} cfg_opt;

#define OFF(f) offsetof(mkd_config, f)
#define SZ(f) sizeof(((mkd_config *)0)->f)
#define ALL (CFG_SERVE | CFG_WORKER | CFG_MIGRATE)
#define SW (CFG_SERVE | CFG_WORKER)

static const cfg_opt cfg_table[] = {
    {"host", "MKDSEG_HOST", NULL, T_STR, "127.0.0.1", OFF(host), SZ(host), 1, 0, CFG_SERVE,
     "address to listen on (IPv4 or IPv6 literal, or a name)"},
    {"port", "MKDSEG_PORT", NULL, T_INT, "8080", OFF(port), 0, 0, 65535, CFG_SERVE,
     "TCP port; 0 picks a free one (the log says which)"},
    {"database-url", "MKDSEG_DATABASE_URL", "DATABASE_URL", T_STR, "", OFF(database_url),
     SZ(database_url), 0, 0, ALL,
     "PostgreSQL URI or conninfo; empty: libpq defaults (PGHOST, PGDATABASE, ...)"},
    {"data-dir", "MKDSEG_DATA_DIR", NULL, T_STR, "var/data", OFF(data_dir), SZ(data_dir), 1, 0, SW,
     "folder for blobs (volumes, weights, masks), created when missing"},
    {"max-body", "MKDSEG_MAX_BODY", NULL, T_SIZE, "512M", OFF(max_body), 0, 1024,
     (long long)1 << 40, CFG_SERVE, "largest upload (streamed to disk); suffixes K, M, G"},
    {"max-json", "MKDSEG_MAX_JSON", NULL, T_SIZE, "1M", OFF(max_json), 0, 64, (long long)1 << 30,
     CFG_SERVE, "largest JSON (or other in-memory) request body; suffixes K, M, G"},
    {"max-connections", "MKDSEG_MAX_CONNECTIONS", NULL, T_INT, "256", OFF(max_connections), 0, 1,
     100000, CFG_SERVE, "simultaneous connections (more are refused)"},
    {"per-ip-connections", "MKDSEG_PER_IP_CONNECTIONS", NULL, T_INT, "64", OFF(per_ip_connections),
     0, 0, 100000, CFG_SERVE, "simultaneous connections from one IP address; 0 = no limit"},
    {"connection-timeout", "MKDSEG_CONNECTION_TIMEOUT", NULL, T_INT, "60", OFF(connection_timeout),
     0, 0, 86400, CFG_SERVE, "seconds of inactivity before a connection is closed; 0 = never"},
    {"http-threads", "MKDSEG_HTTP_THREADS", NULL, T_INT, "0", OFF(http_threads), 0, 0, 1024,
     CFG_SERVE, "HTTP threads: 0 = one per connection (handlers may block); N = pool of N"},
    {"workers", "MKDSEG_WORKERS", NULL, T_INT, "1", OFF(workers), 0, 0, 256, SW,
     "job workers (serve: in-process, 0 = none; worker: threads)"},
    {"queue-size", "MKDSEG_QUEUE_SIZE", NULL, T_INT, "16", OFF(queue_size), 0, 1, 100000, CFG_SERVE,
     "segmentation requests that may wait for an engine worker (then 503)"},
    {"db-pool", "MKDSEG_DB_POOL", NULL, T_INT, "8", OFF(db_pool), 0, 1, 1000, SW,
     "PostgreSQL connections kept by this process"},
    {"log-level", "MKDSEG_LOG_LEVEL", NULL, T_LEVEL, "info", OFF(log_level), 0, 0, 0, ALL,
     "debug, info, warn, error or off"},
    {"cors-origin", "MKDSEG_CORS_ORIGIN", NULL, T_STR, "*", OFF(cors_origin), SZ(cors_origin), 0, 0,
     CFG_SERVE, "Access-Control-Allow-Origin for browsers; empty: no CORS headers"},
    {"auth", "MKDSEG_AUTH", NULL, T_BOOL, "off", OFF(auth), 0, 0, 1, CFG_SERVE,
     "on: every route but the probes, the dashboard's files and Slicer's login needs "
     "'Authorization: Bearer TOKEN' with the route's scope"},
    {"rate-limit", "MKDSEG_RATE_LIMIT", NULL, T_INT, "0", OFF(rate_limit), 0, 0, 1000000, CFG_SERVE,
     "requests per second per client address, burst twice that (then 429); 0 = off"},
    {"rate-limit-token", "MKDSEG_RATE_LIMIT_TOKEN", NULL, T_INT, "0", OFF(rate_limit_token), 0, 0,
     100000000, CFG_SERVE,
     "requests per bearer token (auth on) per --rate-limit-token-window, all at once at most "
     "(then 429); 0 = off"},
    {"rate-limit-token-window", "MKDSEG_RATE_LIMIT_TOKEN_WINDOW", NULL, T_INT, "60",
     OFF(rate_limit_token_window), 0, 1, 86400, CFG_SERVE,
     "seconds in which a token's --rate-limit-token requests are refilled"},
    {"shutdown-timeout", "MKDSEG_SHUTDOWN_TIMEOUT", NULL, T_INT, "30", OFF(shutdown_timeout), 0, 0,
     3600, SW, "seconds to let in-flight requests and jobs finish on SIGTERM/SIGINT"},
    {"migrate", "MKDSEG_MIGRATE", NULL, T_BOOL, "on", OFF(migrate), 0, 0, 1, SW,
     "apply pending SQL migrations at start-up"},
    {"job-lease", "MKDSEG_JOB_LEASE", NULL, T_INT, "60", OFF(job_lease), 0, 2, 86400, SW,
     "seconds a claimed job stays leased without a heartbeat"},
    {"job-poll", "MKDSEG_JOB_POLL", NULL, T_INT, "5", OFF(job_poll), 0, 1, 3600, SW,
     "seconds between queue polls when no notification arrives"},
    {"segment-workers", "MKDSEG_SEGMENT_WORKERS", NULL, T_INT, "1", OFF(segment_workers), 0, 1, 256,
     CFG_SERVE, "engine threads that run /segment requests (queue-size more may wait)"},
    {"default-model", "MKDSEG_DEFAULT_MODEL", NULL, T_STR, "models/default.safetensors",
     OFF(default_model), SZ(default_model), 0, 0, CFG_SERVE,
     "model file registered and promoted at start-up when no model exists; empty: none"},
    {"threads", "MKDSEG_THREADS", NULL, T_INT, "0", OFF(engine_threads), 0, 0, 1024, SW,
     "CPU threads of each segmentation or training task; 0 = all cores"},
    {"monailabel-prefix", "MKDSEG_MONAILABEL_PREFIX", NULL, T_PREFIX, "/monailabel",
     OFF(monailabel_prefix), SZ(monailabel_prefix), 1, 0, CFG_SERVE,
     "path prefix of the MONAI Label protocol for 3D Slicer (/a or /a/b: letters, digits, . _ -)"},
    {"dicomweb-allow", "MKDSEG_DICOMWEB_ALLOW", NULL, T_STR, "", OFF(dicomweb_allow),
     SZ(dicomweb_allow), 0, 0, CFG_SERVE,
     "DICOMweb roots (PACS) that /segment and dataset uploads may pull from and store to, "
     "comma-separated, "
     "each URL optionally followed by |basic:USER:PASSWORD or |bearer:TOKEN; empty: none (403)"},
    {"dicomweb-timeout", "MKDSEG_DICOMWEB_TIMEOUT", NULL, T_INT, "120", OFF(dicomweb_timeout), 0, 1,
     86400, CFG_SERVE, "seconds one DICOMweb request (WADO-RS, STOW-RS) may take"},
    {"dicomweb-max-bytes", "MKDSEG_DICOMWEB_MAX_BYTES", NULL, T_SIZE, "1G", OFF(dicomweb_max_bytes),
     0, 1024, (long long)1 << 40, CFG_SERVE, "largest series pulled by WADO-RS"},
    {"ui-dir", "MKDSEG_UI_DIR", NULL, T_STR, "server/api/ui", OFF(ui_dir), SZ(ui_dir), 0, 0,
     CFG_SERVE, "folder of the dashboard served at / (its vendor/ is filled by make); empty: none"},
    {"gc-grace", "MKDSEG_GC_GRACE", NULL, T_INT, "3600", OFF(gc_grace), 0, 0, 30 * 86400, SW,
     "seconds: blobs and temporary files younger than this are never garbage-collected (the "
     "blobs of deleted datasets and models go at once when older)"},
    {"min-body-rate", "MKDSEG_MIN_BODY_RATE", NULL, T_INT, "1024", OFF(min_body_rate), 0, 0,
     1 << 30, CFG_SERVE,
     "bytes a second a request body must average after --body-grace (slower: 408); 0 = no floor"},
    {"body-grace", "MKDSEG_BODY_GRACE", NULL, T_INT, "30", OFF(body_grace), 0, 0, 86400, CFG_SERVE,
     "seconds a request body may take before --min-body-rate applies"},
    {"header-timeout", "MKDSEG_HEADER_TIMEOUT", NULL, T_INT, "30", OFF(header_timeout), 0, 0, 86400,
     CFG_SERVE,
     "seconds a connection may take to send a request's headers (also the longest idle "
     "keep-alive); 0 = no deadline"},
};
#define NOPTS (sizeof cfg_table / sizeof cfg_table[0])
#define DATABASE_URL_OPT 2 /* index of database-url in cfg_table */
_Static_assert(NOPTS <= sizeof(((mkd_config *)0)->source), "mkd_config.source too small");

static int parse_ll(const char *s, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end)
        return -1;
    *out = v;
    return 0;
}

static int parse_size(const char *s, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || v < 0)
        return -1;
    long long mul = 1;
    if (*end) {
        switch (toupper((unsigned char)*end)) {
        case 'K':
            mul = 1LL << 10;
            break;
        case 'M':
            mul = 1LL << 20;
            break;
        case 'G':
            mul = 1LL << 30;
            break;
        default:
            return -1;
        }
        end++;
        if (toupper((unsigned char)*end) == 'I')
            end++;
        if (toupper((unsigned char)*end) == 'B')
            end++;
        if (*end)
            return -1;
    }
    if (v > LLONG_MAX / mul)
        return -1;
    *out = v * mul;
    return 0;
}

static int parse_bool(const char *s, int *out)
{
    static const char *const yes[] = {"on", "true", "yes", "1"}, *const no[] = {"off", "false",
                                                                                "no", "0"};
    for (int i = 0; i < 4; i++) {
        if (!strcasecmp(s, yes[i])) {
            *out = 1;
            return 0;
        }
        if (!strcasecmp(s, no[i])) {
            *out = 0;
            return 0;
        }
    }
    return -1;
}

static const char *src_name(const cfg_opt *o, cfg_source src, const char *envname)
{
    static __thread char buf[96];
    if (src == CFG_SRC_FLAG)
        snprintf(buf, sizeof buf, "--%s", o->flag);
    else if (src == CFG_SRC_ENV)
        snprintf(buf, sizeof buf, "%s", envname);
    else
        snprintf(buf, sizeof buf, "the default of --%s", o->flag);
    return buf;
}

/* Sets one option from text. */
/* Whether s is a URL path prefix: one or more "/segment" parts of [A-Za-z0-9._-], no trailing
 * slash, no "." or ".." part. */
static int prefix_ok(const char *s)
{
    if (*s != '/')
        return 0;
    while (*s == '/') {
        const char *e = ++s;
        while (isalnum((unsigned char)*e) || *e == '.' || *e == '_' || *e == '-')
            e++;
        size_t n = (size_t)(e - s);
        if (n == 0 || (n == 1 && s[0] == '.') || (n == 2 && !strncmp(s, "..", 2)))
            return 0;
        s = e;
    }
    return *s == 0;
}

static int set_opt(mkd_config *c, const cfg_opt *o, const char *val, cfg_source src,
                   const char *envname, char *err, size_t errlen)
{
    char *p = (char *)c + o->off;
    long long v = 0;
    switch (o->type) {
    case T_PREFIX:
        if (!prefix_ok(val)) {
            snprintf(err, errlen,
                     "%s: invalid path prefix '%s' (expected /name or /a/b, letters, "
                     "digits, '.', '_' or '-', no trailing slash)",
                     src_name(o, src, envname), val);
            return -1;
        }
        __attribute__((fallthrough)); /* then stored as a string */
    case T_STR:
        if (strlen(val) >= o->size) {
            snprintf(err, errlen, "%s: value too long (at most %zu characters)",
                     src_name(o, src, envname), o->size - 1);
            return -1;
        }
        if (o->min > 0 && !*val) {
            snprintf(err, errlen, "%s: must not be empty", src_name(o, src, envname));
            return -1;
        }
        memcpy(p, val, strlen(val) + 1);
        break;
    case T_INT:
        if (parse_ll(val, &v) < 0 || v < o->min || v > o->max) {
            snprintf(err, errlen, "%s: invalid value '%s' (expected an integer in %lld..%lld)",
                     src_name(o, src, envname), val, o->min, o->max);
            return -1;
        }
        *(int *)p = (int)v;
        break;
    case T_SIZE:
        if (parse_size(val, &v) < 0 || v < o->min || v > o->max) {
            snprintf(err, errlen,
                     "%s: invalid size '%s' (expected bytes with an optional K, M or G suffix, "
                     "between %lld and %lld bytes)",
                     src_name(o, src, envname), val, o->min, o->max);
            return -1;
        }
        *(long long *)p = v;
        break;
    case T_BOOL: {
        int b;
        if (parse_bool(val, &b) < 0) {
            snprintf(err, errlen, "%s: invalid value '%s' (expected on or off)",
                     src_name(o, src, envname), val);
            return -1;
        }
        *(int *)p = b;
        break;
    }
    case T_LEVEL: {
        log_level l;
        if (log_level_parse(val, &l) < 0) {
            snprintf(err, errlen,
                     "%s: invalid value '%s' (expected debug, info, warn, error or off)",
                     src_name(o, src, envname), val);
            return -1;
        }
        *(int *)p = (int)l;
        break;
    }
    }
    c->source[o - cfg_table] = (unsigned char)src;
    return 0;
}

static const cfg_opt *find_flag(const char *name, size_t len, unsigned cmd)
{
    for (size_t i = 0; i < NOPTS; i++)
        if ((cfg_table[i].cmds & cmd) && strlen(cfg_table[i].flag) == len &&
            !strncmp(cfg_table[i].flag, name, len))
            return &cfg_table[i];
    return NULL;
}

/* The settings of cmd given in the environment (MKDSEG_*, then the second name). */
static int cfg_from_env(mkd_config *c, unsigned cmd, char *err, size_t errlen)
{
    for (size_t i = 0; i < NOPTS; i++) {
        const cfg_opt *o = &cfg_table[i];
        if (!(o->cmds & cmd))
            continue;
        const char *name = o->env, *v = getenv(o->env);
        if (!v && o->env2) {
            name = o->env2;
            v = getenv(o->env2);
        }
        if (v && set_opt(c, o, v, CFG_SRC_ENV, name, err, errlen) < 0)
            return -1;
    }
    return 0;
}

/* The settings of cmd given as --flag VALUE or --flag=VALUE. */
static int cfg_from_flags(mkd_config *c, unsigned cmd, int argc, char **argv, char *err,
                          size_t errlen)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) || !a[2]) {
            snprintf(err, errlen, "unexpected argument '%s' (see --help)", a);
            return -1;
        }
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        const cfg_opt *o = find_flag(name, len, cmd);
        if (!o) {
            snprintf(err, errlen, "unknown option '%.*s' (see --help)", (int)(len + 2), a);
            return -1;
        }
        const char *val;
        if (eq)
            val = eq + 1;
        else if (i + 1 < argc)
            val = argv[++i];
        else {
            snprintf(err, errlen, "--%s needs a value", o->flag);
            return -1;
        }
        if (set_opt(c, o, val, CFG_SRC_FLAG, NULL, err, errlen) < 0)
            return -1;
    }
    return 0;
}

int cfg_load(mkd_config *c, unsigned cmd, int argc, char **argv, int *help, char *err,
             size_t errlen)
{
    memset(c, 0, sizeof *c);
    *help = 0;
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            *help = 1;
            return 0;
        }
    /* defaults (for every setting, so that unrelated fields are sane too) */
    for (size_t i = 0; i < NOPTS; i++)
        if (set_opt(c, &cfg_table[i], cfg_table[i].def, CFG_SRC_DEFAULT, NULL, err, errlen) < 0)
            return -1;
    if (cfg_from_env(c, cmd, err, errlen) < 0 ||
        cfg_from_flags(c, cmd, argc, argv, err, errlen) < 0)
        return -1;
    /* a database URL that libpq cannot parse is a configuration error, not an outage */
    if (c->database_url[0]) {
        char *perr = NULL;
        PQconninfoOption *opts = PQconninfoParse(c->database_url, &perr);
        if (!opts) {
            snprintf(
                err, errlen, "invalid database URL (%s): %s",
                src_name(&cfg_table[DATABASE_URL_OPT], (cfg_source)c->source[DATABASE_URL_OPT],
                         getenv("MKDSEG_DATABASE_URL") ? "MKDSEG_DATABASE_URL" : "DATABASE_URL"),
                perr ? perr : "cannot parse");
            size_t n = strlen(err);
            while (n && err[n - 1] == '\n')
                err[--n] = 0;
            PQfreemem(perr);
            return -1;
        }
        PQconninfoFree(opts);
    }
    /* cross-setting checks */
    if ((cmd & CFG_SERVE) && c->max_json > c->max_body) {
        snprintf(err, errlen, "--max-json (%lld) must not exceed --max-body (%lld)", c->max_json,
                 c->max_body);
        return -1;
    }
    if ((cmd & CFG_SERVE) && c->per_ip_connections > c->max_connections) {
        snprintf(err, errlen, "--per-ip-connections (%d) must not exceed --max-connections (%d)",
                 c->per_ip_connections, c->max_connections);
        return -1;
    }
    return 0;
}

int cfg_source_of(const mkd_config *c, const char *flag)
{
    for (size_t i = 0; i < NOPTS; i++)
        if (!strcmp(cfg_table[i].flag, flag))
            return c->source[i];
    return -1;
}

void cfg_usage(FILE *f, unsigned cmd, const char *cmdname, const char *summary)
{
    fprintf(f, "usage: mkdseg %s [options]\n\n%s\n\n", cmdname, summary);
    fprintf(
        f,
        "Each setting comes from its flag, else its environment variable, else the default.\n\n");
    for (size_t i = 0; i < NOPTS; i++) {
        const cfg_opt *o = &cfg_table[i];
        if (!(o->cmds & cmd))
            continue;
        char flag[64];
        snprintf(flag, sizeof flag, "--%s %s", o->flag,
                 o->type == T_BOOL    ? "on|off"
                 : o->type == T_INT   ? "N"
                 : o->type == T_SIZE  ? "SIZE"
                 : o->type == T_LEVEL ? "LEVEL"
                                      : "VALUE");
        fprintf(f, "  %-30s %s\n", flag, o->help);
        fprintf(f, "  %-30s default: %s%s%s;  env: %s%s%s\n", "", *o->def ? "" : "\"", o->def,
                *o->def ? "" : "\"", o->env, o->env2 ? " or " : "", o->env2 ? o->env2 : "");
    }
    fprintf(f, "  %-30s %s\n", "--help", "print this help");
}

/* Copies a database URL with the password replaced by "***". */
/* Hides every password value of a conninfo string (password=x, password = 'a b', quotes
 * escaped by backslash) or of a URI's query (password=x&...) in out, in place. */
static void mask_passwords(char *out, size_t outlen)
{
    for (char *pw = out; (pw = strstr(pw, "password"));) {
        char *v = pw + 8;
        while (*v == ' ')
            v++;
        if (*v != '=') {
            pw += 8;
            continue;
        }
        v++;
        while (*v == ' ')
            v++;
        char *end = v;
        if (*v == '\'') {
            for (end++; *end && *end != '\''; end++)
                if (*end == '\\' && end[1])
                    end++;
            if (*end)
                end++;
        } else {
            while (*end && *end != ' ' && *end != '&')
                end++;
        }
        char rest[1100];
        snprintf(rest, sizeof rest, "%s", end);
        snprintf(v, outlen - (size_t)(v - out), "***%s", rest);
        pw = v + 3;
    }
}

/* The database URL or conninfo with its password(s) replaced by "***". */
static void mask_url(const char *url, char *out, size_t outlen)
{
    snprintf(out, outlen, "%s", url);
    char *scheme = strstr(out, "://");
    if (scheme) {
        char *at = strchr(scheme + 3, '@'), *colon = strchr(scheme + 3, ':');
        if (at && colon && colon < at) {
            char rest[1024];
            snprintf(rest, sizeof rest, "%s", at);
            snprintf(colon + 1, outlen - (size_t)(colon + 1 - out), "***%s", rest);
        }
    }
    mask_passwords(out, outlen);
}

/* Copies a DICOMweb allow list with each entry's credentials (after '|') replaced by "***". */
static void mask_credentials(const char *list, char *out, size_t outlen)
{
    size_t o = 0;
    int hide = 0;
    for (const char *p = list; *p && o + 4 < outlen; p++) {
        if (*p == ',')
            hide = 0;
        if (hide)
            continue;
        out[o++] = *p;
        if (*p == '|') {
            memcpy(out + o, "***", 3);
            o += 3;
            hide = 1;
        }
    }
    out[o] = 0;
}

json_t *cfg_to_json(const mkd_config *c, unsigned cmd)
{
    json_t *o = json_object();
    for (size_t i = 0; i < NOPTS; i++) {
        const cfg_opt *t = &cfg_table[i];
        if (!(t->cmds & cmd))
            continue;
        const char *p = (const char *)c + t->off;
        json_t *v = NULL;
        switch (t->type) {
        case T_PREFIX:
        case T_STR:
            if (t->off == OFF(dicomweb_allow)) {
                char m[4096];
                mask_credentials(p, m, sizeof m);
                v = json_string(m);
            } else if (t->off == OFF(database_url)) {
                char m[1100];
                mask_url(p, m, sizeof m);
                v = json_string(m);
            } else {
                v = json_string(p);
            }
            break;
        case T_INT:
            v = json_integer(*(const int *)p);
            break;
        case T_SIZE:
            v = json_integer(*(const long long *)p);
            break;
        case T_BOOL:
            v = json_string(*(const int *)p ? "on" : "off");
            break;
        case T_LEVEL:
            v = json_string(log_level_name((log_level) * (const int *)p));
            break;
        }
        json_object_set_new(o, t->flag, v);
    }
    return o;
}
