/* upload.h: multipart/form-data uploads streamed to disk through libmicrohttpd's post
 * processor. A route whose on_body is upload_on_body gets every file field written to a
 * temporary file under <data-dir>/tmp (hashed with SHA-256 as it arrives) and every plain
 * field kept in memory (up to UPLOAD_MAX_VALUE bytes). The state lives in the request
 * (r->user) and is freed with it: temporary files still owned then (failed request, client
 * gone away) are removed. */
#ifndef MKDSEG_UPLOAD_H
#define MKDSEG_UPLOAD_H

#include <stddef.h>

#include "http.h"

#define UPLOAD_MAX_FILES 4
#define UPLOAD_MAX_FIELDS 8
#define UPLOAD_MAX_VALUE 4096

typedef struct {
    char field[64];
    char filename[256];
    char path[1200];   /* temporary file ("" once taken by upload_take) */
    int fd;
    long long size;
    char sha256[65];   /* after upload_finish */
    void *md;          /* EVP_MD_CTX */
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
} upload;

/* The on_body of multipart routes (http_route.on_body). Answers 415 when the request is not
 * multipart/form-data, 400 when the body is malformed, 500 on a disk error. */
int upload_on_body(http_req *r, const char *data, size_t len);

/* Completes the upload of request r (flushes the post processor, closes and hashes the files).
 * Returns the upload, or NULL after answering: 415 when the request had no multipart body of
 * the right type, 400 when it was malformed or empty. */
upload *upload_finish(http_req *r);

/* The file field `name`, or NULL. */
upload_file *upload_get_file(upload *u, const char *name);
/* The plain field `name` (NUL-terminated), or NULL. */
const char *upload_get_field(upload *u, const char *name);

#endif
