"""Making the engine's state match a compose project: networks, volumes, images, containers.

Containers carry Docker Compose's labels, so what belongs to a project is found again from the
store alone (``ps``, ``down`` and ``ls`` need no compose file state), and ``up`` recreates a
container only when its service's config hash or image changed.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from dockyard.compose import convert
from dockyard.compose.convert import L_NUMBER, L_ONEOFF, L_PROJECT, L_SERVICE
from dockyard.compose.loader import order
from dockyard.errors import Conflict, DockyardError, InvalidArgument, NotFound

if TYPE_CHECKING:
    from dockyard.compose.loader import Project
    from dockyard.engine import Engine


def _ignore(_msg: str) -> None:
    pass


class Compose:
    """One loaded project against one engine.  ``report`` gets progress lines ("Container x  Started"),
    ``warn`` warnings; the CLI prints both on stderr as Docker Compose does."""

    def __init__(self, engine: Engine, project: Project, *, report: Callable[[str], None] = _ignore,
                 warn: Callable[[str], None] = _ignore) -> None:
        self.engine = engine
        self.project = project
        self.report = report
        self.warn = warn

    # -- lookup ----------------------------------------------------------------------------------
    def containers(self, services: list[str] | None = None, *, all_: bool = True,
                   oneoff: bool | None = False) -> list[dict[str, Any]]:
        """ps rows of this project's containers, sorted by service and number."""
        return project_containers(self.engine, self.project.name, services, all_=all_, oneoff=oneoff)

    def _select(self, services: list[str] | None, with_deps: bool = True) -> list[str]:
        names = list(services or self.project.services)
        for n in names:
            if n not in self.project.services:
                raise NotFound(f"no such service: {n}")
        if with_deps:
            todo = list(names)
            while todo:
                for dep in (self.project.services[todo.pop()].get("depends_on") or {}):
                    if dep in self.project.services and dep not in names:
                        names.append(dep)
                        todo.append(dep)
        wanted = set(names)
        return [n for n in order(self.project.services) if n in wanted]

    # -- networks and volumes --------------------------------------------------------------------
    def _used_networks(self, services: list[str]) -> list[str]:
        keys: list[str] = []
        for s in services:
            svc = self.project.services[s]
            if svc.get("network_mode"):
                continue
            for k in svc.get("networks") or {"default": None}:
                if k not in keys:
                    keys.append(k)
        return keys

    def ensure_networks(self, services: list[str]) -> None:
        nets = self.engine.networks
        keys = self._used_networks(services)
        for key in keys:  # all external ones first, so a missing one fails before anything is made
            if (self.project.networks.get(key) or {}).get("external"):
                name = convert.network_name(self.project, key)
                try:
                    nets.resolve(name)
                except NotFound:
                    raise NotFound(f"network {name} declared as external, but could not be found") from None
        for key in keys:
            name = convert.network_name(self.project, key)
            d = self.project.networks.get(key) or {}
            if d.get("external"):
                continue
            try:
                got = nets.inspect(name)
            except NotFound:
                got = None
            if got is not None:
                if got["Labels"].get(L_PROJECT) not in (None, self.project.name):
                    self.warn(f"a network with name {name} exists but was not created for project "
                              f'"{self.project.name}"')
                continue
            driver = d.get("driver") or "bridge"
            ipam_cfg = ((d.get("ipam") or {}).get("config") or [{}])[0]
            for k in d:
                if k not in ("driver", "driver_opts", "ipam", "internal", "labels", "name", "external",
                             "attachable", "enable_ipv6", "enable_ipv4"):
                    raise InvalidArgument(f"networks.{key}.{k} is not supported by dockyard compose")
            if d.get("enable_ipv6"):
                raise InvalidArgument(f"networks.{key}.enable_ipv6 is not supported by dockyard compose")
            labels = {k: v or "" for k, v in _kv(d.get("labels")).items()}
            labels.update({L_PROJECT: self.project.name, convert.L_NETWORK: key,
                           convert.L_VERSION: convert.COMPOSE_VERSION})
            nets.create(name, driver=driver, subnet=ipam_cfg.get("subnet"), gateway=ipam_cfg.get("gateway"),
                        ip_range=ipam_cfg.get("ip_range"), internal=bool(d.get("internal")), labels=labels,
                        options={str(k): str(v) for k, v in (d.get("driver_opts") or {}).items()})
            self.report(f"Network {name}  Created")

    def ensure_volumes(self, services: list[str]) -> None:
        used: list[str] = []
        for s in services:
            for v in self.project.services[s].get("volumes") or []:
                if v["type"] == "volume" and v.get("source") and v["source"] not in used:
                    used.append(v["source"])
        vols = self.engine.volumes
        for key in used:
            name = convert.resource_name(self.project, "volumes", key)
            d = self.project.volumes.get(key) or {}
            if d.get("external"):
                if not vols.exists(name):
                    raise NotFound(f"external volume \"{name}\" not found")
                continue
            if vols.exists(name):
                continue
            labels = {k: v or "" for k, v in _kv(d.get("labels")).items()}
            labels.update({L_PROJECT: self.project.name, convert.L_VOLUME: key,
                           convert.L_VERSION: convert.COMPOSE_VERSION})
            vols.create(name, driver=d.get("driver") or "local", labels=labels,
                        options={str(k): str(v) for k, v in (d.get("driver_opts") or {}).items()})
            self.report(f"Volume {name}  Created")

    # -- images ----------------------------------------------------------------------------------
    def pull(self, services: list[str] | None = None, *, ignore_failures: bool = False) -> None:
        for s in self._select(services, with_deps=False):
            svc = self.project.services[s]
            if not svc.get("image"):
                continue
            try:
                self.engine.registry.pull(svc["image"], platform=svc.get("platform"))
                self.report(f"{s} Pulled")
            except DockyardError as e:
                if not (ignore_failures or svc.get("build")):
                    raise
                self.warn(f"{s}: pull failed: {e}")

    def build(self, services: list[str] | None = None, *, no_cache: bool = False, pull: bool = False,
              build_args: dict[str, str] | None = None, quiet: bool = False) -> None:
        for s in self._select(services, with_deps=False):
            if self.project.services[s].get("build"):
                self._build_one(s, no_cache=no_cache, pull=pull, build_args=build_args or {}, quiet=quiet)

    def _build_one(self, service: str, *, no_cache: bool = False, pull: bool = False,
                   build_args: dict[str, str] | None = None, quiet: bool = False) -> None:
        from dockyard.engine.build import BuildOptions, BuildService

        b = self.project.services[service]["build"]
        for k in b:
            if k not in ("context", "dockerfile", "dockerfile_inline", "args", "target", "labels", "no_cache",
                         "pull", "network", "extra_hosts", "tags", "platforms"):
                raise InvalidArgument(f"services.{service}.build.{k} is not supported by dockyard compose")
        args = {k: (v if v is not None else self.project.environment.get(k, ""))
                for k, v in (b.get("args") or {}).items()}
        args.update(build_args or {})
        dockerfile = b.get("dockerfile")
        if dockerfile and not dockerfile.startswith("/"):
            dockerfile = f"{b['context']}/{dockerfile}"
        tag = convert.image_name(self.project, service)
        self.report(f"{service} Building")
        out = _ignore if quiet else self.report
        BuildService(self.engine).build(BuildOptions(
            context=b["context"], dockerfile=dockerfile, dockerfile_text=b.get("dockerfile_inline"),
            tags=[tag, *(b.get("tags") or [])], build_args={k: str(v) for k, v in args.items()},
            target=b.get("target"), no_cache=no_cache or bool(b.get("no_cache")),
            pull="always" if pull or b.get("pull") else "missing", labels=dict(b.get("labels") or {}),
            network=b.get("network") or "bridge", add_hosts=list(b.get("extra_hosts") or []),
            report=out, warn=self.warn))
        self.report(f"{service} Built")

    def ensure_image(self, service: str, *, build: bool = False, pull_policy: str | None = None) -> None:
        svc = self.project.services[service]
        image = convert.image_name(self.project, service)
        policy = pull_policy or svc.get("pull_policy") or "missing"
        exists = self.engine.images.exists(image)
        if svc.get("build") and (build or policy == "build" or (not exists and policy != "never")):
            self._build_one(service)
            return
        if policy in ("always",) or (not exists and policy in ("missing", "if_not_present")):
            self.report(f"{service} Pulling")
            self.engine.registry.pull(image, platform=svc.get("platform"))
            self.report(f"{service} Pulled")
        elif not exists:
            raise NotFound(f"No such image: {image}")

    # -- up --------------------------------------------------------------------------------------
    def up(self, services: list[str] | None = None, *, build: bool = False, no_build: bool = False,
           force_recreate: bool = False, no_recreate: bool = False, no_deps: bool = False,
           remove_orphans: bool = False, pull: str | None = None, timeout: int | None = None,
           wait: bool = False, start: bool = True) -> list[str]:
        """Create and start what is missing or changed; returns the container ids of the selection.
        With ``start`` false (``compose create``) containers are only created."""
        selected = self._select(services, with_deps=not no_deps)
        for s in selected:
            self.check(s)
        self._orphans(remove_orphans, timeout)
        fresh = not self.containers(oneoff=None)
        nets_before = {n["Name"] for n in self.engine.networks.list()}
        vols_before = {v["Name"] for v in self.engine.volumes.list_volumes()}
        ids: list[str] = []
        try:
            self.ensure_networks(selected)
            self.ensure_volumes(selected)
            for s in selected:
                self.ensure_image(s, build=build and not no_build, pull_policy=pull)
            for s in selected:
                if start:
                    self._wait_dependencies(s, selected)
                ids += self._converge(s, force_recreate=force_recreate, no_recreate=no_recreate, timeout=timeout,
                                      start=start)
        except BaseException:
            if fresh and not self.containers(oneoff=None):
                # a first `up` that failed before any container existed leaves nothing behind
                self._rollback(nets_before, vols_before)
            raise
        if wait:
            for s in selected:
                for c in self.containers([s]):
                    self._wait_condition(c, "service_healthy" if self._has_health(c) else "service_started")
        return ids

    def check(self, service: str) -> None:
        """Everything about a service that can be refused without touching the engine."""
        svc = self.project.services[service]
        convert.check_keys(service, svc, self.warn)
        for n in range(1, convert.replicas(svc) + 1):
            convert.create_options(self.project, service, n)

    def _rollback(self, nets_before: set[str], vols_before: set[str]) -> None:
        for net in self.engine.networks.list({"label": [f"{L_PROJECT}={self.project.name}"]}):
            if net["Name"] not in nets_before:
                with contextlib.suppress(DockyardError):
                    self.engine.networks.remove(net["Id"])
                    self.report(f"Network {net['Name']}  Removed")
        for v in self.engine.volumes.list_volumes({"label": [f"{L_PROJECT}={self.project.name}"]}):
            if v["Name"] not in vols_before:
                with contextlib.suppress(DockyardError):
                    self.engine.volumes.remove(v["Name"])

    def _orphans(self, remove: bool, timeout: int | None) -> None:
        orphans = [c for c in self.containers(oneoff=False)
                   if c["Labels"].get(L_SERVICE) not in self.project.services
                   and c["Labels"].get(L_SERVICE) not in self.project.disabled]
        if not orphans:
            return
        if not remove:
            names = ", ".join(_name(c) for c in orphans)
            self.warn(f"Found orphan containers ([{names}]) for this project. If you removed or renamed this "
                      "service in your compose file, you can run this command with the --remove-orphans flag "
                      "to clean it up.")
            return
        for c in orphans:
            self._remove(c, timeout)

    def _converge(self, service: str, *, force_recreate: bool, no_recreate: bool, timeout: int | None,
                  start: bool = True) -> list[str]:
        svc = self.project.services[service]
        want = convert.replicas(svc)
        if want > 1 and svc.get("container_name"):
            raise InvalidArgument(f'services.{service}: container_name "{svc["container_name"]}" can only be '
                                  "used by one container (scale is 1)")
        digest = convert.config_hash(svc)
        image_id = self.engine.images.get(convert.image_name(self.project, service)).id
        have = {int(c["Labels"].get(L_NUMBER, "0")): c for c in self.containers([service])}
        ids = []
        for n, old in sorted(have.items(), reverse=True):
            if n > want:
                self._remove(old, timeout)
        for n in range(1, want + 1):
            c = have.get(n)
            if c is not None:
                stale = c["Labels"].get(convert.L_HASH) != digest or c["ImageID"] != image_id
                if (force_recreate or stale) and not no_recreate:
                    self.report(f"Container {_name(c)}  Recreate")
                    self._remove(c, timeout)
                else:
                    if not start:
                        self.report(f"Container {_name(c)}  Exists")
                    elif c["State"] not in ("running", "paused", "restarting"):
                        self.engine.containers.start(c["Id"])
                        self.report(f"Container {_name(c)}  Started")
                    else:
                        self.report(f"Container {_name(c)}  Running")
                    ids.append(c["Id"])
                    continue
            opts = convert.create_options(self.project, service, n)
            cid = self.engine.containers.create(opts)
            self.inject_files(service, cid)
            self.report(f"Container {opts.name}  Created")
            ids.append(cid)
            if start:
                # a container that fails to start stays created, as Docker Compose leaves it, so
                # `logs`/`inspect` can tell why
                self.engine.containers.start(cid)
                self.report(f"Container {opts.name}  Started")
        return ids

    def inject_files(self, service: str, cid: str) -> None:
        """Copy content/environment-based secrets and configs into a created container (read-only
        for everyone but root, like a mounted secret file)."""
        files = convert.injected_files(self.project, service)
        if not files:
            return
        import io
        import tarfile

        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tf:
            dirs: set[str] = set()
            for path, data in files:
                parts = path.strip("/").split("/")
                for i in range(1, len(parts)):
                    d = "/".join(parts[:i])
                    if d not in dirs:
                        dirs.add(d)
                        info = tarfile.TarInfo(d)
                        info.type, info.mode = tarfile.DIRTYPE, 0o755
                        tf.addfile(info)
                info = tarfile.TarInfo("/".join(parts))
                info.size, info.mode, info.mtime = len(data), 0o444, int(time.time())
                tf.addfile(info, io.BytesIO(data))
        buf.seek(0)
        try:
            self.engine.containers.copy_tar_to_container(buf, cid, "/")
        except BaseException:
            with contextlib.suppress(DockyardError):
                self.engine.containers.remove(cid, force=True)
            raise

    def _remove(self, c: dict[str, Any], timeout: int | None, volumes: bool = False) -> None:
        svc = self.engine.containers
        if c["State"] in ("running", "paused", "restarting"):
            self.report(f"Container {_name(c)}  Stopping")
            svc.stop(c["Id"], timeout=timeout)
            self.report(f"Container {_name(c)}  Stopped")
        svc.remove(c["Id"], force=True, volumes=volumes)
        self.report(f"Container {_name(c)}  Removed")

    # -- depends_on conditions -------------------------------------------------------------------
    def _has_health(self, c: dict[str, Any]) -> bool:
        test = (self.engine.containers.inspect(c["Id"])["Config"].get("Healthcheck") or {}).get("Test") or []
        return bool(test) and test[0] != "NONE"

    def _wait_dependencies(self, service: str, selected: list[str]) -> None:
        for dep, cond in (self.project.services[service].get("depends_on") or {}).items():
            if dep not in selected:
                continue
            for c in self.containers([dep]):
                self._wait_condition(c, cond["condition"])

    def _wait_condition(self, c: dict[str, Any], condition: str, timeout: float | None = None) -> None:
        if condition == "service_started":
            return
        if condition not in ("service_healthy", "service_completed_successfully"):
            raise InvalidArgument(f"unknown depends_on condition {condition!r}")
        if condition == "service_healthy" and not self._has_health(c):
            raise InvalidArgument(f"dependency failed to start: container {_name(c)} has no healthcheck configured")
        self.report(f"Container {_name(c)}  Waiting")
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            st = self.engine.containers.inspect(c["Id"])["State"]
            if condition == "service_healthy":
                health = (st.get("Health") or {}).get("Status")
                if health == "healthy":
                    self.report(f"Container {_name(c)}  Healthy")
                    return
                if health == "unhealthy":
                    raise DockyardError(f"dependency failed to start: container {_name(c)} is unhealthy")
                if not st.get("Running") and not st.get("Restarting"):
                    raise DockyardError(f"dependency failed to start: container {_name(c)} exited "
                                        f"({st.get('ExitCode')})")
            elif not st.get("Running") and st.get("Status") in ("exited", "dead"):
                # wait() returns the code the monitor recorded (inspect may be ahead of it)
                code = self.engine.containers.wait(c["Id"])
                if code == 0:
                    self.report(f"Container {_name(c)}  Exited")
                    return
                raise DockyardError(f"service {c['Labels'].get(L_SERVICE)!r} didn't complete successfully: "
                                    f"exit {code}")
            if deadline is not None and time.monotonic() > deadline:
                raise DockyardError(f"timed out waiting for container {_name(c)}")
            time.sleep(0.2)

    # -- down and the lifecycle verbs ------------------------------------------------------------
    def down(self, *, volumes: bool = False, remove_orphans: bool = False, rmi: str | None = None,
             timeout: int | None = None) -> None:
        if rmi not in (None, "local", "all"):
            raise InvalidArgument(f"invalid --rmi {rmi!r}: expected local or all")
        known = set(self.project.services) | set(self.project.disabled)
        rank = {s: i for i, s in enumerate(order(self.project.services))}
        # dependents first, one-off containers with their service
        # a project known only by its name (no file) is all its containers
        everything = remove_orphans or not self.project.config_files
        victims = [c for c in self.containers(oneoff=None) if everything or c["Labels"].get(L_SERVICE) in known]
        victims.sort(key=lambda c: -rank.get(c["Labels"].get(L_SERVICE, ""), -1))
        for c in victims:
            self._remove(c, timeout, volumes=volumes)
        left = self.containers(oneoff=None)
        for net in self.engine.networks.list({"label": [f"{L_PROJECT}={self.project.name}"]}):
            if left and any(net["Name"] in (c.get("NetworkSettings") or {}).get("Networks", {}) for c in left):
                continue
            try:
                self.engine.networks.remove(net["Id"])
                self.report(f"Network {net['Name']}  Removed")
            except Conflict as e:
                self.warn(f"network {net['Name']}: {e}")
        if volumes:
            for key, d in self.project.volumes.items():
                if d.get("external"):
                    continue
                name = convert.resource_name(self.project, "volumes", key)
                if self.engine.volumes.exists(name):
                    self.engine.volumes.remove(name)
                    self.report(f"Volume {name}  Removed")
        if rmi:
            for s, svc in self.project.services.items():
                if rmi == "local" and svc.get("image"):
                    continue
                image = convert.image_name(self.project, s)
                with contextlib.suppress(NotFound):
                    self.engine.images.remove(image)
                    self.report(f"Image {image}  Removed")

    def each(self, services: list[str] | None, fn: Callable[[dict[str, Any]], None], verb: str, *,
             states: tuple[str, ...] | None = None, reverse: bool = False) -> None:
        """Apply ``fn`` to the selected services' containers (dependencies first, or last with ``reverse``)."""
        selected = self._select(services, with_deps=False)
        rank = {s: i for i, s in enumerate(selected)}
        cs = [c for c in self.containers(selected) if states is None or c["State"] in states]
        cs.sort(key=lambda c: rank[c["Labels"][L_SERVICE]] * (-1 if reverse else 1))
        for c in cs:
            fn(c)
            self.report(f"Container {_name(c)}  {verb}")

    def container_for(self, service: str, index: int = 1) -> dict[str, Any]:
        if service not in self.project.services:
            raise NotFound(f"no such service: {service}")
        for c in self.containers([service], all_=True):
            if c["Labels"].get(L_NUMBER) == str(index):
                return c
        raise NotFound(f"service \"{service}\" is not running container #{index}")


def project_containers(engine: Engine, project: str, services: list[str] | None = None, *, all_: bool = True,
                       oneoff: bool | None = False) -> list[dict[str, Any]]:
    rows = engine.containers.list_containers(all_=all_, filters=[f"label={L_PROJECT}={project}"])
    out = []
    for r in rows:
        lab = r["Labels"]
        if services is not None and lab.get(L_SERVICE) not in services:
            continue
        if oneoff is not None and (lab.get(L_ONEOFF) == "True") != oneoff:
            continue
        out.append(r)
    out.sort(key=lambda r: (r["Labels"].get(L_SERVICE, ""), int(r["Labels"].get(L_NUMBER) or 0), r["Names"][0]))
    return out


def _name(c: dict[str, Any]) -> str:
    return str(c["Names"][0].lstrip("/"))


def _kv(value: Any) -> dict[str, Any]:
    if not value:
        return {}
    if isinstance(value, dict):
        return {str(k): v for k, v in value.items()}
    return {str(x).partition("=")[0]: str(x).partition("=")[2] for x in value}
