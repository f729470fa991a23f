"""/_ping, /version, /info, /events."""

from __future__ import annotations

import asyncio
import contextlib
import platform
import socket
import time
from typing import Any

from aiohttp import web

from dockyard import API_VERSION, __version__
from dockyard.api.server import backend, json_response

MIN_API_VERSION = "1.24"


def _ping_headers() -> dict[str, str]:
    return {"Api-Version": API_VERSION, "Builder-Version": "", "Docker-Experimental": "false",
            "Ostype": "linux", "Cache-Control": "no-cache, no-store, must-revalidate", "Pragma": "no-cache"}


async def ping(request: web.Request) -> web.Response:
    if request.method == "HEAD":
        return web.Response(status=200, headers={**_ping_headers(), "Content-Type": "text/plain; charset=utf-8"})
    return web.Response(text="OK", headers=_ping_headers())


async def version(request: web.Request) -> web.Response:
    v = await backend(request).concurrent(lambda e: e.system.version())
    details = {"ApiVersion": API_VERSION, "Arch": v["Arch"], "BuildTime": "", "Experimental": "false",
               "GitCommit": "", "GoVersion": "python" + v["PythonVersion"], "KernelVersion": v["KernelVersion"],
               "MinAPIVersion": MIN_API_VERSION, "Os": "linux"}
    return json_response({
        "Platform": {"Name": "dockyard"},
        "Components": [{"Name": "Engine", "Version": __version__, "Details": details}],
        "Version": __version__, "ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION, "GitCommit": "",
        "GoVersion": "python" + v["PythonVersion"], "Os": "linux", "Arch": v["Arch"],
        "KernelVersion": v["KernelVersion"], "BuildTime": "", "Experimental": False,
    })


def _info(engine: Any) -> dict[str, Any]:
    i = engine.system.info()
    h = i["host"]
    rows = engine.containers.list_containers(all_=True)
    states = [r["State"] for r in rows]
    return {
        "ID": "", "Containers": len(rows), "ContainersRunning": states.count("running"),
        "ContainersPaused": states.count("paused"),
        "ContainersStopped": len(rows) - states.count("running") - states.count("paused"),
        "Images": len(engine.images.all()), "Driver": i["store"]["graphDriver"], "DriverStatus": [],
        "DockerRootDir": i["store"]["root"], "Plugins": {"Volume": ["local"], "Network": ["bridge", "host", "none"],
                                                         "Log": ["json-file", "k8s-file", "none"]},
        "MemoryLimit": True, "SwapLimit": False, "CpuCfsPeriod": True, "CpuCfsQuota": True, "CPUShares": True,
        "PidsLimit": True, "IPv4Forwarding": True, "Debug": False, "NFd": 0, "NGoroutines": 0,
        "SystemTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "LoggingDriver": "json-file",
        "CgroupDriver": "cgroupfs", "CgroupVersion": "2" if h["cgroupVersion"] == "v2" else "1",
        "KernelVersion": h["kernel"], "OperatingSystem": h["os"], "OSVersion": "", "OSType": "linux",
        "Architecture": platform.machine(), "NCPU": h["cpus"], "MemTotal": h["memTotal"],
        "IndexServerAddress": "https://index.docker.io/v1/", "RegistryConfig": None, "GenericResources": None,
        "HttpProxy": "", "HttpsProxy": "", "NoProxy": "", "Name": socket.gethostname(), "Labels": [],
        "ExperimentalBuild": False, "ServerVersion": __version__,
        "Runtimes": {k: {"path": v} for k, v in i["runtimes"].items()}, "DefaultRuntime": i["defaultRuntime"],
        "Swarm": {"NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive", "ControlAvailable": False,
                  "Error": "", "RemoteManagers": None},
        "LiveRestoreEnabled": False, "Isolation": "", "InitBinary": "", "SecurityOptions": ["name=seccomp,profile=default"]
        + (["name=rootless"] if h["rootless"] else []),
        "Warnings": None,
    }


async def info(request: web.Request) -> web.Response:
    return json_response(await backend(request).concurrent(_info))


async def events(request: web.Request) -> web.StreamResponse:
    """No event log is kept yet: the stream stays open and empty (until ``until`` when given)."""
    resp = web.StreamResponse(headers={"Content-Type": "application/json"})
    await resp.prepare(request)
    until = request.query.get("until")
    with contextlib.suppress(ConnectionError, asyncio.CancelledError):
        if until:
            with contextlib.suppress(ValueError):
                await asyncio.sleep(max(0.0, float(until) - time.time()))
        else:
            while True:
                await asyncio.sleep(3600)
        await resp.write_eof()
    return resp


async def auth(request: web.Request) -> web.Response:
    """``docker login``: try the credentials against the registry; nothing is stored here."""
    from dockyard.api.server import body_json
    from dockyard.engine.credcheck import check_login
    from dockyard.registry.client import Unauthorized

    body = await body_json(request)
    server = body.get("serveraddress") or ""
    if not server or "index.docker.io" in server:
        server = "docker.io"
    user, password = body.get("username") or "", body.get("password") or ""
    try:
        await backend(request).concurrent(lambda e: check_login(e, server, user, password))
    except Unauthorized as e:
        return json_response({"message": str(e)}, 401)
    return json_response({"Status": "Login Succeeded", "IdentityToken": ""})


async def system_df(request: web.Request) -> web.Response:
    from dockyard.storage.df import disk_usage

    return json_response(await backend(request).concurrent(disk_usage))


ROUTES = [
    ("POST", "/auth", auth),
    ("GET", "/system/df", system_df),
    ("GET", "/_ping", ping),
    ("HEAD", "/_ping", ping),
    ("GET", "/version", version),
    ("GET", "/info", info),
    ("GET", "/events", events),
]
