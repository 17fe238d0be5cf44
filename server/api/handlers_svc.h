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

/* ---- DICOM uploads (handlers_dicom.c) ---- */
/* Whether the upload f is DICOM input (a zip, a DICOM Part 10 file): 0 when it is not; 1 when
 * it is and its series passes every check of the reader (no pixel decoded yet); -1 after
 * answering the refusal (422, 415 for an undecodable encoding, 413 when too large). */
int hs_upload_dicom(http_req *r, upload_file *f);
/* Replaces a DICOM upload by its NIfTI (gzip, float32): f->path, size and sha256 then name
 * the NIfTI. 0, or -1 after answering. */
int hs_dicom_to_nifti(http_req *r, upload_file *f);
/* Writes the SEG of the label map at mask_path (computed on the DICOM upload src) to
 * out_path; uids get its SOPInstanceUID and SeriesInstanceUID. 0, or -1 after answering. */
int hs_write_seg(http_req *r, const char *src, const char *mask_path, const char *out_path, char uids[2][65]);

/* ---- DICOMweb requests (handlers_dicomweb.c) ---- */
/* on_body of the volume routes: a JSON body is a DICOMweb request (buffered up to max-json),
 * anything else a multipart upload (upload_on_body). */
int hs_volume_body(http_req *r, const char *data, size_t len);
/* Whether r is a DICOMweb request. */
int hs_is_dicomweb(http_req *r);
/* Pulls the series the JSON body names (WADO-RS) into a folder standing in for the upload's
 * file field `field` ("vol": also asks for a SEG). The upload, or NULL after answering: 400/422
 * bad body, 403 PACS not allowed, 404 no such series, 413 too large, 502 the PACS failed. */
upload *hs_dicomweb_pull(http_req *r, const char *field);
/* Stores the SEG at seg_path on the request's PACS (STOW-RS). 0, or -1 after answering 502. */
int hs_dicomweb_store(http_req *r, const char *seg_path);
/* The request's DICOMweb root, or NULL. */
const char *hs_dicomweb_url(http_req *r);
/* The request's StudyInstanceUID (the SEG joins that study), or NULL. */
const char *hs_dicomweb_study(http_req *r);

#endif
