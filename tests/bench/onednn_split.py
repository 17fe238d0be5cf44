#!/usr/bin/python3
"""onednn_split.py: where oneDNN's time goes in one pass of a `mkdseg bench` workload:
convolutions, deconvolutions, and reorders of activations and of weights, from oneDNN's own
execution log (ONEDNN_VERBOSE=1), so that the cost of converting between mkdseg's plain NCHW
and oneDNN's blocked layouts can be read off (docs/benchmarks.md).

    /usr/bin/python3 tests/bench/onednn_split.py [--mkdseg build/mkdseg] [--workload seg_infer_b1]
        [--threads 1]

Runs the workload forced to oneDNN (MKDSEG_CONV_PATH=onednn: no timed choice, so every pass
runs the same primitives) with 3 warm-up passes and 1 timed pass, and sums the log's exec
lines of the last pass (the log's lines divided evenly among the 4 passes). A reorder whose
layouts name a blocked output-channel dimension ("16a") is a weight reorder.
"""
import argparse
import collections
import os
import subprocess

TOP = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..'))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--mkdseg', default=os.path.join(TOP, 'build', 'mkdseg'))
    ap.add_argument('--workload', default='seg_infer_b1')
    ap.add_argument('--threads', type=int, default=1)
    a = ap.parse_args()
    env = dict(os.environ, MKDSEG_CONV_PATH='onednn', ONEDNN_VERBOSE='1')
    out = subprocess.run([a.mkdseg, 'bench', '--workload', a.workload, '--threads',
                          str(a.threads), '--warmup', '3', '--reps', '1'], env=env, check=True,
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True).stdout
    lines = [l for l in out.splitlines() if l.startswith('onednn_verbose,exec,')]
    last = lines[-(len(lines) // 4):]
    tot = collections.Counter()
    for l in last:
        f = l.split(',')
        kind = f[3]
        if kind == 'reorder':
            kind = 'reorder (weights)' if '16a' in f[6] else 'reorder (activations)'
        tot[kind] += float(f[-1])
    s = sum(tot.values())
    print(f'{a.workload}, {a.threads} thread(s), one pass, oneDNN time {s:.1f} ms '
          f'({len(last)} primitive calls):')
    for k, v in tot.most_common():
        print(f'  {k:24s} {v:8.2f} ms  {100 * v / s:5.1f}%')


if __name__ == '__main__':
    main()
