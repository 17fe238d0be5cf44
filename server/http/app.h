/* app.h: the state of one `mkdseg serve` process, shared by the HTTP layer and the handlers
 * (redis' `server` struct). Created by cmd_serve, which owns every member. */
#ifndef MKDSEG_APP_H
#define MKDSEG_APP_H

#include <stdatomic.h>
#include <time.h>

#include "config.h"
#include "db.h"

typedef struct app {
    mkd_config cfg;
    db_pool *db;
    atomic_int draining; /* set on SIGTERM: /readyz answers 503, responses close */
    struct MHD_Daemon *mhd;
    int port; /* the port actually bound */
    time_t started;
} app;

#endif
