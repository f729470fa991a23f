"""The forked side of `create` and `exec`: namespaces, rootfs, process setup, then execve.

The parent and the forked processes talk over a pair of pipes in short text lines ("go", "pid N",
"userns", "hooks", "warn MSG", "error MSG", "ready").  Any failure in the child travels back as one
"error" line so `create` can print it once and clean up.
"""

from __future__ import annotations

import os
import sys

from dockyard.runtime import linux as L
from dockyard.runtime.channel import Channel, _describe

PR_SET_NO_NEW_PRIVS = 38


def enter_namespaces(ch: Channel, namespaces: list[dict], join_pid: int | None = None) -> bool:
    """Join namespaces given by path (or those of ``join_pid``) and unshare new ones.

    Returns whether the caller must fork so the next process lands in the target PID namespace.
    A new user namespace is created first and the parent writes its ID maps ("userns" / "go").
    """
    fds: dict[str, int] = {}
    new = 0
    for ns in namespaces:
        flag, entry = L.NAMESPACES[ns["type"]]
        path = ns.get("path")
        if join_pid is not None:
            path = f"/proc/{join_pid}/ns/{entry}"
            if os.stat(path).st_ino == os.stat(f"/proc/self/ns/{entry}").st_ino:
                continue  # already there (setns to one's own user namespace fails)
        if path:
            try:
                fds[ns["type"]] = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except OSError as e:
                raise OSError(e.errno, f"cannot open {ns['type']} namespace {path}: {e.strerror}") from None
        else:
            new |= flag
    joins_pid = "pid" in fds
    try:
        if "user" in fds:
            # A namespace owned by an ancestor user namespace (the network namespace made before a
            # --userns container) can only be joined from out here: try the others first (runc's order).
            for typ in [t for t in fds if t not in ("user", "mount")]:
                try:
                    L.setns(fds[typ], 0)
                except OSError:
                    continue
                os.close(fds.pop(typ))
            fd = fds.pop("user")
            try:
                L.setns(fd, L.CLONE_NEWUSER)
            finally:
                os.close(fd)
        elif new & L.CLONE_NEWUSER:
            # Namespaces joined by path (a network namespace made beforehand) are joined first, while
            # we still hold the privileges of the namespace that owns them, as runc's nsexec does.
            for typ in [t for t in fds if t != "mount"]:
                fd = fds.pop(typ)
                try:
                    L.setns(fd, 0)
                finally:
                    os.close(fd)
            L.unshare(L.CLONE_NEWUSER)
            ch.send("userns")
            ch.expect("go")
            new &= ~L.CLONE_NEWUSER
        if "user" in [ns["type"] for ns in namespaces]:
            try:
                os.setresgid(0, 0, 0)
                os.setresuid(0, 0, 0)
            except OSError:
                pass  # root is not mapped; keep whatever identity the map gave us
        # The mount namespace is entered last: the other paths are host paths.
        for typ in sorted(fds, key=lambda t: t == "mount"):
            fd = fds.pop(typ)
            try:
                L.setns(fd, 0)
            finally:
                os.close(fd)
    finally:
        for fd in fds.values():
            try:
                os.close(fd)
            except OSError:
                pass
    pid_new = bool(new & L.CLONE_NEWPID)
    if new & ~L.CLONE_NEWPID:
        L.unshare(new & ~L.CLONE_NEWPID)
        if new & L.CLONE_NEWNET:
            L.loopback_up()
    if pid_new:
        L.unshare(L.CLONE_NEWPID)
    return pid_new or joins_pid


def fork_into_pidns(ch: Channel) -> None:
    """Fork so the child is in the new PID namespace; the parent reports the child's pid and exits."""
    r, w = os.pipe()
    pid = os.fork()
    if pid:
        ch.send(f"pid {pid}")
        os.write(w, b"1")  # the pid is on the channel before anything the child sends
        os._exit(0)
    os.close(w)
    # Returns on the byte (or at EOF should our parent die first); the child need not wait for its
    # parent's exit, which tears down a whole interpreter's address space.
    os.read(r, 1)
    os.close(r)


def resolve_exec(args0: str, env: list[str]) -> str:
    if "/" in args0:
        if not os.access(args0, os.X_OK):
            raise OSError(2 if not os.path.exists(args0) else 13,
                          f'exec: "{args0}": ' + ("no such file or directory" if not os.path.exists(args0)
                                                   else "permission denied"))
        return args0
    path = next((e[5:] for e in env if e.startswith("PATH=")), "/usr/local/bin:/usr/bin:/bin")
    for d in path.split(":"):
        cand = os.path.join(d or ".", args0)
        if os.path.isfile(cand) and os.access(cand, os.X_OK):
            return cand
    raise OSError(2, f'exec: "{args0}": executable file not found in $PATH')


def setup_user_and_caps(proc: dict, seccomp: dict | None, ch: Channel | None, compiled: bytes | None = None,
                        ) -> None:
    """Identity, capabilities and (when no_new_privileges is off) seccomp, in runc's order.

    ``compiled`` is the BPF program the parent compiled before forking (seccomp.compile_cached)."""
    from dockyard.runtime import capabilities

    user = proc.get("user") or {}
    caps = proc.get("capabilities")
    nnp = bool(proc.get("noNewPrivileges"))
    warnings: list[str] = []
    if seccomp is not None and not nnp:
        from dockyard.runtime import seccomp as sc

        sc.load(seccomp, False, compiled)
    warnings += capabilities.drop_bounding(caps) or []
    capabilities.keep_caps_on_setuid()
    gids = user.get("additionalGids")
    try:
        os.setgroups(list(gids or []))
    except PermissionError:
        if gids:
            raise
    os.setresgid(user.get("gid", 0), user.get("gid", 0), user.get("gid", 0))
    os.setresuid(user.get("uid", 0), user.get("uid", 0), user.get("uid", 0))
    warnings += capabilities.apply(caps) or []
    if "umask" in user:
        os.umask(user["umask"])
    else:
        os.umask(0o022)
    if ch is not None:
        for w in warnings:
            # runc raises ambient capabilities on a best-effort basis and says nothing; so do we.
            if not w.startswith("ambient capability"):
                ch.send(f"warn {w}")


def close_inherited_fds(keep: int = 3) -> None:
    """Only stdio and the --preserve-fds ones (3 .. keep-1) reach the container's process."""
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        try:
            if fd >= keep:
                os.set_inheritable(fd, False)
            elif fd >= 3:
                os.set_inheritable(fd, True)
        except OSError:
            pass


def exec_process(proc: dict, path: str, seccomp: dict | None, compiled: bytes | None = None) -> None:
    if proc.get("noNewPrivileges"):
        # Last step before execve: seccomp (if any) and no_new_privs.  Without no_new_privs seccomp
        # was loaded while the process still had CAP_SYS_ADMIN (setup_user_and_caps).
        if seccomp:
            from dockyard.runtime import seccomp as sc

            sc.load(seccomp, True, compiled)
        else:
            # What seccomp.load(None, True) does, without importing libseccomp's bindings on the hot path.
            from dockyard.runtime._libc import prctl

            prctl(PR_SET_NO_NEW_PRIVS, 1)
    env = dict(e.split("=", 1) if "=" in e else (e, "") for e in proc.get("env") or [])
    os.execve(path, proc["args"], env)


def with_home(proc: dict) -> None:
    """Like runc: HOME from the container's /etc/passwd for the process uid, else "/", unless set."""
    env = proc.setdefault("env", [])
    if any(e.startswith("HOME=") for e in env):
        return
    uid = str((proc.get("user") or {}).get("uid", 0))
    home = "/"
    try:
        with open("/etc/passwd") as f:
            for line in f:
                parts = line.rstrip("\n").split(":")
                if len(parts) >= 6 and parts[2] == uid:
                    home = parts[5] or "/"
                    break
    except OSError:
        pass
    env.append(f"HOME={home}")


def oom_score_adj(value: int | None, ch: Channel | None = None) -> None:
    if value is None:
        return
    try:
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write(str(value))
    except PermissionError:
        # Lowering the score needs CAP_SYS_RESOURCE; like rlimits, keep what we have and say so.
        with open("/proc/self/oom_score_adj") as f:
            current = f.read().strip()
        if ch is None:
            raise
        ch.send(f"warn cannot lower oom_score_adj to {value} without CAP_SYS_RESOURCE; keeping {current}")


def preload(spec: dict) -> None:
    """Import now what runs after pivot_root: the host's Python library is out of reach from then on."""
    from dockyard import host
    from dockyard.runtime import capabilities, rlimits, rootfs  # noqa: F401

    if (spec.get("process") or {}).get("terminal"):
        from dockyard.runtime import console  # noqa: F401

    capabilities.last_cap()
    host.cgroup_info()
    if (spec.get("linux") or {}).get("seccomp"):
        from dockyard.runtime import seccomp  # noqa: F401 - the filter itself was compiled by the parent
    if spec.get("hooks"):
        import subprocess  # noqa: F401

        from dockyard.runtime import hooks  # noqa: F401


def container_init(ch: Channel, ctx: dict) -> None:
    """Runs as the container's init (PID 1 in a new PID namespace): never returns."""
    spec = ctx["spec"]
    proc = spec["process"]
    linux = spec.get("linux") or {}
    ns_types = {ns["type"] for ns in linux.get("namespaces") or []}
    try:
        os.setsid()
        from dockyard.runtime import rlimits, rootfs

        rootfs.prepare(ctx["rootfs"], spec, ctx["bundle"], "user" in ns_types or ctx.get("in_userns", False),
                       "cgroup" in ns_types)
        hooks = spec.get("hooks") or {}
        state: dict = {}
        if any(hooks.get(k) for k in ("prestart", "createRuntime", "createContainer", "startContainer")):
            # The parent runs prestart/createRuntime hooks in the runtime's namespaces, then sends the state.
            ch.send("hooks")
            reply = ch.recv() or ""
            if not reply.startswith("go "):
                raise RuntimeError("the runtime did not answer the hooks request")
            from dockyard.runtime import jsonfast

            state = jsonfast.loads(reply[3:])
        if hooks.get("createContainer"):
            from dockyard.runtime import hooks as hk

            hk.run("createContainer", hooks["createContainer"], state)
        fifo = ctx["fifo_fd"]
        rootfs.pivot(ctx["rootfs"], ctx["no_pivot"])
        if ctx.get("console_fd") is not None:
            from dockyard.runtime import console

            slave = console.setup_pty(ctx["console_fd"])
            os.close(ctx["console_fd"])
            _bind_console(slave)
        if "hostname" in spec:
            L.sethostname(spec["hostname"])
        if spec.get("domainname"):
            L.setdomainname(spec["domainname"])
        if linux.get("sysctl"):
            rootfs.write_sysctl(linux["sysctl"])
        rootfs.finalize(spec)
        oom_score_adj(proc.get("oomScoreAdj"), ch)
        for w in rlimits.apply(proc.get("rlimits")):
            ch.send(f"warn {w}")
        seccomp = linux.get("seccomp")
        cwd = proc.get("cwd") or "/"
        os.chdir(cwd)
        setup_user_and_caps(proc, seccomp, ch, ctx.get("seccomp_prog"))
        path = resolve_exec(proc["args"][0], proc.get("env") or [])
        with_home(proc)
    except BaseException as e:  # noqa: BLE001 - everything goes back to `create` as one line
        ch.report(e)
        os._exit(1)
    ch.send("ready")
    # `run` starts the container it has just created: "start" comes over the channel, sparing both
    # sides the exec.fifo rendezvous.  Anything else (EOF: the runtime failed or died) means no start.
    on_channel = ctx.get("start_on_channel")
    if on_channel and ch.recv() != "start":
        os._exit(1)
    ch.close()
    try:
        if not on_channel:
            fd = os.open(f"/proc/self/fd/{fifo}", os.O_WRONLY | os.O_CLOEXEC)
            os.write(fd, b"0")
            os.close(fd)
        os.close(fifo)
        if (spec.get("hooks") or {}).get("startContainer"):
            from dockyard.runtime import hooks as hk

            hk.run("startContainer", spec["hooks"]["startContainer"], dict(state, status="created"))
        close_inherited_fds(ctx["keep_fds"])
        exec_process(proc, path, seccomp, ctx.get("seccomp_prog"))
    except BaseException as e:  # noqa: BLE001
        print(f"Error: {_describe(e)}", file=sys.stderr, flush=True)
    os._exit(127)


def _bind_console(slave: str) -> None:
    try:
        if not os.path.exists("/dev/console"):
            os.close(os.open("/dev/console", os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o600))
        L.mount(slave, "/dev/console", None, L.MS_BIND)
    except OSError:
        pass  # a read-only /dev: the pty still works as stdio


def join_cgroup(tasks: str) -> None:
    """Move this (single-threaded) process into a v1 cgroup: "0" names the writer, which the kernel
    moves without taking its global threadgroup lock (CgroupManager.self_attach)."""
    try:
        fd = os.open(tasks, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, b"0")
        finally:
            os.close(fd)
    except OSError as e:
        raise OSError(e.errno, f"cannot join cgroup {os.path.dirname(tasks)}: {e.strerror}") from None


def stage1(rfd: int, wfd: int, ctx: dict) -> None:
    """First forked process of `create`: namespaces, then become (or fork) the init.  Never returns."""
    ch = Channel(rfd, wfd)
    try:
        # `create` ran preload() before forking: from inside a user namespace the host's Python
        # library may be unreadable.
        ch.expect("go")  # the parent has moved us into the cgroup, or left that to us
        for path in ctx.get("cgroup_tasks") or []:
            join_cgroup(path)
        # Opened before the user namespace: its root may not be allowed to walk to the state directory.
        ctx["fifo_fd"] = os.open(ctx["fifo"], os.O_PATH | os.O_CLOEXEC)
        namespaces = ((ctx["spec"].get("linux") or {}).get("namespaces")) or []
        if ctx.get("born_in_pidns"):
            # Already PID 1 of the new PID namespace; the runtime knows our pid from its fork.
            enter_namespaces(ch, [ns for ns in namespaces if ns["type"] != "pid"])
        elif enter_namespaces(ch, namespaces):
            fork_into_pidns(ch)
        else:
            ch.send(f"pid {os.getpid()}")
    except BaseException as e:  # noqa: BLE001
        ch.report(e)
        os._exit(1)
    container_init(ch, ctx)
