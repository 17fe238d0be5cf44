/* golden.h: reader for the PyTorch reference files under tests/golden/ (shared by the nn
 * op tests and the network golden tests; owned by the nn helper, used by both).
 *
 * File format (little-endian), written by tests/golden/gen_ops.py (function `write_golden`):
 *   magic   8 bytes "MKDGOLD1"
 *   count   u32                      number of entries
 *   entry   u16 name_len, name bytes (no NUL),
 *           u8 dtype (0 = float32, 1 = int32, 2 = float64), u8 ndim, i32 dims[ndim],
 *           data (prod(dims) elements of dtype, C order)
 * Entry names are free-form ("x", "w", "out", "grad_x", "loss", ...). */
#ifndef MKDSEG_TESTS_GOLDEN_H
#define MKDSEG_TESTS_GOLDEN_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    char name[128];
    int dtype; /* 0 float32, 1 int32, 2 float64 */
    int ndim;
    int dims[8];
    size_t numel;
    void *data; /* numel elements of dtype */
} golden_entry;

typedef struct {
    int count;
    golden_entry *e;
} golden_file;

/* Read a whole golden file. NULL (message in err) on a missing file or bad format.
 * Free with golden_free. */
golden_file *golden_load(const char *path, char *err, size_t errlen);
void golden_free(golden_file *g);
/* The entry called name, or NULL. */
const golden_entry *golden_get(const golden_file *g, const char *name);
/* Float32 data of entry name, NULL when absent or not float32. */
const float *golden_f32(const golden_file *g, const char *name);
/* Dims of entry padded to 4-D NCHW with leading 1s (n, c, h, w); -1 when absent or ndim>4. */
int golden_nchw(const golden_file *g, const char *name, int dims[4]);
/* Max |a-b| / max(max|b|, floor) over n elements: the "relative to the output scale" error
 * the tests compare with tolerances. */
double golden_rel_err(const float *a, const float *b, size_t n, double floor);

#endif
