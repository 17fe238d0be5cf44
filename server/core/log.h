/* log.h: JSON-lines logging on stderr.
 * Each call writes exactly one line: {"ts":"2026-01-01T00:00:00.000Z","level":"info",
 * "msg":"...","req":"<request id>", ...fields}. Thread-safe (one write(2) per line). */
#ifndef MKDSEG_LOG_H
#define MKDSEG_LOG_H

#include <jansson.h>

typedef enum { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR, LOG_OFF } log_level;

/* Messages below `level` are dropped. Default LOG_INFO. */
void log_set_level(log_level level);
int log_enabled(log_level level);
/* Parses "debug|info|warn|error|off"; 0 on success, -1 when unknown. */
int log_level_parse(const char *s, log_level *out);
const char *log_level_name(log_level level);

/* Writes one line. `req_id` may be NULL. `fields` (may be NULL) is a JSON object whose members
 * are added to the line; the reference is stolen. */
void log_json(log_level level, const char *req_id, const char *msg, json_t *fields);

/* printf-style message, no extra fields. */
void log_msg(log_level level, const char *req_id, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define log_debug(...) log_msg(LOG_DEBUG, NULL, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, NULL, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, NULL, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, NULL, __VA_ARGS__)

#endif
