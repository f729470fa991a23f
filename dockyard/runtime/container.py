"""The runtime side of the OCI lifecycle: create, start, run, state, kill, delete, exec, ps, pause.

`create` forks the container init (see init.py), answers its requests (ID maps, runtime hooks),
records the state directory and returns while the init waits on ``exec.fifo``; `start` opens the
fifo to let it execve.  Every command reloads the state from ``<root>/<id>``.
"""

from __future__ import annotations

import _signal as signal  # `signal` itself wraps the numbers in enums, an import every start would pay
import os
import sys
import time

from dockyard.errors import Conflict, DockyardError, InvalidArgument, NotFound
from dockyard.runtime import attach_warmup
from dockyard.runtime import state as st
from dockyard.runtime.channel import Channel

# Annotations only (typing/socket at import would cost every start); mypy treats TYPE_CHECKING as true.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import socket

PR_SET_CHILD_SUBREAPER = 36

# Device nodes every container may use whatever its cgroup device rules say (runc's list).
DEFAULT_ALLOWED_DEVICES = [
    {"allow": True, "type": "c", "access": "m"}, {"allow": True, "type": "b", "access": "m"},
    {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 8, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 7, "access": "rwm"},
    {"allow": True, "type": "c", "major": 5, "minor": 0, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 9, "access": "rwm"},
    {"allow": True, "type": "c", "major": 136, "access": "rwm"},
    {"allow": True, "type": "c", "major": 5, "minor": 2, "access": "rwm"},
    {"allow": True, "type": "c", "major": 5, "minor": 1, "access": "rwm"},
    {"allow": True, "type": "c", "major": 10, "minor": 200, "access": "rwm"},
]


class RuntimeFailure(DockyardError):
    """A runtime operation failed (runc exits 1 for these)."""

    exit_code = 1


def warn(msg: str) -> None:
    from dockyard.runtime import cli

    cli.log("warning", msg)


def _resources(spec: dict) -> dict | None:
    linux = spec.get("linux") or {}
    res = linux.get("resources")
    if res is None:
        return None
    res = dict(res)
    if "devices" in res:
        extra = [{"allow": True, "type": d["type"], "major": d.get("major"), "minor": d.get("minor"),
                  "access": "rwm"} for d in linux.get("devices") or [] if d["type"] in ("c", "b")]
        res["devices"] = list(res["devices"]) + DEFAULT_ALLOWED_DEVICES + extra
    return res


def _write_id_maps(pid: int, linux: dict) -> None:
    def fmt(maps: list[dict]) -> str:
        return "".join(f"{m['containerID']} {m['hostID']} {m['size']}\n" for m in maps)

    uid_maps, gid_maps = linux.get("uidMappings") or [], linux.get("gidMappings") or []
    if os.geteuid() == 0:
        _write(f"/proc/{pid}/uid_map", fmt(uid_maps))
        _write(f"/proc/{pid}/gid_map", fmt(gid_maps))
        return
    own = (len(uid_maps) == 1 and uid_maps[0]["hostID"] == os.geteuid() and uid_maps[0]["size"] == 1,
           len(gid_maps) == 1 and gid_maps[0]["hostID"] == os.getegid() and gid_maps[0]["size"] == 1)
    if own[0]:
        _write(f"/proc/{pid}/uid_map", fmt(uid_maps))
    else:
        _idmap_helper("newuidmap", pid, uid_maps)
    if own[1]:
        # An unprivileged gid map needs setgroups disabled first (user_namespaces(7)).
        _write(f"/proc/{pid}/setgroups", "deny")
        _write(f"/proc/{pid}/gid_map", fmt(gid_maps))
    else:
        _idmap_helper("newgidmap", pid, gid_maps)


def _idmap_helper(prog: str, pid: int, maps: list[dict]) -> None:
    """Map ranges from /etc/subuid or /etc/subgid through the setuid helper (what rootless Podman does)."""
    import subprocess

    argv = [prog, str(pid)] + [str(m[k]) for m in maps for k in ("containerID", "hostID", "size")]
    try:
        p = subprocess.run(argv, capture_output=True, text=True)
    except FileNotFoundError:
        raise RuntimeFailure(f"{prog} is not installed (package uidmap); it is needed to map more than "
                            f"your own id into a rootless container") from None
    if p.returncode != 0:
        raise RuntimeFailure(f"{prog} failed: {p.stderr.strip() or p.returncode}")


def _write(path: str, text: str) -> None:
    try:
        with open(path, "w") as f:
            f.write(text)
    except OSError as e:
        raise RuntimeFailure(f"writing {path}: {e.strerror}") from None


def _rootless() -> bool:
    """Unprivileged, or root of a user namespace (rootless engine): no cgroupfs, no mknod (runc's test)."""
    if os.geteuid() != 0:
        return True
    try:
        with open("/proc/self/uid_map") as f:
            return " ".join(f.read().split()) != "0 0 4294967295"
    except OSError:
        return False


class Options:
    """Per-call flags of create/run/exec (a plain class: dataclasses cost milliseconds to import)."""

    def __init__(self, bundle: str | None = None, pid_file: str | None = None, console_socket: str | None = None,
                 no_pivot: bool = False, detach: bool = False, preserve_fds: int = 0) -> None:
        self.bundle = bundle
        self.preserve_fds = preserve_fds
        self.pid_file = pid_file
        self.console_socket = console_socket
        self.no_pivot = no_pivot
        self.detach = detach


def _kill_and_reap(pid: int, timeout: float = 10.0) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    _wait_gone(pid, None, timeout)


def _wait_gone(pid: int, start: int | None, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return
        except ChildProcessError:
            pass
        cur = st.proc_start_time(pid)
        if cur is None or (start is not None and cur != start):
            return
        if time.monotonic() > deadline:
            raise RuntimeFailure(f"process {pid} did not exit after SIGKILL")
        time.sleep(0.01)


def _remove_state_dir(path: str) -> None:
    """Remove a container's (flat) state directory; shutil would cost an import on every `run`."""
    try:
        names = os.listdir(path)
    except FileNotFoundError:
        return
    for name in names:
        try:
            os.unlink(os.path.join(path, name))
        except FileNotFoundError:
            pass
    try:
        os.rmdir(path)
    except FileNotFoundError:
        pass


def _write_pid_file(path: str | None, pid: int) -> None:
    if not path:
        return
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        f.write(str(pid))
    os.replace(tmp, path)


def create(root: str, cid: str, opts: Options, internal_console: bool = False,  # noqa: C901
           subreaper: bool = False, start_channel: bool = False):
    """Create a container; returns (Container, console master fd or None).

    ``subreaper``: make this process the subreaper that inherits the container's init (`run`).
    ``start_channel``: `run`: the init is started over the sync channel, kept as ``c.start_channel``."""
    from dockyard.runtime import spec as spec_mod

    bundle = os.path.abspath(opts.bundle or os.getcwd())
    st.check_id(cid)
    if os.path.exists(os.path.join(root, cid)):
        raise Conflict(f"container with id exists: {cid}")
    spec = spec_mod.load_bundle(bundle)
    given = os.path.normpath(os.path.join(bundle, spec["root"]["path"]))
    if not os.path.isdir(given):
        raise InvalidArgument(f"rootfs ({given}) does not exist")
    rootfs = os.path.realpath(given)  # as runc: mounts and pivot_root work on the resolved path
    if rootfs == "/":
        raise InvalidArgument("rootfs cannot be the host's / (pivot_root onto itself)")
    linux = spec.get("linux") or {}
    ns_types = {ns["type"] for ns in linux.get("namespaces") or []}
    if "mount" not in ns_types:
        raise InvalidArgument("a mount namespace is required (add {\"type\": \"mount\"} to linux.namespaces)")
    if spec.get("hostname") and "uts" not in ns_types:
        raise InvalidArgument("unable to set hostname without a private UTS namespace")
    terminal = bool(spec["process"].get("terminal"))
    if terminal and not opts.console_socket and not internal_console:
        raise InvalidArgument("cannot allocate tty if the runtime will detach without setting console socket")
    if not terminal and opts.console_socket:
        raise InvalidArgument("cannot use console socket if the runtime will not detach or allocate tty")

    c = st.claim(root, cid)
    cg = None
    init_pid = 0
    console_parent = None
    child = 0
    try:
        # Written before anything is started, so a `create` killed half-way leaves enough for
        # `delete --force` to find and remove its cgroup.
        c.data = {"id": cid, "pid": 0, "creator": [os.getpid(), st.proc_start_time(os.getpid())],
                  "bundle": bundle, "rootfs": rootfs, "created": st.utc_now(), "owner": _owner(), "config": spec,
                  "cgroups_path": linux.get("cgroupsPath"), "has_cgroup": True, "rootless": _rootless(),
                  "namespaces": sorted(ns_types)}
        c.save()
        os.mkfifo(c.fifo, 0o622)
        os.chmod(c.fifo, 0o622)  # not the umask's: the init may have switched to another user when it opens it
        console_parent, console_fd = _console_channel(terminal, opts.console_socket)
        ctx = {"spec": spec, "rootfs": rootfs, "bundle": bundle, "fifo": c.fifo, "no_pivot": opts.no_pivot,
               "console_fd": console_fd, "keep_fds": 3 + opts.preserve_fds,
               "seccomp_prog": _compile_seccomp(root, linux.get("seccomp")), "in_userns": c.data["rootless"],
               "start_on_channel": start_channel}
        # What the child needs is imported here, once, rather than after the fork (and from inside a
        # user namespace the host's Python library may be out of reach).  On cgroup v2 hosts this
        # also overlaps the grace period the warm-up's migration is waiting out (attach_warmup).
        from dockyard.runtime import _libc, cgroups, init

        init.preload(spec)
        if subreaper:
            # The child forks the init and exits, and the init must be reparented to us.
            _libc.prctl(PR_SET_CHILD_SUBREAPER, 1)
        # mkdir in cgroupfs takes cgroup_mutex, which a warm-up (v2 hosts) holds until its grace period is over.
        cg = cgroups.manager(linux.get("cgroupsPath"), cid, _rootless())
        for w in cg.create(_resources(spec)) or []:
            warn(w)
        self_attach = cg.self_attach()
        cg_fd = -1
        if self_attach is not None and self_attach[1]:
            cg_fd = os.open(self_attach[1], os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        r1, w1 = os.pipe()
        r2, w2 = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        attach_warmup.join()
        # Root of a user namespace (rootless engine) may not setns back into the host's PID namespace.
        ctx["born_in_pidns"] = _fork_into_new_pidns(linux) and not c.data["rootless"]
        try:
            child, placed = _fork_child(ctx["born_in_pidns"], cg_fd)
        finally:
            if cg_fd >= 0:
                os.close(cg_fd)
        # The v1 hierarchies the child joins itself, once it knows it is in the cgroup2 one (if any);
        # None: this side moves it by pid.
        joins = self_attach[0] if self_attach is not None and (placed or not self_attach[1]) else None
        if child == 0:
            # Never let the child unwind into the parent's cleanup code below.
            try:
                os.close(r1)
                os.close(w2)
                ctx["cgroup_tasks"] = joins or []
                init.stage1(r2, w1, ctx)
            finally:
                os._exit(1)
        os.close(w1)
        os.close(r2)
        if console_fd is not None and not opts.console_socket:
            os.close(console_fd)
        elif console_parent is not None:
            console_parent.close()
            console_parent = None
        # The child waits for "go", sent once it is in the cgroup, before it unshares anything.
        ch = Channel(r1, w2)
        procs = {"child": child, "init": child if ctx["born_in_pidns"] else 0}
        try:
            init_pid = _drive_init(ch, c, None if joins is not None else cg, procs, spec, bundle)
            if start_channel:
                c.start_channel = ch
        finally:
            if c.start_channel is not ch:
                ch.close()
            child, init_pid = procs["child"], procs["init"]
        c.data.update(pid=init_pid, pid_start=st.proc_start_time(init_pid), created=st.utc_now())
        del c.data["creator"]
        c.save()
        _write_pid_file(opts.pid_file, init_pid)
    except BaseException:
        if c.start_channel is not None:
            c.start_channel.close()
            c.start_channel = None
        if init_pid:
            _kill_and_reap(init_pid)
        if child and child != init_pid:
            _kill_and_reap(child)
        if cg is not None:
            try:
                cg.destroy()
            except Exception:  # noqa: BLE001 - the original error is the one to report
                pass
        _remove_state_dir(c.dir)
        raise
    master = None
    if console_parent is not None:
        from dockyard.runtime import console

        master = console.recv_fd(console_parent)
        console_parent.close()
    return c, master


def _fork_child(new_pidns: bool, cgroup_fd: int) -> tuple[int, bool]:
    """Fork `create`'s child: (its pid, or 0 in the child; whether it was created in the cgroup2
    directory ``cgroup_fd``).  ``new_pidns``: as PID 1 of a new PID namespace, which saves the extra
    fork an unshare in the child would need."""
    from dockyard.runtime import linux as L

    if cgroup_fd >= 0:
        try:
            return L.fork_into_cgroup(cgroup_fd, L.CLONE_NEWPID if new_pidns else 0), True
        except OSError:
            pass  # a kernel without clone3/CLONE_INTO_CGROUP: fork, and the child is moved by pid
    own_pidns = -1
    if new_pidns:
        # Our own later children (hooks, newuidmap) must stay in our PID namespace: setns back after.
        own_pidns = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
        L.unshare(L.CLONE_NEWPID)
    try:
        pid = os.fork()
    except BaseException:
        if own_pidns >= 0:
            L.setns(own_pidns, L.CLONE_NEWPID)
            os.close(own_pidns)
        raise
    if own_pidns >= 0:
        if pid:  # not in the child: its own children belong in the new namespace
            L.setns(own_pidns, L.CLONE_NEWPID)
        os.close(own_pidns)
    return pid, False


def _fork_into_new_pidns(linux: dict) -> bool:
    """Whether `create` can fork the container's PID 1 directly: a new PID namespace and no user
    namespace (a PID namespace must be created inside the user namespace that will own it)."""
    types = {ns["type"]: ns.get("path") for ns in linux.get("namespaces") or []}
    return "pid" in types and not types["pid"] and "user" not in types


def _compile_seccomp(root: str, seccomp: dict | None) -> bytes | None:
    """Compile the filter before forking: a bad profile fails `create` early, and the BPF (cached under
    the state root, ~20 ms to generate for Docker's profile) is ready for the child to install."""
    if not seccomp:
        return None
    from dockyard.runtime import seccomp as sc

    # '@' cannot occur in a container id, so the cache never collides with a container's directory.
    return sc.compile_cached(seccomp, os.path.join(root, "@seccomp-cache"))


def _owner() -> str:
    if os.geteuid() == 0:
        return ""
    import pwd

    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())


def _drive_init(ch: Channel, c: st.Container, cg, procs: dict[str, int], spec: dict,  # noqa: ANN001
                bundle: str) -> int:
    """Answer the forked child until its init is ready.  ``procs`` tracks what is still ours to kill
    should this fail: the first child (until reaped) and the init.  ``cg``: the cgroup to move the
    child into before it goes on (None: it is in already, or joins by itself)."""
    child = procs["child"]
    if cg is not None:
        try:
            cg.add(child)
        except OSError as e:
            raise RuntimeFailure(f"cannot move the container init into its cgroup: {e.strerror}") from None
    ch.send("go")
    init_pid = procs["init"]
    linux = spec.get("linux") or {}
    while True:
        msg = ch.recv()
        if msg is None:
            raise RuntimeFailure("container init exited before it was ready")
        kind, _, rest = msg.partition(" ")
        if kind == "userns":
            _write_id_maps(child, linux)
            ch.send("go")
        elif kind == "pid":
            init_pid = procs["init"] = int(rest)
            if init_pid != child:
                os.waitpid(child, 0)
                procs["child"] = 0
        elif kind == "hooks":
            from dockyard.runtime import hooks, jsonfast

            state = {"ociVersion": spec.get("ociVersion"), "id": c.id, "status": "creating", "pid": init_pid,
                     "bundle": bundle}
            if spec.get("annotations"):
                state["annotations"] = spec["annotations"]
            hk = spec.get("hooks") or {}
            hooks.run("prestart", hk.get("prestart"), state)
            hooks.run("createRuntime", hk.get("createRuntime"), state)
            ch.send("go " + jsonfast.dumps(state))
        elif kind == "warn":
            warn(rest)
        elif kind == "error":
            raise RuntimeFailure(rest)
        elif kind == "ready":
            return init_pid


def start(root: str, cid: str) -> st.Container:
    return _start(st.Container.load(root, cid))


def _start(c: st.Container, check: bool = True) -> st.Container:
    """Let the init exec the user process.  ``check=False``: `run`, which has just created it (an init
    that died since is still caught below)."""
    if check:
        status = c.status()
        if status != "created":
            if status == "stopped":
                raise RuntimeFailure("cannot start a container that has stopped")
            raise RuntimeFailure(f"cannot start an already {status} container")
    if c.start_channel is not None:
        ch, c.start_channel = c.start_channel, None
        try:
            ch.send("start")
        except OSError:
            raise RuntimeFailure("container init exited before start") from None
        finally:
            ch.close()
    else:
        _start_through_fifo(c)
    os.unlink(c.fifo)
    hk = (c.config.get("hooks") or {}).get("poststart")
    if hk:
        from dockyard.runtime import hooks

        try:
            hooks.run("poststart", hk, c.oci_state("running"))
        except DockyardError as e:
            warn(str(e))
    return c


def _start_through_fifo(c: st.Container) -> None:
    import select

    fd = os.open(c.fifo, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        while True:
            r, _, _ = select.select([fd], [], [], 0.2)
            if r:
                if os.read(fd, 1):
                    return
                # EOF: the init connected and wrote its byte to another `start` that won the race.
                raise RuntimeFailure("cannot start an already running container")
            if not c.alive():
                raise RuntimeFailure("container init exited before start")
            if not os.path.exists(c.fifo):
                # A `run` started it over its own channel.
                raise RuntimeFailure("cannot start an already running container")
    finally:
        os.close(fd)


def parse_signal(s: str | None) -> int:
    if not s:
        return signal.SIGTERM
    if s.isdigit():
        return int(s)
    name = s.upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    import signal as signal_names

    try:
        return int(signal_names.Signals[name])
    except KeyError:
        raise InvalidArgument(f"unknown signal {s!r}") from None


def container_pids(c: st.Container) -> list[int]:
    cg = c.cgroup()
    if cg is not None:
        try:
            pids = cg.pids()
            if pids or not c.alive():
                return sorted(pids)
        except OSError:
            pass
    if not c.alive():
        return []
    if "pid" not in c.data.get("namespaces", []):
        return [c.pid]
    target = os.stat(f"/proc/{c.pid}/ns/pid").st_ino
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if os.stat(f"/proc/{name}/ns/pid").st_ino == target:
                    out.append(int(name))
            except OSError:
                pass
    return sorted(out)


def kill(root: str, cid: str, sig: str | None, all_procs: bool = False) -> None:
    c = st.Container.load(root, cid)
    signum = parse_signal(sig)
    if c.status() in ("stopped", "creating"):
        raise RuntimeFailure("container not running")
    targets = container_pids(c) if all_procs else [c.pid]
    for pid in targets:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass


def destroy(c: st.Container) -> None:
    """Stop every process, remove the cgroup, run poststop hooks, remove the state directory."""
    cg = c.cgroup()
    if c.alive():
        try:
            os.kill(c.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for pid in container_pids(c):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    if cg is not None:
        try:
            if cg.exists() and cg.freezer_state() == "FROZEN":
                cg.thaw()
        except OSError:
            pass
    if c.pid:
        _wait_gone(c.pid, c.data.get("pid_start"))
    if cg is not None:
        deadline = time.monotonic() + 10
        while True:
            try:
                cg.destroy()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
    hk = (c.config.get("hooks") or {}).get("poststop")
    if hk:
        from dockyard.runtime import hooks

        try:
            hooks.run("poststop", hk, c.oci_state("stopped"))
        except DockyardError as e:
            warn(str(e))
    _remove_state_dir(c.dir)


def delete(root: str, cid: str, force: bool = False) -> None:
    try:
        c = st.Container.load(root, cid)
    except NotFound:
        if force:
            # Also sweeps a state dir a killed `create` left half-written.
            _remove_state_dir(os.path.join(root, cid))
            return
        raise
    status = c.status()
    if status in ("running", "paused", "creating") and not force:
        raise RuntimeFailure(f"cannot delete container {cid} that is not stopped: {status}")
    destroy(c)


def pause(root: str, cid: str) -> None:
    c = st.Container.load(root, cid)
    if c.status() != "running":
        raise RuntimeFailure("container not running")
    cg = c.cgroup()
    if cg is None:
        raise RuntimeFailure("container has no cgroup to freeze")
    cg.freeze()


def update(root: str, cid: str, resources: dict) -> None:
    """New resource limits for a created, running or paused container (`docker update`)."""
    c = st.Container.load(root, cid)
    if c.status() in ("stopped", "creating"):
        raise RuntimeFailure("container not running")
    cg = c.cgroup()
    if cg is None:
        raise RuntimeFailure("container has no cgroup to update")
    for w in cg.update(resources) or []:
        warn(w)
    # Later commands (and a re-created manager) see the limits now in force.
    linux = c.config.setdefault("linux", {})
    merged = linux.setdefault("resources", {})
    for section, values in resources.items():
        if isinstance(values, dict) and isinstance(merged.get(section), dict):
            merged[section].update(values)
        else:
            merged[section] = values
    c.save()


def resume(root: str, cid: str) -> None:
    c = st.Container.load(root, cid)
    if c.status() != "paused":
        raise RuntimeFailure("container not paused")
    c.cgroup().thaw()


def _forward_signals(pid: int) -> None:
    def fwd(signum, _frame):  # noqa: ANN001
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(s, fwd)


def _wait_exit(pid: int, master: int | None) -> int:
    if master is not None:
        from dockyard.runtime import console

        status: list[int] = []

        def done() -> bool:
            if not status:
                p, s = os.waitpid(pid, os.WNOHANG)
                if p == pid:
                    status.append(s)
            return bool(status)

        console.proxy(master, done)
        os.close(master)
        if not status:
            status.append(os.waitpid(pid, 0)[1])
        s = status[0]
    else:
        s = os.waitpid(pid, 0)[1]
    code = os.waitstatus_to_exitcode(s)
    return 128 - code if code < 0 else code


def run(root: str, cid: str, opts: Options) -> int:
    # Foreground: the init's intermediate parent exits; as subreaper we inherit the init and get its
    # exit status.
    c, master = create(root, cid, opts, internal_console=not opts.detach and not opts.console_socket,
                       subreaper=not opts.detach, start_channel=True)
    try:
        if not opts.detach:
            _forward_signals(c.pid)
        _start(c, check=False)  # the state `create` just wrote, without reading it back
    except BaseException:
        destroy(c)
        raise
    if opts.detach:
        return 0
    try:
        code = _wait_exit(c.pid, master)
    finally:
        destroy(c)
    return code


def exec_(root: str, cid: str, proc: dict, opts: Options) -> int:
    """Run another process in a running container; returns its exit code (0 when detached)."""
    c = st.Container.load(root, cid)
    status = c.status()
    if status == "stopped":
        raise RuntimeFailure("cannot exec in a stopped container")
    if status == "paused":
        raise RuntimeFailure("cannot exec in a paused container")
    terminal = bool(proc.get("terminal"))
    if terminal and opts.detach and not opts.console_socket:
        raise InvalidArgument("cannot allocate tty if the runtime will detach without setting console socket")
    spec = c.config
    linux = spec.get("linux") or {}
    seccomp_prog = _compile_seccomp(root, linux.get("seccomp"))
    from dockyard.runtime import init
    from dockyard.runtime._libc import prctl

    init.preload(spec)  # here, not in the child: the child may not read the host's library once in a userns
    if not opts.detach:
        prctl(PR_SET_CHILD_SUBREAPER, 1)
    console_parent, console_fd = _console_channel(terminal, opts.console_socket)
    cg = c.cgroup()
    # As in create: joined without a migration by pid where the cgroup manager allows it.
    self_attach = cg.self_attach() if cg is not None else None
    cg_fd = -1
    if self_attach is not None and self_attach[1]:
        try:
            cg_fd = os.open(self_attach[1], os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:
            self_attach = None  # no cgroup of its own (rootless): moved by pid below, failures ignored
    r1, w1 = os.pipe()
    r2, w2 = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    attach_warmup.join()
    try:
        child, placed = _fork_child(False, cg_fd)
    finally:
        if cg_fd >= 0:
            os.close(cg_fd)
    joins = self_attach[0] if self_attach is not None and (placed or not self_attach[1]) else None
    if child == 0:
        try:
            os.close(r1)
            os.close(w2)
            _exec_child(Channel(r2, w1), c, proc, linux, console_fd, 3 + opts.preserve_fds, seccomp_prog,
                        joins or [])
        finally:
            os._exit(1)
    os.close(w1)
    os.close(r2)
    if console_fd is not None and not opts.console_socket:
        os.close(console_fd)
    elif console_parent is not None:
        console_parent.close()
        console_parent = None
    ch = Channel(r1, w2)
    pid = 0
    try:
        if cg is not None and joins is None:
            try:
                cg.add(child)
            except OSError:
                pass  # a rootless container may have no cgroup of its own
        ch.send("go")
        while True:
            msg = ch.recv()
            if msg is None:
                break
            kind, _, rest = msg.partition(" ")
            if kind == "pid":
                pid = int(rest)
                if pid != child:
                    os.waitpid(child, 0)
                    child = 0
            elif kind == "warn":
                warn(rest)
            elif kind == "error":
                if pid:
                    _kill_and_reap(pid)
                if child and child != pid:
                    _kill_and_reap(child)
                raise RuntimeFailure(rest)
    finally:
        ch.close()
    if not pid:
        if child:
            _kill_and_reap(child)
        raise RuntimeFailure("exec process exited before it started")
    _write_pid_file(opts.pid_file, pid)
    master = None
    if console_parent is not None:
        from dockyard.runtime import console

        master = console.recv_fd(console_parent)
        console_parent.close()
    if opts.detach:
        if master is not None:
            os.close(master)
        return 0
    _forward_signals(pid)
    return _wait_exit(pid, master)


def _exec_child(ch: Channel, c: st.Container, proc: dict, linux: dict, console_fd: int | None,
                keep_fds: int, seccomp_prog: bytes | None, cgroup_tasks: list[str]) -> None:
    from dockyard.runtime import init, rlimits

    try:
        if console_fd is not None:
            from dockyard.runtime import console
        ch.expect("go")
        for path in cgroup_tasks:
            try:
                init.join_cgroup(path)
            except OSError:
                pass  # as a move by pid: a rootless container may have no cgroup of its own
        namespaces = linux.get("namespaces") or []
        if init.enter_namespaces(ch, namespaces, join_pid=c.pid):
            init.fork_into_pidns(ch)
        else:
            ch.send(f"pid {os.getpid()}")
        os.setsid()
        if console_fd is not None:
            console.setup_pty(console_fd)
            os.close(console_fd)
        for w in rlimits.apply(proc.get("rlimits")):
            ch.send(f"warn {w}")
        init.oom_score_adj(proc.get("oomScoreAdj"), ch)
        os.chdir(proc.get("cwd") or "/")
        seccomp = linux.get("seccomp")
        init.setup_user_and_caps(proc, seccomp, ch, seccomp_prog)
        path = init.resolve_exec(proc["args"][0], proc.get("env") or [])
        init.with_home(proc)
        init.close_inherited_fds(keep_fds)
    except BaseException as e:  # noqa: BLE001
        ch.report(e)
        os._exit(1)
    ch.close()
    try:
        init.exec_process(proc, path, seccomp, seccomp_prog)
    except BaseException as e:  # noqa: BLE001
        print(f"Error: {init._describe(e)}", file=sys.stderr, flush=True)
    os._exit(127)


def _console_channel(terminal: bool, console_socket: str | None) -> tuple[socket.socket | None, int | None]:
    """Where the init sends its pty master: the caller's --console-socket, or (without one) our end
    of a socketpair so `run`/`exec` can attach the current terminal.  Returns (our socket, child's fd)."""
    if not terminal:
        return None, None
    if console_socket:
        from dockyard.runtime import console

        sock = console.connect(console_socket)
        return sock, sock.fileno()
    import socket

    ours, child_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    return ours, child_sock.detach()
