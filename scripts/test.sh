#!/usr/bin/env bash
# `make test`: start the local PostgreSQL, create a fresh test database, run every test binary.
# Exits non-zero when any test fails.
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-build}
cd "$top"
export MKDSEG_TEST_DATABASE_URL=$(scripts/pg.sh fresh mkdseg_test) || exit 1
export MKDSEG_TEST_PG="$top/scripts/pg.sh"
export MKDSEG_TEST_BIN="$top/$BUILD/mkdseg"
export MKDSEG_TEST_TMP=$(mktemp -d /tmp/mkdseg-test.XXXXXX)
export MKDSEG_TEST_ORTHANC=$(scripts/orthanc.sh fresh) || exit 1  # a real PACS for the DICOMweb tests
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$top/tests/lib/lsan.supp:print_suppressions=0}
trap 'rm -rf "$MKDSEG_TEST_TMP"; scripts/orthanc.sh stop' EXIT
rc=0
echo "== layers: server/ includes point down (scripts/check-layers.sh)"
scripts/check-layers.sh || rc=1
echo "== function length: no server/ function over 80 lines (scripts/check-func-length.sh)"
scripts/check-func-length.sh || rc=1
echo "== unit tests"
"$BUILD/tests/unit" --jobs=${MKDSEG_TEST_JOBS:-2} ${CRITERION_ARGS:-} || rc=1
echo "== HTTP tests (real server, real PostgreSQL, libcurl)"
"$BUILD/tests/http" --jobs=1 ${CRITERION_ARGS:-} || rc=1
echo "== valgrind: memcheck on two mkd training iterations and a segmentation"
if ldd "$BUILD/mkdseg" | grep -q libasan; then
  echo "valgrind: skipped for the ASan build (LeakSanitizer checks it)"
else
  scripts/valgrind-train.sh "$BUILD/mkdseg" "$MKDSEG_TEST_TMP/valgrind" || rc=1
fi
echo "== Docker image: its packages, model and dashboard against build/mkdseg (scripts/check-docker.sh)"
scripts/check-docker.sh "$BUILD/mkdseg" || rc=1
echo "== read-only root: uid 65534, auth on, writable only the data folder and /tmp (scripts/readonly-test.sh)"
scripts/readonly-test.sh "$BUILD/mkdseg" || rc=1
echo "== browser tests (Chromium + playwright-core against mkdseg serve; tests/browser)"
scripts/browser-test.sh || rc=1
echo "== CUDA tests"
scripts/cuda-test.sh "$BUILD" || rc=1
exit $rc
