/* tform.h: one multipart/form-data request with libcurl, for the HTTP tests. */
#ifndef MKDSEG_TESTS_TFORM_H
#define MKDSEG_TESTS_TFORM_H

#include "tsrv.h"

/* POSTs `parts` ("name=value", or "name=@path" to upload a file; NULL-terminated) to path on
 * s, with extra headers (NULL-terminated, may be NULL). 0 on a completed exchange (any
 * status), -1 on a transport error; out is always set (tresp_free it). */
int tform_post(const tsrv *s, const char *path, const char *const *parts,
               const char *const *headers, tresp *out);

#endif
