/* handlers_svc.h: the handlers of issue 6 (segmentation, models, jobs, volumes, Dice) and the
 * helpers they share. Named in the routing table (routes.c). */
#ifndef MKDSEG_HANDLERS_SVC_H
#define MKDSEG_HANDLERS_SVC_H

#include "http.h"
#include "upload.h"

/* handlers_segment.c */
void h_segment(http_req *r);
void h_inference_mask(http_req *r);

/* handlers_models.c */
void h_models_list(http_req *r);
void h_models_get(http_req *r);
void h_models_weights(http_req *r);
void h_models_upload(http_req *r);
void h_models_promote(http_req *r);
void h_models_evaluate(http_req *r);
void h_dice(http_req *r);

/* handlers_jobs.c */
void h_train(http_req *r);
void h_jobs_list(http_req *r);
void h_jobs_get(http_req *r);
void h_jobs_cancel(http_req *r);
void h_jobs_events(http_req *r);

/* handlers_volumes.c */
void h_volumes_add(http_req *r);
void h_datasets_delete(http_req *r);

/* ---- helpers (handlers_segment.c) ---- */
/* Answers with the file at path (streamed from its descriptor). 0, or -1 after answering 404
 * (missing file) / 500. */
int hs_reply_file(http_req *r, const char *path, const char *ctype, const char *filename);
/* Parses capture 0 as an id; answers 404 naming `what` and returns -1 when it is not one. */
int hs_id(http_req *r, const char *what, long long *id, char ids[24]);
/* Renames an uploaded file to carry the .nii / .nii.gz extension nifticlib needs, after
 * checking that it looks like NIfTI. 0, or -1 after answering 415 (not NIfTI, with the
 * reason). */
int hs_upload_nifti(http_req *r, upload_file *f, int *gz);
/* Runs a parameterised statement on a pooled connection: the result, or NULL. NULL after
 * answering 503/500, except that when sqlstate[6] is given a constraint or data error (SQLSTATE
 * class 23 or 22) is not answered: its SQLSTATE is left in sqlstate for the caller. */
PGresult *hs_exec(http_req *r, const db_stmt *st, const char *const *v, char sqlstate[6]);

#endif
