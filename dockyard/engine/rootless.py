"""Rootless mode and user namespaces (``--userns``, ``--uidmap``, ``--gidmap``), the way Podman does them.

An unprivileged user's dockyard works inside one long-lived user + mount namespace per runroot, held
open by a pause process: container 0 is the user, 1..N the user's ranges in /etc/subuid and
/etc/subgid (written by the setuid newuidmap/newgidmap).  Every rootless command joins it first
(``join``), so the engine runs as root of that namespace with the code root uses: layers unpack with
their real owners (stored on disk as the mapped ids), overlay mounts are allowed (kernel >= 5.11) and
live in the shared mount namespace where the monitor, the runtime and later commands see them, and
files owned by the mapped ids can be removed.  Containers run in that namespace unless ``--userns``
asks for a nested one (keep-id, nomap, auto, explicit maps).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import Any

from dockyard.errors import Conflict, DockyardError, InvalidArgument, Unsupported

Mapping = list[list[int]]  # [[container id, host id, size], ...]

AUTO_SIZE = 65536
_PAUSE_MARK = "dockyard-pause"


# -- /etc/subuid, /etc/subgid ---------------------------------------------------------------------
def subid_ranges(path: str, name: str, ident: int) -> list[tuple[int, int]]:
    """The (start, count) ranges of ``path`` for the user ``name`` (or their numeric id)."""
    out = []
    try:
        with open(path) as f:
            for line in f:
                parts = line.strip().split(":")
                if len(parts) == 3 and parts[0] in (name, str(ident)) and parts[1].isdigit() and parts[2].isdigit():
                    out.append((int(parts[1]), int(parts[2])))
    except FileNotFoundError:
        pass
    return out


def _user_name(uid: int) -> str:
    import pwd

    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def default_maps(uid: int, gid: int) -> tuple[Mapping, Mapping]:
    """The rootless namespace's maps: 0 -> the user, 1.. -> the user's subordinate ranges."""
    name = _user_name(uid)
    maps = []
    for path, own in (("/etc/subuid", uid), ("/etc/subgid", gid)):
        m = [[0, own, 1]]
        nxt = 1
        for start, count in subid_ranges(path, name, uid):
            m.append([nxt, start, count])
            nxt += count
        maps.append(m)
    return maps[0], maps[1]


# -- the pause process and joining it -------------------------------------------------------------
def _pause_pid(runroot: Path) -> int | None:
    try:
        pid = int((runroot / "pause.pid").read_text())
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv0 = f.read().split(b"\0")[0]
    except (OSError, ValueError):
        return None
    return pid if argv0 == f"{_PAUSE_MARK}:{runroot}".encode() else None


def _write_maps(pid: int, uid_map: Mapping, gid_map: Mapping) -> None:
    import subprocess

    for prog, maps in (("newuidmap", uid_map), ("newgidmap", gid_map)):
        argv = [prog, str(pid)] + [str(x) for m in maps for x in m]
        try:
            p = subprocess.run(argv, capture_output=True, text=True)
        except FileNotFoundError:
            raise Unsupported(f"rootless mode needs {prog} (Debian package uidmap)") from None
        if p.returncode != 0:
            raise DockyardError(f"{prog} failed: {p.stderr.strip() or p.returncode}")


def _start_pause(runroot: Path) -> int:
    """Fork a process into a new user + mount namespace, map it, and leave it asleep to hold both."""
    from dockyard.runtime import linux as L

    uid_map, gid_map = default_maps(os.getuid(), os.getgid())
    if len(uid_map) == 1 or len(gid_map) == 1:
        import logging

        logging.getLogger(__name__).warning(
            "no subordinate ids for %s in /etc/subuid or /etc/subgid: only your own id is mapped, "
            "images with files of other owners will fail to unpack", _user_name(os.getuid()))
    r1, w1 = os.pipe()
    r2, w2 = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r1)
            os.close(w2)
            os.setsid()
            L.unshare(L.CLONE_NEWUSER | L.CLONE_NEWNS)
            os.write(w1, b"1")
            if os.read(r2, 1) != b"1":
                os._exit(1)
            os.chdir("/")
            fd = os.open("/dev/null", os.O_RDWR)
            for n in (0, 1, 2):
                os.dup2(fd, n)
            os.closerange(3, 65536)
            os.execv("/bin/sleep", [f"{_PAUSE_MARK}:{runroot}", "infinity"])
        finally:
            os._exit(127)
    os.close(w1)
    os.close(r2)
    try:
        if os.read(r1, 1) != b"1":
            raise DockyardError("cannot create the rootless user namespace (are unprivileged user "
                                "namespaces disabled? see /proc/sys/user/max_user_namespaces)")
        if len(uid_map) == 1 and len(gid_map) == 1:
            with open(f"/proc/{pid}/uid_map", "w") as f:
                f.write(f"0 {os.getuid()} 1\n")
            with open(f"/proc/{pid}/setgroups", "w") as f:
                f.write("deny")
            with open(f"/proc/{pid}/gid_map", "w") as f:
                f.write(f"0 {os.getgid()} 1\n")
        else:
            _write_maps(pid, uid_map, gid_map)
        os.write(w2, b"1")
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, 9)
        os.waitpid(pid, 0)
        raise
    finally:
        os.close(r1)
        os.close(w2)
    (runroot / "pause.pid").write_text(str(pid))
    return pid


def join(runroot: Path) -> None:
    """Enter the user's rootless user + mount namespace (starting its pause process if needed).

    Must run while the process is single-threaded (setns into a user namespace requires it)."""
    from dockyard.runtime import linux as L

    if os.geteuid() == 0:
        return
    runroot.mkdir(parents=True, exist_ok=True, mode=0o700)
    lock = os.open(runroot / "pause.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        pid = _pause_pid(runroot) or _start_pause(runroot)
        fds = [os.open(f"/proc/{pid}/ns/{ns}", os.O_RDONLY | os.O_CLOEXEC) for ns in ("user", "mnt")]
    finally:
        os.close(lock)
    cwd = os.getcwd()
    try:
        L.setns(fds[0], L.CLONE_NEWUSER)
        L.setns(fds[1], L.CLONE_NEWNS)
    except OSError as e:
        raise DockyardError(f"cannot join the rootless namespaces of pause process {pid}: {e.strerror}") from None
    finally:
        for fd in fds:
            os.close(fd)
    os.setresgid(0, 0, 0)
    os.setresuid(0, 0, 0)
    with contextlib.suppress(OSError):
        os.setgroups([])
    with contextlib.suppress(OSError):
        os.chdir(cwd)


# -- --userns / --uidmap / --gidmap ---------------------------------------------------------------
def _parse_map(items: list[str], flag: str) -> Mapping:
    out = []
    for item in items:
        for part in item.split(","):
            bits = part.split(":")
            if len(bits) != 3 or not all(b.isdigit() for b in bits) or int(bits[2]) == 0:
                raise InvalidArgument(f"invalid {flag} {part!r}: expected CONTAINER_ID:HOST_ID:SIZE")
            out.append([int(b) for b in bits])
    return out


def _auto_range(size: int, taken: list[Mapping]) -> int:
    """First host id of a free ``size`` block for root's --userns=auto: from the "containers" ranges
    in /etc/subuid, as Podman, skipping blocks other containers hold."""
    ranges = subid_ranges("/etc/subuid", "containers", -1)
    if not ranges:
        raise InvalidArgument("--userns=auto needs ranges for the user \"containers\" in /etc/subuid and "
                              "/etc/subgid (e.g. containers:2147483647:2147483648)")
    used = sorted((m[1], m[1] + m[2]) for maps in taken for m in maps)
    for start, count in ranges:
        cand = start
        while cand + size <= start + count:
            clash = next((hi for lo, hi in used if lo < cand + size and cand < hi), None)
            if clash is None:
                return cand
            cand = clash
    raise Conflict("--userns=auto: no free id range left in /etc/subuid for \"containers\"")


def parse_userns(mode: str | None, uidmap: list[str], gidmap: list[str],
                 taken: list[Mapping]) -> tuple[str, dict[str, Any] | None]:
    """Validate the flags at create; returns HostConfig.UsernsMode and the maps to keep (or None).

    Rootless, host ids of --uidmap/--gidmap count in the rootless namespace (0 = you, 1.. = your
    subordinate ids), as in Podman.  ``taken``: the maps of existing --userns=auto containers."""
    from dockyard.paths import is_rootless

    mode = mode or ""
    rootless = is_rootless()
    if uidmap or gidmap:
        if mode not in ("", "private"):
            raise InvalidArgument("--userns and --uidmap/--gidmap cannot be combined")
        u = _parse_map(uidmap or gidmap, "--uidmap")
        g = _parse_map(gidmap or uidmap, "--gidmap")
        return "private", {"uid": u, "gid": g}
    if mode in ("", "host"):
        return mode, None
    name, _, opts = mode.partition(":")
    if name == "keep-id":
        if not rootless:
            raise InvalidArgument("--userns=keep-id is only supported in rootless mode")
        uid, gid = own_ids()
        for opt in filter(None, opts.split(",")):
            k, _, v = opt.partition("=")
            if k not in ("uid", "gid") or not v.isdigit():
                raise InvalidArgument(f"invalid --userns=keep-id option {opt!r}")
            uid, gid = (int(v), gid) if k == "uid" else (uid, int(v))
        return mode, {"keep_id": [uid, gid]}
    if name == "nomap" and not opts:
        if not rootless:
            raise InvalidArgument("--userns=nomap is only supported in rootless mode")
        return mode, {"nomap": True}
    if name == "auto":
        size = AUTO_SIZE
        for opt in filter(None, opts.split(",")):
            k, _, v = opt.partition("=")
            if k != "size" or not v.isdigit() or int(v) == 0:
                raise InvalidArgument(f"invalid --userns=auto option {opt!r}")
            size = int(v)
        if rootless:
            # Inside the rootless namespace: container 0.. -> the subordinate ids (1..), not you.
            have = min(_outer(True), _outer(False)) - 1
            if size > have:
                raise InvalidArgument(f"--userns=auto: size {size} is more than your {have} subordinate ids")
            return mode, {"uid": [[0, 1, size]], "gid": [[0, 1, size]]}
        start = _auto_range(size, taken)
        return mode, {"uid": [[0, start, size]], "gid": [[0, start, size]]}
    raise InvalidArgument(f"invalid --userns {mode!r}: expected host, keep-id, nomap or auto")


def keep_id_user(maps: dict[str, Any] | None) -> str:
    """Config.User of a --userns=keep-id container whose image names no user: your uid:gid (Podman)."""
    if maps and "keep_id" in maps:
        return "{}:{}".format(*maps["keep_id"])
    return ""


def _outer(uid: bool) -> int:
    """The size of the id range of the namespace we run in (the rootless one: 1 + subordinate ids)."""
    with open("/proc/self/uid_map" if uid else "/proc/self/gid_map") as f:
        return sum(int(line.split()[2]) for line in f if line.strip())


def own_ids() -> tuple[int, int]:
    """The user's own uid and gid as the host knows them, also from inside the rootless namespace."""
    out = []
    for name in ("uid_map", "gid_map"):
        with open(f"/proc/self/{name}") as f:
            out.append(next((int(h) for c, h, _ in (line.split() for line in f if line.strip()) if c == "0"),
                            os.getuid() if name == "uid_map" else os.getgid()))
    return out[0], out[1]


def _keep_id_map(inner: int, outer: int) -> Mapping:
    """Container ``inner`` -> you (0 of the rootless namespace); the other ids keep their order."""
    m = [[inner, 0, 1]]
    if inner > 0:
        m.append([0, 1, min(inner, outer - 1)])
    if outer - 1 > inner:
        m.append([inner + 1, inner + 1, outer - 1 - inner])
    return m


def resolve(maps: dict[str, Any] | None) -> tuple[Mapping, Mapping] | None:
    """The uid and gid maps (container id, id here, size) of a container's user namespace, or None
    when it runs in ours."""
    if not maps:
        return None
    if "keep_id" in maps:
        uid, gid = maps["keep_id"]
        return _keep_id_map(uid, _outer(True)), _keep_id_map(gid, _outer(False))
    if maps.get("nomap"):
        return [[0, 1, _outer(True) - 1]], [[0, 1, _outer(False) - 1]]
    return maps["uid"], maps["gid"]


def apply(spec: dict[str, Any], maps: dict[str, Any] | None) -> None:
    """Fit the OCI spec to rootless mode and give it the user namespace --userns asked for."""
    from dockyard.paths import is_rootless

    linux = spec["linux"]
    rootless = is_rootless()
    if rootless:
        from dockyard import host

        if host.cgroup_info().version != "v2":
            # No cgroup to make (resource flags were refused at create): with no path runc, like
            # our runtime, runs the container without one instead of failing on the first mkdir.
            linux.pop("cgroupsPath", None)
            linux.pop("resources", None)
    resolved = resolve(maps)
    if resolved is not None and maps is not None:
        u, g = resolved
        linux["namespaces"].append({"type": "user"})
        linux["uidMappings"] = [{"containerID": c, "hostID": h, "size": s} for c, h, s in u]
        linux["gidMappings"] = [{"containerID": c, "hostID": h, "size": s} for c, h, s in g]
    # sysfs can only be mounted by the user namespace owning the network namespace: the host's is not
    # ours when rootless, one made before (slirp4netns, bridge) is not a nested namespace's: bind the
    # host's /sys instead, as runc and Podman do.
    nets = [ns for ns in linux["namespaces"] if ns["type"] == "network"]
    if (resolved is not None and (not nets or nets[0].get("path"))) or (rootless and not nets):
        for m in spec["mounts"]:
            if m["destination"] == "/sys" and m["type"] == "sysfs":
                m.update(type="bind", source="/sys", options=["rbind", "nosuid", "noexec", "nodev", "ro"])


def _shift(maps: Mapping, ident: int) -> int:
    for c, h, n in maps:
        if c <= ident < c + n:
            return h + ident - c
    return ident  # unmapped: shows as the overflow id (nobody) inside, as it would anyway


def prepare_rootfs(root: Path, ctr_dir: Path, layer_dirs: list[Path], maps: dict[str, Any] | None) -> list[Path]:
    """The lower layers for a container with its own user namespace: copies of the image's layers whose
    owners are shifted through its maps (Podman's storage chown), made once per image layer and map
    and shared.  The container's directory becomes traversable (0711) for its root, which is no
    longer ours, and its writable layer's root is owned by it.  Without a user namespace: the layers."""
    resolved = resolve(maps)
    if resolved is None:
        return layer_dirs
    import shutil

    u, g = resolved
    _check_reachable(ctr_dir.parent.parent, u, g)
    out = []
    for layer in layer_dirs:
        dst = root / SHIFTED / _key(u, g) / layer.name
        if not dst.exists():
            dst.parent.mkdir(parents=True, exist_ok=True)
            tmp = dst.with_name(f".tmp-{layer.name}-{os.getpid()}-")
            shutil.rmtree(tmp, ignore_errors=True)
            import subprocess

            p = subprocess.run(["cp", "-a", "--reflink=auto", str(layer), str(tmp)], capture_output=True, text=True)
            if p.returncode != 0:
                shutil.rmtree(tmp, ignore_errors=True)
                raise DockyardError(f"cannot copy layer {layer.name} for the user namespace: {p.stderr.strip()}")
            _chown_tree(tmp, u, g)
            os.rename(tmp, dst)
        out.append(dst)
    for d in (root, root / "containers", ctr_dir):
        os.chmod(d, os.stat(d).st_mode & 0o7777 | 0o711)
    upper = ctr_dir / "upper"
    upper.mkdir(parents=True, exist_ok=True)
    os.chown(upper, _shift(u, 0), _shift(g, 0))
    return out


def _check_reachable(path: Path, u: Mapping, g: Mapping) -> None:
    """The runtime mounts the rootfs as the container's root, which is not ours: every directory above
    the store must let it pass (searchable by others, or owned by ids it maps, which it may override)."""
    def mapped(maps: Mapping, ident: int) -> bool:
        return any(h <= ident < h + n for _, h, n in maps)

    for d in [path, *path.parents]:
        st = os.stat(d)
        if not st.st_mode & 0o001 and not (mapped(u, st.st_uid) and mapped(g, st.st_gid)):
            raise Unsupported(f"the container's user namespace cannot reach its root filesystem: {d} is not "
                              f"searchable by others (chmod o+x {d}, or use a storage root below a searchable "
                              "directory)")


SHIFTED = "idmapped-layers"


def _key(u: Mapping, g: Mapping) -> str:
    import hashlib
    import json

    return hashlib.sha256(json.dumps([u, g]).encode()).hexdigest()[:16]


def prune_layers(root: Path, db: Any) -> None:
    """Delete the shifted layer copies no remaining container's maps use; free when none were made."""
    top = root / SHIFTED
    if not top.is_dir():
        return
    import json
    import shutil

    used = set()
    for row in db.query("SELECT settings FROM containers"):
        resolved = resolve(json.loads(row[0]).get("idmaps"))
        if resolved is not None:
            used.add(_key(*resolved))
    for d in top.iterdir():
        if d.name not in used:
            shutil.rmtree(d, ignore_errors=True)


def _chown_tree(top: Path, u: Mapping, g: Mapping) -> None:
    def fix(path: str) -> None:
        st = os.lstat(path)
        os.lchown(path, _shift(u, st.st_uid), _shift(g, st.st_gid))
        if st.st_mode & 0o6000 and not os.path.islink(path):
            os.chmod(path, st.st_mode & 0o7777)  # chown cleared the set-id bits

    fix(str(top))
    for dirpath, dirnames, filenames in os.walk(top):
        for name in dirnames + filenames:
            fix(os.path.join(dirpath, name))


_CGROUP_LIMITS = {"Memory": "--memory", "MemoryReservation": "--memory-reservation", "MemorySwap": "--memory-swap",
                  "NanoCpus": "--cpus", "CpuShares": "--cpu-shares", "PidsLimit": "--pids-limit"}


def check_resources(hc: dict[str, Any]) -> None:
    """Refuse cgroup limits at create when they cannot apply: rootless needs a cgroup v2 subtree
    delegated to the user (systemd's user@.service); on cgroup v1 and hybrid hosts there is none."""
    from dockyard.paths import is_rootless

    flags = [f for k, f in _CGROUP_LIMITS.items() if hc.get(k)]
    if not flags or not is_rootless():
        return
    from dockyard import host

    if host.cgroup_info().version != "v2":
        raise Unsupported(f"{', '.join(flags)}: rootless containers cannot have resource limits on this "
                          f"{host.cgroup_info().version} cgroup host (they need a delegated cgroup v2 subtree)")


def has_cgroup() -> bool:
    """Whether containers get a cgroup: rootless on a cgroup v1/hybrid host they have none (no delegation)."""
    from dockyard.paths import is_rootless

    if not is_rootless():
        return True
    from dockyard import host

    return host.cgroup_info().version == "v2"


def check_cgroup(what: str) -> None:
    """Refuse ``what`` (pause, stats), which needs the container's cgroup, with the reason (Podman's refusal)."""
    if not has_cgroup():
        from dockyard import host

        raise Unsupported(f"{what} needs a cgroup: rootless containers have none on this "
                          f"{host.cgroup_info().version} cgroup host")
