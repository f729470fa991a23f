"""Boots Debian's stock kernel under KVM as a pure cgroup v2 host and runs one command in it.

The guest sees the host's whole tree read-only over 9p (so the project, its venv, runc and crun are
the host's own), with private tmpfs on /tmp, /var/tmp and /run, and a writable share at /run/vm for
results.  The kernel comes from hack/vm/fetch-kernel.sh (run by hack/setup.sh); the initramfs is
busybox plus the kernel's virtio/9p modules, built here into the caller's directory.

Also a manual tool:  python -m tests.vm.vm 'cat /proc/self/cgroup; ls /sys/fs/cgroup'
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent
HACK = REPO / "hack" / "vm"
CACHE = Path(os.environ.get("DOCKYARD_VM_CACHE", "/var/cache/dockyard-vm"))
QEMU = "qemu-system-x86_64"
BUSYBOX = shutil.which("busybox") or "/bin/busybox"
# Load order follows each module's `depends=`; these are the roots the guest needs.
MODULES = ("virtio_pci", "9pnet_virtio", "9p", "virtio_blk", "bfq", "overlay")


def accelerator() -> str:
    """``kvm`` where the host has hardware virtualisation for a stock kernel, else ``tcg`` (emulation).

    /dev/kvm alone is not enough: under kvm_pvm (a nested, pagetable-based KVM, as on Firecracker
    hosts) only kernels built as PVM guests run, and Debian's stops right after its real-mode setup
    ("Probing EDD") with no further output.  DOCKYARD_VM_ACCEL=kvm|tcg overrides the choice.
    """
    forced = os.environ.get("DOCKYARD_VM_ACCEL")
    if forced:
        return forced
    hw = any(os.path.isdir(f"/sys/module/{m}") for m in ("kvm_intel", "kvm_amd"))
    return "kvm" if hw and os.access("/dev/kvm", os.R_OK | os.W_OK) else "tcg"


def unavailable() -> str | None:
    """Why the VM cannot run here, or None."""
    if not shutil.which(QEMU):
        return f"{QEMU} is not installed (hack/setup.sh installs qemu-system-x86)"
    if not os.path.exists(BUSYBOX):
        return "busybox is not installed"
    if kernel_dir() is None:
        return f"no kernel in {CACHE} (run hack/vm/fetch-kernel.sh)"
    return None


def kernel_dir() -> Path | None:
    found = sorted(p.parent for p in CACHE.glob("linux-image-*/.complete"))
    return found[-1] if found else None


def _module_depends(path: Path) -> list[str]:
    m = re.search(rb"\0depends=([^\0]*)\0", path.read_bytes())
    return [d for d in (m.group(1).decode() if m else "").split(",") if d]


def _load_order(mod_dir: Path) -> list[str]:
    order: list[str] = []

    def visit(name: str) -> None:
        if name in order:
            return
        ko = mod_dir / f"{name}.ko"
        if not ko.exists():
            raise FileNotFoundError(f"kernel module {name} is missing from {mod_dir} (hack/vm/fetch-kernel.sh)")
        for dep in _module_depends(ko):
            visit(dep)
        order.append(name)

    for root in MODULES:
        visit(root)
    return order


class _Cpio:
    """The kernel's initramfs format (cpio "newc"), enough for directories, files, links and nodes."""

    def __init__(self) -> None:
        self.out = bytearray()
        self.ino = 1

    def add(self, name: str, mode: int, data: bytes = b"", rdev: tuple[int, int] = (0, 0)) -> None:
        fields = (self.ino, mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1], len(name) + 1, 0)
        self.ino += 1
        self.out += b"070701" + b"".join(b"%08X" % f for f in fields) + name.encode() + b"\0"
        self.out += b"\0" * (-len(self.out) % 4)
        self.out += data
        self.out += b"\0" * (-len(self.out) % 4)

    def finish(self) -> bytes:
        self.add("TRAILER!!!", 0)
        return bytes(self.out)


def build_initramfs(kdir: Path, dest: Path) -> Path:
    order = _load_order(kdir / "modules")
    c = _Cpio()
    for d in ("bin", "dev", "proc", "sys", "newroot", "modules"):
        c.add(d, stat.S_IFDIR | 0o755)
    c.add("dev/console", stat.S_IFCHR | 0o600, rdev=(5, 1))
    c.add("bin/busybox", stat.S_IFREG | 0o755, Path(BUSYBOX).read_bytes())
    c.add("bin/sh", stat.S_IFLNK | 0o777, b"busybox")
    c.add("init", stat.S_IFREG | 0o755, (HACK / "init").read_bytes())
    c.add("modules.load", stat.S_IFREG | 0o644, "\n".join(order).encode() + b"\n")
    for name in order:
        c.add(f"modules/{name}.ko", stat.S_IFREG | 0o644, (kdir / "modules" / f"{name}.ko").read_bytes())
    dest.write_bytes(c.finish())
    return dest


@dataclasses.dataclass
class Result:
    rc: int | None          # the command's exit status; None when the VM died before writing it
    log: str                # the command's stdout and stderr
    console: str            # the kernel's serial console
    seconds: float          # wall time from qemu's start to its exit
    out: Path               # the result share (files the command wrote to /run/vm)


def run(command: str, workdir: Path, *, timeout: float = 900, memory: str = "1G", cpus: int = 2,
        disk_mb: int = 16) -> Result:
    """Boots the VM, runs ``command`` with /bin/sh as root, powers off; ``workdir`` holds everything."""
    why = unavailable()
    if why:
        raise RuntimeError(why)
    kdir = kernel_dir()
    assert kdir is not None
    out = workdir / "share"
    out.mkdir(parents=True, exist_ok=True)
    (out / "stage2.sh").write_bytes((HACK / "stage2.sh").read_bytes())
    (out / "command").write_text(command + "\n")
    # The guest's /tmp, /var/tmp and /run are private tmpfs: a checkout under one of them (a CI clone in
    # /tmp) would vanish, so the project is also shared on its own and mounted back at its path there.
    (out / "project").write_text(str(REPO) + "\n")
    initrd = build_initramfs(kdir, workdir / "initrd.cpio")
    # A small block device so io.max and io weights have a device to act on.
    disk = workdir / "disk.img"
    with open(disk, "wb") as f:
        f.truncate(disk_mb << 20)
    console = workdir / "console.log"
    accel = accelerator()
    argv = [QEMU, *(["-accel", "kvm", "-cpu", "host"] if accel == "kvm" else ["-accel", "tcg,thread=multi", "-cpu", "max"]),
            "-m", memory, "-smp", str(cpus),
            "-nodefaults", "-no-reboot", "-display", "none", "-serial", f"file:{console}",
            "-kernel", str(kdir / "vmlinuz"), "-initrd", str(initrd),
            "-append", "console=ttyS0 panic=-1 cgroup_no_v1=all quiet loglevel=4",
            "-fsdev", "local,id=hostroot,path=/,security_model=passthrough,readonly=on,multidevs=remap",
            "-device", "virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot",
            "-fsdev", f"local,id=vmout,path={out},security_model=passthrough",
            "-device", "virtio-9p-pci,fsdev=vmout,mount_tag=vmout",
            "-fsdev", f"local,id=project,path={REPO},security_model=passthrough,readonly=on,multidevs=remap",
            "-device", "virtio-9p-pci,fsdev=project,mount_tag=project",
            "-drive", f"file={disk},if=virtio,format=raw,cache=unsafe"]
    t0 = time.monotonic()
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         start_new_session=True)
    try:
        qemu_out, _ = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        qemu_out, _ = p.communicate()
        qemu_out += f"\n(the VM ran past {timeout}s and was killed)".encode()
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
    seconds = time.monotonic() - t0
    rc_file, log_file = out / "rc", out / "log"
    text = console.read_text(errors="replace") if console.exists() else ""
    if qemu_out:
        text += "\n--- qemu ---\n" + qemu_out.decode(errors="replace")
    return Result(rc=int(rc_file.read_text()) if rc_file.exists() else None,
                  log=log_file.read_text(errors="replace") if log_file.exists() else "",
                  console=text, seconds=seconds, out=out)


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="dockyard-vm-") as d:
        r = run(" ".join(sys.argv[1:]) or "cat /proc/self/cgroup", Path(d))
        sys.stdout.write(r.log)
        if r.rc is None:
            sys.stderr.write(r.console)
        sys.stderr.write(f"(vm: rc={r.rc}, {r.seconds:.1f}s)\n")
        return 1 if r.rc is None else r.rc


if __name__ == "__main__":
    sys.exit(main())
