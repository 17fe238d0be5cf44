#!/usr/bin/env bash
# `make cuda-test`: CUDA parity tests. Without a GPU it says so and exits 0.
set -uo pipefail
BUILD=${1:-build}
if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
  echo "cuda-test: no NVIDIA GPU on this machine; CUDA parity tests not run"
  exit 0
fi
if [ ! -x "$BUILD/tests/cuda" ]; then
  echo "cuda-test: $BUILD/tests/cuda was not built (no CUDA backend in this build)" >&2
  exit 1
fi
exec "$BUILD/tests/cuda" --jobs=1
