"""Where a container's runtime state lives, so any later process can `state`/`kill`/`delete` it.

``<root>/<id>/state.json`` holds the OCI state plus what later commands need (the config, the init's
start time, cgroup path); ``<root>/<id>/exec.fifo`` exists from `create` until `start`.  Status is never
stored: it is derived from the init process (alive? same start time, so a reused pid is not mistaken for
it), the fifo, and the freezer.
"""

from __future__ import annotations

import os
import time

from dockyard.errors import Conflict, InvalidArgument, NotFound
from dockyard.runtime import jsonfast

TYPE_CHECKING = False  # not `typing`'s: its import would cost every container start
if TYPE_CHECKING:
    from dockyard.runtime.channel import Channel

_ID_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_+-.")


def default_root() -> str:
    if os.geteuid() == 0:
        return "/run/dockyard-runtime"
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg and os.path.isdir(xdg):
        return os.path.join(xdg, "dockyard-runtime")
    return f"/tmp/dockyard-runtime-{os.geteuid()}"


def check_id(cid: str) -> None:
    if not cid or not _ID_CHARS.issuperset(cid) or cid in (".", ".."):
        raise InvalidArgument(f"invalid container id {cid!r}: use letters, digits and _+-.")


def proc_start_time(pid: int) -> int | None:
    """The process's start time in clock ticks, or None when it is gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rfind(b")") + 2:].split()
    if fields[0] in (b"Z", b"X"):
        return None
    return int(fields[19])


def utc_now() -> str:
    """Now in Go's RFC3339Nano, as runc prints it (trailing zeros of the fraction dropped)."""
    ns = time.time_ns()
    frac = f"{ns % 1_000_000_000:09d}".rstrip("0")
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 1_000_000_000)) + (f".{frac}" if frac else "") + "Z"


class Container:
    """One container's state directory."""

    def __init__(self, root: str, cid: str, data: dict | None = None) -> None:
        self.root = root
        self.id = cid
        self.dir = os.path.join(root, cid)
        self.data: dict = data or {}
        # `run`'s sync channel to the init it created and has yet to start (container.create).
        self.start_channel: Channel | None = None

    @property
    def fifo(self) -> str:
        return os.path.join(self.dir, "exec.fifo")

    @property
    def state_file(self) -> str:
        return os.path.join(self.dir, "state.json")

    @classmethod
    def load(cls, root: str, cid: str) -> Container:
        check_id(cid)
        c = cls(root, cid)
        try:
            with open(c.state_file, "rb") as f:
                c.data = jsonfast.loads(f.read())
        except FileNotFoundError:
            raise NotFound(f"container {cid} does not exist") from None
        except ValueError:
            raise NotFound(f"container {cid} has unreadable state (creation interrupted?); "
                           f"remove it with delete --force") from None
        return c

    def save(self) -> None:
        tmp = self.state_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(jsonfast.dumps(self.data))
        os.replace(tmp, self.state_file)

    @property
    def pid(self) -> int:
        return int(self.data.get("pid", 0))

    @property
    def config(self) -> dict:
        return self.data["config"]

    def alive(self) -> bool:
        pid = self.pid
        return pid > 0 and proc_start_time(pid) == self.data.get("pid_start")

    def status(self) -> str:
        if not self.alive():
            creator = self.data.get("creator")
            if creator and proc_start_time(creator[0]) == creator[1]:
                return "creating"
            return "stopped"
        if os.path.exists(self.fifo):
            return "created"
        if self.data.get("has_cgroup"):
            cg = self.cgroup()
            try:
                if cg is not None and cg.freezer_state() == "FROZEN":
                    return "paused"
            except OSError:
                pass
        return "running"

    def cgroup(self):  # -> CgroupManager | None
        if not self.data.get("has_cgroup"):
            return None
        from dockyard.runtime import cgroups

        return cgroups.manager(self.data.get("cgroups_path"), self.id, bool(self.data.get("rootless")))

    def oci_state(self, status: str | None = None) -> dict:
        st = status or self.status()
        out: dict = {"ociVersion": self.config.get("ociVersion", "1.0.2"), "id": self.id, "status": st}
        if st != "stopped":  # the spec requires pid only while there is a process
            out["pid"] = self.pid
        out["bundle"] = self.data["bundle"]
        ann = self.config.get("annotations")
        if ann:
            out["annotations"] = ann
        return out

    def runc_state(self) -> dict:
        """What `runc state` and `runc list --format json` print."""
        st = self.status()
        out = {"ociVersion": self.config.get("ociVersion", "1.0.2"), "id": self.id,
               "pid": self.pid if st != "stopped" else 0, "status": st, "bundle": self.data["bundle"],
               "rootfs": self.data["rootfs"], "created": self.data["created"], "owner": self.data.get("owner", "")}
        ann = self.config.get("annotations")
        if ann:
            out["annotations"] = ann
        return out


def list_ids(root: str) -> list[str]:
    try:
        names = sorted(os.listdir(root))
    except FileNotFoundError:
        return []
    return [n for n in names if os.path.isfile(os.path.join(root, n, "state.json"))]


def claim(root: str, cid: str) -> Container:
    """Create the state directory for a new container; fails if the id is taken."""
    check_id(cid)
    os.makedirs(root, mode=0o711, exist_ok=True)
    c = Container(root, cid)
    try:
        os.mkdir(c.dir, 0o711)
    except FileExistsError:
        raise Conflict(f"container with id exists: {cid}") from None
    return c
