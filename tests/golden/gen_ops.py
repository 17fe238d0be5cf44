#!/usr/bin/python3
"""gen_ops.py: PyTorch reference files for the engine's ops (tests/unit/test_nn_golden.c).

Run with Debian's Python (torch 1.13): /usr/bin/python3 tests/golden/gen_ops.py [outdir]
(`make golden` does). Writes one file per case into tests/golden/ops/<case>.bin.

File format (little-endian), read by tests/lib/golden.c:
  magic   8 bytes b"MKDGOLD1"
  count   u32                          number of entries
  entry   u16 name_len, name (ASCII), u8 dtype (0 float32, 1 int32, 2 float64), u8 ndim,
          i32 dims[ndim], data in C order
Entries of an op case:
  inputs and parameters by name ("x", "w", "b", "gamma", "beta", "rmean", "rvar",
  "labels" (int32), "weights", "target", "a", "b2", "x0".."x2"), "iargs" (int32) and
  "fargs" (float32) op arguments, "out" the forward result, "gy" the upstream gradient used
  for the backward (the gradient of sum(out * gy)), and "grad_<name>" for every input that
  requires a gradient; batch norm in training adds "rmean_out"/"rvar_out".
The Adam case ("adam") holds the initial parameters, the data and, per step k=0..4,
"loss_k" and the parameters after the step ("w_k", "b_k").
Seeds are fixed; every tensor is float32 (labels int32).
"""
import os
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F

torch.set_num_threads(1)
OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "ops")


def write_golden(path, entries):
    with open(path, "wb") as f:
        f.write(b"MKDGOLD1")
        f.write(struct.pack("<I", len(entries)))
        for name, arr in entries:
            if isinstance(arr, torch.Tensor):
                arr = arr.detach().cpu().numpy()
            arr = np.ascontiguousarray(arr)
            if arr.dtype == np.float32:
                dt = 0
            elif arr.dtype == np.int32:
                dt = 1
            elif arr.dtype == np.float64:
                dt = 2
            else:
                raise ValueError(f"{name}: dtype {arr.dtype}")
            nb = name.encode()
            f.write(struct.pack("<H", len(nb)) + nb)
            f.write(struct.pack("<BB", dt, arr.ndim))
            f.write(struct.pack(f"<{arr.ndim}i", *arr.shape))
            f.write(arr.astype(arr.dtype.newbyteorder("<")).tobytes())


def rnd(*shape, scale=1.0):
    return (torch.randn(*shape) * scale).float()


def case(name, inputs, fn, iargs=(), fargs=(), extra=()):
    """inputs: list of (name, tensor, requires_grad). fn(*tensors) -> output tensor."""
    ts = []
    for _, t, rg in inputs:
        t = t.clone()
        if rg:
            t.requires_grad_(True)
        ts.append(t)
    out = fn(*ts)
    gy = rnd(*out.shape) if out.numel() > 1 else torch.tensor(1.7).reshape(out.shape)
    (out * gy).sum().backward()
    entries = [(n, t.detach().clone()) for (n, _, _), t in zip(inputs, ts)]
    entries += [("iargs", np.array(iargs, dtype=np.int32)),
                ("fargs", np.array(fargs, dtype=np.float32)),
                ("out", out.detach().reshape(out.shape)), ("gy", gy)]
    for (n, _, rg), t in zip(inputs, ts):
        if rg:
            entries.append(("grad_" + n, t.grad))
    entries += list(extra)
    write_golden(os.path.join(OUT, name + ".bin"), entries)


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(1234)

    # convolutions: iargs = stride, pad, dilation|out_pad
    for nm, xs, ws, s, p, d, bias in [
        ("conv2d_3x3", (2, 3, 7, 6), (4, 3, 3, 3), 1, 1, 1, True),
        ("conv2d_4x4_s2", (2, 3, 9, 8), (5, 3, 4, 4), 2, 1, 1, False),
        ("conv2d_dil2", (1, 2, 9, 9), (3, 2, 3, 3), 1, 2, 2, True),
        ("conv2d_1x1", (2, 6, 4, 5), (3, 6, 1, 1), 1, 0, 1, True),
        ("conv2d_7x7", (1, 1, 10, 10), (4, 1, 7, 7), 1, 0, 1, True),
    ]:
        inp = [("x", rnd(*xs), True), ("w", rnd(*ws, scale=0.3), True)]
        if bias:
            inp.append(("b", rnd(ws[0]), True))
        case(nm, inp, lambda x, w, b=None, s=s, p=p, d=d: F.conv2d(x, w, b, s, p, d),
             iargs=(s, p, d))
    for nm, xs, ws, s, p, op, bias in [
        ("convt_3x3_s2", (2, 4, 5, 4), (4, 3, 3, 3), 2, 1, 1, True),
        ("convt_2x2_s2", (2, 4, 3, 3), (4, 2, 2, 2), 2, 0, 0, True),
        ("convt_4x4_s1", (1, 3, 4, 5), (3, 2, 4, 4), 1, 2, 0, False),
    ]:
        inp = [("x", rnd(*xs), True), ("w", rnd(*ws, scale=0.3), True)]
        if bias:
            inp.append(("b", rnd(ws[1]), True))
        case(nm, inp, lambda x, w, b=None, s=s, p=p, op=op:
             F.conv_transpose2d(x, w, b, s, p, op), iargs=(s, p, op))

    # padding: iargs = left, right, top, bottom
    for nm, mode, pads in [("pad_reflect3", "reflect", (3, 3, 3, 3)),
                           ("pad_reflect_asym", "reflect", (1, 2, 0, 3)),
                           ("pad_zero", "constant", (1, 2, 3, 0))]:
        case(nm, [("x", rnd(2, 2, 5, 6), True)],
             lambda x, mode=mode, pads=pads: F.pad(x, pads, mode=mode), iargs=pads)

    # norms
    x = rnd(2, 3, 5, 4) * 2 + 0.5
    case("instance_norm", [("x", x, True)], lambda x: F.instance_norm(x, eps=1e-5),
         fargs=(1e-5,))
    case("instance_norm_affine",
         [("x", x, True), ("gamma", rnd(3), True), ("beta", rnd(3), True)],
         lambda x, g, b: F.instance_norm(x, weight=g, bias=b, eps=1e-5), fargs=(1e-5,))
    rm, rv = rnd(3), torch.rand(3) + 0.5
    for training in (1, 0):
        rm2, rv2 = rm.clone(), rv.clone()
        nm = "batch_norm_train" if training else "batch_norm_eval"
        case(nm, [("x", x, True), ("gamma", rnd(3), True), ("beta", rnd(3), True),
                  ("rmean", rm, False), ("rvar", rv, False)],
             lambda x, g, b, _rm, _rv, training=training, rm2=rm2, rv2=rv2:
             F.batch_norm(x, rm2, rv2, g, b, training=bool(training), momentum=0.1, eps=1e-5),
             iargs=(training,), fargs=(0.1, 1e-5),
             extra=[("rmean_out", rm2), ("rvar_out", rv2)])

    # activations
    xa = rnd(2, 3, 4, 5) * 2
    case("relu", [("x", xa, True)], F.relu)
    case("leaky_relu", [("x", xa, True)], lambda x: F.leaky_relu(x, 0.2), fargs=(0.2,))
    case("tanh", [("x", xa, True)], torch.tanh)
    case("sigmoid", [("x", xa, True)], torch.sigmoid)
    case("softmax", [("x", xa, True)], lambda x: torch.softmax(x, dim=1))
    case("scale", [("x", xa, True)], lambda x: x * -0.7, fargs=(-0.7,))
    case("add", [("a", xa, True), ("b2", rnd(2, 3, 4, 5), True)], lambda a, b: a + b)
    case("concat", [("x0", rnd(2, 1, 3, 4), True), ("x1", rnd(2, 3, 3, 4), True),
                    ("x2", rnd(2, 2, 3, 4), True)], lambda *xs: torch.cat(xs, dim=1))

    # pooling: iargs = k, s
    case("max_pool_2", [("x", rnd(2, 3, 6, 7), True)], lambda x: F.max_pool2d(x, 2, 2),
         iargs=(2, 2))
    case("max_pool_3s2", [("x", rnd(1, 2, 7, 7), True)], lambda x: F.max_pool2d(x, 3, 2),
         iargs=(3, 2))

    # resize: iargs = oh, ow
    for nm, mode, src, dst in [("bilinear_up", "bilinear", (5, 6), (11, 8)),
                               ("bilinear_down", "bilinear", (8, 9), (5, 4)),
                               ("nearest_up", "nearest", (5, 6), (11, 8)),
                               ("nearest_down", "nearest", (8, 9), (5, 4))]:
        kw = {"align_corners": False} if mode == "bilinear" else {}
        case(nm, [("x", rnd(2, 2, *src), True)],
             lambda x, mode=mode, dst=dst, kw=kw: F.interpolate(x, size=dst, mode=mode, **kw),
             iargs=dst)

    # losses
    K = 4
    logits = rnd(2, K, 5, 6) * 2
    labels = torch.randint(0, K, (2, 1, 5, 6), dtype=torch.int32)
    lab64 = labels[:, 0].long()
    case("loss_ce", [("x", logits, True), ("labels", labels, False)],
         lambda x, l: F.cross_entropy(x, lab64).reshape(1, 1, 1, 1))
    cw = torch.tensor([0.5, 1.0, 2.0, 1.5])
    case("loss_ce_weighted", [("x", logits, True), ("labels", labels, False),
                              ("weights", cw, False)],
         lambda x, l, w: F.cross_entropy(x, lab64, weight=w).reshape(1, 1, 1, 1))

    def dice(p, first, smooth):
        g = F.one_hot(lab64, K).permute(0, 3, 1, 2).float()
        inter = (p * g).sum(dim=(0, 2, 3))
        den = p.sum(dim=(0, 2, 3)) + g.sum(dim=(0, 2, 3))
        d = (2 * inter + smooth) / (den + smooth)
        return (1 - d[first:].mean()).reshape(1, 1, 1, 1)
    probs = torch.softmax(logits, dim=1)
    case("loss_dice", [("x", probs, True), ("labels", labels, False)],
         lambda p, l: dice(p, 0, 1.0), iargs=(0,), fargs=(1.0,))
    case("loss_dice_nobg", [("x", probs, True), ("labels", labels, False)],
         lambda p, l: dice(p, 1, 1e-5), iargs=(1,), fargs=(1e-5,))
    target = torch.softmax(rnd(2, K, 5, 6) * 2, dim=1)
    pk = torch.softmax(rnd(2, K, 5, 6) * 3, dim=1)
    case("loss_kd", [("target", target, False), ("x", pk, True)],
         lambda t, p: (-(t * torch.log(p.clamp(min=1e-7))).sum(1).mean()).reshape(1, 1, 1, 1))
    case("loss_l1", [("a", rnd(2, 1, 5, 6), True), ("b2", rnd(2, 1, 5, 6), True)],
         lambda a, b: F.l1_loss(a, b).reshape(1, 1, 1, 1))
    case("loss_lsgan", [("x", rnd(2, 1, 4, 4), True)],
         lambda x: F.mse_loss(x, torch.full_like(x, 1.0)).reshape(1, 1, 1, 1), fargs=(1.0,))

    # Adam: 5 steps of torch.optim.Adam(lr 0.01, betas (0.5, 0.999)) on
    # loss = lsgan(conv2d(x, w, b, pad 1), 0.3)
    x = rnd(2, 2, 6, 6)
    w0, b0 = rnd(3, 2, 3, 3, scale=0.3), rnd(3, scale=0.1)
    w, b = w0.clone().requires_grad_(True), b0.clone().requires_grad_(True)
    opt = torch.optim.Adam([w, b], lr=0.01, betas=(0.5, 0.999), eps=1e-8)
    entries = [("x", x), ("w", w0), ("b", b0),
               ("fargs", np.array([0.01, 0.5, 0.999, 1e-8, 0.3], dtype=np.float32))]
    for k in range(5):
        opt.zero_grad()
        loss = F.mse_loss(F.conv2d(x, w, b, 1, 1), torch.full((2, 3, 6, 6), 0.3))
        loss.backward()
        opt.step()
        entries += [(f"loss_{k}", loss.detach().reshape(1)), (f"w_{k}", w.detach().clone()),
                    (f"b_{k}", b.detach().clone())]
    write_golden(os.path.join(OUT, "adam.bin"), entries)


if __name__ == "__main__":
    main()
