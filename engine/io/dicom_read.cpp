/* dicom_read.cpp: a DICOM series into a vol_t through DCMTK (see dicom.h).
 *
 * Every file is parsed from memory (dicom_src.c collected them), grouped by SeriesInstanceUID,
 * and its slices (one per single-frame file, one per frame of an enhanced multi-frame file,
 * whose position, orientation, spacing and rescale come from the functional groups) are
 * ordered by ImagePositionPatient projected on the slice normal. The geometry checks run before
 * any pixel is decoded, so a refused series costs one parse. Pixel data in a compressed
 * transfer syntax is decoded by DCMTK's codecs (JPEG, JPEG-LS, RLE); anything else (JPEG 2000,
 * video) is refused by name. */
#include "dicom_series.hpp"

#include <algorithm>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>

#include "dcmtk/dcmdata/dccodec.h"
#include "dcmtk/dcmdata/dcistrmb.h"
#include "dcmtk/dcmdata/dcrledrg.h"
#include "dcmtk/dcmjpeg/djdecode.h"
#include "dcmtk/dcmjpls/djdecode.h"
#include "dcmtk/oflog/oflog.h"

namespace mkd_dicom {

static const char *const kDicomdirClass = "1.2.840.10008.1.3.10";

/* DCMTK's codecs and logger are process-wide: set them up once. */
static void dcmtk_init()
{
    static std::once_flag once;
    std::call_once(once, [] {
        OFLog::configure(OFLogger::FATAL_LOG_LEVEL);
        DcmRLEDecoderRegistration::registerCodecs();
        DJDecoderRegistration::registerCodecs();
        DJLSDecoderRegistration::registerCodecs();
    });
}

static std::string str(DcmItem *it, const DcmTagKey &t)
{
    OFString v;
    if (it && it->findAndGetOFString(t, v).good())
        return std::string(v.c_str());
    return std::string();
}

static int num(DcmItem *it, const DcmTagKey &t, int def)
{
    Uint16 v;
    if (it && it->findAndGetUint16(t, v).good())
        return v;
    OFString s;
    if (it && it->findAndGetOFString(t, s).good() && !s.empty())
        return atoi(s.c_str());
    return def;
}

/* n values of a DS/FD attribute; false when absent or short. */
static bool reals(DcmItem *it, const DcmTagKey &t, double *out, int n)
{
    if (!it)
        return false;
    for (int i = 0; i < n; i++) {
        Float64 v;
        if (it->findAndGetFloat64(t, v, (unsigned long)i).bad() || !std::isfinite(v))
            return false;
        out[i] = v;
    }
    return true;
}

/* An attribute of a functional group: the per-frame item's, else the shared one's. */
static bool fg_reals(DcmItem *perframe, DcmItem *shared, const DcmTagKey &seq, const DcmTagKey &t, double *out,
                     int n)
{
    DcmItem *g = NULL;
    if (perframe && perframe->findAndGetSequenceItem(seq, g, 0).good() && reals(g, t, out, n))
        return true;
    return shared && shared->findAndGetSequenceItem(seq, g, 0).good() && reals(g, t, out, n);
}

static std::unique_ptr<DcmFileFormat> parse(const unsigned char *d, size_t n, std::string &why)
{
    std::unique_ptr<DcmFileFormat> ff(new DcmFileFormat());
    DcmInputBufferStream is;
    is.setBuffer(d, (offile_off_t)n);
    is.setEos();
    ff->transferInit();
    OFCondition c = ff->read(is, EXS_Unknown, EGL_noChange, DCM_MaxReadLength);
    ff->transferEnd();
    if (c == EC_StreamNotifyClient) { /* the buffer ended inside an element */
        why = "the file ends inside an element";
        return nullptr;
    }
    if (c.bad()) {
        why = c.text();
        return nullptr;
    }
    return ff;
}

static bool is_part10(const dcm_entry &e)
{
    return e.size >= 132 && !memcmp(e.data + 128, "DICM", 4);
}

static void file_attrs(File &f)
{
    DcmDataset *ds = f.ff->getDataset();
    DcmMetaInfo *mi = f.ff->getMetaInfo();
    f.sop_uid = str(ds, DCM_SOPInstanceUID);
    f.sop_class = str(ds, DCM_SOPClassUID);
    if (f.sop_class.empty())
        f.sop_class = str(mi, DCM_MediaStorageSOPClassUID);
    f.series_uid = str(ds, DCM_SeriesInstanceUID);
    f.study_uid = str(ds, DCM_StudyInstanceUID);
    f.for_uid = str(ds, DCM_FrameOfReferenceUID);
    f.modality = str(ds, DCM_Modality);
    f.photometric = str(ds, DCM_PhotometricInterpretation);
    f.xfer = ds->getOriginalXfer();
    f.rows = num(ds, DCM_Rows, 0);
    f.cols = num(ds, DCM_Columns, 0);
    f.frames = std::max(1, num(ds, DCM_NumberOfFrames, 1));
    f.bits_alloc = num(ds, DCM_BitsAllocated, 0);
    f.bits_stored = num(ds, DCM_BitsStored, f.bits_alloc);
    f.pixel_rep = num(ds, DCM_PixelRepresentation, 0);
    f.spp = num(ds, DCM_SamplesPerPixel, 1);
    f.has_pixels = ds->tagExistsWithValue(DCM_PixelData);
    f.enhanced = ds->tagExists(DCM_PerFrameFunctionalGroupsSequence);
}

/* Parses every entry; DICOMDIR files and entries without the DICM magic are skipped. */
static int parse_all(dcm_entries &x, Series &s, dicom_code *code, char *err, size_t errlen)
{
    s.archive = x.is_archive;
    s.skipped = x.skipped;
    for (int i = 0; i < x.n; i++) {
        dcm_entry &e = x.e[i];
        if (!is_part10(e)) {
            s.skipped++;
        } else {
            std::string why;
            File f;
            f.name = e.name;
            f.ff = parse(e.data, e.size, why);
            if (!f.ff)
                return dcm_fail(code, DICOM_E_CORRUPT, err, errlen,
                            "'%s' is not a readable DICOM file (%s): truncated or malformed", e.name, why.c_str());
            file_attrs(f);
            if (f.sop_class == kDicomdirClass)
                s.skipped++;
            else
                s.files.push_back(std::move(f));
        }
        free(e.data);
        e.data = NULL;
    }
    if (s.files.empty())
        return dcm_fail(code, DICOM_E_NOT_DICOM, err, errlen,
                    "no DICOM file found (%d entr%s without the DICOM Part 10 'DICM' preamble)", s.skipped,
                    s.skipped == 1 ? "y" : "ies");
    return 0;
}

/* One series only: the message lists them (UID, modality, files). */
static int check_one_series(const Series &s, dicom_code *code, char *err, size_t errlen)
{
    std::map<std::string, std::pair<int, std::string>> by;
    for (const File &f : s.files) {
        auto &p = by[f.series_uid];
        p.first++;
        p.second = f.modality;
    }
    if (by.size() == 1 && !by.begin()->first.empty())
        return 0;
    if (by.size() == 1)
        return dcm_fail(code, DICOM_E_GEOMETRY, err, errlen, "the files have no SeriesInstanceUID");
    std::string list;
    int k = 0;
    for (auto &kv : by) {
        if (k++ == 8) {
            list += ", ...";
            break;
        }
        char b[160];
        snprintf(b, sizeof b, "%s%s (%s, %d file%s)", list.empty() ? "" : ", ",
                 kv.first.empty() ? "(none)" : kv.first.c_str(), kv.second.second.empty() ? "?" : kv.second.second.c_str(),
                 kv.second.first, kv.second.first == 1 ? "" : "s");
        list += b;
    }
    return dcm_fail(code, DICOM_E_SEVERAL_SERIES, err, errlen, "the upload holds %zu series, one is needed: %s", by.size(),
                list.c_str());
}

/* Pixel format checks that need no decoding. */
static int check_pixels(const File &f, const File &first, dicom_code *code, char *err, size_t errlen)
{
    const char *n = f.name.c_str();
    if (!f.has_pixels)
        return dcm_fail(code, DICOM_E_NO_PIXELS, err, errlen, "'%s' (SOP class %s) has no PixelData (truncated?)", n, f.sop_class.c_str());
    if (f.spp != 1 || (f.photometric != "MONOCHROME2" && f.photometric != "MONOCHROME1"))
        return dcm_fail(code, DICOM_E_UNSUPPORTED, err, errlen,
                    "'%s' is %s with %d samples per pixel: only greyscale (MONOCHROME1/2) is read", n,
                    f.photometric.c_str(), f.spp);
    if (f.bits_alloc != 8 && f.bits_alloc != 16)
        return dcm_fail(code, DICOM_E_UNSUPPORTED, err, errlen, "'%s' has BitsAllocated %d: 8 and 16 are read", n,
                    f.bits_alloc);
    if (f.bits_stored < 1 || f.bits_stored > f.bits_alloc)
        return dcm_fail(code, DICOM_E_CORRUPT, err, errlen, "'%s' has BitsStored %d with BitsAllocated %d", n,
                    f.bits_stored, f.bits_alloc);
    if (f.rows < 1 || f.cols < 1)
        return dcm_fail(code, DICOM_E_CORRUPT, err, errlen, "'%s' has %d rows and %d columns", n, f.rows, f.cols);
    if (f.rows != first.rows || f.cols != first.cols || f.bits_alloc != first.bits_alloc ||
        f.pixel_rep != first.pixel_rep)
        return dcm_fail(code, DICOM_E_UNSUPPORTED, err, errlen,
                    "'%s' is %dx%d, %d-bit: the series' first file is %dx%d, %d-bit (one grid per series)", n,
                    f.cols, f.rows, f.bits_alloc, first.cols, first.rows, first.bits_alloc);
    DcmXfer x(f.xfer);
    if (x.isEncapsulated() && !DcmCodecList::canChangeCoding(f.xfer, EXS_LittleEndianExplicit))
        return dcm_fail(code, DICOM_E_COMPRESSION, err, errlen,
                    "'%s' is compressed as %s (%s), which this build cannot decode (supported: uncompressed, "
                    "deflate, RLE, JPEG baseline/extended/lossless, JPEG-LS)",
                    n, x.getXferName(), x.getXferID());
    return 0;
}

/* The slices of one file: one, or one per frame of an enhanced file. */
static int file_frames(Series &s, int fi, dicom_code *code, char *err, size_t errlen)
{
    File &f = s.files[fi];
    DcmDataset *ds = f.ff->getDataset();
    DcmItem *shared = NULL;
    ds->findAndGetSequenceItem(DCM_SharedFunctionalGroupsSequence, shared, 0);
    double top_slope[1] = {1}, top_inter[1] = {0};
    reals(ds, DCM_RescaleSlope, top_slope, 1);
    reals(ds, DCM_RescaleIntercept, top_inter, 1);
    for (int k = 0; k < f.frames; k++) {
        Frame fr;
        fr.file = fi;
        fr.frame = k;
        fr.instance = num(ds, DCM_InstanceNumber, 0);
        fr.slope = top_slope[0], fr.inter = top_inter[0];
        bool ok;
        if (f.enhanced) {
            DcmItem *pf = NULL;
            if (ds->findAndGetSequenceItem(DCM_PerFrameFunctionalGroupsSequence, pf, k).bad())
                return dcm_fail(code, DICOM_E_GEOMETRY, err, errlen,
                            "'%s': frame %d has no item in PerFrameFunctionalGroupsSequence", f.name.c_str(), k + 1);
            ok = fg_reals(pf, shared, DCM_PlanePositionSequence, DCM_ImagePositionPatient, fr.ipp, 3) &&
                 fg_reals(pf, shared, DCM_PlaneOrientationSequence, DCM_ImageOrientationPatient, fr.iop, 6) &&
                 fg_reals(pf, shared, DCM_PixelMeasuresSequence, DCM_PixelSpacing, fr.ps, 2);
            fg_reals(pf, shared, DCM_PixelValueTransformationSequence, DCM_RescaleSlope, &fr.slope, 1);
            fg_reals(pf, shared, DCM_PixelValueTransformationSequence, DCM_RescaleIntercept, &fr.inter, 1);
        } else {
            ok = reals(ds, DCM_ImagePositionPatient, fr.ipp, 3) && reals(ds, DCM_ImageOrientationPatient, fr.iop, 6) &&
                 reals(ds, DCM_PixelSpacing, fr.ps, 2);
        }
        if (!ok)
            return dcm_fail(code, DICOM_E_GEOMETRY, err, errlen,
                        "'%s'%s lacks ImagePositionPatient, ImageOrientationPatient or PixelSpacing%s", f.name.c_str(),
                        f.enhanced ? " (a frame)" : "", f.enhanced ? " in its functional groups" : "");
        if (fr.slope == 0 || !std::isfinite(fr.slope))
            return dcm_fail(code, DICOM_E_CORRUPT, err, errlen, "'%s' has RescaleSlope %g", f.name.c_str(), fr.slope);
        s.frames.push_back(fr);
    }
    return 0;
}

static double dot3(const double *a, const double *b) { return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]; }

/* Orientation and pixel spacing shared by every slice; the normal. */
static int check_plane(Series &s, dicom_code *code, char *err, size_t errlen)
{
    const Frame &f0 = s.frames[0];
    const double *r = f0.iop, *c = f0.iop + 3;
    if (std::fabs(dot3(r, r) - 1) > 1e-3 || std::fabs(dot3(c, c) - 1) > 1e-3 || std::fabs(dot3(r, c)) > 1e-3)
        return dcm_fail(code, DICOM_E_GEOMETRY, err, errlen,
                    "ImageOrientationPatient %g\\%g\\%g\\%g\\%g\\%g is not two orthogonal unit vectors", r[0], r[1],
                    r[2], c[0], c[1], c[2]);
    if (!(f0.ps[0] > 0) || !(f0.ps[1] > 0))
        return dcm_fail(code, DICOM_E_GEOMETRY, err, errlen, "PixelSpacing %g\\%g is not positive", f0.ps[0], f0.ps[1]);
    for (const Frame &f : s.frames) {
        double d = 0;
        for (int i = 0; i < 6; i++)
            d = std::max(d, std::fabs(f.iop[i] - f0.iop[i]));
        if (d > 1e-4 || std::fabs(f.ps[0] - f0.ps[0]) > 1e-4 || std::fabs(f.ps[1] - f0.ps[1]) > 1e-4)
            return dcm_fail(code, DICOM_E_UNSUPPORTED, err, errlen,
                        "'%s' has another ImageOrientationPatient or PixelSpacing than the first slice: a series "
                        "must be one stack of parallel slices",
                        s.files[f.file].name.c_str());
    }
    s.normal[0] = r[1] * c[2] - r[2] * c[1];
    s.normal[1] = r[2] * c[0] - r[0] * c[2];
    s.normal[2] = r[0] * c[1] - r[1] * c[0];
    double nn = std::sqrt(dot3(s.normal, s.normal));
    for (double &x : s.normal)
        x /= nn;
    return 0;
}

/* Slice order along the normal, then duplicates, spacing and tilt. */
static int check_stack(Series &s, dicom_code *code, char *err, size_t errlen)
{
    size_t n = s.frames.size();
    if (n < 2)
        return dcm_fail(code, DICOM_E_ONE_SLICE, err, errlen,
                    "the series has one slice: a volume needs at least 2 (the slice spacing comes from positions)");
    for (Frame &f : s.frames)
        f.dist = dot3(f.ipp, s.normal);
    std::stable_sort(s.frames.begin(), s.frames.end(), [](const Frame &a, const Frame &b) { return a.dist < b.dist; });
    for (size_t k = 1; k < n; k++)
        if (s.frames[k].dist - s.frames[k - 1].dist < 1e-3)
            return dcm_fail(code, DICOM_E_DUPLICATE, err, errlen,
                        "'%s' and '%s' lie at the same position (%.4f mm along the normal): several echoes, phases "
                        "or repeats in one series are not read",
                        s.files[s.frames[k - 1].file].name.c_str(), s.files[s.frames[k].file].name.c_str(),
                        s.frames[k].dist);
    const Frame &a = s.frames[0], &b = s.frames[n - 1];
    double along = b.dist - a.dist;
    s.mean_step = along / (double)(n - 1);
    double v[3], perp = 0;
    for (int i = 0; i < 3; i++) {
        v[i] = b.ipp[i] - a.ipp[i];
        s.step[i] = v[i] / (double)(n - 1);
        perp += (v[i] - along * s.normal[i]) * (v[i] - along * s.normal[i]);
    }
    perp = std::sqrt(perp);
    if (perp > DICOM_TILT_TOL * along)
        return dcm_fail(code, DICOM_E_TILT, err, errlen,
                    "the slices are not stacked along their normal: tilted by %.3f degrees (gantry tilt or shear; "
                    "the limit is %.3f): not resampled, refused",
                    std::atan2(perp, along) * 180 / M_PI, std::atan(DICOM_TILT_TOL) * 180 / M_PI);
    s.max_dev = 0;
    size_t worst = 1;
    for (size_t k = 1; k < n; k++) {
        double d = std::fabs(s.frames[k].dist - s.frames[k - 1].dist - s.mean_step);
        if (d > s.max_dev)
            s.max_dev = d, worst = k;
    }
    if (s.max_dev > DICOM_SPACING_REL_TOL * s.mean_step)
        return dcm_fail(code, DICOM_E_SPACING, err, errlen,
                    "slice spacing is not uniform: %.4f mm between slices %zu and %zu, %.4f mm on average (the "
                    "limit is %.1f%%; missing slices?)",
                    s.frames[worst].dist - s.frames[worst - 1].dist, worst - 1, worst, s.mean_step,
                    100 * DICOM_SPACING_REL_TOL);
    return 0;
}

int load_entries(dcm_entries &x, const vol_read_opts *opts, Series &s, dicom_code *code, char *err, size_t errlen)
{
    dcmtk_init();
    if (parse_all(x, s, code, err, errlen) < 0 || check_one_series(s, code, err, errlen) < 0)
        return -1;
    for (size_t i = 0; i < s.files.size(); i++)
        if (check_pixels(s.files[i], s.files[0], code, err, errlen) < 0 || file_frames(s, (int)i, code, err, errlen) < 0)
            return -1;
    if (check_plane(s, code, err, errlen) < 0 || check_stack(s, code, err, errlen) < 0)
        return -1;
    int64_t maxv = opts && opts->max_voxels > 0 ? opts->max_voxels : VOL_DEFAULT_MAX_VOXELS;
    int64_t nv = (int64_t)s.files[0].rows * s.files[0].cols * (int64_t)s.frames.size();
    if (nv > maxv)
        return dcm_fail(code, DICOM_E_TOO_LARGE, err, errlen, "%d x %d x %zu = %lld voxels is more than the limit %lld",
                    s.files[0].cols, s.files[0].rows, s.frames.size(), (long long)nv, (long long)maxv);
    return 0;
}

static size_t byte_budget(const vol_read_opts *opts)
{
    int64_t maxv = opts && opts->max_voxels > 0 ? opts->max_voxels : VOL_DEFAULT_MAX_VOXELS;
    return (size_t)maxv * 2 + ((size_t)256 << 20);
}

int load_series(const char *path, const vol_read_opts *opts, Series &s, dicom_code *code, char *err, size_t errlen)
{
    dcm_entries x;
    if (dcm_collect(path, byte_budget(opts), &x, code, err, errlen) < 0)
        return -1;
    int rc = load_entries(x, opts, s, code, err, errlen);
    dcm_entries_free(&x);
    return rc;
}

void series_affine(const Series &s, double A[4][4])
{
    const Frame &f = s.frames[0];
    memset(A, 0, sizeof(double) * 16);
    for (int r = 0; r < 3; r++) {
        double sign = r < 2 ? -1.0 : 1.0; /* LPS -> RAS */
        A[r][0] = sign * f.iop[r] * f.ps[1];
        A[r][1] = sign * f.iop[3 + r] * f.ps[0];
        A[r][2] = sign * s.step[r];
        A[r][3] = sign * f.ipp[r];
    }
    A[3][3] = 1;
}

} // namespace mkd_dicom
