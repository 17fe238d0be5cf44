/* nifti_write.c: single-file NIfTI-1/-2 writing with the exact geometry of a vol_geom.
 *
 * The header struct comes from nifticlib (nifti_convert_nim2n1hdr / nim2n2hdr); the bytes are
 * written here through znzlib so that every write is checked (nifti_image_write reports
 * failures only on stderr), into a temporary file renamed over the target at the end. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nifti/nifti2_io.h>

#include "vol.h"
#include "mkd_err.h"

static int is_gz(const char *path)
{
    size_t n = strlen(path);
    return n >= 3 && strcasecmp(path + n - 3, ".gz") == 0;
}

/* The process's umask without changing it (umask(2) would race with other threads):
 * /proc/self/status's "Umask:" line (Linux 4.7+), else the common 022. */
static mode_t current_umask(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[128];
    unsigned m = 022;
    if (f) {
        while (fgets(line, sizeof line, f))
            if (sscanf(line, "Umask: %o", &m) == 1)
                break;
        fclose(f);
    }
    return (mode_t)(m & 0777);
}

int vol_write_raw(const char *path, const vol_geom *g, const void *data, int datatype, char *err,
                  size_t errlen)
{
    int sz = vol_datatype_size(datatype);
    char *tmp = NULL;
    znzFile fp = NULL;
    nifti_image *nim = NULL;
    int fd = -1;
    if (sz == 0) {
        mkd_seterr(err, errlen, "%s: cannot write datatype %d", path, datatype);
        return -1;
    }
    if (g->nx < 1 || g->ny < 1 || g->nz < 1) {
        mkd_seterr(err, errlen, "%s: empty grid", path);
        return -1;
    }
    int64_t dims[8] = {3, g->nx, g->ny, g->nz, 1, 1, 1, 1};
    nim = nifti_make_new_nim(dims, datatype, 0);
    if (!nim) {
        mkd_seterr(err, errlen, "%s: cannot create a NIfTI header", path);
        goto fail;
    }
    int v2 = g->nifti_version == 2;
    nim->nifti_type = v2 ? NIFTI_FTYPE_NIFTI2_1 : NIFTI_FTYPE_NIFTI1_1;
    for (int i = 1; i < 8; i++)
        nim->pixdim[i] = g->pixdim[i] != 0 ? g->pixdim[i] : 1.0;
    for (int i = 4; i < 8; i++)
        nim->pixdim[i] = g->pixdim[i];
    nim->dx = nim->pixdim[1];
    nim->dy = nim->pixdim[2];
    nim->dz = nim->pixdim[3];
    nim->dt = nim->pixdim[4];
    nim->qform_code = g->qform_code;
    nim->sform_code = g->sform_code;
    nim->quatern_b = g->quatern_b;
    nim->quatern_c = g->quatern_c;
    nim->quatern_d = g->quatern_d;
    nim->qoffset_x = g->qoffset_x;
    nim->qoffset_y = g->qoffset_y;
    nim->qoffset_z = g->qoffset_z;
    nim->qfac = g->qfac < 0 ? -1.0 : 1.0;
    nim->pixdim[0] = nim->qfac;
    for (int r = 0; r < 3; r++)
        for (int c = 0; c < 4; c++)
            nim->sto_xyz.m[r][c] = g->srow[r][c];
    nim->sto_xyz.m[3][0] = nim->sto_xyz.m[3][1] = nim->sto_xyz.m[3][2] = 0.0;
    nim->sto_xyz.m[3][3] = 1.0;
    nim->xyz_units = g->xyz_units;
    nim->time_units = g->time_units;
    nim->scl_slope = 1.0;
    nim->scl_inter = 0.0;
    nim->iname_offset = v2 ? 544 : 352; /* header + 4-byte extension flag, no extensions */

    unsigned char hdr[sizeof(nifti_2_header) + 4];
    size_t hlen;
    memset(hdr, 0, sizeof hdr);
    if (v2) {
        nifti_2_header h2;
        if (nifti_convert_nim2n2hdr(nim, &h2) != 0) {
            mkd_seterr(err, errlen, "%s: cannot build a NIfTI-2 header", path);
            goto fail;
        }
        memcpy(hdr, &h2, sizeof h2);
        hlen = sizeof h2;
    } else {
        nifti_1_header h1;
        if (nifti_convert_nim2n1hdr(nim, &h1) != 0) {
            mkd_seterr(err, errlen, "%s: cannot build a NIfTI-1 header", path);
            goto fail;
        }
        memcpy(hdr, &h1, sizeof h1);
        hlen = sizeof h1;
    }
    hlen += 4; /* extension flag: no extensions */
    if ((int64_t)hlen != nim->iname_offset) {
        mkd_seterr(err, errlen, "%s: internal: header length %zu != data offset %lld", path, hlen,
                   (long long)nim->iname_offset);
        goto fail;
    }

    size_t plen = strlen(path);
    tmp = malloc(plen + 16);
    if (!tmp) {
        mkd_seterr(err, errlen, "%s: out of memory", path);
        goto fail;
    }
    snprintf(tmp, plen + 16, "%s.tmpXXXXXX", path);
    fd = mkstemp(tmp);
    if (fd < 0) {
        mkd_seterr(err, errlen, "%s: cannot create a temporary file: %s", path, strerror(errno));
        free(tmp);
        tmp = NULL;
        goto fail;
    }
    /* mkstemp creates 0600; the result gets what open(O_CREAT, 0666) would give */
    if (fchmod(fd, 0666 & ~current_umask()) != 0) {
        mkd_seterr(err, errlen, "%s: cannot set the file mode: %s", path, strerror(errno));
        goto fail;
    }
    close(fd);
    fd = -1;
    fp = znzopen(tmp, is_gz(path) ? "wb6" : "wb", is_gz(path));
    if (znz_isnull(fp)) {
        mkd_seterr(err, errlen, "%s: cannot open for writing: %s", path, strerror(errno));
        goto fail;
    }
    size_t nbytes = (size_t)(g->nx * g->ny * g->nz) * (size_t)sz;
    if (znzwrite(hdr, 1, hlen, fp) != hlen) {
        mkd_seterr(err, errlen, "%s: write error (header)", path);
        goto fail;
    }
    const unsigned char *p = data;
    for (size_t off = 0; off < nbytes;) {
        size_t n = nbytes - off < ((size_t)1 << 24) ? nbytes - off : ((size_t)1 << 24);
        if (znzwrite(p + off, 1, n, fp) != n) {
            mkd_seterr(err, errlen, "%s: write error (data): %s", path, strerror(errno));
            goto fail;
        }
        off += n;
    }
    if (Xznzclose(&fp) != 0) {
        fp = NULL;
        mkd_seterr(err, errlen, "%s: write error on close: %s", path, strerror(errno));
        goto fail;
    }
    fp = NULL;
    if (rename(tmp, path) != 0) {
        mkd_seterr(err, errlen, "%s: cannot rename the temporary file: %s", path, strerror(errno));
        goto fail;
    }
    free(tmp);
    nifti_image_free(nim);
    return 0;
fail:
    if (fd >= 0)
        close(fd);
    if (fp)
        znzclose(fp);
    if (tmp) {
        unlink(tmp);
        free(tmp);
    }
    if (nim)
        nifti_image_free(nim);
    return -1;
}

int vol_write(const char *path, const vol_geom *g, const float *data, int datatype, char *err,
              size_t errlen)
{
    int sz = vol_datatype_size(datatype);
    if (sz == 0) {
        mkd_seterr(err, errlen, "%s: cannot write datatype %d", path, datatype);
        return -1;
    }
    int64_t n = g->nx * g->ny * g->nz;
    void *buf = malloc((size_t)n * (size_t)sz);
    if (!buf) {
        mkd_seterr(err, errlen, "%s: out of memory", path);
        return -1;
    }
#define CONVI(T, LO, HI)                                                                           \
    do {                                                                                           \
        T *q = buf;                                                                                \
        for (int64_t i = 0; i < n; i++) {                                                          \
            double x = nearbyint((double)data[i]);                                                 \
            q[i] = (T)(x < (double)(LO) ? (LO) : x > (double)(HI) ? (HI) : x);                     \
        }                                                                                          \
    } while (0)
    for (int64_t i = 0; i < n; i++)
        if (isnan(data[i])) {
            free(buf);
            mkd_seterr(err, errlen, "%s: NaN in the data to write (voxel %lld)", path,
                       (long long)i);
            return -1;
        }
    switch (datatype) {
    case VOL_DT_UINT8:
        CONVI(uint8_t, 0, UINT8_MAX);
        break;
    case VOL_DT_INT8:
        CONVI(int8_t, INT8_MIN, INT8_MAX);
        break;
    case VOL_DT_INT16:
        CONVI(int16_t, INT16_MIN, INT16_MAX);
        break;
    case VOL_DT_UINT16:
        CONVI(uint16_t, 0, UINT16_MAX);
        break;
    case VOL_DT_INT32:
        CONVI(int32_t, INT32_MIN, INT32_MAX);
        break;
    case VOL_DT_UINT32:
        CONVI(uint32_t, 0, UINT32_MAX);
        break;
    /* float32 data fits 64-bit integers up to 2^63 - 2^39; clamp below the limits */
    case VOL_DT_INT64:
        CONVI(int64_t, -9.2e18, 9.2e18);
        break;
    case VOL_DT_UINT64:
        CONVI(uint64_t, 0, 1.8e19);
        break;
    case VOL_DT_FLOAT32:
        memcpy(buf, data, (size_t)n * sizeof(float));
        break;
    case VOL_DT_FLOAT64: {
        double *q = buf;
        for (int64_t i = 0; i < n; i++)
            q[i] = data[i];
        break;
    }
    }
#undef CONVI
    int rc = vol_write_raw(path, g, buf, datatype, err, errlen);
    free(buf);
    return rc;
}
