#!/usr/bin/env bash
# The CI Dice regression run: train a tiny `mkd` model on a handful of phantom
# volumes with a fixed seed, evaluate it on held-out phantom CT, print the evaluation JSON.
# tests/unit/test_dice_regression.c compares its ensemble mean Dice with tests/dice_floor.txt.
#   scripts/dice-ci.sh [BIN] [WORKDIR]
set -euo pipefail
# One convolution path for every shape: the engine's per-process timed choice between oneDNN
# and the direct kernels (engine/nn/cpu/cpu_conv_pick.c) changes float summation orders from run
# to run, and with them this tiny model's Dice (tests/dice_floor.txt). Forced, the
# run is bit-for-bit the same on a machine kind, so the gate measures the code, not the timing.
export MKDSEG_CONV_PATH=${MKDSEG_CONV_PATH:-onednn}
BIN=${1:-build/mkdseg}
W=${2:-$(mktemp -d /tmp/mkdseg-dice-ci.XXXXXX)}
ITERS=${DICE_CI_ITERS:-600}
mkdir -p "$W/ct" "$W/mr" "$W/test"
for i in 1 2 3; do
  "$BIN" phantom --modality ct --seed $((2000 + i)) --image "$W/ct/ct_$i""_image.nii.gz" --label "$W/ct/ct_$i""_label.nii.gz" 2>/dev/null
  "$BIN" phantom --modality mr --seed $((1000 + i)) --image "$W/mr/mr_$i""_image.nii.gz" --label "$W/mr/mr_$i""_label.nii.gz" 2>/dev/null
done
for i in 1 2; do
  "$BIN" phantom --modality ct --seed $((3000 + i)) --image "$W/test/t_$i""_image.nii.gz" --label "$W/test/t_$i""_label.nii.gz" 2>/dev/null
done
"$BIN" train --method mkd --target-dir "$W/ct" --assistant-dir "$W/mr" --out "$W/model.safetensors" --json \
  --iters "$ITERS" --iters-per-epoch 200 --size 64 --spacing 3 --batch 4 --seg-width 8 --ngf 8 --ngen-blocks 2 \
  --ndf 8 --lr-seg 3e-3 --aug-flip 0 --seed 7 --threads "${DICE_CI_THREADS:-1}" > "$W/train.out" 2> "$W/train.log"
"$BIN" eval --model "$W/model.safetensors" --dir "$W/test" --json --threads "${DICE_CI_THREADS:-1}"
