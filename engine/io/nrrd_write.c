/* nrrd_write.c: label maps (and any scalar volume) as NRRD files for ITK-based readers such as
 * 3D Slicer (vol_write_nrrd, see vol.h).
 *
 * The header is NRRD0004 text; the data follows a blank line as one gzip stream written with
 * zlib's deflate (a gzip wrapper, windowBits 16 + 15). NRRD's world space is named, not
 * implied: we write left-posterior-superior, the space ITK and Slicer work in, so every
 * direction and the origin are the NIfTI affine's (RAS) with x and y negated. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>

#include "vol.h"
#include "mkd_err.h"

#define NRRD_CHUNK (1 << 18)

int vol_path_is_nrrd(const char *path)
{
    size_t n = strlen(path);
    return n >= 5 && strcasecmp(path + n - 5, ".nrrd") == 0;
}

/* NRRD's name and the byte size of a NIfTI datatype code; NULL for types NRRD lacks. */
static const char *nrrd_type(int dt, int *size)
{
    *size = vol_datatype_size(dt);
    if (!*size)
        return NULL;
    /* NRRD spells the unsigned and signed integers as NIfTI's names do, floats otherwise */
    return dt == VOL_DT_FLOAT32 ? "float" : dt == VOL_DT_FLOAT64 ? "double" : vol_datatype_name(dt);
}

static int host_little_endian(void)
{
    const uint16_t one = 1;
    unsigned char b;
    memcpy(&b, &one, 1);
    return b == 1;
}

/* The header: sizes, the LPS geometry from the affine in use, gzip encoding. */
static int write_header(FILE *f, const vol_geom *g, const char *type, int size)
{
    const double(*A)[4] = (const double(*)[4])g->affine;
    static const double lps[3] = {-1.0, -1.0, 1.0}; /* RAS -> LPS */
    fprintf(f, "NRRD0004\n# written by mkdseg: a label map in the input image's world space\n");
    fprintf(f, "type: %s\ndimension: 3\nspace: left-posterior-superior\n", type);
    fprintf(f, "sizes: %lld %lld %lld\nspace directions:", (long long)g->nx, (long long)g->ny,
            (long long)g->nz);
    for (int c = 0; c < 3; c++)
        fprintf(f, " (%.17g,%.17g,%.17g)", lps[0] * A[0][c] + 0.0, lps[1] * A[1][c] + 0.0,
                lps[2] * A[2][c] + 0.0);
    fprintf(f, "\nkinds: domain domain domain\n");
    if (size > 1)
        fprintf(f, "endian: %s\n", host_little_endian() ? "little" : "big");
    fprintf(f, "encoding: gzip\nspace origin: (%.17g,%.17g,%.17g)\n\n", lps[0] * A[0][3] + 0.0,
            lps[1] * A[1][3] + 0.0, lps[2] * A[2][3] + 0.0);
    return ferror(f) ? -1 : 0;
}

/* Deflates len bytes of data into f as one gzip stream. 0 / -1. */
static int write_gzip(FILE *f, const unsigned char *data, size_t len)
{
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (deflateInit2(&zs, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return -1;
    unsigned char *out = malloc(NRRD_CHUNK);
    int rc = out ? 0 : -1;
    size_t off = 0;
    int flush = Z_NO_FLUSH;
    while (rc == 0 && flush != Z_FINISH) {
        size_t take = len - off < NRRD_CHUNK ? len - off : NRRD_CHUNK;
        zs.next_in = (unsigned char *)data + off;
        zs.avail_in = (uInt)take;
        off += take;
        flush = off == len ? Z_FINISH : Z_NO_FLUSH;
        do {
            zs.next_out = out;
            zs.avail_out = NRRD_CHUNK;
            int z = deflate(&zs, flush);
            if (z == Z_STREAM_ERROR) {
                rc = -1;
                break;
            }
            size_t have = NRRD_CHUNK - zs.avail_out;
            if (have && fwrite(out, 1, have, f) != have)
                rc = -1;
        } while (rc == 0 && zs.avail_out == 0);
    }
    deflateEnd(&zs);
    free(out);
    return rc;
}

int vol_write_nrrd(const char *path, const vol_geom *g, const void *data, int datatype, char *err,
                   size_t errlen)
{
    int size;
    const char *type = nrrd_type(datatype, &size);
    if (!type) {
        mkd_seterr(err, errlen, "%s: cannot write datatype %d as NRRD", path, datatype);
        return -1;
    }
    if (g->nx < 1 || g->ny < 1 || g->nz < 1) {
        mkd_seterr(err, errlen, "%s: empty grid", path);
        return -1;
    }
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 16);
    FILE *f = NULL;
    if (!tmp) {
        mkd_seterr(err, errlen, "%s: out of memory", path);
        return -1;
    }
    snprintf(tmp, plen + 16, "%s.tmpXXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        mkd_seterr(err, errlen, "%s: cannot create a temporary file: %s", path, strerror(errno));
        free(tmp);
        return -1;
    }
    fchmod(fd, 0644);
    if (!(f = fdopen(fd, "wb"))) {
        close(fd);
        mkd_seterr(err, errlen, "%s: cannot open the temporary file: %s", path, strerror(errno));
        goto fail;
    }
    size_t bytes = (size_t)(g->nx * g->ny * g->nz) * (size_t)size;
    if (write_header(f, g, type, size) < 0 || write_gzip(f, data, bytes) < 0) {
        mkd_seterr(err, errlen, "%s: cannot write: %s", path,
                   errno ? strerror(errno) : "zlib error");
        goto fail;
    }
    int rc = fclose(f);
    f = NULL;
    if (rc != 0) {
        mkd_seterr(err, errlen, "%s: cannot write: %s", path, strerror(errno));
        goto fail;
    }
    if (rename(tmp, path) != 0) {
        mkd_seterr(err, errlen, "%s: cannot rename the temporary file: %s", path, strerror(errno));
        goto fail;
    }
    free(tmp);
    return 0;
fail:
    if (f)
        fclose(f);
    unlink(tmp);
    free(tmp);
    return -1;
}
