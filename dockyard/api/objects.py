"""Networks and volumes: Docker's /networks/... and /volumes/... endpoints."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from dockyard.api.server import backend, body_json, json_response, no_content, qbool, qfilters
from dockyard.errors import InvalidArgument


# -- networks -------------------------------------------------------------------------------------
async def networks_list(request: web.Request) -> web.Response:
    flt = qfilters(request)
    return json_response(await backend(request).concurrent(lambda e: e.networks.list(flt)))


async def network_inspect(request: web.Request) -> web.Response:
    ref = request.match_info["id"]
    return json_response(await backend(request).concurrent(lambda e: e.networks.inspect(ref)))


async def network_create(request: web.Request) -> web.Response:
    body = await body_json(request)
    name = body.get("Name")
    if not name:
        raise InvalidArgument("network name is required")
    ipam = [c for c in ((body.get("IPAM") or {}).get("Config") or []) if c]
    if len(ipam) > 1:
        raise InvalidArgument("only one IPAM config (one IPv4 subnet) per network is supported")
    cfg: dict[str, Any] = ipam[0] if ipam else {}
    kw = {"driver": body.get("Driver") or "bridge", "subnet": cfg.get("Subnet") or None,
          "gateway": cfg.get("Gateway") or None, "ip_range": cfg.get("IPRange") or None,
          "internal": bool(body.get("Internal")), "labels": body.get("Labels") or {},
          "options": body.get("Options") or {}}
    net = await backend(request).call(lambda e: e.networks.create(name, **kw))
    return json_response({"Id": net["Id"], "Warning": ""}, 201)


async def network_remove(request: web.Request) -> web.Response:
    ref = request.match_info["id"]
    await backend(request).call(lambda e: e.networks.remove(ref))
    return no_content()


async def network_connect(request: web.Request) -> web.Response:
    ref = request.match_info["id"]
    body = await body_json(request)
    container = body.get("Container")
    if not container:
        raise InvalidArgument("Container is required")
    ep = body.get("EndpointConfig") or {}
    aliases = list(ep.get("Aliases") or [])
    ip = (ep.get("IPAMConfig") or {}).get("IPv4Address") or None
    await backend(request).call(lambda e: e.networks.connect(ref, container, aliases=aliases, ip=ip))
    return web.Response(status=200)


async def network_disconnect(request: web.Request) -> web.Response:
    ref = request.match_info["id"]
    body = await body_json(request)
    container = body.get("Container")
    if not container:
        raise InvalidArgument("Container is required")
    force = bool(body.get("Force"))
    await backend(request).call(lambda e: e.networks.disconnect(ref, container, force=force))
    return web.Response(status=200)


async def networks_prune(request: web.Request) -> web.Response:
    flt = qfilters(request)
    removed = await backend(request).call(lambda e: e.networks.prune(flt))
    return json_response({"NetworksDeleted": removed or None})


# -- volumes --------------------------------------------------------------------------------------
async def volumes_list(request: web.Request) -> web.Response:
    flt = qfilters(request)
    vols = await backend(request).concurrent(lambda e: e.volumes.list_volumes(flt))
    return json_response({"Volumes": vols, "Warnings": []})


async def volume_create(request: web.Request) -> web.Response:
    body = await body_json(request)
    name = body.get("Name") or None
    driver = body.get("Driver") or "local"
    labels, opts = body.get("Labels") or {}, body.get("DriverOpts") or {}
    vol = await backend(request).call(lambda e: e.volumes.create(name, driver, labels, opts))
    return json_response(vol, 201)


async def volume_inspect(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    return json_response(await backend(request).concurrent(lambda e: e.volumes.inspect(name)))


async def volume_remove(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    force = qbool(request, "force")
    await backend(request).call(lambda e: e.volumes.remove(name, force=force))
    return no_content()


async def volumes_prune(request: web.Request) -> web.Response:
    flt = qfilters(request)
    # API 1.42+: only anonymous volumes unless all=true is asked for.
    all_volumes = (flt.pop("all", ["false"]) or ["false"])[0].lower() in ("1", "true")
    removed, space = await backend(request).call(lambda e: e.volumes.prune(flt, all_volumes=all_volumes))
    return json_response({"VolumesDeleted": removed or None, "SpaceReclaimed": space})


ROUTES = [
    ("GET", "/networks", networks_list),
    ("POST", "/networks/create", network_create),
    ("POST", "/networks/prune", networks_prune),
    ("GET", "/networks/{id}", network_inspect),
    ("DELETE", "/networks/{id}", network_remove),
    ("POST", "/networks/{id}/connect", network_connect),
    ("POST", "/networks/{id}/disconnect", network_disconnect),
    ("GET", "/volumes", volumes_list),
    ("POST", "/volumes/create", volume_create),
    ("POST", "/volumes/prune", volumes_prune),
    ("GET", "/volumes/{name}", volume_inspect),
    ("DELETE", "/volumes/{name}", volume_remove),
]
