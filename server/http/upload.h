/* upload.h: multipart/form-data uploads streamed to disk through libmicrohttpd's post
 * processor. A route whose on_body is upload_on_body gets every file field written to a
 * temporary file under <data-dir>/tmp (hashed with SHA-256 as it arrives) and every plain
 * field kept in memory (up to UPLOAD_MAX_VALUE bytes). The state lives in the request
 * (r->user) and is freed with it: temporary files still owned then (failed request, client
 * gone away) are removed. Several file parts under one field name (curl -F vol=@a.dcm -F
 * vol=@b.dcm, e.g. the files of a DICOM series) make that field a folder with one file per
 * part (is_dir); its sha256 covers the parts in the order sent. */
#ifndef MKDSEG_UPLOAD_H
#define MKDSEG_UPLOAD_H

#include <stddef.h>

#include "http.h"

#define UPLOAD_MAX_FILES 4
#define UPLOAD_MAX_FIELDS 8
#define UPLOAD_MAX_VALUE 4096
#define UPLOAD_MAX_PARTS 20000 /* file parts under one field name (a DICOM series) */

typedef struct {
    char field[64];
    char filename[256];
    char path[1200]; /* temporary file ("" once taken by upload_take) */
    int fd;
    long long size;
    char sha256[65];     /* after upload_finish (of all parts, in order) */
    void *md;            /* EVP_MD_CTX */
    int nparts;          /* file parts sent under this field name */
    long long part_size; /* bytes of the current part */
    int is_dir;          /* several parts: path is a folder holding one file per part */
} upload_file;

typedef struct {
    struct MHD_PostProcessor *pp;
    upload_file files[UPLOAD_MAX_FILES];
    int nfiles;
    struct {
        char name[64];
        char value[UPLOAD_MAX_VALUE + 1];
        size_t len;
    } fields[UPLOAD_MAX_FIELDS];
    int nfields;
    int finished;
    int disk_errno; /* errno of a failed temporary-file write (ENOSPC: answered 507) */
    /* the closing delimiter "\r\n--BOUNDARY--": libmicrohttpd's parser refuses some epilogues
     * (the CRLF pair some clients send after it), so nothing after it is passed on */
    char close_delim[96];
    size_t close_len;
    char tail[96]; /* the last close_len - 1 bytes seen, for a split delimiter */
    size_t tail_len;
    int closed; /* the closing delimiter went by: the rest is ignored */
} upload;

/* The on_body of multipart routes (http_route.on_body). Answers 415 when the request is not
 * multipart/form-data, 400 when the body is malformed, 507 when the data folder is full
 * (ENOSPC, EDQUOT; the partial file is removed), 500 on another disk error. */
int upload_on_body(http_req *r, const char *data, size_t len);

/* Completes the upload of request r (flushes the post processor, closes and hashes the files).
 * Returns the upload, or NULL after answering: 415 when the request had no multipart body of
 * the right type, 400 when it was malformed or empty. */
upload *upload_finish(http_req *r);

/* The file field `name`, or NULL. */
upload_file *upload_get_file(upload *u, const char *name);
/* Removes the file (or folder of parts) of f now; f->path becomes "". */
void upload_discard(upload_file *f);
/* The plain field `name` (NUL-terminated), or NULL. */
const char *upload_get_field(upload *u, const char *name);

/* In msg (cap bytes), the temporary path of each file of r's upload becomes the client's file
 * name (the field name when it sent none). A no-op for a request without an upload. */
void upload_redact(const http_req *r, char *msg, size_t cap);

#endif
