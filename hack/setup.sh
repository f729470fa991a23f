#!/usr/bin/env bash
# Installs what dockyard and its tests need on a Debian/Ubuntu machine, then the package into .venv.
# Idempotent: safe to run again.  Needs root for apt-get (skipped with DOCKYARD_SKIP_APT=1).
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS=(
  # the engine at run time
  iproute2 nftables uidmap libseccomp2 busybox-static debootstrap openssl ca-certificates
  catatonit  # --init and the pod infra container (only a Recommends of podman, which we install without)
  # peers the tests compare against or talk to
  runc crun skopeo umoci docker-registry apache2-utils jq curl podman buildah
  golang-go  # Go's own text/template, for the --format differential test
  slirp4netns iptables  # rootless networking; the firewall's fallback backend (tests run both)
  qemu-system-x86  # tests/vm boots a pure cgroup v2 kernel (hack/vm/fetch-kernel.sh, below)
)

if [ "${DOCKYARD_SKIP_APT:-0}" != 1 ]; then
  missing=()
  for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
  # The Debian docker-registry package starts a registry on :5000 that would squat the tutorial's port.
  if command -v systemctl >/dev/null && systemctl is-active -q docker-registry 2>/dev/null; then
    systemctl disable --now docker-registry >/dev/null 2>&1 || true
  fi
  # Debian's kernel for tests/vm, unpacked into a cache, never installed on this host.
  ./hack/vm/fetch-kernel.sh >/dev/null || echo "setup: no kernel for tests/vm; they will skip" >&2
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
# compat mode makes the editable install a plain path in a .pth file: setuptools' default import hook
# loads pathlib, re and urllib.parse into every interpreter, ~10 ms on each container start.
.venv/bin/pip install -q --disable-pip-version-check -e '.[test]' --config-settings editable_mode=compat
# Byte code ahead of time: where PYTHONDONTWRITEBYTECODE is set, every container start would
# otherwise recompile the runtime's modules, which costs more than the runtime's own work.
.venv/bin/python -m compileall -q -j 0 dockyard >/dev/null
