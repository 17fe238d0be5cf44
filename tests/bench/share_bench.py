#!/usr/bin/python3
"""share_bench.py: OpenMP waiting on a shared machine: two `mkdseg segment` runs and one
`mkdseg train --method mkd` job started together, each with --threads T (default: all cores,
so the three oversubscribe the machine as a busy service does), under each OpenMP wait
setting in turn, the settings interleaved over --rounds rounds.

    /usr/bin/python3 tests/bench/share_bench.py [--mkdseg build/mkdseg] [--threads T]
        [--rounds R] [--iters N] [--out build/share_bench.json]

Settings (libgomp reads them when it loads, so each is a fresh process environment):
  default   libgomp's default, which mkdseg no longer runs with (server/cli/cli_omp.c makes an
            unset OMP_WAIT_POLICY passive): GOMP_SPINCOUNT=300000, libgomp's own spin count
            when nothing is set (spin about 300 000 times at a barrier, then sleep)
  passive   OMP_WAIT_POLICY=passive (sleep at once; mkdseg's default)
  active    OMP_WAIT_POLICY=active (spin for good)
  spin10k   GOMP_SPINCOUNT=10000 (a bounded spin, then sleep)
Inputs, made once under build/bench_share/: a 256x256x120 phantom CT (`mkdseg phantom
--modality ct --seed 11`), the default model, and mkd_bench.py's phantom training data with
its experiment-scale settings. Per setting and round: each job's wall time and the CPU time
(user + system) of all three; the group's wall time is the last job's end. Prints one line per
run and a JSON summary (medians over rounds).
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
from mkd_bench import CFG, phantom_data  # noqa: E402

SETTINGS = {
    'default': {'GOMP_SPINCOUNT': '300000'},
    'passive': {'OMP_WAIT_POLICY': 'passive'},
    'active': {'OMP_WAIT_POLICY': 'active'},
    'spin10k': {'GOMP_SPINCOUNT': '10000'},
}


def median(v):
    s = sorted(v)
    return s[len(s) // 2] if len(s) % 2 else 0.5 * (s[len(s) // 2 - 1] + s[len(s) // 2])


def inputs(mkdseg):
    d = os.path.join(TOP, 'build', 'bench_share')
    os.makedirs(d, exist_ok=True)
    ct = os.path.join(d, 'ct256.nii.gz')
    if not os.path.exists(ct):
        subprocess.run([mkdseg, 'phantom', '--modality', 'ct', '--seed', '11', '--shape',
                        '256,256,120', '--image', ct + '.tmp.nii.gz', '--label',
                        os.path.join(d, 'ct256_label.nii.gz')], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.replace(ct + '.tmp.nii.gz', ct)
    return d, ct, phantom_data(mkdseg, TOP)


def group(a, d, ct, data, setting):
    env = {k: v for k, v in os.environ.items() if k not in ('OMP_WAIT_POLICY', 'GOMP_SPINCOUNT')}
    env.update(SETTINGS[setting], MKDSEG_THREADS=str(a.threads), OMP_NUM_THREADS=str(a.threads))
    model = os.path.join(TOP, 'models', 'default.safetensors')
    jobs = []
    for i in range(2):
        jobs.append(('segment', [a.mkdseg, 'segment', '--model', model, '--in', ct, '--out',
                                 os.path.join(d, f'seg{i}.nii.gz'), '--threads', str(a.threads)]))
    tr = [a.mkdseg, 'train', '--method', 'mkd', '--target-dir', os.path.join(data, 'ct'),
          '--assistant-dir', os.path.join(data, 'mr'), '--out', os.path.join(d, 'm.safetensors'),
          '--iters', str(a.iters), '--iters-per-epoch', '200', '--threads', str(a.threads),
          '--checkpoint-every', str(a.iters)]
    for k, v in CFG.items():
        tr += ['--' + k.replace('_', '-'), str(v)]
    jobs.append(('train', tr))
    t0 = time.perf_counter()
    procs = [(n, subprocess.Popen(c, env=env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)) for n, c in jobs]
    walls, cpu = [], 0.0
    pending = {p.pid: (n, p) for n, p in procs}
    res = {}
    while pending:
        pid, status, ru = os.wait4(-1, 0)
        if pid not in pending:
            continue
        n, p = pending.pop(pid)
        if os.waitstatus_to_exitcode(status) != 0:
            sys.exit(f'share_bench: {n} failed under {setting}')
        res[pid] = (n, time.perf_counter() - t0)
        cpu += ru.ru_utime + ru.ru_stime
    for n, p in procs:
        walls.append(res[p.pid][1])
    for f in ('m.safetensors', 'm.safetensors.ckpt'):
        if os.path.exists(os.path.join(d, f)):
            os.remove(os.path.join(d, f))
    return {'segment_s': walls[:2], 'train_s': walls[2], 'group_s': max(walls), 'cpu_s': cpu}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--mkdseg', default=os.path.join(TOP, 'build', 'mkdseg'))
    ap.add_argument('--threads', type=int, default=os.cpu_count())
    ap.add_argument('--rounds', type=int, default=2)
    ap.add_argument('--iters', type=int, default=30)
    ap.add_argument('--settings', default=','.join(SETTINGS))
    ap.add_argument('--out', default=os.path.join(TOP, 'build', 'share_bench.json'))
    a = ap.parse_args()
    names = [s for s in a.settings.split(',') if s]
    d, ct, data = inputs(a.mkdseg)
    with open('/proc/loadavg') as f:
        load = f.read().split()[:3]
    print(f'share_bench: 2 segmentations + 1 training job, {a.threads} threads each, '
          f'{a.rounds} rounds; load average {" ".join(load)}', flush=True)
    runs = {s: [] for s in names}
    for r in range(a.rounds):
        for s in names:
            g = group(a, d, ct, data, s)
            runs[s].append(g)
            print(f'{s:<8} round {r}: segment {g["segment_s"][0]:.1f} / {g["segment_s"][1]:.1f} s, '
                  f'train {g["train_s"]:.1f} s, all done {g["group_s"]:.1f} s, '
                  f'CPU {g["cpu_s"]:.1f} s', flush=True)
    summary = []
    for s in names:
        v = runs[s]
        summary.append({'setting': s, 'env': SETTINGS[s], 'threads': a.threads,
                        'segment_s': round(median([x for g in v for x in g['segment_s']]), 2),
                        'train_s': round(median([g['train_s'] for g in v]), 2),
                        'group_s': round(median([g['group_s'] for g in v]), 2),
                        'cpu_s': round(median([g['cpu_s'] for g in v]), 2), 'runs': v})
    with open(a.out, 'w') as f:
        json.dump(summary, f, indent=1)
    print(json.dumps([{k: x[k] for k in x if k != 'runs'} for x in summary]))


if __name__ == '__main__':
    main()
