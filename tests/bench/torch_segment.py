#!/usr/bin/python3
"""torch_segment.py: the PyTorch peer of `mkdseg segment` for a whole volume (make bench's
ct512_segment row): the same work as engine/infer/infer.c infer_volume, in PyTorch's natural
form, one process, timed from start to the written file.

    /usr/bin/python3 tests/bench/torch_segment.py --model M.safetensors --in CT.nii.gz \\
        --out LABELS.nii.gz [--threads T]

Steps (infer_volume's, default options: the ensemble, overlap 0.5, no test-time flips): read
the NIfTI with nibabel; slice along the array axis that points superior, with the in-plane
axes oriented as vol_geom_slice_frame does (columns toward the patient's left, rows toward
posterior); per slice: the CT window of the model's prep.norm mapped to [-1, 1], bilinear
resampling to the model spacing (F.interpolate, pixel centres aligned, as
prep_resize_linear), tiles of the model size at prep_tile_positions' places padded with -1,
every member's softmax on all tiles of the slice in one batch (eval mode, no_grad), averaged,
accumulated with prep_gaussian_weights' Gaussian, divided by the weight sum, resampled back
bilinearly, argmax, MM-WHS codes; the label volume written as int16 .nii.gz on the input's
affine. The networks are tests/golden/torch_models.py's Segmentor with the model file's
weights (the engine's parameter names are PyTorch's, prefixed by the member name). Prints one
JSON line: seconds (wall, whole process after imports), peak_rss_mb, and the voxel count of
each label for a sanity check against mkdseg's output.
"""
import argparse
import json
import math
import os
import resource
import struct
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def read_model(path):
    """(metadata dict, {name: numpy array}) of a safetensors file."""
    import numpy as np
    raw = open(path, 'rb').read()
    (n,) = struct.unpack('<Q', raw[:8])
    hdr = json.loads(raw[8:8 + n].decode('utf-8'))
    meta = hdr.pop('__metadata__', {})
    dt = {'F32': np.float32, 'I64': np.int64, 'I32': np.int32}
    data = raw[8 + n:]
    out = {}
    for name, e in hdr.items():
        b, en = e['data_offsets']
        out[name] = np.frombuffer(data[b:en], dtype=dt[e['dtype']]).reshape(e['shape']).copy()
    return meta, out


def tile_positions(n, t, overlap):
    """prep_tile_positions: tile origins covering n with the given overlap (last one flush)."""
    if n <= t:
        return [0]
    overlap = min(max(overlap, 0.0), 0.95)
    step = t * (1.0 - overlap)
    k = int(math.ceil((n - t) / step)) + 1
    return [int(round(i * (n - t) / (k - 1))) for i in range(k)]


def gaussian(t):
    import torch
    c, sig = (t - 1) / 2.0, t / 8.0
    y = torch.arange(t, dtype=torch.float64)
    d2 = (y[:, None] - c) ** 2 + (y[None, :] - c) ** 2
    return torch.exp(-d2 / (2 * sig * sig)).clamp_min(1e-3).float()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--model', required=True)
    ap.add_argument('--in', dest='inp', required=True)
    ap.add_argument('--out', required=True)
    ap.add_argument('--threads', type=int, default=1)
    a = ap.parse_args()
    t0 = time.perf_counter()
    import nibabel as nib
    import numpy as np
    import torch
    import torch.nn.functional as F
    sys.path.insert(0, os.path.join(HERE, '..', 'golden'))
    import torch_models as tm
    torch.set_num_threads(a.threads)
    t_import = time.perf_counter() - t0

    meta, w = read_model(a.model)
    arch = json.loads(meta['mkdseg.arch'])['segmentor']
    members = meta['mkdseg.members'].split(',')
    norm = dict(kv.split('=') for kv in meta['mkdseg.prep.norm'].split(';'))
    lo, hi = float(norm['ct_lo']), float(norm['ct_hi'])
    spacing, T = float(meta['mkdseg.prep.spacing']), int(meta['mkdseg.prep.size'])
    codes = torch.tensor(json.loads(meta['mkdseg.label_values']), dtype=torch.int16)
    nets = []
    for m in members:
        net = tm.Segmentor(arch['width'], arch['classes'])
        want = net.state_dict()
        # the engine stores vectors as [C, 1, 1, 1]: reshape to PyTorch's shapes
        sd = {k: torch.from_numpy(w[m + '.' + k]).reshape(want[k].shape) for k in want
              if m + '.' + k in w}
        net.load_state_dict(sd, strict=False)
        nets.append(net.eval())

    img = nib.load(a.inp)
    ornt = nib.orientations.io_orientation(img.affine)   # per array axis: world axis, sign
    ax = {int(ornt[i, 0]): i for i in range(3)}
    sgn = {int(ornt[i, 0]): ornt[i, 1] for i in range(3)}
    vol = np.asanyarray(img.dataobj)
    zooms = img.header.get_zooms()
    # slices [s][v][u]: u the array axis along x (toward -x), v along y (toward -y)
    arr = np.transpose(vol, (ax[2], ax[1], ax[0]))
    if sgn[0] > 0:
        arr = arr[:, :, ::-1]
    if sgn[1] > 0:
        arr = arr[:, ::-1, :]
    S, H, W = arr.shape
    du, dv = zooms[ax[0]], zooms[ax[1]]
    rw, rh = int(round(W * du / spacing)), int(round(H * dv / spacing))
    py, px = tile_positions(rh, T, 0.5), tile_positions(rw, T, 0.5)
    gw = gaussian(T)
    out = np.empty((S, H, W), dtype=np.int16)
    with torch.no_grad():
        for s in range(S):
            x = torch.from_numpy(np.ascontiguousarray(arr[s], dtype=np.float32))
            x = (x.clamp(lo, hi) - lo) * (2.0 / (hi - lo)) - 1.0
            r = F.interpolate(x[None, None], size=(rh, rw), mode='bilinear', align_corners=False)[0, 0]
            pad = torch.full((max(rh, T), max(rw, T)), -1.0)
            pad[:rh, :rw] = r
            tiles = torch.stack([pad[y:y + T, xx:xx + T] for y in py for xx in px])[:, None]
            prob = sum(torch.softmax(net(tiles), 1) for net in nets) / len(nets)
            acc = torch.zeros(arch['classes'], max(rh, T), max(rw, T))
            ws = torch.zeros(max(rh, T), max(rw, T))
            for i, (y, xx) in enumerate([(y, xx) for y in py for xx in px]):
                acc[:, y:y + T, xx:xx + T] += prob[i] * gw
                ws[y:y + T, xx:xx + T] += gw
            acc = acc[:, :rh, :rw] / ws[:rh, :rw].clamp_min(1e-30)
            back = F.interpolate(acc[None], size=(H, W), mode='bilinear', align_corners=False)[0]
            out[s] = codes[back.argmax(0)].numpy()
    # back to the array's axis order and directions
    if sgn[1] > 0:
        out = out[:, ::-1, :]
    if sgn[0] > 0:
        out = out[:, :, ::-1]
    inv = np.argsort((ax[2], ax[1], ax[0]))
    lab = np.ascontiguousarray(np.transpose(out, inv))
    nib.save(nib.Nifti1Image(lab, img.affine), a.out)
    secs = time.perf_counter() - t0 - t_import
    vals, counts = np.unique(lab, return_counts=True)
    print(json.dumps({'impl': 'torch', 'seconds': round(secs, 3), 'import_s': round(t_import, 3),
                      'peak_rss_mb': round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1),
                      'threads': a.threads, 'labels': {int(v): int(c) for v, c in zip(vals, counts)}}))


if __name__ == '__main__':
    main()
