#!/usr/bin/env bash
# Sets dockyard up on a fresh Debian/Ubuntu machine and runs a real container from an image made
# offline (no registry needed).
set -euo pipefail
cd "$(dirname "$0")/.."
./hack/setup.sh
DY=".venv/bin/dockyard"
$DY info --format '{{json .host}}' >/dev/null 2>&1 || true
$DY info
