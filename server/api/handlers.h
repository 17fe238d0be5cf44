/* handlers.h: the HTTP handlers named in the routing table (routes.c). Each answers through
 * http_reply_* / http_error (http.h). */
#ifndef MKDSEG_HANDLERS_H
#define MKDSEG_HANDLERS_H

#include "http.h"

/* handlers_ops.c: operational endpoints */
void h_healthz(http_req *r);
void h_readyz(http_req *r);
void h_metrics(http_req *r);
void h_version(http_req *r);

/* handlers_datasets.c */
void h_datasets_create(http_req *r);
void h_datasets_list(http_req *r);
void h_datasets_get(http_req *r);

/* Helpers shared by handlers (handlers_ops.c). */
/* Borrows a pooled connection or answers 503 (with Retry-After) and returns NULL. */
db_conn *h_db_acquire(http_req *r);
/* Answers 503 / 500 for a failed statement on c (503 when the database went away). */
void h_db_error(http_req *r, db_conn *c, const char *err);
/* Runs a statement whose single row/column is JSON text and answers it with `status`;
 * answers 404 (`what` not found) when no row came back. */
void h_reply_json_row(http_req *r, const db_stmt *st, const char *const *values, int status,
                      const char *what);

#endif
