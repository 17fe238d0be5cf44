/* vol.h: volumes in and out of the engine (engine/io).
 *
 * NIfTI-1/-2 reading and writing through nifticlib, the geometry of a volume (the affine in
 * use, orientation codes, the slicing axis), and the MM-WHS label tables.
 *
 * Array layout everywhere: a volume of nx*ny*nz voxels is stored x fastest, i.e. element
 * (i,j,k) is at data[(k*ny + j)*nx + i], exactly the NIfTI on-disk order.
 *
 * Conventions: functions return 0 on success and -1 on failure with a specific message in
 * err[errlen] (err may be NULL). Nothing here keeps global state except nifticlib's debug
 * level, which is set once to 0 (this module writes its own messages). */
#ifndef MKDSEG_VOL_H
#define MKDSEG_VOL_H

#include <stddef.h>
#include <stdint.h>

/* Default voxel limit for vol_read: 2^28 voxels (1 GiB as float32). A 512x512x300 CT has
 * 78.6M voxels. */
#define VOL_DEFAULT_MAX_VOXELS (INT64_C(1) << 28)

/* NIfTI datatype codes this module reads and writes (values of nifti1.h's DT_*). */
enum {
    VOL_DT_UINT8 = 2,
    VOL_DT_INT16 = 4,
    VOL_DT_INT32 = 8,
    VOL_DT_FLOAT32 = 16,
    VOL_DT_FLOAT64 = 64,
    VOL_DT_INT8 = 256,
    VOL_DT_UINT16 = 512,
    VOL_DT_UINT32 = 768,
    VOL_DT_INT64 = 1024,
    VOL_DT_UINT64 = 1280
};

typedef enum {
    VOL_AFFINE_SFORM = 0, /* sform_code > 0 */
    VOL_AFFINE_QFORM = 1, /* else qform_code > 0 */
    VOL_AFFINE_PIXDIM = 2 /* else diag(pixdim[1..3]), zero offset (NIfTI "method 1") */
} vol_affine_src;

/* Geometry of a 3-D volume: the header fields that place it in patient space, kept exactly as
 * read so that a label map written with them has the input's geometry bit for bit, plus the
 * derived affine in use. World coordinates are NIfTI's RAS+ (x to the patient's right... i.e.
 * +x = R, +y = A, +z = S), millimetres when xyz_units says so. */
typedef struct {
    int nifti_version;          /* 1 or 2 (ANALYZE input is written back as NIfTI-1) */
    int64_t nx, ny, nz;         /* array dimensions (nz = 1 for a 2-D image) */
    double pixdim[8];           /* as in the header; pixdim[1..3] = voxel size along i,j,k */
    int qform_code, sform_code; /* NIFTI_XFORM_* codes */
    double quatern_b, quatern_c, quatern_d;
    double qoffset_x, qoffset_y, qoffset_z, qfac;
    double srow[3][4];         /* sform rows (srow_x, srow_y, srow_z) */
    int xyz_units, time_units; /* NIFTI_UNITS_* codes */
    /* derived by vol_geom_update() */
    double affine[4][4]; /* voxel (i,j,k,1) -> world (x,y,z,1): the affine in use */
    vol_affine_src affine_src;
} vol_geom;

/* What the header said, for `mkdseg info` and for callers that want the original type. */
typedef struct {
    int datatype;                /* NIfTI datatype code on disk */
    int nifti_type;              /* nifticlib's NIFTI_FTYPE_* (0 ANALYZE, 1 NIfTI-1, 4 NIfTI-2..) */
    int compressed;              /* image data is gzip-compressed */
    int byteswapped;             /* on-disk byte order differs from this CPU's */
    int ndim;                    /* dim[0] */
    int64_t dim[8];              /* dim[1..7] as in the header */
    double scl_slope, scl_inter; /* as in the header (slope 0 or non-finite: no scaling) */
    int64_t data_offset;         /* byte offset of the data in the image file */
} vol_header;

/* A float32 volume: geometry + data [nz][ny][nx]. Owns data (free with vol_free). */
typedef struct {
    vol_geom geom;
    vol_header hdr;
    float *data;      /* [nz][ny][nx], scl_slope/scl_inter applied */
    float vmin, vmax; /* intensity range of data */
} vol_t;

typedef struct {
    int64_t max_voxels; /* refuse headers claiming more voxels (0: the default); with
                                 * has_volume, more in the chosen 3-D volume */
    int has_volume;     /* 1: read the 3-D volume `volume` of a 4-D (or higher) file */
    int64_t volume;     /* with has_volume: its index, 0-based, over dims 4..7 in file
                                 * order (a 3-D file has volume 0 only) */
} vol_read_opts;

/* Reads the header of path (.nii, .nii.gz, .hdr/.img[.gz]) and validates it without reading
 * the data: magic/sizes, dimensions (a 4-D image with more than one volume is refused unless
 * opts->has_volume picks one; an index beyond the last volume is an error),
 * datatype (every real scalar type, uint8 .. float64), voxel count against opts->max_voxels,
 * the data size implied by the header against the real file size (uncompressed files),
 * finite pixdim and affines. opts may be NULL. Fills g and h (either may be NULL). */
int vol_read_header(const char *path, const vol_read_opts *opts, vol_geom *g, vol_header *h,
                    char *err, size_t errlen);

/* Reads path into v (everything vol_read_header checks, then the data): converts every scalar
 * type to float32 with scl_slope/scl_inter applied, streaming the file in chunks (peak memory:
 * the float volume plus one chunk; a compressed file is inflated whole with libdeflate first,
 * so the file and its inflated bytes too, unless MKDSEG_INFLATE=zlib). A truncated or corrupt
 * stream, NaN or infinite values are errors. On success the caller owns v->data (vol_free); on
 * failure v is zeroed. */
int vol_read(const char *path, const vol_read_opts *opts, vol_t *v, char *err, size_t errlen);

void vol_free(vol_t *v);

/* Writes a single-file NIfTI (gzip-compressed when path ends in .gz) with geometry g (dims,
 * pixdim, qform and sform with their codes, units copied exactly; NIfTI-2 when
 * g->nifti_version == 2) and data [nz][ny][nx] converted to datatype (integers: rounded to
 * nearest and clamped to the type's range; NaN is an error). Writes to a temporary file in the
 * same folder and renames it, so a failed write leaves no partial file at path. */
int vol_write(const char *path, const vol_geom *g, const float *data, int datatype, char *err,
              size_t errlen);

/* Same, from data already in the on-disk type (raw [nz][ny][nx] elements of datatype). */
int vol_write_raw(const char *path, const vol_geom *g, const void *data, int datatype, char *err,
                  size_t errlen);

/* Writes raw [nz][ny][nx] elements of datatype as one NRRD file, header attached (nrrd_write.c):
 * NRRD0004, `space: left-posterior-superior`, `space directions` and `space origin` from the
 * affine in use converted from RAS to LPS (x and y negated), kinds domain, gzip encoding, the
 * CPU's byte order. World coordinates of every voxel equal the NIfTI's (as ITK and 3D Slicer
 * read both). Written to a temporary file and renamed, like vol_write. */
int vol_write_nrrd(const char *path, const vol_geom *g, const void *data, int datatype, char *err,
                   size_t errlen);

/* Whether path names an NRRD file (ends in .nrrd, any case): the label writers pick the format
 * by name. */
int vol_path_is_nrrd(const char *path);

/* ---- geometry ------------------------------------------------------------------------ */

/* Initialises g for an nx*ny*nz grid with the given voxel->world affine (RAS+ mm): pixdim from
 * the column norms, qform from the affine's rotation (code 1, scanner) and sform = affine
 * (code 1); NIfTI-1, units mm. Fails when the affine's 3x3 part is singular or not finite. */
int vol_geom_init(vol_geom *g, int64_t nx, int64_t ny, int64_t nz, const double affine[4][4],
                  char *err, size_t errlen);

/* Recomputes g->affine and g->affine_src from the header fields (call after editing them). */
void vol_geom_update(vol_geom *g);

/* Voxel size along array axes i,j,k in world units: the column norms of the affine in use. */
void vol_geom_spacing(const vol_geom *g, double sp[3]);

/* Orientation: for each array axis, the world axis it runs closest to (0=x,1=y,2=z; a
 * one-to-one assignment maximising the summed |cosines|, so oblique affines get distinct axes)
 * and its sign (+1 toward R/A/S). code[] gets the nibabel-style letters, e.g. "RAS", "LPS". */
void vol_geom_axes(const vol_geom *g, int world_axis[3], int sign[3]);
void vol_geom_orientation(const vol_geom *g, char code[4]);

/* The slicing axis: the array axis closest to the patient's superior-inferior axis (0,1,2). */
int vol_geom_slicing_axis(const vol_geom *g);

/* How a 2-D slice along the slicing axis maps to the array, in a canonical in-plane orientation
 * (the radiological transverse view): slice column index u runs toward the patient's left,
 * slice row index v runs toward posterior, whatever the array order. Slice s is array index s
 * along slice_axis. Pixel (v,u) of slice s is voxel with
 *   index[slice_axis] = s, index[u_axis] = u_flip ? w-1-u : u, index[v_axis] = v_flip ? h-1-v : v. */
typedef struct {
    int slice_axis, u_axis, v_axis;
    int u_flip, v_flip;
    int64_t w, h, nslices; /* slice width (u), height (v), number of slices */
    double du, dv, ds;     /* spacing along u, v and between slices */
} vol_slice_frame;

void vol_geom_slice_frame(const vol_geom *g, vol_slice_frame *f);

/* 0 when a and b have the same dims and affines in use within tol (mm per entry), else -1
 * with the difference in err (e.g. an image and its label file). */
int vol_geom_same(const vol_geom *a, const vol_geom *b, double tol, char *err, size_t errlen);

/* Name of a NIfTI datatype code ("int16", ...), "unknown" otherwise. */
const char *vol_datatype_name(int datatype);
/* Bytes per voxel of a NIfTI datatype code this module reads or writes; 0 for any other. */
int vol_datatype_size(int datatype);
const char *vol_affine_src_name(vol_affine_src s);

/* ---- label tables -------------------------------------------------------------------- */

#define VOL_NCLASSES 8 /* background + 7 structures */
/* MM-WHS codes of classes 1..7: MYO 205, LA 420, LV 500, RA 550, RV 600, AA 820, PA 850. */
extern const int vol_mmwhs_codes[VOL_NCLASSES];         /* [0] = 0 */
extern const char *const vol_class_names[VOL_NCLASSES]; /* "background", "MYO", ... */

typedef enum {
    VOL_LABELS_AUTO = 0,  /* reading: all values in 0..7 -> class indices, else MM-WHS codes */
    VOL_LABELS_MMWHS = 1, /* MM-WHS codes (written as int16) */
    VOL_LABELS_INDEX = 2  /* class indices 0..7 (written as uint8) */
} vol_label_mode;

/* Converts a label volume's values (as read, float) to class indices 0..7. Values must be
 * integers of the chosen table; anything else is an error that names the unknown values (up to
 * eight) and how many voxels have them. */
int vol_labels_to_classes(const float *values, int64_t n, vol_label_mode mode, uint8_t *cls,
                          char *err, size_t errlen);

/* Reads a label file and converts it to class indices (vol_labels_to_classes): *cls gets a
 * malloc'ed [nz][ny][nx] array the caller frees, g its geometry. */
int vol_read_labels(const char *path, const vol_read_opts *opts, vol_label_mode mode, vol_geom *g,
                    uint8_t **cls, char *err, size_t errlen);

/* Writes class indices [nz][ny][nx] as a label map with geometry g: uint8 class indices
 * (VOL_LABELS_INDEX) or int16 MM-WHS codes (VOL_LABELS_MMWHS); NRRD when path ends in .nrrd
 * (vol_write_nrrd), else NIfTI. */
int vol_write_labels(const char *path, const vol_geom *g, const uint8_t *cls, vol_label_mode mode,
                     char *err, size_t errlen);

#endif
