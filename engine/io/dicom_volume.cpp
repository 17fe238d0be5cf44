/* dicom_volume.cpp: the C entry points of dicom.h: a checked series (dicom_read.cpp) into a
 * float32 vol_t with each slice's rescale applied, its metadata, and input sniffing. */
#include "dicom_series.hpp"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <sys/stat.h>

using namespace mkd_dicom;

extern "C" const char *dicom_code_name(dicom_code c)
{
    switch (c) {
    case DICOM_OK: return "ok";
    case DICOM_E_NOT_DICOM: return "not_dicom";
    case DICOM_E_ARCHIVE: return "invalid_archive";
    case DICOM_E_ZIP_UNSAFE: return "unsafe_archive";
    case DICOM_E_CORRUPT: return "invalid_dicom";
    case DICOM_E_SEVERAL_SERIES: return "several_series";
    case DICOM_E_NO_PIXELS: return "no_pixel_data";
    case DICOM_E_COMPRESSION: return "unsupported_transfer_syntax";
    case DICOM_E_UNSUPPORTED: return "unsupported_dicom";
    case DICOM_E_GEOMETRY: return "invalid_geometry";
    case DICOM_E_ONE_SLICE: return "one_slice";
    case DICOM_E_DUPLICATE: return "duplicate_slices";
    case DICOM_E_SPACING: return "nonuniform_spacing";
    case DICOM_E_TILT: return "gantry_tilt";
    case DICOM_E_TOO_LARGE: return "too_large";
    default: return "internal";
    }
}

extern "C" void dicom_meta_free(dicom_meta *m)
{
    if (m) {
        free(m->slices);
        m->slices = NULL;
    }
}

/* The stored value of pixel p as a signed integer (BitsStored bits, two's complement when
 * PixelRepresentation is 1). */
static inline double pixel_value(unsigned raw, int bits, int is_signed)
{
    unsigned mask = bits >= 32 ? ~0u : ((1u << bits) - 1u);
    raw &= mask;
    if (is_signed && (raw >> (bits - 1)) & 1u)
        return (double)raw - (double)(1ull << bits);
    return (double)raw;
}

/* Decodes one file's pixel data (all frames) to little-endian native samples. */
static int file_pixels(File &f, const Uint8 **p8, const Uint16 **p16, size_t *count, dicom_code *code, char *err,
                       size_t errlen)
{
    DcmDataset *ds = f.ff->getDataset();
    if (DcmXfer(f.xfer).isEncapsulated()) {
        OFCondition c = ds->chooseRepresentation(EXS_LittleEndianExplicit, NULL);
        if (c.bad() || !ds->canWriteXfer(EXS_LittleEndianExplicit)) {
            *code = DICOM_E_COMPRESSION;
            snprintf(err, errlen, "'%s': the %s pixel data cannot be decoded (%s)", f.name.c_str(),
                     DcmXfer(f.xfer).getXferName(), c.bad() ? c.text() : "no codec");
            return -1;
        }
    }
    unsigned long n = 0;
    *p8 = NULL, *p16 = NULL;
    if (f.bits_alloc == 16 && ds->findAndGetUint16Array(DCM_PixelData, *p16, &n).good()) {
        *count = n;
    } else if (f.bits_alloc == 8 && ds->findAndGetUint8Array(DCM_PixelData, *p8, &n).good()) {
        *count = n;
    } else if (f.bits_alloc == 8 && ds->findAndGetUint16Array(DCM_PixelData, *p16, &n).good()) {
        *p8 = reinterpret_cast<const Uint8 *>(*p16); /* 8-bit samples stored as OW */
        *p16 = NULL;
        *count = n * 2;
    } else {
        *code = DICOM_E_NO_PIXELS;
        snprintf(err, errlen, "'%s': PixelData cannot be read", f.name.c_str());
        return -1;
    }
    size_t need = (size_t)f.rows * (size_t)f.cols * (size_t)f.frames;
    if (*count < need) {
        *code = DICOM_E_CORRUPT;
        snprintf(err, errlen, "'%s': PixelData holds %zu samples, %d x %d x %d frames need %zu (truncated?)",
                 f.name.c_str(), *count, f.cols, f.rows, f.frames, need);
        return -1;
    }
    return 0;
}

static int fill_pixels(Series &s, float *out, dicom_code *code, char *err, size_t errlen)
{
    std::vector<const Uint8 *> p8(s.files.size(), NULL);
    std::vector<const Uint16 *> p16(s.files.size(), NULL);
    std::vector<char> done(s.files.size(), 0);
    size_t plane = (size_t)s.files[0].rows * (size_t)s.files[0].cols;
    for (size_t k = 0; k < s.frames.size(); k++) {
        const Frame &fr = s.frames[k];
        File &f = s.files[fr.file];
        if (!done[fr.file]) {
            size_t cnt;
            if (file_pixels(f, &p8[fr.file], &p16[fr.file], &cnt, code, err, errlen) < 0)
                return -1;
            done[fr.file] = 1;
        }
        float *dst = out + k * plane;
        size_t off = (size_t)fr.frame * plane;
        int signd = f.pixel_rep == 1;
        for (size_t i = 0; i < plane; i++) {
            unsigned raw = p16[fr.file] ? p16[fr.file][off + i] : p8[fr.file][off + i];
            double v = pixel_value(raw, f.bits_stored, signd) * fr.slope + fr.inter;
            dst[i] = (float)v;
            if (!std::isfinite(dst[i])) {
                *code = DICOM_E_CORRUPT;
                snprintf(err, errlen, "'%s': a rescaled value is not finite", f.name.c_str());
                return -1;
            }
        }
    }
    return 0;
}

static void copy_uid(char *dst, size_t n, const std::string &s) { snprintf(dst, n, "%s", s.c_str()); }

static void describe_order(const Series &s, dicom_meta *m)
{
    int up = 1, down = 1;
    for (size_t k = 1; k < s.frames.size(); k++) {
        up &= s.frames[k].instance > s.frames[k - 1].instance;
        down &= s.frames[k].instance < s.frames[k - 1].instance;
    }
    snprintf(m->slice_order, sizeof m->slice_order,
             "by ImagePositionPatient along the normal (%.4f, %.4f, %.4f) LPS; InstanceNumber %s",
             s.normal[0], s.normal[1], s.normal[2],
             m->multiframe ? "n/a (frames)" : up ? "ascends with it" : down ? "descends with it" : "does not follow it (ignored)");
}

static int fill_meta(const Series &s, dicom_meta *m)
{
    memset(m, 0, sizeof *m);
    const File &f = s.files[0];
    copy_uid(m->study_uid, sizeof m->study_uid, f.study_uid);
    copy_uid(m->series_uid, sizeof m->series_uid, f.series_uid);
    copy_uid(m->frame_of_reference_uid, sizeof m->frame_of_reference_uid, f.for_uid);
    copy_uid(m->modality, sizeof m->modality, f.modality);
    copy_uid(m->sop_class_uid, sizeof m->sop_class_uid, f.sop_class);
    copy_uid(m->transfer_syntax, sizeof m->transfer_syntax, DcmXfer(f.xfer).getXferID());
    OFString v;
    DcmDataset *ds = f.ff->getDataset();
    if (ds->findAndGetOFString(DCM_PatientID, v).good())
        snprintf(m->patient_id, sizeof m->patient_id, "%s", v.c_str());
    if (ds->findAndGetOFString(DCM_SeriesDescription, v).good())
        snprintf(m->series_description, sizeof m->series_description, "%s", v.c_str());
    m->rows = f.rows, m->cols = f.cols, m->nslices = (int)s.frames.size();
    m->multiframe = f.enhanced || f.frames > 1;
    m->bits_allocated = f.bits_alloc, m->bits_stored = f.bits_stored, m->pixel_signed = f.pixel_rep == 1;
    memcpy(m->iop, s.frames[0].iop, sizeof m->iop);
    memcpy(m->pixel_spacing, s.frames[0].ps, sizeof m->pixel_spacing);
    m->slice_step = s.mean_step, m->max_step_dev = s.max_dev;
    m->slope = s.frames[0].slope, m->intercept = s.frames[0].inter;
    m->nfiles = (int)s.files.size();
    m->slices = (dicom_slice *)calloc(s.frames.size(), sizeof *m->slices);
    if (!m->slices)
        return -1;
    for (size_t k = 0; k < s.frames.size(); k++) {
        const Frame &fr = s.frames[k];
        const File &ff = s.files[fr.file];
        copy_uid(m->slices[k].sop_instance_uid, 65, ff.sop_uid);
        copy_uid(m->slices[k].sop_class_uid, 65, ff.sop_class);
        m->slices[k].frame = ff.frames > 1 || ff.enhanced ? fr.frame + 1 : 0;
        memcpy(m->slices[k].ipp, fr.ipp, sizeof fr.ipp);
        m->slices[k].instance_number = fr.instance;
    }
    describe_order(s, m);
    return 0;
}

/* The volume of a checked series. */
static int series_to_vol(Series &s, int with_pixels, vol_t *v, dicom_meta *meta, dicom_code *code, char *err,
                         size_t errlen)
{
    double A[4][4];
    series_affine(s, A);
    const File &f = s.files[0];
    if (vol_geom_init(&v->geom, f.cols, f.rows, (int64_t)s.frames.size(), A, err, errlen) < 0) {
        *code = DICOM_E_GEOMETRY;
        return -1;
    }
    v->hdr.datatype = f.bits_alloc == 8 ? (f.pixel_rep ? VOL_DT_INT8 : VOL_DT_UINT8)
                                        : (f.pixel_rep ? VOL_DT_INT16 : VOL_DT_UINT16);
    v->hdr.nifti_type = -1;
    v->hdr.ndim = 3;
    v->hdr.dim[0] = 3, v->hdr.dim[1] = f.cols, v->hdr.dim[2] = f.rows, v->hdr.dim[3] = (int64_t)s.frames.size();
    v->hdr.scl_slope = s.frames[0].slope, v->hdr.scl_inter = s.frames[0].inter;
    if (meta && fill_meta(s, meta) < 0) {
        *code = DICOM_E_INTERNAL;
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (!with_pixels)
        return 0;
    size_t n = (size_t)f.rows * (size_t)f.cols * s.frames.size();
    if (!(v->data = (float *)malloc(n * sizeof(float)))) {
        *code = DICOM_E_INTERNAL;
        snprintf(err, errlen, "out of memory for %zu voxels", n);
        return -1;
    }
    if (fill_pixels(s, v->data, code, err, errlen) < 0)
        return -1;
    v->vmin = v->vmax = v->data[0];
    for (size_t i = 1; i < n; i++) {
        v->vmin = v->data[i] < v->vmin ? v->data[i] : v->vmin;
        v->vmax = v->data[i] > v->vmax ? v->data[i] : v->vmax;
    }
    return 0;
}

static int finish(int rc, vol_t *v, dicom_meta *meta, dicom_code c, dicom_code *code)
{
    if (code)
        *code = rc < 0 ? c : DICOM_OK;
    if (rc < 0) {
        free(v->data);
        memset(v, 0, sizeof *v);
        if (meta)
            dicom_meta_free(meta);
    }
    return rc;
}

extern "C" int dicom_read(const char *path, const vol_read_opts *opts, int with_pixels, vol_t *v, dicom_meta *meta,
                          dicom_code *code, char *err, size_t errlen)
{
    memset(v, 0, sizeof *v);
    if (meta)
        memset(meta, 0, sizeof *meta);
    dicom_code c = DICOM_E_INTERNAL;
    int rc;
    try {
        Series s;
        rc = load_series(path, opts, s, &c, err, errlen);
        if (rc == 0)
            rc = series_to_vol(s, with_pixels, v, meta, &c, err, errlen);
    } catch (const std::exception &e) {
        snprintf(err, errlen, "DICOM reading failed: %s", e.what());
        c = DICOM_E_INTERNAL, rc = -1;
    }
    return finish(rc, v, meta, c, code);
}

extern "C" int dicom_read_buffer(const void *buf, size_t len, const vol_read_opts *opts, int with_pixels, vol_t *v,
                                 dicom_meta *meta, dicom_code *code, char *err, size_t errlen)
{
    memset(v, 0, sizeof *v);
    if (meta)
        memset(meta, 0, sizeof *meta);
    dicom_code c = DICOM_E_INTERNAL;
    int rc;
    try {
        dcm_entries x;
        memset(&x, 0, sizeof x);
        if (dcm_is_zip((const unsigned char *)buf, len)) {
            rc = dcm_collect_mem(buf, len, (size_t)1 << 30, &x, &c, err, errlen);
        } else {
            x.e = (dcm_entry *)calloc(1, sizeof *x.e);
            rc = x.e && (x.e[0].data = (unsigned char *)malloc(len ? len : 1)) ? 0 : -1;
            if (rc == 0) {
                memcpy(x.e[0].data, buf, len);
                x.e[0].size = len, x.n = x.cap = 1;
                snprintf(x.e[0].name, sizeof x.e[0].name, "input");
            }
        }
        Series s;
        if (rc == 0)
            rc = load_entries(x, opts, s, &c, err, errlen);
        dcm_entries_free(&x);
        if (rc == 0)
            rc = series_to_vol(s, with_pixels, v, meta, &c, err, errlen);
    } catch (const std::exception &e) {
        snprintf(err, errlen, "DICOM reading failed: %s", e.what());
        c = DICOM_E_INTERNAL, rc = -1;
    }
    return finish(rc, v, meta, c, code);
}

extern "C" int dicom_sniff(const char *path)
{
    struct stat st;
    if (stat(path, &st) < 0)
        return -1;
    if (S_ISDIR(st.st_mode))
        return 1;
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    unsigned char b[132];
    size_t n = fread(b, 1, sizeof b, f);
    fclose(f);
    return dcm_is_zip(b, n) || (n == 132 && !memcmp(b + 128, "DICM", 4));
}

extern "C" int vol_read_any(const char *path, const vol_read_opts *opts, vol_t *v, char *err, size_t errlen)
{
    if (dicom_sniff(path) == 1)
        return dicom_read(path, opts, 1, v, NULL, NULL, err, errlen);
    return vol_read(path, opts, v, err, errlen);
}
