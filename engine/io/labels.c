/* labels.c: MM-WHS label codes <-> class indices, label map writing. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vol.h"

const int vol_mmwhs_codes[VOL_NCLASSES] = {0, 205, 420, 500, 550, 600, 820, 850};
const char *const vol_class_names[VOL_NCLASSES] = {"background", "MYO", "LA", "LV",
                                                   "RA",         "RV",  "AA", "PA"};

static int code_to_class(float v, vol_label_mode mode)
{
    if (v != floorf(v))
        return -1;
    int c = (int)v;
    if (v < -1e6f || v > 1e6f)
        return -1;
    if (mode == VOL_LABELS_INDEX)
        return c >= 0 && c < VOL_NCLASSES ? c : -1;
    for (int k = 0; k < VOL_NCLASSES; k++)
        if (vol_mmwhs_codes[k] == c)
            return k;
    return -1;
}

int vol_labels_to_classes(const float *values, int64_t n, vol_label_mode mode, uint8_t *cls,
                          char *err, size_t errlen)
{
    if (mode == VOL_LABELS_AUTO) {
        mode = VOL_LABELS_INDEX;
        for (int64_t i = 0; i < n; i++)
            if (values[i] > VOL_NCLASSES - 1) {
                mode = VOL_LABELS_MMWHS;
                break;
            }
    }
    float unknown[8];
    int64_t counts[8] = {0};
    int nunk = 0;
    int64_t nbad = 0;
    for (int64_t i = 0; i < n; i++) {
        int c = code_to_class(values[i], mode);
        if (c >= 0) {
            cls[i] = (uint8_t)c;
            continue;
        }
        cls[i] = 0;
        nbad++;
        int k;
        for (k = 0; k < nunk; k++)
            if (unknown[k] == values[i])
                break;
        if (k < nunk)
            counts[k]++;
        else if (nunk < 8) {
            unknown[nunk] = values[i];
            counts[nunk++] = 1;
        }
    }
    if (nbad == 0)
        return 0;
    if (err && errlen) {
        int off = snprintf(err, errlen, "unknown label value%s (%s table): ", nunk > 1 ? "s" : "",
                           mode == VOL_LABELS_INDEX ? "class index 0..7"
                                                    : "MM-WHS 0,205,420,500,550,600,820,850");
        for (int k = 0; k < nunk && off > 0 && (size_t)off < errlen; k++)
            off += snprintf(err + off, errlen - (size_t)off, "%s%g (%lld voxels)", k ? ", " : "",
                            (double)unknown[k], (long long)counts[k]);
        if (off > 0 && (size_t)off < errlen)
            snprintf(err + off, errlen - (size_t)off, "; %lld voxels in all", (long long)nbad);
    }
    return -1;
}

/* The label writers' format: NRRD by name, else NIfTI. */
static int write_raw(const char *path, const vol_geom *g, const void *data, int datatype, char *err,
                     size_t errlen)
{
    return vol_path_is_nrrd(path) ? vol_write_nrrd(path, g, data, datatype, err, errlen)
                                  : vol_write_raw(path, g, data, datatype, err, errlen);
}

int vol_write_labels(const char *path, const vol_geom *g, const uint8_t *cls, vol_label_mode mode,
                     char *err, size_t errlen)
{
    int64_t n = g->nx * g->ny * g->nz;
    for (int64_t i = 0; i < n; i++)
        if (cls[i] >= VOL_NCLASSES) {
            if (err && errlen)
                snprintf(err, errlen, "%s: class index %d at voxel %lld is out of range 0..7", path,
                         cls[i], (long long)i);
            return -1;
        }
    if (mode != VOL_LABELS_MMWHS)
        return write_raw(path, g, cls, VOL_DT_UINT8, err, errlen);
    int16_t *buf = malloc((size_t)n * sizeof *buf);
    if (!buf) {
        if (err && errlen)
            snprintf(err, errlen, "%s: out of memory", path);
        return -1;
    }
    for (int64_t i = 0; i < n; i++)
        buf[i] = (int16_t)vol_mmwhs_codes[cls[i]];
    int rc = write_raw(path, g, buf, VOL_DT_INT16, err, errlen);
    free(buf);
    return rc;
}

int vol_read_labels(const char *path, const vol_read_opts *opts, vol_label_mode mode, vol_geom *g,
                    uint8_t **cls, char *err, size_t errlen)
{
    vol_t v;
    *cls = NULL;
    if (vol_read(path, opts, &v, err, errlen) != 0)
        return -1;
    int64_t n = v.geom.nx * v.geom.ny * v.geom.nz;
    uint8_t *c = malloc((size_t)n);
    if (!c) {
        if (err && errlen)
            snprintf(err, errlen, "%s: out of memory", path);
        vol_free(&v);
        return -1;
    }
    char e2[400];
    if (vol_labels_to_classes(v.data, n, mode, c, e2, sizeof e2) != 0) {
        if (err && errlen)
            snprintf(err, errlen, "%s: %s", path, e2);
        free(c);
        vol_free(&v);
        return -1;
    }
    if (g)
        *g = v.geom;
    vol_free(&v);
    *cls = c;
    return 0;
}
