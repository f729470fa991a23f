#!/usr/bin/env bash
# Sets dockyard up on a fresh Debian/Ubuntu machine and runs a real container from an image built
# offline from the host's static busybox (no registry needed).
set -euo pipefail
cd "$(dirname "$0")/.."
./hack/setup.sh
CR="$PWD/.venv/bin/dockyard"
echo "== dockyard info (host facts)"
"$CR" info --format '{{.host.kernel}} cgroups={{.host.cgroupVersion}} overlay={{.host.overlay}} canRaiseRlimits={{.host.canRaiseRlimits}}'
echo "== building localhost/busybox:latest offline"
"$CR" image bootstrap busybox
"$CR" images localhost/busybox
echo "== running a container"
"$CR" run --rm --name dockyard-quickstart localhost/busybox \
  sh -c 'echo "hello from $(hostname), pid $$ in its own namespaces, running: $(uname -sr)"'
echo "Done. Try: $CR run --rm -it localhost/busybox sh"
