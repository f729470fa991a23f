"""``kube play``: Kubernetes Pod and Deployment manifests run as dockyard pods, the way Podman runs them.

The whole file is read and turned into a plan first (every error is found before anything is
created); then each pod is created, filled and started, and a failure removes what this play made.
Fields dockyard does not implement are named in warnings, never silently dropped.
"""

from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dockyard.errors import Conflict, DockyardError, InvalidArgument, NotFound

if TYPE_CHECKING:
    from dockyard.engine import Engine
    from dockyard.engine.containers import CreateOptions

SUPPORTED_KINDS = ("Pod", "Deployment")
POD_FIELDS = {"containers", "volumes", "restartPolicy", "hostname", "securityContext",
              "terminationGracePeriodSeconds"}
CONTAINER_FIELDS = {"name", "image", "command", "args", "env", "ports", "volumeMounts", "resources",
                    "securityContext", "livenessProbe", "workingDir", "imagePullPolicy", "tty", "stdin"}
SECURITY_FIELDS = {"runAsUser", "runAsGroup", "capabilities", "privileged", "readOnlyRootFilesystem",
                   "allowPrivilegeEscalation"}
PROBE_TIMING = (("periodSeconds", "health_interval"), ("timeoutSeconds", "health_timeout"),
                ("initialDelaySeconds", "health_start_period"))
RESTART = {"Always": "always", "OnFailure": "on-failure", "Never": "no"}
# Kubernetes names must be DNS labels; dockyard pod and container names must also fit this.
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
_QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E|m)?$")
_FACTOR = {"": 1, "Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40, "Pi": 1 << 50, "Ei": 1 << 60,
           "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18, "m": 0.001}


@dataclass
class PodPlan:
    name: str
    labels: dict[str, str]
    hostname: str
    publish: list[str] = field(default_factory=list)
    containers: list[CreateOptions] = field(default_factory=list)
    empty_dirs: list[str] = field(default_factory=list)  # volumes this pod owns (emptyDir)
    claims: list[str] = field(default_factory=list)  # named volumes (persistentVolumeClaim), kept on down
    host_dirs: list[tuple[str, str]] = field(default_factory=list)  # (path, hostPath type) to create


@dataclass
class PlayReport:
    pods: list[tuple[str, list[str]]] = field(default_factory=list)  # (pod id, container ids)
    volumes: list[str] = field(default_factory=list)


def load(path: str) -> list[dict[str, Any]]:
    """The documents of a manifest file (``-`` is stdin); YAML errors become one line naming the place."""
    import sys

    import yaml

    try:
        text = sys.stdin.read() if path == "-" else open(path).read()
    except OSError as e:
        raise NotFound(f"cannot read {path}: {e.strerror}") from None
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise InvalidArgument(f"{path}: invalid YAML{where}: {problem}") from None
    for i, d in enumerate(docs):
        if not isinstance(d, dict) or not isinstance(d.get("kind"), str):
            raise InvalidArgument(f"{path}: document {i + 1} is not a Kubernetes object (no kind)")
    if not docs:
        raise InvalidArgument(f"{path}: no Kubernetes objects in the file")
    return docs


def _map(obj: Any, where: str) -> dict[str, Any]:
    if obj is None:
        return {}
    if not isinstance(obj, dict):
        raise InvalidArgument(f"{where}: expected a mapping")
    return obj


def _list(obj: Any, where: str) -> list[Any]:
    if obj is None:
        return []
    if not isinstance(obj, list):
        raise InvalidArgument(f"{where}: expected a list")
    return obj


def _strings(obj: Any, where: str) -> list[str]:
    items = _list(obj, where)
    if not all(isinstance(x, (str, int, float)) and not isinstance(x, bool) for x in items):
        raise InvalidArgument(f"{where}: expected a list of strings")
    return [str(x) for x in items]


def quantity(value: Any, where: str) -> float:
    """A Kubernetes resource quantity (``128Mi``, ``500m``, ``1.5``) as a number."""
    m = _QUANTITY.match(str(value).strip())
    if not m:
        raise InvalidArgument(f"{where}: invalid quantity {value!r}")
    return float(m.group(1)) * _FACTOR[m.group(2) or ""]


class Planner:
    """Manifest documents -> pod plans, with warnings for what is not implemented."""

    def __init__(self) -> None:
        self.warnings: list[str] = []

    def plan(self, docs: list[dict[str, Any]]) -> list[PodPlan]:
        pods: list[PodPlan] = []
        for doc in docs:
            kind = doc["kind"]
            meta = _map(doc.get("metadata"), f"{kind}.metadata")
            name = meta.get("name")
            if kind not in SUPPORTED_KINDS:
                self.warnings.append(f"kind {kind} ({name or 'unnamed'}) is not supported by dockyard kube play: ignored")
                continue
            if not isinstance(name, str) or not DNS_LABEL.match(name):
                raise InvalidArgument(f"{kind}: metadata.name {name!r} is missing or not a valid name")
            if kind == "Pod":
                pods.append(self._pod(name, _map(doc.get("spec"), f"Pod {name}: spec"),
                                      _labels(meta, f"Pod {name}"), 0))
                continue
            spec = _map(doc.get("spec"), f"Deployment {name}: spec")
            replicas = spec.get("replicas", 1)
            if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
                raise InvalidArgument(f"Deployment {name}: spec.replicas must be a non-negative integer")
            template = _map(spec.get("template"), f"Deployment {name}: spec.template")
            tmeta = _map(template.get("metadata"), f"Deployment {name}: spec.template.metadata")
            pod_spec = _map(template.get("spec"), f"Deployment {name}: spec.template.spec")
            for extra in sorted(set(spec) - {"replicas", "selector", "template", "strategy"}):
                self.warnings.append(f"Deployment {name}: spec.{extra} is not supported: ignored")
            for i in range(replicas):
                # Podman 3's naming, which the tutorial's `pod stop webserver-pod-0` uses.
                pods.append(self._pod(f"{name}-pod-{i}", pod_spec, _labels(tmeta, f"Deployment {name}"), i))
        names = [p.name for p in pods]
        dup = next((n for n in names if names.count(n) > 1), None)
        if dup:
            raise InvalidArgument(f"pod {dup} is defined more than once in the file")
        return pods

    def _pod(self, name: str, spec: dict[str, Any], labels: dict[str, str], replica: int) -> PodPlan:
        where = f"pod {name}"
        for extra in sorted(set(spec) - POD_FIELDS):
            self.warnings.append(f"{where}: spec.{extra} is not supported: ignored")
        hostname = spec.get("hostname") or name
        plan = PodPlan(name=name, labels=labels, hostname=str(hostname))
        restart_policy = spec.get("restartPolicy", "Always")
        if restart_policy not in RESTART:
            raise InvalidArgument(f"{where}: restartPolicy {restart_policy!r} must be Always, OnFailure or Never")
        grace = spec.get("terminationGracePeriodSeconds")
        if grace is not None and (not isinstance(grace, int) or grace < 0):
            raise InvalidArgument(f"{where}: terminationGracePeriodSeconds must be a non-negative integer")
        pod_sc = _map(spec.get("securityContext"), f"{where}: securityContext")
        for extra in sorted(set(pod_sc) - {"runAsUser", "runAsGroup"}):
            self.warnings.append(f"{where}: securityContext.{extra} is not supported: ignored")
        volumes = self._volumes(plan, _list(spec.get("volumes"), f"{where}: volumes"))
        ctrs = _list(spec.get("containers"), f"{where}: containers")
        if not ctrs:
            raise InvalidArgument(f"{where}: spec.containers must list at least one container")
        seen: set[str] = set()
        for c in ctrs:
            c = _map(c, f"{where}: containers[]")
            cname = c.get("name")
            if not isinstance(cname, str) or not DNS_LABEL.match(cname):
                raise InvalidArgument(f"{where}: container name {cname!r} is missing or not a valid name")
            if cname in seen:
                raise InvalidArgument(f"{where}: container {cname} is defined twice")
            seen.add(cname)
            plan.containers.append(self._container(plan, c, volumes, pod_sc, RESTART[restart_policy], grace,
                                                   replica))
        return plan

    def _volumes(self, plan: PodPlan, vols: list[Any]) -> dict[str, tuple[str, str]]:
        """volume name -> (kind, source): ("bind", host path) or ("volume", volume name)."""
        out: dict[str, tuple[str, str]] = {}
        where = f"pod {plan.name}"
        for v in vols:
            v = _map(v, f"{where}: volumes[]")
            vname = v.get("name")
            if not isinstance(vname, str) or not vname:
                raise InvalidArgument(f"{where}: a volume has no name")
            if "hostPath" in v:
                hp = _map(v["hostPath"], f"{where}: volume {vname}: hostPath")
                path, typ = hp.get("path"), hp.get("type") or ""
                if not isinstance(path, str) or not path.startswith("/"):
                    raise InvalidArgument(f"{where}: volume {vname}: hostPath.path must be an absolute path")
                if typ not in ("", "DirectoryOrCreate", "Directory", "FileOrCreate", "File", "Socket",
                               "CharDevice", "BlockDevice"):
                    raise InvalidArgument(f"{where}: volume {vname}: unknown hostPath type {typ!r}")
                plan.host_dirs.append((path, typ))
                out[vname] = ("bind", path)
            elif "emptyDir" in v:
                # One volume per pod, shared by its containers and removed with the pod, as Podman does.
                vol = f"{plan.name}-{vname}"
                plan.empty_dirs.append(vol)
                out[vname] = ("volume", vol)
            elif "persistentVolumeClaim" in v:
                claim = _map(v["persistentVolumeClaim"], f"{where}: volume {vname}").get("claimName")
                if not isinstance(claim, str) or not claim:
                    raise InvalidArgument(f"{where}: volume {vname}: persistentVolumeClaim.claimName is missing")
                plan.claims.append(claim)
                out[vname] = ("volume", claim)
            else:
                kinds = sorted(set(v) - {"name"})
                self.warnings.append(f"{where}: volume {vname} of type {', '.join(kinds) or 'none'} is not "
                                     "supported: its mounts are left out")
                out[vname] = ("unsupported", "")
        return out

    def _container(self, plan: PodPlan, c: dict[str, Any], volumes: dict[str, tuple[str, str]],
                   pod_sc: dict[str, Any], restart: str, grace: int | None, replica: int) -> CreateOptions:
        from dockyard.engine.containers import CreateOptions

        cname = c["name"]
        where = f"pod {plan.name}: container {cname}"
        for extra in sorted(set(c) - CONTAINER_FIELDS):
            self.warnings.append(f"{where}: {extra} is not supported: ignored")
        image = c.get("image")
        if not isinstance(image, str) or not image:
            raise InvalidArgument(f"{where}: image is missing")
        opts = CreateOptions(image=image, name=f"{plan.name}-{cname}", restart=restart, attach_streams=False,
                             stop_timeout=grace, tty=bool(c.get("tty")), interactive=bool(c.get("stdin")))
        command = _strings(c.get("command"), f"{where}: command")
        args = _strings(c.get("args"), f"{where}: args")
        if command:
            # Kubernetes' command replaces the image's ENTRYPOINT (and with it its CMD), args its CMD.
            opts.entrypoint = command[0]
            opts.command = command[1:] + args
        else:
            opts.command = args
        if c.get("workingDir"):
            opts.workdir = str(c["workingDir"])
        for e in _list(c.get("env"), f"{where}: env"):
            e = _map(e, f"{where}: env[]")
            if not isinstance(e.get("name"), str):
                raise InvalidArgument(f"{where}: an env entry has no name")
            if "valueFrom" in e:
                self.warnings.append(f"{where}: env {e['name']}: valueFrom is not supported: left unset")
                continue
            value = e.get("value", "")
            opts.env.append(f"{e['name']}={'' if value is None else value}")
        for p in _list(c.get("ports"), f"{where}: ports"):
            p = _map(p, f"{where}: ports[]")
            cport, hport = p.get("containerPort"), p.get("hostPort")
            if not isinstance(cport, int) or not 0 < cport < 65536:
                raise InvalidArgument(f"{where}: containerPort must be a port number")
            proto = str(p.get("protocol") or "TCP").lower()
            if proto not in ("tcp", "udp", "sctp"):
                raise InvalidArgument(f"{where}: unknown protocol {p.get('protocol')!r}")
            if hport is None:
                continue
            if not isinstance(hport, int) or not 0 < hport < 65536:
                raise InvalidArgument(f"{where}: hostPort must be a port number")
            if replica:
                self.warnings.append(f"{where}: hostPort {hport} is published by replica 0 only: "
                                     "replicas cannot share a host port")
                continue
            host_ip = p.get("hostIP")
            plan.publish.append(f"{host_ip + ':' if host_ip else ''}{hport}:{cport}/{proto}")
        for m in _list(c.get("volumeMounts"), f"{where}: volumeMounts"):
            m = _map(m, f"{where}: volumeMounts[]")
            vname, target = m.get("name"), m.get("mountPath")
            if vname not in volumes:
                raise InvalidArgument(f"{where}: volumeMount {vname!r} names no volume of the pod")
            if not isinstance(target, str) or not target.startswith("/"):
                raise InvalidArgument(f"{where}: volumeMount {vname}: mountPath must be an absolute path")
            if m.get("subPath"):
                self.warnings.append(f"{where}: volumeMount {vname}: subPath is not supported: ignored")
            kind, source = volumes[vname]
            if kind == "unsupported":
                continue
            opts.volumes.append(f"{source}:{target}" + (":ro" if m.get("readOnly") else ""))
        self._resources(opts, _map(c.get("resources"), f"{where}: resources"), where)
        self._security(opts, {**pod_sc, **_map(c.get("securityContext"), f"{where}: securityContext")}, where)
        self._probe(opts, c.get("livenessProbe"), where)
        return opts

    def _resources(self, opts: CreateOptions, res: dict[str, Any], where: str) -> None:
        limits = _map(res.get("limits"), f"{where}: resources.limits")
        requests = _map(res.get("requests"), f"{where}: resources.requests")
        if "memory" in limits:
            opts.memory = str(int(quantity(limits["memory"], f"{where}: limits.memory")))
        if "cpu" in limits:
            opts.cpus = f"{quantity(limits['cpu'], f'{where}: limits.cpu'):g}"
        if "memory" in requests:
            opts.memory_reservation = str(int(quantity(requests["memory"], f"{where}: requests.memory")))
        for extra in sorted((set(limits) | set(requests)) - {"memory", "cpu"}):
            self.warnings.append(f"{where}: resource {extra} is not supported: ignored")

    def _security(self, opts: CreateOptions, sc: dict[str, Any], where: str) -> None:
        for extra in sorted(set(sc) - SECURITY_FIELDS):
            self.warnings.append(f"{where}: securityContext.{extra} is not supported: ignored")
        uid, gid = sc.get("runAsUser"), sc.get("runAsGroup")
        for key, val in (("runAsUser", uid), ("runAsGroup", gid)):
            if val is not None and (not isinstance(val, int) or val < 0):
                raise InvalidArgument(f"{where}: securityContext.{key} must be a non-negative integer")
        if uid is not None:
            opts.user = f"{uid}:{gid}" if gid is not None else str(uid)
        elif gid is not None:
            opts.user = f"0:{gid}"
        caps = _map(sc.get("capabilities"), f"{where}: securityContext.capabilities")
        opts.cap_add = _strings(caps.get("add"), f"{where}: capabilities.add")
        opts.cap_drop = _strings(caps.get("drop"), f"{where}: capabilities.drop")
        opts.privileged = bool(sc.get("privileged"))
        opts.read_only = bool(sc.get("readOnlyRootFilesystem"))
        if sc.get("allowPrivilegeEscalation") is False:
            opts.security_opt.append("no-new-privileges")

    def _probe(self, opts: CreateOptions, probe: Any, where: str) -> None:
        if probe is None:
            return
        probe = _map(probe, f"{where}: livenessProbe")
        if "exec" not in probe:
            kinds = sorted(set(probe) & {"httpGet", "tcpSocket", "grpc"})
            self.warnings.append(f"{where}: livenessProbe {', '.join(kinds) or 'without exec'} is not supported: "
                                 "no healthcheck")
            return
        cmd = _strings(_map(probe["exec"], f"{where}: livenessProbe.exec").get("command"),
                       f"{where}: livenessProbe.exec.command")
        if not cmd:
            raise InvalidArgument(f"{where}: livenessProbe.exec.command is empty")
        # A shell command (what `generate kube` writes for --health-cmd) goes back as the shell string.
        shell = len(cmd) == 3 and cmd[0] in ("/bin/sh", "sh") and cmd[1] == "-c"
        opts.health_cmd = cmd[2] if shell else shlex.join(cmd)
        for key, attr in PROBE_TIMING:
            if key in probe:
                val = probe[key]
                if not isinstance(val, int) or val < 0:
                    raise InvalidArgument(f"{where}: livenessProbe.{key} must be a non-negative integer")
                setattr(opts, attr, f"{val}s")
        if "failureThreshold" in probe:
            opts.health_retries = int(probe["failureThreshold"])


def _labels(meta: dict[str, Any], where: str) -> dict[str, str]:
    labels = _map(meta.get("labels"), f"{where}: metadata.labels")
    return {str(k): str(v) for k, v in labels.items()}


class KubeService:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        from dockyard.engine.pods import PodService

        self.pods = PodService(engine)

    def plan(self, path: str) -> tuple[list[PodPlan], list[str]]:
        planner = Planner()
        plans = planner.plan(load(path))
        return plans, planner.warnings

    def play(self, path: str, replace: bool = False, start: bool = True) -> tuple[PlayReport, list[str]]:
        plans, warnings = self.plan(path)
        for p in plans:
            if self.pods.exists(p.name):
                if not replace:
                    raise Conflict(f"pod {p.name} already exists: use --replace to replace it")
        self._check_images(plans)
        for p in plans:
            for path, typ in p.host_dirs:
                if typ and not typ.endswith("OrCreate"):
                    _host_path(path, typ)  # a missing Directory/File fails before anything exists
        if replace:
            for p in plans:
                if self.pods.exists(p.name):
                    self.pods.remove(p.name, force=True)
        report = PlayReport()
        made: list[str] = []
        try:
            for p in plans:
                pod_id, ctrs = self._make(p, made, report)
                report.pods.append((pod_id, ctrs))
            if start:
                for pod_id, _ in report.pods:
                    self.pods.start(pod_id)
        except BaseException:
            for pod_id in made:
                try:
                    self.pods.remove(pod_id, force=True)
                except DockyardError:
                    pass
            raise
        return report, warnings

    def _check_images(self, plans: list[PodPlan]) -> None:
        images = self.engine.images
        for img in dict.fromkeys(o.image for p in plans for o in p.containers):
            if not images.exists(img):
                try:
                    self.engine.registry.pull(img)
                except DockyardError as e:
                    raise NotFound(f"image {img} is not present and could not be pulled: {e}") from None

    def _make(self, p: PodPlan, made: list[str], report: PlayReport) -> tuple[str, list[str]]:
        for path, typ in p.host_dirs:
            if typ.endswith("OrCreate") or not typ:
                _host_path(path, typ)
        volumes = self.engine.volumes
        for claim in p.claims:
            if not volumes.exists(claim):
                volumes.create(claim)
                report.volumes.append(claim)
        pod_id = self.pods.create(p.name, publish=p.publish, labels=p.labels, hostname=p.hostname,
                                  extra={"OwnedVolumes": list(p.empty_dirs)})
        made.append(pod_id)
        for vol in p.empty_dirs:
            volumes.create(vol, labels={"io.dockyard.kube.emptydir": p.name})
        return pod_id, [self.pods.create_container(pod_id, opts) for opts in p.containers]

    def down(self, path: str) -> tuple[list[str], list[str]]:
        """Stop and remove the pods the file describes; returns (stopped, removed) pod IDs."""
        plans, _ = self.plan(path)
        stopped, removed = [], []
        for p in plans:
            if not self.pods.exists(p.name):
                continue
            stopped.append(self.pods.stop(p.name))
            removed.append(self.pods.remove(p.name, force=True))
        return stopped, removed


def _host_path(path: str, typ: str) -> None:
    """hostPath types as the kubelet treats them: *OrCreate makes the path, the others require it."""
    import stat

    if typ == "DirectoryOrCreate":
        os.makedirs(path, mode=0o755, exist_ok=True)
    elif typ == "FileOrCreate":
        os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
        if not os.path.exists(path):
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o644))
    elif typ:
        want = {"Directory": stat.S_ISDIR, "File": stat.S_ISREG, "Socket": stat.S_ISSOCK,
                "CharDevice": stat.S_ISCHR, "BlockDevice": stat.S_ISBLK}[typ]
        try:
            ok = want(os.stat(path).st_mode)
        except FileNotFoundError:
            ok = False
        if not ok:
            raise InvalidArgument(f"hostPath {path} is not an existing {typ}")
    elif not os.path.exists(path):
        # No type: Kubernetes performs no check; a bind mount needs the path, as Podman creates it.
        os.makedirs(path, mode=0o755, exist_ok=True)
