#!/usr/bin/env bash
# Install the Debian packages mkdseg needs, idempotently.
# Usage: scripts/deps.sh [--test]   (--test adds what the test suite needs: python3-torch etc.)
# As root: installs what is missing with apt-get. As another user: prints the exact
# apt-get line and exits 1 when something is missing.
set -euo pipefail

pkgs=(build-essential pkg-config libmicrohttpd-dev libjansson-dev libpq-dev postgresql
      libcriterion-dev libcurl4-openssl-dev libnifti2-dev nifti-bin libdnnl-dev zlib1g-dev
      libssl-dev curl libdcmtk-dev libarchive-dev
      libdeflate-dev) # libdeflate: whole-file .nii.gz inflate (engine/io/nifti_read.c)
pkgs+=(postgresql-client)  # pg_dump / pg_restore for mkdseg backup and restore
# node and npm (the dashboard's libraries, npm ci at make): Debian's packages unless a node
# with npm is already installed some other way
if ! command -v npm >/dev/null 2>&1; then
  pkgs+=(nodejs npm)
fi
if [ "${1:-}" = "--test" ]; then
  pkgs+=(python3-torch python3-nibabel python3-numpy valgrind clang libclang-rt-14-dev
         chromium)
  pkgs+=(teem-apps) # teem-unu: an independent NRRD reader (tests/unit/test_nrrd.c)
  pkgs+=(python3-pydicom dcm2niix dicom3tools zip orthanc orthanc-dicomweb)  # DICOM tests: writer, oracle, validator, PACS
fi

missing=()
for p in "${pkgs[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

line="apt-get install -y --no-install-recommends ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
  echo "mkdseg: missing Debian packages. Run as root:" >&2
  echo "  apt-get update && $line" >&2
  exit 1
fi

echo "mkdseg: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# refresh the package lists once when they are absent or older than a day
if [ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -mmin -1440 2>/dev/null | head -1)" ]; then
  apt-get update -qq
fi
if ! $line >/dev/null; then
  apt-get update -qq
  $line >/dev/null
fi
