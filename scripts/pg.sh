#!/usr/bin/env bash
# Project-local PostgreSQL cluster: scripts/pg.sh start|stop|status|url [DB]|fresh DB|ensure DB
# The cluster lives under var/pg with its unix socket in var/run (no TCP port). PostgreSQL refuses
# to run as root, so as root the cluster belongs to the `postgres` user; when that user cannot
# reach the project folder (e.g. a clone under /root), the data lives under /var/tmp and var/pg
# is a link to it. Authentication is `trust` on the socket only; the socket directory is private.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
PGBIN=${PGBIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}
[ -x "$PGBIN/pg_ctl" ] || { echo "pg.sh: PostgreSQL server binaries not found (install postgresql)" >&2; exit 1; }
VAR="$top/var"
DATA="$VAR/pg"
mkdir -p "$VAR"

as_owner() {
  if [ "$(id -u)" -eq 0 ]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi
}

if [ "$(id -u)" -eq 0 ]; then
  PGUSER_NAME=postgres
  # Can the postgres user write inside var/? If not, keep the cluster in /var/tmp.
  if runuser -u postgres -- test -x "$VAR" 2>/dev/null && runuser -u postgres -- test -r "$top" 2>/dev/null; then
    SOCK="$VAR/run"
  else
    alt="/var/tmp/mkdseg-pg-$(echo -n "$top" | sha256sum | cut -c1-12)"
    mkdir -p "$alt"; chown postgres "$alt"; chmod 700 "$alt"
    [ -L "$DATA" ] || { rm -rf "$DATA"; ln -s "$alt/data" "$DATA"; }
    SOCK="$alt/run"
  fi
else
  PGUSER_NAME=$(id -un)
  SOCK="$VAR/run"
fi

real_data=$(readlink -f "$DATA" 2>/dev/null || echo "$DATA")

url() { echo "postgresql:///${1:-mkdseg}?host=$SOCK&user=$PGUSER_NAME"; }

running() { as_owner "$PGBIN/pg_ctl" -D "$real_data" status >/dev/null 2>&1; }

init() {
  [ -f "$real_data/PG_VERSION" ] && return 0
  mkdir -p "$real_data"
  [ "$(id -u)" -eq 0 ] && chown postgres "$real_data" "$VAR"
  as_owner "$PGBIN/initdb" -D "$real_data" -U "$PGUSER_NAME" --auth=trust -E UTF8 --no-locale >/dev/null
}

start() {
  init
  mkdir -p "$SOCK"; chmod 700 "$SOCK"
  [ "$(id -u)" -eq 0 ] && chown postgres "$SOCK"
  if running; then return 0; fi
  as_owner "$PGBIN/pg_ctl" -D "$real_data" -l "$real_data/../pg.log" -w -t 30 \
    -o "-k $SOCK -c listen_addresses='' -c max_connections=200 -c fsync=off -c synchronous_commit=off" \
    start >/dev/null || { tail -20 "$real_data/../pg.log" >&2; exit 1; }
}

psql_admin() { PGOPTIONS="-c client_min_messages=warning" "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 "$(url postgres)" "$@"; }

case "${1:-status}" in
  start)  start; echo "pg.sh: PostgreSQL running, socket in $SOCK" >&2 ;;
  stop)   if running; then as_owner "$PGBIN/pg_ctl" -D "$real_data" -m fast -w stop >/dev/null; fi ;;
  status) if running; then echo "running ($(url))"; else echo "stopped"; exit 3; fi ;;
  url)    url "${2:-mkdseg}" ;;
  ensure) start
          db=${2:?database name}
          if ! psql_admin -tAc "SELECT 1 FROM pg_database WHERE datname='$db'" | grep -q 1; then
            psql_admin -c "CREATE DATABASE \"$db\""
          fi
          url "$db" ;;
  fresh)  start
          db=${2:?database name}
          psql_admin -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)"
          psql_admin -c "CREATE DATABASE \"$db\""
          url "$db" ;;
  *) echo "usage: scripts/pg.sh start|stop|status|url [DB]|ensure DB|fresh DB" >&2; exit 2 ;;
esac
