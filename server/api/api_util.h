/* api_util.h: helpers shared by the resource handlers (handlers_*.c): database access that
 * answers its own failures, ids from the path, files as responses, NIfTI uploads. Each helper
 * that fails has answered the request already (http_error) and returns NULL / -1. */
#ifndef MKDSEG_API_UTIL_H
#define MKDSEG_API_UTIL_H

#include "db.h"
#include "http.h"
#include "upload.h"

/* Borrows a pooled connection or answers 503 (with Retry-After) and returns NULL. */
db_conn *api_db_acquire(http_req *r);
/* Answers 503 / 500 for a failed statement on c (503 when the database went away). */
void api_db_error(http_req *r, db_conn *c, const char *err);
/* Runs a parameterised statement on a pooled connection: the result, or NULL. NULL after
 * answering 503/500, except that when sqlstate[6] is given a constraint or data error (SQLSTATE
 * class 23 or 22) is not answered: its SQLSTATE is left in sqlstate for the caller. */
PGresult *api_exec(http_req *r, const db_stmt *st, const char *const *v, char sqlstate[6]);
/* Parses capture 0 as the id of `what` (ids[24] its text) and runs st with $1 = the id: the
 * result, or NULL after answering (404 for a malformed id, 503/500). */
PGresult *api_exec_by_id(http_req *r, const char *what, const db_stmt *st, long long *id,
                         char ids[24]);
/* Runs st for (at least) one row: the result, or NULL after answering 503/500, or 404
 * "<what> not found" (naming request field `field`) when no row came back. */
PGresult *api_exec_row(http_req *r, const db_stmt *st, const char *const *v, const char *field,
                       const char *what);
/* Parses capture 0 as the id of `what` and runs st with $1 = the id for one row: the result,
 * or NULL after answering (404 for a malformed id or "<what> <id> not found", 503/500). */
PGresult *api_row_by_id(http_req *r, const char *what, const db_stmt *st, long long *id);
/* Runs a statement whose single row/column is JSON text and answers it with `status`;
 * answers 404 (`what` not found) when no row came back. */
void api_reply_json_row(http_req *r, const db_stmt *st, const char *const *values, int status,
                        const char *what);
/* Queues a job of `kind` with params (stolen) and answers 202 with the job as `reply` (one
 * JSON row for $1 = the job id) shows it, and its Location; answers 503/500 when it cannot. */
void api_enqueue_job(http_req *r, const char *kind, json_t *params, const db_stmt *reply);
/* GET /<resource>/{id}: parses the id (404 naming `what` when it is not one) and answers the
 * JSON row st gives for it ($1 = the id), 404 "<what> <id> not found" when there is none. */
void api_reply_by_id(http_req *r, const char *what, const db_stmt *st);
/* Answers 201 with the JSON of column 1 of res's first row and Location: base/<column 0>, and
 * clears res. */
void api_reply_created(http_req *r, const char *base, PGresult *res);
/* GET /<resource>/{id}/<file>: parses the id and runs st ($1 = the id; column 0 = a path
 * relative to the data folder) into the absolute path. 0, or -1 answered (404 naming `what`). */
int api_stored_path(http_req *r, const char *what, const db_stmt *st, long long *id, char *path,
                    size_t pathlen);
/* Parses capture 0 as an id; answers 404 naming `what` and returns -1 when it is not one. */
int api_id(http_req *r, const char *what, long long *id, char ids[24]);
/* Answers with the file at path (streamed from its descriptor). 0, or -1 after answering 404
 * (missing file) / 500. */
int api_reply_file(http_req *r, const char *path, const char *ctype, const char *filename);
/* Renames an uploaded file to carry the .nii / .nii.gz extension nifticlib needs, after
 * checking that it looks like NIfTI. 0, or -1 after answering 415 (not NIfTI, with the
 * reason). */
int api_upload_nifti(http_req *r, upload_file *f, int *gz);
/* After rows were deleted: removes the blobs whose digests are column 0 of `shas` (read before
 * the delete) when no row references them any more and they are older than --gc-grace (gc.h).
 * Logs what it removed; a failure is logged only (the next `mkdseg gc` collects them). Clears
 * shas. */
void api_collect_blobs(http_req *r, PGresult *shas);

#endif
