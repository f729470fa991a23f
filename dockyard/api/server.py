"""The aiohttp application: routing (versioned and bare paths), errors as Docker's JSON, the idle timer."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web

from dockyard.errors import DockyardError, InvalidArgument

LOG = logging.getLogger("dockyard.api")
T = TypeVar("T")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

BACKEND: web.AppKey[Backend] = web.AppKey("backend")


class Backend:
    """What every handler shares: an engine per worker thread, the exec sessions, the attach hub."""

    def __init__(self, root: str | None, runroot: str | None) -> None:
        from dockyard.api.attach import AttachHub
        from dockyard.engine.execs import ExecSessions

        self.root, self.runroot = root, runroot
        self._local = threading.local()
        self._changes = threading.Lock()
        self._engines: list[Any] = []
        # Waits, log follows and attaches each hold a thread for their whole length.
        self.executor = ThreadPoolExecutor(max_workers=64, thread_name_prefix="api")
        self.execs = ExecSessions()
        self.attach = AttachHub(self)
        self.active = 0  # requests in progress, for the idle timer
        self.last_activity = time.monotonic()

    def engine(self) -> Any:
        e = getattr(self._local, "engine", None)
        if e is None:
            from dockyard.engine import Engine

            e = self._local.engine = Engine(self.root, self.runroot)
            self._engines.append(e)
        return e

    async def call(self, fn: Callable[..., T], *args: Any, **kw: Any) -> T:
        """``fn(engine, *args, **kw)`` in a worker thread, one state change at a time.

        The engine's process-wide locks (the network host lock, re-entrant per process) serialise
        dockyard *processes*, not threads of one; the CLI is one process per command, so the
        service keeps its state changes to one thread at a time as well."""
        def run() -> T:
            with self._changes:
                return fn(self.engine(), *args, **kw)

        return await asyncio.get_running_loop().run_in_executor(self.executor, run)

    async def concurrent(self, fn: Callable[..., T], *args: Any, **kw: Any) -> T:
        """``fn(engine, *args, **kw)`` in a worker thread, beside others: for calls that touch no
        process-wide lock (lists, inspects, waits, logs, exec), so a long stop does not hold them up."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, lambda: fn(self.engine(), *args, **kw))

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """A blocking call that needs no engine, in a worker thread."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
        for e in self._engines:
            with contextlib.suppress(Exception):
                e.close()


async def send_file(request: web.Request, f: Any, headers: dict[str, str]) -> web.StreamResponse:
    """Stream an open temporary file (a tar the engine wrote) from its start as the response body."""
    import contextlib

    b = backend(request)
    f.seek(0)
    resp = web.StreamResponse(headers=headers)
    await resp.prepare(request)
    with contextlib.suppress(ConnectionError):  # clients may hang up once the tar has ended
        while chunk := await b.run(f.read, 1 << 20):
            await resp.write(chunk)
        await resp.write_eof()
    return resp


def backend(request: web.Request) -> Backend:
    return request.app[BACKEND]


# -- request helpers ------------------------------------------------------------------------------
def qbool(request: web.Request, name: str, default: bool = False) -> bool:
    v = request.query.get(name)
    if v is None:
        return default
    return v.strip().lower() not in ("", "0", "false", "no")


def qint(request: web.Request, name: str, default: int | None = None) -> int | None:
    v = request.query.get(name)
    if v is None or v == "":
        return default
    try:
        return int(v)
    except ValueError:
        raise InvalidArgument(f"invalid value for {name}: {v!r}") from None


def qfilters(request: web.Request) -> dict[str, list[str]]:
    """Docker's ``filters`` query parameter: JSON {"key": ["v", ...]} or the old {"key": {"v": true}}."""
    raw = request.query.get("filters")
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except ValueError:
        raise InvalidArgument(f"invalid filters: {raw!r}") from None
    if not isinstance(data, dict):
        raise InvalidArgument(f"invalid filters: {raw!r}")
    out: dict[str, list[str]] = {}
    for k, v in data.items():
        if isinstance(v, dict):
            out[k] = [x for x, on in v.items() if on]
        elif isinstance(v, list):
            out[k] = [str(x) for x in v]
        else:
            out[k] = [str(v)]
    return out


def filter_list(flt: dict[str, list[str]]) -> list[str]:
    """The CLI's ``--filter key=value`` form the engine's list calls take."""
    return [f"{k}={v}" for k, vals in flt.items() for v in vals]


async def body_json(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except ValueError as e:
        raise InvalidArgument(f"invalid JSON body: {e}") from None
    if not isinstance(data, dict):
        raise InvalidArgument("the request body must be a JSON object")
    return data


def json_response(data: Any, status: int = 200) -> web.Response:
    # Exactly "application/json": the Docker CLI only decodes error bodies with that content type.
    return web.Response(status=status, body=json.dumps(data).encode(), headers={"Content-Type": "application/json"})


def no_content(status: int = 204) -> web.Response:
    return web.Response(status=status)


# -- middleware -----------------------------------------------------------------------------------
@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    b = backend(request)
    LOG.debug("%s %s", request.method, request.path_qs)
    b.active += 1
    try:
        return await handler(request)
    except DockyardError as e:
        LOG.info("%s %s: %s", request.method, request.path, e)
        return json_response({"message": str(e)}, e.http_status)
    except web.HTTPNotFound:
        return json_response({"message": "page not found"}, 404)
    except web.HTTPMethodNotAllowed:
        return json_response({"message": f"method {request.method} not allowed on {request.path}"}, 405)
    except (web.HTTPException, asyncio.CancelledError):
        raise
    except Exception as e:  # a bug: Docker's JSON error, so clients show it instead of an HTML page
        LOG.exception("%s %s failed", request.method, request.path)
        return json_response({"message": f"internal error: {type(e).__name__}: {e}"}, 500)
    finally:
        b.active -= 1
        b.last_activity = time.monotonic()


@web.middleware
async def headers_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    resp = await handler(request)
    if not resp.prepared:
        from dockyard import API_VERSION, __version__

        resp.headers.setdefault("Api-Version", API_VERSION)
        resp.headers.setdefault("Server", f"Dockyard/{__version__} (linux)")
        resp.headers.setdefault("Docker-Experimental", "false")
        resp.headers.setdefault("Ostype", "linux")
    return resp


def make_app(root: str | None = None, runroot: str | None = None) -> web.Application:
    from dockyard.api import build, containers, images, objects, system

    app = web.Application(middlewares=[headers_middleware, errors_middleware], client_max_size=1 << 40)
    app[BACKEND] = Backend(root, runroot)
    routes: list[tuple[str, str, Handler]] = []
    for mod in (system, containers, images, objects, build):
        routes += mod.ROUTES
    for method, path, handler in routes:
        # Docker clients put the API version first (/v1.51/containers/json); curl users often don't.
        for prefix in ("", "/v{version:[0-9]+\\.[0-9]+}"):
            app.router.add_route(method, prefix + path, handler)

    async def on_cleanup(app: web.Application) -> None:
        await app[BACKEND].attach.close()
        app[BACKEND].close()

    app.on_cleanup.append(on_cleanup)
    return app


# -- serving --------------------------------------------------------------------------------------
def default_uri() -> str:
    if os.geteuid() == 0:
        return "unix:///run/dockyard/dockyard.sock"
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    base = xdg if xdg and os.path.isdir(xdg) else f"/tmp/dockyard-run-{os.geteuid()}"
    return f"unix://{base}/dockyard/dockyard.sock"


def socket_path(uri: str) -> Path:
    if not uri.startswith("unix://"):
        raise InvalidArgument(f"unsupported listen address {uri!r}: only unix:///path sockets are served")
    path = uri[len("unix://"):]
    if not path.startswith("/"):
        raise InvalidArgument(f"the socket path in {uri!r} must be absolute")
    if len(path.encode()) > 107:
        raise InvalidArgument(f"socket path too long (unix sockets hold 107 bytes): {path}")
    return Path(path)


def serve(uri: str, idle_timeout: float, root: str | None = None, runroot: str | None = None) -> None:
    """Listen on ``uri`` until SIGINT/SIGTERM, or until ``idle_timeout`` seconds pass with no request
    in progress (0: never), as ``podman system service --time`` does."""
    path = socket_path(uri)
    asyncio.run(_serve(path, idle_timeout, root, runroot))


async def _serve(path: Path, idle_timeout: float, root: str | None, runroot: str | None) -> None:
    import socket

    app = make_app(root, runroot)
    # One line per request at --log-level info/debug, none otherwise.
    access = logging.getLogger("aiohttp.access")
    runner = web.AppRunner(app, access_log=access if access.isEnabledFor(logging.INFO) else None,
                           handle_signals=False)
    await runner.setup()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with contextlib.suppress(FileNotFoundError):
        if path.is_socket():
            _refuse_if_live(path)
            path.unlink()
        elif path.exists():
            raise InvalidArgument(f"{path} exists and is not a socket")
    # Whoever can reach the socket controls the engine, as with Docker's: owner only (the socket
    # is created with the umask's mode, tightened before anyone can connect).
    old = os.umask(0o177)
    try:
        sock.bind(str(path))
    finally:
        os.umask(old)
    site = web.SockSite(runner, sock)
    await site.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    b = app[BACKEND]
    try:
        while not stop.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)
            if idle_timeout > 0 and b.active == 0 and b.attach.idle() and \
                    time.monotonic() - b.last_activity >= idle_timeout:
                break
    finally:
        with contextlib.suppress(OSError):
            path.unlink()
        await runner.cleanup()


def _refuse_if_live(path: Path) -> None:
    import socket

    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(str(path))
    except OSError:
        return  # stale socket of a service that is gone
    finally:
        s.close()
    from dockyard.errors import Conflict

    raise Conflict(f"another service is already listening on {path}")
