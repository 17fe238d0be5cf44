/* log.c: JSON-lines logs on stderr (see log.h). */
#include "log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static atomic_int log_min = LOG_INFO;
static const char *const level_names[] = {"debug", "info", "warn", "error", "off"};

void log_set_level(log_level level) { atomic_store(&log_min, (int)level); }
int log_enabled(log_level level) { return (int)level >= atomic_load(&log_min) && level < LOG_OFF; }

int log_level_parse(const char *s, log_level *out)
{
    for (int i = 0; i <= LOG_OFF; i++)
        if (!strcmp(s, level_names[i])) {
            *out = (log_level)i;
            return 0;
        }
    if (!strcmp(s, "warning")) {
        *out = LOG_WARN;
        return 0;
    }
    return -1;
}

const char *log_level_name(log_level level)
{
    return (level >= LOG_DEBUG && level <= LOG_OFF) ? level_names[level] : "?";
}

void log_json(log_level level, const char *req_id, const char *msg, json_t *fields)
{
    if (!log_enabled(level)) {
        json_decref(fields);
        return;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char tbuf[40];
    size_t n = strftime(tbuf, sizeof tbuf, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(tbuf + n, sizeof tbuf - n, ".%03ldZ", ts.tv_nsec / 1000000L);

    json_t *o = json_object();
    json_object_set_new(o, "ts", json_string(tbuf));
    json_object_set_new(o, "level", json_string(level_names[level]));
    json_object_set_new(o, "msg", json_string(msg ? msg : ""));
    if (req_id)
        json_object_set_new(o, "req", json_string(req_id));
    if (fields && json_is_object(fields))
        json_object_update_missing(o, fields);
    json_decref(fields);
    char *line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
    json_decref(o);
    if (!line)
        return;
    size_t len = strlen(line);
    line[len] = '\n'; /* json_dumps' terminating NUL becomes the newline */
    ssize_t off = 0;
    while ((size_t)off < len + 1) {
        ssize_t w = write(STDERR_FILENO, line + off, len + 1 - (size_t)off);
        if (w <= 0)
            break;
        off += w;
    }
    free(line);
}

void log_msg(log_level level, const char *req_id, const char *fmt, ...)
{
    if (!log_enabled(level))
        return;
    char buf[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    log_json(level, req_id, buf, NULL);
}
