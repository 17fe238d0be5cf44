#!/usr/bin/env bash
# `make run`: start the service in the foreground. Uses $DATABASE_URL when set; otherwise a
# project-local PostgreSQL cluster (scripts/pg.sh) and its database `mkdseg`.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$top/build}
if [ -z "${DATABASE_URL:-}" ]; then
  DATABASE_URL=$("$top/scripts/pg.sh" ensure mkdseg)
  export DATABASE_URL
fi
export MKDSEG_DATA_DIR=${MKDSEG_DATA_DIR:-$top/var/data}
export MKDSEG_UI_DIR=${MKDSEG_UI_DIR:-$top/server/api/ui}
export MKDSEG_DEFAULT_MODEL=${MKDSEG_DEFAULT_MODEL:-$top/models/default.safetensors}
exec "$BUILD/mkdseg" serve "$@"
