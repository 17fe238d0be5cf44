#!/usr/bin/env bash
# tests/gpu/prepare.sh [BUILD]: run HERE (the build machine, no GPU needed) before a session
# with a lent GPU machine. It builds the two engine-only CUDA binaries and the mkdseg binary
# (for the end-to-end `mkdseg segment` timing) and packs them, with
# every runtime library they need that the GPU machine lacks (oneDNN, jansson, Criterion and
# its dependencies, libgomp...), into debs/gpu.tar.xz (debs/ is git-ignored; carry it).
#
# The libraries are the exact Debian 12 files the binaries were linked against (resolved
# with ldd), not .deb downloads: same bytes as `apt-get download` + `dpkg -x` would give,
# one compressed file, no package tools needed on the device. Left out on purpose: glibc,
# libstdc++ and libgcc_s (the device's own are used: ours need glibc 2.36) and the CUDA
# libraries (libcudart from the device's CUDA 13, libcudnn from /usr/local/cuda or from
# PyTorch's nvidia-cudnn wheel; tests/gpu/check.sh finds them). The binaries need glibc
# >= 2.34 on the device.
set -euo pipefail
BUILD=${1:-build}
cd "$(dirname "$0")/../.."
make -j2 --no-print-directory "$BUILD/tests/cuda" "$BUILD/tests/cuda-bench" "$BUILD/mkdseg"
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/gpu/bin" "$stage/gpu/lib" debs
cp "$BUILD/tests/cuda" "$BUILD/tests/cuda-bench" "$BUILD/mkdseg" "$stage/gpu/bin/"
for b in "$BUILD/tests/cuda" "$BUILD/tests/cuda-bench" "$BUILD/mkdseg"; do
  ldd "$b" | awk '/=> \//{print $3}'
done | sort -u | while read -r lib; do
  case "$(basename "$lib")" in
    libc.so*|libm.so*|libpthread.so*|libdl.so*|librt.so*|libresolv.so*|ld-linux*|\
    libstdc++.so*|libgcc_s.so*|libcudnn*|libcudart*|libcublas*|libcuda.so*) continue ;;
  esac
  cp -L "$lib" "$stage/gpu/lib/"
done
git rev-parse --short HEAD > "$stage/gpu/REVISION" 2>/dev/null || echo unknown > "$stage/gpu/REVISION"
tar -C "$stage" -cJf debs/gpu.tar.xz gpu
echo "gpu-prepare: debs/gpu.tar.xz ($(du -h debs/gpu.tar.xz | cut -f1)): $(ls "$stage/gpu/lib" | wc -l) libraries, binaries of $(cat "$stage/gpu/REVISION")"
echo "gpu-prepare: carry [\"debs\"] to the device and run: bash tests/gpu/check.sh"
