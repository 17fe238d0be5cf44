#!/usr/bin/python3
"""Manual difficulty check of the phantom benchmark (not run by `make test`).

Trains a small 2-D U-Net (PyTorch, CPU) on N labelled phantom CT volumes and reports the mean
3-D Dice on phantom CT test volumes, to compare with the calibration figures in shared/NOTES.md
(CT-only baseline mean Dice about 0.54 / 0.7 / 0.84 with 1 / 2 / 4 labelled volumes).

  /usr/bin/python3 tests/nibabel/phantom_calibrate.py --ntrain 1 2 4 [--iters 1200] [--ntest 4]
Needs `make phantom-data` first.
"""
import argparse
import glob
import time

import numpy as np
import nibabel as nib
import torch
import torch.nn as nn
import torch.nn.functional as F

CODES = [0, 205, 420, 500, 550, 600, 820, 850]


def load(img_f, lab_f):
    img = nib.as_closest_canonical(nib.load(img_f))
    lab = nib.as_closest_canonical(nib.load(lab_f))
    x = np.clip((img.get_fdata() + 400) / 1100 * 2 - 1, -1, 1).astype(np.float32)
    y = np.zeros(lab.shape, np.int64)
    raw = np.asarray(lab.dataobj)
    for c, v in enumerate(CODES):
        y[raw == v] = c
    return x.transpose(2, 1, 0), y.transpose(2, 1, 0)  # [z][y][x]


class Block(nn.Module):
    def __init__(self, i, o):
        super().__init__()
        self.c1 = nn.Conv2d(i, o, 3, padding=1)
        self.n1 = nn.BatchNorm2d(o)
        self.c2 = nn.Conv2d(o, o, 3, padding=1)
        self.n2 = nn.BatchNorm2d(o)
        self.skip = nn.Conv2d(i, o, 1) if i != o else nn.Identity()

    def forward(self, x):
        h = F.relu(self.n1(self.c1(x)))
        return F.relu(self.n2(self.c2(h)) + self.skip(x))


class UNet(nn.Module):
    def __init__(self, w=16, nc=8):
        super().__init__()
        self.e = nn.ModuleList([Block(1, w), Block(w, 2 * w), Block(2 * w, 4 * w), Block(4 * w, 8 * w)])
        self.d = nn.ModuleList([Block(12 * w, 4 * w), Block(6 * w, 2 * w), Block(3 * w, w)])
        self.out = nn.Conv2d(w, nc, 1)

    def forward(self, x):
        s = []
        for i, b in enumerate(self.e):
            x = b(x)
            if i < 3:
                s.append(x)
                x = F.max_pool2d(x, 2)
        for b in self.d:
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
            x = b(torch.cat([x, s.pop()], 1))
        return self.out(x)


def dice3d(p, t):
    d = []
    for c in range(1, 8):
        a, b = p == c, t == c
        s = a.sum() + b.sum()
        d.append(1.0 if s == 0 else 2.0 * (a & b).sum() / s)
    return np.array(d)


def run(ntrain, iters, test, seed, crop):
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    files = sorted(glob.glob("var/phantom/ct/ct_train_*_image.nii.gz"))[:ntrain]
    xs, ys = [], []
    for f in files:
        x, y = load(f, f.replace("_image", "_label"))
        keep = y.reshape(len(y), -1).max(1) > 0
        keep |= rng.random(len(y)) < 0.2
        xs.append(x[keep]), ys.append(y[keep])
    X, Y = torch.from_numpy(np.concatenate(xs))[:, None], torch.from_numpy(np.concatenate(ys))
    net = UNet()
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    t0 = time.time()
    for it in range(iters):
        idx = torch.from_numpy(rng.integers(0, len(X), 8))
        c = crop
        oy, ox = rng.integers(0, X.shape[2] - c + 1), rng.integers(0, X.shape[3] - c + 1)
        xb, yb = X[idx, :, oy:oy + c, ox:ox + c].clone(), Y[idx, oy:oy + c, ox:ox + c].clone()
        if rng.random() < 0.5:
            xb, yb = xb.flip(-1), yb.flip(-1)
        logits = net(xb)
        p = logits.softmax(1)
        oh = F.one_hot(yb, 8).permute(0, 3, 1, 2).float()
        dice = 1 - ((2 * (p * oh).sum((0, 2, 3)) + 1) / (p.sum((0, 2, 3)) + oh.sum((0, 2, 3)) + 1))[1:].mean()
        loss = F.cross_entropy(logits, yb) + dice
        opt.zero_grad()
        loss.backward()
        opt.step()
        if (it + 1) % 200 == 0:
            print(f"  ntrain {ntrain} iter {it + 1} loss {loss.item():.3f} ({time.time() - t0:.0f} s)", flush=True)
    net.eval()
    ds = []
    with torch.no_grad():
        for x, y in test:
            pred = net(torch.from_numpy(x)[:, None]).argmax(1).numpy()
            ds.append(dice3d(pred, y))
    ds = np.array(ds)
    return ds.mean(), ds.mean(0), time.time() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ntrain", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--iters", type=int, default=1200)
    ap.add_argument("--ntest", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--crop", type=int, default=64, help="training crop (test on whole slices)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    tf = sorted(glob.glob("var/phantom/ct_test/ct_test_*_image.nii.gz"))[: a.ntest]
    test = [load(f, f.replace("_image", "_label")) for f in tf]
    for n in a.ntrain:
        m, per, t = run(n, a.iters, test, a.seed, a.crop)
        print(f"ntrain {n}: mean Dice {m:.3f}  per structure " +
              " ".join(f"{v:.2f}" for v in per) + f"  ({t:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
