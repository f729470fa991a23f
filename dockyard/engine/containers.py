"""Containers: create, start, stop, inspect, remove ... with no daemon.

State lives in the ``containers`` table; files under ``ROOT/containers/<id>/`` (rootfs mount
point, overlay upper/work, userdata, logs, the OCI bundle's config.json) and
``RUNROOT/containers/<id>/`` (monitor config, attach socket, runtime log).  A running container
has one monitor process (dockyard/monitor/monitor.py) that owns its stdio, writes its log,
records its exit and applies restart policy and health checks.  This service only prepares,
spawns and asks; it never waits on a container's processes itself.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dockyard import host
from dockyard.errors import Conflict, DockyardError, InvalidArgument, NotFound

if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Callable

    from dockyard.engine import Engine
    from dockyard.engine.oci import OCIRuntime

NAME_RE = re.compile(r"^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
ZERO_TIME = "0001-01-01T00:00:00Z"
DEFAULT_STOP_TIMEOUT = 10
# Docker's json-file keeps logs forever by default and fills disks; ours is bounded unless asked.
DEFAULT_LOG_MAX_SIZE = 10 * 1024 * 1024
DEFAULT_LOG_MAX_FILE = 3
LOG_DRIVERS = ("json-file", "k8s-file", "none")
RESTART_POLICIES = ("no", "on-failure", "always", "unless-stopped")
# Health check defaults (Docker's): 30 s interval and timeout, 3 retries, no start period.
NS = 1_000_000_000

_ADJECTIVES = (
    "admiring adoring affectionate agitated amazing angry awesome blissful bold boring brave busy charming "
    "clever cool compassionate competent condescending confident cranky crazy dazzling determined distracted "
    "dreamy eager ecstatic elastic elated elegant eloquent epic fervent festive flamboyant focused friendly "
    "frosty gallant gifted goofy gracious happy hardcore heuristic hopeful hungry infallible inspiring "
    "jolly jovial keen kind laughing loving lucid magical modest musing mystifying naughty nervous nice "
    "nifty nostalgic objective optimistic peaceful pedantic pensive practical priceless quirky quizzical "
    "relaxed reverent romantic sad serene sharp silly sleepy stoic strange stupefied suspicious sweet "
    "tender thirsty trusting unruffled upbeat vibrant vigilant vigorous wizardly wonderful xenodochial "
    "youthful zealous zen").split()
_SURNAMES = (
    "agnesi albattani allen almeida archimedes ardinghelli aryabhata austin babbage banach bardeen bartik "
    "bassi beaver bell benz bhabha bhaskara blackwell bohr booth borg bose boyd brahmagupta brattain brown "
    "carson cerf chandrasekhar chaplygin chatelet chatterjee chebyshev clarke colden cori cray curie "
    "darwin davinci dijkstra dubinsky easley edison einstein elion engelbart euclid euler fermat fermi "
    "feynman franklin galileo gates goldberg goldstine goldwasser golick goodall gould greider grothendieck "
    "haibt hamilton hawking heisenberg hermann herschel hertz heyrovsky hodgkin hofstadter hoover hopper "
    "hugle hypatia jackson jang jennings jepsen johnson joliot jones kalam kapitsa keldysh keller kepler "
    "khorana kilby kirch knuth kowalevski lalande lamarr lamport leakey leavitt lehmann lewin lichterman "
    "liskov lovelace lumiere mahavira margulis matsumoto maxwell mayer mccarthy mcclintock mclaren mclean "
    "mcnulty meitner mendel mendeleev merkle mestorf mirzakhani moore morse murdock napier nash neumann "
    "newton nightingale nobel noether northcutt noyce panini pare pascal pasteur payne perlman pike "
    "poincare poitras ptolemy raman ramanujan ride ritchie robinson roentgen rosalind rubin saha sammet "
    "sanderson satoshi shannon shaw shirley shockley sinoussi snyder solomon spence stonebraker sutherland "
    "swanson swartz swirles taussig tesla tharp thompson torvalds turing varahamihira villani visvesvaraya "
    "volhard wescoff wilbur wiles williams williamson wilson wing wozniak wright wu yalow yonath zhukovsky"
).split()


def _pick(words: list[str]) -> str:
    return words[int.from_bytes(os.urandom(4), "big") % len(words)]


def generate_name() -> str:
    return f"{_pick(_ADJECTIVES)}_{_pick(_SURNAMES)}"


def now_rfc3339(ts: float) -> str:
    if not ts:
        return ZERO_TIME
    ns = int(round(ts * 1e9)) % NS
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{ns:09d}Z"


def parse_duration(text: str, flag: str) -> int:
    """Go duration (``30s``, ``1m30s``, ``500ms``) -> nanoseconds."""
    t = text.strip()
    if t in ("0", ""):
        return 0
    units = {"ns": 1, "us": 1000, "µs": 1000, "ms": 1_000_000, "s": NS, "m": 60 * NS, "h": 3600 * NS}
    total = 0.0
    pos = 0
    for m in re.finditer(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)", t):
        if m.start() != pos:
            break
        total += float(m.group(1)) * units[m.group(2)]
        pos = m.end()
    if pos != len(t) or pos == 0:
        raise InvalidArgument(f"invalid argument {text!r} for {flag}: time: invalid duration {text!r}")
    return int(total)




def signal_number(sig: str | int) -> int:
    if isinstance(sig, int) or str(sig).isdigit():
        n = int(sig)
        if n <= 0 or n > 64:
            raise InvalidArgument(f"invalid signal: {sig}")
        return n
    name = str(sig).upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    try:
        import signal as signal_mod  # not at the top: `ps` and `run` do not need it

        return int(getattr(signal_mod.Signals, name))
    except AttributeError:
        raise InvalidArgument(f"invalid signal: {sig}") from None


def proc_start_ticks(pid: int) -> int:
    """Start time of a live process (0 when it is gone or a zombie waiting to be reaped)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
        fields = data[data.rindex(b")") + 2:].split()
        if fields[0] in (b"Z", b"X"):
            return 0
        return int(fields[19])
    except (OSError, ValueError, IndexError):
        return 0


def pid_alive(pid: int, start_ticks: int = 0) -> bool:
    if pid <= 0:
        return False
    ticks = proc_start_ticks(pid)
    if not ticks:
        return False
    return not start_ticks or ticks == start_ticks


@dataclass
class CreateOptions:
    """What `run`/`create` accept, as strings from the command line; validated by ``create``."""

    image: str
    command: list[str] = field(default_factory=list)
    entrypoint: str | None = None
    name: str | None = None
    env: list[str] = field(default_factory=list)
    env_files: list[str] = field(default_factory=list)
    workdir: str | None = None
    user: str | None = None
    hostname: str | None = None
    labels: list[str] = field(default_factory=list)
    tty: bool = False
    interactive: bool = False
    attach_streams: bool = True
    auto_remove: bool = False
    init: bool = False
    restart: str = "no"
    health_cmd: str | None = None
    health_interval: str | None = None
    health_timeout: str | None = None
    health_retries: int | None = None
    health_start_period: str | None = None
    no_healthcheck: bool = False
    memory: str | None = None
    memory_reservation: str | None = None
    memory_swap: str | None = None
    cpus: str | None = None
    cpu_shares: int | None = None
    cpuset_cpus: str | None = None
    cpuset_mems: str | None = None
    pids_limit: int | None = None
    ulimits: list[str] = field(default_factory=list)
    cap_add: list[str] = field(default_factory=list)
    cap_drop: list[str] = field(default_factory=list)
    privileged: bool = False
    read_only: bool = False
    security_opt: list[str] = field(default_factory=list)
    stop_signal: str | None = None
    stop_timeout: int | None = None
    runtime: str | None = None
    log_driver: str | None = None
    log_opts: list[str] = field(default_factory=list)
    platform: str | None = None
    network: str | list[str] | None = None  # --network values (NAME, NAME:ip=..,alias=.., none ...)
    publish: list[str] = field(default_factory=list)
    volumes: list[str] = field(default_factory=list)
    dns: list[str] = field(default_factory=list)
    add_host: list[str] = field(default_factory=list)
    pid: str | None = None
    ipc: str | None = None
    cgroupns: str | None = None  # host | private; default private on cgroup v2 hosts, as Docker
    volumes_from: list[str] = field(default_factory=list)
    mounts: list[str] = field(default_factory=list)
    tmpfs: list[str] = field(default_factory=list)
    shm_size: str | None = None
    network_aliases: list[str] = field(default_factory=list)
    ip: str | None = None
    mac_address: str | None = None
    dns_search: list[str] = field(default_factory=list)
    dns_options: list[str] = field(default_factory=list)
    publish_all: bool = False
    userns: str | None = None
    uidmap: list[str] = field(default_factory=list)
    gidmap: list[str] = field(default_factory=list)


@dataclass
class StartHandle:
    """A start in progress: the monitor listens and waits for the first attach before it runs the process."""

    container_id: str
    attach_path: Path
    sync_fd: int

    def wait_started(self) -> int:
        try:
            return _read_sync(self.sync_fd, want="started")
        finally:
            os.close(self.sync_fd)


class PendingMonitor:
    """A container monitor started before its container is ready to run.

    It loads its interpreter while the engine prepares the container, then blocks until ``launch``
    hands it its config file; ``abandon`` (or this process's end) makes it exit without doing
    anything.  It forks once it has its config, so it is nobody's child while it supervises.
    """

    def __init__(self) -> None:
        import subprocess

        from dockyard.monitor.protocol import monitor_command

        # Started by an unprivileged euid it is outside the rootless user namespace (inside, euid is 0).
        self.outside_userns = os.geteuid() != 0
        self.sync_r, sync_w = os.pipe()
        conf_r, self._conf_w = os.pipe()
        self.sync_fd = sync_w  # the monitor reports on this descriptor number
        try:
            self._proc: subprocess.Popen[bytes] | None = subprocess.Popen(
                monitor_command(conf_r), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL, pass_fds=[sync_w, conf_r], start_new_session=True)
        except BaseException:
            os.close(self.sync_r)
            os.close(self._conf_w)
            raise
        finally:
            os.close(sync_w)
            os.close(conf_r)

    def launch(self, config_path: str) -> int:
        """Hand over the config; returns the read end of the monitor's report pipe (the caller closes it)."""
        assert self._proc is not None and self._conf_w >= 0
        os.write(self._conf_w, config_path.encode())
        os.close(self._conf_w)
        self._conf_w = -1
        proc, self._proc = self._proc, None
        proc.wait()  # the first process exits as soon as it has forked the monitor
        sync_r, self.sync_r = self.sync_r, -1
        return sync_r

    def abandon(self) -> None:
        """Let an unlaunched monitor go (a no-op once launched)."""
        for fd in (self._conf_w, self.sync_r):
            if fd >= 0:
                os.close(fd)
        self._conf_w = self.sync_r = -1
        if self._proc is not None:
            self._proc.wait()
            self._proc = None


def _read_sync(fd: int, want: str) -> int:
    """Read the monitor's report lines until ``want`` (returns its number) or an error (raises)."""
    buf = b""
    while True:
        nl = buf.find(b"\n")
        if nl >= 0:
            line, buf = buf[:nl].decode(), buf[nl + 1:]
            word, _, rest = line.partition(" ")
            if word == "error":
                code_s, _, msg = rest.partition(" ")
                from dockyard.engine.oci import classify_start_error

                err = classify_start_error(msg)
                err.exit_code = int(code_s) if code_s.isdigit() else err.exit_code
                raise err
            if word == want:
                return int(rest) if rest.strip().isdigit() else 0
            continue
        # One byte at a time: a later report must stay in the pipe for the next reader.
        chunk = os.read(fd, 1)
        if not chunk:
            raise DockyardError("the container monitor exited before the container started")
        buf += chunk


class ContainerService:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.roots = engine.roots
        self._network_settings: dict[str, Any] = {}  # of the container being started

    # -- paths ------------------------------------------------------------------------------------
    def ctr_dir(self, cid: str) -> Path:
        return self.roots.root / "containers" / cid

    def run_dir(self, cid: str) -> Path:
        return self.roots.runroot / "containers" / cid

    def runtime(self, name: str | None) -> OCIRuntime:
        from dockyard.engine.oci import DEFAULT_RUNTIME, OCIRuntime

        return OCIRuntime(name or os.environ.get("DOCKYARD_RUNTIME") or DEFAULT_RUNTIME, self.roots.runtime_state)

    # -- lookup -----------------------------------------------------------------------------------
    def _db(self) -> Any:
        return self.engine.db

    def row(self, ref: str) -> sqlite3.Row:
        db = self._db()
        ref = ref.lstrip("/") if ref.startswith("/") else ref
        r = db.query_one("SELECT * FROM containers WHERE id=? OR name=?", (ref, ref))
        if r is not None:
            return r
        if re.fullmatch(r"[0-9a-f]{1,64}", ref):
            rows = db.query("SELECT * FROM containers WHERE id LIKE ?", (ref + "%",))
            if len(rows) == 1:
                return rows[0]
            if len(rows) > 1:
                raise Conflict(f"multiple IDs found with provided prefix: {ref}")
        raise NotFound(f"No such container: {ref}")

    def resolve(self, ref: str) -> str:
        return str(self.row(ref)["id"])

    def exists(self, ref: str) -> bool:
        try:
            self.row(ref)
            return True
        except NotFound:
            return False

    # -- create -----------------------------------------------------------------------------------
    def create(self, opts: CreateOptions) -> str:
        """Validate everything, then write the row and the container's directories; returns the ID."""
        image = self.engine.images.get(opts.image)
        img_cfg: dict[str, Any] = dict((image.config or {}).get("config") or {})
        self._check_platform(opts.platform, image)

        name = opts.name
        if name is not None:
            if not NAME_RE.match(name):
                raise InvalidArgument(f"Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
            name = name.lstrip("/")
        cid = os.urandom(32).hex()

        env = list(img_cfg.get("Env") or [])
        for path in opts.env_files:
            env = _merge_env(env, _read_env_file(path))
        env = _merge_env(env, [e for e in (_expand_env_arg(x) for x in opts.env) if e is not None])

        entrypoint: list[str] | None = img_cfg.get("Entrypoint")
        cmd: list[str] | None = img_cfg.get("Cmd")
        if opts.entrypoint is not None:
            entrypoint = [opts.entrypoint] if opts.entrypoint else None
            cmd = None  # Docker: a new entrypoint drops the image's Cmd
        if opts.command:
            cmd = list(opts.command)
        if not (entrypoint or cmd):
            raise InvalidArgument("no command specified")

        labels = dict(img_cfg.get("Labels") or {})
        for lab in opts.labels:
            k, _, v = lab.partition("=")
            if not k:
                raise InvalidArgument(f"invalid label {lab!r}")
            labels[k] = v

        if opts.hostname:
            from dockyard.network.files import check_hostname

            check_hostname(opts.hostname)

        healthcheck = self._healthcheck(opts, img_cfg.get("Healthcheck"))
        restart_name, restart_max = _parse_restart(opts.restart)
        if opts.auto_remove and restart_name != "no":
            raise InvalidArgument("conflicting options: --restart and --rm")
        if opts.stop_signal:
            signal_number(opts.stop_signal)
        stop_signal = opts.stop_signal or img_cfg.get("StopSignal")

        hc: dict[str, Any] = {
            "Binds": list(opts.volumes) or None,
            "NetworkMode": "",
            "PortBindings": {},
            "RestartPolicy": {"Name": restart_name, "MaximumRetryCount": restart_max},
            "AutoRemove": opts.auto_remove,
            "CapAdd": list(opts.cap_add) or None,
            "CapDrop": list(opts.cap_drop) or None,
            "Dns": list(opts.dns),
            "DnsSearch": list(opts.dns_search),
            "DnsOptions": list(opts.dns_options),
            "PublishAllPorts": opts.publish_all,
            "ExtraHosts": list(opts.add_host) or None,
            "Privileged": opts.privileged,
            "ReadonlyRootfs": opts.read_only,
            "SecurityOpt": list(opts.security_opt) or None,
            "Init": opts.init or None,
            "Runtime": opts.runtime or self.runtime(None).name,
            "Memory": 0, "MemoryReservation": 0, "MemorySwap": 0, "NanoCpus": 0, "CpuShares": 0,
            "CpusetCpus": "", "CpusetMems": "",
            "PidsLimit": None, "Ulimits": [],
            "LogConfig": self._log_config(opts),
        }
        self._resources(opts, hc)
        for spec in opts.security_opt:
            key = spec.replace(":", "=", 1).partition("=")[0]
            if key not in ("no-new-privileges", "seccomp", "label", "apparmor"):
                raise InvalidArgument(f"invalid --security-opt: {spec!r}")
        from dockyard.runtime.capabilities import resolve_caps

        resolve_caps(opts.cap_add, opts.cap_drop, opts.privileged)  # rejects unknown names now
        self.runtime(opts.runtime)  # rejects unknown runtimes now
        from dockyard.storage import mountspec

        specs = mountspec.parse(opts.volumes, opts.mounts, opts.tmpfs, shm_size=opts.shm_size)
        if opts.volumes_from:
            specs += self.engine.volumes.volumes_from(opts.volumes_from)
            mountspec.check_duplicates(specs)
        hc["Mounts"] = [_docker_mount(m) for m in specs if m.origin == "mount"] or None
        hc["Tmpfs"] = {m.target: ",".join(m.tmpfs_options) for m in specs if m.origin == "tmpfs"} or None
        hc["ShmSize"] = next((m.tmpfs_size for m in specs if m.origin == "shm"), mountspec.SHM_DEFAULT_SIZE)
        hc["VolumesFrom"] = list(opts.volumes_from) or None
        hc["PidMode"] = self._ns_mode(opts.pid, "--pid")
        hc["IpcMode"] = self._ns_mode(opts.ipc, "--ipc", default="private")
        hc["CgroupnsMode"] = _cgroupns_mode(opts.cgroupns)
        network_mode = hc["NetworkMode"] = self._network_mode(opts.network)
        if opts.publish:
            if network_mode in ("none", "host"):
                raise InvalidArgument(f"conflicting options: port publishing and the {network_mode} network mode")
            from dockyard.network.ports import parse_publish

            for p in opts.publish:
                parse_publish(p)
        if network_mode == "host" and opts.hostname:
            raise InvalidArgument("conflicting options: hostname and the network mode")
        self._check_endpoint_options(opts, network_mode)
        from dockyard.engine import rootless

        hc["UsernsMode"], idmaps = rootless.parse_userns(
            opts.userns, opts.uidmap, opts.gidmap, self._auto_maps() if (opts.userns or "").startswith("auto") else [])
        rootless.check_resources(hc)

        config: dict[str, Any] = {
            "Hostname": opts.hostname or cid[:12],
            "Domainname": "",
            "User": opts.user if opts.user is not None else (img_cfg.get("User") or rootless.keep_id_user(idmaps)),
            "AttachStdin": opts.interactive and opts.attach_streams,
            "AttachStdout": opts.attach_streams,
            "AttachStderr": opts.attach_streams,
            "ExposedPorts": img_cfg.get("ExposedPorts") or None,
            "Tty": opts.tty,
            "OpenStdin": opts.interactive,
            "StdinOnce": opts.interactive and opts.attach_streams,
            "Env": env,
            "Cmd": cmd,
            "Image": opts.image,
            "Volumes": img_cfg.get("Volumes"),
            "WorkingDir": opts.workdir if opts.workdir is not None else (img_cfg.get("WorkingDir") or ""),
            "Entrypoint": entrypoint,
            "Labels": labels,
        }
        if healthcheck is not None:
            config["Healthcheck"] = healthcheck
        if stop_signal:
            config["StopSignal"] = stop_signal
        if opts.stop_timeout is not None:
            config["StopTimeout"] = opts.stop_timeout
        if opts.mac_address:
            config["MacAddress"] = opts.mac_address
        from dockyard.network import netopts

        settings = {"publish": list(opts.publish), "mounts": [], "mount_specs": [m.to_dict() for m in specs],
                    "network_aliases": list(opts.network_aliases), "ip": opts.ip, "idmaps": idmaps,
                    "network_opts": netopts.per_network(opts.network, opts.ip, opts.mac_address)}

        d = self.ctr_dir(cid)
        log_path = ""
        if hc["LogConfig"]["Type"] == "json-file":
            log_path = str(d / f"{cid}-json.log")
        elif hc["LogConfig"]["Type"] == "k8s-file":
            log_path = str(d / "ctr.log")
        settings["log_path"] = log_path
        db = self._db()
        with db.write() as c:
            if name is None:
                taken = {r[0] for r in c.execute("SELECT name FROM containers")}
                name = generate_name()
                while name in taken:
                    name = generate_name()
            else:
                other = c.execute("SELECT id FROM containers WHERE name=?", (name,)).fetchone()
                if other is not None:
                    raise Conflict(f'the container name "/{name}" is already in use by container "{other[0]}". '
                                   "You have to remove (or rename) that container to be able to reuse that name.")
            for sub in ("rootfs", "upper", "work", "userdata"):
                (d / sub).mkdir(parents=True, exist_ok=True)
            os.chmod(d, 0o700)
            c.execute(
                "INSERT INTO containers (id, name, image_id, image_name, created, config, host_config, settings) "
                "VALUES (?,?,?,?,?,?,?,?)",
                (cid, name, image.id, opts.image, time.time(), json.dumps(config), json.dumps(hc),
                 json.dumps(settings)))
            # Same transaction as the row: the volumes count as in use from the moment the container
            # exists, and a failure here takes the row back with it.
            if specs or config.get("Volumes"):
                try:
                    settings["mounts"] = self.engine.volumes.reserve(cid, specs, {"Volumes": config.get("Volumes")})
                except BaseException:
                    from dockyard.image.layers import remove_tree

                    remove_tree(d)
                    raise
                c.execute("UPDATE containers SET settings=? WHERE id=?", (json.dumps(settings), cid))
        return cid

    @staticmethod
    def _check_endpoint_options(opts: CreateOptions, network_mode: str) -> None:
        """--ip, --network-alias, --mac-address: Docker's checks, made at create so a bad value
        never reaches a start."""
        user_net = network_mode not in ("", "none", "host", "bridge", "podman") and \
            not network_mode.startswith("container:")
        if opts.ip:
            import ipaddress

            try:
                ipaddress.IPv4Address(opts.ip)
            except ValueError:
                raise InvalidArgument(f"invalid IPv4 address: {opts.ip}") from None
            if not user_net:
                raise InvalidArgument("user specified IP address is supported on user defined networks only")
        if opts.network_aliases and not user_net:
            raise InvalidArgument("network-scoped alias is supported only for containers in user defined networks")
        if opts.mac_address:
            if not re.fullmatch(r"[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}", opts.mac_address):
                raise InvalidArgument(f"invalid MAC address: {opts.mac_address}")
            if network_mode in ("none", "host") or network_mode.startswith("container:"):
                raise InvalidArgument("conflicting options: mac-address and the network mode")

    def _ns_mode(self, value: str | None, flag: str, default: str = "") -> str:
        if not value or value == default:
            return default
        if value == "host":
            return "host"
        if value.startswith("container:"):
            return f"container:{self.row(value.split(':', 1)[1])['id']}"
        raise InvalidArgument(f"invalid {flag} {value!r}: expected host or container:NAME")

    def _network_mode(self, network: str | list[str] | None) -> str:
        """--network as stored: none, host, container:<full id>, or network names (checked to exist);
        per-network options (NAME:ip=...) go to settings["network_opts"]."""
        from dockyard.network import netopts
        from dockyard.paths import is_rootless

        reqs = netopts.parse(network)
        if not reqs:
            return "slirp4netns" if is_rootless() else "bridge"  # Podman's defaults
        mode = reqs[0].name
        if mode in ("none", "host") or mode == "slirp4netns" or mode.startswith("slirp4netns:"):
            return mode
        if mode.startswith("container:"):
            other = self.row(mode.split(":", 1)[1])
            return f"container:{other['id']}"
        if is_rootless():
            from dockyard.errors import Unsupported

            # Refused at create, so a failed `run` leaves no container behind.
            raise Unsupported("bridge networks need root: rootless containers use --network slirp4netns")
        for r in reqs:
            self.engine.networks.resolve(r.name)
        return ",".join(r.name for r in reqs)

    def _auto_maps(self) -> list[Any]:
        """The id maps --userns=auto containers hold, so a new one gets a range of its own."""
        rows = self._db().query("SELECT settings FROM containers")
        return [m for r in rows for m in [(json.loads(r[0]).get("idmaps") or {}).get("uid")] if m]

    def _check_platform(self, platform: str | None, image: Any) -> None:
        if not platform:
            return
        parts = platform.split("/")
        if len(parts) not in (2, 3) or not all(parts):
            raise InvalidArgument(f"invalid platform {platform!r}: expected os/arch[/variant]")
        cfg = image.config or {}
        want_os, want_arch = parts[0], parts[1]
        have_os, have_arch = cfg.get("os", "linux"), cfg.get("architecture")
        if have_arch and (want_os != have_os or want_arch != have_arch):
            raise InvalidArgument(f"image {image.id[:12]} is {have_os}/{have_arch}, "
                                  f"which does not match the requested platform {platform}")

    def _healthcheck(self, opts: CreateOptions, image_hc: dict[str, Any] | None) -> dict[str, Any] | None:
        if opts.no_healthcheck:
            if opts.health_cmd:
                raise InvalidArgument("--no-healthcheck conflicts with --health-* options")
            return {"Test": ["NONE"]}
        hc = dict(image_hc or {})
        if opts.health_cmd is not None:
            hc["Test"] = ["CMD-SHELL", opts.health_cmd]
        for flag, key, val in (("--health-interval", "Interval", opts.health_interval),
                               ("--health-timeout", "Timeout", opts.health_timeout),
                               ("--health-start-period", "StartPeriod", opts.health_start_period)):
            if val is not None:
                ns = parse_duration(val, flag)
                if ns and ns < 1_000_000:
                    raise InvalidArgument(f"{flag} cannot be less than 1ms")
                hc[key] = ns
        if opts.health_retries is not None:
            if opts.health_retries < 0:
                raise InvalidArgument("--health-retries cannot be negative")
            hc["Retries"] = opts.health_retries
        if not hc:
            return None
        return hc

    def _log_config(self, opts: CreateOptions) -> dict[str, Any]:
        driver = opts.log_driver or "json-file"
        if driver not in LOG_DRIVERS:
            raise InvalidArgument(f"unknown log driver {driver!r} (supported: {', '.join(LOG_DRIVERS)})")
        conf: dict[str, str] = {}
        for o in opts.log_opts:
            k, sep, v = o.partition("=")
            if not sep:
                raise InvalidArgument(f"invalid --log-opt {o!r}: expected key=value")
            if k == "max-size":
                from dockyard.runtime.cgroups import parse_memory

                if parse_memory(v) <= 0:
                    raise InvalidArgument(f"invalid --log-opt max-size={v}")
            elif k == "max-file":
                if not v.isdigit() or int(v) < 1:
                    raise InvalidArgument(f"invalid --log-opt max-file={v}: must be a positive number")
            else:
                raise InvalidArgument(f"unknown log opt {k!r} for {driver} log driver")
            if driver == "none":
                raise InvalidArgument(f"log opt {k!r} is not supported by the none log driver")
            conf[k] = v
        return {"Type": driver, "Config": conf}

    def _resources(self, opts: CreateOptions, hc: dict[str, Any]) -> None:
        if not (opts.memory or opts.memory_reservation or opts.memory_swap or opts.cpus
                or opts.cpu_shares is not None or opts.pids_limit is not None or opts.ulimits
                or opts.cpuset_cpus or opts.cpuset_mems):
            return  # the common case; the cgroup module (ctypes and all) stays unloaded
        from dockyard.runtime.cgroups import cpus_to_quota, parse_memory

        if opts.memory:
            mem = parse_memory(opts.memory)
            if mem < 6 * 1024 * 1024:
                raise InvalidArgument("Minimum memory limit allowed is 6MB")
            hc["Memory"] = mem
        if opts.memory_reservation:
            hc["MemoryReservation"] = parse_memory(opts.memory_reservation)
            if hc["Memory"] and hc["MemoryReservation"] > hc["Memory"]:
                raise InvalidArgument("Minimum memory limit can not be less than memory reservation limit, "
                                      "see usage")
        if opts.memory_swap:
            swap = parse_memory(opts.memory_swap)
            if not hc["Memory"]:
                raise InvalidArgument("You should always set the Memory limit when using Memoryswap limit, "
                                      "see usage")
            if swap != -1 and swap < hc["Memory"]:
                raise InvalidArgument("Minimum memoryswap limit should be larger than memory limit, see usage")
            hc["MemorySwap"] = swap
        if opts.cpus:
            quota, period = cpus_to_quota(opts.cpus)
            hc["NanoCpus"] = quota * 1_000_000_000 // period
        if opts.cpu_shares is not None:
            if opts.cpu_shares < 0:
                raise InvalidArgument("invalid --cpu-shares: must be positive")
            hc["CpuShares"] = opts.cpu_shares
        if opts.cpuset_cpus:
            want = _cpu_list(opts.cpuset_cpus, "--cpuset-cpus")
            have = os.sched_getaffinity(0)
            if not want <= have:
                raise InvalidArgument(f"Requested CPUs are not available - requested {opts.cpuset_cpus}, "
                                      f"available: {_cpu_list_text(have)}")
            hc["CpusetCpus"] = opts.cpuset_cpus
        if opts.cpuset_mems:
            _cpu_list(opts.cpuset_mems, "--cpuset-mems")
            hc["CpusetMems"] = opts.cpuset_mems
        if opts.pids_limit is not None:
            hc["PidsLimit"] = opts.pids_limit if opts.pids_limit > 0 else None
        if opts.ulimits:
            from dockyard.runtime.rlimits import parse_ulimit

            for u in opts.ulimits:
                r = parse_ulimit(u)
                hc["Ulimits"].append({"Name": r["type"][len("RLIMIT_"):].lower(), "Soft": r["soft"],
                                      "Hard": r["hard"]})

    # -- start ------------------------------------------------------------------------------------
    def start(self, ref: str, *, attach: bool = False, monitor: PendingMonitor | None = None) -> StartHandle | None:
        """Start the container.  With ``attach``, return once it is created and its monitor waits for the
        caller to connect to the attach socket; else return once it runs.  ``monitor``: one the caller
        started ahead (``PendingMonitor()``), which this start uses or gives up."""
        try:
            r = self.row(ref)
            cid = str(r["id"])
            status = self._live_status(r)
            if status == "running":
                return None
            if status == "paused":
                raise Conflict(f"cannot start a paused container {r['name']}, try unpause instead")
            if status == "restarting":
                raise Conflict(f"container {r['name']} is restarting, wait until it is running")
            # The last run's monitor may still be cleaning up after a process that died on its own
            # (its unmount would take away the rootfs this start mounts): let it finish first.
            self._monitor_gone(cid)
            if monitor is not None and monitor.outside_userns:
                monitor.abandon()  # it could not mount or unshare for the container: one from in here
                monitor = None
            # Started now, the monitor's interpreter loads while the rootfs and the spec are made.
            monitor = monitor or PendingMonitor()
        except BaseException:
            if monitor is not None:
                monitor.abandon()
            raise
        try:
            return self._start(r, cid, monitor, attach)
        finally:
            monitor.abandon()

    def _start(self, r: sqlite3.Row, cid: str, monitor: PendingMonitor, attach: bool) -> StartHandle | None:
        config = json.loads(r["config"])
        hc = json.loads(r["host_config"])
        settings = json.loads(r["settings"])
        runtime = self.runtime(hc.get("Runtime"))
        d, rd = self.ctr_dir(cid), self.run_dir(cid)
        rd.mkdir(parents=True, exist_ok=True, mode=0o700)
        # Leftovers of an earlier run (after a crash or reboot) must not block a new one.
        self._runtime_delete(runtime, cid)
        rootfs = self._mount(cid, r)
        try:
            spec = self._prepare(cid, r, config, hc, settings, rootfs)
            _write(d / "config.json", json.dumps(spec))
            conf = self._monitor_config(cid, config, hc, settings, runtime, attach)
            _write(rd / "monitor.conf", conf + f"sync_fd\t{monitor.sync_fd}\n", mode=0o600)
            with self._db().write() as c:
                c.execute("UPDATE containers SET stopped_by_user=0, error='', restart_count=0, health_status='', "
                          "network_settings=? WHERE id=?", (json.dumps(self._network_settings), cid))
                c.execute("DELETE FROM container_health_log WHERE container_id=?", (cid,))
            sync_r = monitor.launch(str(rd / "monitor.conf"))
        except BaseException:
            self._teardown(cid, r)
            raise
        if attach:
            try:
                _read_sync(sync_r, want="ready")
            except BaseException:
                os.close(sync_r)
                raise
            return StartHandle(cid, rd / "attach", sync_r)
        try:
            _read_sync(sync_r, want="started")
        finally:
            os.close(sync_r)
        return None

    def _mount(self, cid: str, r: sqlite3.Row) -> Path:
        d = self.ctr_dir(cid)
        rootfs = d / "rootfs"
        if os.path.ismount(rootfs):
            return rootfs
        from dockyard.image.layers import mount_rootfs

        image = self.engine.images.get(r["image_id"])
        # An --rm container's writable layer is deleted at its exit: syncing it to disk (which an
        # overlay unmount does) is wasted work that a busy disk makes the slowest step of `run --rm`.
        volatile = bool(json.loads(r["host_config"]).get("AutoRemove"))
        from dockyard.engine import rootless

        lowers = rootless.prepare_rootfs(self.roots.root, d, [Path(p) for p in image.layer_dirs],
                                         json.loads(r["settings"]).get("idmaps"))
        mount_rootfs(lowers, d / "upper", d / "work", rootfs, volatile=volatile)
        return rootfs

    def _prepare(self, cid: str, r: sqlite3.Row, config: dict[str, Any], hc: dict[str, Any],
                 settings: dict[str, Any], rootfs: Path) -> dict[str, Any]:
        import shutil

        from dockyard.engine import specgen

        d = self.ctr_dir(cid)
        userdata = d / "userdata"
        mode = hc.get("NetworkMode") or "none"
        hostname = config.get("Hostname") or cid[:12]
        if mode.startswith("container:"):
            other = self.row(mode.split(":", 1)[1])
            if self._live_status(other) not in ("running", "paused"):
                raise Conflict(f"cannot join the network namespace of container {other['name']}: it is not running")
        if _uses_network_service(mode):
            from dockyard.network.ports import parse_publish

            publish = [m for spec in settings.get("publish") or [] for m in parse_publish(spec)]
            if hc.get("PublishAllPorts"):
                from dockyard.network.ports import from_exposed

                # -P: EXPOSE'd ports that -p did not map already get random host ports.
                mapped = {(m.container_port, m.protocol) for m in publish}
                publish += [m for m in from_exposed(config.get("ExposedPorts") or {})
                            if (m.container_port, m.protocol) not in mapped]
            net = self.engine.networks.setup(cid, str(r["name"]), mode, hostname=hostname, publish=publish,
                                             aliases=settings.get("network_aliases") or None,
                                             ip=settings.get("ip"), mac=config.get("MacAddress") or None,
                                             dns=hc.get("Dns") or [], dns_search=hc.get("DnsSearch") or [],
                                             dns_options=hc.get("DnsOptions") or [],
                                             extra_hosts=hc.get("ExtraHosts") or [],
                                             network_opts=settings.get("network_opts") or None)
        else:
            net = _local_network(mode, hostname, hc)
        netns: str | None = net["netns"]
        if mode.startswith("container:"):
            # Sharing another container's network means sharing its view of names too.
            src = self.ctr_dir(mode.split(":", 1)[1]) / "userdata"
            for name in ("hosts", "resolv.conf", "hostname"):
                if (src / name).exists():
                    shutil.copyfile(src / name, userdata / name)
        else:
            _write(userdata / "hosts", net["hosts"])
            _write(userdata / "resolv.conf", net["resolv_conf"])
            _write(userdata / "hostname", net["hostname"])
        self._network_settings = net["NetworkSettings"]
        cfg = dict(config)
        if mode == "host":
            cfg["Hostname"] = os.uname().nodename
        extra: list[dict[str, Any]] = []
        mounts: list[dict[str, Any]] = []
        if _uses_volumes(settings, config):
            from dockyard.storage.mountspec import MountSpec

            specs = [MountSpec.from_dict(m) for m in settings.get("mount_specs") or []]
            extra, mounts = self.engine.volumes.prepare(
                cid, specs, {"Volumes": config.get("Volumes"), "User": config.get("User")}, rootfs)
        if mounts != (settings.get("mounts") or []):
            settings["mounts"] = mounts
            with self._db().write() as c:
                c.execute("UPDATE containers SET settings=? WHERE id=?", (json.dumps(settings), cid))
        init_bin = shutil.which("catatonit") or ("/usr/libexec/podman/catatonit"
                                                 if os.path.exists("/usr/libexec/podman/catatonit") else None)
        if hc.get("Init") and not init_bin:
            raise DockyardError("--init needs catatonit, which is not installed")
        join: dict[str, str | None] = {}
        for typ, key in (("pid", "PidMode"), ("ipc", "IpcMode")):
            m = hc.get(key) or ""
            if m == "host":
                join[typ] = None
            elif m.startswith("container:"):
                other = self.row(m.split(":", 1)[1])
                if self._live_status(other) not in ("running", "paused"):
                    raise Conflict(f"cannot join the {typ} namespace of container {other['name']}: it is not running")
                join[typ] = f"/proc/{int(other['pid'])}/ns/{typ}"
        ctx = specgen.SpecContext(container_id=cid, rootfs=rootfs, userdata=userdata, netns=netns,
                                  init_binary=init_bin, extra_mounts=extra, join=join)
        spec = specgen.generate(cfg, hc, ctx)
        from dockyard.engine import rootless

        rootless.apply(spec, settings.get("idmaps"))
        if extra:
            from dockyard.storage.mountspec import override_defaults

            # A user mount on a default's destination (--shm-size, --tmpfs /dev/shm) replaces the default.
            spec["mounts"] = override_defaults(spec["mounts"][:len(spec["mounts"]) - len(extra)], extra)
        return spec

    def _monitor_config(self, cid: str, config: dict[str, Any], hc: dict[str, Any], settings: dict[str, Any],
                        runtime: OCIRuntime, attach: bool) -> str:
        from dockyard.monitor.protocol import encode_config

        items: list[tuple[str, Any]] = [
            ("id", cid), ("db", str(self.roots.db_path)), ("lock", str(self.roots.db_path.with_name("store.lock"))),
            ("rundir", str(self.run_dir(cid))), ("bundle", str(self.ctr_dir(cid))),
            ("tty", bool(config.get("Tty"))), ("stdin", bool(config.get("OpenStdin"))),
            ("wait_attach", attach),
        ]
        items += [("runtime", a) for a in runtime.command()]
        items += [("runtime_inproc", a) for a in runtime.in_process_args() or []]
        log = hc.get("LogConfig") or {}
        items.append(("log_driver", log.get("Type", "json-file")))
        items.append(("log_path", settings.get("log_path", "")))
        lc = log.get("Config") or {}
        if log.get("Type") == "json-file":
            from dockyard.runtime.cgroups import parse_memory

            items.append(("log_max_size", parse_memory(lc["max-size"]) if "max-size" in lc else DEFAULT_LOG_MAX_SIZE))
            items.append(("log_max_file", int(lc.get("max-file", DEFAULT_LOG_MAX_FILE))))
        rp = hc.get("RestartPolicy") or {}
        items += [("restart", rp.get("Name") or "no"), ("restart_max", int(rp.get("MaximumRetryCount") or 0))]
        h = config.get("Healthcheck") or {}
        test = h.get("Test") or []
        if test and test[0] in ("CMD", "CMD-SHELL") and len(test) > 1:
            items += [("health", t) for t in test]
            items += [("health_interval", (h.get("Interval") or 30 * NS) / NS),
                      ("health_timeout", (h.get("Timeout") or 30 * NS) / NS),
                      ("health_start_period", (h.get("StartPeriod") or 0) / NS),
                      ("health_retries", h.get("Retries") or 3)]
        oom = self._oom_file(cid)
        if oom:
            items.append(("oom_file", oom))
        exit_cmd = [sys.executable, "-m", "dockyard", "--root", str(self.roots.root),
                    "--runroot", str(self.roots.runroot), "container", "cleanup", cid]
        items += [("exit_command", a) for a in exit_cmd]
        return encode_config(items)

    def _oom_file(self, cid: str) -> str | None:
        from dockyard import host

        cg = host.cgroup_info()
        if cg.version == "v2" and cg.v2_mount:
            return os.path.join(cg.v2_mount, "dockyard", cid, "memory.events")
        mnt = cg.v1_mounts.get("memory")
        if mnt:
            return os.path.join(mnt, "dockyard", cid, "memory.oom_control")
        return None

    # -- state ------------------------------------------------------------------------------------
    def _live_status(self, r: sqlite3.Row) -> str:
        """The row's status, corrected when its processes are gone (crash, reboot, killed monitor)."""
        status = str(r["status"])
        if status in ("running", "paused") and not pid_alive(int(r["pid"]), int(r["pid_start"])):
            return "exited"
        if status == "restarting" and not pid_alive(int(r["monitor_pid"])):
            return "exited"
        return status

    def _wait_status(self, cid: str, done: Any, timeout: float | None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = 0.005
        while True:
            r = self._db().query_one("SELECT * FROM containers WHERE id=?", (cid,))
            if r is None or done(r):
                return True
            if deadline is not None and time.monotonic() > deadline:
                return False
            time.sleep(delay)
            delay = min(delay * 2, 0.1)

    def _monitor_gone(self, cid: str, timeout: float = 30.0) -> None:
        """Wait for the monitor to finish its exit work (recording state, cleanup, --rm removal)."""
        path = self.run_dir(cid) / "monitor.pid"
        deadline = time.monotonic() + timeout
        delay = 0.005
        while time.monotonic() < deadline:
            try:
                pid = int(path.read_text())
            except (OSError, ValueError):
                return
            if not pid_alive(pid):
                return
            time.sleep(delay)
            delay = min(delay * 2, 0.1)

    # -- stop / kill ------------------------------------------------------------------------------
    def stop(self, ref: str, timeout: int | None = None, signal: str | None = None) -> str:
        r = self.row(ref)
        cid = str(r["id"])
        config = json.loads(r["config"])
        if timeout is None:
            timeout = int(config.get("StopTimeout", DEFAULT_STOP_TIMEOUT))
        with self._db().write() as c:
            c.execute("UPDATE containers SET stopped_by_user=1 WHERE id=?", (cid,))
        status = self._live_status(r)
        if status in ("running", "paused"):
            hc = json.loads(r["host_config"])
            rt = self.runtime(hc.get("Runtime"))
            sig = signal_number(signal or config.get("StopSignal") or "SIGTERM")
            if status == "paused":
                with contextlib.suppress(DockyardError):
                    rt.resume(cid)
            with contextlib.suppress(DockyardError):
                rt.kill(cid, str(sig))

            def stopped(row: Any) -> bool:
                return str(row["status"]) not in ("running", "paused")

            if timeout < 0:
                self._wait_status(cid, stopped, None)
            elif not self._wait_status(cid, stopped, timeout):
                with contextlib.suppress(DockyardError):
                    rt.kill(cid, "9", all_processes=True)
                self._wait_status(cid, stopped, 30)
        self._monitor_gone(cid)
        return cid

    def kill(self, ref: str, signal: str = "KILL") -> str:
        r = self.row(ref)
        cid = str(r["id"])
        sig = signal_number(signal)
        if self._live_status(r) not in ("running", "paused"):
            raise Conflict(f"cannot kill container: {r['name']}: container {cid} is not running")
        config = json.loads(r["config"])
        stop_sig = signal_number(config.get("StopSignal") or "SIGTERM")
        if sig in (9, 15, 2, 3, stop_sig):  # KILL, TERM, INT, QUIT: numbers fixed on Linux
            with self._db().write() as c:
                c.execute("UPDATE containers SET stopped_by_user=1 WHERE id=?", (cid,))
        hc = json.loads(r["host_config"])
        self.runtime(hc.get("Runtime")).kill(cid, str(sig))
        return cid

    def restart(self, ref: str, timeout: int | None = None) -> str:
        cid = self.stop(ref, timeout)
        self.start(cid)
        return cid

    def pause(self, ref: str) -> str:
        r = self.row(ref)
        cid = str(r["id"])
        status = self._live_status(r)
        if status == "paused":
            raise Conflict(f"container {cid} is already paused")
        if status != "running":
            raise Conflict(f"container {cid} is not running")
        from dockyard.engine import rootless

        rootless.check_cgroup("pause")
        self.runtime(json.loads(r["host_config"]).get("Runtime")).pause(cid)
        with self._db().write() as c:
            c.execute("UPDATE containers SET status='paused' WHERE id=? AND status='running'", (cid,))
        return cid

    def unpause(self, ref: str) -> str:
        r = self.row(ref)
        cid = str(r["id"])
        if self._live_status(r) != "paused":
            raise Conflict(f"container {cid} is not paused")
        self.runtime(json.loads(r["host_config"]).get("Runtime")).resume(cid)
        with self._db().write() as c:
            c.execute("UPDATE containers SET status='running' WHERE id=? AND status='paused'", (cid,))
        return cid

    def wait(self, ref: str) -> int:
        cid = self.resolve(ref)

        def done(row: Any) -> bool:
            # The monitor records the exit code: wait for it, unless the monitor itself is gone.
            if str(row["status"]) not in ("running", "paused", "restarting"):
                return True
            return not pid_alive(int(row["monitor_pid"])) and not pid_alive(int(row["pid"]), int(row["pid_start"]))

        self._wait_status(cid, done, None)
        r = self._db().query_one("SELECT exit_code, status FROM containers WHERE id=?", (cid,))
        if r is None:
            return 0
        return int(r["exit_code"])

    # -- cleanup / remove -------------------------------------------------------------------------
    def cleanup(self, ref: str, *, monitor_done: Callable[[], object] | None = None) -> None:
        """After the container's last exit: release runtime state, rootfs mount, network; --rm removes it.

        Called by the monitor as its exit command and by ``rm``; safe to repeat.  ``monitor_done``:
        the monitor is releasing the runtime's state meanwhile (the foreground `run`); it returns once
        the monitor is done, and is called before the run directory the monitor works in goes.
        """
        try:
            r = self.row(ref)
        except NotFound:
            return
        if self._live_status(r) in ("running", "paused", "restarting"):
            return
        cid = str(r["id"])
        self._teardown(cid, r, runtime_delete=monitor_done is None)
        hc = json.loads(r["host_config"])
        if hc.get("AutoRemove"):
            self._remove_files_and_row(cid, remove_volumes=True, before_rundir=monitor_done,
                                       volumes=_uses_volumes(json.loads(r["settings"]), json.loads(r["config"])),
                                       networks=_connectable(hc.get("NetworkMode") or "none"))
        elif monitor_done is not None:
            monitor_done()

    def _teardown(self, cid: str, r: sqlite3.Row, runtime_delete: bool = True) -> None:
        hc = json.loads(r["host_config"])
        if runtime_delete:
            self._runtime_delete(self.runtime(hc.get("Runtime")), cid)
        if _uses_network_service(hc.get("NetworkMode") or "none"):
            self.engine.networks.teardown(cid)
        if _uses_volumes(json.loads(r["settings"]), json.loads(r["config"])):
            with contextlib.suppress(DockyardError):
                self.engine.volumes.detach(cid)
        from dockyard.image.layers import unmount_rootfs

        with contextlib.suppress(OSError):
            unmount_rootfs(self.ctr_dir(cid) / "rootfs")

    def _runtime_delete(self, runtime: OCIRuntime, cid: str) -> None:
        # runc-compatible runtimes keep a container's state in <root>/<id>: no directory, nothing to
        # delete, and a runtime start saved (the monitor deletes after the last exit already).
        if (runtime.state_root / cid).exists():
            with contextlib.suppress(DockyardError):
                runtime.delete(cid, force=True)

    def _remove_files_and_row(self, cid: str, remove_volumes: bool = False,
                              before_rundir: Callable[[], object] | None = None, volumes: bool = True,
                              networks: bool = True) -> None:
        from dockyard.image.layers import remove_tree

        # One transaction for every row the container owns: it is gone or it is not.
        with self._db().write() as c:
            # --rm and rm -v take the container's anonymous volumes along, as Docker does.
            if volumes:
                with contextlib.suppress(DockyardError):
                    self.engine.volumes.release(cid, remove_anonymous=remove_volumes)
            # `network connect` is part of the container's configuration: it goes with the container.
            if networks:
                self.engine.networks.forget(cid)
            c.execute("DELETE FROM containers WHERE id=?", (cid,))
        remove_tree(self.ctr_dir(cid))
        from dockyard.engine import rootless

        rootless.prune_layers(self.roots.root, self._db())
        if before_rundir is not None:
            before_rundir()
        remove_tree(self.run_dir(cid))

    def remove(self, ref: str, force: bool = False, volumes: bool = False) -> str:
        r = self.row(ref)
        cid = str(r["id"])
        pod = self._db().query_one("SELECT name FROM pods WHERE infra_id=?", (cid,))
        if pod is not None:  # its pod's members live in its namespaces (engine/pods.py)
            raise Conflict(f"container {cid} is the infra container of pod {pod[0]} and cannot be removed "
                           "without removing the pod")
        status = self._live_status(r)
        if status in ("running", "paused", "restarting"):
            if not force:
                raise Conflict(f'cannot remove container "/{r["name"]}": container is {status}: '
                               "stop the container before removing or force remove")
            with self._db().write() as c:
                c.execute("UPDATE containers SET stopped_by_user=1 WHERE id=?", (cid,))
            rt = self.runtime(json.loads(r["host_config"]).get("Runtime"))
            if status == "paused":
                with contextlib.suppress(DockyardError):
                    rt.resume(cid)
            with contextlib.suppress(DockyardError):
                rt.kill(cid, "9", all_processes=True)
            self._wait_status(cid, lambda row: str(row["status"]) not in ("running", "paused", "restarting"), 30)
        self._monitor_gone(cid)
        self._teardown(cid, r)
        auto_remove = bool(json.loads(r["host_config"]).get("AutoRemove"))
        self._remove_files_and_row(cid, remove_volumes=volumes or auto_remove)
        return cid

    def prune(self) -> tuple[list[str], int]:
        removed: list[str] = []
        space = 0
        for r in self._db().query("SELECT * FROM containers"):
            if self._live_status(r) in ("running", "paused", "restarting"):
                continue
            cid = str(r["id"])
            space += _dir_size(self.ctr_dir(cid) / "upper")
            with contextlib.suppress(NotFound, Conflict):  # Conflict: a pod's infra container
                self.remove(cid)
                removed.append(cid)
        return removed, space

    def rename(self, ref: str, new_name: str) -> None:
        r = self.row(ref)
        if not NAME_RE.match(new_name):
            raise InvalidArgument(f"Invalid container name ({new_name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
        new_name = new_name.lstrip("/")
        if new_name == r["name"]:
            raise Conflict(f"renaming a container with the same name as its current name: {new_name}")
        with self._db().write() as c:
            other = c.execute("SELECT id FROM containers WHERE name=?", (new_name,)).fetchone()
            if other is not None:
                raise Conflict(f'the container name "/{new_name}" is already in use by container "{other[0]}". '
                               "You have to remove (or rename) that container to be able to reuse that name.")
            c.execute("UPDATE containers SET name=? WHERE id=?", (new_name, r["id"]))

    # -- restore after reboot -----------------------------------------------------------------------
    def restore(self) -> list[str]:
        """Start containers whose restart policy wants them running (always; unless-stopped unless the
        user stopped them) and that are not running: what a boot unit calls after a reboot."""
        started = []
        for r in self._db().query("SELECT * FROM containers"):
            hc = json.loads(r["host_config"])
            policy = (hc.get("RestartPolicy") or {}).get("Name") or "no"
            if policy not in ("always", "unless-stopped"):
                continue
            if policy == "unless-stopped" and r["stopped_by_user"]:
                continue
            if self._live_status(r) in ("running", "paused", "restarting"):
                continue
            cid = str(r["id"])
            with self._db().write() as c:
                c.execute("UPDATE containers SET status='exited', pid=0 WHERE id=? AND status IN "
                          "('running','paused','restarting')", (cid,))
            self._teardown(cid, r)
            self.start(cid)
            started.append(cid)
        return started

    # -- read models ----------------------------------------------------------------------------------
    def inspect(self, ref: str, size: bool = False) -> dict[str, Any]:
        r = self.row(ref)
        return self._inspect_row(r, size)

    def _inspect_row(self, r: sqlite3.Row, size: bool = False) -> dict[str, Any]:
        cid = str(r["id"])
        config = json.loads(r["config"])
        hc = json.loads(r["host_config"])
        settings = json.loads(r["settings"])
        status = self._live_status(r)
        running = status in ("running", "paused")
        exit_code = int(r["exit_code"])
        if status == "exited" and r["status"] in ("running", "paused"):
            exit_code = 255  # its processes vanished without the monitor recording an exit (crash, reboot)
        state: dict[str, Any] = {
            "Status": status,
            "Running": running,
            "Paused": status == "paused",
            "Restarting": status == "restarting",
            "OOMKilled": bool(r["oom_killed"]),
            "Dead": status == "dead",
            "Pid": int(r["pid"]) if running else 0,
            "ExitCode": exit_code,
            "Error": r["error"],
            "StartedAt": now_rfc3339(r["started_at"]),
            "FinishedAt": now_rfc3339(r["finished_at"]),
        }
        h = config.get("Healthcheck") or {}
        if h.get("Test") and h["Test"][0] != "NONE":
            log = [{"Start": now_rfc3339(x["start"]), "End": now_rfc3339(x["end"]), "ExitCode": x["exit_code"],
                    "Output": x["output"]}
                   for x in self._db().query("SELECT * FROM container_health_log WHERE container_id=? "
                                             "ORDER BY start", (cid,))]
            state["Health"] = {"Status": r["health_status"] or ("starting" if running else "unhealthy"),
                               "FailingStreak": int(r["failing_streak"]), "Log": log}
        args = list(config.get("Entrypoint") or []) + list(config.get("Cmd") or [])
        d = self.ctr_dir(cid)
        mounts = list(settings.get("mounts") or [])
        out: dict[str, Any] = {
            "Id": cid,
            "Created": now_rfc3339(r["created"]),
            "Path": args[0] if args else "",
            "Args": args[1:],
            "State": state,
            "Image": "sha256:" + str(r["image_id"]).removeprefix("sha256:"),
            "ImageName": r["image_name"],
            "ResolvConfPath": str(d / "userdata" / "resolv.conf"),
            "HostnamePath": str(d / "userdata" / "hostname"),
            "HostsPath": str(d / "userdata" / "hosts"),
            "LogPath": settings.get("log_path", ""),
            "Name": "/" + str(r["name"]),
            "RestartCount": int(r["restart_count"]),
            "Driver": "overlay",
            "Platform": "linux",
            "MountLabel": "",
            "ProcessLabel": "",
            "AppArmorProfile": "",
            "HostConfig": hc,
            "GraphDriver": {"Name": "overlay", "Data": {"UpperDir": str(d / "upper"), "WorkDir": str(d / "work"),
                                                      "MergedDir": str(d / "rootfs")}},
            "Mounts": mounts,
            "Config": config,
            "NetworkSettings": self._live_network_settings(cid, r, hc, running),
        }
        if size:
            out["SizeRw"] = _dir_size(d / "upper")
            out["SizeRootFs"] = out["SizeRw"]
        return out

    def _live_network_settings(self, cid: str, r: sqlite3.Row, hc: dict[str, Any], running: bool) -> dict[str, Any]:
        """What start recorded, with networks and ports read from the network service while the
        container runs, so `network connect`/`disconnect` show at once, as in Docker."""
        ns: dict[str, Any] = json.loads(r["network_settings"] or "{}")
        mode = hc.get("NetworkMode") or "none"
        if not (running and ns and _uses_network_service(mode)) or mode.startswith(("container:", "slirp4netns")):
            return ns
        from dockyard.network.ports import docker_ports

        nets = self.engine.networks.endpoints(cid)
        ns["Networks"] = nets
        # Exposed but unpublished ports show as "80/tcp": null, as in Docker.
        ns["Ports"] = docker_ports(self.engine.networks.published(cid),
                                   json.loads(r["config"]).get("ExposedPorts") or {})
        top = nets.get("bridge")  # the default network alone fills the top-level fields, as in Docker
        for k, empty in (("IPAddress", ""), ("IPPrefixLen", 0), ("Gateway", ""), ("MacAddress", "")):
            if k in ns:
                ns[k] = top[k] if top else empty
        return ns

    def list_containers(self, all_: bool = False, filters: list[str] | None = None, last: int = 0,
             size: bool = False) -> list[dict[str, Any]]:
        """`ps` rows: one query, no runtime calls (liveness from the recorded pid and its start time)."""
        flt = _parse_filters(filters or [])
        rows = self._db().query("SELECT id, name, image_id, image_name, created, config, status, pid, pid_start, "
                                "monitor_pid, exit_code, started_at, finished_at, health_status, settings, "
                                "network_settings FROM containers ORDER BY created DESC")
        now = time.time()
        out = []
        for r in rows:
            status = self._live_status(r)
            exit_code = int(r["exit_code"])
            if status == "exited" and r["status"] in ("running", "paused"):
                exit_code = 255
            if not (all_ or last) and status not in ("running", "paused", "restarting") and "status" not in flt:
                continue
            config = json.loads(r["config"])
            if not _matches(flt, r, config, status, exit_code):
                continue
            out.append(self._ps_row(r, config, status, exit_code, now, size))
        if last:
            out = out[:last]
        return out

    def _ps_row(self, r: Any, config: dict[str, Any], status: str, exit_code: int, now: float,
                size: bool) -> dict[str, Any]:
        from dockyard.formatting.containers import human_duration  # `ps` only: `run` never loads it

        cmd = list(config.get("Entrypoint") or []) + list(config.get("Cmd") or [])
        health = r["health_status"]
        if status == "running":
            st = f"Up {human_duration(now - r['started_at'])}"
            if health:
                st += " (health: starting)" if health == "starting" else f" ({health})"
        elif status == "paused":
            st = f"Up {human_duration(now - r['started_at'])} (Paused)"
        elif status == "restarting":
            st = f"Restarting ({exit_code}) {human_duration(now - r['finished_at'])} ago"
        elif status == "exited":
            st = f"Exited ({exit_code}) {human_duration(now - r['finished_at'])} ago"
        else:
            st = status.capitalize()
        ns = json.loads(r["network_settings"] or "{}")
        settings = json.loads(r["settings"])
        # The Docker Engine API's container summary (GET /containers/json), which `ps` renders.
        row: dict[str, Any] = {
            "Id": str(r["id"]),
            "Names": ["/" + str(r["name"])],
            "Image": r["image_name"],
            "ImageID": r["image_id"],
            "Command": " ".join(cmd),
            "Created": int(r["created"]),
            "Ports": _api_ports(ns.get("Ports") or {}),
            "Labels": config.get("Labels") or {},
            "State": status,
            "Status": st,
            "Mounts": list(settings.get("mounts") or []),
            "NetworkSettings": {"Networks": ns.get("Networks") or {}},
            "HostConfig": {"NetworkMode": ""},
        }
        if size:
            rw = _dir_size(self.ctr_dir(str(r["id"])) / "upper")
            row["SizeRw"] = rw
            row["SizeRootFs"] = rw + self._image_size(str(r["image_id"]))
        return row

    def _image_size(self, image_id: str) -> int:
        try:
            return int(self.engine.images.get(image_id).size)
        except DockyardError:
            return 0

    # -- exec -----------------------------------------------------------------------------------------
    def exec_command(self, ref: str, cmd: list[str], *, interactive: bool = False, tty: bool = False,
                     env: list[str] | None = None, user: str | None = None, workdir: str | None = None,
                     detach: bool = False, privileged: bool = False) -> tuple[list[str], Path, Path]:
        """The runtime command line for ``exec``; returns (argv, process file, runtime log file).

        The caller runs it with its own stdio (the runtime copies a tty itself) and removes the files.
        """
        r = self.row(ref)
        cid = str(r["id"])
        if not cmd:
            raise InvalidArgument("exec needs a command")
        status = self._live_status(r)
        if status == "paused":
            raise Conflict(f"container {cid} is paused, unpause the container before exec")
        if status != "running":
            raise Conflict(f"container {cid} is not running")
        config = json.loads(r["config"])
        hc = json.loads(r["host_config"])
        from dockyard.engine import specgen
        from dockyard.runtime.capabilities import resolve_caps

        rootfs = self.ctr_dir(cid) / "rootfs"
        proc_env = specgen.process_env(config, config.get("Hostname") or cid[:12])
        proc_env = _merge_env(proc_env, [e for e in (_expand_env_arg(x) for x in env or []) if e is not None])
        if tty and not any(e.startswith("TERM=") for e in proc_env):
            proc_env.append("TERM=xterm")
        caps = specgen.grantable(resolve_caps(hc.get("CapAdd") or [], hc.get("CapDrop") or [],
                                              bool(hc.get("Privileged") or privileged)))
        nnp = any(o.replace(":", "=").split("=")[0] == "no-new-privileges" for o in hc.get("SecurityOpt") or [])
        process = {
            "terminal": tty,
            "user": specgen.resolve_user(rootfs, user if user is not None else (config.get("User") or "")),
            "args": list(cmd),
            "env": proc_env,
            "cwd": workdir or config.get("WorkingDir") or "/",
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "noNewPrivileges": nnp,
        }
        rd = self.run_dir(cid)
        rd.mkdir(parents=True, exist_ok=True)
        token = os.urandom(6).hex()
        pfile = rd / f"exec-{token}.json"
        logf = rd / f"exec-{token}.log"
        pfile.write_text(json.dumps(process))
        rt = self.runtime(hc.get("Runtime"))
        argv = [*rt.argv, "--root", str(rt.state_root), "--log", str(logf), "--log-format", "json",
                "exec", "--process", str(pfile)]
        if detach:
            argv.append("--detach")
        if tty and not detach:
            argv.append("--tty")
        argv.append(cid)
        return argv, pfile, logf

    # -- files ------------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def mounted_rootfs(self, ref: str) -> Any:
        """The container's root filesystem, mounted for the duration (already mounted while it runs)."""
        r = self.row(ref)
        cid = str(r["id"])
        rootfs = self.ctr_dir(cid) / "rootfs"
        if os.path.ismount(rootfs):
            yield rootfs
            return
        self._mount(cid, r)
        try:
            yield rootfs
        finally:
            if self._live_status(self.row(cid)) not in ("running", "paused", "restarting"):
                from dockyard.image.layers import unmount_rootfs

                unmount_rootfs(rootfs)

    def diff(self, ref: str) -> list[tuple[str, str]]:
        """Docker's `diff`: (kind, path) with kind A added, C changed, D deleted, sorted by path."""
        import stat

        r = self.row(ref)
        cid = str(r["id"])
        upper = self.ctr_dir(cid) / "upper"
        image = self.engine.images.get(r["image_id"])
        lowers = [Path(p) for p in image.layer_dirs]
        mountpoints = {"/proc", "/sys", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys/fs/cgroup",
                       "/etc/hostname", "/etc/hosts", "/etc/resolv.conf", "/run/dockyard-init", "/run"}

        def in_lower(rel: str) -> bool:
            return any(os.path.lexists(str(low) + rel) for low in lowers)

        changes: dict[str, str] = {}
        for dirpath, dirnames, filenames in os.walk(upper):
            for n in dirnames + filenames:
                full = os.path.join(dirpath, n)
                rel = full[len(str(upper)):]
                st = os.lstat(full)
                if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                    changes[rel] = "D"
                    continue
                if rel in mountpoints and not in_lower(rel) and (stat.S_ISDIR(st.st_mode) or st.st_size == 0):
                    continue
                if stat.S_ISDIR(st.st_mode) and in_lower(rel):
                    continue  # reported as C only when something inside changed
                changes[rel] = "C" if in_lower(rel) else "A"
        for rel in list(changes):
            parent = os.path.dirname(rel)
            while parent not in ("/", ""):
                if parent not in changes:
                    changes[parent] = "C" if in_lower(parent) else "A"
                parent = os.path.dirname(parent)
        return sorted(((k, p) for p, k in changes.items()), key=lambda x: x[1])

    def top(self, ref: str, ps_args: list[str]) -> tuple[list[str], list[list[str]]]:
        import subprocess

        r = self.row(ref)
        cid = str(r["id"])
        if self._live_status(r) not in ("running", "paused"):
            raise Conflict(f"container {cid} is not running")
        pids = set(self.runtime(json.loads(r["host_config"]).get("Runtime")).ps(cid))
        args = ps_args or ["-ef"]
        p = subprocess.run(["ps", *args], capture_output=True, text=True)
        if p.returncode != 0:
            raise InvalidArgument(f"ps {' '.join(args)}: {p.stderr.strip()}")
        lines = p.stdout.splitlines()
        if not lines:
            return [], []
        header = lines[0].split()
        if "PID" not in header:
            raise InvalidArgument("couldn't find PID field in ps output")
        pid_i = header.index("PID")
        rows = []
        for line in lines[1:]:
            fields = line.split(None, len(header) - 1)
            if len(fields) > pid_i and fields[pid_i].isdigit() and int(fields[pid_i]) in pids:
                rows.append(fields)
        return header, rows

    def stats(self, ref: str) -> dict[str, Any]:
        """One sample of a container's resource use from its cgroup (cpu_ns is cumulative)."""
        r = self.row(ref)
        cid = str(r["id"])
        out: dict[str, Any] = {"ID": cid, "Name": r["name"], "mem_usage": 0, "mem_limit": host.mem_total(),
                               "cpu_ns": 0, "pids": 0, "net_rx": 0, "net_tx": 0, "blk_read": 0, "blk_write": 0,
                               "running": False}
        if self._live_status(r) not in ("running", "paused"):
            return out
        from dockyard.engine import rootless

        rootless.check_cgroup("stats")
        out["running"] = True
        from dockyard.runtime.cgroups import manager

        try:
            s = manager(f"/dockyard/{cid}", cid).stats()
        except (OSError, DockyardError):
            s = {}
        mem = s.get("memory") or {}
        out["mem_usage"] = mem.get("usage") or 0
        if mem.get("limit"):
            out["mem_limit"] = min(mem["limit"], out["mem_limit"])
        out["cpu_ns"] = (s.get("cpu") or {}).get("usage_ns") or 0
        out["pids"] = (s.get("pids") or {}).get("current") or 0
        out["blk_read"], out["blk_write"] = _block_io(cid)
        try:
            with open(f"/proc/{int(r['pid'])}/net/dev") as f:
                for line in f.readlines()[2:]:
                    name, _, rest = line.partition(":")
                    if name.strip() == "lo":
                        continue
                    vals = rest.split()
                    out["net_rx"] += int(vals[0])
                    out["net_tx"] += int(vals[8])
        except (OSError, ValueError, IndexError):
            pass
        return out

    def logs_files(self, ref: str) -> tuple[str, str, list[str]]:
        """(log driver, current log path, every log file oldest first)."""
        r = self.row(ref)
        hc = json.loads(r["host_config"])
        settings = json.loads(r["settings"])
        driver = (hc.get("LogConfig") or {}).get("Type", "json-file")
        path = settings.get("log_path") or ""
        if driver == "none" or not path:
            raise InvalidArgument(f'configured logging driver does not support reading: "{driver}"')
        files = []
        n = int(((hc.get("LogConfig") or {}).get("Config") or {}).get("max-file", DEFAULT_LOG_MAX_FILE))
        for i in range(n, 0, -1):
            if os.path.exists(f"{path}.{i}"):
                files.append(f"{path}.{i}")
        files.append(path)
        return driver, path, files

    # -- cp / commit ---------------------------------------------------------------------------------
    def copy_to_container(self, src: str, ref: str, dest: str, *, archive: bool = False,
                          follow_link: bool = False) -> None:
        import shutil

        if not os.path.lexists(src):
            raise NotFound(f"no such file or directory: {src}")
        with self.mounted_rootfs(ref) as root:
            target = _resolve_in_root(root, dest, follow_last=True)
            if os.path.isdir(src) and not (os.path.islink(src) and not follow_link):
                if os.path.isdir(target):
                    if not (src.endswith("/.") or src.endswith("/./")):
                        target = target / os.path.basename(os.path.normpath(src))
                elif os.path.lexists(target):
                    raise InvalidArgument(f"cannot copy a directory to a non-directory: {dest}")
                elif not target.parent.is_dir():
                    raise NotFound(f"no such directory: {os.path.dirname(dest) or '/'}")
                shutil.copytree(src, target, symlinks=True, dirs_exist_ok=True)
                return
            if os.path.isdir(target):
                target = target / os.path.basename(src)
            elif dest.endswith("/"):
                raise NotFound(f"no such directory: {dest}")
            elif not target.parent.is_dir():
                raise NotFound(f"no such directory: {os.path.dirname(dest) or '/'}")
            shutil.copy2(src, target, follow_symlinks=follow_link)

    def copy_from_container(self, ref: str, src: str, dest: str, *, follow_link: bool = False) -> None:
        import shutil

        with self.mounted_rootfs(ref) as root:
            source = _resolve_in_root(root, src, follow_last=follow_link)
            if not os.path.lexists(source):
                raise NotFound(f"could not find the file {src} in container {ref}")
            target = Path(dest)
            if source.is_dir() and not source.is_symlink():
                if target.is_dir():
                    if not (src.endswith("/.") or src.endswith("/./")):
                        target = target / source.name
                elif target.exists():
                    raise InvalidArgument(f"cannot copy a directory to a non-directory: {dest}")
                shutil.copytree(source, target, symlinks=True, dirs_exist_ok=True)
                return
            if target.is_dir():
                target = target / source.name
            elif dest.endswith("/"):
                raise NotFound(f"no such directory: {dest}")
            shutil.copy2(source, target, follow_symlinks=False)

    def copy_from_container_tar(self, ref: str, src: str, out: Any) -> None:
        import tarfile

        with self.mounted_rootfs(ref) as root:
            source = _resolve_in_root(root, src, follow_last=False)
            if not os.path.lexists(source):
                raise NotFound(f"could not find the file {src} in container {ref}")
            with tarfile.open(fileobj=out, mode="w|") as tf:
                tf.add(str(source), arcname=source.name or "/")

    def copy_tar_to_container(self, src: Any, ref: str, dest: str) -> None:
        import tarfile

        with self.mounted_rootfs(ref) as root:
            target = _resolve_in_root(root, dest, follow_last=True)
            if not target.is_dir():
                raise NotFound(f"destination {dest} must be a directory when copying from stdin")
            with tarfile.open(fileobj=src, mode="r|*") as tf:
                tf.extractall(str(target), filter="data")

    def commit(self, ref: str, repository: str | None, *, author: str = "", message: str = "",
               changes: list[str] | None = None, pause: bool = True) -> str:
        """A new image from the container's filesystem (stored as one squashed layer) and its config."""
        import tempfile

        from dockyard.image.config import apply_changes
        from dockyard.image.layers import pack_directory

        r = self.row(ref)
        cid = str(r["id"])
        config = json.loads(r["config"])
        base = {k: config[k] for k in ("Env", "Cmd", "Entrypoint", "WorkingDir", "User", "Labels", "ExposedPorts",
                                      "Volumes", "StopSignal", "Healthcheck") if config.get(k)}
        cfg = apply_changes(base, changes or [])
        paused = False
        from dockyard.engine import rootless

        # Without a freezer (rootless on cgroup v1) commit copies the running container, as Podman does.
        if pause and self._live_status(r) == "running" and rootless.has_cgroup():
            self.pause(cid)
            paused = True
        try:
            tmp_root = self.roots.tmp
            tmp_root.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=tmp_root, prefix="commit-") as f:
                with self.mounted_rootfs(cid) as rootfs:
                    pack_directory(rootfs, f)
                f.seek(0)
                img = self.engine.images.create_from_tar(
                    f, tags=[repository] if repository else [], container_config=cfg,
                    created_by=f"dockyard commit {cid[:12]}" + (f" (author: {author})" if author else ""),
                    comment=message)
        finally:
            if paused:
                self.unpause(cid)
        return str(img.id)

    def is_running(self, ref: str) -> bool:
        return self._live_status(self.row(ref)) in ("running", "paused", "restarting")

    def output_open(self, ref: str) -> bool:
        """Whether more log output may still come: the monitor records the exit only after it has
        drained the container's pipes into the log, so a dead process alone does not end a follow
        (that lost the last lines of short-lived containers); a vanished monitor does."""
        r = self.row(ref)
        if str(r["status"]) not in ("running", "paused", "restarting"):
            return False
        return pid_alive(int(r["pid"]), int(r["pid_start"])) or pid_alive(int(r["monitor_pid"] or 0))


# ------------------------------------------------------------------------------------------------
def _parse_restart(spec: str) -> tuple[str, int]:
    name, _, n = (spec or "no").partition(":")
    if name not in RESTART_POLICIES:
        raise InvalidArgument(f"invalid restart policy {spec!r}: want no, on-failure[:N], always or unless-stopped")
    if n:
        if name != "on-failure":
            raise InvalidArgument(f"invalid restart policy {spec!r}: maximum retry count can only be used with "
                                  "'on-failure'")
        if not n.isdigit():
            raise InvalidArgument(f"invalid restart policy {spec!r}: maximum retry count must be a number")
    return name, int(n or 0)


def _expand_env_arg(e: str) -> str | None:
    """``-e NAME`` takes NAME from the caller's environment (dropped when unset), as Docker does."""
    if "=" in e:
        if e.startswith("="):
            raise InvalidArgument(f"invalid environment variable: {e}")
        return e
    val = os.environ.get(e)
    return None if val is None else f"{e}={val}"


def _read_env_file(path: str) -> list[str]:
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise InvalidArgument(f"open {path}: {e.strerror}") from None
    out = []
    for line in lines:
        s = line.lstrip()
        if not s or s.startswith("#"):
            continue
        v = _expand_env_arg(s)
        if v is not None:
            out.append(v)
    return out


def _merge_env(base: list[str], extra: list[str]) -> list[str]:
    out = list(base)
    idx = {e.partition("=")[0]: i for i, e in enumerate(out)}
    for e in extra:
        k = e.partition("=")[0]
        if k in idx:
            out[idx[k]] = e
        else:
            idx[k] = len(out)
            out.append(e)
    return out


_FILTER_KEYS = ("name", "id", "label", "status", "ancestor", "exited", "health", "before", "since")
_STATUSES = ("created", "restarting", "running", "removing", "paused", "exited", "dead")


def _parse_filters(filters: list[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for f in filters:
        k, sep, v = f.partition("=")
        if not sep:
            raise InvalidArgument(f"bad format of filter (expected name=value): {f}")
        if k not in _FILTER_KEYS:
            raise InvalidArgument(f"invalid filter '{k}'")
        if k == "status" and v not in _STATUSES:
            raise InvalidArgument(f"invalid filter 'status={v}'")
        if k == "health" and v not in ("starting", "healthy", "unhealthy", "none"):
            raise InvalidArgument(f"invalid filter 'health={v}'")
        if k == "exited" and not v.lstrip("-").isdigit():
            raise InvalidArgument(f"invalid filter 'exited={v}'")
        out.setdefault(k, []).append(v)
    return out


def _matches(flt: dict[str, list[str]], r: Any, config: dict[str, Any], status: str, exit_code: int) -> bool:
    for k, vals in flt.items():
        if k == "name":
            if not any(re.search(v, str(r["name"])) for v in vals):
                return False
        elif k == "id":
            if not any(str(r["id"]).startswith(v) for v in vals):
                return False
        elif k == "label":
            labels = config.get("Labels") or {}
            for v in vals:
                lk, sep, lv = v.partition("=")
                if lk not in labels or (sep and labels[lk] != lv):
                    return False
        elif k == "status":
            if status not in vals:
                return False
        elif k == "ancestor":
            img = str(r["image_name"])
            iid = str(r["image_id"]).removeprefix("sha256:")
            if not any(v == img or v == img.split(":")[0] and ":" not in v or iid.startswith(v.removeprefix("sha256:"))
                       or _same_ref(v, img) for v in vals):
                return False
        elif k == "exited":
            if status != "exited" or str(exit_code) not in vals:
                return False
        elif k == "health":
            h = r["health_status"] or "none"
            if h not in vals:
                return False
    return True


def _same_ref(a: str, b: str) -> bool:
    try:
        from dockyard.image.reference import parse

        return str(parse(a)) == str(parse(b))
    except (ImportError, DockyardError, AttributeError):
        return False


def _resolve_in_root(root: Path, path: str, follow_last: bool) -> Path:
    """``path`` inside the container's ``root`` with symlinks resolved as if ``root`` were ``/``: never outside."""
    parts = [p for p in path.split("/") if p not in ("", ".")]
    cur = "/"
    hops = 0
    while parts:
        p = parts.pop(0)
        if p == "..":
            cur = os.path.dirname(cur) or "/"
            continue
        cand = os.path.join(cur, p)
        host_path = str(root) + cand
        if os.path.islink(host_path) and (parts or follow_last):
            hops += 1
            if hops > 40:
                raise InvalidArgument(f"too many levels of symbolic links in {path}")
            target = os.readlink(host_path)
            if target.startswith("/"):
                cur = "/"
            parts = [x for x in target.split("/") if x not in ("", ".")] + parts
            continue
        cur = cand
    return Path(str(root) + (cur if cur != "/" else ""))


def _write(path: Path, data: str, mode: int = 0o644) -> None:
    """Replace a file that every start regenerates: atomic for readers, but not fsynced (nothing is
    lost in a crash that the next start does not write again)."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode), "wb") as f:
        f.write(data.encode())
    os.replace(tmp, path)


def _block_io(cid: str) -> tuple[int, int]:
    """Bytes read and written by the container's processes, from its cgroup (v1 blkio or v2 io)."""
    from dockyard import host

    cg = host.cgroup_info()
    read = write = 0
    try:
        if cg.version == "v2" and cg.v2_mount:
            with open(os.path.join(cg.v2_mount, "dockyard", cid, "io.stat")) as f:
                for line in f:
                    for kv in line.split()[1:]:
                        k, _, v = kv.partition("=")
                        if k == "rbytes":
                            read += int(v)
                        elif k == "wbytes":
                            write += int(v)
        elif "blkio" in cg.v1_mounts:
            with open(os.path.join(cg.v1_mounts["blkio"], "dockyard", cid, "blkio.throttle.io_service_bytes")) as f:
                for line in f:
                    parts = line.split()
                    if len(parts) == 3 and parts[1] == "Read":
                        read += int(parts[2])
                    elif len(parts) == 3 and parts[1] == "Write":
                        write += int(parts[2])
    except (OSError, ValueError):
        pass
    return read, write


def _uses_volumes(settings: dict[str, Any], config: dict[str, Any]) -> bool:
    """-v, --mount, --tmpfs, --shm-size, --volumes-from or the image's VOLUMEs: without any of them
    the volume service holds nothing for the container, and `run` leaves it unloaded."""
    return bool(settings.get("mount_specs") or config.get("Volumes"))


def _connectable(mode: str) -> bool:
    """`network connect` refuses none, host and container: modes, so such a container has nothing
    for ``networks.forget`` (and `run --rm --network none` need not load the network service)."""
    return mode not in ("none", "host") and not mode.startswith("container:")


def _cpu_list(text: str, flag: str) -> set[int]:
    """A cpuset list as the kernel writes it (0-3,8,10-11)."""
    out: set[int] = set()
    for part in text.split(","):
        lo, sep, hi = part.partition("-")
        if not lo.isdigit() or (sep and not hi.isdigit()) or (sep and int(hi) < int(lo)):
            raise InvalidArgument(f"invalid value {text!r} for {flag}: expected a list like 0-3,5")
        out.update(range(int(lo), int(hi if sep else lo) + 1))
    return out


def _cpu_list_text(cpus: set[int]) -> str:
    runs: list[str] = []
    for n in sorted(cpus):
        if runs and runs[-1].split("-")[-1] == str(n - 1):
            runs[-1] = f"{runs[-1].split('-')[0]}-{n}"
        else:
            runs.append(str(n))
    return ",".join(runs)


def _cgroupns_mode(value: str | None) -> str:
    """Docker's default: a private cgroup namespace on cgroup v2 hosts, the host's on v1 and hybrid ones
    (where a cgroup namespace would still show the v1 hierarchies' host paths to tools expecting them)."""
    if value in ("host", "private"):
        return value
    if value:
        raise InvalidArgument(f"invalid --cgroupns {value!r}: expected host or private")
    # cgroup.controllers at the top of /sys/fs/cgroup means a unified (pure v2) host; one stat instead
    # of parsing the mount table on every create.
    return "private" if os.path.exists("/sys/fs/cgroup/cgroup.controllers") else "host"


def _uses_network_service(mode: str) -> bool:
    """none and host need no network service: the runtime makes a loopback-only namespace (Docker's
    none) or uses the host's, which keeps `run --network none` free of netlink work."""
    return mode not in ("none", "host")


def _local_network(mode: str, hostname: str, hc: dict[str, Any]) -> dict[str, Any]:
    from dockyard.network import files

    endpoint = {"IPAMConfig": None, "Links": None, "Aliases": None, "MacAddress": "", "DriverOpts": None,
                "NetworkID": mode, "EndpointID": "", "Gateway": "", "IPAddress": "", "IPPrefixLen": 0,
                "IPv6Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "DNSNames": None}
    settings = {"Networks": {mode: endpoint}, "Ports": {}, "SandboxKey": "", "IPAddress": "", "IPPrefixLen": 0,
                "Gateway": "", "MacAddress": ""}
    extra = hc.get("ExtraHosts") or []
    resolv = files.resolv_conf(dns=hc.get("Dns") or [], dns_search=hc.get("DnsSearch") or [],
                               dns_options=hc.get("DnsOptions") or [])
    if mode == "host":
        with open("/etc/hosts") as f:
            hosts_text = f.read()
        hosts_text += "".join(files.hosts(hostname="localhost", extra_hosts=extra).splitlines(keepends=True)[6:])
        return {"netns": None, "NetworkSettings": settings, "hosts": hosts_text, "resolv_conf": resolv,
                "hostname": files.hostname_file(os.uname().nodename)}
    return {"netns": "", "NetworkSettings": settings, "hosts": files.hosts(hostname=hostname, extra_hosts=extra),
            "resolv_conf": resolv, "hostname": files.hostname_file(hostname)}


def _api_ports(ports: dict[str, Any]) -> list[dict[str, Any]]:
    """NetworkSettings.Ports (inspect's shape) -> the API summary's port list."""
    out: list[dict[str, Any]] = []
    for key, bindings in ports.items():
        port, _, proto = key.partition("/")
        if not bindings:
            out.append({"PrivatePort": int(port), "Type": proto or "tcp"})
        for b in bindings or []:
            out.append({"IP": b.get("HostIp") or "0.0.0.0", "PrivatePort": int(port),
                        "PublicPort": int(b.get("HostPort") or 0), "Type": proto or "tcp"})
    return out


def _dir_size(path: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for f in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, f)).st_size
    return total


def _human_size(n: float) -> str:
    """go-units HumanSize (decimal units, 3 significant digits), as `docker ps -s` prints it."""
    units = ["B", "kB", "MB", "GB", "TB", "PB"]
    i = 0
    while n >= 1000 and i < len(units) - 1:
        n /= 1000.0
        i += 1
    return f"{n:.4g}{units[i]}"




def _docker_mount(s: Any) -> dict[str, Any]:
    """A --mount as Docker's HostConfig.Mounts shows it."""
    m: dict[str, Any] = {"Type": s.type, "Source": s.source, "Target": s.target}
    if s.read_only:
        m["ReadOnly"] = True
    if s.type == "bind" and (s.propagation or s.nonrecursive):
        m["BindOptions"] = {k: v for k, v in (("Propagation", s.propagation), ("NonRecursive", s.nonrecursive)) if v}
    if s.type == "volume" and (s.nocopy or s.volume_labels or s.driver or s.volume_opts):
        m["VolumeOptions"] = {"NoCopy": s.nocopy, "Labels": s.volume_labels or None,
                              "DriverConfig": {"Name": s.driver, "Options": s.volume_opts or None}}
    if s.type == "tmpfs" and (s.tmpfs_size or s.tmpfs_mode is not None):
        m["TmpfsOptions"] = {k: v for k, v in (("SizeBytes", s.tmpfs_size), ("Mode", s.tmpfs_mode)) if v}
    return m
