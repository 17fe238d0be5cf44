/* safetensors.h: read and write safetensors files, the weight format PyTorch users load.
 *
 * Layout: 8-byte little-endian header length N, N bytes of JSON
 *   {"<name>": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
 *    "__metadata__": {"<key>": "<string value>", ...}}
 * then the raw little-endian tensor bytes; offsets are relative to the end of the header.
 * mkdseg stores its whole model description in __metadata__ (see docs/architecture.md).
 *
 * The reader validates everything before trusting it (uploaded model files go through it):
 * header size against the file size and a bound, JSON shape, dtype names, shape products
 * against byte ranges, ranges inside the data area, no overflow. */
#ifndef MKD_SAFETENSORS_H
#define MKD_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#define ST_MAX_DIMS 8

typedef enum { ST_F32 = 0, ST_I64, ST_U8, ST_F64, ST_I32 } st_dtype;

typedef struct {
    const char *name; /* owned by the st_file */
    st_dtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    int64_t numel;
    const void *data; /* points into the st_file's buffer, 8-byte aligned */
    size_t nbytes;
} st_tensor;

typedef struct st_file st_file;

/* Size in bytes of one element of dtype. */
size_t st_dtype_size(st_dtype dt);
const char *st_dtype_name(st_dtype dt);

/* Reads and validates the file at `path` (at most max_bytes; 0 means 4 GiB).
 * On success *out owns all memory; free it with st_close. Returns 0, or -1 with err set. */
int st_open(const char *path, size_t max_bytes, st_file **out, char *err, size_t errlen);

/* Same, from a caller-owned buffer (copied). */
int st_parse(const void *buf, size_t len, st_file **out, char *err, size_t errlen);

void st_close(st_file *f);

/* Number of tensors, and the i-th in file order (NULL when out of range). */
int st_count(const st_file *f);
const st_tensor *st_at(const st_file *f, int i);

/* The tensor called name, or NULL. */
const st_tensor *st_get(const st_file *f, const char *name);

/* The __metadata__ string for key, or NULL. Owned by f. */
const char *st_meta(const st_file *f, const char *key);
int st_meta_count(const st_file *f);
/* i-th metadata key/value; returns 0, or -1 when out of range. */
int st_meta_at(const st_file *f, int i, const char **key, const char **value);

/* Writer: collect tensors (data borrowed until st_write returns) and metadata, then write
 * atomically (temporary file in the same folder, fsync, rename). */
typedef struct st_writer st_writer;
st_writer *st_writer_new(void);
/* Adds a tensor; name and shape are copied, data is borrowed. Names must be unique. */
int st_writer_add(st_writer *w, const char *name, st_dtype dt, int ndim, const int64_t *shape,
                  const void *data, char *err, size_t errlen);
/* Sets a metadata string (copied); a second call with the same key replaces the value. */
int st_writer_meta(st_writer *w, const char *key, const char *value);
int st_writer_write(st_writer *w, const char *path, char *err, size_t errlen);
void st_writer_free(st_writer *w);

#endif
