#!/usr/bin/env bash
# Checks docker/Dockerfile against what the build really needs, without Docker (no daemon on
# the build machines): every -dev package of scripts/deps.sh's build list is installed in the
# build stage, every shared library build/mkdseg links (CUDA's aside: the image is the CPU
# build) comes from a package the runtime stage installs, and the runtime stage ships the
# default model and the dashboard that `mkdseg serve` looks for.
# Usage: scripts/check-docker.sh [build/mkdseg]
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
bin=${1:-$top/build/mkdseg}
df=$top/docker/Dockerfile
rc=0
# the two stages' text: the build stage up to the second FROM, the runtime stage after it
build_stage=$(awk '/^FROM /{n++} n==1' "$df")
run_stage=$(awk '/^FROM /{n++} n==2' "$df")

# 1. build packages: the base list of deps.sh (the first pkgs=( ... ) assignment)
dev=$(awk '/^pkgs=\(/{on=1} on{print} on&&/\)/{exit}' "$top/scripts/deps.sh" |
  tr ' ()' '\n\n\n' | grep -- '-dev$')
for p in $dev; do
  [ "$p" = libcriterion-dev ] && continue # the tests' library: the image builds `all` only
  if ! grep -qw -- "$p" <<<"$build_stage"; then
    echo "check-docker: the build stage does not install $p (scripts/deps.sh needs it)"
    rc=1
  fi
done

# 2. runtime packages: the package of each NEEDED library of the binary (libc6 and libgcc-s1
# are in every Debian image)
if [ ! -x "$bin" ]; then
  echo "check-docker: $bin is not built"
  exit 1
fi
for lib in $(readelf -d "$bin" | awk '/NEEDED/{gsub(/[][]/,"",$5); print $5}'); do
  case $lib in libcud* | libcublas* | libcudart*) continue ;; esac
  path=$(ldconfig -p | awk -v l="$lib" '$1==l{print $NF; exit}')
  real=$(readlink -f "$path")
  # with merged /usr, dpkg may know the file under /lib or under /usr/lib
  pkg=$(dpkg -S "$real" "/usr$real" "${real#/usr}" 2>/dev/null | head -1 | cut -d: -f1)
  if [ -z "$pkg" ]; then
    echo "check-docker: no Debian package owns $lib ($path)"
    rc=1
  elif [ "$pkg" != libc6 ] && [ "$pkg" != libgcc-s1 ] && ! grep -qw -- "$pkg" <<<"$run_stage"; then
    echo "check-docker: the runtime stage does not install $pkg (build/mkdseg links $lib)"
    rc=1
  fi
done

# 3. what serve opens at start-up: the default model and the dashboard folder, each copied
# into the image at the path its setting names
for kv in MKDSEG_DEFAULT_MODEL MKDSEG_UI_DIR; do
  dest=$(grep -o "$kv=[^ ]*" <<<"$run_stage" | head -1 | cut -d= -f2)
  if [ -z "$dest" ]; then
    echo "check-docker: the runtime stage does not set $kv"
    rc=1
  elif ! grep -E "^COPY .* $dest/?\$" <<<"$run_stage" >/dev/null; then
    echo "check-docker: nothing is copied to $dest ($kv)"
    rc=1
  fi
done
[ $rc -eq 0 ] && echo "check-docker: docker/Dockerfile installs what build/mkdseg needs and ships the model and the dashboard"
exit $rc
