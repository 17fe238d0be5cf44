#!/usr/bin/python3
"""gen_models.py: PyTorch reference data for the three tiny networks (the correctness checks against PyTorch).

    /usr/bin/python3 tests/golden/gen_models.py [OUTDIR]      (`make golden-models`)

Writes OUTDIR/{segmentor,generator,discriminator}.bin (default tests/golden/models/), in the
format of tests/lib/golden.h ("MKDGOLD1": u32 count, then per entry u16 name length, name,
u8 dtype (0 f32, 1 i32, 2 f64), u8 ndim, i32 dims, data). Read by tests/unit/test_models.c.

The networks are tests/golden/torch_models.py at tiny sizes:
    segmentor      width 4, 8 classes, input 2x1x32x32  (batch 2: BN statistics over 2 samples)
    generator      ngf 4, 2 residual blocks, input 1x1x32x32
    discriminator  ndf 4, input 1x1x64x64 (output 1x1x6x6)
Parameters start from CycleGAN's init (torch_models.init_cyclegan, seed fixed); then, for the
reference data only, every conv bias and every BN beta is drawn from N(0, 0.02) instead of 0,
so that a bias wired to the wrong place changes the output and fails the test.
Everything is computed in float64 from those float32 values (the parameters and inputs stored
are exactly the float32 values used), so the reference is the exact answer and the C engine's
float32 error is what the test measures.

Entries of each file:
    config          i32   segmentor: [width, classes, N, H, W]; generator: [ngf, blocks, N, H, W];
                          discriminator: [ndf, N, H, W]
    adam            f32   [lr, beta1, beta2, eps] (segmentor 0.9/0.999, G and D 0.5/0.999, lr 2e-4)
    param/NAME      f32   every parameter, PyTorch shape (state_dict names, named_parameters order)
    input           f32   the input x (N, 1, H, W)
    flops           f64   [forward, training step] convolution FLOPs (torch_models.conv_flops,
                          train_flops) for that input
    labels          i32   segmentor: class labels (N, H, W), uniform in 0..7
    target          f32   generator: L1 target (N, 1, H, W)
    output          f32   network output in training mode (BN batch statistics) at the initial
                          parameters
    loss            f32   [1] loss of that output:
                            segmentor      F.cross_entropy(logits, labels) + soft Dice
                                           (1 - mean over all 8 classes of
                                            (2 sum p g + 1) / (sum p + sum g + 1), sums over the
                                            batch; nn.h nn_loss_dice with first_class 0, smooth 1)
                            generator      mean |G(x) - target|          (nn_loss_l1)
                            discriminator  mean (D(x) - 1)^2             (nn_loss_lsgan, target 1)
    grad/NAME       f32   d loss / d parameter for every parameter
    adam_losses     f32   [5] the loss before each of 5 steps of torch.optim.Adam (zero_grad,
                          forward in training mode, loss, backward, step); adam_losses[0] = loss
    final_output    f32   after the 5 steps: the output in eval mode (segmentor: BN running
                          statistics; G and D have no mode-dependent layer)
    buffer/NAME     f32   segmentor: BN running_mean / running_var after the 5 training-mode
                          forward passes (momentum 0.1, unbiased variance)
"""
import os
import struct
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_models as tm  # noqa: E402

SEED = 20260125


def write_golden(path, entries):
    """entries: list of (name, numpy array of float32, int32 or float64)."""
    with open(path, 'wb') as f:
        f.write(b'MKDGOLD1')
        f.write(struct.pack('<I', len(entries)))
        for name, arr in entries:
            arr = np.ascontiguousarray(arr)
            if arr.dtype == np.float32:
                dt = 0
            elif arr.dtype == np.int32:
                dt = 1
            elif arr.dtype == np.float64:
                dt = 2
            else:
                raise TypeError(f'{name}: dtype {arr.dtype}')
            nb = name.encode()
            f.write(struct.pack('<H', len(nb)) + nb)
            f.write(struct.pack('<BB', dt, arr.ndim))
            f.write(struct.pack('<%di' % arr.ndim, *arr.shape))
            f.write(arr.astype(arr.dtype.newbyteorder('<'), copy=False).tobytes())


def f32(t):
    return t.detach().to(torch.float32).cpu().numpy()


def perturb_biases(net, gen):
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)) and m.bias is not None:
                m.bias.normal_(0.0, 0.02, generator=gen)
            elif isinstance(m, torch.nn.BatchNorm2d):
                m.bias.normal_(0.0, 0.02, generator=gen)


def run(name, net, x, lossf, betas, extra, outdir):
    net.train()
    entries = list(extra)
    entries.insert(0, ('adam', np.array([2e-4, betas[0], betas[1], 1e-8], np.float32)))
    for k, p in net.named_parameters():
        entries.append(('param/' + k, f32(p)))
    entries.append(('input', f32(x)))
    entries.append(('flops', np.array([tm.conv_flops(net, x.shape)[0], tm.train_flops(net, x.shape)],
                                      np.float64)))
    net64 = net.double()          # the float32 values above, now exactly in float64
    x64 = x.double()
    opt = torch.optim.Adam(net64.parameters(), lr=2e-4, betas=betas, eps=1e-8)
    losses = []
    for step in range(5):
        opt.zero_grad()
        y = net64(x64)
        loss = lossf(y)
        loss.backward()
        if step == 0:
            entries.append(('output', f32(y)))
            entries.append(('loss', np.array([loss.item()], np.float32)))
            for k, p in net64.named_parameters():
                entries.append(('grad/' + k, f32(p.grad)))
        losses.append(loss.item())
        opt.step()
    entries.append(('adam_losses', np.array(losses, np.float32)))
    net64.eval()
    with torch.no_grad():
        entries.append(('final_output', f32(net64(x64))))
    for k, b in net64.named_buffers():
        if b.dtype.is_floating_point:
            entries.append(('buffer/' + k, f32(b)))
    path = os.path.join(outdir, name + '.bin')
    write_golden(path, entries)
    print(f'{path}: {len(entries)} entries, output {tuple(y.shape)}, loss {losses[0]:.6f}, '
          f'after 5 Adam steps {losses[-1]:.6f}')


def main():
    outdir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), 'models')
    os.makedirs(outdir, exist_ok=True)
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(SEED)

    # segmentor: width 4, 8 classes, 2x1x32x32, CE + Dice
    w, k, n, h = 4, 8, 2, 32
    net = tm.Segmentor(w, k)
    tm.init_cyclegan(net, gen)
    perturb_biases(net, gen)
    x = torch.randn(n, 1, h, h, generator=gen)
    labels = torch.randint(0, k, (n, h, h), generator=gen)
    run('segmentor', net, x, lambda y: tm.seg_loss(y, labels), (0.9, 0.999),
        [('config', np.array([w, k, n, h, h], np.int32)),
         ('labels', labels.to(torch.int32).numpy())], outdir)

    # generator: ngf 4, 2 blocks, 1x1x32x32, L1 to a target in [-1, 1]
    ngf, nb, n, h = 4, 2, 1, 32
    net = tm.Generator(ngf, nb)
    tm.init_cyclegan(net, gen)
    perturb_biases(net, gen)
    x = torch.rand(n, 1, h, h, generator=gen) * 2 - 1
    target = torch.rand(n, 1, h, h, generator=gen) * 2 - 1
    run('generator', net, x, lambda y: tm.l1_loss(y, target.double()), (0.5, 0.999),
        [('config', np.array([ngf, nb, n, h, h], np.int32)), ('target', f32(target))], outdir)

    # discriminator: ndf 4, 1x1x64x64, LSGAN against "real" (1)
    ndf, n, h = 4, 1, 64
    net = tm.Discriminator(ndf)
    tm.init_cyclegan(net, gen)
    perturb_biases(net, gen)
    x = torch.rand(n, 1, h, h, generator=gen) * 2 - 1
    run('discriminator', net, x, lambda y: tm.lsgan_loss(y, 1.0), (0.5, 0.999),
        [('config', np.array([ndf, n, h, h], np.int32))], outdir)


if __name__ == '__main__':
    main()
