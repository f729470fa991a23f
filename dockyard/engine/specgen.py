"""The OCI runtime spec (config.json) of a container, from its Docker-shaped Config and HostConfig.

Generated at every start, after the root filesystem is mounted, because user and group names
resolve against the container's own /etc/passwd and /etc/group.  Defaults (mounts, masked and
read-only paths, device rules, capabilities, seccomp) are Docker's, so a workload behaves the same
under dockyard as under ``docker run``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dockyard.errors import InvalidArgument

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# moby oci/defaults.go and runc's libcontainer defaults.
MASKED_PATHS = [
    "/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
    "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap",
]
READONLY_PATHS = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]

# Device cgroup rules: deny everything, then the character devices every container gets.
_DEFAULT_DEVICES = [
    ("c", None, None, "m"), ("b", None, None, "m"),
    ("c", 1, 3, "rwm"), ("c", 1, 5, "rwm"), ("c", 1, 7, "rwm"), ("c", 1, 8, "rwm"), ("c", 1, 9, "rwm"),
    ("c", 5, 0, "rwm"), ("c", 5, 1, "rwm"), ("c", 5, 2, "rwm"), ("c", 136, None, "rwm"),
    ("c", 10, 200, "rwm"),
]

INIT_PATH = "/run/dockyard-init"  # where --init's reaper (catatonit) is bind-mounted


@dataclass
class SpecContext:
    """Facts about this start of the container that are not part of its stored configuration."""

    container_id: str
    rootfs: Path
    userdata: Path  # holds hostname, hosts, resolv.conf for bind mounting
    netns: str | None  # None: share the host's network; "": new (loopback only); else a netns path
    init_binary: str | None = None
    extra_mounts: list[dict[str, Any]] = field(default_factory=list)  # bind mounts (-v)
    # per namespace type: absent = new, None = the host's, a path = join it (--pid/--ipc container:X)
    join: dict[str, str | None] = field(default_factory=dict)


def _mount(dest: str, typ: str, source: str, options: list[str]) -> dict[str, Any]:
    return {"destination": dest, "type": typ, "source": source, "options": options}


def default_mounts(privileged: bool = False) -> list[dict[str, Any]]:
    sys_opts = ["nosuid", "noexec", "nodev"] + ([] if privileged else ["ro"])
    return [
        _mount("/proc", "proc", "proc", ["nosuid", "noexec", "nodev"]),
        _mount("/dev", "tmpfs", "tmpfs", ["nosuid", "strictatime", "mode=755", "size=65536k"]),
        _mount("/dev/pts", "devpts", "devpts",
               ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]),
        _mount("/sys", "sysfs", "sysfs", sys_opts),
        _mount("/sys/fs/cgroup", "cgroup", "cgroup",
               ["nosuid", "noexec", "nodev", "relatime"] + ([] if privileged else ["ro"])),
        _mount("/dev/mqueue", "mqueue", "mqueue", ["nosuid", "noexec", "nodev"]),
        _mount("/dev/shm", "tmpfs", "shm", ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]),
    ]


def _read_db(path: Path) -> list[list[str]]:
    try:
        with open(path) as f:
            return [line.rstrip("\n").split(":") for line in f if line.strip() and not line.startswith("#")]
    except OSError:
        return []


def resolve_user(rootfs: Path, spec: str) -> dict[str, Any]:
    """``-u user[:group]`` -> OCI process.user, looked up in the container's passwd/group files."""
    user, _, group = (spec or "").partition(":")
    passwd = _read_db(rootfs / "etc" / "passwd")
    groups = _read_db(rootfs / "etc" / "group")
    uid = gid = 0
    uname = None
    if not user:
        user = "0"
    if user.isdigit():
        uid = int(user)
        for e in passwd:
            if len(e) >= 4 and e[2] == user:
                uname, gid = e[0], int(e[3])
                break
    else:
        for e in passwd:
            if len(e) >= 4 and e[0] == user:
                uname, uid, gid = e[0], int(e[2]), int(e[3])
                break
        else:
            raise InvalidArgument(f"unable to find user {user}: no matching entries in passwd file")
    if group:
        if group.isdigit():
            gid = int(group)
        else:
            for g in groups:
                if len(g) >= 3 and g[0] == group:
                    gid = int(g[2])
                    break
            else:
                raise InvalidArgument(f"unable to find group {group}: no matching entries in group file")
    extra: list[int] = []
    if uname and not group:
        for g in groups:
            if len(g) >= 4 and uname in g[3].split(",") and int(g[2]) != gid:
                extra.append(int(g[2]))
    out: dict[str, Any] = {"uid": uid, "gid": gid}
    if extra:
        out["additionalGids"] = extra
    return out


def grantable(caps: list[str]) -> list[str]:
    """``caps`` minus those outside our own bounding set: no runtime can grant what the engine lacks
    (a confined host, e.g. without CAP_SYS_RESOURCE), and --privileged means "all we have", as in Podman."""
    from dockyard.runtime.capabilities import parse

    try:
        with open("/proc/self/status") as f:
            bnd = next(int(ln.split()[1], 16) for ln in f if ln.startswith("CapBnd:"))
    except (OSError, StopIteration, ValueError):
        return caps
    return [c for c in caps if bnd >> parse(c) & 1]


def process_env(config: dict[str, Any], hostname: str) -> list[str]:
    env = list(config.get("Env") or [])
    keys = {e.partition("=")[0] for e in env}
    if "PATH" not in keys:
        env.insert(0, "PATH=" + DEFAULT_PATH)
    if "HOSTNAME" not in keys:
        env.append("HOSTNAME=" + hostname)
    if config.get("Tty") and "TERM" not in keys:
        env.append("TERM=xterm")
    return env


def command_line(config: dict[str, Any]) -> list[str]:
    args = list(config.get("Entrypoint") or []) + list(config.get("Cmd") or [])
    if not args:
        raise InvalidArgument("no command specified")
    return args


def generate(config: dict[str, Any], host_config: dict[str, Any], ctx: SpecContext) -> dict[str, Any]:
    privileged = bool(host_config.get("Privileged"))
    hostname = config.get("Hostname") or ctx.container_id[:12]
    args = command_line(config)
    if host_config.get("Init") and ctx.init_binary:
        args = [INIT_PATH, "--"] + args

    from dockyard.runtime.capabilities import resolve_caps

    caps = grantable(resolve_caps(host_config.get("CapAdd") or [], host_config.get("CapDrop") or [], privileged))
    user = resolve_user(ctx.rootfs, config.get("User") or "")
    no_new_privs = False
    seccomp: dict[str, Any] | None = None
    seccomp_unconfined = privileged
    for opt in host_config.get("SecurityOpt") or []:
        key, _, val = opt.replace(":", "=", 1).partition("=")
        if key == "no-new-privileges":
            no_new_privs = val in ("", "true")
        elif key == "seccomp":
            if val == "unconfined":
                seccomp_unconfined = True
            else:
                import json

                try:
                    with open(val) as f:
                        seccomp = json.load(f)
                except (OSError, ValueError) as e:
                    raise InvalidArgument(f"opening seccomp profile ({val}) failed: {e}") from None
        elif key in ("label", "apparmor"):
            continue
        else:
            raise InvalidArgument(f"invalid --security-opt: {opt!r}")
    if seccomp is None and not seccomp_unconfined:
        seccomp = _default_seccomp(caps)

    process: dict[str, Any] = {
        "terminal": bool(config.get("Tty")),
        "user": user,
        "args": args,
        "env": process_env(config, hostname),
        "cwd": config.get("WorkingDir") or "/",
        "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
        "noNewPrivileges": no_new_privs,
    }
    rlimits = [_ulimit_to_oci(u) for u in host_config.get("Ulimits") or []]
    if rlimits:
        process["rlimits"] = rlimits

    mounts = default_mounts(privileged)
    for name in ("hostname", "hosts", "resolv.conf"):
        src = ctx.userdata / name
        if src.exists():
            mounts.append(_mount("/etc/" + name, "bind", str(src), ["rbind", "rprivate", "nosuid", "nodev", "noexec"]
                                 if name != "resolv.conf" else ["rbind", "rprivate"]))
    if host_config.get("Init") and ctx.init_binary:
        mounts.append(_mount(INIT_PATH, "bind", ctx.init_binary, ["bind", "ro"]))
    mounts.extend(ctx.extra_mounts)

    namespaces: list[dict[str, str]] = [{"type": "mount"}, {"type": "uts"}]
    for typ in ("pid", "ipc"):
        if typ not in ctx.join:
            namespaces.append({"type": typ})
        elif ctx.join[typ] is not None:
            namespaces.append({"type": typ, "path": str(ctx.join[typ])})
    if ctx.netns is not None:
        namespaces.append({"type": "network", "path": ctx.netns} if ctx.netns else {"type": "network"})
    if host_config.get("CgroupnsMode") == "private":
        namespaces.append({"type": "cgroup"})

    linux: dict[str, Any] = {
        "namespaces": namespaces,
        "resources": _resources(host_config, privileged),
        "cgroupsPath": f"/dockyard/{ctx.container_id}",
    }
    if not privileged:
        linux["maskedPaths"] = list(MASKED_PATHS)
        linux["readonlyPaths"] = list(READONLY_PATHS)
    if seccomp is not None:
        linux["seccomp"] = seccomp

    spec: dict[str, Any] = {
        "ociVersion": "1.0.2",
        "process": process,
        "root": {"path": str(ctx.rootfs), "readonly": bool(host_config.get("ReadonlyRootfs"))},
        "hostname": hostname,
        "mounts": mounts,
        "linux": linux,
    }
    return spec


def _default_seccomp(caps: list[str]) -> dict[str, Any]:
    from dockyard.runtime import seccomp as seccomp_mod

    # Docker's profile opens some syscalls to the capabilities the container holds.
    profile: dict[str, Any] = seccomp_mod.default_profile(caps)
    return profile


def _ulimit_to_oci(u: dict[str, Any]) -> dict[str, Any]:
    return {"type": "RLIMIT_" + str(u["Name"]).upper(), "soft": int(u["Soft"]), "hard": int(u["Hard"])}


def _resources(hc: dict[str, Any], privileged: bool) -> dict[str, Any]:
    if privileged:
        devices = [{"allow": True, "access": "rwm"}]
    else:
        devices = [{"allow": False, "access": "rwm"}]
        for typ, major, minor, access in _DEFAULT_DEVICES:
            d: dict[str, Any] = {"allow": True, "type": typ, "access": access}
            if major is not None:
                d["major"] = major
            if minor is not None:
                d["minor"] = minor
            devices.append(d)
    res: dict[str, Any] = {"devices": devices}
    mem: dict[str, Any] = {}
    if hc.get("Memory"):
        mem["limit"] = int(hc["Memory"])
        swap = int(hc.get("MemorySwap") or 0)
        # Docker: unset swap means "as much swap as memory" (limit*2); -1 unlimited.
        if swap == 0:
            mem["swap"] = int(hc["Memory"]) * 2
        elif swap > 0:
            mem["swap"] = swap
        else:
            mem["swap"] = -1
        if not _swap_accounting():
            mem.pop("swap", None)
    if hc.get("MemoryReservation"):
        mem["reservation"] = int(hc["MemoryReservation"])
    if mem:
        res["memory"] = mem
    cpu: dict[str, Any] = {}
    if hc.get("CpuShares"):
        cpu["shares"] = int(hc["CpuShares"])
    if hc.get("NanoCpus"):
        period = 100000
        cpu["period"] = period
        cpu["quota"] = int(hc["NanoCpus"]) * period // 1_000_000_000
    if hc.get("CpusetCpus"):
        cpu["cpus"] = hc["CpusetCpus"]
    if hc.get("CpusetMems"):
        cpu["mems"] = hc["CpusetMems"]
    if cpu:
        res["cpu"] = cpu
    if hc.get("PidsLimit"):
        res["pids"] = {"limit": int(hc["PidsLimit"])}
    return res


def _swap_accounting() -> bool:
    """Whether the kernel accounts swap (memory.memsw.* on cgroup v1); runc fails on swap limits otherwise."""
    from dockyard import host

    cg = host.cgroup_info()
    if cg.version == "v2":
        return True
    mnt = cg.v1_mounts.get("memory")
    return mnt is not None and os.path.exists(os.path.join(mnt, "memory.memsw.limit_in_bytes"))
