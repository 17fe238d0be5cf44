/* dicomweb.h: a small DICOMweb client (libcurl) for the PACS round trip: WADO-RS pulls a
 * series as multipart/related DICOM parts into a folder, STOW-RS stores one DICOM file.
 *
 * Only PACS roots named in the dicomweb-allow setting are reached (dw_allowed): an entry is
 * "URL", "URL|basic:USER:PASSWORD" or "URL|bearer:TOKEN"; the request's URL must equal the
 * entry's (a trailing '/' ignored), so that neither a longer host name nor another path on an
 * allowed host passes. */
#ifndef MKDSEG_DICOMWEB_H
#define MKDSEG_DICOMWEB_H

#include <stddef.h>

typedef struct {
    char url[1024];    /* the DICOMweb root, without a trailing '/' */
    char userpwd[512]; /* basic auth "user:password", or "" */
    char bearer[1024]; /* bearer token, or "" */
    long timeout_s;
    long long max_bytes;
} dw_pacs;

/* 1 when url is on the allow list (p filled with its credentials), 0 when not. */
int dw_allowed(const char *allow_list, const char *url, dw_pacs *p);

/* Whether s is a DICOM UID (1-64 characters of digits and dots). */
int dw_uid_ok(const char *s);

/* Outcome of a DICOMweb request. */
typedef struct {
    long http_status; /* the PACS's status (0: no answer) */
    int too_large;    /* the series passed max_bytes */
    char sha256[65];  /* WADO-RS: SHA-256 of the whole answer body */
    char err[512];
} dw_result;

/* GET {url}/studies/{study}/series/{series} (multipart/related; type="application/dicom"):
 * writes each part to dir/NNNNNN.dcm. Returns the number of instances, or -1 (r says why). */
int dw_wado_series(const dw_pacs *p, const char *study, const char *series, const char *dir,
                   dw_result *r);

/* POST {url}/studies with the DICOM file at path as the one part. 0, or -1 (r says why). */
int dw_stow(const dw_pacs *p, const char *path, dw_result *r);

#endif
