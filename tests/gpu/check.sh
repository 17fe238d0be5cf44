#!/usr/bin/env bash
# tests/gpu/check.sh: the one script to run on a lent GPU machine (issue 7), from the
# repository root of the copied working tree, with debs/gpu.tar.xz carried (made here by
# tests/gpu/prepare.sh). It writes everything under $OUT (default /tmp/mkdseg-gpu):
#   env.txt        nvidia-smi, driver, library resolution (ldd)
#   cuda-test.log  build/tests/cuda: every op vs PyTorch goldens and vs the CPU, Adam, the
#                  fused conv, argmax, one mkd iteration GPU vs CPU (TF32 off)
#   memcheck.log   compute-sanitizer memcheck on the mkd training-step test
#   bench.json, bench.md, bench.log   GPU benchmark against PyTorch on the same GPU
#   summary.txt    one line per stage: PASS/FAIL and seconds
# Stages have their own time limits (200 + 150 + 230 s at most; expected 3-5 minutes); a failing stage does not
# stop the next. Exit status: 0 when every stage passed.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/mkdseg-gpu}
mkdir -p "$OUT"
SUM="$OUT/summary.txt"
: > "$SUM"
fail=0
stage() {   # stage NAME SECONDS-LIMIT LOG CMD...
  local name=$1 lim=$2 log=$3
  shift 3
  local t0=$SECONDS rc
  timeout --kill-after=10 "$lim" "$@" > "$log" 2>&1
  rc=$?
  local st=PASS
  [ $rc -eq 0 ] || { st="FAIL(rc=$rc)"; fail=1; }
  echo "$name $st $((SECONDS - t0))s" | tee -a "$SUM"
  return $rc
}

if [ ! -f debs/gpu.tar.xz ]; then
  echo "check: debs/gpu.tar.xz missing: run tests/gpu/prepare.sh on the build machine and carry debs" | tee -a "$SUM"
  exit 1
fi
WORK=$(mktemp -d)
tar -C "$WORK" -xJf debs/gpu.tar.xz
BIN=$WORK/gpu/bin
LIB=$WORK/gpu/lib

# CUDA runtime and cuDNN: the toolkit's lib64, else the PyTorch wheel's nvidia/* folders.
PY=$(command -v python3 || echo /usr/bin/python3)
CUDA_LIBDIRS=""
for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib; do
  [ -d "$d" ] && CUDA_LIBDIRS="$CUDA_LIBDIRS:$d"
done
WHEEL_LIBS=$("$PY" - <<'PYEOF' 2>/dev/null
import glob, os, site
roots = site.getsitepackages() + [site.getusersitepackages()]
out = []
for r in roots:
    for d in glob.glob(os.path.join(r, 'nvidia', '*', 'lib')) + glob.glob(os.path.join(r, 'nvidia', 'cu*', 'lib')):
        if glob.glob(os.path.join(d, 'libcudnn*.so*')) or glob.glob(os.path.join(d, 'libcudart*.so*')) or glob.glob(os.path.join(d, 'libcublas*.so*')):
            out.append(d)
print(':'.join(dict.fromkeys(out)))
PYEOF
)
HAVE_CUDNN=0
for d in ${CUDA_LIBDIRS//:/ }; do ls "$d"/libcudnn.so.9* >/dev/null 2>&1 && HAVE_CUDNN=1; done
# cuDNN from /usr/local/cuda when it has one, else the wheel's (after the toolkit's cudart)
# Python (torch) keeps its own environment; the carried libraries are for our binaries only
# (bench.py prepends MKDSEG_BIN_LD_LIBRARY_PATH for the mkdseg processes it starts).
PY_LD="${LD_LIBRARY_PATH:-}"
export LD_LIBRARY_PATH="$LIB${CUDA_LIBDIRS}${WHEEL_LIBS:+:$WHEEL_LIBS}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export MKDSEG_BIN_LD_LIBRARY_PATH="$LD_LIBRARY_PATH"
export NVIDIA_TF32_OVERRIDE=0
unset MKDSEG_CUDA_TF32

{
  echo "date: $(date -u)"; echo "revision of binaries: $(cat "$WORK/gpu/REVISION")"
  echo "working tree: $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
  nvidia-smi 2>&1 | head -20
  echo "cudnn in toolkit: $HAVE_CUDNN; wheel libs: ${WHEEL_LIBS:-none}"
  echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
  echo "--- ldd cuda"; ldd "$BIN/cuda"
  LD_LIBRARY_PATH="$PY_LD" "$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version(), torch.cuda.get_device_name(0))' 2>&1
} > "$OUT/env.txt" 2>&1
if ldd "$BIN/cuda" | grep -q "not found"; then
  echo "libraries not found (see env.txt):" | tee -a "$SUM"
  ldd "$BIN/cuda" | grep "not found" | tee -a "$SUM"
fi

# 1. parity tests (Criterion forks one process per test, each initialising CUDA and cuDNN;
#    four at a time share the GPU)
stage cuda-test 200 "$OUT/cuda-test.log" "$BIN/cuda" --jobs=4 --verbose=1
grep -E "^\[(FAIL|----)\]|Synthesis" "$OUT/cuda-test.log" | tail -40 >> "$SUM"

# 2. compute-sanitizer memcheck on one mkd training step (the test also runs the CPU step).
#    Leak checking off for the verdict: the fused Adam's descriptor table is a process-lifetime
#    allocation by design (kernels/cuda_adam.cu).
SAN=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
if [ -x "$SAN" ]; then
  stage memcheck 150 "$OUT/memcheck.log" "$SAN" --tool memcheck --target-processes all \
    --leak-check no --error-exitcode 3 "$BIN/cuda" --jobs=1 --filter 'cuda_train/*'
  grep -E "ERROR SUMMARY|Synthesis|\[FAIL\]" "$OUT/memcheck.log" | head >> "$SUM"
else
  echo "memcheck SKIPPED (no compute-sanitizer)" | tee -a "$SUM"
  fail=1
fi

# 3. benchmark against PyTorch on the same GPU (TF32 off for both)
stage bench 230 "$OUT/bench.log" env LD_LIBRARY_PATH="$PY_LD" "$PY" tests/gpu/bench.py --bin "$BIN/cuda-bench" --out "$OUT"
[ -f "$OUT/bench.md" ] && cat "$OUT/bench.md" >> "$SUM"

rm -rf "$WORK"
echo "check: $([ $fail -eq 0 ] && echo PASS || echo FAIL); logs in $OUT" | tee -a "$SUM"
exit $fail
