#!/usr/bin/env bash
# `make cuda-test`: CUDA parity tests (build/tests/cuda). Without a GPU it says so, runs only the
# tests that need none (cuda_core: the host-record path a CUDA context takes), and exits 0.
set -uo pipefail
BUILD=${1:-build}
if [ ! -x "$BUILD/tests/cuda" ]; then
  echo "cuda-test: $BUILD/tests/cuda was not built (no CUDA backend in this build); nothing to run"
  exit 0
fi
if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
  echo "cuda-test: no NVIDIA GPU on this machine; GPU parity tests not run (only cuda_core)"
  exec "$BUILD/tests/cuda" --jobs=1 --filter 'cuda_core/*'
fi
exec "$BUILD/tests/cuda" --jobs=1
