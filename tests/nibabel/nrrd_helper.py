#!/usr/bin/python3
"""NRRD and 4-D NIfTI test helper (Debian's nibabel and teem's unu), run by tests/unit/test_nrrd.c
and tests/http/test_http_slicer.c through /usr/bin/python3.

  nrrd_helper.py check NRRD NIFTI   NRRD (written by mkdseg) is decoded by teem-unu (an
                                    independent reader); NIFTI, its twin, by nibabel. Same sizes,
                                    same voxels, and every voxel at the same world position
                                    (NRRD's LPS = NIfTI's RAS with x and y negated). Prints "ok",
                                    or the first difference and exits 1.
  nrrd_helper.py gen4d DIR          writes DIR/four.nii.gz (7x6x5x3 int16, an oblique affine,
                                    each volume different), DIR/four_v1.f32 (volume 1 as float32,
                                    x fastest) and DIR/one4d.nii.gz (7x6x5x1).
  nrrd_helper.py split4d IN OUT4D OUT3D N
                                    from the 3-D image IN, writes a 4-D OUT4D of N volumes
                                    (volume k: IN's data times 1 + k / 4) with IN's affine, and
                                    OUT3D, volume 1 alone as a 3-D image.
"""
import subprocess
import sys
import tempfile

import nibabel as nib
import numpy as np

NRRD_TYPES = {"unsigned char": np.uint8, "uchar": np.uint8, "uint8": np.uint8, "signed char": np.int8,
              "int8": np.int8, "short": np.int16, "int16": np.int16, "unsigned short": np.uint16,
              "uint16": np.uint16, "int": np.int32, "int32": np.int32, "float": np.float32,
              "double": np.float64}


def vec(s):
    return np.array([float(x) for x in s.strip().strip("()").split(",")])


def read_unu(path):
    """Header fields and data of an NRRD, decoded by teem-unu into a raw NRRD first."""
    with tempfile.NamedTemporaryFile(suffix=".nrrd") as t:
        subprocess.run(["teem-unu", "save", "-i", path, "-f", "nrrd", "-e", "raw", "-o", t.name],
                       check=True)
        raw = open(t.name, "rb").read()
    cut = raw.index(b"\n\n")
    fields = {}
    for line in raw[:cut].decode().splitlines()[1:]:
        if line.startswith("#") or ":" not in line:
            continue
        k, v = line.split(":", 1)
        fields[k.strip()] = v.strip().lstrip("=").strip()
    dt = np.dtype(NRRD_TYPES[fields["type"]])
    if dt.itemsize > 1:
        dt = dt.newbyteorder("<" if fields.get("endian", "little") == "little" else ">")
    sizes = [int(x) for x in fields["sizes"].split()]
    data = np.frombuffer(raw[cut + 2:], dtype=dt)
    return fields, sizes, data.reshape(sizes[::-1]).transpose(2, 1, 0)


def check(nrrd, nifti):
    fields, sizes, data = read_unu(nrrd)
    img = nib.load(nifti)
    ref = np.asanyarray(img.dataobj)
    if fields.get("space") != "left-posterior-superior":
        return "space is %r" % fields.get("space")
    if list(ref.shape[:3]) != sizes:
        return "sizes %s vs nibabel shape %s" % (sizes, ref.shape)
    if not np.array_equal(data.astype(np.int64), ref.astype(np.int64)):
        return "voxels differ in %d places" % int((data != ref).sum())
    dirs = [vec(d) for d in fields["space directions"].replace(") (", ")|(").split("|")]
    origin = vec(fields["space origin"])
    lps = np.eye(4)
    lps[:3, 0], lps[:3, 1], lps[:3, 2], lps[:3, 3] = dirs[0], dirs[1], dirs[2], origin
    flip = np.diag([-1.0, -1.0, 1.0, 1.0])
    ijk = np.array([[i, j, k, 1.0] for i in (0, sizes[0] - 1) for j in (0, sizes[1] - 1)
                    for k in (0, sizes[2] - 1)] + [[1.5, 2.0, 0.5, 1.0]]).T
    world_nrrd = flip @ lps @ ijk          # back to RAS
    world_nib = img.affine @ ijk
    err = np.abs(world_nrrd - world_nib).max()
    if err > 1e-4:
        return "world coordinates differ by %.6g mm" % err
    return None


def oblique():
    t = np.deg2rad(17.0)
    r = np.array([[np.cos(t), -np.sin(t), 0], [np.sin(t), np.cos(t), 0], [0, 0, 1.0]])
    a = np.eye(4)
    a[:3, :3] = r @ np.diag([-0.8, 0.9, 2.5])
    a[:3, 3] = [-101.25, 37.5, -12.0]
    return a


def gen4d(d):
    x = np.arange(7 * 6 * 5 * 3, dtype=np.int16).reshape(3, 5, 6, 7).transpose(3, 2, 1, 0)
    x = (x * 7 + 100 * np.arange(3)[None, None, None, :]).astype(np.int16)
    img = nib.Nifti1Image(x, oblique())
    img.set_qform(oblique(), code=1)
    img.set_sform(oblique(), code=1)
    nib.save(img, d + "/four.nii.gz")
    np.asarray(x[..., 1], dtype=np.float32).ravel(order="F").tofile(d + "/four_v1.f32")
    one = nib.Nifti1Image(x[..., :1], oblique())
    nib.save(one, d + "/one4d.nii.gz")


def split4d(src, out4, out3, n):
    img = nib.load(src)
    x = np.asanyarray(img.dataobj).astype(np.float32)
    vols = np.stack([x * (1.0 + k / 4.0) for k in range(n)], axis=-1)
    for arr, out in ((vols, out4), (vols[..., 1], out3)):
        o = nib.Nifti1Image(arr, img.affine)
        o.set_qform(img.affine, code=1)
        o.set_sform(img.affine, code=1)
        nib.save(o, out)


def main():
    if sys.argv[1] == "check":
        why = check(sys.argv[2], sys.argv[3])
        print(why or "ok")
        return 1 if why else 0
    if sys.argv[1] == "gen4d":
        gen4d(sys.argv[2])
        return 0
    if sys.argv[1] == "split4d":
        split4d(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
