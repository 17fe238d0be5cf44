/* tsvc.h: the service under test as one fixture for the HTTP suites: a scratch folder, a fresh
 * database and `mkdseg serve` on it with the default model (tests/lib/tsrv.h underneath). */
#ifndef MKDSEG_TESTS_TSVC_H
#define MKDSEG_TESTS_TSVC_H

#include "tsrv.h"

typedef struct {
    tsrv srv;
    PGconn *pg;      /* a connection to the service's database */
    char dbname[64]; /* "" when none was created */
    char dir[512];   /* the scratch folder, "" when none */
} tsvc;

/* A scratch folder <MKDSEG_TEST_TMP or /tmp>/<tag>.XXXXXX, a fresh database, and the service on
 * it: --default-model models/default.safetensors --job-poll 1, then `extra` (NULL-terminated,
 * may be NULL), with one engine thread (MKDSEG_THREADS=1: the machine is shared). Aborts the
 * test when the server does not start. */
void tsvc_start(tsvc *v, const char *tag, const char *const *extra);

/* Stops the server (its exit status; 0 when none ran), drops the database and removes the
 * folder. Safe after a failed start and when called twice, so a suite's .fini can always call it. */
int tsvc_stop(tsvc *v);

#endif
