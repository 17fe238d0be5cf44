/* api_dicom.h: DICOM uploads (handlers_dicom.c) and DICOMweb requests (handlers_dicomweb.c),
 * shared by the segmentation and volume handlers. */
#ifndef MKDSEG_API_DICOM_H
#define MKDSEG_API_DICOM_H

#include "http.h"
#include "upload.h"

/* ---- DICOM uploads (handlers_dicom.c) ---- */
/* Whether the upload f is DICOM input (a zip, a DICOM Part 10 file): 0 when it is not; 1 when
 * it is and its series passes every check of the reader (no pixel decoded yet); -1 after
 * answering the refusal (422, 415 for an undecodable encoding, 413 when too large). */
int api_upload_dicom(http_req *r, upload_file *f);
/* Replaces a DICOM upload by its NIfTI (gzip, float32): f->path, size and sha256 then name
 * the NIfTI. 0, or -1 after answering. */
int api_dicom_to_nifti(http_req *r, upload_file *f);
/* Writes the SEG of the label map at mask_path (computed on the DICOM upload src) to
 * out_path; uids get its SOPInstanceUID and SeriesInstanceUID. 0, or -1 after answering. */
int api_write_seg(http_req *r, const char *src, const char *mask_path, const char *out_path,
                  char uids[2][65]);

/* ---- DICOMweb requests (handlers_dicomweb.c) ---- */
/* on_body of the volume routes: a JSON body is a DICOMweb request (buffered up to max-json),
 * anything else a multipart upload (upload_on_body). */
int api_volume_body(http_req *r, const char *data, size_t len);
/* Whether r is a DICOMweb request. */
int api_is_dicomweb(http_req *r);
/* Pulls the series the JSON body names (WADO-RS) into a folder standing in for the upload's
 * file field `field` ("vol": also asks for a SEG). The upload, or NULL after answering: 400/422
 * bad body, 403 PACS not allowed, 404 no such series, 413 too large, 502 the PACS failed. */
upload *api_dicomweb_pull(http_req *r, const char *field);
/* Stores the SEG at seg_path on the request's PACS (STOW-RS). 0, or -1 after answering 502. */
int api_dicomweb_store(http_req *r, const char *seg_path);
/* The request's DICOMweb root, or NULL. */
const char *api_dicomweb_url(http_req *r);
/* The request's StudyInstanceUID (the SEG joins that study), or NULL. */
const char *api_dicomweb_study(http_req *r);

#endif
