#!/usr/bin/python3
"""mkd_bench.py: the experiment-scale mkd iteration, `mkdseg train --method mkd` against its
PyTorch peer (tests/gpu/torch_mkd.py on the CPU), for `make bench` (workload mkd_iter_64).

    /usr/bin/python3 tests/bench/mkd_bench.py --side mkdseg --mkdseg build/mkdseg --threads T
    /usr/bin/python3 tests/bench/mkd_bench.py --side torch --threads T

Configuration: experiments/cpu.json's "train" block (64-pixel tiles, batch 4 per modality,
segmentor width 8, generators ngf 8 with 3 residual blocks, discriminators ndf 8, lr_seg
0.003, no flips), on phantom data made once under build/bench_mkd/ (2 CT and 5 MR volumes at
the phantom's default shapes, `mkdseg phantom`). mkdseg side: one `mkdseg train` process of
warm-up + reps iterations; each iteration's time is the gap between its JSON progress line
and the previous one (read as they come), so start-up, data loading and the first
iteration's primitive creation and path timing are outside the median. Its FLOP count is the
engine's own (gflop_per_iter, nn_ctx_flops: every convolution pass as run). torch side:
torch_mkd.make_mkd_step with the same widths, sizes, learning rates and pool, timed per
step(); the same passes, so the same FLOP count. Both print one JSON line like
torch_bench.py: ms (median), times_ms, peak_rss_mb, flops, and cpu_ms: the process's user +
system CPU time per timed iteration (on a shared, oversubscribed machine the wall times
include waiting for a core; the CPU time does not).
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.abspath(os.path.join(HERE, '..', '..'))
CFG = dict(size=64, spacing=3, batch=4, seg_width=8, ngf=8, ngen_blocks=3, ndf=8,
           lr_seg=0.003, aug_flip=0)


def median(v):
    s = sorted(v)
    n = len(s)
    return s[n // 2] if n % 2 else 0.5 * (s[n // 2 - 1] + s[n // 2])


def phantom_data(mkdseg, top):
    """2 CT and 5 MR phantom pairs (seeds as `make phantom-data`), made once."""
    d = os.path.join(top, 'build', 'bench_mkd')
    for mod, seeds in (('ct', range(2001, 2003)), ('mr', range(1001, 1006))):
        os.makedirs(os.path.join(d, mod), exist_ok=True)
        for s in seeds:
            img = os.path.join(d, mod, f'{mod}{s}_image.nii.gz')
            lab = os.path.join(d, mod, f'{mod}{s}_label.nii.gz')
            if not (os.path.exists(img) and os.path.exists(lab)):
                subprocess.run([mkdseg, 'phantom', '--modality', mod, '--seed', str(s),
                                '--image', img, '--label', lab], check=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return d


def cpu_s(pid):
    """user + system CPU seconds of a running process (/proc/PID/stat, clock ticks)"""
    with open(f'/proc/{pid}/stat') as f:
        st = f.read().rsplit(')', 1)[1].split()
    return (int(st[11]) + int(st[12])) / os.sysconf('SC_CLK_TCK')


def run_mkdseg(a):
    d = phantom_data(a.mkdseg, TOP)
    out = os.path.join(d, f'model_{os.getpid()}.safetensors')
    total = a.warmup + a.reps
    cmd = [a.mkdseg, 'train', '--method', 'mkd', '--target-dir', os.path.join(d, 'ct'),
           '--assistant-dir', os.path.join(d, 'mr'), '--out', out, '--json',
           '--iters', str(total), '--iters-per-epoch', '200', '--threads', str(a.threads),
           '--checkpoint-every', str(total)]
    for k, v in CFG.items():
        cmd += ['--' + k.replace('_', '-'), str(v)]
    env = dict(os.environ, MKDSEG_THREADS=str(a.threads), OMP_NUM_THREADS=str(a.threads))
    p = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
                         env=env)
    stamps, cpu, gflop = [], [], 0.0
    for line in p.stderr:
        if line.startswith('{"event":"progress"'):
            stamps.append(time.perf_counter())
            cpu.append(cpu_s(p.pid))
            gflop = json.loads(line).get('gflop_per_iter', 0.0)
    rc = p.wait()
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    for f in (out, out + '.ckpt'):
        if os.path.exists(f):
            os.remove(f)
    if rc != 0 or len(stamps) != total:
        sys.exit(f'mkd_bench: mkdseg train failed ({rc}, {len(stamps)} of {total} iterations)')
    times = [(stamps[i] - stamps[i - 1]) * 1e3 for i in range(a.warmup, total)]
    cpu_ms = (cpu[-1] - cpu[a.warmup - 1]) * 1e3 / a.reps
    return {'impl': 'mkdseg', 'ms': round(median(times), 3), 'times_ms': [round(t, 2) for t in times],
            'cpu_ms': round(cpu_ms, 1),
            'peak_rss_mb': round(ru.ru_maxrss / 1024.0, 1), 'flops': gflop * 1e9}


def run_torch(a):
    sys.path.insert(0, os.path.join(HERE, '..', 'gpu'))
    from torch_bench import tuned_env
    want = tuned_env(a.threads)
    if any(os.environ.get(k) != v for k, v in want.items()):
        os.execve(sys.executable, [sys.executable] + sys.argv, dict(os.environ, **want))
    import torch
    import torch_mkd
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    step = torch_mkd.make_mkd_step('cpu', batch=CFG['batch'], size=CFG['size'],
                                   seg_width=CFG['seg_width'], ngf=CFG['ngf'],
                                   ngen_blocks=CFG['ngen_blocks'], ndf=CFG['ndf'],
                                   lr_seg=CFG['lr_seg'], aug_flip=CFG['aug_flip'],
                                   iters_per_epoch=200)
    times = []
    for i in range(a.warmup + a.reps):
        if i == a.warmup:
            c0 = time.process_time()
        t0 = time.perf_counter()
        step()
        if i >= a.warmup:
            times.append((time.perf_counter() - t0) * 1e3)
    cpu_ms = (time.process_time() - c0) * 1e3 / a.reps
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return {'impl': 'torch', 'ms': round(median(times), 3), 'times_ms': [round(t, 2) for t in times],
            'cpu_ms': round(cpu_ms, 1), 'peak_rss_mb': round(rss, 1), 'flops': None,
            'torch': torch.__version__}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--side', choices=['mkdseg', 'torch'], required=True)
    ap.add_argument('--mkdseg', default=os.path.join(TOP, 'build', 'mkdseg'))
    ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--warmup', type=int, default=3)
    ap.add_argument('--reps', type=int, default=20)
    a = ap.parse_args()
    r = run_mkdseg(a) if a.side == 'mkdseg' else run_torch(a)
    r.update(workload='mkd_iter_64', threads=a.threads, warmup=a.warmup, reps=a.reps)
    print(json.dumps(r))


if __name__ == '__main__':
    main()
