/* blob.h: the content-addressed blob store: files under <data-dir>/blobs/<h0h1>/<sha256 hex>,
 * written through a temporary file in <data-dir>/tmp and renamed into place once complete, so
 * that a reader never sees a partial blob, an upload is never held whole in memory, and the same
 * content is stored once. PostgreSQL rows keep the hex digest and the relative path. */
#ifndef MKDSEG_BLOB_H
#define MKDSEG_BLOB_H

#include <stddef.h>

typedef struct blob_writer blob_writer;

/* Starts a blob under data_dir (folders created when missing). NULL + err on failure. */
blob_writer *blob_begin(const char *data_dir, char *err, size_t errlen);

/* Appends len bytes (hashing as it goes). 0 / -1 + err (the writer stays valid: abort it). */
int blob_write(blob_writer *w, const void *data, size_t len, char *err, size_t errlen);

/* Bytes written so far. */
long long blob_size(const blob_writer *w);

/* Completes the blob: fsyncs, moves it to its content address (keeping the existing file when
 * that content is stored already) and frees w whatever the outcome. Writes the digest to
 * sha256[65] and the path relative to data_dir ("blobs/ab/ab12...") to relpath. 0 / -1 + err
 * (on failure the temporary file is removed). */
int blob_commit(blob_writer *w, char sha256[65], char *relpath, size_t relpathlen, char *err,
                size_t errlen);

/* Sets the mtime of the stored blob at path to now: done whenever content that is stored
 * already is stored again, before a row names it (the garbage collector keeps young blobs;
 * gc.h). 0, or -1 with errno (ENOENT: the blob is gone: store it again). */
int blob_touch(const char *path);

/* Removes the temporary file and frees w (for failed or abandoned uploads). NULL is a no-op. */
void blob_abort(blob_writer *w);

/* The absolute path of blob `sha256` under data_dir into out. 0, or -1 when the digest is not
 * 64 lowercase hex digits or out is too small. */
int blob_path(const char *data_dir, const char *sha256, char *out, size_t outlen);

/* Checks that the blob file at path still holds the content its name promises: the file's
 * last component is its sha256 (64 hex digits; other names are not checked and pass). 0, or -1
 * with err naming the blob by the start of its digest: missing from the data folder, or its
 * content changed on disk. */
int blob_verify(const char *path, char *err, size_t errlen);

#endif
