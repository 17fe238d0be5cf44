/* tsvc.c: see tsvc.h. */
#include "tsvc.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>

void tsvc_start(tsvc *v, const char *tag, const char *const *extra)
{
    const char *tmp = getenv("MKDSEG_TEST_TMP");
    snprintf(v->dir, sizeof v->dir, "%s/%s.XXXXXX", tmp && *tmp ? tmp : "/tmp", tag);
    cr_assert(mkdtemp(v->dir), "cannot create %s", v->dir);
    v->pg = tdb_create(v->dbname);
    char url[1024];
    tdb_url(v->dbname, url);
    setenv("MKDSEG_THREADS", "1", 1);
    const char *args[32] = {"--default-model", "models/default.safetensors", "--job-poll", "1"};
    int n = 4;
    for (int i = 0; extra && extra[i] && n < 31; i++)
        args[n++] = extra[i];
    args[n] = NULL;
    cr_assert_eq(tsrv_start(&v->srv, url, args), 0, "server did not start");
}

int tsvc_stop(tsvc *v)
{
    int rc = v->srv.pid > 0 ? tsrv_stop(&v->srv) : 0;
    v->srv.pid = 0;
    if (v->pg || v->dbname[0])
        tdb_drop(v->pg, v->dbname);
    v->pg = NULL;
    v->dbname[0] = 0;
    if (v->dir[0]) {
        char cmd[600];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", v->dir);
        if (system(cmd) != 0)
            fprintf(stderr, "cannot remove %s\n", v->dir);
        v->dir[0] = 0;
    }
    return rc;
}
