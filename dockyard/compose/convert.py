"""One compose service to the engine's ``CreateOptions``: the same options `dockyard run` builds.

Every service key is either turned into an option here, handled by ``project`` (scale, depends_on,
build, pull_policy, profiles ...), ignored with a warning because it only means something to a
Swarm, or refused with an error naming it: never dropped silently.
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
from typing import TYPE_CHECKING, Any

from dockyard.errors import InvalidArgument, Unsupported

if TYPE_CHECKING:
    from dockyard.compose.loader import Project
    from dockyard.engine.containers import CreateOptions

LABEL = "com.docker.compose"
L_PROJECT = f"{LABEL}.project"
L_SERVICE = f"{LABEL}.service"
L_NUMBER = f"{LABEL}.container-number"
L_HASH = f"{LABEL}.config-hash"
L_ONEOFF = f"{LABEL}.oneoff"
L_WORKDIR = f"{LABEL}.project.working_dir"
L_FILES = f"{LABEL}.project.config_files"
L_NETWORK = f"{LABEL}.network"
L_VOLUME = f"{LABEL}.volume"
L_VERSION = f"{LABEL}.version"
L_DEPENDS = f"{LABEL}.depends_on"
L_IMAGE = f"{LABEL}.image"
COMPOSE_VERSION = "2.29.0"

# keys turned into options below, or used by the project (ordering, images, scale)
HANDLED = {
    "image", "build", "command", "entrypoint", "environment", "env_file", "ports", "expose", "volumes",
    "tmpfs", "networks", "network_mode", "hostname", "user", "working_dir", "read_only", "privileged", "init",
    "stop_signal", "stop_grace_period", "ulimits", "security_opt", "cap_add", "cap_drop", "labels", "restart",
    "healthcheck", "logging", "deploy", "depends_on", "profiles", "secrets", "configs", "container_name",
    "scale", "pull_policy", "dns", "dns_search", "dns_opt", "extra_hosts", "mac_address", "shm_size", "pid",
    "ipc", "tty", "stdin_open", "platform", "cpus", "cpu_shares", "mem_limit", "mem_reservation",
    "memswap_limit", "pids_limit", "volumes_from", "runtime", "userns_mode",
}
# keys that only mean something to an orchestrator or to Docker Desktop: ignored, with a warning
IGNORED = {"develop", "attach", "annotations", "external_links", "links", "isolation", "credential_spec"}
_DEPLOY_HANDLED = {"replicas", "resources", "restart_policy", "mode"}
_DEPLOY_SWARM = {"update_config", "rollback_config", "placement", "endpoint_mode", "labels"}


def check_keys(name: str, svc: dict[str, Any], warn: Any) -> None:
    for key in svc:
        if key in HANDLED:
            continue
        if key in IGNORED:
            warn(f"services.{name}.{key} is ignored by dockyard compose")
            continue
        raise Unsupported(f"services.{name}.{key} is not supported by dockyard compose")
    deploy = svc.get("deploy") or {}
    for key in deploy:
        if key in _DEPLOY_SWARM:
            warn(f"services.{name}.deploy.{key} only applies to a Swarm and is ignored")
        elif key not in _DEPLOY_HANDLED:
            raise Unsupported(f"services.{name}.deploy.{key} is not supported by dockyard compose")
    if deploy.get("mode") not in (None, "replicated"):
        raise Unsupported(f"services.{name}.deploy.mode {deploy['mode']!r} is not supported by dockyard compose")
    res = deploy.get("resources") or {}
    for kind in ("limits", "reservations"):
        for key in res.get(kind) or {}:
            ok = {"limits": ("cpus", "memory", "pids"), "reservations": ("cpus", "memory")}[kind]
            if key not in ok:
                raise Unsupported(f"services.{name}.deploy.resources.{kind}.{key} is not supported by dockyard compose")
    restart = str(svc.get("restart") or "no")
    if not re.fullmatch(r"no|always|unless-stopped|on-failure(:\d+)?", restart):
        raise InvalidArgument(f"services.{name}.restart: invalid restart policy {restart!r} "
                              "(no, always, on-failure[:N] or unless-stopped)")
    hc = svc.get("healthcheck") or {}
    if "start_interval" in hc:
        warn(f"services.{name}.healthcheck.start_interval is ignored (the interval applies from the start)")
    for i, v in enumerate(svc.get("volumes") or []):
        extra = set(v) - {"type", "source", "target", "read_only", "bind", "volume", "tmpfs", "consistency"}
        if extra:
            raise Unsupported(f"services.{name}.volumes[{i}].{sorted(extra)[0]} is not supported by dockyard compose")
        if v.get("type") not in ("bind", "volume", "tmpfs"):
            raise Unsupported(f"services.{name}.volumes[{i}].type {v.get('type')!r} is not supported by dockyard compose")


def replicas(svc: dict[str, Any]) -> int:
    n = (svc.get("deploy") or {}).get("replicas")
    if n is None:
        n = svc.get("scale", 1)
    try:
        return int(n)
    except (TypeError, ValueError):
        raise InvalidArgument(f"invalid replicas {n!r}: expected a number") from None


def image_name(project: Project, service: str) -> str:
    svc = project.services.get(service) or project.disabled[service]
    # Docker Compose's default name for a built image: <project>-<service>
    return str(svc.get("image") or f"{project.name}-{service}")


def resource_name(project: Project, kind: str, key: str) -> str:
    d = getattr(project, kind).get(key) or {}
    if d.get("name"):
        return str(d["name"])
    if d.get("external"):
        return key
    return f"{project.name}_{key}"


def config_hash(svc: dict[str, Any]) -> str:
    """What a container's creation depends on; `up` recreates a container when this changes.  As in
    Docker Compose, scaling, ordering, profiles and how the image is obtained are left out."""
    s = {k: v for k, v in svc.items() if k not in ("build", "pull_policy", "scale", "depends_on", "profiles")}
    if isinstance(s.get("deploy"), dict):
        s["deploy"] = {k: v for k, v in s["deploy"].items() if k != "replicas"}
    return hashlib.sha256(json.dumps(s, sort_keys=True, default=str).encode()).hexdigest()


def container_name(project: Project, service: str, number: int) -> str:
    svc = project.services[service]
    return str(svc.get("container_name") or f"{project.name}-{service}-{number}")


def _duration_seconds(text: Any, where: str) -> int:
    from dockyard.engine.containers import parse_duration

    return parse_duration(str(text), where) // 1_000_000_000


def _restart(svc: dict[str, Any]) -> str:
    if svc.get("restart"):
        return str(svc["restart"])
    rp = (svc.get("deploy") or {}).get("restart_policy") or {}
    cond = rp.get("condition")
    if cond is None:
        return "no"
    if cond == "none":
        return "no"
    if cond == "any":
        return "always"
    if cond == "on-failure":
        return f"on-failure:{rp['max_attempts']}" if rp.get("max_attempts") else "on-failure"
    raise InvalidArgument(f"invalid deploy.restart_policy.condition {cond!r}")


def _health(svc: dict[str, Any], opts: dict[str, Any]) -> None:
    hc = svc.get("healthcheck")
    if not hc:
        return
    if hc.get("disable"):
        opts["no_healthcheck"] = True
        return
    test = hc.get("test")
    if isinstance(test, str):
        opts["health_cmd"] = test
    elif isinstance(test, list) and test:
        if test[0] == "NONE":
            opts["no_healthcheck"] = True
            return
        if test[0] == "CMD-SHELL":
            opts["health_cmd"] = " ".join(test[1:])
        elif test[0] == "CMD":
            # the engine runs health commands through /bin/sh -c; quoting keeps the argv intact
            opts["health_cmd"] = shlex.join(test[1:])
        else:
            raise InvalidArgument(f"invalid healthcheck test {test!r}: must start with CMD, CMD-SHELL or NONE")
    for key, opt in (("interval", "health_interval"), ("timeout", "health_timeout"),
                     ("start_period", "health_start_period")):
        if hc.get(key) is not None:
            opts[opt] = str(hc[key])
    if hc.get("retries") is not None:
        opts["health_retries"] = int(hc["retries"])


def _mounts(project: Project, name: str, svc: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(-v values, --mount values); bind sources are absolute by now (loader)."""
    vols: list[str] = []
    mounts: list[str] = []
    for v in svc.get("volumes") or []:
        typ, target, ro = v["type"], v["target"], bool(v.get("read_only"))
        if typ == "bind":
            if (v.get("bind") or {}).get("create_host_path", False):
                vols.append(f"{v['source']}:{target}" + (":ro" if ro else ""))
            else:
                mounts.append(f"type=bind,source={v['source']},target={target}" + (",readonly" if ro else ""))
        elif typ == "volume":
            spec = f"type=volume,target={target}"
            if v.get("source"):
                spec += f",source={resource_name(project, 'volumes', v['source'])}"
            if ro:
                spec += ",readonly"
            if (v.get("volume") or {}).get("nocopy"):
                spec += ",volume-nocopy"
            mounts.append(spec)
        else:
            spec = f"type=tmpfs,target={target}"
            size = (v.get("tmpfs") or {}).get("size")
            if size:
                spec += f",tmpfs-size={size}"
            mounts.append(spec)
    for _kind, _ref, top, target in _secret_refs(project, name, svc):
        if top.get("file"):
            mounts.append(f"type=bind,source={top['file']},target={target},readonly")
    return vols, mounts


def _secret_refs(project: Project, name: str, svc: dict[str, Any]) -> list[tuple[str, dict[str, Any], dict[str, Any], str]]:
    """(kind, service reference, top-level definition, path in the container) of each secret/config."""
    out = []
    for kind, default_dir in (("secrets", "/run/secrets/"), ("configs", "/")):
        for ref in svc.get(kind) or []:
            top = getattr(project, kind)[ref["source"]]
            if top.get("external"):
                raise Unsupported(f"{kind}.{ref['source']}: external {kind} need a Swarm; not supported")
            if not any(top.get(k) is not None for k in ("file", "environment", "content")):
                raise InvalidArgument(f"{kind}.{ref['source']}: one of file, environment or content is required")
            if any(ref.get(k) is not None for k in ("uid", "gid", "mode")):
                raise Unsupported(f"services.{name}.{kind}: uid/gid/mode are not supported by dockyard compose")
            target = ref.get("target") or ref["source"]
            if not target.startswith("/"):
                target = default_dir + target
            out.append((kind, ref, top, target))
    return out


def injected_files(project: Project, service: str) -> list[tuple[str, bytes]]:
    """Secrets/configs given by ``environment:`` or ``content:``: (path in the container, content),
    copied into the container after it is created, as Docker Compose does outside a Swarm."""
    out = []
    for kind, ref, top, target in _secret_refs(project, service, project.services[service]):
        if top.get("file"):
            continue
        if top.get("environment") is not None:
            var = str(top["environment"])
            if var not in project.environment:
                raise InvalidArgument(f"{kind}.{ref['source']}: environment variable {var} is not set")
            out.append((target, project.environment[var].encode()))
        else:
            out.append((target, str(top["content"]).encode()))
    return out


def _networks(project: Project, service: str, svc: dict[str, Any], cname: str, number: int) -> tuple[Any, str | None]:
    mode = svc.get("network_mode")
    if mode:
        if svc.get("networks"):
            raise InvalidArgument(f"service {service!r} declares both network_mode and networks")
        if mode.startswith("service:"):
            other = mode.split(":", 1)[1]
            if other not in project.services:
                raise InvalidArgument(f"service {service!r}: network_mode refers to unknown service {other!r}")
            return f"container:{container_name(project, other, 1)}", None
        return mode, None
    nets = svc.get("networks") or {"default": None}
    values = []
    for key, opts in nets.items():
        opts = opts or {}
        # Docker Compose gives each container the service name and its container name as DNS
        # aliases; <service>-<n> is added so replicas are reachable one by one by a short name.
        aliases = [service, cname, f"{service}-{number}", *(opts.get("aliases") or [])]
        parts = [f"alias={a}" for a in dict.fromkeys(aliases)]
        if opts.get("ipv4_address"):
            parts.append(f"ip={opts['ipv4_address']}")
        for k in opts:
            if k not in ("aliases", "ipv4_address", "priority", "gw_priority"):
                raise Unsupported(f"services.{service}.networks.{key}.{k} is not supported by dockyard compose")
        values.append(f"{network_name(project, key)}:{','.join(parts)}")
    return values, None


def network_name(project: Project, key: str) -> str:
    if key == "default" and "default" not in project.networks:
        return f"{project.name}_default"
    return resource_name(project, "networks", key)


def create_options(project: Project, service: str, number: int, *, oneoff: bool = False,
                   name: str | None = None, command: list[str] | None = None,
                   entrypoint: list[str] | None = None, extra_env: list[str] | None = None,
                   labels: dict[str, str] | None = None) -> CreateOptions:
    from dockyard.engine.containers import CreateOptions

    svc = project.services[service]
    cname = name or container_name(project, service, number)
    env = []
    for k, v in (svc.get("environment") or {}).items():
        if v is None:
            if k in project.environment:
                env.append(f"{k}={project.environment[k]}")
        else:
            env.append(f"{k}={v}")
    env += list(extra_env or [])
    env_files = []
    for f in svc.get("env_file") or []:
        import os

        if os.path.exists(f["path"]) or f["required"]:
            env_files.append(f["path"])

    cmd = svc.get("command") if command is None else command
    ep = svc.get("entrypoint") if entrypoint is None else entrypoint
    ep_opt: str | None = None
    if ep is not None:
        # CreateOptions takes one entrypoint word, as `run --entrypoint` does; the rest of a list
        # entrypoint goes in front of the command, which gives the container the same argv.
        ep_opt = ep[0] if ep else ""
        cmd = list(ep[1:]) + list(cmd or [])

    all_labels = dict(svc.get("labels") or {})
    all_labels.update({
        L_PROJECT: project.name, L_SERVICE: service, L_NUMBER: str(number), L_ONEOFF: "True" if oneoff else "False",
        L_HASH: config_hash(svc), L_WORKDIR: project.working_dir, L_FILES: ",".join(project.config_files),
        L_VERSION: COMPOSE_VERSION, L_IMAGE: image_name(project, service),
        L_DEPENDS: ",".join(f"{d}:{c['condition']}:{str(c.get('restart', False)).lower()}"
                            for d, c in (svc.get("depends_on") or {}).items()),
    })
    all_labels.update(labels or {})

    vols, mounts = _mounts(project, service, svc)
    network, _ = _networks(project, service, svc, cname, number)
    opts: dict[str, Any] = {}
    _health(svc, opts)
    res = (svc.get("deploy") or {}).get("resources") or {}
    limits, reserv = res.get("limits") or {}, res.get("reservations") or {}
    logging = svc.get("logging") or {}
    stop_timeout = None
    if svc.get("stop_grace_period") is not None:
        stop_timeout = _duration_seconds(svc["stop_grace_period"], "stop_grace_period")
    memory = limits.get("memory") or svc.get("mem_limit")
    mem_res = reserv.get("memory") or svc.get("mem_reservation")
    cpus = limits.get("cpus") or svc.get("cpus")
    pids = limits.get("pids") or svc.get("pids_limit")
    ports = []
    for p in svc.get("ports") or []:
        spec = p["target"]
        if p.get("published"):
            spec = f"{p['published']}:{spec}"
            if p.get("host_ip"):
                spec = f"{p['host_ip']}:{spec}"
        elif p.get("host_ip"):
            spec = f"{p['host_ip']}::{spec}"
        ports.append(f"{spec}/{p['protocol']}")

    return CreateOptions(
        image=image_name(project, service), command=list(cmd or []), entrypoint=ep_opt, name=cname,
        env=env, env_files=env_files, workdir=svc.get("working_dir"),
        user=None if svc.get("user") is None else str(svc["user"]), hostname=svc.get("hostname"),
        labels=[f"{k}={v}" for k, v in all_labels.items()], tty=bool(svc.get("tty")),
        interactive=bool(svc.get("stdin_open")), attach_streams=False, init=bool(svc.get("init")),
        restart="no" if oneoff else _restart(svc), memory=None if memory is None else str(memory),
        memory_reservation=None if mem_res is None else str(mem_res),
        memory_swap=None if svc.get("memswap_limit") is None else str(svc["memswap_limit"]),
        cpus=None if cpus is None else str(cpus),
        cpu_shares=None if svc.get("cpu_shares") is None else int(svc["cpu_shares"]),
        pids_limit=None if pids is None else int(pids),
        ulimits=[f"{k}={v['soft']}:{v['hard']}" for k, v in (svc.get("ulimits") or {}).items()],
        cap_add=list(svc.get("cap_add") or []), cap_drop=list(svc.get("cap_drop") or []),
        privileged=bool(svc.get("privileged")), read_only=bool(svc.get("read_only")),
        security_opt=list(svc.get("security_opt") or []), stop_signal=svc.get("stop_signal"),
        stop_timeout=stop_timeout, runtime=svc.get("runtime"), log_driver=logging.get("driver"),
        log_opts=[f"{k}={v}" for k, v in (logging.get("options") or {}).items()], platform=svc.get("platform"),
        network=network, publish=ports, volumes=vols, mounts=mounts, tmpfs=list(svc.get("tmpfs") or []),
        dns=list(svc.get("dns") or []), dns_search=list(svc.get("dns_search") or []),
        dns_options=list(svc.get("dns_opt") or []), add_host=list(svc.get("extra_hosts") or []),
        pid=svc.get("pid"), ipc=svc.get("ipc"), shm_size=None if svc.get("shm_size") is None else str(svc["shm_size"]),
        mac_address=svc.get("mac_address"), userns=svc.get("userns_mode"),
        volumes_from=[_volumes_from(project, v) for v in svc.get("volumes_from") or []],
        **opts)


def _volumes_from(project: Project, ref: str) -> str:
    # "service[:ro]" names a service of this project (its first container); "container:NAME" a container
    if ref.startswith("container:"):
        return ref.split(":", 1)[1]
    name, sep, mode = ref.partition(":")
    if name in project.services:
        return container_name(project, name, 1) + (sep + mode)
    return ref
