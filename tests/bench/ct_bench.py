#!/usr/bin/python3
"""ct_bench.py: a whole CT through `mkdseg segment` against tests/bench/torch_segment.py, for
`make bench` (workload ct512_segment).

    /usr/bin/python3 tests/bench/ct_bench.py --side mkdseg|torch [--mkdseg build/mkdseg]
                                             [--threads T] [--reps R]

The volume: `mkdseg phantom --modality ct --seed 7 --shape 512,512,300` (int16 HU, 96 MB as
.nii.gz), made once under build/bench_ct/ (about 1 CPU-minute). The model: models/default.
safetensors (the shipped default: an mkd ensemble of two width-8 segmentors at 3 mm, tiles
of 64). Each repetition is one whole process, from start to the written label file: for
mkdseg `mkdseg segment --threads T`, for PyTorch torch_segment.py (its import of torch is
left out of its time). Prints one JSON line as torch_bench.py: ms (median of the
repetitions), times_ms, peak_rss_mb (the largest of the repetitions' processes, from
wait4), flops 0 (not counted), and the label voxel counts of the last output, so that the two
sides can be compared.
"""
import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.abspath(os.path.join(HERE, '..', '..'))
MODEL = os.path.join(TOP, 'tests', 'data', 'mkd_ensemble.safetensors')  # an mkd ensemble (the shipped default is one segmentor)


def volume(mkdseg):
    d = os.path.join(TOP, 'build', 'bench_ct')
    img, lab = os.path.join(d, 'ct512.nii.gz'), os.path.join(d, 'ct512_label.nii.gz')
    if not os.path.exists(img):
        os.makedirs(d, exist_ok=True)
        subprocess.run([mkdseg, 'phantom', '--modality', 'ct', '--seed', '7', '--shape', '512,512,300',
                        '--image', img + '.tmp.nii.gz', '--label', lab], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.replace(img + '.tmp.nii.gz', img)
    return d, img


def run_one(a, d, img, out):
    env = dict(os.environ, MKDSEG_THREADS=str(a.threads), OMP_NUM_THREADS=str(a.threads))
    if a.side == 'mkdseg':
        cmd = [a.mkdseg, 'segment', '--model', MODEL, '--in', img, '--out', out,
               '--threads', str(a.threads)]
    else:
        cmd = ['/usr/bin/python3', os.path.join(HERE, 'torch_segment.py'), '--model', MODEL,
               '--in', img, '--out', out, '--threads', str(a.threads)]
    # resource usage of exactly this child: run it under `python -c` with wait4
    wrapper = ('import json,os,subprocess,sys,time\n'
               't=time.perf_counter(); p=subprocess.Popen(sys.argv[1:], stdout=subprocess.PIPE)\n'
               'o=p.stdout.read(); _,s,r=os.wait4(p.pid,0)\n'
               'print(json.dumps({"rc":os.waitstatus_to_exitcode(s),"s":time.perf_counter()-t,'
               '"rss":r.ru_maxrss/1024.0,"out":o.decode()}))')
    p = subprocess.run(['/usr/bin/python3', '-c', wrapper] + cmd, stdout=subprocess.PIPE,
                       text=True, env=env)
    r = json.loads(p.stdout)
    if r['rc'] != 0:
        sys.exit(f'ct_bench: {" ".join(cmd)} failed ({r["rc"]})')
    secs = r['s']
    if a.side == 'torch':          # its own clock leaves out importing torch
        secs = json.loads(r['out'].strip().splitlines()[-1])['seconds']
    return secs, r['rss']


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--side', choices=['mkdseg', 'torch'], required=True)
    ap.add_argument('--mkdseg', default=os.path.join(TOP, 'build', 'mkdseg'))
    ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--reps', type=int, default=1)
    a = ap.parse_args()
    d, img = volume(a.mkdseg)
    out = os.path.join(d, f'seg_{a.side}_{os.getpid()}.nii.gz')
    times, rss = [], 0.0
    for _ in range(a.reps):
        s, r = run_one(a, d, img, out)
        times.append(s * 1e3)
        rss = max(rss, r)
    import nibabel as nib
    import numpy as np
    lab = np.asarray(nib.load(out).dataobj)
    vals, counts = np.unique(lab, return_counts=True)
    os.remove(out)
    times_sorted = sorted(times)
    print(json.dumps({'impl': a.side, 'workload': 'ct512_segment', 'threads': a.threads,
                      'ms': round(times_sorted[len(times) // 2], 1), 'times_ms': [round(t, 1) for t in times],
                      'peak_rss_mb': round(rss, 1), 'flops': 0, 'reps': a.reps, 'warmup': 0,
                      'labels': {int(v): int(c) for v, c in zip(vals, counts)}}))


if __name__ == '__main__':
    main()
