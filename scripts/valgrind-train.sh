#!/usr/bin/env bash
# `make valgrind`: memcheck on training steps of every network and on inference.
# Trains `mkd` (both generators and discriminators, both segmentors, Adam, the model file) for
# two iterations on one phantom CT and one phantom MR volume, then segments a volume with the
# model, each under valgrind; fails when valgrind reports a memory error or a definite or
# indirect leak. The oneDNN JIT kernels run under memcheck (--smc-check=all-non-file), at the
# AVX level (below).
#   scripts/valgrind-train.sh [BIN] [WORKDIR]
set -euo pipefail
# Set, so that mkdseg does not re-execute itself for its OpenMP default (server/cli/cli_omp.c):
# valgrind lets an exec'd image run natively, and memcheck would see none of the work.
export OMP_WAIT_POLICY=passive
# oneDNN's AVX2 sgemm kernels (the GEMM convolution path, engine/nn/cpu/cpu_conv_gemm.c) point
# the stack pointer into a heap buffer of their own for some shapes, and memcheck then reports
# their reads of it as reads past a block and of another thread's stack: a bare dnnl_sgemm call
# (M 32, N 9, K 256, on zeroed inputs) gives 4 such errors under ONEDNN_MAX_CPU_ISA=AVX2 and
# none under AVX or SSE41. Here oneDNN runs its AVX kernels; mkdseg's own code is unchanged.
export ONEDNN_MAX_CPU_ISA=${ONEDNN_MAX_CPU_ISA:-AVX}
BIN=${1:-build/mkdseg}
W=${2:-$(mktemp -d /tmp/mkdseg-valgrind.XXXXXX)}
command -v valgrind > /dev/null || { echo "valgrind-train: valgrind is not installed (scripts/deps.sh test)" >&2; exit 2; }
mkdir -p "$W/ct" "$W/mr"
"$BIN" phantom --modality ct --seed 11 --shape 48,48,16 --image "$W/ct/ct_1_image.nii.gz" --label "$W/ct/ct_1_label.nii.gz" 2>/dev/null
"$BIN" phantom --modality mr --seed 12 --shape 40,40,12 --image "$W/mr/mr_1_image.nii.gz" --label "$W/mr/mr_1_label.nii.gz" 2>/dev/null
VG=(valgrind --tool=memcheck --leak-check=full --errors-for-leak-kinds=definite,indirect
    --show-leak-kinds=definite,indirect --error-exitcode=99 --smc-check=all-non-file --num-callers=30)
rc=0
echo "valgrind-train: mkd training, 2 iterations (log: $W/train.vg)"
MKDSEG_THREADS=1 "${VG[@]}" --log-file="$W/train.vg" "$BIN" train --method mkd --target-dir "$W/ct" \
  --assistant-dir "$W/mr" --out "$W/model.safetensors" --iters 2 --iters-per-epoch 2 --size 32 --spacing 6 \
  --batch 2 --seg-width 4 --ngf 4 --ngen-blocks 1 --ndf 4 --seed 3 --threads 1 > "$W/train.out" 2>&1 || rc=$?
grep -E "ERROR SUMMARY|definitely lost|indirectly lost" "$W/train.vg" || true
# the timed choice of convolution path is whatever valgrind's timing makes it: one more
# iteration with every convolution it can run on the GEMM path (im2col, col2im, the blocks)
echo "valgrind-train: mkd training, 1 iteration, MKDSEG_CONV_PATH=gemm (log: $W/train-gemm.vg)"
MKDSEG_CONV_PATH=gemm MKDSEG_THREADS=1 "${VG[@]}" --log-file="$W/train-gemm.vg" "$BIN" train --method mkd \
  --target-dir "$W/ct" --assistant-dir "$W/mr" --out "$W/model-gemm.safetensors" --iters 1 --iters-per-epoch 1 \
  --size 32 --spacing 6 --batch 2 --seg-width 4 --ngf 4 --ngen-blocks 1 --ndf 4 --seed 3 --threads 1 \
  > "$W/train-gemm.out" 2>&1 || rc=$((rc ? rc : $?))
grep -E "ERROR SUMMARY|definitely lost|indirectly lost" "$W/train-gemm.vg" || true
echo "valgrind-train: segment with the model (log: $W/segment.vg)"
MKDSEG_THREADS=1 "${VG[@]}" --log-file="$W/segment.vg" "$BIN" segment --model "$W/model.safetensors" \
  --in "$W/ct/ct_1_image.nii.gz" --out "$W/seg.nii.gz" --threads 1 > "$W/segment.out" 2>&1 || rc=$((rc ? rc : $?))
grep -E "ERROR SUMMARY|definitely lost|indirectly lost" "$W/segment.vg" || true
if [ "$rc" != 0 ]; then
  echo "valgrind-train: FAILED (exit $rc); see $W" >&2
  tail -n 20 "$W/train.out" "$W/train-gemm.out" "$W/segment.out" >&2
  exit 1
fi
echo "valgrind-train: no memory error, no leak"
