#!/usr/bin/python3
"""torch_bench.py: the PyTorch peer of `mkdseg bench` (the CPU speed and memory comparison).

    /usr/bin/python3 tests/bench/torch_bench.py --workload NAME --threads T [--warmup W] [--reps R]

Runs one workload with the same architecture as mkdseg (tests/golden/torch_models.py) and prints
one JSON line: {"impl": "torch", "workload", "threads", "ms" (median), "times_ms", "warmup",
"reps", "peak_rss_mb", "flops"}. The fair, tuned peer: torch.set_num_threads(T),
OMP_NUM_THREADS=T, OPENBLAS_NUM_THREADS=1, MALLOC_MMAP_MAX_=0 and
MALLOC_TRIM_THRESHOLD_=100000000000 (glibc reads these at start-up, so the script re-executes
itself with them when they are missing or different).
"""
import argparse
import json
import os
import resource
import sys
import time

WORKLOADS = {
    # name: (net, size arg, batch, H, mode)
    'seg_infer_b1':    ('seg', 32, 1, 256, 'infer'),
    'seg_infer_b8':    ('seg', 32, 8, 256, 'infer'),
    'seg_train_b8':    ('seg', 32, 8, 256, 'train'),
    'gen_fwd_bwd':     ('gen', 64, 1, 256, 'fwdbwd'),
    'disc_fwd_bwd':    ('disc', 64, 1, 256, 'fwdbwd'),
    'seg16_train_128': ('seg', 16, 1, 128, 'train'),
}


def tuned_env(threads):
    return {'OMP_NUM_THREADS': str(threads), 'OPENBLAS_NUM_THREADS': '1',
            'MALLOC_MMAP_MAX_': '0', 'MALLOC_TRIM_THRESHOLD_': '100000000000'}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[1])
    ap.add_argument('--workload', required=True, choices=sorted(WORKLOADS))
    ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--warmup', type=int, default=2)
    ap.add_argument('--reps', type=int, default=5)
    ap.add_argument('--seed', type=int, default=0)
    a = ap.parse_args()

    want = tuned_env(a.threads)
    if any(os.environ.get(k) != v for k, v in want.items()):
        env = dict(os.environ, **want)
        os.execve(sys.executable, [sys.executable] + sys.argv, env)

    import torch
    torch.set_num_threads(a.threads)
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'golden'))
    import torch_models as tm

    net_kind, size, n, hw, mode = WORKLOADS[a.workload]
    torch.manual_seed(a.seed)
    if net_kind == 'seg':
        net = tm.Segmentor(size, 8)
    elif net_kind == 'gen':
        net = tm.Generator(size, 9)
    else:
        net = tm.Discriminator(size)
    tm.init_cyclegan(net)
    x = torch.randn(n, 1, hw, hw)
    flops = tm.conv_flops(net, x.shape)[0] if mode == 'infer' else tm.train_flops(net, x.shape)

    if mode == 'infer':
        net.eval()

        def step():
            with torch.no_grad():
                return net(x)
    elif mode == 'train':
        net.train()
        labels = torch.randint(0, 8, (n, hw, hw))
        opt = torch.optim.Adam(net.parameters(), lr=2e-4, betas=(0.9, 0.999))

        def step():
            opt.zero_grad(set_to_none=True)
            loss = tm.seg_loss(net(x), labels)
            loss.backward()
            opt.step()
            return loss
    else:
        net.train()
        x.requires_grad_(False)
        if net_kind == 'gen':
            target = torch.rand(n, 1, hw, hw) * 2 - 1

            def lossf(y):
                return tm.l1_loss(y, target)
        else:
            def lossf(y):
                return tm.lsgan_loss(y, 1.0)

        def step():
            net.zero_grad(set_to_none=True)
            loss = lossf(net(x))
            loss.backward()
            return loss

    for _ in range(a.warmup):
        step()
    times = []
    for _ in range(a.reps):
        t0 = time.perf_counter()
        step()
        times.append((time.perf_counter() - t0) * 1e3)
    times_sorted = sorted(times)
    med = times_sorted[len(times) // 2] if len(times) % 2 else \
        0.5 * (times_sorted[len(times) // 2 - 1] + times_sorted[len(times) // 2])
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(json.dumps({'impl': 'torch', 'workload': a.workload, 'threads': a.threads,
                      'ms': round(med, 3), 'times_ms': [round(t, 3) for t in times],
                      'warmup': a.warmup, 'reps': a.reps, 'peak_rss_mb': round(rss, 1),
                      'flops': flops, 'torch': torch.__version__}))


if __name__ == '__main__':
    main()
