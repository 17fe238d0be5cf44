#!/usr/bin/python3
"""run_bench.py: `make bench`, mkdseg against the tuned PyTorch peer, side by side.

    /usr/bin/python3 tests/bench/run_bench.py [--quick] [--threads 1,2] [--workloads a,b]
                                              [--mkdseg build/mkdseg] [--out build/bench.json]
                                              [--peak-gflops G]

For each workload (tests/bench/torch_bench.py WORKLOADS, the same list as `mkdseg bench
--list`, and mkd_iter_64: one experiment-scale mkd training iteration, `mkdseg train` against
tests/gpu/torch_mkd.py on the CPU, through tests/bench/mkd_bench.py; ct512_segment: a
512x512x300 int16 CT through `mkdseg segment` with the default model against
tests/bench/torch_segment.py, through tests/bench/ct_bench.py) and thread count, runs `mkdseg bench --workload W --threads T --json` and then
`torch_bench.py --workload W --threads T`, each in its own process (so peak RSS is per
process), one after the other (never at the same time). Each does its warm-up and takes the
median of its repetitions. Prints the table and writes --out: a JSON list of objects with
workload, threads, mkdseg_ms, torch_ms, ratio (mkdseg / PyTorch), gflops (mkdseg's, from the
architecture's convolution FLOPs), torch_gflops, pct_peak, peak_rss_mb (mkdseg's),
torch_peak_rss_mb, flops, reps, warmup, and the peak used.

% of peak: the FLOP rate over threads x one core's FP32 FMA peak. The per-core peak is
--peak-gflops when given (116.8 was quoted for an AVX-512 Zen 4),
else `mkdseg bench --peak` measures it on this machine.
"""
import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.abspath(os.path.join(HERE, '..', '..'))
sys.path.insert(0, HERE)
from torch_bench import WORKLOADS  # noqa: E402  (no torch import at module level)

# workloads measured by tests/bench/mkd_bench.py (`mkdseg train` against torch_mkd.py) and
# tests/bench/ct_bench.py (a whole CT through `mkdseg segment` against torch_segment.py)
TRAIN_WORKLOADS = ('mkd_iter_64', 'ct512_segment', 'ct512_segment_paper')


def run_json(cmd, env=None):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    if p.returncode != 0:
        raise RuntimeError(f'{" ".join(cmd)} failed ({p.returncode}): {p.stderr.strip()}')
    return json.loads(p.stdout.strip().splitlines()[-1])


def measure(mkdseg, w, t, warmup, reps):
    """(mkdseg's JSON, PyTorch's JSON) for workload w at t threads, one after the other."""
    if w in ('ct512_segment', 'ct512_segment_paper'):
        # whole processes of a minute or more each: one repetition, no warm-up
        cb = os.path.join(HERE, 'ct_bench.py')
        model = 'default' if w == 'ct512_segment' else 'paper'
        c = run_json(['/usr/bin/python3', cb, '--side', 'mkdseg', '--mkdseg', mkdseg, '--threads', str(t),
                      '--model', model])
        p = run_json(['/usr/bin/python3', cb, '--side', 'torch', '--mkdseg', mkdseg, '--threads', str(t),
                      '--model', model])
        if c['labels'] != p['labels']:
            print(f'note: {w}: label voxel counts differ (mkdseg {c["labels"]}, PyTorch {p["labels"]})',
                  file=sys.stderr)
        return c, p
    if w in TRAIN_WORKLOADS:
        # whole iterations: more warm-up (path timing, pools filling) and more repetitions
        mb = os.path.join(HERE, 'mkd_bench.py')
        c = run_json(['/usr/bin/python3', mb, '--side', 'mkdseg', '--mkdseg', mkdseg,
                      '--threads', str(t), '--warmup', str(warmup + 2), '--reps', str(4 * reps)])
        p = run_json(['/usr/bin/python3', mb, '--side', 'torch', '--threads', str(t),
                      '--warmup', str(warmup), '--reps', str(reps)])
        p['flops'] = c['flops']          # the same passes (torch_mkd.py); counted by the engine
        return c, p
    c = run_json([mkdseg, 'bench', '--workload', w, '--threads', str(t),
                  '--warmup', str(warmup), '--reps', str(reps), '--json'],
                 env=dict(os.environ, MKDSEG_THREADS=str(t), OMP_NUM_THREADS=str(t)))
    p = run_json(['/usr/bin/python3', os.path.join(HERE, 'torch_bench.py'),
                  '--workload', w, '--threads', str(t), '--warmup', str(warmup),
                  '--reps', str(reps)])
    return c, p


def write_rows(path, rows):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path + '.tmp', 'w') as f:
        json.dump(rows, f, indent=1)
    os.replace(path + '.tmp', path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--quick', action='store_true', help='1 warm-up and 3 repetitions')
    ap.add_argument('--threads', default='1,2')
    ap.add_argument('--workloads', default=','.join(list(WORKLOADS) + list(TRAIN_WORKLOADS)))
    ap.add_argument('--mkdseg', default=os.path.join(TOP, 'build', 'mkdseg'))
    ap.add_argument('--out', default=os.path.join(TOP, 'build', 'bench.json'))
    ap.add_argument('--peak-gflops', type=float, default=0.0)
    ap.add_argument('--warmup', type=int, default=None)
    ap.add_argument('--reps', type=int, default=None)
    a = ap.parse_args()
    warmup = a.warmup if a.warmup is not None else (1 if a.quick else 2)
    reps = a.reps if a.reps is not None else (3 if a.quick else 5)
    threads = [int(t) for t in a.threads.split(',') if t]
    names = [w for w in a.workloads.split(',') if w]
    for w in names:
        if w not in WORKLOADS and w not in TRAIN_WORKLOADS:
            sys.exit(f'run_bench: unknown workload {w}')

    if a.peak_gflops > 0:
        peak, peak_src = a.peak_gflops, 'given'
    else:
        peak = run_json([a.mkdseg, 'bench', '--peak', '--json'])['peak_gflops_per_core']
        peak_src = 'measured (mkdseg bench --peak)'
    with open('/proc/loadavg') as f:
        load_before = f.read().split()[:3]
    cpu, avx512 = '?', False
    with open('/proc/cpuinfo') as f:
        for line in f:
            if line.startswith('model name') and cpu == '?':
                cpu = line.split(':', 1)[1].strip()
            if line.startswith('flags'):
                avx512 = ' avx512f' in line
    rev = subprocess.run(['git', 'describe', '--always', '--dirty'], cwd=TOP, text=True,
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL).stdout.strip()
    print(f'machine: {cpu}, {os.cpu_count()} CPUs, AVX-512 {"yes" if avx512 else "no"}; '
          f'source {rev or "?"}')
    print(f'mkdseg bench: {len(names)} workloads x threads {threads}, warm-up {warmup}, '
          f'median of {reps}; FP32 peak {peak:.1f} GFLOP/s per core ({peak_src}); '
          f'load average {" ".join(load_before)}', flush=True)

    hdr = (f'{"workload":<16} {"thr":>3} {"mkdseg ms":>10} {"PyTorch ms":>10} {"ratio":>6} '
           f'{"GFLOP/s":>8} {"%peak":>6} {"torch GF/s":>10} {"RSS MB":>7} {"torch RSS":>9}')
    rows = []
    lines = []
    write_rows(a.out, rows)
    t_start = time.time()
    for w in names:
        for t in threads:
            c, p = measure(a.mkdseg, w, t, warmup, reps)
            if abs(c['flops'] - p['flops']) > 1e-9 * p['flops']:
                print(f'warning: {w}: FLOP counts differ (mkdseg {c["flops"]:.0f}, '
                      f'PyTorch {p["flops"]:.0f})', file=sys.stderr)
            gf = c['flops'] / (c['ms'] * 1e6)
            tgf = p['flops'] / (p['ms'] * 1e6)
            row = {'workload': w, 'threads': t, 'mkdseg_ms': c['ms'], 'torch_ms': p['ms'],
                   'ratio': round(c['ms'] / p['ms'], 3), 'gflops': round(gf, 2),
                   'torch_gflops': round(tgf, 2), 'pct_peak': round(100 * gf / (peak * t), 1),
                   'torch_pct_peak': round(100 * tgf / (peak * t), 1),
                   'peak_rss_mb': c['peak_rss_mb'], 'torch_peak_rss_mb': p['peak_rss_mb'],
                   'flops': c['flops'], 'warmup': warmup, 'reps': reps,
                   'mkdseg_times_ms': c['times_ms'], 'torch_times_ms': p['times_ms'],
                   'mkdseg_reps': len(c['times_ms']), 'torch_reps': len(p['times_ms']),
                   'peak_gflops_per_core': peak}
            if 'cpu_ms' in c and 'cpu_ms' in p:  # CPU time per iteration (mkd_bench.py)
                row.update(mkdseg_cpu_ms=c['cpu_ms'], torch_cpu_ms=p['cpu_ms'],
                           cpu_ratio=round(c['cpu_ms'] / p['cpu_ms'], 3))
            rows.append(row)
            line = (f'{w:<16} {t:>3} {c["ms"]:>10.1f} {p["ms"]:>10.1f} {row["ratio"]:>6.2f} '
                    f'{gf:>8.1f} {row["pct_peak"]:>5.1f}% {tgf:>10.1f} '
                    f'{c["peak_rss_mb"]:>7.0f} {p["peak_rss_mb"]:>9.0f}')
            if 'inflate' in c:  # ct_bench.py: reading the CT with libdeflate and with zlib
                row['inflate'] = c['inflate']
                line += (f'  (reading the .nii.gz: CPU s libdeflate {c["inflate"]["libdeflate_cpu_s"]:.2f}'
                         f' / zlib {c["inflate"]["zlib_cpu_s"]:.2f})')
            if 'cpu_ratio' in row:
                line += (f'  (CPU ms/iter {c["cpu_ms"]:.0f} / {p["cpu_ms"]:.0f}: '
                         f'ratio {row["cpu_ratio"]:.2f}; {c["flops"] / 1e9:.3f} GFLOP/iter)')
            if not lines:
                print(hdr, flush=True)
            lines.append(line)
            print(line, flush=True)
            write_rows(a.out, rows)          # after every row: a cut-short run keeps its rows
    with open('/proc/loadavg') as f:
        load_after = f.read().split()[:3]
    print(f'({time.time() - t_start:.0f} s; load average after {" ".join(load_after)}; '
          f'ratio = mkdseg / PyTorch, GFLOP/s and %peak are mkdseg\'s, RSS = peak per process)')
    write_rows(a.out, rows)
    print(f'wrote {a.out}')


if __name__ == '__main__':
    main()
