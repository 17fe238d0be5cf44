#!/usr/bin/env bash
# The one-way rule of server/'s layers (docs/architecture.md): a file may include headers of
# its own room and of the rooms below it, never of a room above. Rooms, lowest first:
#   core < store < http < jobs < api < cli
# The engine (engine/, kernels/) sits below every room and never includes a server header.
# Prints every offending include and exits 1 when there is one.
set -uo pipefail
cd "$(dirname "$0")/.."
rooms=(core store http jobs api cli)
declare -A rank home
for i in "${!rooms[@]}"; do rank[${rooms[$i]}]=$i; done
for r in "${rooms[@]}"; do
  for h in server/"$r"/*.h; do
    [ -e "$h" ] || continue
    b=$(basename "$h")
    if [ -n "${home[$b]:-}" ]; then echo "check-layers: $b is in two rooms (${home[$b]}, $r)"; exit 1; fi
    home[$b]=$r
  done
done
bad=0
for f in server/*; do
  [ -d "$f" ] && continue
  case "$f" in *.md) continue ;; esac
  echo "check-layers: $f is outside every room (server/<room>/)"; bad=1
done
for d in server/*/; do
  r=$(basename "$d")
  if [ -z "${rank[$r]:-}" ]; then echo "check-layers: $d is not a known room (${rooms[*]})"; bad=1; continue; fi
  for f in "$d"*.c "$d"*.h; do
    [ -e "$f" ] || continue
    while IFS=: read -r line inc; do
      hr=${home[$inc]:-}
      [ -z "$hr" ] && continue   # an engine or system header
      if [ "${rank[$hr]}" -gt "${rank[$r]}" ]; then
        echo "check-layers: $f:$line includes $inc from $hr/, a room above $r/"; bad=1
      fi
    done < <(grep -n '^#include "' "$f" | sed -E 's/^([0-9]+):#include "([^"]+)".*/\1:\2/')
  done
done
while IFS=: read -r f line inc; do
  if [ -n "${home[$(basename "$inc")]:-}" ]; then
    echo "check-layers: $f:$line includes the server header $inc"; bad=1
  fi
done < <(grep -rn --include='*.c' --include='*.h' --include='*.cu' '^#include "' engine kernels | sed -E 's/^([^:]+):([0-9]+):#include "([^"]+)".*/\1:\2:\3/')
[ $bad -eq 0 ] && echo "check-layers: server/ includes point down the layers (${rooms[*]})"
exit $bad
