#!/usr/bin/python3
"""Writes a DICOM CT/MR series of a numpy phantom with pydicom: the independent writer of the
DICOM tests (mkdseg never writes its input series itself).

  dicom_series.py OUT.zip|OUTDIR [--orient axial-hf|axial-ff|coronal|sagittal|oblique]
      [--dtype int16|uint16] [--slope S] [--intercept I] [--shape NX,NY,NZ] [--seed N]
      [--enhanced] [--modality CT|MR] [--from-nifti F.nii.gz] and one defect for refusal tests:
      [--defect drop-slice|tilt|no-pixels|two-series|one-slice|jpeg2000|truncate|duplicate]
      [--zip-defect traversal|empties|bomb|not-dicom|truncated-zip]

File names and InstanceNumbers are shuffled (seeded), SliceThickness is deliberately not the
slice spacing, positions and orientation carry the geometry. Prints one JSON line: the UIDs,
the stored voxel array's checksum and the grid (LPS) for the tests to check against.
"""
import argparse
import io
import json
import math
import os
import random
import sys
import zipfile

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
MR_IMAGE = "1.2.840.10008.5.1.4.1.1.4"
ENH_CT = "1.2.840.10008.5.1.4.1.1.2.1"
JPEG2000 = "1.2.840.10008.1.2.4.91"


def ds_str(x):
    """A DS value of at most 16 characters that keeps as many digits as fit."""
    for prec in range(12, 0, -1):
        s = f"{x:.{prec}f}".rstrip("0").rstrip(".")
        if s in ("-0", ""):
            s = "0"
        if len(s) <= 16:
            return s
    raise ValueError(x)


def rot(ax, deg):
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    if ax == "x":
        return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])
    if ax == "y":
        return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def orientation(name):
    """Row cosine, column cosine (LPS) and the PatientPosition of each orientation."""
    if name == "axial-hf":
        return np.array([1.0, 0, 0]), np.array([0, 1.0, 0]), "HFS"
    if name == "axial-ff":
        return np.array([-1.0, 0, 0]), np.array([0, 1.0, 0]), "FFS"
    if name == "coronal":
        return np.array([1.0, 0, 0]), np.array([0, 0, -1.0]), "HFS"
    if name == "sagittal":
        return np.array([0, 1.0, 0]), np.array([0, 0, -1.0]), "HFS"
    R = rot("z", 20) @ rot("x", 15) @ rot("y", -10)
    r, c = R @ np.array([1.0, 0, 0]), R @ np.array([0, 1.0, 0])
    # the cosines as written (DS): the geometry below uses the written values
    r = np.array([float(ds_str(v)) for v in r])
    c = np.array([float(ds_str(v)) for v in c])
    return r, c, "HFS"


def phantom(nx, ny, nz, dtype, seed):
    """Ellipsoids of distinct values in a background, stored values of dtype."""
    rng = np.random.default_rng(seed)
    k, j, i = np.meshgrid(np.arange(nz), np.arange(ny), np.arange(nx), indexing="ij")
    lo, hi = (-1000, 1500) if dtype == "int16" else (0, 3000)
    vol = np.full((nz, ny, nx), lo + 24, dtype=np.int32)
    for _ in range(5):
        c = rng.uniform([0, 0, 0], [nz, ny, nx])
        r = rng.uniform(2, [max(3, nz / 2), ny / 2, nx / 2])
        inside = ((k - c[0]) / r[0]) ** 2 + ((j - c[1]) / r[1]) ** 2 + ((i - c[2]) / r[2]) ** 2 <= 1
        vol[inside] = rng.integers(lo, hi)
    vol += (i * 7 + j * 3 + k * 11) % 17  # a ramp: any flip or shift changes voxels
    vol[0, 0, 0] = lo
    vol[-1, -1, -1] = hi
    return vol.astype(np.int16 if dtype == "int16" else np.uint16)


def base_dataset(a, uids, sop_class, sop_uid):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = "1.2.826.0.1.3680043.8.498.1"
    ds = FileDataset(None, {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, sop_uid
    ds.StudyInstanceUID, ds.SeriesInstanceUID = uids["study"], uids["series"]
    ds.FrameOfReferenceUID = uids["for"]
    ds.PatientName, ds.PatientID = "Phantom^Heart", "MKD-PH-%d" % a.seed
    ds.PatientBirthDate, ds.PatientSex = "19700101", "O"
    ds.StudyDate, ds.StudyTime, ds.StudyID = "20260101", "120000", "1"
    ds.AccessionNumber, ds.ReferringPhysicianName = "A1", ""
    ds.SeriesNumber, ds.Modality = 3, a.modality
    ds.SeriesDescription = "phantom %s %s" % (a.orient, a.dtype)
    ds.Manufacturer = "pydicom phantom"
    ds.PositionReferenceIndicator = ""
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
    ds.PixelRepresentation = 1 if a.dtype == "int16" else 0
    return ds


def classic_files(a, vol, geo, uids):
    nz, ny, nx = vol.shape
    r, c, pos, origin, step, ps = geo
    order = list(range(nz))
    random.Random(a.seed).shuffle(order)  # InstanceNumber does not follow position
    files = []
    for k in range(nz):
        sop_uid = generate_uid()
        ds = base_dataset(a, uids, CT_IMAGE if a.modality == "CT" else MR_IMAGE, sop_uid)
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.PatientPosition = pos
        ds.InstanceNumber = order[k] + 1
        ds.ImageOrientationPatient = [ds_str(v) for v in list(r) + list(c)]
        ds.ImagePositionPatient = [ds_str(v) for v in origin + k * step]
        ds.PixelSpacing = [ds_str(ps[0]), ds_str(ps[1])]
        ds.SliceThickness = ds_str(np.linalg.norm(step) * 1.7)
        ds.Rows, ds.Columns = ny, nx
        if a.modality == "CT":
            ds.KVP, ds.AcquisitionNumber = "120", 1
        ds.RescaleSlope, ds.RescaleIntercept = ds_str(a.slope), ds_str(a.intercept)
        ds.RescaleType = "HU" if a.modality == "CT" else "US"
        ds.PixelData = vol[k].tobytes()
        files.append(ds)
    return files


def enhanced_file(a, vol, geo, uids):
    nz, ny, nx = vol.shape
    r, c, pos, origin, step, ps = geo
    ds = base_dataset(a, uids, ENH_CT, generate_uid())
    ds.ImageType = ["ORIGINAL", "PRIMARY", "VOLUME", "NONE"]
    ds.InstanceNumber, ds.NumberOfFrames = 1, nz
    ds.Rows, ds.Columns = ny, nx
    ds.ContentDate, ds.ContentTime, ds.AcquisitionDateTime = "20260101", "120000", "20260101120000"
    shared = Dataset()
    pm, po, pvt = Dataset(), Dataset(), Dataset()
    pm.PixelSpacing, pm.SliceThickness = [ds_str(ps[0]), ds_str(ps[1])], ds_str(np.linalg.norm(step))
    po.ImageOrientationPatient = [ds_str(v) for v in list(r) + list(c)]
    pvt.RescaleSlope, pvt.RescaleIntercept, pvt.RescaleType = ds_str(a.slope), ds_str(a.intercept), "HU"
    shared.PixelMeasuresSequence, shared.PlaneOrientationSequence = [pm], [po]
    shared.PixelValueTransformationSequence = [pvt]
    ds.SharedFunctionalGroupsSequence = [shared]
    order = list(range(nz))
    random.Random(a.seed).shuffle(order)  # frames stored out of position order
    frames = []
    for k in order:
        f, pp, fc = Dataset(), Dataset(), Dataset()
        pp.ImagePositionPatient = [ds_str(v) for v in origin + k * step]
        fc.StackID, fc.InStackPositionNumber = "1", k + 1
        f.PlanePositionSequence, f.FrameContentSequence = [pp], [fc]
        frames.append(f)
    ds.PerFrameFunctionalGroupsSequence = frames
    ds.PixelData = b"".join(vol[k].tobytes() for k in order)
    return [ds]


def apply_defect(a, files, uids):
    if a.defect == "no-pixels":
        del files[len(files) // 2].PixelData
    elif a.defect == "two-series":
        other = generate_uid()
        for ds in files[: len(files) // 3]:
            ds.SeriesInstanceUID = other
    elif a.defect == "one-slice":
        files[:] = files[:1]
    elif a.defect == "duplicate":
        files[1].ImagePositionPatient = files[0].ImagePositionPatient
    elif a.defect == "jpeg2000":
        for ds in files:
            ds.file_meta.TransferSyntaxUID = JPEG2000
            frag = b"\xff\x4f\xff\x51" + b"\0" * 60  # a J2K start, not a decodable stream
            ds.PixelData = encapsulate([frag])
            ds["PixelData"].is_undefined_length = True
            ds["PixelData"].VR = "OB"


def encode(ds):
    buf = io.BytesIO()
    little = ds.file_meta.TransferSyntaxUID != "1.2.840.10008.1.2.2"
    ds.is_little_endian, ds.is_implicit_VR = little, False
    pydicom.dcmwrite(buf, ds, write_like_original=False)
    return buf.getvalue()


def zip_defect(kind, out, blobs):
    """Archives that must be refused before (or while) they are unpacked."""
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        if kind == "traversal":
            for i, b in enumerate(blobs):
                z.writestr(("../" if i == 1 else "s/") + "%04d.dcm" % i, b)
        elif kind == "empties":
            for i in range(100000):
                z.writestr("e/%06d" % i, b"")
        elif kind == "bomb":
            with z.open("bomb.dcm", "w") as f:
                chunk = b"\0" * (1 << 20)
                for _ in range(300):
                    f.write(chunk)
        elif kind == "not-dicom":
            z.writestr("readme.txt", b"not a DICOM file\n" * 20)
    if kind == "truncated-zip":
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
            for i, b in enumerate(blobs):
                z.writestr("s/%04d.dcm" % i, b)
        data = open(out, "rb").read()
        open(out, "wb").write(data[: len(data) // 2])


def main():
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("--orient", default="axial-hf")
    p.add_argument("--dtype", default="int16", choices=["int16", "uint16"])
    p.add_argument("--slope", type=float, default=1.0)
    p.add_argument("--intercept", type=float, default=0.0)
    p.add_argument("--shape", default="24,20,12")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--modality", default="CT")
    p.add_argument("--enhanced", action="store_true")
    p.add_argument("--from-nifti", default="", help="stored values from this NIfTI (rounded, minus the intercept)")
    p.add_argument("--defect", default="")
    p.add_argument("--zip-defect", default="",
                   choices=["", "traversal", "empties", "bomb", "not-dicom", "truncated-zip"])
    a = p.parse_args()
    nx, ny, nz = (int(v) for v in a.shape.split(","))
    if a.from_nifti:
        import nibabel
        img = nibabel.load(a.from_nifti)
        zooms = [float(z) for z in img.header.get_zooms()[:3]]
        x = np.asarray(img.dataobj, dtype=np.float64).transpose(2, 1, 0)
        vol = np.clip(np.rint((x - a.intercept) / a.slope), -32768 if a.dtype == "int16" else 0, 32767)
        vol = vol.astype(np.int16 if a.dtype == "int16" else np.uint16)
        nz, ny, nx = vol.shape
    else:
        vol = phantom(nx, ny, nz, a.dtype, a.seed)
    r, c, pos = orientation(a.orient)
    n = np.cross(r, c)
    ps = (0.8, 0.7)  # row spacing (between rows), column spacing
    dz = 2.5
    if a.from_nifti:  # the NIfTI's voxel size, so that anatomy keeps its size in mm
        ps, dz = (zooms[1], zooms[0]), zooms[2]
    origin = np.array([-10.25, 20.5, -30.75])
    step = n * dz
    if a.defect == "tilt":
        step = step + c * 0.4  # each slice shifted along the columns: a gantry tilt
    geo = (r, c, pos, origin, step, ps)
    uids = {"study": generate_uid(), "series": generate_uid(), "for": generate_uid()}
    files = enhanced_file(a, vol, geo, uids) if a.enhanced else classic_files(a, vol, geo, uids)
    if a.defect == "drop-slice":
        del files[nz // 2]
    apply_defect(a, files, uids)
    blobs = [encode(ds) for ds in files]
    if a.defect == "truncate":
        blobs[0] = blobs[0][: len(blobs[0]) - 100]  # inside PixelData
    if a.zip_defect:
        zip_defect(a.zip_defect, a.out, blobs)
        return
    names = ["%08x.dcm" % random.Random(a.seed * 1000 + i).getrandbits(32) for i in range(len(blobs))]
    if a.out.endswith(".zip"):
        with zipfile.ZipFile(a.out, "w", zipfile.ZIP_DEFLATED) as z:
            for name, b in zip(names, blobs):
                z.writestr("series/" + name, b)
    else:
        os.makedirs(a.out, exist_ok=True)
        for name, b in zip(names, blobs):
            with open(os.path.join(a.out, name), "wb") as f:
                f.write(b)
    json.dump({"study": uids["study"], "series": uids["series"], "files": len(blobs),
               "sops": [ds.SOPInstanceUID for ds in files]}, sys.stdout)
    print()


if __name__ == "__main__":
    main()
