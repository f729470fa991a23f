#!/usr/bin/env bash
# Fetches Debian's stock kernel for the cgroup v2 VM tests (tests/vm) WITHOUT installing it: the
# package is unpacked into a cache and only the kernel image plus the few modules the VM's
# initramfs loads (virtio, 9p for the shared root, virtio-blk and bfq for io limits, overlay
# for the engine's image storage) are kept.
# Idempotent; prints the cache directory.  DOCKYARD_VM_CACHE overrides /var/cache/dockyard-vm.
set -euo pipefail
cache=${DOCKYARD_VM_CACHE:-/var/cache/dockyard-vm}

# The ABI package the linux-image-amd64 metapackage points at (e.g. linux-image-6.1.0-57-amd64).
pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '$1 == "Depends:" && $2 ~ /^linux-image-/ {print $2; exit}')
[ -n "$pkg" ] || { echo "fetch-kernel: apt-cache knows no linux-image-amd64" >&2; exit 1; }
dest=$cache/$pkg
mods="drivers/virtio/virtio.ko drivers/virtio/virtio_ring.ko drivers/virtio/virtio_pci.ko
      drivers/virtio/virtio_pci_modern_dev.ko drivers/virtio/virtio_pci_legacy_dev.ko
      net/9p/9pnet.ko net/9p/9pnet_virtio.ko fs/netfs/netfs.ko fs/fscache/fscache.ko fs/9p/9p.ko
      drivers/block/virtio_blk.ko block/bfq.ko fs/overlayfs/overlay.ko"
# .complete records the module list it was made with: a longer list fetches again.
if [ -f "$dest/vmlinuz" ] && [ "$(cat "$dest/.complete" 2>/dev/null)" = "$mods" ]; then
  echo "$dest"; exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# Downloads as root into a root-owned directory: the _apt sandbox user could not write there.
(cd "$work" && apt-get download -qq -o APT::Sandbox::User=root "$pkg" >/dev/null)
dpkg-deb -x "$work"/"$pkg"_*.deb "$work/x"
rm -rf "$dest" && mkdir -p "$dest/modules"
cp "$work"/x/boot/vmlinuz-* "$dest/vmlinuz"
cp "$work"/x/boot/config-* "$dest/config"
kdir=$(echo "$work"/x/lib/modules/*/kernel)
for m in $mods; do
  [ -f "$kdir/$m" ] || continue  # built in on this kernel, or renamed: the initramfs builder says which is missing
  cp "$kdir/$m" "$dest/modules/"
done
echo "$mods" > "$dest/.complete"
# Superseded kernels (an older ABI) would only take space.
for old in "$cache"/linux-image-*; do
  [ "$old" = "$dest" ] || rm -rf "$old"
done
echo "$dest"
