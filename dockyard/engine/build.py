"""``dockyard build``: a Dockerfile/Containerfile becomes an image in the local store.

Each stage starts from an image (or ``scratch``); each RUN/COPY/ADD mounts the stage's layers with
the engine's overlay machinery plus a fresh upper directory, changes it (RUN through the OCI
runtime, COPY/ADD by confined copies), and the upper directory becomes the step's diff layer
(overlay whiteouts converted to OCI ``.wh.`` markers).  Metadata instructions only change the
config and add an ``empty_layer`` history entry.

The cache maps a key per step (the previous step's key, the instruction after substitution, the
build args it sees, and for COPY/ADD a digest of the sources' content) to the stage's state after
it, under ``ROOT/build/cache``; layer blobs live in the blob store and the unpacked layers a later
RUN stacks on live under ``ROOT/build/layers`` until the image store holds them.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import secrets
import shutil
import stat
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from dockyard.errors import Conflict, DockyardError, InvalidArgument, NotFound, Unsupported

if TYPE_CHECKING:
    from dockyard.build.context import Ignore, Source
    from dockyard.build.parser import Instruction
    from dockyard.engine import Engine

NS = 1_000_000_000
DEFAULT_SHELL = ["/bin/sh", "-c"]
# Mount points the runtime creates in a RUN step's root filesystem; they are not the step's changes.
_RUNTIME_MOUNTPOINTS = ("/proc", "/sys", "/dev", "/etc/hosts", "/etc/resolv.conf", "/etc/hostname")


class BuildStepError(DockyardError):
    """A RUN step exited non-zero: the build exits with that status, as Podman's does."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.exit_code = status if 0 < status < 256 else 1


@dataclass
class BuildOptions:
    context: str = "."
    # Docker's `build -` / the API's POST /build body: a tar of the context, or else a Dockerfile's text
    context_tar: bytes | None = None
    build_contexts: dict[str, str] = field(default_factory=dict)  # --build-context NAME=DIR (COPY --from=NAME)
    dockerfile: str | None = None  # path, "-" for stdin text in dockerfile_text
    dockerfile_text: str | None = None
    tags: list[str] = field(default_factory=list)
    build_args: dict[str, str] = field(default_factory=dict)
    target: str | None = None
    no_cache: bool = False
    layers: bool = True
    pull: str = "missing"  # always | missing | never | newer
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    platform: str | None = None
    fmt: str = "oci"
    secrets: dict[str, tuple[str, str]] = field(default_factory=dict)  # id -> ("file"|"env", value)
    network: str = "default"  # default (bridge; slirp4netns rootless), host, none or a network name
    runtime: str = "dockyard"
    output: str | None = None
    tls_verify: bool | None = None
    # RUN steps' container: like the same flags of `run`
    cap_add: list[str] = field(default_factory=list)
    cap_drop: list[str] = field(default_factory=list)
    security_opt: list[str] = field(default_factory=list)
    dns: list[str] = field(default_factory=list)
    add_hosts: list[str] = field(default_factory=list)
    memory: int = 0  # bytes, 0 = no limit
    volumes: list[str] = field(default_factory=list)  # -v HOST:CONTAINER[:ro] bind mounts for RUN steps
    env: dict[str, str] = field(default_factory=dict)  # --env: ENV added to the final image
    squash: str = "none"  # none | new (--squash: this build's layers become one) | all (--squash-all)
    quiet: bool = False
    # Progress lines (STEP, COMMIT, -->) and the fd RUN steps write their output to.
    report: Callable[[str], None] = print
    warn: Callable[[str], None] = print  # warnings (the CLI prints them on stderr)
    run_stdout: int | None = None


@dataclass
class LayerRef:
    media_type: str
    digest: str
    size: int
    diff_id: str
    # Set for layers this build made: what the image store records, so a commit can take over the
    # directory the build unpacked instead of unpacking the blob again.
    content_size: int | None = None
    tar_size: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size, "diffId": self.diff_id,
                "contentSize": self.content_size, "tarSize": self.tar_size}


@dataclass
class State:
    """A stage as built so far: its layers and its image config."""

    layers: list[LayerRef]
    config: dict[str, Any]
    key: str

    @property
    def container(self) -> dict[str, Any]:
        c: dict[str, Any] = self.config.setdefault("config", {})
        return c

    def id(self) -> str:
        from dockyard.image.config import config_bytes

        return "sha256:" + hashlib.sha256(config_bytes(self.config)).hexdigest()

    def copy(self) -> State:
        return State(list(self.layers), json.loads(json.dumps(self.config)), self.key)


@dataclass
class Stage:
    index: int
    name: str | None
    from_ins: Instruction
    body: list[Instruction]
    base: str = ""
    state: State | None = None
    image_id: str | None = None
    base_layers: int = 0  # how many of the state's layers came with FROM (--squash keeps them)


def _key(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def _env_map(env: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for e in env:
        k, _, v = e.partition("=")
        out[k] = v
    return out


def _set_env(cfg: dict[str, Any], key: str, value: str) -> None:
    env = [e for e in cfg.get("Env") or [] if e.partition("=")[0] != key]
    env.append(f"{key}={value}")
    cfg["Env"] = env


def _duration(s: str, what: str) -> int:
    import re

    total = 0.0
    if not re.fullmatch(r"(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+", s):
        raise InvalidArgument(f"HEALTHCHECK --{what}: invalid duration {s!r}")
    units = {"ns": 1, "us": 1e3, "µs": 1e3, "ms": 1e6, "s": 1e9, "m": 60e9, "h": 3600e9}
    for num, _, unit in re.findall(r"(\d+(\.\d+)?)(ns|us|µs|ms|s|m|h)", s):
        total += float(num) * units[unit]
    return int(total)


class BuildService:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dir = engine.roots.root / "build"
        self.cache_dir = self.dir / "cache"
        self.layers_dir = self.dir / "layers"
        self.tmp = engine.roots.tmp

    # -- entry point -----------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _lock(self, exclusive: bool) -> Iterator[None]:
        """Builds share the build cache; ``builder prune`` needs it to itself."""
        import fcntl

        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.dir / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            try:
                fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
            except BlockingIOError:
                if exclusive:
                    raise Conflict("a build is running: its cache cannot be pruned now") from None
                fcntl.flock(fd, fcntl.LOCK_SH)
            yield
        finally:
            os.close(fd)

    @contextlib.contextmanager
    def _flock(self, name: str, exclusive: bool) -> Iterator[None]:
        import fcntl

        fd = os.open(self.dir / name, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            yield
        finally:
            os.close(fd)

    def prune(self, all_cache: bool = False) -> int:
        """``builder prune``: drop the step cache and its unpacked layers (``all_cache``: cache mounts
        too); returns the bytes freed.  Layer blobs only the cache named go with the next image prune."""
        from dockyard.image.layers import remove_tree

        freed = 0
        with self._lock(exclusive=True):
            dirs = [self.cache_dir, self.layers_dir] + ([self.dir / "cache-mounts"] if all_cache else [])
            for d in dirs:
                if not d.is_dir():
                    continue
                for e in os.scandir(d):
                    freed += _tree_size(e.path)
                    if e.is_dir(follow_symlinks=False):
                        remove_tree(e.path)
                    else:
                        os.unlink(e.path)
        return freed

    def build(self, opts: BuildOptions) -> str:
        """Build and commit; returns the image ID."""
        self._nets: dict[str, tuple[str, dict[str, Any]]] = {}
        try:
            with self._lock(exclusive=False), contextlib.ExitStack() as stack:
                if opts.context_tar is not None:
                    self.tmp.mkdir(parents=True, exist_ok=True, mode=0o700)
                    ctx = stack.enter_context(tempfile.TemporaryDirectory(prefix="context-", dir=self.tmp))
                    if _extract_context(opts.context_tar, ctx):
                        opts.context = ctx
                    else:
                        opts.context, opts.dockerfile_text = ctx, opts.context_tar.decode(errors="replace")
                return self._build(opts)
        finally:
            for nid, _net in self._nets.values():
                with contextlib.suppress(DockyardError, OSError):
                    self.engine.networks.teardown(nid)
                    self.engine.networks.forget(nid)

    def _network(self, mode: str) -> dict[str, Any]:
        """The RUN steps' network for ``mode``, made on first use and shared by the build's later steps
        (like BuildKit's namespace pool): by default a namespace of its own on the default bridge, as
        Docker's and Podman's build steps get, from the network service like a container's."""
        if mode not in self._nets:
            nid = secrets.token_hex(32)
            self._nets[mode] = (nid, {})  # recorded first: a failed setup is still torn down
            self._nets[mode] = (nid, self.engine.networks.setup(
                nid, "build-" + nid[:12], mode, hostname=nid[:12], dns=self.opts.dns,
                extra_hosts=self.opts.add_hosts))
        return self._nets[mode][1]

    def _build(self, opts: BuildOptions) -> str:
        from dockyard.build import parser
        from dockyard.build.context import Ignore
        from dockyard.image.manifest import host_platform, parse_platform

        if opts.fmt not in ("oci", "docker"):
            raise InvalidArgument(f"unrecognized image type {opts.fmt!r}: oci or docker")
        if opts.pull not in ("always", "missing", "never", "newer", "true", "false"):
            raise InvalidArgument(f"invalid --pull value {opts.pull!r}: always, missing, never or newer")
        from dockyard.image.reference import parse as parse_ref

        for t in opts.tags:  # a bad name fails before any step runs, not at the commit
            ref = parse_ref(t)
            if ref.digest:
                raise InvalidArgument(f"tag {t}: a build cannot be tagged with a digest")
        for name, path in opts.build_contexts.items():
            if "://" in path or not os.path.isdir(path):
                raise InvalidArgument(f"--build-context {name}={path}: only local directories are supported")
        for sid, (kind, val) in opts.secrets.items():
            if kind == "file" and not os.path.isfile(val):
                raise NotFound(f"secret {sid}: {val}: no such file")
            if kind == "env" and val not in os.environ:
                raise NotFound(f"secret {sid}: environment variable {val} is not set")
        if opts.output and "=" in opts.output:
            kv = dict(x.partition("=")[::2] for x in opts.output.split(","))
            if kv.get("type", "local") not in ("local", "tar") or not kv.get("dest"):
                raise InvalidArgument(f"invalid --output {opts.output!r}: type=local,dest=DIR or type=tar,dest=FILE")
        self.opts = opts
        self.platform = host_platform()
        want = parse_platform(opts.platform)
        if want:
            self._check_platform(want, "--platform")
        ctx = Path(opts.context)
        if not ctx.is_dir():
            raise NotFound(f"build context {opts.context}: no such directory")
        self.context = ctx.resolve()
        if opts.dockerfile_text is not None:
            text, dfname, dfpath = opts.dockerfile_text, "Dockerfile", None
        else:
            dfpath = self._find_dockerfile(opts.dockerfile)
            text, dfname = dfpath.read_text(errors="replace"), dfpath.name
        self.df = parser.parse(text, dfname)
        self.escape = self.df.escape
        self.ignore: Ignore = Ignore.load(self.context, dfpath)
        for d in (self.cache_dir, self.layers_dir, self.tmp):
            d.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.used_args: set[str] = set()
        stages = self._stages()
        target = self._target(stages)
        needed = self._needed(stages, target)
        multi = len(needed) > 1
        for st in stages:
            if st.index not in needed:
                continue
            self._prefix = f"[{needed.index(st.index) + 1}/{len(needed)}] " if multi else ""
            self._build_stage(st, final=st is target)
        unused = sorted(set(opts.build_args) - self.used_args - self._predefined_args())
        if unused:
            self.opts.warn(f"one or more build-args {unused} were not consumed")
        assert target.image_id is not None
        return target.image_id

    def _find_dockerfile(self, name: str | None) -> Path:
        if name:
            p = Path(name)
            if not p.is_absolute() and not p.exists():
                p = self.context / name
            if not p.is_file():
                raise NotFound(f"the Dockerfile (Containerfile) {name} does not exist")
            return p
        for cand in ("Containerfile", "Dockerfile"):
            if (self.context / cand).is_file():
                return self.context / cand
        raise NotFound(f"no Containerfile or Dockerfile specified or found in context directory, {self.context}")

    def _check_platform(self, want: dict[str, str], what: str) -> None:
        if want.get("os", "linux") != self.platform["os"] or \
                want.get("architecture") not in (None, self.platform["architecture"]):
            have = f"{self.platform['os']}/{self.platform['architecture']}"
            raise Unsupported(f"{what}: building for {want.get('os')}/{want.get('architecture')} is not supported: "
                              f"only the host platform {have} (no emulation)")

    def _predefined_args(self) -> set[str]:
        return {"HTTP_PROXY", "HTTPS_PROXY", "FTP_PROXY", "NO_PROXY", "ALL_PROXY", "http_proxy", "https_proxy",
                "ftp_proxy", "no_proxy", "all_proxy", *self._platform_args()}

    def _platform_args(self) -> dict[str, str]:
        p = self.platform
        plat = f"{p['os']}/{p['architecture']}" + (f"/{p['variant']}" if p.get("variant") else "")
        return {"TARGETPLATFORM": plat, "TARGETOS": p["os"], "TARGETARCH": p["architecture"],
                "TARGETVARIANT": p.get("variant", ""), "BUILDPLATFORM": plat, "BUILDOS": p["os"],
                "BUILDARCH": p["architecture"], "BUILDVARIANT": p.get("variant", "")}

    # -- stages ----------------------------------------------------------------------------------------
    def _stages(self) -> list[Stage]:
        from dockyard.build import parser

        self.global_args: dict[str, str | None] = {}
        stages: list[Stage] = []
        for ins in self.df.instructions:
            if ins.cmd == "FROM":
                stages.append(Stage(len(stages), None, ins, []))
                continue
            if not stages:  # ARG before the first FROM: the global scope FROM lines see
                scope = {**self._platform_args(),
                         **{k: v for k, v in self.global_args.items() if v is not None}}
                for name, default in self._arg_decls(ins, scope):
                    self.global_args[name] = self.opts.build_args.get(name, default)
                    if name in self.opts.build_args:
                        self.used_args.add(name)
                continue
            stages[-1].body.append(ins)
        gscope = {**self._platform_args(), **{k: v for k, v in self.global_args.items() if v is not None}}
        names: set[str] = set()
        for st in stages:
            ins = st.from_ins
            words = parser.expand_words(ins.rest, gscope, self.escape)
            if len(words) == 3 and words[1].lower() == "as":
                st.name = words[2].lower()
                if st.name in names:
                    raise ins.fail(f"duplicate stage name {words[2]!r}")
                names.add(st.name)
            elif len(words) != 1:
                raise ins.fail("requires either one or three arguments (FROM image [AS name])")
            if not words[0]:
                raise ins.fail("has an empty base image name (an ARG without a value?)")
            st.base = words[0]
            plat = ins.flag("platform")
            if plat:
                from dockyard.image.manifest import parse_platform

                want = parse_platform(parser.expand(plat, gscope, self.escape))
                if want:
                    self._check_platform(want, f"line {ins.line}: FROM --platform")
        return stages

    def _arg_decls(self, ins: Instruction, scope: dict[str, str]) -> list[tuple[str, str | None]]:
        from dockyard.build import parser

        out: list[tuple[str, str | None]] = []
        words = parser.expand_words(ins.rest, scope, self.escape)
        if not words:
            raise ins.fail("requires at least one argument")
        for w in words:
            name, eq, default = w.partition("=")
            if not name or not name.replace("_", "a").isalnum():
                raise ins.fail(f"has an invalid name {name!r}")
            out.append((name, default if eq else None))
        return out

    def _target(self, stages: list[Stage]) -> Stage:
        if not self.opts.target:
            return stages[-1]
        for st in stages:
            if st.name == self.opts.target.lower():
                return st
        raise NotFound(f"target stage {self.opts.target!r} could not be found")

    def _stage_ref(self, ref: str, before: int) -> Stage | None:
        low = ref.lower()
        for st in self.stages_all[:before]:
            if st.name == low or (ref.isdigit() and st.index == int(ref)):
                return st
        return None

    def _needed(self, stages: list[Stage], target: Stage) -> list[int]:
        from dockyard.build import parser

        self.stages_all = stages
        need: set[int] = set()

        def visit(st: Stage) -> None:
            if st.index in need:
                return
            need.add(st.index)
            refs = [st.base]
            for ins in st.body:
                if ins.cmd == "COPY" and ins.flag("from"):
                    refs.append(ins.flag("from") or "")
                if ins.cmd == "RUN":
                    for m in ins.flags.get("mount", []):
                        frm = parser.parse_kv_mount(m).get("from")
                        if frm:
                            refs.append(frm)
            for r in refs:
                dep = self._stage_ref(r, st.index)
                if dep is not None:
                    visit(dep)

        visit(target)
        return sorted(need)

    # -- one stage -------------------------------------------------------------------------------------
    def _build_stage(self, st: Stage, final: bool) -> None:
        steps = 1 + len(st.body)
        self._step_no, self._steps = 0, steps
        self._report_step(st.from_ins, f"FROM {st.base}" + (f" AS {st.name}" if st.name else ""))
        state = self._from(st)
        st.base_layers = len(state.layers)
        self.args: dict[str, str] = {}
        self.cmd_set = False
        self.onbuild: list[str] = []
        triggers = list(state.container.pop("OnBuild", None) or [])
        body = list(st.body)
        if triggers:
            # The base image's ONBUILD triggers run first, as if written right after FROM.
            from dockyard.build import parser

            trig = [ins for t in triggers
                    for ins in parser.parse("FROM scratch\n" + t, "ONBUILD trigger").instructions[1:]]
            body = trig + body
            self._steps += len(trig)
        for ins in body:
            self._step_no += 1
            self._report_step(ins)
            state = self._step(st, state, ins)
        st.state = state
        if final:
            if self.opts.squash != "none":
                state = self._squash(state, 0 if self.opts.squash == "all" else st.base_layers)
            st.image_id = self._commit(state, self.opts.tags, final=True)
        elif self.opts.layers:
            st.image_id = self._commit(state, [], final=False)

    def _report_step(self, ins: Instruction, text: str = "") -> None:
        if not self.opts.quiet:
            self.opts.report(f"{self._prefix}STEP {self._step_no + 1}/{self._steps}: {text or ins.original}")

    def _report_done(self, state: State, cached: bool) -> None:
        if self.opts.quiet:
            return
        if cached:
            self.opts.report(f"--> Using cache {state.id().split(':', 1)[1]}")
        self.opts.report(f"--> {state.id().split(':', 1)[1][:12]}")

    def _from(self, st: Stage) -> State:
        from dockyard.image import manifest as mf

        base = st.base
        dep = self._stage_ref(base, st.index)
        if dep is not None:
            assert dep.state is not None
            s = dep.state.copy()
            s.key = _key("stage", s.key)
            return s
        if base.lower() == "scratch":
            cfg = {"architecture": self.platform["architecture"], "os": self.platform["os"],
                   "config": {}, "rootfs": {"type": "layers", "diff_ids": []}, "history": []}
            if self.platform.get("variant"):
                cfg["variant"] = self.platform["variant"]
            return State([], cfg, _key("scratch", self.platform))
        img = self._image(base)
        cfg = json.loads(img.config_bytes)
        layers = [LayerRef(mf.to_oci_layer_type(lay.media_type), lay.digest, lay.size, lay.diff_id)
                  for lay in img.layers]
        cfg.setdefault("config", {})
        if cfg.get("os", "linux") != "linux" or cfg.get("architecture") != self.platform["architecture"]:
            self.opts.warn(f"image platform ({cfg.get('os')}/{cfg.get('architecture')}) does not match "
                             f"the expected platform ({self.platform['os']}/{self.platform['architecture']})")
        return State(layers, cfg, _key("image", img.id))

    def _image(self, name: str) -> Any:
        """A base or --from image by the pull policy: never, missing (default), always, newer."""
        images = self.engine.images
        pull = self.opts.pull
        local = images.exists(name)
        if pull == "never" or (local and pull in ("missing", "false")):
            if not local:
                raise NotFound(f"{name}: image not known, and --pull=never forbids pulling it")
            return images.get(name)
        if not self.opts.quiet:
            self.opts.report(f"Trying to pull {name}...")
        try:
            res = self.engine.registry.pull(name, platform=self.opts.platform, tls_verify=self.opts.tls_verify)
        except DockyardError as e:
            if local and pull == "newer":
                return images.get(name)
            raise DockyardError(f"creating build container: pulling {name}: {e}") from None
        return images.get(res.image_id)

    # -- one step --------------------------------------------------------------------------------------
    def _scope(self, state: State) -> dict[str, str]:
        return {**self.args, **_env_map(state.container.get("Env") or [])}

    def _step(self, st: Stage, state: State, ins: Instruction) -> State:
        from dockyard.build import parser

        cmd = ins.cmd
        scope = self._scope(state)
        if cmd == "ARG":
            for name, default in self._arg_decls(ins, scope):
                if name in self.opts.build_args:
                    val: str | None = self.opts.build_args[name]
                    self.used_args.add(name)
                elif default is not None:
                    val = default
                elif name in self.global_args:
                    val = self.global_args[name]
                elif name in self._platform_args():
                    val = self._platform_args()[name]
                else:
                    val = None
                if val is not None:
                    self.args[name] = val
                else:
                    self.args.pop(name, None)
            # ARG values reach RUN steps, so they are part of every later step's key.
            state = state.copy()
            state.key = _key(state.key, "ARG", sorted(self.args.items()))
            self._report_done(state, False)
            return state
        if cmd in ("RUN", "COPY", "ADD"):
            return self._layer_step(st, state, ins, scope)
        expanded = parser.expand(ins.rest, scope, self.escape) if cmd in parser.EXPANDED else ins.rest
        key = _key(state.key, cmd, expanded, ins.flags)
        cached = self._cache_get(key)
        if cached is not None:
            self._after_meta(ins)
            self._report_done(cached, True)
            return cached
        new = state.copy()
        new.key = key
        shown = self._apply_meta(new, ins, scope) or (expanded if cmd in parser.EXPANDED else ins.rest)
        self._history(new, f"/bin/sh -c #(nop) {ins.cmd} {shown}", empty=True)
        self._cache_put(new)
        self._report_done(new, False)
        return new

    def _after_meta(self, ins: Instruction) -> None:
        if ins.cmd == "CMD":
            self.cmd_set = True

    def _history(self, state: State, created_by: str, empty: bool) -> None:
        from dockyard.image.config import rfc3339

        now = rfc3339(time.time())
        h: dict[str, Any] = {"created": now, "created_by": created_by}
        if empty:
            h["empty_layer"] = True
        state.config.setdefault("history", []).append(h)
        state.config["created"] = now

    def _cmd_form(self, state: State, ins: Instruction) -> list[str]:
        args = ins.json_args()
        if args is not None:
            return args
        shell = state.container.get("Shell") or DEFAULT_SHELL
        return [*shell, ins.rest]

    def _apply_meta(self, state: State, ins: Instruction, scope: dict[str, str]) -> str:
        """Apply a metadata instruction to the config; returns its text for the history ("" = as written)."""
        from dockyard.build import parser

        c = state.container
        cmd, rest = ins.cmd, ins.rest
        shown = ""
        if cmd == "ENV" or cmd == "LABEL":
            pairs = self._pairs(ins, scope)
            shown = " ".join(f"{k}={v}" for k, v in pairs)
            for k, v in pairs:
                if cmd == "ENV":
                    _set_env(c, k, v)
                    scope[k] = v
                else:
                    c.setdefault("Labels", {})
                    c["Labels"][k] = v
        elif cmd == "WORKDIR":
            wd = parser.expand(rest, scope, self.escape)
            if not wd:
                raise ins.fail("requires exactly one argument")
            c["WorkingDir"] = os.path.normpath(os.path.join(c.get("WorkingDir") or "/", wd))
        elif cmd == "USER":
            user = parser.expand(rest, scope, self.escape)
            if not user:
                raise ins.fail("requires exactly one argument")
            c["User"] = user
        elif cmd == "EXPOSE":
            ports = c.setdefault("ExposedPorts", {})
            for p in parser.expand_words(rest, scope, self.escape):
                port, _, proto = p.partition("/")
                proto = (proto or "tcp").lower()
                lo, _, hi = port.partition("-")
                if not lo.isdigit() or (hi and not hi.isdigit()) or proto not in ("tcp", "udp", "sctp"):
                    raise ins.fail(f"has an invalid port {p!r}")
                for n in range(int(lo), int(hi or lo) + 1):
                    ports[f"{n}/{proto}"] = {}
        elif cmd == "ENTRYPOINT":
            c["Entrypoint"] = self._cmd_form(state, ins) if rest else None
            if not self.cmd_set:
                c["Cmd"] = None  # Docker: an ENTRYPOINT resets a CMD inherited from the base image
        elif cmd == "CMD":
            c["Cmd"] = self._cmd_form(state, ins)
            self.cmd_set = True
        elif cmd == "SHELL":
            args = ins.json_args()
            if not args:
                raise ins.fail("requires the arguments to be in JSON form")
            c["Shell"] = args
        elif cmd == "VOLUME":
            vols = ins.json_args()
            if vols is None:
                vols = parser.expand_words(rest, scope, self.escape)
            if not vols or any(not v for v in vols):
                raise ins.fail("specified can not be an empty string")
            c.setdefault("Volumes", {}).update({v: {} for v in vols})
        elif cmd == "STOPSIGNAL":
            sig = parser.expand(rest, scope, self.escape)
            if not sig:
                raise ins.fail("requires exactly one argument")
            c["StopSignal"] = sig
        elif cmd == "MAINTAINER":
            state.config["author"] = rest
        elif cmd == "ONBUILD":
            word = rest.split(None, 1)[0].upper() if rest else ""
            if word in ("ONBUILD", "FROM", "MAINTAINER", ""):
                raise ins.fail(f"isn't allowed as an ONBUILD trigger: {word or '(empty)'}")
            c.setdefault("OnBuild", []).append(rest)
        elif cmd == "HEALTHCHECK":
            self._healthcheck(c, ins)
        for k in ("Labels", "ExposedPorts", "Volumes"):
            if k in c and c[k] == {}:
                del c[k]
        return shown

    def _pairs(self, ins: Instruction, scope: dict[str, str]) -> list[tuple[str, str]]:
        from dockyard.build import parser

        rest = ins.rest
        first = rest.split(None, 1)[0] if rest.strip() else ""
        if not first:
            raise ins.fail("requires at least one argument")
        if "=" not in first:
            # Legacy "ENV key value with spaces".
            parts = rest.split(None, 1)
            if len(parts) < 2:
                raise ins.fail("requires two arguments (or key=value)")
            return [(parts[0], parser.expand(parts[1].strip(), scope, self.escape))]
        out = []
        for w in self._raw_words(rest):
            k, eq, v = w.partition("=")
            if not eq or not k:
                raise ins.fail(f"syntax error - can't find = in {w!r}. Must be of the form: name=value")
            # Every pair sees the values from before this instruction, as in Docker
            # (ENV abc=bye def=$abc gives def the old abc).
            out.append((parser.expand(k, scope, self.escape), parser.expand(v, scope, self.escape)))
        return out

    def _raw_words(self, text: str) -> list[str]:
        """Split on unquoted whitespace, keeping quotes and escapes for a later expand()."""
        words, cur, quote, i = [], [], "", 0
        while i < len(text):
            ch = text[i]
            if ch == self.escape and quote != "'" and i + 1 < len(text):
                cur.append(text[i:i + 2])
                i += 2
                continue
            if quote:
                if ch == quote:
                    quote = ""
            elif ch in "'\"":
                quote = ch
            elif ch.isspace():
                if cur:
                    words.append("".join(cur))
                    cur = []
                i += 1
                continue
            cur.append(ch)
            i += 1
        if cur:
            words.append("".join(cur))
        return words

    def _healthcheck(self, c: dict[str, Any], ins: Instruction) -> None:
        rest = ins.rest
        word, _, args = rest.partition(" ")
        if word.upper() == "NONE":
            if args.strip():
                raise ins.fail("NONE takes no arguments")
            c["Healthcheck"] = {"Test": ["NONE"]}
            return
        if word.upper() != "CMD":
            raise ins.fail("requires CMD or NONE")
        args = args.strip()
        if not args:
            raise ins.fail("CMD requires a command")
        sub = type(ins)(ins.cmd, args, ins.line, ins.original)
        exec_form = sub.json_args()
        hc: dict[str, Any] = {"Test": ["CMD", *exec_form] if exec_form is not None else ["CMD-SHELL", args]}
        for flag, key in (("interval", "Interval"), ("timeout", "Timeout"), ("start-period", "StartPeriod"),
                          ("start-interval", "StartInterval")):
            v = ins.flag(flag)
            if v is not None:
                hc[key] = _duration(v, flag)
        if ins.flag("retries") is not None:
            r = ins.flag("retries") or ""
            if not r.isdigit():
                raise ins.fail(f"--retries: invalid number {r!r}")
            hc["Retries"] = int(r)
        c["Healthcheck"] = hc

    # -- RUN / COPY / ADD --------------------------------------------------------------------------------
    def _layer_step(self, st: Stage, state: State, ins: Instruction, scope: dict[str, str]) -> State:
        if ins.cmd == "RUN":
            return self._run_step(st, state, ins, scope)
        return self._copy_step(st, state, ins, scope)

    def _cache_get(self, key: str) -> State | None:
        if self.opts.no_cache or not self.opts.layers:
            return None
        try:
            data = json.loads((self.cache_dir / key).read_text())
        except (OSError, ValueError):
            return None
        layers = [LayerRef(d["mediaType"], d["digest"], d["size"], d["diffId"], d.get("contentSize"),
                           d.get("tarSize")) for d in data["layers"]]
        # A cached layer whose blob was pruned is no cache hit.
        if any(not self.engine.blobs.has(lay.digest) for lay in layers):
            return None
        return State(layers, data["config"], key)

    def _cache_put(self, state: State) -> None:
        if not self.opts.layers:
            return
        from dockyard.store.blobs import atomic_write

        data = json.dumps({"layers": [lay.to_json() for lay in state.layers], "config": state.config})
        atomic_write(self.cache_dir / state.key, data.encode())

    def _layer_dirs(self, state: State) -> list[Path]:
        """Directories of the state's layers, unpacking build layers the image store lacks."""
        from dockyard.image.layers import unpack_layer

        images = self.engine.images
        dirs = []
        for lay in state.layers:
            if not images.needs_layer(lay.diff_id):
                dirs.append(images.layer_dir(lay.diff_id))
                continue
            d = self.layers_dir / lay.diff_id.split(":", 1)[1]
            if not d.is_dir():
                with self.engine.blobs.open(lay.digest) as f:
                    unpack_layer(f, d, expected_diff_id=lay.diff_id)
            dirs.append(d)
        return dirs

    @contextlib.contextmanager
    def _workdir(self) -> Iterator[Path]:
        from dockyard.image.layers import mounts_under, remove_tree, temp_name, unmount_rootfs

        work = Path(tempfile.mkdtemp(dir=self.tmp, prefix=temp_name("build")))
        try:
            yield work
        finally:
            for mp in mounts_under(work):
                with contextlib.suppress(OSError):
                    unmount_rootfs(Path(mp))
            if mounts_under(work):
                raise DockyardError(f"cannot unmount build mounts under {work}")
            remove_tree(work)

    def _mount(self, state: State, work: Path, name: str = "") -> tuple[Path, Path]:
        """The state's root filesystem mounted writable at work/<name>rootfs; returns (rootfs, upper)."""
        from dockyard.image.layers import mount_rootfs

        upper, wd, rootfs = work / f"{name}upper", work / f"{name}work", work / f"{name}rootfs"
        # Shared against a parallel build's commit moving a build layer into the image store between
        # our choosing the directories and the mount taking hold of them.
        with self._flock("layers.lock", exclusive=False):
            lowers = self._layer_dirs(state)
            driver = mount_rootfs(lowers, upper, wd, rootfs)
        if driver != "overlay" and lowers:
            raise Unsupported("dockyard build needs overlayfs to record each step's changes "
                              "(run as root on a kernel with overlay)")
        return rootfs, upper

    def _commit_layer(self, state: State, upper: Path, created_by: str, work: Path) -> State:
        """The changes in ``upper`` as a new layer of ``state`` (or an empty_layer history entry)."""
        new = state.copy()
        lay = self._new_layer(upper, work)
        if lay is None:
            self._history(new, created_by, empty=True)
            return new
        new.layers.append(lay)
        new.config.setdefault("rootfs", {"type": "layers"}).setdefault("diff_ids", []).append(lay.diff_id)
        self._history(new, created_by, empty=False)
        return new

    def _new_layer(self, upper: Path, work: Path) -> LayerRef | None:
        """The changes in ``upper`` as a stored layer blob plus its unpacked directory (None: no change)."""
        from dockyard.build.diff import pack_upper
        from dockyard.image import manifest as mf
        from dockyard.image.layers import remove_tree, stage_layer

        tar_path = work / "layer.tar"
        with open(tar_path, "wb") as f:
            entries = pack_upper(upper, f)
        if entries == 0:
            return None
        # Unpacked once: the directory later steps stack on, and the diff_id from the same read.
        with open(tar_path, "rb") as f:
            tmp, info = stage_layer(f, self.layers_dir, "build")
        diff_id = info.diff_id
        dest = self.layers_dir / diff_id.split(":", 1)[1]
        try:
            os.rename(tmp, dest)
        except OSError:
            remove_tree(tmp)  # the same layer is there already
        gz_path = work / "layer.tar.gz"
        with open(tar_path, "rb") as src, open(gz_path, "wb") as raw:
            with gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, compresslevel=6) as gz:
                shutil.copyfileobj(src, gz, 1 << 20)
        size = gz_path.stat().st_size
        with open(gz_path, "rb") as f:
            digest = self.engine.blobs.put_stream(f, None, size)
        return LayerRef(mf.OCI_LAYER_GZIP, digest, size, diff_id, info.size, info.tar_size)

    # RUN
    def _run_step(self, st: Stage, state: State, ins: Instruction, scope: dict[str, str]) -> State:
        from dockyard.build import parser

        mounts = [parser.parse_kv_mount(m) for m in ins.flags.get("mount", [])]
        network = ins.flag("network") or self.opts.network
        if network.startswith("container:"):
            raise ins.fail(f"--network={network} is not supported for a build step")
        if ins.flag("security") not in (None, "sandbox"):
            raise ins.fail("--security=insecure is not allowed")
        argv = self._run_argv(state, ins)
        shown = [m for m in ins.flags.get("mount", [])]
        for m in mounts:
            if m.get("type", "bind") not in ("secret", "cache", "bind", "tmpfs"):
                raise ins.fail(f"--mount type={m.get('type')} is not supported (secret, cache, bind, tmpfs)")
        from_keys = []
        for m in mounts:
            if m.get("from"):
                from_keys.append(self._source_state(m["from"], st, ins).key)
            elif m.get("type", "bind") == "bind":
                from dockyard.build.context import hash_sources, resolve_sources

                src = resolve_sources(self.context, m.get("source", m.get("src", ".")), self.ignore,
                                      f"line {ins.line}: RUN --mount")
                from_keys.append(hash_sources(src, self.ignore, False))
        key = _key(state.key, "RUN", argv, shown, network, sorted(self.args.items()), from_keys)
        cached = self._cache_get(key)
        if cached is not None:
            self._report_done(cached, True)
            return cached
        created_by = " ".join(argv) if ins.json_args() is not None else f"{' '.join(argv[:-1])} {argv[-1]}"
        if self.args:
            # Podman records the build args a RUN saw ("|N K=V ..."), never secret values.
            created_by = f"|{len(self.args)} " + " ".join(f"{k}={v}" for k, v in sorted(self.args.items())) \
                + " " + created_by
        with self._workdir() as work:
            rootfs, upper = self._mount(state, work)
            self._ensure_workdir(state, rootfs)
            self._run_container(state, ins, argv, mounts, network, rootfs, work, st)
            from dockyard.image.layers import unmount_rootfs

            unmount_rootfs(rootfs)
            new = self._commit_layer(state, upper, created_by, work)
        new.key = key
        self._cache_put(new)
        self._report_done(new, False)
        return new

    def _run_argv(self, state: State, ins: Instruction) -> list[str]:
        args = ins.json_args()
        if args is not None:
            if not args:
                raise ins.fail("requires at least one argument")
            return args
        shell = list(state.container.get("Shell") or DEFAULT_SHELL)
        script = ins.rest
        if ins.heredocs:
            hd = ins.heredocs[0]
            before = script.split("<<", 1)[0].strip()
            if not before and len(ins.heredocs) == 1:
                return [*shell, hd.body]
            script = script + "\n" + "".join(f"{h.body}{h.name}\n" for h in ins.heredocs)
        if not script.strip():
            raise ins.fail("requires at least one argument")
        return [*shell, script]

    def _ensure_workdir(self, state: State, rootfs: Path) -> None:
        from dockyard.runtime.rootfs import secure_join

        wd = state.container.get("WorkingDir")
        if wd:
            p = secure_join(str(rootfs), wd)
            if not os.path.isdir(p):
                os.makedirs(p, 0o755)

    def _run_container(self, state: State, ins: Instruction, argv: list[str], mounts: list[dict[str, str]],
                       network: str, rootfs: Path, work: Path, st: Stage) -> None:
        from dockyard.engine import specgen
        from dockyard.engine.oci import OCIRuntime
        from dockyard.runtime.rootfs import secure_join

        cid = secrets.token_hex(32)
        userdata = work / "userdata"
        userdata.mkdir()
        extra: list[dict[str, Any]] = []
        env_extra: list[str] = []
        # The bundle (its config.json holds env= secrets) and secret files live on the runroot (tmpfs),
        # never on the disk of ROOT, and only for this step.
        rundir = self.engine.roots.runroot / "build" / cid
        rundir.mkdir(parents=True, mode=0o700)
        created: list[tuple[str, str]] = []  # (mount destination, the topmost directory made for it)
        runtime = OCIRuntime(self.opts.runtime, self.engine.roots.runroot / "build-runtime")
        started = False
        try:
            for m in mounts:
                self._prepare_mount(m, ins, st, work, rundir / "secrets", extra, env_extra)
            for v in self.opts.volumes:
                extra.append(_volume_mount(v))
            # The paths the runtime and our mounts create in the root filesystem are not the step's changes.
            for dest in [*_RUNTIME_MOUNTPOINTS, *(m["destination"] for m in extra)]:
                parts = [p for p in os.path.normpath(dest).split("/") if p]
                for i in range(1, len(parts) + 1):
                    sub = "/" + "/".join(parts[:i])
                    if not os.path.lexists(secure_join(str(rootfs), sub)):
                        created.append(("/" + "/".join(parts), sub))
                        break
            c = state.container
            env = _env_map(c.get("Env") or [])
            cfg: dict[str, Any] = {"Env": [*(c.get("Env") or []),
                                           *(f"{k}={v}" for k, v in self.args.items() if k not in env), *env_extra],
                                   "Cmd": argv, "WorkingDir": c.get("WorkingDir") or "/", "User": c.get("User") or "",
                                   "Hostname": cid[:12]}
            runtime.state_root.mkdir(parents=True, exist_ok=True, mode=0o700)
            out = subprocess.DEVNULL if self.opts.quiet else self.opts.run_stdout
            if network in ("default", "private"):
                from dockyard.paths import is_rootless

                # Podman's defaults: the default bridge as root, slirp4netns rootless.
                network = "slirp4netns" if is_rootless() else "bridge"
            net = self._network(network)
            cfg["Hostname"] = net["hostname"].strip() if net.get("hostname") else cid[:12]
            started = True
            for name, key in (("hosts", "hosts"), ("resolv.conf", "resolv_conf"), ("hostname", "hostname")):
                if net.get(key) is not None:
                    (userdata / name).write_text(net[key])
            ctx = specgen.SpecContext(container_id=cid, rootfs=rootfs, userdata=userdata, netns=net["netns"],
                                      extra_mounts=extra)
            try:
                spec = specgen.generate(cfg, {"CapAdd": self.opts.cap_add, "CapDrop": self.opts.cap_drop,
                                              "SecurityOpt": self.opts.security_opt, "Memory": self.opts.memory},
                                        ctx)
            except InvalidArgument as e:
                raise ins.fail(f"cannot run: {e}") from None
            bundle = rundir / "bundle"
            bundle.mkdir()
            fd = os.open(bundle / "config.json", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                json.dump(spec, f)
            p = subprocess.run(runtime.command("run", "--bundle", str(bundle), cid), stdin=subprocess.DEVNULL,
                               stdout=out, stderr=out if self.opts.quiet else None)
        finally:
            if started:
                with contextlib.suppress(DockyardError):
                    runtime.delete(cid, force=True)
            shutil.rmtree(rundir, ignore_errors=True)
            for dest, top in sorted(created, key=lambda x: len(x[0]), reverse=True):
                _remove_mountpoint(rootfs, dest, top)
        if p.returncode != 0:
            raise BuildStepError(f"building at STEP \"{ins.original}\": while running runtime: exit status "
                                 f"{p.returncode}", p.returncode)

    def _prepare_mount(self, m: dict[str, str], ins: Instruction, st: Stage, work: Path, secret_dir: Path,
                       extra: list[dict[str, Any]], env_extra: list[str]) -> None:
        typ = m.get("type", "bind")
        target = m.get("target") or m.get("dst") or m.get("destination") or ""
        if typ == "secret":
            sid = m.get("id") or (os.path.basename(target) if target else "")
            if not sid:
                raise ins.fail("--mount=type=secret needs an id")
            src = self.opts.secrets.get(sid)
            if src is None:
                if m.get("required", "false").lower() in ("true", "1"):
                    raise ins.fail(f"secret {sid!r} is required but was not given (--secret id={sid},src=FILE)")
                return
            kind, val = src
            if kind == "env":
                if val not in os.environ:
                    raise InvalidArgument(f"secret {sid}: environment variable {val} is not set")
                data = os.environ[val].encode()
            else:
                try:
                    data = Path(val).read_bytes()
                except OSError as e:
                    raise InvalidArgument(f"secret {sid}: cannot read {val}: {e.strerror}") from None
            if m.get("env"):
                env_extra.append(f"{m['env']}={data.decode(errors='replace')}")
                if not target:
                    return
            # The secret lives on the runroot (tmpfs) for this RUN only and is bind-mounted read-only.
            secret_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            path = secret_dir / secrets.token_hex(8)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.chmod(path, int(m.get("mode", "0400"), 8))
            os.chown(path, int(m.get("uid", "0")), int(m.get("gid", "0")))
            extra.append({"destination": target or f"/run/secrets/{sid}", "type": "bind", "source": str(path),
                          "options": ["rbind", "ro", "nosuid", "nodev", "noexec"]})
            return
        if not target:
            raise ins.fail(f"--mount=type={typ} needs a target")
        if typ == "tmpfs":
            extra.append({"destination": target, "type": "tmpfs", "source": "tmpfs",
                          "options": ["nosuid", "nodev", "size=" + m.get("size", "65536k")]})
            return
        if typ == "cache":
            cid = m.get("id") or target
            d = self.dir / "cache-mounts" / hashlib.sha256(cid.encode()).hexdigest()[:32]
            d.mkdir(parents=True, exist_ok=True, mode=0o755)
            ro = m.get("readonly", m.get("ro", "false")).lower() in ("true", "1")
            extra.append({"destination": target, "type": "bind", "source": str(d),
                          "options": ["rbind", "ro" if ro else "rw", "nosuid", "nodev"]})
            return
        # bind: from the context, or another stage's or image's filesystem; writes are thrown away.
        src_path = m.get("source") or m.get("src") or "/"
        rw = m.get("rw", m.get("readwrite", "false")).lower() in ("true", "1")
        if m.get("from"):
            sstate = self._source_state(m["from"], st, ins)
            name = f"m{len(extra)}"
            root, _ = self._mount(sstate, work, name)
        else:
            root = self.context
        from dockyard.build.context import NO_IGNORE, resolve_sources

        ign = NO_IGNORE if m.get("from") else self.ignore
        srcs: list[Source] = resolve_sources(root, src_path, ign, f"line {ins.line}: RUN --mount")
        host = srcs[0].path
        if rw:
            copy = work / f"bind{len(extra)}"
            if os.path.isdir(host):
                shutil.copytree(host, copy, symlinks=True)
            else:
                shutil.copy2(host, copy)
            host = str(copy)
        extra.append({"destination": target, "type": "bind", "source": host,
                      "options": ["rbind", "rw" if rw else "ro", "nosuid", "nodev"]})

    def _source_state(self, ref: str, st: Stage, ins: Instruction) -> State:
        dep = self._stage_ref(ref, st.index)
        if dep is not None:
            if dep.state is None:
                raise ins.fail(f"stage {ref!r} is not built")
            return dep.state
        if ref.isdigit():
            raise ins.fail(f"invalid stage index {ref}: only earlier stages can be named")
        from dockyard.image import manifest as mf

        img = self._image(ref)
        return State([LayerRef(mf.to_oci_layer_type(lay.media_type), lay.digest, lay.size, lay.diff_id)
                      for lay in img.layers], json.loads(img.config_bytes), _key("image", img.id))

    # COPY / ADD
    def _copy_step(self, st: Stage, state: State, ins: Instruction, scope: dict[str, str]) -> State:
        from dockyard.build import parser
        from dockyard.build.context import NO_IGNORE, hash_sources, resolve_sources

        args = ins.json_args()
        if args is None:
            words = self._raw_words(ins.rest)
            args = [parser.expand(w, scope, self.escape) for w in words]
        else:
            args = [parser.expand(a, scope, self.escape) for a in args]
        heredoc_names = {h.name for h in ins.heredocs}
        if len(args) < 2:
            raise ins.fail("requires at least two arguments, but only one was provided. Destination could not "
                           "be determined")
        srcs, dest = args[:-1], args[-1]
        for unsupported in ("exclude", "parents", "keep-git-dir"):
            if ins.flags.get(unsupported):
                raise ins.fail(f"--{unsupported} is not supported by dockyard build")
        frm = ins.flag("from")
        if frm and ins.cmd == "ADD":
            raise ins.fail("--from is not supported for ADD")
        chown = parser.expand(ins.flag("chown") or "", scope, self.escape)
        chmod = ins.flag("chmod")
        if chmod is not None and not all(ch in "01234567" for ch in chmod):
            raise ins.fail(f"--chmod={chmod}: only octal modes are supported")
        src_state: State | None = None
        what = f"line {ins.line}: {ins.cmd}"
        with self._workdir() as work:
            named = self.opts.build_contexts.get(parser.expand(frm, scope, self.escape)) if frm else None
            if named is not None and self._stage_ref(frm or "", st.index) is None:
                # --build-context NAME=DIR: another local context, no .dockerignore of ours applies
                src_root, ignore = Path(named).resolve(), NO_IGNORE
            elif frm:
                src_state = self._source_state(parser.expand(frm, scope, self.escape), st, ins)
                src_root, _ = self._mount(src_state, work, "src")
                ignore = NO_IGNORE
            else:
                src_root, ignore = self.context, self.ignore
            resolved = []
            urls = []
            inline = []
            for s in srcs:
                if ins.cmd == "ADD" and s.startswith(("http://", "https://")):
                    urls.append(s)
                elif ins.cmd == "ADD" and (s.startswith("git@") or s.endswith(".git")):
                    raise ins.fail(f"git sources are not supported ({s}): clone in a RUN step instead")
                elif s.startswith("<<") and s.lstrip("<-").strip("'\"") in heredoc_names:
                    name = s.lstrip("<-").strip("'\"")
                    hd = next(h for h in ins.heredocs if h.name == name)
                    inline.append((name, parser.expand(hd.body, scope, self.escape) if hd.expand else hd.body))
                else:
                    resolved.extend(resolve_sources(src_root, s, ignore, what))
            n_items = len(resolved) + len(urls) + len(inline)
            if n_items > 1 and not dest.endswith("/"):
                raise ins.fail("with more than one source file, the destination must be a directory and end "
                               "with a /")
            digest = hash_sources(resolved, ignore, with_owner=bool(frm))
            # URLs are fetched every build and keyed by what they returned, as Docker does.
            fetched = [(u, self._download(u, ins, work)) for u in urls]
            url_sums = []
            for u, path in fetched:
                with open(path, "rb") as f:
                    url_sums.append((u, hashlib.file_digest(f, "sha256").hexdigest()))
            key = _key(state.key, ins.cmd, args, chown, chmod, digest, src_state.key if src_state else "",
                       url_sums, inline)
            cached = self._cache_get(key)
            if cached is not None:
                self._report_done(cached, True)
                return cached
            rootfs, upper = self._mount(state, work)
            self._ensure_workdir(state, rootfs)
            self._do_copy(state, ins, rootfs, resolved, fetched, inline, dest, chown, chmod, ignore, bool(frm), work)
            from dockyard.image.layers import unmount_rootfs

            unmount_rootfs(rootfs)
            created_by = f"/bin/sh -c #(nop) {ins.cmd} {'file' if len(resolved) == 1 and not resolved[0].is_dir else 'dir'}:" \
                         f"{digest} in {dest} "
            new = self._commit_layer(state, upper, created_by, work)
        new.key = key
        self._cache_put(new)
        self._report_done(new, False)
        return new

    def _do_copy(self, state: State, ins: Instruction, rootfs: Path, resolved: list[Source],
                 fetched: list[tuple[str, str]], inline: list[tuple[str, str]], dest: str, chown: str,
                 chmod: str | None, ignore: Ignore, keep_owner: bool, work: Path) -> None:
        from dockyard.build.context import Owner, copy_contents, copy_entry, dest_path, make_parents
        from dockyard.engine import specgen

        uid: int | None = None if keep_owner else 0
        gid: int | None = None if keep_owner else 0
        if chown:
            u, _, g = chown.partition(":")
            try:
                res = specgen.resolve_user(rootfs, chown if u else f"0:{g}")
            except InvalidArgument as e:
                raise ins.fail(f"--chown={chown}: {e}") from None
            uid = int(res["uid"]) if u else 0
            # Docker: --chown=10 means 10:10; a name without a group means the user's primary group.
            gid = int(u) if u.isdigit() and not g else int(res["gid"])
        owner = Owner(uid, gid, int(chmod, 8) if chmod else None)
        in_image, host_dest = dest_path(rootfs, dest, state.container.get("WorkingDir") or "/")
        dest_is_dir = in_image.endswith("/") or os.path.isdir(host_dest)
        links: dict[tuple[int, int], str] = {}
        items: list[tuple[str, str, str]] = []  # (host source, name, rel for ignore)
        for s in resolved:
            items.append((s.path, os.path.basename(s.rel) or "", s.rel))
        for url, path in fetched:
            items.append((path, _url_name(url), ""))
        for name, body in inline:
            p = work / f"heredoc-{name}"
            p.write_text(body)
            os.chmod(p, 0o644)
            items.append((str(p), name, ""))
        for src, name, rel in items:
            if os.path.isdir(src):
                # A directory's contents are copied, not the directory itself.
                make_parents(rootfs, host_dest.rstrip("/"))
                copy_contents(src, host_dest.rstrip("/") or host_dest, rel, ignore, owner, rootfs, links)
                continue
            if ins.cmd == "ADD" and rel != "" and _is_archive(src):
                # An archive's own owners are kept unless --chown says otherwise.
                self._extract(src, rootfs, host_dest, owner if chown else Owner(None, None, owner.mode), work)
                continue
            target = os.path.join(host_dest, name) if dest_is_dir else host_dest
            make_parents(rootfs, target)
            copy_entry(src, target, rel, ignore, owner, rootfs, links)

    def _download(self, url: str, ins: Instruction, work: Path) -> str:
        import urllib.error
        import urllib.request

        path = work / ("url-" + secrets.token_hex(4))
        try:
            with urllib.request.urlopen(url, timeout=60) as resp, open(path, "wb") as f:  # noqa: S310
                shutil.copyfileobj(resp, f)
        except urllib.error.HTTPError as e:
            raise ins.fail(f"cannot download {url}: HTTP {e.code} {e.reason}") from None
        except (urllib.error.URLError, OSError) as e:
            raise ins.fail(f"cannot download {url}: {getattr(e, 'reason', e)}") from None
        want = ins.flag("checksum")
        if want:
            algo, _, hexd = want.partition(":")
            if algo not in ("sha256", "sha384", "sha512") or not hexd:
                raise ins.fail(f"--checksum={want}: want sha256:<hex> (or sha384/sha512)")
            with open(path, "rb") as f:
                got = hashlib.file_digest(f, algo).hexdigest()
            if got != hexd.lower():
                raise ins.fail(f"{url}: checksum mismatch: got {algo}:{got}, expected {want}")
        os.chmod(path, 0o600)  # Docker gives downloaded files mode 600
        return str(path)

    def _extract(self, src: str, rootfs: Path, host_dest: str, owner: Any, work: Path) -> None:
        """ADD of a local tar archive: unpacked (safely, like a layer) into the destination directory."""
        from dockyard.build.context import NO_IGNORE, copy_contents, make_parents
        from dockyard.image.layers import stage_layer

        with open(src, "rb") as f:
            tmp, _ = stage_layer(f, work, "add", what=f"ADD {os.path.basename(src)}", overlay_whiteouts=False)
        target = host_dest.rstrip("/") or host_dest
        make_parents(rootfs, target)
        copy_contents(str(tmp), target, "", NO_IGNORE, owner, rootfs, {})

    # -- commit ----------------------------------------------------------------------------------------
    def _commit(self, state: State, tags: list[str], final: bool) -> str:
        from dockyard.image import manifest as mf
        from dockyard.image.config import config_bytes
        from dockyard.image.reference import parse as parse_ref

        # Podman names a build's short tags under localhost/, not docker.io.
        given, tags = tags, [f"localhost/{t}" if parse_ref(t).is_short else t for t in tags]

        cfg = json.loads(json.dumps(state.config))
        c = cfg.setdefault("config", {})
        if final and self.opts.labels:
            c.setdefault("Labels", {}).update(self.opts.labels)
        if final:
            for k, v in self.opts.env.items():  # podman build --env: into the image's config
                _set_env(c, k, v)
        cfg["rootfs"] = {"type": "layers", "diff_ids": [lay.diff_id for lay in state.layers]}
        cfg.setdefault("created", state.config.get("created") or _now())
        cb = config_bytes(cfg)
        docker = self.opts.fmt == "docker"
        annotations = _annotations(self.opts.annotations) if final else {}
        if docker and annotations:
            self.opts.warn("annotations are not supported by the docker manifest format; dropped")
        man = mf.build_manifest(mf.Descriptor(mf.OCI_CONFIG, mf.digest_of(cb), len(cb)),
                                [mf.Descriptor(lay.media_type, lay.digest, lay.size) for lay in state.layers],
                                docker=docker, annotations=annotations or None)
        if final and not self.opts.quiet:
            self.opts.report(f"{self._prefix}COMMIT {' '.join(given)}".rstrip())
        img = self.engine.images.add_from_manifest(man, mf.DOCKER_MANIFEST if docker else mf.OCI_MANIFEST, cb,
                                                   tags=tags, staged=self._staged(state))
        if final and not self.opts.quiet:
            self.opts.report(f"--> {img.short_id}")
            for t in tags:
                ref = parse_ref(t)
                self.opts.report(f"Successfully tagged {ref.name}:{ref.tag or 'latest'}")
        if final and self.opts.output:
            self._export(state, self.opts.output)
        return str(img.id)

    def _squash(self, state: State, keep: int) -> State:
        """``--squash`` (keep the base image's layers) / ``--squash-all`` (keep none): the other layers
        become one, replayed in order through an overlay of the kept ones so their combined change
        is one upper directory.  The history stays; the squashed steps' entries are marked empty and
        the last entry carries the new layer."""
        from dockyard.image.layers import apply_layer_dir, unmount_rootfs

        squashed = state.layers[keep:]
        if len(squashed) <= 1:
            return state
        out = State(state.layers[:keep], json.loads(json.dumps(state.config)), _key(state.key, "squash", keep))
        with self._workdir() as work:
            rootfs, upper = self._mount(out, work)
            for d in self._layer_dirs(State(squashed, {}, "")):
                apply_layer_dir(str(d), str(rootfs))
            unmount_rootfs(rootfs)
            lay = self._new_layer(upper, work)
        hist = out.config.setdefault("history", [])
        for i in [i for i, h in enumerate(hist) if not h.get("empty_layer")][keep:]:
            hist[i]["empty_layer"] = True
        diff_ids = [x.diff_id for x in out.layers]
        if lay is not None:
            out.layers.append(lay)
            diff_ids.append(lay.diff_id)
            if not hist:
                hist.append({"created": state.config.get("created") or _now()})
            hist[-1].pop("empty_layer", None)
            hist[-1]["comment"] = "squashed"
        out.config["rootfs"] = {"type": "layers", "diff_ids": diff_ids}
        return out

    def _staged(self, state: State) -> dict[str, Any]:
        """This build's unpacked layers the image store lacks, handed over to the commit (moved, not copied)."""
        from dockyard.engine.images import StagedLayer
        from dockyard.image.layers import LayerInfo, temp_name

        staged: dict[str, Any] = {}
        for lay in state.layers:
            d = self.layers_dir / lay.diff_id.split(":", 1)[1]
            if lay.content_size is None or lay.tar_size is None or lay.diff_id in staged or not d.is_dir() \
                    or not self.engine.images.needs_layer(lay.diff_id):
                continue
            # Renamed to a temp name of the image store's layer directory (same filesystem), where the
            # commit expects staged layers and cleans up after a crash.
            self.engine.images.layers_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            tmp = self.engine.images.layers_dir / (temp_name(d.name) + secrets.token_hex(4))
            try:
                with self._flock("layers.lock", exclusive=True):
                    os.rename(d, tmp)
            except OSError:
                continue
            staged[lay.diff_id] = StagedLayer(tmp, LayerInfo(lay.diff_id, lay.content_size, lay.tar_size))
        return staged

    def _export(self, state: State, spec: str) -> None:
        """``-o type=local,dest=DIR`` / ``type=tar,dest=FILE`` / ``DIR``: the final root filesystem."""
        from dockyard.build import parser
        from dockyard.build.context import NO_IGNORE, Owner, copy_entry

        kv = parser.parse_kv_mount(spec) if "=" in spec else {"type": "local", "dest": spec}
        typ, dest = kv.get("type", "local"), kv.get("dest", "")
        if not dest or typ not in ("local", "tar"):
            raise InvalidArgument(f"invalid --output {spec!r}: type=local,dest=DIR or type=tar,dest=FILE")
        with self._workdir() as work:
            rootfs, _ = self._mount(state, work)
            if typ == "local":
                os.makedirs(dest, exist_ok=True)
                for child in sorted(os.listdir(rootfs)):
                    copy_entry(str(rootfs / child), os.path.join(dest, child), child, NO_IGNORE,
                               Owner(None, None, None), Path(dest), {})
            else:
                from dockyard.image.layers import pack_directory

                out: IO[bytes]
                with (open(dest, "wb") if dest != "-" else os.fdopen(os.dup(1), "wb")) as out:
                    pack_directory(rootfs, out)


def _volume_mount(spec: str) -> dict[str, Any]:
    """``-v HOST:CONTAINER[:ro|rw]`` for RUN steps: a bind mount (read-write unless ro)."""
    parts = spec.split(":")
    if len(parts) not in (2, 3) or not parts[0].startswith("/") or not parts[1].startswith("/") \
            or (len(parts) == 3 and parts[2] not in ("ro", "rw", "z", "Z")):
        raise InvalidArgument(f"invalid --volume {spec!r}: want /HOST:/CONTAINER[:ro]")
    if not os.path.exists(parts[0]):
        raise NotFound(f"--volume {spec}: {parts[0]}: no such file or directory")
    ro = len(parts) == 3 and parts[2] == "ro"
    return {"destination": parts[1], "type": "bind", "source": parts[0],
            "options": ["rbind", "ro" if ro else "rw", "nosuid", "nodev"]}


def _extract_context(data: bytes, dest: str) -> bool:
    """Unpack a context tar into ``dest``; False when ``data`` is not a tar (then it is a Dockerfile)."""
    import io
    import tarfile

    try:
        tf = tarfile.open(fileobj=io.BytesIO(data))
    except tarfile.TarError:
        return False
    try:
        with tf:
            # The "data" filter refuses absolute names, escapes, devices and links out of dest.
            tf.extractall(dest, filter="data")
    except (tarfile.TarError, OSError) as e:
        raise InvalidArgument(f"reading the build context tar: {e}") from None
    return True


def _tree_size(path: str) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for f in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, f)).st_size
    with contextlib.suppress(OSError):
        if not os.path.isdir(path):
            total += os.lstat(path).st_size
    return total


def _remove_mountpoint(rootfs: Path, dest: str, top: str) -> None:
    """Remove the empty file or directory made as a mount point at ``dest`` and the empty directories
    made above it, up to ``top``: none of them is a change the step made."""
    path = dest
    while True:
        host = os.path.join(str(rootfs), path.lstrip("/"))
        with contextlib.suppress(OSError):
            st = os.lstat(host)
            if stat.S_ISDIR(st.st_mode):
                os.rmdir(host)  # fails (kept) when the step put something inside
            elif stat.S_ISREG(st.st_mode) and st.st_size == 0:
                os.unlink(host)
        if path == top or path in ("/", ""):
            return
        path = os.path.dirname(path)


def _now() -> str:
    from dockyard.image.config import rfc3339

    return rfc3339(time.time())


def _url_name(url: str) -> str:
    from urllib.parse import urlparse

    name = os.path.basename(urlparse(url).path)
    return name or "index.html"


def _is_archive(path: str) -> bool:
    import tarfile

    try:
        return tarfile.is_tarfile(path)
    except OSError:
        return False


def _annotations(raw: dict[str, str]) -> dict[str, str]:
    """buildx's ``--annotation [TYPE:]key=value``: a single-platform image has only its manifest, so
    manifest and descriptor annotations both land there."""
    out = {}
    for k, v in raw.items():
        typ, sep, rest = k.partition(":")
        if sep and typ.split("[", 1)[0] in ("manifest", "manifest-descriptor", "index", "index-descriptor"):
            k = rest
        out[k] = v
    return out
