/* http_multipart.h: multipart/form-data answers with a Content-Length.
 *
 * Some clients (3D Slicer's MONAI Label module) parse a multipart answer from the raw socket
 * with the length the headers give, and read nothing from a chunked body. This writer knows
 * every part's size before the first byte goes out: the answer is served by a libmicrohttpd
 * callback of known total size (so Content-Length is set, never chunked), copying small parts
 * from memory and streaming file parts from their descriptors. */
#ifndef MKDSEG_HTTP_MULTIPART_H
#define MKDSEG_HTTP_MULTIPART_H

#include <stddef.h>

#include "http.h"

#define HTTP_MP_MAX_PARTS 8

typedef struct http_multipart http_multipart;

/* A new, empty answer with a random boundary; NULL when out of memory. */
http_multipart *http_mp_new(void);
/* Appends a part holding a copy of data. filename may be NULL (a plain field); ctype may be
 * NULL (none). Names and file names must not contain '"', CR or LF. 0 / -1. */
int http_mp_add_data(http_multipart *mp, const char *name, const char *filename, const char *ctype,
                     const void *data, size_t len);
/* Appends a part holding the file at path (opened now, read while the answer is sent). 0 / -1
 * (the file cannot be opened, too many parts). */
int http_mp_add_file(http_multipart *mp, const char *name, const char *filename, const char *ctype,
                     const char *path);
/* Answers r with the parts (Content-Type multipart/form-data; boundary=...). Takes mp in every
 * case. 0, or -1 after answering 500. */
int http_reply_multipart(http_req *r, int status, http_multipart *mp);
/* Frees an answer that was not sent. */
void http_mp_free(http_multipart *mp);

#endif
