#!/usr/bin/env python3
"""bench.py: the GPU benchmark -- mkdseg's CUDA backend against PyTorch on the same
GPU, same workloads, same math mode.

    python3 tests/gpu/bench.py --bin build/tests/cuda-bench --out DIR [--tf32] [--quick]

Runs every workload of build/tests/cuda-bench (tests/cuda/cuda_bench.c: the `mkdseg bench`
workloads plus one full mkd iteration at paper size) in its own process, then the PyTorch peer
of each (tests/golden/torch_models.py on the GPU, cudnn.benchmark on, the same warm-up and
repetitions, torch.cuda.synchronize() closing each repetition). TF32 is off for both unless
--tf32 (mkdseg: MKDSEG_CUDA_TF32=1; PyTorch: allow_tf32 for cuDNN and matmul). Writes
DIR/bench.json (a list of {workload, mkdseg_ms, torch_ms, ratio, tflops, tf32, device}) and
DIR/bench.md (the table). The mkd iteration's peer is tests/gpu/torch_mkd.py (make_mkd_step:
the same six networks, passes, losses, freezing, Adam steps, image pools and host reads as
engine/train/trainer.c step_mkd, with the per-slice host augmentation; its docstring lists the
correspondence and what differs).
Uses the python3 that has torch (the lent machine's); any python3 >= 3.8 for the mkdseg part.
"""
import argparse
import gc
import json
import os
import subprocess
import sys
import time

WORKLOADS = ['seg_infer_b1', 'seg_infer_b8', 'seg_train_b8', 'gen_fwd_bwd', 'disc_fwd_bwd',
             'seg16_train_128', 'mkd_iter_b8', 'seg_infer_512_b8']
# torch peer: name -> (net, size, batch, H, mode), as tests/bench/torch_bench.py
TORCH = {
    'seg_infer_b1': ('seg', 32, 1, 256, 'infer'),
    'seg_infer_b8': ('seg', 32, 8, 256, 'infer'),
    'seg_train_b8': ('seg', 32, 8, 256, 'train'),
    'gen_fwd_bwd': ('gen', 64, 1, 256, 'fwdbwd'),
    'disc_fwd_bwd': ('disc', 64, 1, 256, 'fwdbwd'),
    'seg16_train_128': ('seg', 16, 1, 128, 'train'),
    'mkd_iter_b8': ('mkd', 32, 8, 256, 'train'),     # size: segmentor width (torch_mkd.py)
    'seg_infer_512_b8': ('seg', 32, 8, 512, 'infer'),
}


def median(v):
    s = sorted(v)
    n = len(s)
    return s[n // 2] if n % 2 else 0.5 * (s[n // 2 - 1] + s[n // 2])


def run_mkdseg(binary, wl, warmup, reps, tf32, timeout):
    env = dict(os.environ)
    if os.environ.get('MKDSEG_BIN_LD_LIBRARY_PATH'):   # tests/gpu/check.sh: carried libraries
        env['LD_LIBRARY_PATH'] = os.environ['MKDSEG_BIN_LD_LIBRARY_PATH']
    env['NVIDIA_TF32_OVERRIDE'] = '1' if tf32 else '0'
    if tf32:
        env['MKDSEG_CUDA_TF32'] = '1'
    else:
        env.pop('MKDSEG_CUDA_TF32', None)
    try:
        p = subprocess.run([binary, '--workload', wl, '--warmup', str(warmup), '--reps', str(reps)],
                           capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return None, 'timeout after %ds' % timeout
    if p.returncode != 0:
        return None, (p.stderr or p.stdout).strip()[-400:]
    return json.loads(p.stdout.strip().splitlines()[-1]), None


def run_torch(wl, warmup, reps, tf32):
    import torch
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, os.path.join(here, '..', 'golden'))
    import torch_models as tm
    torch.backends.cudnn.benchmark = True
    torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cuda.matmul.allow_tf32 = tf32
    dev = torch.device('cuda')
    net_kind, size, n, hw, mode = TORCH[wl]
    torch.manual_seed(0)
    net = x = None
    if net_kind != 'mkd':
        net = {'seg': lambda: tm.Segmentor(size, 8), 'gen': lambda: tm.Generator(size, 9),
               'disc': lambda: tm.Discriminator(size)}[net_kind]()
        tm.init_cyclegan(net)
        net = net.to(dev)
        x = torch.randn(n, 1, hw, hw, device=dev)
    if net_kind == 'mkd':
        # one full mkd iteration (six networks; the trainer's host reads and writes included)
        sys.path.insert(0, here)
        import torch_mkd
        step = torch_mkd.make_mkd_step(dev, batch=n, size=hw, seg_width=size)
    elif mode == 'infer':
        net.eval()

        def step():
            with torch.no_grad():
                return net(x)
    elif mode == 'train':
        net.train()
        labels = torch.randint(0, 8, (n, hw, hw), device=dev)
        opt = torch.optim.Adam(net.parameters(), lr=2e-4, betas=(0.9, 0.999))

        def step():
            opt.zero_grad(set_to_none=True)
            loss = tm.seg_loss(net(x), labels)
            loss.backward()
            opt.step()
            return loss
    else:
        net.train()
        target = torch.rand(n, 1, hw, hw, device=dev) * 2 - 1
        lossf = (lambda y: tm.l1_loss(y, target)) if net_kind == 'gen' else \
            (lambda y: tm.lsgan_loss(y, 1.0))

        def step():
            net.zero_grad(set_to_none=True)
            loss = lossf(net(x))
            loss.backward()
            return loss
    for _ in range(warmup):
        step()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        step()
        torch.cuda.synchronize()
        times.append((time.perf_counter() - t0) * 1e3)
    del net, x, step
    gc.collect()
    torch.cuda.empty_cache()
    return median(times), torch.__version__, torch.cuda.get_device_name(0)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[1])
    ap.add_argument('--bin', required=True)
    ap.add_argument('--out', required=True)
    ap.add_argument('--tf32', action='store_true')
    ap.add_argument('--quick', action='store_true', help='warm-up 1, 3 repetitions')
    ap.add_argument('--workloads', default=','.join(WORKLOADS))
    a = ap.parse_args()
    warmup, reps = (1, 3) if a.quick else (3, 10)
    os.makedirs(a.out, exist_ok=True)
    rows = []
    for wl in a.workloads.split(','):
        r, err = run_mkdseg(a.bin, wl, warmup, reps, a.tf32, 45)
        rows.append({'workload': wl, 'mkdseg_ms': r['ms'] if r else None,
                     'flops': r['flops'] if r else None, 'mkdseg_error': err})
        print('mkdseg', wl, r['ms'] if r else err, flush=True)
    device, tver = '?', '?'
    for row in rows:
        if row['workload'] not in TORCH:
            row['torch_ms'] = None
            continue
        try:
            ms, tver, device = run_torch(row['workload'], warmup, reps, a.tf32)
            row['torch_ms'] = round(ms, 3)
        except Exception as e:  # report, keep going
            row['torch_ms'] = None
            row['torch_error'] = repr(e)[:300]
        print('torch', row['workload'], row['torch_ms'], flush=True)
    for row in rows:
        m, t, f = row['mkdseg_ms'], row['torch_ms'], row['flops']
        row['ratio'] = round(m / t, 3) if m and t else None
        row['tflops'] = round(f / (m * 1e-3) / 1e12, 2) if m and f else None
        row['tf32'] = a.tf32
        row['device'] = device
        row['torch'] = tver
    with open(os.path.join(a.out, 'bench.json'), 'w') as fh:
        json.dump(rows, fh, indent=1)
    lines = ['GPU benchmark: %s, PyTorch %s, TF32 %s for both, warm-up %d, median of %d'
             % (device, tver, 'on' if a.tf32 else 'off', warmup, reps), '',
             '| workload | mkdseg ms | PyTorch ms | ratio | mkdseg TFLOP/s |',
             '|---|---:|---:|---:|---:|']
    for row in rows:
        def f(v, fmt='%.2f'):
            return fmt % v if v is not None else 'n/a'
        lines.append('| %s | %s | %s | %s | %s |' % (row['workload'], f(row['mkdseg_ms']),
                                                     f(row['torch_ms']), f(row['ratio'], '%.3f'),
                                                     f(row['tflops'])))
        if row.get('mkdseg_error'):
            lines.append('|  | error: %s | | | |' % row['mkdseg_error'].replace('\n', ' ')[:200])
    seg512 = next((r for r in rows if r['workload'] == 'seg_infer_512_b8' and r['mkdseg_ms']), None)
    if seg512:
        lines += ['', 'Estimate for a 512x512x300 CT with a 2-member ensemble (38 batches of 8 slices '
                  'per member, network time only): %.2f s (target: under 5 s)'
                  % (2 * 38 * seg512['mkdseg_ms'] / 1e3)]
    with open(os.path.join(a.out, 'bench.md'), 'w') as fh:
        fh.write('\n'.join(lines) + '\n')
    print('\n'.join(lines))
    return 0 if all(r['mkdseg_ms'] for r in rows) else 1


if __name__ == '__main__':
    sys.exit(main())
