"""Linux capabilities for the container init: bounding set, capset, ambient set.

The container init calls, in order: ``drop_bounding`` (still root, needs CAP_SETPCAP),
``keep_caps_on_setuid`` (so setuid to a non-root user keeps the permitted set), the user switch,
then ``apply`` which sets effective/permitted/inheritable and raises the ambient set.
Capabilities the host kernel does not know (above cap_last_cap) are skipped with a warning, as runc does.
Everything the init needs is imported at module load: after pivot_root or the user switch the host's
Python library may no longer be reachable.
"""

from __future__ import annotations

import ctypes
import errno

from dockyard.errors import InvalidArgument
from dockyard.runtime._libc import prctl, syscall

CAP_NAMES: dict[int, str] = dict(enumerate([
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT",
    "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
    "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG",
    "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
]))
_BY_NAME = {v: k for k, v in CAP_NAMES.items()}

# Docker's default set (moby oci/caps/defaults.go), in Docker's order.
DEFAULT_CAPS: list[str] = [
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID",
    "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL",
    "CAP_AUDIT_WRITE",
]

_LINUX_CAPABILITY_VERSION_3 = 0x20080522
PR_SET_KEEPCAPS = 8
PR_CAPBSET_DROP = 24
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4


_last_cap: list[int] = []  # a cache without functools, which the runtime's hot path does not import otherwise


def last_cap() -> int:
    """The highest capability number the running kernel knows."""
    if not _last_cap:
        try:
            with open("/proc/sys/kernel/cap_last_cap") as f:
                _last_cap.append(int(f.read()))
        except (OSError, ValueError):
            _last_cap.append(max(CAP_NAMES))
    return _last_cap[0]


def name(cap: int) -> str:
    return CAP_NAMES.get(cap, f"CAP_{cap}")


def parse(cap_name: str) -> int:
    """``"CAP_NET_ADMIN"``, ``"net_admin"`` -> 12.  Unknown names raise InvalidArgument."""
    n = cap_name.strip().upper()
    if not n.startswith("CAP_"):
        n = "CAP_" + n
    try:
        return _BY_NAME[n]
    except KeyError:
        raise InvalidArgument(f"unknown capability: {cap_name!r}") from None


def all_caps() -> list[str]:
    """Every capability the host kernel supports, by name."""
    return [name(i) for i in range(last_cap() + 1)]


def _normalize(names: list[str]) -> list[str]:
    out = []
    for n in names:
        if n.strip().upper() == "ALL":
            out.append("ALL")
        else:
            out.append(name(parse(n)))
    return out


def resolve_caps(add: list[str], drop: list[str], privileged: bool) -> list[str]:
    """The capability list for a container from --cap-add/--cap-drop/--privileged, as Docker computes it.

    ``--cap-add ALL`` grants everything except what is dropped; ``--cap-drop ALL`` starts from nothing
    and grants only what is added; otherwise the default set is adjusted.
    """
    if privileged:
        return all_caps()
    adds, drops = _normalize(add), _normalize(drop)
    if "ALL" in adds:
        return [c for c in all_caps() if c not in drops]
    base = [] if "ALL" in drops else [c for c in DEFAULT_CAPS if c not in drops]
    for c in adds:
        if c not in base:
            base.append(c)
    return base


def _mask(names: list[str] | None, warnings: list[str]) -> int:
    mask = 0
    top = last_cap()
    for n in names or []:
        cap = parse(n)
        if cap > top:
            warnings.append(f"capability {name(cap)} is not supported by this kernel; ignored")
            continue
        mask |= 1 << cap
    return mask


def drop_bounding(caps: dict | None) -> list[str]:
    """Drop every capability not in ``caps["bounding"]`` from the bounding set (needs CAP_SETPCAP)."""
    warnings: list[str] = []
    if caps is None:
        return warnings
    keep = _mask(caps.get("bounding"), warnings)
    for cap in range(last_cap() + 1):
        if not keep >> cap & 1:
            prctl(PR_CAPBSET_DROP, cap)
    return warnings


def keep_caps_on_setuid() -> None:
    prctl(PR_SET_KEEPCAPS, 1)


def apply(caps: dict | None) -> list[str]:
    """Set effective/permitted/inheritable and the ambient set from an OCI ``process.capabilities`` object.

    Called after setgid/setuid.  Returns warnings (capabilities this kernel lacks, ambient capabilities
    that cannot be raised because they are not both permitted and inheritable); never half-applies a set.
    """
    warnings: list[str] = []
    if caps is None:
        return warnings
    eff = _mask(caps.get("effective"), warnings)
    prm = _mask(caps.get("permitted"), warnings)
    inh = _mask(caps.get("inheritable"), warnings)
    # struct __user_cap_header_struct {u32 version; int pid} and two __user_cap_data_struct
    # {u32 effective, permitted, inheritable}, as flat u32 arrays (ctypes Structure classes cost
    # every container start their creation).
    hdr = (ctypes.c_uint32 * 2)(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (ctypes.c_uint32 * 6)(*(m >> (32 * i) & 0xFFFFFFFF for i in range(2) for m in (eff, prm, inh)))
    syscall("capset", hdr, data)
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)
    amb = _mask(caps.get("ambient"), [])
    for cap in range(last_cap() + 1):
        if amb >> cap & 1:
            try:
                prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap)
            except OSError as e:
                if e.errno != errno.EPERM:
                    raise
                warnings.append(f"ambient capability {name(cap)} must also be permitted and inheritable; ignored")
    prctl(PR_SET_KEEPCAPS, 0)
    return warnings
