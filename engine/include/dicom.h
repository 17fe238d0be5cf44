/* dicom.h: DICOM series in (a zip of one series, a folder of files, or one enhanced multi-frame
 * file) and DICOM Segmentation objects out (engine/io/dicom_*.cpp, through DCMTK; zip archives
 * through libarchive).
 *
 * Reading gives the same vol_t as the NIfTI reader: float32 data [nz][ny][nx] with
 * RescaleSlope/RescaleIntercept applied, i = column, j = row, k = slice in the order of
 * ImagePositionPatient projected on the slice normal (row cosine x column cosine), and an
 * affine in RAS+ millimetres (DICOM's LPS with x and y negated). Slice spacing comes from the
 * positions, never from SliceThickness. Everything the reader refuses has a code (below) and a
 * message naming what was wrong; callers map the code to an HTTP status.
 *
 * Conventions as in vol.h: 0 on success, -1 with a message in err[errlen]. */
#ifndef MKDSEG_DICOM_H
#define MKDSEG_DICOM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" { /* vol.h is a C header without its own guard */
#endif

#include "vol.h"

/* Why a series was refused (dicom_code_name gives the API's error code string). */
typedef enum {
    DICOM_OK = 0,
    DICOM_E_NOT_DICOM,      /* no DICOM file in the input at all */
    DICOM_E_ARCHIVE,        /* a zip that cannot be read (corrupt, truncated, not a zip) */
    DICOM_E_ZIP_UNSAFE,     /* path traversal, too many entries, zip bomb (size or ratio) */
    DICOM_E_CORRUPT,        /* a file that does not parse as DICOM (truncated, malformed) */
    DICOM_E_SEVERAL_SERIES, /* more than one SeriesInstanceUID (the message lists them) */
    DICOM_E_NO_PIXELS,      /* an image without PixelData */
    DICOM_E_COMPRESSION,    /* a transfer syntax this build cannot decode */
    DICOM_E_UNSUPPORTED,    /* colour, 32-bit pixels, differing rows/columns/orientation ... */
    DICOM_E_GEOMETRY,       /* missing or degenerate ImagePositionPatient / Orientation / spacing */
    DICOM_E_ONE_SLICE,      /* a single slice: no slice spacing */
    DICOM_E_DUPLICATE,      /* two slices at one position (echoes, phases, repeats) */
    DICOM_E_SPACING,        /* slice spacing not uniform within the tolerance */
    DICOM_E_TILT,           /* slices not stacked along their normal (gantry tilt, shear) */
    DICOM_E_TOO_LARGE,      /* more voxels than the limit */
    DICOM_E_INTERNAL        /* out of memory, library failure */
} dicom_code;

const char *dicom_code_name(dicom_code c);

/* Tolerances of the geometry checks. */
#define DICOM_SPACING_REL_TOL 0.01 /* each step within 1% of the mean slice step */
#define DICOM_TILT_TOL 1e-3        /* in-plane drift per mm along the normal (0.057 degrees) */

/* Limits on archives (a zip bomb or 10^5 empty entries are refused, not unpacked). */
#define DICOM_ZIP_MAX_ENTRIES 20000
#define DICOM_ZIP_MAX_RATIO 200.0 /* unpacked / packed bytes, checked past 64 MiB unpacked */

/* What was read besides the volume: enough for `mkdseg info` and for a SEG that references the
 * source. Slices are in volume order (k). */
typedef struct {
    char sop_instance_uid[65];
    char sop_class_uid[65];
    int frame;     /* 1-based frame number in a multi-frame file, else 0 */
    double ipp[3]; /* ImagePositionPatient (LPS mm) */
    int instance_number;
} dicom_slice;

typedef struct {
    char study_uid[65], series_uid[65], frame_of_reference_uid[65];
    char modality[17], sop_class_uid[65], transfer_syntax[65];
    char patient_id[65], series_description[65];
    int rows, cols, nslices;
    int multiframe; /* 1 when the slices are frames of one enhanced file */
    int bits_allocated, bits_stored, pixel_signed;
    double iop[6];           /* ImageOrientationPatient: row cosine, column cosine (LPS) */
    double pixel_spacing[2]; /* row spacing (between rows), column spacing */
    double slice_step;       /* mean distance between slices along the normal (mm) */
    double max_step_dev;     /* largest |step - mean| (mm) */
    double slope, intercept; /* of the first slice (each slice's own is applied) */
    int nfiles;              /* DICOM files read */
    char slice_order[160];   /* how the files were ordered, for `mkdseg info` */
    dicom_slice *slices;     /* [nslices], malloc'ed */
} dicom_meta;

void dicom_meta_free(dicom_meta *m);

/* 1 when the file at path looks like DICOM input (a zip archive, a DICOM Part 10 file, or a
 * folder), 0 when it does not, -1 when it cannot be read. */
int dicom_sniff(const char *path);

/* Reads the series at path (a .zip archive, one DICOM file, or a folder of files and its
 * subfolders) into v and, when meta is not NULL, its
 * metadata (free with dicom_meta_free). with_pixels = 0 checks everything but decodes no
 * pixel data (v->data stays NULL). *code gets the reason of a refusal (may be NULL). */
int dicom_read(const char *path, const vol_read_opts *opts, int with_pixels, vol_t *v,
               dicom_meta *meta, dicom_code *code, char *err, size_t errlen);

/* dicom_read from a zip archive or one DICOM file held in memory (buf, len). */
int dicom_read_buffer(const void *buf, size_t len, const vol_read_opts *opts, int with_pixels,
                      vol_t *v, dicom_meta *meta, dicom_code *code, char *err, size_t errlen);

/* Reads a volume from NIfTI or DICOM input, whichever the file is (dicom_sniff). */
int vol_read_any(const char *path, const vol_read_opts *opts, vol_t *v, char *err, size_t errlen);

/* ---- Segmentation objects ------------------------------------------------------------- */

/* Writes a DICOM Segmentation (binary, one segment per structure present among classes
 * 1..VOL_NCLASSES-1, one frame per source slice and segment) for the class map cls
 * [nz][ny][nx] computed on the series at src_path (read again here for its UIDs). The SEG
 * joins the source's patient, study and frame of reference, references every source
 * instance, and names each segment with its structure, a colour and SNOMED CT codes.
 * uids (may be NULL) gets the new SOPInstanceUID and SeriesInstanceUID [2][65]. */
int dicom_seg_write(const char *src_path, const uint8_t *cls, const char *out_path,
                    char uids[2][65], char *err, size_t errlen);

/* The SNOMED CT code and meaning of class c (1..7) for the segments' property type. */
void dicom_class_code(int c, const char **code, const char **meaning);

#ifdef __cplusplus
}
#endif

#endif
