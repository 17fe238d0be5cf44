#!/usr/bin/env bash
# Project-local Orthanc PACS with its DICOMweb plugin, for the DICOMweb tests:
#   scripts/orthanc.sh start|stop|status|url
# Listens on 127.0.0.1 only (HTTP port from MKDSEG_ORTHANC_PORT, default 18000-18898 from a hash of the project path; the DICOM port
# is the HTTP port + 1), keeps its storage under var/orthanc, and prints the DICOMweb root URL
# on start. No authentication (it is reachable from this machine only). Orthanc runs as the
# calling user; as root it runs as `nobody` with the storage folder chown'ed to it.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
PORT=${MKDSEG_ORTHANC_PORT:-$((18000 + $(echo -n "$top" | cksum | cut -d" " -f1) % 450 * 2))}
VAR="$top/var/orthanc"
PLUGIN=${ORTHANC_DICOMWEB_PLUGIN:-/usr/share/orthanc/plugins/libOrthancDicomWeb.so}
command -v Orthanc >/dev/null || { echo "orthanc.sh: Orthanc not found (install orthanc orthanc-dicomweb)" >&2; exit 1; }
[ -e "$PLUGIN" ] || { echo "orthanc.sh: $PLUGIN not found (install orthanc-dicomweb)" >&2; exit 1; }

url() { echo "http://127.0.0.1:$PORT/dicom-web"; }
running() { [ -f "$VAR/pid" ] && kill -0 "$(cat "$VAR/pid")" 2>/dev/null; }

start() {
  if running; then url; return 0; fi
  mkdir -p "$VAR/db"
  cat > "$VAR/orthanc.json" <<JSON
{
  "Name": "mkdseg-test", "StorageDirectory": "$VAR/db", "IndexDirectory": "$VAR/db",
  "HttpPort": $PORT, "DicomPort": $((PORT + 1)), "RemoteAccessAllowed": false,
  "AuthenticationEnabled": false, "HttpServerEnabled": true, "DicomServerEnabled": false,
  "Plugins": ["$PLUGIN"], "DicomWeb": {"Enable": true, "Root": "/dicom-web/"},
  "StableAge": 1, "HttpTimeout": 60
}
JSON
  local as=()
  if [ "$(id -u)" -eq 0 ]; then
    chown -R nobody "$VAR"
    if runuser -u nobody -- test -r "$VAR/orthanc.json"; then as=(runuser -u nobody --); fi
  fi
  ( cd / && exec "${as[@]}" Orthanc "$VAR/orthanc.json" > "$VAR/orthanc.log" 2>&1 ) &
  echo $! > "$VAR/pid"
  for _ in $(seq 1 150); do
    if curl -fsS "http://127.0.0.1:$PORT/system" >/dev/null 2>&1; then url; return 0; fi
    running || break
    sleep 0.2
  done
  echo "orthanc.sh: Orthanc did not start (log: var/orthanc/orthanc.log)" >&2
  tail -20 "$VAR/orthanc.log" >&2 || true
  exit 1
}

stop() {
  if running; then
    local pid; pid=$(cat "$VAR/pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -f "$VAR/pid"
}

case "${1:-status}" in
  start) start ;;
  stop) stop ;;
  fresh) stop; rm -rf "$VAR/db"; start ;;
  status) if running; then echo "running ($(url))"; else echo "stopped"; exit 3; fi ;;
  url) url ;;
  *) echo "usage: scripts/orthanc.sh start|stop|fresh|status|url" >&2; exit 2 ;;
esac
