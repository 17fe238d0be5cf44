/* nifti_read.c: validated NIfTI-1/-2 reading into a float32 volume (vol_read_header, vol_read).
 *
 * The header is read and checked with nifticlib (nifti_image_read(path, 0): no data). The data
 * is then streamed by this file through znzlib in chunks, so that a truncated or corrupt stream
 * is an error we report (nifticlib's own loader reports through stderr only, and znzread
 * returns (size_t)-1 on a zlib error), byte order, type conversion, scaling and the NaN check
 * happen per chunk, and peak memory is the float volume plus one chunk.
 *
 * Compressed data is first inflated whole with libdeflate (about twice zlib's speed): the file
 * and its inflated bytes in memory, then the same per-chunk conversion. libdeflate says only
 * whether a stream is good, so anything it refuses (corrupt, truncated, several gzip members,
 * more than 4 GiB inflated) is read again through zlib's stream, which says where and how it
 * fails. MKDSEG_INFLATE=zlib reads through zlib only. */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* libznz is built with zlib: say so, so that struct znzptr has its gzFile member here too (the
 * end-of-stream check below reads zlib's error state) */
#define HAVE_ZLIB 1
#include <zlib.h>
#include <libdeflate.h>
#include <nifti/nifti2_io.h>

#include "vol.h"
#include "mkd_env.h"
#include "mkd_err.h"

#define CHUNK_VOXELS (1 << 18)
#define VOX_OFFSET_MAX (64 << 20) /* bytes of header extensions we accept */

static pthread_once_t quiet_once = PTHREAD_ONCE_INIT;
static void quiet_nifticlib(void) { nifti_set_debug_level(0); }

const char *vol_datatype_name(int dt)
{
    switch (dt) {
    case VOL_DT_UINT8:
        return "uint8";
    case VOL_DT_INT8:
        return "int8";
    case VOL_DT_INT16:
        return "int16";
    case VOL_DT_UINT16:
        return "uint16";
    case VOL_DT_INT32:
        return "int32";
    case VOL_DT_UINT32:
        return "uint32";
    case VOL_DT_INT64:
        return "int64";
    case VOL_DT_UINT64:
        return "uint64";
    case VOL_DT_FLOAT32:
        return "float32";
    case VOL_DT_FLOAT64:
        return "float64";
    default:
        return "unknown";
    }
}

int vol_datatype_size(int dt)
{
    switch (dt) {
    case VOL_DT_UINT8:
    case VOL_DT_INT8:
        return 1;
    case VOL_DT_INT16:
    case VOL_DT_UINT16:
        return 2;
    case VOL_DT_INT32:
    case VOL_DT_UINT32:
    case VOL_DT_FLOAT32:
        return 4;
    case VOL_DT_INT64:
    case VOL_DT_UINT64:
    case VOL_DT_FLOAT64:
        return 8;
    default:
        return 0;
    }
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcasecmp(s + n - m, suffix) == 0;
}

static int dt_supported(int dt) { return vol_datatype_size(dt) != 0; }

static uint64_t rd(const unsigned char *b, int n, int swap)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v |= (uint64_t)b[swap ? n - 1 - i : i] << (8 * i);
    return v;
}

static float rd_f32(const unsigned char *b, int swap)
{
    uint32_t u = (uint32_t)rd(b, 4, swap);
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* A single-file .nii must say so in its magic ("n+1" / "n+2"): nifticlib would read a header
 * with any other magic as ANALYZE 7.5 and take the data after it at a guessed offset. The
 * header of a pair ("ni1" / "ni2", or ANALYZE 7.5 without magic) is read only under a .hdr
 * name, next to its .img. 1 (refused, err set) or 0. */
static int magic_refused(const char *path, const unsigned char *magic, uint32_t sh, char *err,
                         size_t errlen)
{
    if (!ends_with(path, ".nii") && !ends_with(path, ".nii.gz"))
        return 0;
    const char *single = sh == 348 ? "n+1" : "n+2", *pair = sh == 348 ? "ni1" : "ni2";
    if (!memcmp(magic, single, 4))
        return 0;
    if (!memcmp(magic, pair, 4))
        mkd_seterr(err, errlen,
                   "%s: magic '%s' is the header of a .hdr/.img pair, not a single .nii file", path,
                   pair);
    else
        mkd_seterr(
            err, errlen,
            "%s: not a NIfTI file: its magic is neither '%s' nor '%s' (an ANALYZE 7.5 header "
            "is read only as a .hdr/.img pair)",
            path, single, pair);
    return 1;
}

/* Reads the raw header bytes and checks, before nifticlib sees the file, what nifticlib would
 * otherwise silently repair or refuse without a reason: sizeof_hdr (348 NIfTI-1/ANALYZE, 540
 * NIfTI-2, either byte order), dim[0..7] and the datatype. */
static int preparse(const char *path, int *version, char *err, size_t errlen)
{
    znzFile fp = znzopen(path, "rb", nifti_is_gzfile(path));
    if (znz_isnull(fp)) {
        mkd_seterr(err, errlen, "%s: cannot open: %s", path, strerror(errno ? errno : ENOENT));
        return -1;
    }
    unsigned char b[540];
    size_t got = znzread(b, 1, sizeof b, fp);
    znzclose(fp);
    if (got > sizeof b || got < 4) {
        mkd_seterr(err, errlen,
                   "%s: not a NIfTI file: shorter than a header (or a broken gzip stream)", path);
        return -1;
    }
    int swap;
    uint32_t sh = (uint32_t)rd(b, 4, 0);
    if (sh == 348 || sh == 540)
        swap = 0;
    else if ((uint32_t)rd(b, 4, 1) == 348 || (uint32_t)rd(b, 4, 1) == 540)
        swap = 1, sh = (uint32_t)rd(b, 4, 1);
    else {
        mkd_seterr(
            err, errlen,
            "%s: not a NIfTI file: header size field is neither 348 (NIfTI-1) nor 540 (NIfTI-2)",
            path);
        return -1;
    }
    *version = sh == 540 ? 2 : 1;
    if (got < sh) {
        mkd_seterr(err, errlen, "%s: file ends inside the %u-byte header", path, sh);
        return -1;
    }
    int64_t dim[8];
    int dt;
    for (int i = 0; i < 8; i++)
        dim[i] =
            sh == 348 ? (int16_t)rd(b + 40 + 2 * i, 2, swap) : (int64_t)rd(b + 16 + 8 * i, 8, swap);
    dt = sh == 348 ? (int16_t)rd(b + 70, 2, swap) : (int16_t)rd(b + 12, 2, swap);
    if (dim[0] < 1 || dim[0] > 7) {
        mkd_seterr(err, errlen, "%s: invalid number of dimensions dim[0]=%lld (must be 1..7)", path,
                   (long long)dim[0]);
        return -1;
    }
    for (int d = 1; d <= dim[0]; d++)
        if (dim[d] < 1) {
            mkd_seterr(err, errlen, "%s: invalid dimension dim[%d]=%lld (must be >= 1)", path, d,
                       (long long)dim[d]);
            return -1;
        }
    /* nifticlib reads the extensions between the header and vox_offset before anything else:
     * bound that area so a lying header cannot make it allocate and read gigabytes. */
    const unsigned char *magic = sh == 348 ? b + 344 : b + 4;
    if (magic_refused(path, magic, sh, err, errlen))
        return -1;
    if (magic[0] == 'n' && magic[1] == '+') {
        double off =
            sh == 348 ? (double)rd_f32(b + 108, swap) : (double)(int64_t)rd(b + 168, 8, swap);
        if (!(off >= 0 && off <= VOX_OFFSET_MAX)) {
            mkd_seterr(
                err, errlen,
                "%s: data offset vox_offset=%g is negative or beyond %d MiB of header extensions",
                path, off, VOX_OFFSET_MAX >> 20);
            return -1;
        }
    }
    if (!dt_supported(dt)) {
        const char *name = nifti_datatype_string(dt);
        mkd_seterr(err, errlen,
                   "%s: unsupported datatype %d (%s): only real scalar types uint8 .. float64 are "
                   "accepted",
                   path, dt, name && name[0] != '*' ? name : "unknown code");
        return -1;
    }
    return 0;
}

static void geom_from_nim(const nifti_image *nim, vol_geom *g)
{
    memset(g, 0, sizeof *g);
    g->nifti_version = nim->nifti_type >= NIFTI_FTYPE_NIFTI2_1 ? 2 : 1;
    g->nx = nim->nx;
    g->ny = nim->ndim >= 2 ? nim->ny : 1;
    g->nz = nim->ndim >= 3 ? nim->nz : 1;
    for (int i = 0; i < 8; i++)
        g->pixdim[i] = nim->pixdim[i];
    g->qform_code = nim->qform_code;
    g->sform_code = nim->sform_code;
    g->quatern_b = nim->quatern_b;
    g->quatern_c = nim->quatern_c;
    g->quatern_d = nim->quatern_d;
    g->qoffset_x = nim->qoffset_x;
    g->qoffset_y = nim->qoffset_y;
    g->qoffset_z = nim->qoffset_z;
    g->qfac = nim->qfac;
    if (nim->sform_code > 0)
        for (int r = 0; r < 3; r++)
            for (int c = 0; c < 4; c++)
                g->srow[r][c] = nim->sto_xyz.m[r][c];
    g->xyz_units = nim->xyz_units;
    g->time_units = nim->time_units;
    vol_geom_update(g);
}

/* Validates an opened header; fills g and h. */
static int check_header(const char *path, nifti_image *nim, int version, int64_t max_voxels,
                        const vol_read_opts *opts, vol_geom *g, vol_header *h, char *err,
                        size_t errlen)
{
    /* nifticlib 3.0 reports single-file NIfTI-2 as NIFTI_FTYPE_NIFTI1_1: trust sizeof_hdr */
    if (version == 2 && nim->nifti_type == NIFTI_FTYPE_NIFTI1_1)
        nim->nifti_type = NIFTI_FTYPE_NIFTI2_1;
    else if (version == 2 && nim->nifti_type == NIFTI_FTYPE_NIFTI1_2)
        nim->nifti_type = NIFTI_FTYPE_NIFTI2_2;
    if (nim->nifti_type == NIFTI_FTYPE_ASCII) {
        mkd_seterr(err, errlen, "%s: ASCII NIfTI headers are not supported", path);
        return -1;
    }
    if (nim->dim[0] < 1 || nim->dim[0] > 7) {
        mkd_seterr(err, errlen, "%s: invalid number of dimensions dim[0]=%lld (must be 1..7)", path,
                   (long long)nim->dim[0]);
        return -1;
    }
    /* the voxel limit bounds what is read: one 3-D volume when one is chosen (the whole file
     * then only has to stay far from overflowing the byte count; its size is checked below) */
    int pick = opts && opts->has_volume;
    int64_t nvox = 1, nvol = 1, file_cap = pick ? INT64_C(1) << 40 : max_voxels;
    for (int d = 1; d <= nim->dim[0]; d++) {
        int64_t n = nim->dim[d], cap = d <= 3 ? max_voxels : file_cap;
        if (n < 1) {
            mkd_seterr(err, errlen, "%s: invalid dimension dim[%d]=%lld (must be >= 1)", path, d,
                       (long long)n);
            return -1;
        }
        if (n > cap || nvox > cap / n) {
            mkd_seterr(err, errlen,
                       "%s: header claims more than %lld voxels (dims %lld x %lld x %lld ...): "
                       "above the voxel limit",
                       path, (long long)cap, (long long)nim->dim[1],
                       (long long)(nim->dim[0] >= 2 ? nim->dim[2] : 1),
                       (long long)(nim->dim[0] >= 3 ? nim->dim[3] : 1));
            return -1;
        }
        nvox *= n;
        if (d >= 4)
            nvol *= n;
    }
    if (nvol > 1 && !pick) {
        mkd_seterr(err, errlen,
                   "%s: a 4-D image with %lld volumes (dims %lld x %lld x %lld x %lld): only "
                   "single-volume 3-D images are accepted unless one volume (0..%lld) is chosen",
                   path, (long long)nvol, (long long)nim->dim[1], (long long)nim->dim[2],
                   (long long)nim->dim[3], (long long)nvol, (long long)nvol - 1);
        return -1;
    }
    if (pick && (opts->volume < 0 || opts->volume >= nvol)) {
        mkd_seterr(err, errlen,
                   "%s: volume %lld does not exist: the image has %lld volume%s (0..%lld)", path,
                   (long long)opts->volume, (long long)nvol, nvol > 1 ? "s" : "",
                   (long long)nvol - 1);
        return -1;
    }
    int sz = vol_datatype_size(nim->datatype);
    if (sz == 0) {
        const char *name = nifti_datatype_string(nim->datatype);
        mkd_seterr(err, errlen,
                   "%s: unsupported datatype %d (%s): only real scalar types uint8 .. float64 are "
                   "accepted",
                   path, nim->datatype, name ? name : "unknown");
        return -1;
    }
    if (nim->nbyper != sz) {
        mkd_seterr(err, errlen, "%s: datatype %d has %d bytes per voxel, header says %d", path,
                   nim->datatype, sz, nim->nbyper);
        return -1;
    }
    for (int d = 1; d <= 3; d++)
        if (!isfinite(nim->pixdim[d])) {
            mkd_seterr(err, errlen, "%s: voxel size pixdim[%d] is not finite", path, d);
            return -1;
        }
    if (nim->iname == NULL || nim->iname_offset < 0) {
        mkd_seterr(err, errlen, "%s: invalid data offset %lld", path, (long long)nim->iname_offset);
        return -1;
    }
    int64_t bytes = nvox * sz;
    struct stat st;
    if (stat(nim->iname, &st) != 0) {
        mkd_seterr(err, errlen, "%s: image data file %s: %s", path, nim->iname, strerror(errno));
        return -1;
    }
    int gz = nifti_is_gzfile(nim->iname);
    if (!gz) {
        if ((int64_t)st.st_size < nim->iname_offset ||
            (int64_t)st.st_size - nim->iname_offset < bytes) {
            mkd_seterr(err, errlen,
                       "%s: file is truncated: the header implies %lld bytes of data at offset "
                       "%lld, the file has %lld bytes",
                       path, (long long)bytes, (long long)nim->iname_offset, (long long)st.st_size);
            return -1;
        }
    } else if ((int64_t)st.st_size < INT64_MAX / 1100 &&
               bytes > (int64_t)st.st_size * 1032 + 65536) {
        /* deflate cannot compress better than about 1032:1 */
        mkd_seterr(err, errlen,
                   "%s: compressed file of %lld bytes cannot hold the %lld bytes of data its "
                   "header claims: truncated or corrupt",
                   path, (long long)st.st_size, (long long)bytes);
        return -1;
    }

    if (g) {
        geom_from_nim(nim, g);
        const double(*A)[4] = (const double(*)[4])g->affine;
        for (int r = 0; r < 3; r++)
            for (int c = 0; c < 4; c++)
                if (!isfinite(A[r][c])) {
                    mkd_seterr(err, errlen, "%s: the %s affine is not finite", path,
                               vol_affine_src_name(g->affine_src));
                    return -1;
                }
    }
    if (h) {
        memset(h, 0, sizeof *h);
        h->datatype = nim->datatype;
        h->nifti_type = nim->nifti_type;
        h->compressed = gz;
        h->byteswapped = sz > 1 && nim->byteorder != nifti_short_order();
        h->ndim = (int)nim->dim[0];
        for (int d = 0; d < 8; d++)
            h->dim[d] = nim->dim[d];
        h->scl_slope = nim->scl_slope;
        h->scl_inter = nim->scl_inter;
        h->data_offset = nim->iname_offset;
    }
    return 0;
}

static int name_ok(const char *path)
{
    static const char *const ext[] = {".nii", ".nii.gz", ".hdr", ".hdr.gz", ".img", ".img.gz"};
    for (size_t i = 0; i < sizeof ext / sizeof ext[0]; i++)
        if (ends_with(path, ext[i]))
            return 1;
    return 0;
}

static nifti_image *open_header(const char *path, int *version, char *err, size_t errlen)
{
    pthread_once(&quiet_once, quiet_nifticlib);
    if (!name_ok(path)) {
        mkd_seterr(err, errlen, "%s: file name must end in .nii, .nii.gz, .hdr or .img", path);
        return NULL;
    }
    const char *hdrpath = path;
    char *alloc = NULL;
    if (ends_with(path, ".img") || ends_with(path, ".img.gz")) {
        alloc = nifti_findhdrname(path);
        if (!alloc) {
            mkd_seterr(err, errlen, "%s: no matching .hdr file", path);
            return NULL;
        }
        hdrpath = alloc;
    }
    nifti_image *nim = NULL;
    if (preparse(hdrpath, version, err, errlen) == 0) {
        nim = nifti_image_read(hdrpath, 0);
        if (!nim)
            mkd_seterr(err, errlen, "%s: not a readable NIfTI header (nifticlib refused it)", path);
    }
    free(alloc);
    return nim;
}

int vol_read_header(const char *path, const vol_read_opts *opts, vol_geom *g, vol_header *h,
                    char *err, size_t errlen)
{
    int64_t maxv = opts && opts->max_voxels > 0 ? opts->max_voxels : VOL_DEFAULT_MAX_VOXELS;
    int version = 1;
    nifti_image *nim = open_header(path, &version, err, errlen);
    if (!nim)
        return -1;
    int rc = check_header(path, nim, version, maxv, opts, g, h, err, errlen);
    nifti_image_free(nim);
    return rc;
}

/* Converts n raw elements of datatype dt (native byte order) to float with scaling. Returns
 * the index of the first non-finite result, or -1. */
static int64_t convert(const void *raw, int dt, int64_t n, int scale, double slope, double inter,
                       float *out)
{
#define CONV(T)                                                                                    \
    do {                                                                                           \
        const T *p = (const T *)raw;                                                               \
        for (int64_t i = 0; i < n; i++) {                                                          \
            double v = (double)p[i];                                                               \
            if (scale)                                                                             \
                v = v * slope + inter;                                                             \
            out[i] = (float)v;                                                                     \
        }                                                                                          \
    } while (0)
    switch (dt) {
    case VOL_DT_UINT8:
        CONV(uint8_t);
        break;
    case VOL_DT_INT8:
        CONV(int8_t);
        break;
    case VOL_DT_INT16:
        CONV(int16_t);
        break;
    case VOL_DT_UINT16:
        CONV(uint16_t);
        break;
    case VOL_DT_INT32:
        CONV(int32_t);
        break;
    case VOL_DT_UINT32:
        CONV(uint32_t);
        break;
    case VOL_DT_INT64:
        CONV(int64_t);
        break;
    case VOL_DT_UINT64:
        CONV(uint64_t);
        break;
    case VOL_DT_FLOAT32:
        CONV(float);
        break;
    case VOL_DT_FLOAT64:
        CONV(double);
        break;
    default:
        return 0;
    }
#undef CONV
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(out[i]))
            return i;
    return -1;
}

/* What the per-chunk conversion needs to know of a volume being read. */
typedef struct {
    const char *path;
    vol_t *v;
    int dt, sz, scale;
    double slope, inter;
} read_ctx;

/* n voxels of raw data (file order and byte order) -> v->data + done: byte swap, conversion,
 * scaling and the NaN / infinity check */
static int convert_chunk(const read_ctx *rc, unsigned char *raw, int64_t done, int64_t n, char *err,
                         size_t errlen)
{
    vol_t *v = rc->v;
    if (v->hdr.byteswapped)
        nifti_swap_Nbytes(n, rc->sz, raw);
    int64_t bad = convert(raw, rc->dt, n, rc->scale, rc->slope, rc->inter, v->data + done);
    if (bad < 0)
        return 0;
    int64_t idx = done + bad;
    int64_t i = idx % v->geom.nx, j = (idx / v->geom.nx) % v->geom.ny,
            k = idx / (v->geom.nx * v->geom.ny);
    mkd_seterr(err, errlen,
               "%s: %s value at voxel (%lld,%lld,%lld)%s: NaN and infinite intensities are "
               "refused",
               rc->path, isnan(v->data[idx]) ? "NaN" : "infinite", (long long)i, (long long)j,
               (long long)k, rc->scale ? " after scl_slope/scl_inter" : "");
    return -1;
}

/* The whole gzip file at file inflated with libdeflate into *out (malloc'd, *outlen bytes);
 * -1 (nothing to report: the caller reads through zlib) unless it is one good gzip member of
 * at least need bytes. */
static int inflate_whole(const char *file, size_t need, unsigned char **out, size_t *outlen)
{
    unsigned char *in = NULL, *dst = NULL;
    struct libdeflate_decompressor *d = NULL;
    int rc = -1;
    FILE *f = fopen(file, "rb");
    struct stat st;
    if (!f || fstat(fileno(f), &st) != 0 || st.st_size < 18)
        goto done;
    /* memory for the file and all it inflates to: only where that is not much more than the
     * data wanted (one volume of a long 4-D file: zlib's stream) */
    size_t inlen = (size_t)st.st_size;
    if (inlen > 2 * need + (1u << 20) || !(in = malloc(inlen)) || fread(in, 1, inlen, f) != inlen)
        goto done;
    /* ISIZE, the last 4 bytes: the inflated size modulo 2^32 (of the last member); DEFLATE
     * inflates at most 1032-fold, so a larger claim is not believed */
    const unsigned char *t = in + inlen - 4;
    size_t cap = (size_t)t[0] | (size_t)t[1] << 8 | (size_t)t[2] << 16 | (size_t)t[3] << 24;
    size_t got = 0, used = 0;
    if (cap < need || cap > 1032 * inlen || cap > 2 * need + (64u << 20) ||
        !(dst = malloc(cap ? cap : 1)) || !(d = libdeflate_alloc_decompressor()))
        goto done;
    if (libdeflate_gzip_decompress_ex(d, in, inlen, dst, cap, &used, &got) != LIBDEFLATE_SUCCESS ||
        used != inlen || got < need)
        goto done;
    *out = dst;
    *outlen = got;
    dst = NULL;
    rc = 0;
done:
    if (f)
        fclose(f);
    free(in);
    free(dst);
    libdeflate_free_decompressor(d);
    return rc;
}

/* The data of a compressed file through libdeflate: 1 read, 0 not (the caller reads it through
 * zlib), -1 error (a value refused by the conversion) */
static int read_deflate(const read_ctx *rc, const nifti_image *nim, int64_t off, int64_t nvox,
                        char *err, size_t errlen)
{
    unsigned char *all = NULL;
    size_t len = 0;
    const size_t need = (size_t)off + (size_t)nvox * (size_t)rc->sz;
    if (strcmp(mkd_env_str(MKD_ENV_INFLATE), "zlib") == 0 ||
        inflate_whole(nim->iname, need, &all, &len) != 0)
        return 0;
    int r = 1;
    for (int64_t done = 0; done < nvox && r == 1; done += CHUNK_VOXELS) {
        int64_t n = nvox - done < CHUNK_VOXELS ? nvox - done : CHUNK_VOXELS;
        if (convert_chunk(rc, all + off + done * rc->sz, done, n, err, errlen))
            r = -1;
    }
    free(all);
    return r;
}

/* After the data of a gzip stream: read to its end, so that zlib checks its CRC and length. */
static int gz_check_end(const char *path, znzFile fp, char *err, size_t errlen)
{
    unsigned char extra[64];
    size_t got;
    while ((got = znzread(extra, 1, sizeof extra, fp)) == sizeof extra)
        ;
    if (got > sizeof extra) {
        mkd_seterr(err, errlen,
                   "%s: corrupt compressed data (gzip check failed after the image data)", path);
        return -1;
    }
    /* a stream cut inside its last block or its CRC trailer ends without an error from
     * gzread: zlib only records "unexpected end of file" */
    int zerr = Z_OK;
    if (fp->withz && fp->zfptr)
        gzerror(fp->zfptr, &zerr);
    if (zerr != Z_OK && zerr != Z_STREAM_END) {
        mkd_seterr(err, errlen, "%s: truncated gzip stream: it ends before its end-of-stream check",
                   path);
        return -1;
    }
    return 0;
}

/* The data through znzlib (plain files, and compressed ones libdeflate did not take), chunk by
 * chunk into rc->v->data. */
static int read_stream(const read_ctx *rc, const nifti_image *nim, int64_t skip, int64_t nvox,
                       char *err, size_t errlen)
{
    const char *path = rc->path;
    int rcode = -1;
    unsigned char *raw = malloc((size_t)CHUNK_VOXELS * (size_t)rc->sz);
    znzFile fp = raw ? znzopen(nim->iname, "rb", rc->v->hdr.compressed) : NULL;
    if (!raw) {
        mkd_seterr(err, errlen, "%s: out of memory", path);
        goto done;
    }
    if (znz_isnull(fp)) {
        mkd_seterr(err, errlen, "%s: cannot open image data %s: %s", path, nim->iname,
                   strerror(errno));
        goto done;
    }
    if (znzseek(fp, (znz_off_t)(nim->iname_offset + skip), SEEK_SET) < 0) {
        mkd_seterr(err, errlen,
                   "%s: cannot seek to the data at offset %lld (stream ends early or is corrupt)",
                   path, (long long)nim->iname_offset);
        goto done;
    }
    for (int64_t done = 0; done < nvox;) {
        int64_t n = nvox - done < CHUNK_VOXELS ? nvox - done : CHUNK_VOXELS;
        size_t want = (size_t)n * (size_t)rc->sz;
        size_t got = znzread(raw, 1, want, fp);
        if (got != want) {
            /* znzread returns (size_t)-1 on a zlib error, fewer bytes at end of stream */
            if (got > want)
                mkd_seterr(err, errlen, "%s: corrupt compressed data after %lld of %lld voxels",
                           path, (long long)done, (long long)nvox);
            else
                mkd_seterr(err, errlen,
                           "%s: data ends early: %lld of %lld voxels present (truncated file or "
                           "gzip stream)",
                           path, (long long)(done + (int64_t)(got / (size_t)rc->sz)),
                           (long long)nvox);
            goto done;
        }
        if (convert_chunk(rc, raw, done, n, err, errlen))
            goto done;
        done += n;
    }
    if (rc->v->hdr.compressed && gz_check_end(path, fp, err, errlen))
        goto done;
    rcode = 0;
done:
    if (!znz_isnull(fp))
        znzclose(fp);
    free(raw);
    return rcode;
}

int vol_read(const char *path, const vol_read_opts *opts, vol_t *v, char *err, size_t errlen)
{
    memset(v, 0, sizeof *v);
    int64_t maxv = opts && opts->max_voxels > 0 ? opts->max_voxels : VOL_DEFAULT_MAX_VOXELS;
    int version = 1;
    nifti_image *nim = open_header(path, &version, err, errlen);
    if (!nim)
        return -1;
    if (check_header(path, nim, version, maxv, opts, &v->geom, &v->hdr, err, errlen) != 0)
        goto fail;

    read_ctx rc = {path,
                   v,
                   v->hdr.datatype,
                   vol_datatype_size(v->hdr.datatype),
                   0,
                   v->hdr.scl_slope,
                   v->hdr.scl_inter};
    int64_t nvox = v->geom.nx * v->geom.ny * v->geom.nz;
    rc.scale = rc.slope != 0.0 && isfinite(rc.slope);
    if (!isfinite(rc.inter))
        rc.inter = 0.0;
    if (rc.scale && rc.slope == 1.0 && rc.inter == 0.0)
        rc.scale = 0;

    v->data = malloc((size_t)nvox * sizeof(float));
    if (!v->data) {
        mkd_seterr(err, errlen, "%s: out of memory for %lld voxels", path, (long long)nvox);
        goto fail;
    }
    /* the chosen volume of a 4-D file: volumes follow each other, x fastest within each */
    int64_t skip = opts && opts->has_volume ? opts->volume * nvox * rc.sz : 0;
    int got = v->hdr.compressed
                  ? read_deflate(&rc, nim, (int64_t)nim->iname_offset + skip, nvox, err, errlen)
                  : 0;
    if (got < 0 || (got == 0 && read_stream(&rc, nim, skip, nvox, err, errlen) != 0))
        goto fail;
    nifti_image_free(nim);
    float lo = v->data[0], hi = v->data[0];
    for (int64_t i = 1; i < nvox; i++) {
        float x = v->data[i];
        lo = x < lo ? x : lo;
        hi = x > hi ? x : hi;
    }
    v->vmin = lo;
    v->vmax = hi;
    return 0;
fail:
    nifti_image_free(nim);
    free(v->data);
    memset(v, 0, sizeof *v);
    return -1;
}

void vol_free(vol_t *v)
{
    if (!v)
        return;
    free(v->data);
    v->data = NULL;
}
