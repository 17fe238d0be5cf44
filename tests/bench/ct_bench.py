#!/usr/bin/python3
"""ct_bench.py: a whole CT through `mkdseg segment` against tests/bench/torch_segment.py, for
`make bench` (workload ct512_segment).

    /usr/bin/python3 tests/bench/ct_bench.py --side mkdseg|torch [--mkdseg build/mkdseg]
                                             [--threads T] [--reps R] [--model default|paper]

The volume: `mkdseg phantom --modality ct --seed 7 --shape 512,512,300` (int16 HU, 96 MB as
.nii.gz), made once under build/bench_ct/ (about 1 CPU-minute). The model:
tests/data/mkd_ensemble.safetensors (a fixed mkd ensemble of two width-8 segmentors at 3 mm,
tiles of 64), or with --model paper (workload ct512_segment_paper) a paper-size ensemble: two
width-32 segmentors, 256-pixel tiles at 1.4 mm, made once under build/bench_ct/ by two
iterations of `mkdseg train --method mkd` on the phantom data of mkd_bench.py (the weights
do not matter for the time; both sides read the same file). Each repetition is one whole process, from start to the written label file: for
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
MODEL = os.path.join(TOP, 'tests', 'data', 'mkd_ensemble.safetensors')  # a fixed mkd ensemble, whatever the shipped default is


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


# the paper-size ensemble (the paper's segmentor and tiles; small generators and batch 1, as
# only the segmentors are kept for inference)
PAPER = dict(size=256, spacing=1.4, seg_width=32, batch=1, ngf=8, ngen_blocks=1, ndf=8,
             aug_flip=0)


def paper_model(mkdseg):
    sys.path.insert(0, HERE)
    from mkd_bench import phantom_data
    out = os.path.join(TOP, 'build', 'bench_ct', 'paper.safetensors')
    if os.path.exists(out):
        return out
    d = phantom_data(mkdseg, TOP)
    cmd = [mkdseg, 'train', '--method', 'mkd', '--target-dir', os.path.join(d, 'ct'),
           '--assistant-dir', os.path.join(d, 'mr'), '--out', out + '.tmp.safetensors',
           '--iters', '2', '--iters-per-epoch', '2', '--checkpoint-every', '2']
    for k, v in PAPER.items():
        cmd += ['--' + k.replace('_', '-'), str(v)]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.replace(out + '.tmp.safetensors', out)
    for f in (out + '.tmp.safetensors.ckpt',):
        if os.path.exists(f):
            os.remove(f)
    return out


def run_one(a, d, img, out):
    env = dict(os.environ, MKDSEG_THREADS=str(a.threads), OMP_NUM_THREADS=str(a.threads))
    if a.side == 'mkdseg':
        cmd = [a.mkdseg, 'segment', '--model', a.model_path, '--in', img, '--out', out,
               '--threads', str(a.threads)]
    else:
        cmd = ['/usr/bin/python3', os.path.join(HERE, 'torch_segment.py'), '--model', a.model_path,
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


def inflate_cost(mkdseg, img, rounds=3):
    """CPU seconds (user + system, least of rounds) of `mkdseg info` reading the whole volume
    with each inflater (MKDSEG_INFLATE=auto: libdeflate; zlib), alternating, and their peak RSS"""
    best = {}
    for _ in range(rounds):
        for mode in ('auto', 'zlib'):
            p = subprocess.Popen([mkdseg, 'info', img], stdout=subprocess.DEVNULL,
                                 env=dict(os.environ, MKDSEG_INFLATE=mode))
            _, st, ru = os.wait4(p.pid, 0)
            if os.waitstatus_to_exitcode(st) != 0:
                sys.exit(f'ct_bench: mkdseg info {img} failed')
            cpu, rss = ru.ru_utime + ru.ru_stime, ru.ru_maxrss / 1024.0
            if mode not in best or cpu < best[mode][0]:
                best[mode] = (cpu, rss)
    return {'libdeflate_cpu_s': round(best['auto'][0], 3), 'zlib_cpu_s': round(best['zlib'][0], 3),
            'libdeflate_rss_mb': round(best['auto'][1], 1), 'zlib_rss_mb': round(best['zlib'][1], 1)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--side', choices=['mkdseg', 'torch'], required=True)
    ap.add_argument('--mkdseg', default=os.path.join(TOP, 'build', 'mkdseg'))
    ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--reps', type=int, default=1)
    ap.add_argument('--model', choices=['default', 'paper'], default='default')
    a = ap.parse_args()
    d, img = volume(a.mkdseg)
    a.model_path = MODEL if a.model == 'default' else paper_model(a.mkdseg)
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
    name = 'ct512_segment' if a.model == 'default' else 'ct512_segment_paper'
    extra = {'inflate': inflate_cost(a.mkdseg, img)} if a.side == 'mkdseg' else {}
    print(json.dumps({**extra, 'impl': a.side, 'workload': name, 'threads': a.threads,
                      'ms': round(times_sorted[len(times) // 2], 1), 'times_ms': [round(t, 1) for t in times],
                      'peak_rss_mb': round(rss, 1), 'flops': 0, 'reps': a.reps, 'warmup': 0,
                      'labels': {int(v): int(c) for v, c in zip(vals, counts)}}))


if __name__ == '__main__':
    main()
