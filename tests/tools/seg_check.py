#!/usr/bin/python3
"""Checks a DICOM SEG written by mkdseg against the NIfTI label map of the same input, with
pydicom and nibabel only (nothing of mkdseg's reader).

  seg_check.py SEG.dcm SERIES.zip LABELS.nii[.gz]

Every SEG frame is placed by its own PlanePositionSequence and ReferencedSegmentNumber; each
pixel's patient position (LPS, from the frame's position and the shared orientation and pixel
spacing) is mapped through the NIfTI's affine (RAS) to a voxel, which must hold that segment's
class exactly where the frame is 1. Also checks: BINARY type, one frame per source slice and
segment, the source series and every source instance referenced, SNOMED CT property types, the
segments' labels. Prints one JSON line; exit status 0 when everything holds.
"""
import json
import sys
import zipfile
import io

import nibabel
import numpy as np
import pydicom

CLASSES = ["background", "MYO", "LA", "LV", "RA", "RV", "AA", "PA"]


def fail(msg):
    print(json.dumps({"ok": False, "error": msg}))
    sys.exit(1)


def main():
    seg_path, zip_path, nii_path = sys.argv[1:4]
    seg = pydicom.dcmread(seg_path)
    src = []
    with zipfile.ZipFile(zip_path) as z:
        for n in z.namelist():
            if not n.endswith("/"):
                src.append(pydicom.dcmread(io.BytesIO(z.read(n)), stop_before_pixels=True))
    if seg.SOPClassUID != "1.2.840.10008.5.1.4.1.1.66.4":
        fail("not a Segmentation Storage object: %s" % seg.SOPClassUID)
    if seg.SegmentationType != "BINARY":
        fail("SegmentationType %s" % seg.SegmentationType)
    if seg.StudyInstanceUID != src[0].StudyInstanceUID or seg.FrameOfReferenceUID != src[0].FrameOfReferenceUID:
        fail("the SEG is not in the source's study and frame of reference")
    refd = {i.ReferencedSOPInstanceUID for s in seg.ReferencedSeriesSequence for i in s.ReferencedInstanceSequence}
    if {s.SeriesInstanceUID for s in seg.ReferencedSeriesSequence} != {src[0].SeriesInstanceUID}:
        fail("ReferencedSeriesSequence does not name the source series")
    if refd != {d.SOPInstanceUID for d in src}:
        fail("the referenced instances are not the source instances")
    segs = {}
    for s in seg.SegmentSequence:
        code = s.SegmentedPropertyTypeCodeSequence[0]
        if code.CodingSchemeDesignator != "SCT" or s.SegmentedPropertyCategoryCodeSequence[0].CodeValue != "123037004":
            fail("segment %s is not coded with SNOMED CT" % s.SegmentLabel)
        if s.SegmentLabel not in CLASSES:
            fail("unknown segment label %s" % s.SegmentLabel)
        segs[s.SegmentNumber] = CLASSES.index(s.SegmentLabel)
    img = nibabel.load(nii_path)
    lab = np.asarray(img.dataobj).astype(np.int64)
    inv = np.linalg.inv(img.affine)
    shared = seg.SharedFunctionalGroupsSequence[0]
    iop = np.array(shared.PlaneOrientationSequence[0].ImageOrientationPatient, dtype=float)
    ps = np.array(shared.PixelMeasuresSequence[0].PixelSpacing, dtype=float)
    r, c = iop[:3], iop[3:]
    frames = seg.pixel_array.reshape(-1, seg.Rows, seg.Columns)
    if len(frames) != len(src) * len(segs):
        fail("%d frames for %d slices and %d segments" % (len(frames), len(src), len(segs)))
    jj, ii = np.meshgrid(np.arange(seg.Rows), np.arange(seg.Columns), indexing="ij")
    seen = np.zeros(lab.shape, dtype=np.int64)
    for f, fg in zip(frames, seg.PerFrameFunctionalGroupsSequence):
        sn = fg.SegmentIdentificationSequence[0].ReferencedSegmentNumber
        ipp = np.array(fg.PlanePositionSequence[0].ImagePositionPatient, dtype=float)
        lps = ipp[None, None, :] + ii[..., None] * ps[1] * r + jj[..., None] * ps[0] * c
        ras = np.concatenate([-lps[..., :2], lps[..., 2:], np.ones(lps.shape[:2] + (1,))], axis=-1)
        vox = ras @ inv.T
        idx = np.rint(vox[..., :3])
        if np.abs(vox[..., :3] - idx).max() > 1e-3:
            fail("frame at %s does not fall on the label map's grid" % ipp.tolist())
        idx = idx.astype(np.int64)
        if (idx < 0).any() or (idx >= np.array(lab.shape)).any():
            fail("frame at %s lies outside the label map" % ipp.tolist())
        want = lab[idx[..., 0], idx[..., 1], idx[..., 2]] == segs[sn]
        if not np.array_equal(want, f.astype(bool)):
            fail("segment %s differs from the label map at %d pixels of the frame at %s"
                 % (CLASSES[segs[sn]], int((want != f.astype(bool)).sum()), ipp.tolist()))
        seen[idx[..., 0], idx[..., 1], idx[..., 2]] += 1
    if (seen != len(segs)).any():
        fail("the frames do not cover every voxel once per segment")
    print(json.dumps({"ok": True, "segments": [CLASSES[v] for v in segs.values()], "frames": len(frames)}))


if __name__ == "__main__":
    main()
