/* dicom_series.hpp (internal to engine/io, C++): one DICOM series parsed with DCMTK, kept in
 * memory between the reader (dicom_read.cpp) and the Segmentation writer (dicom_seg.cpp),
 * which needs the source datasets for their patient, study and frame-of-reference modules. */
#ifndef MKDSEG_DICOM_SERIES_HPP
#define MKDSEG_DICOM_SERIES_HPP

#include <memory>
#include <string>
#include <vector>

#include "dcmtk/config/osconfig.h"
#include "dcmtk/dcmdata/dctk.h"

#include "dicom.h"
#include "dicom_src.h"

namespace mkd_dicom {

/* One slice: a single-frame file, or one frame of a multi-frame file. */
struct Frame {
    int file = 0;             /* index into Series::files */
    int frame = 0;            /* 0-based frame within that file */
    double ipp[3] = {0, 0, 0};
    double iop[6] = {0, 0, 0, 0, 0, 0};
    double ps[2] = {0, 0};
    double slope = 1, inter = 0;
    double dist = 0;          /* ipp projected on the normal */
    int instance = 0;
};

struct File {
    std::unique_ptr<DcmFileFormat> ff;
    std::string name, sop_uid, sop_class, series_uid, study_uid, for_uid, modality, photometric;
    E_TransferSyntax xfer = EXS_Unknown;
    int rows = 0, cols = 0, frames = 1, bits_alloc = 0, bits_stored = 0, pixel_rep = 0, spp = 1;
    bool has_pixels = false, enhanced = false;
};

struct Series {
    std::vector<File> files;
    std::vector<Frame> frames; /* sorted: volume order */
    double normal[3] = {0, 0, 0};
    double step[3] = {0, 0, 0}; /* between consecutive slices (LPS mm) */
    double mean_step = 0, max_dev = 0;
    int skipped = 0;            /* non-DICOM entries and DICOMDIR files left out */
    bool archive = false;
};

/* Parses and checks the series at path (everything dicom_read refuses), without decoding
 * pixels. 0, or -1 with *code and err. */
int load_series(const char *path, const vol_read_opts *opts, Series &s, dicom_code *code, char *err,
                size_t errlen);

/* The same from entries already collected (dicom_src.h); frees their data as it parses. */
int load_entries(dcm_entries &x, const vol_read_opts *opts, Series &s, dicom_code *code, char *err,
                 size_t errlen);

/* The RAS affine of the series' grid (i = column, j = row, k = slice). */
void series_affine(const Series &s, double A[4][4]);

} // namespace mkd_dicom

#endif
