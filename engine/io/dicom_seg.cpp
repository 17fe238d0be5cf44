/* dicom_seg.cpp: DICOM Segmentation objects from a class map (dicom_seg_write, dicom.h),
 * written with DCMTK's dcmseg.
 *
 * The SEG is BINARY, joins the source's patient, study and frame of reference (imported from
 * the first source file), and has one segment per structure present, each named, coloured
 * (RecommendedDisplayCIELabValue) and coded with SNOMED CT (category "Anatomical Structure",
 * the structure as property type, the heart as anatomic region). Every segment has one frame
 * per source slice, in volume order, whose functional groups give the slice's position, a
 * derivation reference to the source instance (and frame) it was computed from, and the
 * dimension indices (segment number, position). The Common Instance Reference module lists
 * every source instance. */
#include "dicom_series.hpp"

#include <cstdio>
#include <cstring>

#include "dcmtk/dcmfg/fgderimg.h"
#include "dcmtk/dcmfg/fgfracon.h"
#include "dcmtk/dcmfg/fgpixmsr.h"
#include "dcmtk/dcmfg/fgplanor.h"
#include "dcmtk/dcmfg/fgplanpo.h"
#include "dcmtk/dcmiod/cielabutil.h"
#include "dcmtk/dcmiod/iodreferences.h"
#include "dcmtk/dcmseg/segdoc.h"
#include "dcmtk/dcmseg/segment.h"

using namespace mkd_dicom;

namespace {

struct ClassCode {
    const char *code, *meaning;
    double rgb[3];
};

/* Classes 1..7 (vol_class_names: MYO, LA, LV, RA, RV, AA, PA). */
const ClassCode kClasses[VOL_NCLASSES] = {
    {"", "", {0, 0, 0}},
    {"49848007", "Left ventricle myocardium", {0.85, 0.55, 0.25}},
    {"82471001", "Left atrium", {0.90, 0.20, 0.20}},
    {"87878005", "Left ventricle", {0.95, 0.40, 0.55}},
    {"73829009", "Right atrium", {0.20, 0.40, 0.90}},
    {"53085002", "Right ventricle", {0.30, 0.70, 0.95}},
    {"54247002", "Ascending aorta", {0.95, 0.85, 0.20}},
    {"81040000", "Pulmonary artery", {0.35, 0.80, 0.35}},
};

std::string ds(double v)
{
    char b[32];
    snprintf(b, sizeof b, "%.10g", v);
    if (strlen(b) > 16)
        snprintf(b, sizeof b, "%.9g", v);
    return b;
}

int fail(char *err, size_t errlen, const char *what, const OFCondition &c)
{
    snprintf(err, errlen, "writing the DICOM SEG: %s: %s", what, c.text());
    return -1;
}

/* One segment per class present; segnum[c] gets its number (0: absent). */
int add_segments(DcmSegmentation *seg, const uint8_t *cls, size_t n, Uint16 segnum[VOL_NCLASSES], char *err,
                 size_t errlen)
{
    size_t count[VOL_NCLASSES] = {0};
    for (size_t i = 0; i < n; i++)
        if (cls[i] < VOL_NCLASSES)
            count[cls[i]]++;
    for (int c = 1; c < VOL_NCLASSES; c++) {
        segnum[c] = 0;
        if (!count[c])
            continue;
        DcmSegment *s = NULL;
        CodeSequenceMacro category("123037004", "SCT", "Anatomical Structure");
        CodeSequenceMacro type(kClasses[c].code, "SCT", kClasses[c].meaning);
        OFCondition r = DcmSegment::create(s, vol_class_names[c], category, type, DcmSegTypes::SAT_AUTOMATIC, "mkdseg");
        if (r.bad())
            return fail(err, errlen, "segment", r);
        s->getSegmentationAlgorithmIdentification().getAlgorithmFamilyCode().set("123110", "DCM",
                                                                                 "Artificial Intelligence");
        s->getGeneralAnatomyCode().getAnatomicRegion().set("80891009", "SCT", "Heart");
        double L, a, b;
        IODCIELabUtil::rgb2DicomLab(L, a, b, kClasses[c].rgb[0], kClasses[c].rgb[1], kClasses[c].rgb[2]);
        s->setRecommendedDisplayCIELabValue((Uint16)L, (Uint16)a, (Uint16)b);
        if ((r = seg->addSegment(s, segnum[c])).bad())
            return fail(err, errlen, "segment", r);
    }
    return 0;
}

/* Pixel measures, plane orientation and the two dimensions (segment, position). */
int add_shared(DcmSegmentation *seg, const Series &s, char *err, size_t errlen)
{
    const Frame &f = s.frames[0];
    FGPixelMeasures pm;
    pm.setPixelSpacing((ds(f.ps[0]) + "\\" + ds(f.ps[1])).c_str());
    pm.setSliceThickness(ds(s.mean_step).c_str());
    pm.setSpacingBetweenSlices(ds(s.mean_step).c_str());
    OFCondition r = seg->addForAllFrames(pm);
    std::unique_ptr<FGPlaneOrientationPatient> po(FGPlaneOrientationPatient::createMinimal(
        ds(f.iop[0]).c_str(), ds(f.iop[1]).c_str(), ds(f.iop[2]).c_str(), ds(f.iop[3]).c_str(),
        ds(f.iop[4]).c_str(), ds(f.iop[5]).c_str()));
    if (r.good() && po)
        r = seg->addForAllFrames(*po);
    char uid[65];
    dcmGenerateUniqueIdentifier(uid, SITE_INSTANCE_UID_ROOT);
    IODMultiframeDimensionModule &dim = seg->getDimensions();
    if (r.good())
        r = dim.addDimensionIndex(DCM_ReferencedSegmentNumber, uid, DCM_SegmentIdentificationSequence,
                                  "ReferencedSegmentNumber");
    if (r.good())
        r = dim.addDimensionIndex(DCM_ImagePositionPatient, uid, DCM_PlanePositionSequence, "ImagePositionPatient");
    return r.good() ? 0 : fail(err, errlen, "shared functional groups", r);
}

/* The frame of segment number sn at slice k. */
int add_frame(DcmSegmentation *seg, Series &s, size_t k, Uint16 sn, Uint8 *pix, char *err, size_t errlen)
{
    const Frame &f = s.frames[k];
    File &src = s.files[f.file];
    std::unique_ptr<FGPlanePosPatient> pp(
        FGPlanePosPatient::createMinimal(ds(f.ipp[0]).c_str(), ds(f.ipp[1]).c_str(), ds(f.ipp[2]).c_str()));
    FGFrameContent fc;
    fc.setDimensionIndexValues(sn, 0);
    fc.setDimensionIndexValues((Uint32)(k + 1), 1);
    FGDerivationImage der;
    DerivationImageItem *di = NULL;
    SourceImageItem *si = NULL;
    OFCondition r = der.addDerivationImageItem(CodeSequenceMacro("113076", "DCM", "Segmentation"), "", di);
    if (r.good())
        r = di->addSourceImageItem(src.ff->getDataset(),
                                   CodeSequenceMacro("121322", "DCM", "Source image for image processing operation"),
                                   si);
    if (r.good() && (src.enhanced || src.frames > 1))
        r = si->getImageSOPInstanceReference().addReferencedFrameNumber((Uint16)(f.frame + 1));
    if (r.bad() || !pp)
        return fail(err, errlen, "frame functional groups", r);
    OFVector<FGBase *> groups;
    groups.push_back(pp.get());
    groups.push_back(&fc);
    groups.push_back(&der);
    r = seg->addFrame(pix, sn, groups);
    return r.good() ? 0 : fail(err, errlen, "frame", r);
}

/* Series identity and the references to every source instance. */
int add_identity(DcmSegmentation *seg, Series &s, char *err, size_t errlen)
{
    File &f0 = s.files[0];
    OFCondition r = seg->importFromSourceImage(*f0.ff->getDataset(), OFTrue);
    if (r.bad())
        return fail(err, errlen, "patient, study and frame of reference of the source", r);
    seg->getSeries().setSeriesNumber("9001");
    seg->getSeries().setSeriesDescription("mkdseg heart segmentation");
    IODReferences refs;
    OFString pid;
    f0.ff->getDataset()->findAndGetOFString(DCM_PatientID, pid);
    for (File &f : s.files)
        refs.add(new IODImageReference(pid, f.study_uid.c_str(), f.series_uid.c_str(), f.sop_uid.c_str(),
                                       f.sop_class.c_str()));
    seg->getCommonInstanceReference().addReferences(refs, f0.study_uid.c_str());
    return 0;
}

int write_seg(Series &s, const uint8_t *cls, const char *out, char uids[2][65], char *err, size_t errlen)
{
    const File &f0 = s.files[0];
    size_t plane = (size_t)f0.rows * (size_t)f0.cols, n = plane * s.frames.size();
    IODGeneralEquipmentModule::EquipmentInfo eq("mkdseg", "mkdseg", "1", "1");
    ContentIdentificationMacro ci("1", "HEART", "Heart structures segmented by mkdseg", "mkdseg^service");
    DcmSegmentation *raw = NULL;
    OFCondition r = DcmSegmentation::createBinarySegmentation(raw, (Uint16)f0.rows, (Uint16)f0.cols, eq, ci);
    if (r.bad())
        return fail(err, errlen, "create", r);
    std::unique_ptr<DcmSegmentation> seg(raw);
    Uint16 segnum[VOL_NCLASSES];
    if (add_identity(seg.get(), s, err, errlen) < 0 || add_segments(seg.get(), cls, n, segnum, err, errlen) < 0 ||
        add_shared(seg.get(), s, err, errlen) < 0)
        return -1;
    std::vector<Uint8> pix(plane);
    for (int c = 1; c < VOL_NCLASSES; c++) {
        if (!segnum[c])
            continue;
        for (size_t k = 0; k < s.frames.size(); k++) {
            for (size_t i = 0; i < plane; i++)
                pix[i] = cls[k * plane + i] == c;
            if (add_frame(seg.get(), s, k, segnum[c], pix.data(), err, errlen) < 0)
                return -1;
        }
    }
    if (seg->getNumberOfSegments() == 0) {
        snprintf(err, errlen, "writing the DICOM SEG: no structure was found, a SEG needs at least one segment");
        return -1;
    }
    if ((r = seg->saveFile(out, EXS_LittleEndianExplicit)).bad())
        return fail(err, errlen, "save", r);
    if (uids) {
        OFString a, b;
        seg->getSOPCommon().getSOPInstanceUID(a);
        seg->getSeries().getSeriesInstanceUID(b);
        snprintf(uids[0], 65, "%s", a.c_str());
        snprintf(uids[1], 65, "%s", b.c_str());
    }
    return 0;
}

} // namespace

extern "C" void dicom_class_code(int c, const char **code, const char **meaning)
{
    int ok = c >= 1 && c < VOL_NCLASSES;
    *code = ok ? kClasses[c].code : "";
    *meaning = ok ? kClasses[c].meaning : "";
}

extern "C" int dicom_seg_write(const char *src_path, const uint8_t *cls, const char *out_path, char uids[2][65],
                               char *err, size_t errlen)
{
    try {
        Series s;
        dicom_code code;
        if (load_series(src_path, NULL, s, &code, err, errlen) < 0)
            return -1;
        return write_seg(s, cls, out_path, uids, err, errlen);
    } catch (const std::exception &e) {
        snprintf(err, errlen, "writing the DICOM SEG failed: %s", e.what());
        return -1;
    }
}
