#!/usr/bin/python3
"""NIfTI test helper run by tests/unit/test_nifti.c through /usr/bin/python3 (Debian's nibabel).

  vol_helper.py gen DIR      write round-trip cases DIR/in_<name>.nii[.gz] written by nibabel,
                             DIR/in_<name>.f32 (nibabel's get_fdata as float32, x fastest) and
                             DIR/manifest.txt: name file datatype_code src orientation slicing_axis a00..a33
  vol_helper.py check DIR    for every case, compare DIR/out_<name>.nii.gz (written by mkdseg) with
                             the input: shape, affine (1e-6), qform/sform codes, units, data; and
                             DIR/lab_<name>.nii.gz (label map). Prints one line per failure, exits 1
                             on any failure.
  vol_helper.py info F       prints shape, dtype, affine, codes of F (debugging)
"""
import os
import sys

import numpy as np
import nibabel as nib

DTYPES = [  # numpy dtype, NIfTI code
    (np.uint8, 2), (np.int8, 256), (np.int16, 4), (np.uint16, 512), (np.int32, 8),
    (np.uint32, 768), (np.int64, 1024), (np.uint64, 1280), (np.float32, 16), (np.float64, 64),
]


def rot(ax, deg):
    t = np.deg2rad(deg)
    c, s = np.cos(t), np.sin(t)
    m = np.eye(3)
    i, j = [(1, 2), (0, 2), (0, 1)][ax]
    m[i, i], m[i, j], m[j, i], m[j, j] = c, -s, s, c
    return m


def affine_for(kind):
    """(affine, use_sform, use_qform) for an orientation case."""
    z = np.diag([0.8, 0.9, 2.5])
    off = np.array([-101.25, 37.5, -12.0])
    if kind == "ras":
        r = np.eye(3)
    elif kind == "lps":
        r = np.diag([-1.0, -1.0, 1.0])
    elif kind == "oblique":
        r = rot(0, 17.0) @ rot(2, -23.0) @ np.diag([-1.0, 1.0, 1.0])
    elif kind == "coronal":  # array j runs along S-I: slicing axis 1
        r = np.array([[1.0, 0, 0], [0, 0, -1.0], [0, 1.0, 0]])
    elif kind == "sagittal":  # array i runs along S-I: slicing axis 0
        r = np.array([[0, 0, -1.0], [0, 1.0, 0], [1.0, 0, 0]])
    else:
        r = np.eye(3)
    a = np.eye(4)
    a[:3, :3] = r @ z
    a[:3, 3] = off
    return a


CASES = []
ORIENTS = ["ras", "lps", "oblique", "coronal", "sagittal", "qform-only", "sform-only", "pixdim-only"]
for n, (dt, code) in enumerate(DTYPES):
    CASES.append(dict(name=f"{np.dtype(dt).name}_{ORIENTS[n % len(ORIENTS)]}", dtype=dt, code=code,
                      orient=ORIENTS[n % len(ORIENTS)], big=(n % 3 == 1), v2=(n % 4 == 3),
                      gz=(n % 2 == 0), slope=None))
for n, o in enumerate(ORIENTS):
    CASES.append(dict(name=f"o_{o}", dtype=np.int16, code=4, orient=o, big=(n % 2 == 0),
                      v2=(n == 5), gz=True, slope=None))
CASES.append(dict(name="scaled_int16", dtype=np.int16, code=4, orient="oblique", big=False, v2=False,
                  gz=True, slope=(0.5, -100.0)))
CASES.append(dict(name="pair_int16", dtype=np.int16, code=4, orient="lps", big=True, v2=False,
                  gz=False, slope=None, pair=True))
CASES.append(dict(name="scaled_uint8_v2", dtype=np.uint8, code=2, orient="lps", big=True, v2=True,
                  gz=False, slope=(2.0, 10.0)))


def pattern(shape, dt):
    i, j, k = np.meshgrid(*[np.arange(s) for s in shape], indexing="ij")
    base = (i * 7 + j * 3 + k * 11) % 100
    info = np.iinfo(dt) if np.issubdtype(dt, np.integer) else None
    if info is not None and info.min < 0:
        base = base - 50
    if dt in (np.float32, np.float64):
        return (base * 1.25 - 40.5).astype(dt)
    return base.astype(dt)


def gen(d):
    shape = (7, 6, 5)
    lines = []
    for c in CASES:
        a = affine_for(c["orient"])
        data = pattern(shape, c["dtype"])
        cls = nib.Nifti2Image if c["v2"] else nib.Nifti1Image
        if c.get("pair"):
            cls = nib.Nifti1Pair
        img = cls(data, None, dtype=data.dtype)
        h = img.header
        h.set_data_dtype(c["dtype"])
        h.set_xyzt_units("mm", "sec")
        zooms = np.sqrt((a[:3, :3] ** 2).sum(0))
        h.set_zooms(tuple(zooms))
        if c["orient"] == "qform-only":
            img.set_qform(a, 1)
            img.set_sform(None, 0)
        elif c["orient"] == "sform-only":
            img.set_sform(a, 2)
            img.set_qform(None, 0)
        elif c["orient"] == "pixdim-only":
            img.set_sform(None, 0)
            img.set_qform(None, 0)
        else:
            img.set_qform(a, 1)
            img.set_sform(a, 4 if c["orient"] == "oblique" else 2)
        if c["slope"]:
            h.set_slope_inter(*c["slope"])
        fn = f"in_{c['name']}" + (".hdr" if c.get("pair") else ".nii") + (".gz" if c["gz"] else "")
        if c["big"]:
            img = cls(img.dataobj, img.affine, h.as_byteswapped(">"))
            if c["slope"]:
                img.header.set_slope_inter(*c["slope"])
        nib.save(img, os.path.join(d, fn))
        back = nib.load(os.path.join(d, fn))
        assert back.header.endianness == (">" if c["big"] else "<"), c["name"]
        f = np.asarray(back.get_fdata(), dtype=np.float32)
        f.ravel(order="F").tofile(os.path.join(d, f"in_{c['name']}.f32"))
        aff = back.header.get_best_affine()
        axc = "".join(nib.aff2axcodes(aff))
        sax = [abs(x) for x in nib.orientations.io_orientation(aff)[:, 0]].index(2)
        src = {True: "sform"}.get(int(back.header["sform_code"]) > 0) or (
            "qform" if int(back.header["qform_code"]) > 0 else "pixdim")
        lines.append(" ".join([c["name"], fn, str(c["code"]), src, axc, str(sax)] +
                              ["%.17g" % x for x in aff.ravel()]))
    with open(os.path.join(d, "manifest.txt"), "w") as fh:
        fh.write("\n".join(lines) + "\n")


def same_geometry(a, b, what, fails):
    ha, hb = a.header, b.header
    if a.shape != b.shape:
        fails.append(f"{what}: shape {b.shape} != {a.shape}")
        return
    for get in ("get_best_affine",):
        fa, fb = getattr(ha, get)(), getattr(hb, get)()
        if not np.allclose(fa, fb, rtol=0, atol=1e-6):
            fails.append(f"{what}: affine differs by {np.abs(fa - fb).max():.3g}")
    for key in ("qform_code", "sform_code", "xyzt_units"):
        if int(ha[key]) != int(hb[key]):
            fails.append(f"{what}: {key} {int(hb[key])} != {int(ha[key])}")
    if int(ha["qform_code"]) > 0 and not np.allclose(ha.get_qform(), hb.get_qform(), atol=1e-6):
        fails.append(f"{what}: qform differs")
    if int(ha["sform_code"]) > 0 and not np.allclose(ha.get_sform(), hb.get_sform(), atol=1e-6):
        fails.append(f"{what}: sform differs")
    if not np.allclose(ha.get_zooms()[:3], hb.get_zooms()[:3], atol=1e-6):
        fails.append(f"{what}: zooms {hb.get_zooms()} != {ha.get_zooms()}")


def check(d):
    fails = []
    n = 0
    for line in open(os.path.join(d, "manifest.txt")):
        name, fn = line.split()[:2]
        a = nib.load(os.path.join(d, fn))
        out = os.path.join(d, f"out_{name}.nii.gz")
        lab = os.path.join(d, f"lab_{name}.nii.gz")
        b = nib.load(out)
        same_geometry(a, b, name, fails)
        if np.abs(a.get_fdata() - b.get_fdata()).max() > 1e-3 * max(1.0, np.abs(a.get_fdata()).max()):
            fails.append(f"{name}: data differs")
        if b.get_data_dtype().newbyteorder("=") != a.get_data_dtype().newbyteorder("=") and "scaled" not in name:
            fails.append(f"{name}: dtype {b.get_data_dtype()} != {a.get_data_dtype()}")
        if os.path.exists(lab):
            c = nib.load(lab)
            same_geometry(a, c, name + " (labels)", fails)
            if c.get_data_dtype() != np.int16:
                fails.append(f"{name}: label dtype {c.get_data_dtype()}")
            v = set(np.unique(np.asarray(c.dataobj)).tolist())
            if not v <= {0, 205, 420, 500, 550, 600, 820, 850}:
                fails.append(f"{name}: label values {sorted(v)}")
        n += 1
    for f in fails:
        print(f)
    print(f"checked {n} cases, {len(fails)} failures")
    return 1 if fails else 0


def phantom(img_f, lab_f, orient):
    """Checks a phantom pair as nibabel sees it; prints problems, returns an exit status."""
    img, lab = nib.load(img_f), nib.load(lab_f)
    fails = []
    if img.shape != lab.shape:
        fails.append(f"shape {img.shape} != {lab.shape}")
    if not np.allclose(img.affine, lab.affine, atol=1e-6):
        fails.append("image and label affines differ")
    if "".join(nib.aff2axcodes(img.affine)) != orient:
        fails.append(f"orientation {nib.aff2axcodes(img.affine)} != {orient}")
    if lab.get_data_dtype() != np.int16:
        fails.append(f"label dtype {lab.get_data_dtype()}")
    vals = set(np.unique(np.asarray(lab.dataobj)).tolist())
    if vals != {0, 205, 420, 500, 550, 600, 820, 850}:
        fails.append(f"label values {sorted(vals)}")
    zooms = img.header.get_zooms()
    if not all(z > 0 for z in zooms):
        fails.append(f"zooms {zooms}")
    for f in fails:
        print(f)
    return 1 if fails else 0


def info(f):
    img = nib.load(f)
    h = img.header
    print("shape", img.shape, "dtype", img.get_data_dtype(), "codes", int(h["qform_code"]), int(h["sform_code"]))
    print(h.get_best_affine())
    print("axcodes", nib.aff2axcodes(h.get_best_affine()))


if __name__ == "__main__":
    if sys.argv[1] == "gen":
        gen(sys.argv[2])
    elif sys.argv[1] == "check":
        sys.exit(check(sys.argv[2]))
    elif sys.argv[1] == "phantom":
        sys.exit(phantom(sys.argv[2], sys.argv[3], sys.argv[4]))
    elif sys.argv[1] == "info":
        info(sys.argv[2])
