#!/usr/bin/env bash
# The property docker/Dockerfile and docker/compose.yaml rely on, tested without Docker: the
# service runs as an unprivileged user (uid 65534) with MKDSEG_AUTH=on, on a root file system
# that is read-only everywhere except its data folder and a fresh /tmp (a private mount
# namespace: every mount remounted read-only, then the data folder bound writable and a tmpfs on
# /tmp, as compose's read_only: true, tmpfs: /tmp and a volume do). It must start, answer
# /readyz, refuse an unauthenticated /segment (401), segment a phantom CT with a token, and exit
# 0 on SIGTERM; writes anywhere else fail with EROFS (checked first, so that the test shows the
# setup is really read-only). Needs root (unshare, mount); skipped otherwise.
# Usage: scripts/readonly-test.sh [path/to/mkdseg]
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
BIN=$(readlink -f "${1:-$top/build/mkdseg}")
UID_RO=65534

if [ "${2:-}" = "--inner" ]; then
  # inside the private mount namespace: $3 work folder, $4 database URL, $5 token
  work=$3 url=$4 tok=$5
  # the data folder becomes a mount of its own first (a bind takes its source's flags), then
  # every other mount is made read-only
  mount --bind "$work/data" "$work/data"
  # the old /tmp stays reachable under the work folder: a project folder under /tmp (a CI
  # clone) would be hidden by the fresh tmpfs below, and is bound back from here
  mount --rbind /tmp "$work/oldtmp"
  awk '{print $5}' /proc/self/mountinfo | sort -u | while read -r mp; do
    case "$mp" in /proc|/proc/*|/sys|/sys/*|/dev|/dev/*|"$work/data") continue ;; esac
    mount -o remount,bind,ro "$mp" 2>/dev/null || true
  done
  mount -t tmpfs -o size=256m,mode=1777 tmpfs /tmp
  for keep in "$top" "$(dirname "$BIN")"; do
    case "$keep" in
      /tmp/*)
        mountpoint -q "$keep" && continue
        mkdir -p "$keep"
        mount --rbind "$work/oldtmp/${keep#/tmp/}" "$keep"
        mount -o remount,bind,ro "$keep"
        ;;
    esac
  done
  # the project's PostgreSQL listens on a socket in a folder only its owner may enter: the
  # socket itself is bound where the unprivileged user can reach it
  sock=$(sed -n 's/.*host=\([^&]*\).*/\1/p' <<<"$url")
  mkdir /tmp/pg && touch /tmp/pg/.s.PGSQL.5432
  mount --bind "$sock/.s.PGSQL.5432" /tmp/pg/.s.PGSQL.5432
  url=${url/host=$sock/host=/tmp/pg}
  as_ro() { setpriv --reuid=$UID_RO --regid=$UID_RO --clear-groups --inh-caps=-all "$@"; }
  fail() { echo "readonly-test: FAIL: $*" >&2; exit 1; }
  touch "$top/ro-probe" 2>/dev/null && fail "the project folder is writable"
  touch /etc/ro-probe 2>/dev/null && fail "/etc is writable"
  as_ro touch "$work/ro-probe" 2>/dev/null && fail "the work folder is writable"
  as_ro touch "$work/data/probe" /tmp/probe || fail "the data folder or /tmp is not writable"
  rm -f "$work/data/probe" /tmp/probe
  cd "$top"
  # setpriv and env exec: $! is the server itself
  setpriv --reuid=$UID_RO --regid=$UID_RO --clear-groups --inh-caps=-all \
    env -i PATH=/usr/bin:/bin HOME=/nonexistent MKDSEG_AUTH=on MKDSEG_THREADS=1 \
    "$BIN" serve --host 127.0.0.1 --port 0 --database-url "$url" --data-dir "$work/data" \
    --default-model models/default.safetensors >/dev/null 2>/tmp/server.log &
  pid=$!
  trap 'kill -KILL $pid 2>/dev/null || true' EXIT
  port=
  for _ in $(seq 1200); do # 120 s: a hang, not a slow machine
    port=$(sed -n 's/.*"msg":"listening".*"port":\([0-9]*\).*/\1/p' /tmp/server.log | head -1)
    [ -n "$port" ] && break
    kill -0 $pid 2>/dev/null || break
    sleep 0.1
  done
  [ -n "$port" ] || { cat /tmp/server.log >&2; fail "the server did not start"; }
  base=http://127.0.0.1:$port
  st=$(curl -s -o /dev/null -w '%{http_code}' "$base/readyz")
  [ "$st" = 200 ] || { cat /tmp/server.log >&2; fail "/readyz answered $st"; }
  st=$(curl -s -o /dev/null -w '%{http_code}' -F "vol=@$work/ct.nii.gz" "$base/segment")
  [ "$st" = 401 ] || fail "/segment without a token answered $st, not 401"
  st=$(curl -s -o /tmp/seg.nii.gz -w '%{http_code}' -H "Authorization: Bearer $tok" \
    -F "vol=@$work/ct.nii.gz" "$base/segment")
  [ "$st" = 200 ] || { cat /tmp/seg.nii.gz /tmp/server.log >&2; fail "/segment answered $st"; }
  "$BIN" info /tmp/seg.nii.gz >/dev/null || fail "the answer is not a NIfTI label map"
  ls "$work/data/blobs"/*/* >/dev/null || fail "nothing was stored in the data folder"
  kill -TERM $pid
  rc=0
  wait $pid || rc=$?
  [ $rc = 0 ] || { cat /tmp/server.log >&2; fail "exit status $rc on SIGTERM"; }
  if grep -q '"level":"error"' /tmp/server.log; then
    grep '"level":"error"' /tmp/server.log >&2
    fail "errors in the log"
  fi
  echo "readonly-test: started as uid $UID_RO with a read-only root, /readyz 200, /segment 401" \
    "without a token and 200 with one, exit 0"
  exit 0
fi

if [ "$(id -u)" -ne 0 ] || ! unshare --mount true 2>/dev/null; then
  echo "readonly-test: skipped (needs root and mount namespaces)"
  exit 0
fi
work=$(mktemp -d /var/tmp/mkdseg-ro.XXXXXX)
mkdir "$work/oldtmp"
trap 'rm -rf "$work"' EXIT
mkdir "$work/data"
chown $UID_RO:$UID_RO "$work/data"
chmod 755 "$work"
url=$("$top/scripts/pg.sh" fresh mkdseg_ro)
"$BIN" phantom --modality ct --seed 3 --shape 40,40,16 --image "$work/ct.nii.gz" \
  --label "$work/ct_label.nii.gz" 2>/dev/null
"$BIN" migrate --database-url "$url" 2>/dev/null
tok=$("$BIN" token create --name readonly-test --scopes read,segment --database-url "$url" 2>/dev/null)
chmod 644 "$work/ct.nii.gz"
unshare --mount --propagation private "$top/scripts/readonly-test.sh" "$BIN" --inner "$work" "$url" "$tok"
