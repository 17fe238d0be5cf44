#!/usr/bin/python3
"""Writes the hand-made malformed NIfTI files in tests/data/ (committed; rerun to regenerate).

Each file exercises one check of engine/io/nifti_read.c; tests/unit/test_nifti.c names the
error each must produce. Run from the repository root: /usr/bin/python3 tests/data/make_edge_cases.py
"""
import gzip
import os
import struct

import numpy as np
import nibabel as nib

D = os.path.dirname(os.path.abspath(__file__))


def nii_bytes(data, dtype=None, slope=None):
    img = nib.Nifti1Image(data, np.eye(4), dtype=dtype or data.dtype)
    if slope:
        img.header.set_slope_inter(*slope)
    img.header["vox_offset"] = 352
    return bytearray(img.header.binaryblock) + b"\0\0\0\0", data


def raw(data):
    return np.asarray(data).tobytes(order="F")


def put(name, blob):
    with open(os.path.join(D, name), "wb") as f:
        f.write(blob)


def put_gz(name, blob):
    with open(os.path.join(D, name), "wb") as f:
        f.write(gzip.compress(bytes(blob), compresslevel=9, mtime=0))


def set_dims(h, dims):
    struct.pack_into("<8h", h, 40, len(dims), *(list(dims) + [1] * (7 - len(dims))))


small = np.arange(4 * 4 * 4, dtype=np.int16).reshape(4, 4, 4)

# 1. a gzip file of about 300 bytes whose header claims 10^12 voxels (10000^3)
h, _ = nii_bytes(small)
set_dims(h, (10000, 10000, 10000))
put_gz("huge_claim.nii.gz", h + raw(small))
# 2. the same claim uncompressed (356 bytes)
put("huge_claim.nii", h + raw(small)[:4])
# 3. moderate claim (32^3 int16) with only part of the data: truncated uncompressed
big = (np.arange(32 ** 3) % 1000).astype(np.int16).reshape(32, 32, 32)
h, _ = nii_bytes(big)
put("truncated.nii", h + raw(big)[: len(raw(big)) // 2])
# 4. a gzip stream cut in the middle (noisy data so that it does not compress to nothing)
rng = np.random.default_rng(4)
noisy = rng.integers(-1000, 1000, size=(32, 32, 32)).astype(np.int16)
h, _ = nii_bytes(noisy)
z = gzip.compress(bytes(h + raw(noisy)), compresslevel=6, mtime=0)
put("truncated.nii.gz", z[: len(z) // 2])
# 5. a gzip stream with corrupted deflate data in the middle
zc = bytearray(z)
for i in range(len(zc) // 2, len(zc) // 2 + 64):
    zc[i] ^= 0x5A
put("corrupt.nii.gz", zc)
# 6. NaN in float32 data
f = np.zeros((4, 4, 4), np.float32)
f[1, 2, 3] = np.nan
h, _ = nii_bytes(f)
put("nan.nii", h + raw(f))
# 7. scaling overflows to infinity
h, _ = nii_bytes(small, slope=(1e38, 0.0))
put("inf_scaled.nii", h + raw(small))
# 8. 4-D with 3 volumes
v4 = np.zeros((4, 4, 4, 3), np.int16)
img = nib.Nifti1Image(v4, np.eye(4), dtype=np.int16)
img.header["vox_offset"] = 352
put_gz("4d.nii.gz", bytearray(img.header.binaryblock) + b"\0\0\0\0" + raw(v4))
# 9. 4-D with one volume (accepted)
v41 = np.ones((4, 4, 4, 1), np.int16)
img = nib.Nifti1Image(v41, np.eye(4), dtype=np.int16)
img.header["vox_offset"] = 352
put("4d_one.nii", bytearray(img.header.binaryblock) + b"\0\0\0\0" + raw(v41))
# 10. complex64 datatype (32), and an unknown datatype code (9999)
h, _ = nii_bytes(small)
struct.pack_into("<hh", h, 70, 32, 64)
put("bad_datatype.nii", h + bytes(4 * 4 * 4 * 8))
h, _ = nii_bytes(small)
struct.pack_into("<hh", h, 70, 9999, 16)
put("unknown_datatype.nii", h + raw(small))
# 11. not a NIfTI file at all
put("not_nifti.nii", b"This is a text file, not an image.\n" * 12)
put_gz("not_nifti.nii.gz", b"{\"json\": true}\n" * 40)
# 12. zero and negative dimensions
h, _ = nii_bytes(small)
set_dims(h, (4, 0, 4))
put("zero_dim.nii", h + raw(small))
h, _ = nii_bytes(small)
set_dims(h, (4, -4, 4))
put("negative_dim.nii", h + raw(small))
# 13. empty file
put("empty.nii", b"")
# 14. NaN in the sform
h, _ = nii_bytes(small)
img = nib.Nifti1Image(small, np.eye(4), dtype=np.int16)
img.header.set_sform(np.eye(4), 2)
img.header["vox_offset"] = 352
hh = bytearray(img.header.binaryblock)
struct.pack_into("<f", hh, 280, float("nan"))  # srow_x[0]
put("nan_affine.nii", hh + b"\0\0\0\0" + raw(small))
# 15. a lying data offset with an extension claiming a gigabyte (nifticlib would read it)
h, _ = nii_bytes(small)
struct.pack_into("<f", h, 108, 1e12)
h[348] = 1
put("huge_offset.nii", h + struct.pack("<ii", 1 << 30, 4) + raw(small))
print("wrote", sorted(f for f in os.listdir(D) if not f.endswith(".py")))
