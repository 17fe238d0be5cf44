#!/usr/bin/env bash
# The dashboard's browser tests (tests/browser/*.test.mjs): node's test runner drives Debian's
# Chromium through playwright-core (installed by npm ci from package-lock.json, no browser
# download) against a real `mkdseg serve` and PostgreSQL. Needs the environment scripts/test.sh
# exports (MKDSEG_TEST_DATABASE_URL, MKDSEG_TEST_BIN, MKDSEG_TEST_TMP). Screenshots go to
# build/screenshots/.
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
chromium=${MKDSEG_CHROMIUM:-/usr/bin/chromium}
if [ ! -x "$chromium" ] || ! command -v node >/dev/null; then
  echo "browser tests: FAILED: $chromium or node is missing (scripts/deps.sh --test installs them)" >&2
  exit 1
fi
if [ ! -d node_modules/playwright-core ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --ignore-scripts --no-audit --no-fund --loglevel=error || exit 1
fi
if [ ! -f server/api/ui/vendor/LICENSES.txt ]; then
  make --no-print-directory ui-vendor || exit 1
fi
exec node --test --test-concurrency=1 --test-reporter=spec tests/browser/
