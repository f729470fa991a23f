"""The HTTP side of the registry: OCI distribution v1.1 endpoints on aiohttp.

One process, one event loop.  Disk work (hashing, writing, fsync, renames, bcrypt) runs on a thread
pool so the loop keeps serving; request bodies stream to upload files in bounded chunks and blobs
go out with ``FileResponse`` (sendfile where the transport allows, Range honoured), so memory use
does not grow with blob size.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import platform
import re
import signal
import ssl
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import quote, unquote

from aiohttp import web

from dockyard.errors import DockyardError, InvalidArgument
from dockyard.registry.server.auth import Htpasswd, parse_basic
from dockyard.registry.server.config import RegistryConfig
from dockyard.registry.server.errors import RegistryError
from dockyard.registry.server.storage import (
    INDEX_TYPES,
    MANIFEST_MAX,
    OCI_INDEX,
    Storage,
    UploadWriter,
    check_digest,
    check_name,
    check_tag,
    is_digest,
)

log = logging.getLogger("dockyard.registry")

API_VERSION = "registry/2.0"
CHUNK = 512 << 10  # bytes handed to a worker thread at a time: large enough to amortise the hop
PURGE_INTERVAL = 3600.0

_ROUTES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"^(?P<name>.+)/tags/list$"), "tags"),
    (re.compile(r"^(?P<name>.+)/manifests/(?P<ref>[^/]+)$"), "manifest"),
    (re.compile(r"^(?P<name>.+)/blobs/uploads/?$"), "uploads"),
    (re.compile(r"^(?P<name>.+)/blobs/uploads/(?P<uid>[^/]+)$"), "upload"),
    (re.compile(r"^(?P<name>.+)/blobs/(?P<digest>[^/]+)$"), "blob"),
    (re.compile(r"^(?P<name>.+)/referrers/(?P<digest>[^/]+)$"), "referrers"),
]
_GOARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386", "ppc64le": "ppc64le",
           "s390x": "s390x", "riscv64": "riscv64"}


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=json.dumps(data).encode(), status=status, content_type="application/json",
                        headers=headers)


def _error(e: RegistryError, headers: dict[str, str] | None = None) -> web.Response:
    return _json(e.body(), status=e.http_status, headers=headers)


def _range(offset: int) -> str:
    # The reference answers "0-0" for an empty upload; clients expect that shape.
    return f"0-{max(offset - 1, 0)}"


def _page_size(request: web.Request) -> int | None:
    n = request.query.get("n")
    if n is None:
        return None
    if not n.isdigit():
        raise RegistryError("PAGINATION_NUMBER_INVALID", f"invalid page size n={n!r}")
    return int(n)


def _paginate(items: list[str], request: web.Request, base: str) -> tuple[list[str], dict[str, str]]:
    """Lexical pagination with ``n`` and ``last``, and a ``Link`` header when more remain."""
    last = request.query.get("last")
    if last is not None:
        items = [i for i in items if i > last]
    n = _page_size(request)
    if n is None or len(items) <= n:
        return items, {}
    page = items[:n]
    if not page:
        return page, {}
    return page, {"Link": f'<{base}?n={n}&last={quote(page[-1], safe="")}>; rel="next"'}


class Registry:
    def __init__(self, cfg: RegistryConfig) -> None:
        self.cfg = cfg
        self.storage = Storage(cfg.root)
        self.htpasswd = Htpasswd(cfg.htpasswd_path) if cfg.htpasswd_path else None
        self.pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="registry-io")
        # uid -> (lock, number of requests holding or waiting for it); entries go with their last user,
        # so requests naming made-up sessions cannot grow the table.
        self.upload_locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def _upload_lock(self, uid: str) -> AsyncIterator[None]:
        """Serialise the requests on one upload session (chunks must land in order)."""
        lock, users = self.upload_locks.get(uid, (asyncio.Lock(), 0))
        self.upload_locks[uid] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self.upload_locks[uid]
            if users == 1:
                del self.upload_locks[uid]
            else:
                self.upload_locks[uid] = (lock, users - 1)

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)

    def make_app(self) -> web.Application:
        app = web.Application(middlewares=[self.middleware], client_max_size=MANIFEST_MAX + 1)
        app.router.add_route("*", "/v2", self.dispatch)
        app.router.add_route("*", "/v2/{tail:.*}", self.dispatch)
        app.on_startup.append(self._start_purger)
        app.on_cleanup.append(self._stop)
        return app

    async def _start_purger(self, app: web.Application) -> None:
        async def loop() -> None:
            while True:
                with contextlib.suppress(OSError):
                    await self.run(self.storage.purge_uploads)
                await asyncio.sleep(PURGE_INTERVAL)

        app["purger"] = asyncio.create_task(loop())

    async def _stop(self, app: web.Application) -> None:
        app["purger"].cancel()
        self.pool.shutdown(wait=True)

    # ---- cross-cutting ----

    @web.middleware
    async def middleware(self, request: web.Request, handler: Callable[..., Any]) -> web.StreamResponse:
        try:
            if self.htpasswd is not None:
                await self._authenticate(request)
            resp = await handler(request)
        except RegistryError as e:
            headers = dict(e.headers)
            if e.code == "UNAUTHORIZED":
                realm = self.cfg.htpasswd_realm.replace('"', "")
                headers["WWW-Authenticate"] = f'Basic realm="{realm}"'
            resp = _error(e, headers)
        except web.HTTPException as e:
            code = "NOT_FOUND" if e.status == 404 else "UNSUPPORTED"
            resp = _error(RegistryError(code, e.reason, status=e.status))
        resp.headers["Docker-Distribution-API-Version"] = API_VERSION
        return resp

    async def _authenticate(self, request: web.Request) -> None:
        creds = parse_basic(request.headers.get("Authorization"))
        assert self.htpasswd is not None
        if creds is None or not await self.run(self.htpasswd.check, *creds):
            raise RegistryError("UNAUTHORIZED", "authentication required" if creds is None
                                else "invalid username or password")

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        raw = request.raw_path.split("?", 1)[0]
        # Match on the path as sent: a normalised path would turn "a/../b" into the valid name "b".
        tail = unquote(raw[len("/v2/"):]) if raw.startswith("/v2/") else ""
        method = "GET" if request.method == "HEAD" else request.method
        if tail == "":
            if method != "GET":
                raise RegistryError("UNSUPPORTED", f"{request.method} is not supported on /v2/")
            return _json({})
        if tail == "_catalog":
            if method != "GET":
                raise RegistryError("UNSUPPORTED", f"{request.method} is not supported on _catalog")
            return await self.catalog(request)
        for pattern, kind in _ROUTES:
            m = pattern.match(tail)
            if m:
                handler = getattr(self, f"{kind}_{method.lower()}", None)
                if handler is None:
                    raise RegistryError("UNSUPPORTED", f"{request.method} is not supported on {kind}")
                args = m.groupdict()
                check_name(args.pop("name"))
                return await handler(request, m.group("name"), **args)
        raise RegistryError("NOT_FOUND", f"no such endpoint {raw}")

    def _delete_allowed(self) -> None:
        if not self.cfg.delete_enabled:
            raise RegistryError("UNSUPPORTED", "deletion is disabled (set storage.delete.enabled, "
                                "REGISTRY_STORAGE_DELETE_ENABLED=true)")

    # ---- content discovery ----

    async def catalog(self, request: web.Request) -> web.Response:
        repos = await self.run(self.storage.repositories)
        page, headers = _paginate(repos, request, "/v2/_catalog")
        return _json({"repositories": page}, headers=headers)

    async def tags_get(self, request: web.Request, name: str) -> web.Response:
        tags = await self.run(self.storage.tags, name)
        page, headers = _paginate(tags, request, f"/v2/{name}/tags/list")
        return _json({"name": name, "tags": page}, headers=headers)

    async def referrers_get(self, request: web.Request, name: str, digest: str) -> web.Response:
        check_digest(digest)
        artifact_type = request.query.get("artifactType")
        descs = await self.run(self.storage.referrers, name, digest, artifact_type)
        headers = {"OCI-Filters-Applied": "artifactType"} if artifact_type else {}
        body = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": descs}
        resp = _json(body, headers=headers)
        resp.content_type = OCI_INDEX
        return resp

    # ---- manifests ----

    async def manifest_get(self, request: web.Request, name: str, ref: str) -> web.Response:
        if not is_digest(ref):
            try:
                check_tag(ref)
            except RegistryError:
                raise RegistryError("MANIFEST_UNKNOWN", f"manifest unknown: invalid tag {ref!r}") from None
        digest, media_type, body = await self.run(self.storage.get_manifest, name, ref)
        accepted = {a.split(";", 1)[0].strip() for h in request.headers.getall("Accept", [])
                    for a in h.split(",")} - {""}
        if accepted and media_type not in accepted and not accepted & {"*/*", "application/*"}:
            child = self._platform_child(body) if media_type in INDEX_TYPES else None
            if child is None:
                raise RegistryError("MANIFEST_UNKNOWN", f"manifest {name}:{ref} is {media_type}, which the "
                                    f"client does not accept", {"mediaType": media_type})
            digest, media_type, body = await self.run(self.storage.get_manifest, name, child)
            if media_type not in accepted:
                raise RegistryError("MANIFEST_UNKNOWN", f"no manifest of an accepted type for {name}:{ref}")
        headers = {"Docker-Content-Digest": digest, "ETag": f'"{digest}"'}
        if request.method == "HEAD":
            headers["Content-Length"] = str(len(body))
            return web.Response(status=200, headers=headers, content_type=media_type)
        return web.Response(body=body, headers=headers, content_type=media_type)

    @staticmethod
    def _platform_child(body: bytes) -> str | None:
        """The index entry for this host's platform, served to clients that cannot read indexes."""
        arch = _GOARCH.get(platform.machine(), platform.machine())
        for m in json.loads(body).get("manifests", []):
            p = m.get("platform") or {}
            if p.get("os") == "linux" and p.get("architecture") == arch:
                return str(m["digest"])
        return None

    async def manifest_put(self, request: web.Request, name: str, ref: str) -> web.Response:
        if request.content_length is not None and request.content_length > MANIFEST_MAX:
            raise RegistryError("MANIFEST_INVALID", f"manifest larger than {MANIFEST_MAX} bytes", status=413)
        parts, size = [], 0
        async for chunk in request.content.iter_any():
            size += len(chunk)
            if size > MANIFEST_MAX:  # a chunked body has no Content-Length to refuse up front
                raise RegistryError("MANIFEST_INVALID", f"manifest larger than {MANIFEST_MAX} bytes", status=413)
            parts.append(chunk)
        body = b"".join(parts)
        digest, subject = await self.run(self.storage.put_manifest, name, ref, body,
                                         request.headers.get("Content-Type", ""))
        headers = {"Location": f"/v2/{name}/manifests/{digest}", "Docker-Content-Digest": digest}
        if subject:
            headers["OCI-Subject"] = subject
        return web.Response(status=201, headers=headers)

    async def manifest_delete(self, request: web.Request, name: str, ref: str) -> web.Response:
        self._delete_allowed()
        await self.run(self.storage.delete_manifest, name, ref)
        return web.Response(status=202)

    # ---- blobs ----

    async def blob_get(self, request: web.Request, name: str, digest: str) -> web.StreamResponse:
        path = await self.run(self.storage.blob_path, name, digest)
        headers = {"Docker-Content-Digest": digest, "Content-Type": "application/octet-stream",
                   "Cache-Control": "max-age=31536000", "ETag": f'"{digest}"'}
        return web.FileResponse(path, chunk_size=CHUNK, headers=headers)

    async def blob_delete(self, request: web.Request, name: str, digest: str) -> web.Response:
        self._delete_allowed()
        check_digest(digest)
        await self.run(self.storage.delete_blob, name, digest)
        return web.Response(status=202)

    # ---- uploads ----

    def _upload_headers(self, name: str, uid: str, offset: int) -> dict[str, str]:
        return {"Location": f"/v2/{name}/blobs/uploads/{uid}", "Range": _range(offset),
                "Docker-Upload-UUID": uid}

    async def uploads_post(self, request: web.Request, name: str) -> web.Response:
        mount = request.query.get("mount")
        if mount is not None:
            check_digest(mount)
            source = request.query.get("from")
            if await self.run(self.storage.mount_blob, name, mount, source):
                return web.Response(status=201, headers={"Location": f"/v2/{name}/blobs/{mount}",
                                                         "Docker-Content-Digest": mount})
            # Not mountable: the spec says to answer with an ordinary upload session instead.
        digest = request.query.get("digest")
        if digest is not None:
            check_digest(digest)
        up = await self.run(self.storage.new_upload, name)
        if digest is None:
            return web.Response(status=202, headers=self._upload_headers(name, up.uuid, 0))
        return await self._finish(request, name, up, digest)

    async def _session(self, name: str, uid: str) -> Any:
        return await self.run(self.storage.get_upload, name, uid)

    async def upload_get(self, request: web.Request, name: str, uid: str) -> web.Response:
        up = await self._session(name, uid)
        return web.Response(status=204, headers=self._upload_headers(name, uid, up.offset))

    async def upload_patch(self, request: web.Request, name: str, uid: str) -> web.Response:
        async with self._upload_lock(uid):
            up = await self._session(name, uid)
            self._check_content_range(request, name, up)
            await self._receive(request, up)
            return web.Response(status=202, headers=self._upload_headers(name, uid, up.offset))

    async def upload_put(self, request: web.Request, name: str, uid: str) -> web.Response:
        digest = request.query.get("digest")
        if digest is None:
            raise RegistryError("DIGEST_INVALID", "completing an upload needs ?digest=")
        check_digest(digest)
        async with self._upload_lock(uid):
            up = await self._session(name, uid)
            self._check_content_range(request, name, up)
            return await self._finish(request, name, up, digest)

    async def upload_delete(self, request: web.Request, name: str, uid: str) -> web.Response:
        async with self._upload_lock(uid):
            up = await self._session(name, uid)
            await self.run(self.storage.cancel_upload, up)
        return web.Response(status=204)

    def _check_content_range(self, request: web.Request, name: str, up: Any) -> None:
        cr = request.headers.get("Content-Range")
        if not cr:
            return
        m = re.fullmatch(r"(?:bytes[ =])?(\d+)-(\d+)(?:/\d+|/\*)?", cr.strip())
        if not m or int(m.group(1)) > int(m.group(2)):
            raise RegistryError("BLOB_UPLOAD_INVALID", f"invalid Content-Range {cr!r}")
        start, end = int(m.group(1)), int(m.group(2))
        length = request.content_length
        if start != up.offset or (length is not None and length != end - start + 1):
            # The spec's answer to an out-of-order chunk: 416 with where the upload really is.
            raise RegistryError("RANGE_INVALID", f"chunk {start}-{end} does not continue the upload at "
                                f"offset {up.offset}", headers=self._upload_headers(name, up.uuid, up.offset))

    async def _finish(self, request: web.Request, name: str, up: Any, digest: str) -> web.Response:
        try:
            await self._receive(request, up)
        except BaseException:
            # A monolithic push that broke off leaves nothing behind; a session keeps what it got.
            if request.method == "POST":
                await self.run(self.storage.cancel_upload, up)
            raise
        await self.run(self.storage.commit_upload, up, digest)
        return web.Response(status=201, headers={"Location": f"/v2/{name}/blobs/{digest}",
                                                 "Docker-Content-Digest": digest})

    async def _receive(self, request: web.Request, up: Any) -> None:
        """Stream the request body onto the upload; writes and hashing happen on worker threads."""
        if not request.body_exists:
            return
        loop = asyncio.get_running_loop()
        writer = await self.run(UploadWriter, up)
        pending: asyncio.Future[None] | None = None
        parts: list[bytes] = []
        size = 0
        try:
            async for chunk in request.content.iter_any():
                parts.append(chunk)
                size += len(chunk)
                if size >= CHUNK:
                    data = parts[0] if len(parts) == 1 else b"".join(parts)
                    parts, size = [], 0
                    if pending is not None:
                        await pending
                    # The next chunk is read from the socket while this one is written.
                    pending = loop.run_in_executor(self.pool, writer.write, data)
            if pending is not None:
                await pending
                pending = None
            if parts:
                await self.run(writer.write, b"".join(parts))
        finally:
            if pending is not None:
                with contextlib.suppress(Exception):
                    await asyncio.shield(pending)
            await self.run(writer.close)


def ssl_context(cfg: RegistryConfig) -> ssl.SSLContext | None:
    if not cfg.tls:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(str(cfg.tls_certificate), str(cfg.tls_key))
    except (OSError, ssl.SSLError) as e:
        raise InvalidArgument(f"cannot load TLS certificate {cfg.tls_certificate} and key {cfg.tls_key}: "
                              f"{getattr(e, 'strerror', None) or e}") from None
    return ctx


def build_app(cfg: RegistryConfig) -> web.Application:
    return Registry(cfg).make_app()


def serve(cfg: RegistryConfig, on_ready: Callable[[str], None] | None = None) -> None:
    """Serve in the foreground until SIGINT or SIGTERM."""
    host, port = cfg.host_port
    ctx = ssl_context(cfg)
    app = build_app(cfg)

    async def main() -> None:
        runner = web.AppRunner(app, access_log=log if log.isEnabledFor(logging.INFO) else None)
        await runner.setup()
        try:
            site = web.TCPSite(runner, host, port, ssl_context=ctx, reuse_address=True)
            try:
                await site.start()
            except OSError as e:
                raise DockyardError(f"cannot listen on {cfg.addr}: {e.strerror}") from None
            if on_ready:
                scheme = "https" if ctx else "http"
                on_ready(f"{scheme}://{host or '0.0.0.0'}:{port}")
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            await stop.wait()
        finally:
            await runner.cleanup()

    asyncio.run(main())
