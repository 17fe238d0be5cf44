#!/usr/bin/env python3
"""torch_mkd.py: the PyTorch peer of cuda-bench's mkd_iter_b8 -- one iteration of the `mkd`
trainer (engine/train/trainer.c step_mkd, docs/method.md Algorithm 1) with the networks and losses
of tests/golden/torch_models.py, for tests/gpu/bench.py.

    /usr/bin/python3 tests/gpu/torch_mkd.py --size 64 --batch 2 [--device cpu] [--iters 3]

make_mkd_step(device, batch=8, size=256, ...) builds the six networks and their optimisers and
returns step(), a zero-argument callable doing one iteration. It need not match the engine
numerically (other random data, other initial values); it does the same passes, losses,
freezing, optimiser steps and host traffic, so that timing it against the engine is fair.

Configuration: train_config_default (engine/train/train_config.c) with method mkd, as
tests/cuda/cuda_bench.c setup() uses it for NET_MKD: batch 8 per modality, 256x256, segmentor
width 32 (levels 32..512), 8 classes, generators ngf 64 with 9 residual blocks, discriminators
ndf 64; Adam lr 2e-4 everywhere, betas (0.9, 0.999) for the segmentors and (0.5, 0.999) for
the generators and discriminators, eps 1e-8, no weight decay, one optimiser per network;
lambda_cyc 10, lambda_kd1 0.5, lambda_kd2 1; image pools of 50; segmentor lr x0.9 every 2
epochs of 500 iterations (set each step, as trainer_step does). Data as cuda_bench: 16 random
slices per modality (images N(0, 1), labels uniform in 0..7) held on the host; each step draws
a batch of each with replacement and augments every slice on the host (flips p 0.5 per axis,
rotation within 15 degrees, scale within 10%), then uploads it.
Initialisation: segmentors PyTorch's defaults (init_segmentor), the others init_cyclegan.

Correspondence with step_mkd, one line per engine statement (train_only(X) = every network but
X frozen: requires_grad False on every other network's parameters, before the forward pass,
as nn_params_set_frozen; gradients still flow through frozen networks into their inputs):

  trainer_step       nn_adam_set_lr on both segmentor optimisers   -> param_group['lr'] = ...
  1  sample_batch x2 (prep_augment per slice, nn_tensor_from/nn_labels_from uploads)
                                                                    -> sample(): the same
  2  train_only(G_a2t)
     fake_t = G_a2t(xa)                       grad                  -> g_a2t(xa)
     adv = lsgan(D_t(fake_t), 1)              through frozen D_t    -> tm.lsgan_loss
     cyc_a = l1(G_t2a(fake_t), xa)            through frozen G_t2a  -> tm.l1_loss
     fake_a0 = G_t2a(xt)                      no_grad               -> torch.no_grad()
     cyc_t = l1(G_a2t(fake_a0), xt)           grad (G_a2t weights)
     sup = seg_loss(S_syn(fake_t, SEGMENTOR_BN_BATCH), ya)  through frozen S_syn: batch
       statistics, momentum 0 (running statistics unchanged)    -> m.momentum = 0.0
     loss = adv + 10 (cyc_a + cyc_t) + sup
     update: zero G_a2t grads, backward(loss), Adam(G_a2t)          -> opt_g_a2t
     nn_tensor_read(fake_t) -> host
  3  image_pool_query(pool_t) on the host; upload the result fk
     train_only(D_t); ld = 0.5 (lsgan(D_t(xt), 1) + lsgan(D_t(fk), 0))   two D_t passes
     zero, backward(ld), Adam(D_t)                         -> opt_d_t
  4  train_only(G_t2a)
     fake_a = G_t2a(xt)                       grad
     adv_a = lsgan(D_a(fake_a), 1)            through frozen D_a
     cyc_t2 = l1(G_a2t(fake_a), xt)           through frozen (updated) G_a2t
     x_syn = G_a2t(xa)                        no_grad; kept for step 6
     cyc_a2 = l1(G_t2a(x_syn), xa)            grad (G_t2a weights)
     lg = adv_a + 10 (cyc_a2 + cyc_t2); zero, backward(lg), Adam(G_t2a)
     nn_tensor_read(fake_a) -> host
  5  image_pool_query(pool_a) on the host; upload fa
     train_only(D_a); lda = 0.5 (lsgan(D_a(xa), 1) + lsgan(D_a(fa), 0))
     zero, backward(lda), Adam(D_a)                       -> opt_d_a
  6  train_only(S_syn, S_real)   (both trainable, BN in training mode, 4 segmentor passes)
     z_syn_as = S_syn(x_syn); z_syn_t = S_syn(xt); z_real_t = S_real(xt); z_real_as = S_real(x_syn)
     (bn_target_stats, the engine's default: the two x_syn passes with momentum 0)
     sup_syn = seg_loss(z_syn_as, ya); sup_real = seg_loss(z_real_t, yt)
     kd_s2r = kd(target softmax(z_syn_as), probs softmax(z_real_as))
     kd_r2s = kd(target softmax(z_real_t), probs softmax(z_syn_t))
       kd(t, p) = -1/(N H W) sum_{n,h,w,c} t log(max(p, 1e-7)), t detached (nn_loss_kd,
       NN_KD_EPS; the target's softmax is computed, its graph never walked)
     seg_syn = sup_syn + 1.0 kd_r2s; seg_real = sup_real + 0.5 kd_s2r
     zero, backward(seg_syn), Adam(S_syn)    (reaches S_syn only: both kd targets detached)
     zero, backward(seg_real), Adam(S_real)
     read_losses: the 9 loss scalars read back once, at the end    -> .item() after the updates
  Totals per iteration: 8 generator passes (2 of them no_grad), 6 discriminator passes,
  5 segmentor passes (all training-mode BN), 6 backward passes, 6 Adam steps, 9 loss scalars
  read back at the end, 2 fake batches read back, 6 batch uploads.

Host traffic (sync='engine', the default, what bench.py times): every host read and write the
trainer does is done here at the same point: the losses' .item() once at the end of the step
(step_mkd's read_losses), fake.cpu() where it calls nn_tensor_read, the image pools on the host
(a tensor of 50 slices each, the same fill-then-swap-with-probability-0.5 rule as
engine/train/image_pool.c), the pool output uploaded again. sync='lazy' is the idiomatic
PyTorch alternative for comparison: pools on the device, no .item(); step() then returns
device tensors and never waits for the GPU.

What is not mirrored exactly:
- Augmentation: the engine's prep_augment is a single-threaded scalar C loop (bilinear image,
  nearest labels): 1.2 ms per 256x256 slice measured on one core of the (loaded) build
  machine, so about 20 ms of the engine's iteration for its 16 slices. Here torch's
  affine_grid + grid_sample on the CPU do the same warp per slice: 2.6 ms per slice on one
  thread of the same machine; bench.py leaves torch's CPU threads at their default (all
  cores), which shortens it. augment=False drops it (then the peer skips ~20-40 ms of host
  work the engine does). The borders differ slightly (zero padding shifted to the fill -1).
- Labels are uploaded as int64 (F.cross_entropy's target type); the engine uploads int32.
- Internal host-to-device copies of the engine's CUDA backend are not imitated: they are part
  of what is measured (nn_backward uploads its seed gradient 1.0, the fused Adam a parameter
  table per step, both through pinned staging without a wait). PyTorch seeds on the device.
- Adam: torch.optim.Adam with its default implementation (as bench.py's seg_train_b8); the
  engine runs one fused kernel over all parameters of a network.
- The losses are torch_models.py's (seg_loss builds a one-hot map; the engine's Dice and
  cross-entropy kernels are fused), and kd is written with torch elementwise ops: the same
  math in PyTorch's natural form, not the engine's kernels.
- BatchNorm's num_batches_tracked (PyTorch only) still counts S_syn's step-2 pass; with a fixed
  momentum it changes nothing.
- Zeroing gradients uses set_to_none=True, the counterpart of the engine's lazy
  nn_params_zero_grad (no memset; the next backward overwrites).
"""
import argparse
import math
import os
import random
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'golden'))
import torch_models as tm  # noqa: E402

KD_EPS = 1e-7   # NN_KD_EPS (engine/include/nn.h)

# train_config_default (engine/train/train_config.c); slices: cuda_bench's 16 per modality.
DEFAULTS = dict(seg_width=32, classes=8, ngf=64, ngen_blocks=9, ndf=64,
                lr_seg=2e-4, lr_gan=2e-4, seg_beta1=0.9, gan_beta1=0.5, beta2=0.999,
                seg_decay=0.9, seg_decay_every=2, iters_per_epoch=500,
                lambda_cyc=10.0, lambda_kd1=0.5, lambda_kd2=1.0, pool_size=50,
                aug_flip=0.5, aug_rot_deg=15.0, aug_scale=0.1, slices=16)


def kd_loss(target, probs):
    """nn_loss_kd: -1/(N H W) sum t log(max(p, eps)) over n, c, h, w; the target is detached."""
    return -(target.detach() * torch.log(probs.clamp_min(KD_EPS))).sum(1).mean()


class ImagePool:
    """engine/train/image_pool.c: the first `cap` images are stored and returned unchanged;
    after that each image is, with probability 0.5, swapped with a random stored one (the
    old one returned). query() works in place on x [B, 1, S, S] (a tensor on the pool's
    device). cap 0: no pool."""

    def __init__(self, cap, size, device, rng):
        self.cap, self.num, self.rng = cap, 0, rng
        self.img = torch.empty(cap, 1, size, size, device=device) if cap > 0 else None

    def query(self, x):
        if self.cap <= 0:
            return x
        for i in range(x.shape[0]):
            if self.num < self.cap:
                self.img[self.num].copy_(x[i])
                self.num += 1
            elif self.rng.random() < 0.5:
                k = self.rng.randrange(self.cap)
                old = self.img[k].clone()
                self.img[k].copy_(x[i])
                x[i].copy_(old)
        return x


def _augment(img, lab, rng, c, fill=-1.0):
    """prep_augment's work for one slice img [S, S] float, lab [S, S] int64 (host): flips,
    a rotation and an isotropic scale about the centre; outside the slice `fill` and label 0."""
    fu = rng.random() < c['aug_flip']
    fv = rng.random() < c['aug_flip']
    th = math.radians(rng.uniform(-c['aug_rot_deg'], c['aug_rot_deg']))
    sc = rng.uniform(1.0 - c['aug_scale'], 1.0 + c['aug_scale'])
    co, si = math.cos(th) / sc, math.sin(th) / sc
    theta = torch.tensor([[co, si, 0.0], [-si, co, 0.0]])
    if fu:
        theta[0] = -theta[0]
    if fv:
        theta[1] = -theta[1]
    S = img.shape[-1]
    grid = F.affine_grid(theta[None], [1, 1, S, S], align_corners=True)
    out = F.grid_sample((img - fill)[None, None], grid, mode='bilinear', padding_mode='zeros',
                        align_corners=True)[0, 0] + fill
    lout = F.grid_sample(lab[None, None].float(), grid, mode='nearest', padding_mode='zeros',
                         align_corners=True)[0, 0].long()
    return out, lout


def _set_trainable(nets, keep):
    """train_only: every network of nets ((module, parameter list) pairs) but those in keep
    frozen."""
    for net, params in nets:
        flag = any(net is k for k in keep)
        for p in params:
            p.requires_grad_(flag)


def make_mkd_step(device, batch=8, size=256, sync='engine', augment=True, seed=0, **cfg):
    """One mkd iteration as a zero-argument callable (see the module docstring).
    device: torch.device or name. sync: 'engine' (the trainer's host reads and writes: loss
    scalars read back, image pools on the host, BN buffers saved on the host; step() returns
    a dict of floats) or 'lazy' (everything on the device; step() returns a dict of device
    tensors without waiting). augment: the per-slice host augmentation. cfg: overrides of
    DEFAULTS (seg_width, ngf, ngen_blocks, ndf, classes, lambdas, lr, pool_size, slices ...).
    The returned function has attributes nets (dict name -> module) and iteration."""
    if sync not in ('engine', 'lazy'):
        raise ValueError("sync must be 'engine' or 'lazy'")
    unknown = set(cfg) - set(DEFAULTS)
    if unknown:
        raise ValueError('unknown settings: %s' % ', '.join(sorted(unknown)))
    c = dict(DEFAULTS, **cfg)
    if size % 16 or size < 32:
        raise ValueError('size must be a multiple of 16 and at least 32')
    dev = torch.device(device)
    B, S, K = batch, size, c['classes']
    host_sync = sync == 'engine'
    rng = random.Random(seed)
    gen = torch.Generator().manual_seed(seed)

    # six networks (trainer_new), in train mode throughout (BN uses batch statistics)
    s_syn = tm.init_segmentor(tm.Segmentor(c['seg_width'], K)).to(dev).train()
    s_real = tm.init_segmentor(tm.Segmentor(c['seg_width'], K)).to(dev).train()
    g_a2t = tm.init_cyclegan(tm.Generator(c['ngf'], c['ngen_blocks']), gen).to(dev).train()
    g_t2a = tm.init_cyclegan(tm.Generator(c['ngf'], c['ngen_blocks']), gen).to(dev).train()
    d_t = tm.init_cyclegan(tm.Discriminator(c['ndf']), gen).to(dev).train()
    d_a = tm.init_cyclegan(tm.Discriminator(c['ndf']), gen).to(dev).train()
    nets = [(m, list(m.parameters())) for m in (s_syn, s_real, g_a2t, g_t2a, d_t, d_a)]

    def adam(net, lr, b1):
        return torch.optim.Adam(net.parameters(), lr=lr, betas=(b1, c['beta2']), eps=1e-8,
                                weight_decay=0.0)
    opt_syn = adam(s_syn, c['lr_seg'], c['seg_beta1'])
    opt_real = adam(s_real, c['lr_seg'], c['seg_beta1'])
    opt_g_a2t = adam(g_a2t, c['lr_gan'], c['gan_beta1'])
    opt_g_t2a = adam(g_t2a, c['lr_gan'], c['gan_beta1'])
    opt_d_t = adam(d_t, c['lr_gan'], c['gan_beta1'])
    opt_d_a = adam(d_a, c['lr_gan'], c['gan_beta1'])

    pool_dev = torch.device('cpu') if host_sync else dev
    pool_t = ImagePool(c['pool_size'], S, pool_dev, rng)
    pool_a = ImagePool(c['pool_size'], S, pool_dev, rng)
    # S_syn's BN layers: momentum 0 in its step-2 pass (batch statistics, running ones
    # untouched), as the engine's SEGMENTOR_BN_BATCH
    bn_mods = [m for m in s_syn.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    bn_real = [m for m in s_real.modules() if isinstance(m, torch.nn.BatchNorm2d)]

    def with_momentum_zero(mods, f):
        moms = [m.momentum for m in mods]
        for m in mods:
            m.momentum = 0.0
        try:
            return f()
        finally:
            for m, mo in zip(mods, moms):
                m.momentum = mo

    # the data: per modality `slices` random slices on the host (cuda_bench setup)
    data = []
    for _ in range(2):
        img = torch.randn(c['slices'], S, S, generator=gen)
        lab = torch.randint(0, K, (c['slices'], S, S), generator=gen)
        data.append((img, lab))

    def sample(k):
        img, lab = data[k]
        xi = torch.empty(B, 1, S, S)
        yi = torch.empty(B, S, S, dtype=torch.long)
        for b in range(B):
            i = rng.randrange(img.shape[0])
            if augment:
                xi[b, 0], yi[b] = _augment(img[i], lab[i], rng, c)
            else:
                xi[b, 0], yi[b] = img[i], lab[i]
        return xi.to(dev), yi.to(dev)

    def scalar(t):               # read at the end of the step (read_losses in trainer.c)
        return t.detach()

    def update(opt, loss):
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    lam_cyc, lam1, lam2 = c['lambda_cyc'], c['lambda_kd1'], c['lambda_kd2']
    state = {'iter': 0}

    def step():
        L = {}
        epoch = state['iter'] // max(c['iters_per_epoch'], 1)
        lr = c['lr_seg'] * c['seg_decay'] ** (epoch // c['seg_decay_every'])
        for opt in (opt_syn, opt_real):
            for g in opt.param_groups:
                g['lr'] = lr
        # 1. a batch of each modality
        xt, yt = sample(0)
        xa, ya = sample(1)

        # 2. G_a2t by L_gan^{a->t} + L_sup^syn; S_syn, G_t2a, D_t fixed, gradients pass through
        _set_trainable(nets, [g_a2t])
        fake_t = g_a2t(xa)
        adv = tm.lsgan_loss(d_t(fake_t), 1.0)
        cyc_a = tm.l1_loss(g_t2a(fake_t), xa)
        with torch.no_grad():
            fake_a0 = g_t2a(xt)
        cyc_t = tm.l1_loss(g_a2t(fake_a0), xt)
        sup = tm.seg_loss(with_momentum_zero(bn_mods, lambda: s_syn(fake_t)), ya)
        cyc = cyc_a + cyc_t
        loss = (adv + lam_cyc * cyc) + sup
        L['g_a2t'] = scalar(loss)
        L['cyc'] = scalar(cyc)
        update(opt_g_a2t, loss)
        fk = fake_t.detach()
        fk = fk.to('cpu', copy=True) if host_sync else fk.clone()

        # 3. D_t on real target images and (pooled) synthetic ones
        fk = pool_t.query(fk).to(dev)
        _set_trainable(nets, [d_t])
        ld = 0.5 * (tm.lsgan_loss(d_t(xt), 1.0) + tm.lsgan_loss(d_t(fk), 0.0))
        L['d_t'] = scalar(ld)
        update(opt_d_t, ld)

        # 4. G_t2a by L_gan^{t->a} (with the updated G_a2t)
        _set_trainable(nets, [g_t2a])
        fake_a = g_t2a(xt)
        adv_a = tm.lsgan_loss(d_a(fake_a), 1.0)
        cyc_t2 = tm.l1_loss(g_a2t(fake_a), xt)
        with torch.no_grad():
            x_syn = g_a2t(xa)    # G_a2t is final for this iteration
        cyc_a2 = tm.l1_loss(g_t2a(x_syn), xa)
        lg = adv_a + lam_cyc * (cyc_a2 + cyc_t2)
        L['g_t2a'] = scalar(lg)
        update(opt_g_t2a, lg)
        fa = fake_a.detach()
        fa = fa.to('cpu', copy=True) if host_sync else fa.clone()

        # 5. D_a on real assistant images and (pooled) synthetic ones
        fa = pool_a.query(fa).to(dev)
        _set_trainable(nets, [d_a])
        lda = 0.5 * (tm.lsgan_loss(d_a(xa), 1.0) + tm.lsgan_loss(d_a(fa), 0.0))
        L['d_a'] = scalar(lda)
        update(opt_d_a, lda)

        # 6. S_syn by L_sup^syn + lambda_kd2 L_kd^{r->s}, then S_real by
        #    L_sup^real + lambda_kd1 L_kd^{s->r}; distillation targets detached
        _set_trainable(nets, [s_syn, s_real])
        # bn_target_stats (the engine's default): the synthetic passes use batch statistics
        # and leave the running ones alone (momentum 0); only the real target passes move them
        z_syn_as = with_momentum_zero(bn_mods, lambda: s_syn(x_syn))
        z_syn_t = s_syn(xt)
        z_real_t = s_real(xt)
        z_real_as = with_momentum_zero(bn_real, lambda: s_real(x_syn))
        sup_syn = tm.seg_loss(z_syn_as, ya)
        sup_real = tm.seg_loss(z_real_t, yt)
        kd_s2r = kd_loss(torch.softmax(z_syn_as, 1), torch.softmax(z_real_as, 1))
        kd_r2s = kd_loss(torch.softmax(z_real_t, 1), torch.softmax(z_syn_t, 1))
        seg_syn = sup_syn + lam2 * kd_r2s if lam2 > 0 else sup_syn
        seg_real = sup_real + lam1 * kd_s2r if lam1 > 0 else sup_real
        L['sup_syn'] = scalar(sup_syn)
        L['sup_real'] = scalar(sup_real)
        L['kd_s2r'] = scalar(kd_s2r)
        L['kd_r2s'] = scalar(kd_r2s)
        update(opt_syn, seg_syn)
        update(opt_real, seg_real)
        if host_sync:            # the trainer's one read of its losses, after the updates
            L = {k: v.item() for k, v in L.items()}
        state['iter'] += 1
        return L

    step.nets = {'s_syn': s_syn, 's_real': s_real, 'g_a2t': g_a2t, 'g_t2a': g_t2a,
                 'd_t': d_t, 'd_a': d_a}
    step.state = state
    return step


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--device', default='cpu')
    ap.add_argument('--size', type=int, default=64)
    ap.add_argument('--batch', type=int, default=2)
    ap.add_argument('--iters', type=int, default=3)
    ap.add_argument('--threads', type=int, default=1, help='torch CPU threads')
    ap.add_argument('--sync', default='engine', choices=['engine', 'lazy'])
    ap.add_argument('--no-augment', action='store_true')
    ap.add_argument('--seg-width', type=int, default=DEFAULTS['seg_width'])
    ap.add_argument('--ngf', type=int, default=DEFAULTS['ngf'])
    ap.add_argument('--ngen-blocks', type=int, default=DEFAULTS['ngen_blocks'])
    ap.add_argument('--ndf', type=int, default=DEFAULTS['ndf'])
    ap.add_argument('--pool-size', type=int, default=DEFAULTS['pool_size'])
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    dev = torch.device(a.device)
    cuda = dev.type == 'cuda'
    if cuda:
        torch.backends.cudnn.benchmark = True
    step = make_mkd_step(dev, batch=a.batch, size=a.size, sync=a.sync, augment=not a.no_augment,
                         seg_width=a.seg_width, ngf=a.ngf, ngen_blocks=a.ngen_blocks, ndf=a.ndf,
                         pool_size=a.pool_size)
    ok = True
    for it in range(a.iters):
        t0 = time.perf_counter()
        L = step()
        if cuda:
            torch.cuda.synchronize()
        ms = (time.perf_counter() - t0) * 1e3
        vals = {k: float(v) for k, v in L.items()}
        ok = ok and all(math.isfinite(v) for v in vals.values())
        print('iter %d  %.1f ms  %s' % (it, ms, '  '.join('%s %.4f' % kv for kv in vals.items())),
              flush=True)
    print('losses finite' if ok else 'NON-FINITE LOSS')
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
