"""Registry operations: pull, push, login, logout, manifest inspect.

Pull writes every blob into the blob store verified against its descriptor (digest and size)
before the image row is written (``ImageService.add_from_manifest``), so a failed or corrupt
download leaves no image and no wrong blob, only complete verified blobs that a later pull reuses.

Progress is reported through a callback with ``Progress`` events; the engine never prints.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dockyard.errors import DockyardError, InvalidArgument, NotFound

if TYPE_CHECKING:
    from dockyard.engine import Engine
    from dockyard.engine.images import StagedLayer
    from dockyard.image.manifest import Descriptor
    from dockyard.image.reference import Reference
    from dockyard.image.registries import RegistriesConf
    from dockyard.registry.client import RegistryClient

log = logging.getLogger(__name__)

# Docker downloads 3 layers at a time and containers/image 6; on a fast link a few streams are
# enough to saturate hashing and disk.
PARALLEL_DOWNLOADS = 6
PARALLEL_UPLOADS = 4
# Unpacking is CPU and disk work (decompress, hash, write): more threads than cores only contend.
PARALLEL_UNPACKS = max(2, min(4, os.cpu_count() or 1))
DOWNLOAD_ATTEMPTS = 3


@dataclass
class Progress:
    """One progress step for one item (a layer's short id, or "" for whole-image messages)."""

    id: str
    status: str
    current: int = 0
    total: int = 0


ProgressFn = Callable[[Progress], None]


@dataclass
class PullResult:
    reference: str  # fully qualified name pulled
    digest: str  # manifest (or index) digest, what `Digest:` shows
    image_id: str
    up_to_date: bool


@dataclass
class FetchedImage:
    manifest: bytes  # the platform manifest
    media_type: str
    config: bytes
    index: bytes | None  # the index it was picked from, if any
    digest: str  # digest of what the reference named (index or manifest)
    downloaded: list[Descriptor]  # layers that were not in the store before
    # With fetch(unpack=True): diff_id -> layer unpacked for add_from_manifest(staged=...)
    staged: dict[str, StagedLayer] = field(default_factory=dict)


@dataclass
class PushResult:
    reference: str
    digest: str
    size: int
    tag: str
    layers: list[str] = field(default_factory=list)


def short_id(digest: str) -> str:
    return digest.split(":", 1)[-1][:12]


def _media_type(data: bytes, served: str, kinds: tuple[str, ...]) -> str:
    """A document's media type: what the registry served when it is one of ``kinds``, else sniffed."""
    from dockyard.image import manifest as mf

    return mf.detect_media_type(data, served if served in kinds else None)


def _registry_domain(registry: str) -> str:
    """The registry host of a login/logout argument (``host[:port][/path]`` or a URL)."""
    from dockyard.image.reference import parse_domain

    return parse_domain(registry.split("/", 1)[0] if "://" not in registry else registry)


class _Aborted(DockyardError):
    """Another layer of the same pull failed; this download stops quietly."""


class _Meter:
    """Counts the bytes of one layer's download or unpack, reports them at most every 0.1 s (and at
    the end), and stops the transfer once the pull is aborted (raising from the read)."""

    def __init__(self, emit: ProgressFn, sid: str, status: str, total: int, report: bool = True,
                 abort: threading.Event | None = None) -> None:
        self.emit, self.sid, self.status, self.total, self.report, self.abort = emit, sid, status, total, report, abort
        self.done = 0
        self.last = 0.0

    def __call__(self, n: int) -> None:
        import time

        if self.abort is not None and self.abort.is_set():
            raise _Aborted()
        self.done += n
        now = time.monotonic()
        if self.report and (now - self.last > 0.1 or self.done == self.total):
            self.last = now
            self.emit(Progress(self.sid, self.status, self.done, self.total))


class _Counting:
    """Wraps a response so reads report progress; put_stream reads it in 1 MiB chunks."""

    def __init__(self, resp: Any, on_read: Callable[[int], None]) -> None:
        self.resp = resp
        self.on_read = on_read

    def read(self, n: int = -1) -> bytes:
        b: bytes = self.resp.read(n, decode_content=False)
        if b:
            self.on_read(len(b))
        return b


class RegistryService:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._conf: RegistriesConf | None = None

    # -- configuration -------------------------------------------------------------------

    @property
    def conf(self) -> RegistriesConf:
        if self._conf is None:
            from dockyard.image.registries import load

            self._conf = load()
        return self._conf

    def client(self, domain: str, tls_verify: bool | None = None, repo: str | None = None,
               creds: tuple[str, str] | None = None, insecure: bool | None = None) -> RegistryClient:
        from dockyard.registry import auth
        from dockyard.registry.client import RegistryClient

        if creds is None:
            found = auth.lookup(domain, repo)
            creds = (found.username, found.password) if found else None
        verify = tls_verify if tls_verify is not None else True
        if insecure is None:
            insecure = self.conf.is_insecure(domain)
        return RegistryClient(domain, tls_verify=verify, insecure=insecure,
                              credentials=creds, pool_size=PARALLEL_DOWNLOADS + 2)

    def candidates(self, name: str) -> list[Reference]:
        from dockyard.image.reference import parse

        ref = parse(name)
        out = []
        for c in self.conf.candidates(ref):
            self.conf.check_blocked(c)
            out.append(c)
        return out

    # -- pull ------------------------------------------------------------------------------

    def pull(self, name: str, *, platform: str | None = None, tls_verify: bool | None = None,
             creds: tuple[str, str] | None = None, progress: ProgressFn | None = None) -> PullResult:
        from dockyard.image.manifest import parse_platform
        from dockyard.registry.client import RegistryError

        want = parse_platform(platform)
        cands = self.candidates(name)
        errors: list[str] = []
        for i, ref in enumerate(cands):
            try:
                return self._pull_one(ref, want, tls_verify, creds, progress)
            except (NotFound, RegistryError) as e:
                # Podman tries each search registry in turn; a qualified name has one candidate.
                if i == len(cands) - 1 and len(cands) == 1:
                    raise
                errors.append(f"{ref}: {e}")
        raise NotFound(f"pulling {name}: no candidate succeeded: " + "; ".join(errors))

    def list_tags(self, name: str, *, tls_verify: bool | None = None,
                  creds: tuple[str, str] | None = None) -> list[Reference]:
        """The references of every tag of ``name``'s repository (for ``pull --all-tags``)."""
        from dockyard.image.reference import parse_any

        ref = parse_any(name)
        if ref.tag or ref.digest:
            raise InvalidArgument("tag can't be used with --all-tags/-a")
        last: DockyardError | None = None
        for cand in self.candidates(name):
            src = self.conf.rewrite(cand)
            client = self.client(src.domain, tls_verify, src.path, creds)
            try:
                return [cand.with_tag(t) for t in client.list_tags(src.path)]
            except DockyardError as e:
                last = e
            finally:
                client.close()
        assert last is not None
        raise last

    def fetch(self, ref: Reference, want: dict[str, str] | None = None, tls_verify: bool | None = None,
              creds: tuple[str, str] | None = None, progress: ProgressFn | None = None,
              unpack: bool = False) -> FetchedImage:
        """Download and verify an image's manifest, config and layers into the blob store, without
        recording an image (what ``pull`` does before committing, and what a copy needs).

        With ``unpack``, each layer the layer store lacks is also unpacked and verified against its
        diff_id as soon as its blob is complete, while the other layers download; the result's
        ``staged`` is for ``ImageService.add_from_manifest(staged=...)``, which owns it from then on
        (``ImageService.discard_staged`` if the image is not committed after all)."""
        from dockyard.registry.client import RegistryError

        emit = progress or (lambda p: None)
        sources = self.conf.sources(ref)
        for i, (src, insecure) in enumerate(sources):
            try:
                return self._fetch_from(src, insecure, want, tls_verify, creds, emit, unpack)
            except (NotFound, RegistryError) as e:
                # A mirror that lacks the image or is down: on to the next source, then the registry.
                if i == len(sources) - 1:
                    raise
                log.info("mirror %s: %s", src.domain, e)
        raise AssertionError("unreachable: sources() always ends with the registry itself")

    def _fetch_from(self, src: Reference, insecure: bool, want: dict[str, str] | None, tls_verify: bool | None,
                    creds: tuple[str, str] | None, emit: ProgressFn, unpack: bool) -> FetchedImage:
        from dockyard.image import manifest as mf

        client = self.client(src.domain, tls_verify, src.path, creds, insecure=insecure)
        try:
            data, served_type, top_digest = client.get_manifest(src.path, src.reference)
            media_type = _media_type(data, served_type, mf.MANIFEST_TYPES + mf.INDEX_TYPES)
            index_bytes = None
            if media_type in mf.INDEX_TYPES:
                index_bytes = data
                entry = mf.select_platform(mf.parse_index(data), want)
                data, served_type, _ = client.get_manifest(src.path, entry.digest)
                media_type = _media_type(data, served_type, mf.MANIFEST_TYPES)
                if media_type not in mf.MANIFEST_TYPES:
                    raise InvalidArgument(f"index entry {entry.digest} is not an image manifest")
            manifest = mf.parse_manifest(data, media_type)
            self._fetch(client, src.path, manifest.config, emit, report=False)
            config_bytes = self.engine.blobs.read(manifest.config.digest)
            diff_ids = mf.parse_config(config_bytes)["rootfs"]["diff_ids"]
            # A config whose diff_ids do not match the layers is refused by the commit; nothing to unpack.
            fetched, staged = self._fetch_layers(client, src.path, manifest.layers, emit,
                                                 diff_ids if unpack and len(diff_ids) == len(manifest.layers)
                                                 else None)
        finally:
            client.close()
        return FetchedImage(data, media_type, config_bytes, index_bytes, top_digest, fetched, staged)

    def _pull_one(self, ref: Reference, want: dict[str, str] | None, tls_verify: bool | None,
                  creds: tuple[str, str] | None, progress: ProgressFn | None) -> PullResult:
        from dockyard.image.manifest import digest_of

        emit = progress or (lambda p: None)
        emit(Progress("", f"{ref.tag or ref.digest}: Pulling from {ref.path}"))
        img = self.fetch(ref, want, tls_verify, creds, emit, unpack=True)
        images = self.engine.images
        try:
            up_to_date = self._is_current(ref, manifest_digest=digest_of(img.manifest))
            record = images.add_from_manifest(
                img.manifest, img.media_type, img.config, tags=[str(ref)] if ref.tag else [],
                index_bytes=img.index, repo=ref.name, staged=img.staged)
        finally:
            images.discard_staged(img.staged)  # only what the commit did not take over
        return PullResult(str(ref), img.digest, record.id, up_to_date)

    def _is_current(self, ref: Reference, manifest_digest: str) -> bool:
        """Whether ``ref`` already names the image this manifest describes ("Image is up to date")."""
        try:
            return self.engine.images.get(str(ref)).manifest_digest == manifest_digest
        except (NotFound, InvalidArgument):
            return False

    def _fetch_layers(self, client: RegistryClient, repo: str, layers: list[Descriptor], emit: ProgressFn,
                      diff_ids: list[str] | None = None) -> tuple[list[Descriptor], dict[str, StagedLayer]]:
        """Download the layers not in the store, in parallel; returns those downloaded.

        With ``diff_ids`` (the config's, one per layer), each layer the layer store lacks is unpacked
        as soon as its blob is complete, on a pool of its own so the downloads keep going; returns
        the staged layers too.  Any failure stops the rest and removes what was staged.
        """
        images = self.engine.images
        unpacks: dict[str, list[tuple[int, str]]] = {}  # blob digest -> (position, diff_id) to unpack
        if diff_ids is not None:
            chosen: set[str] = set()
            for i, (lay, diff_id) in enumerate(zip(layers, diff_ids, strict=True)):
                if diff_id not in chosen and images.needs_layer(diff_id):
                    chosen.add(diff_id)
                    unpacks.setdefault(lay.digest, []).append((i, diff_id))
        todo: list[Descriptor] = []
        ready: list[Descriptor] = []  # blobs present whose layer still has to be unpacked
        seen = set()
        for lay in layers:
            if lay.digest in seen:
                continue
            seen.add(lay.digest)
            if not self.engine.blobs.has(lay.digest):
                emit(Progress(short_id(lay.digest), "Pulling fs layer", 0, lay.size))
                todo.append(lay)
            elif lay.digest in unpacks:
                ready.append(lay)
            else:
                emit(Progress(short_id(lay.digest), "Already exists", lay.size, lay.size))
        staged: dict[str, StagedLayer] = {}
        if not todo and not ready:
            return todo, staged
        abort = threading.Event()
        downloads = ThreadPoolExecutor(max_workers=max(1, min(PARALLEL_DOWNLOADS, len(todo))))
        unpackers = ThreadPoolExecutor(max_workers=PARALLEL_UNPACKS)
        jobs: dict[Future[Any], Descriptor] = {}
        unpack_jobs: list[Future[StagedLayer]] = []

        def unpack(lay: Descriptor, streamed: bool = False) -> None:
            if diff_ids is not None and (streamed or lay.digest not in unpacks):
                # Unpacked as it downloaded, or already (the image came before with other compression).
                emit(Progress(short_id(lay.digest), "Pull complete", lay.size, lay.size))
            for pos, diff_id in unpacks.get(lay.digest, [])[1 if streamed else 0:]:
                f = unpackers.submit(self._unpack, lay, diff_id, pos, emit, abort)
                jobs[f] = lay
                unpack_jobs.append(f)

        ok = False
        try:
            for lay in todo:
                # A layer to unpack is unpacked as it downloads (the first use of its blob; the
                # rare other positions with the same blob are unpacked from the stored blob after).
                stream = unpacks[lay.digest][0] if lay.digest in unpacks else None
                jobs[downloads.submit(self._fetch, client, repo, lay, emit, True, abort, stream)] = lay
            for lay in ready:
                unpack(lay)
            pending = set(jobs)
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for f in done:
                    err = f.exception()
                    if err is not None:
                        raise err  # the first failure: nothing was aborted yet
                    layer = f.result()
                    if layer is not None:
                        staged[layer.info.diff_id] = layer
                    if f not in unpack_jobs:
                        before = len(unpack_jobs)
                        unpack(jobs[f], streamed=layer is not None)
                        pending.update(unpack_jobs[before:])
            ok = True
        finally:
            if not ok:
                # One bad layer (or Ctrl-C) fails the pull: stop the other downloads and unpacks at
                # their next read instead of finishing them; they remove their own temp files.
                abort.set()
            downloads.shutdown(wait=True, cancel_futures=not ok)
            unpackers.shutdown(wait=True, cancel_futures=not ok)
            if not ok:
                for f in jobs:
                    if f.done() and not f.cancelled() and f.exception() is None and f.result() is not None:
                        staged[f.result().info.diff_id] = f.result()
                images.discard_staged(staged)
        return todo, staged

    def _unpack(self, desc: Descriptor, diff_id: str, position: int, emit: ProgressFn,
                abort: threading.Event) -> StagedLayer:
        sid = short_id(desc.digest)
        layer = self.engine.images.stage_layer(desc, diff_id, position,
                                               _Meter(emit, sid, "Extracting", desc.size, abort=abort))
        emit(Progress(sid, "Pull complete", desc.size, desc.size))
        return layer

    def _fetch(self, client: RegistryClient, repo: str, desc: Descriptor, emit: ProgressFn,
               report: bool = True, abort: threading.Event | None = None,
               stage: tuple[int, str] | None = None) -> StagedLayer | None:
        """Download a blob into the store; with ``stage`` (position, diff_id), unpack it on the way
        (``ImageService.stage_download``) and return the staged layer."""
        import time

        import urllib3

        from dockyard.registry.client import BACKOFF, RegistryError, Transient

        blobs = self.engine.blobs
        if blobs.has(desc.digest) and stage is None:
            return None
        sid = short_id(desc.digest)
        layer = None
        for attempt in range(1, DOWNLOAD_ATTEMPTS + 1):
            on_read = _Meter(emit, sid, "Downloading", desc.size, report, abort)
            try:
                resp = client.open_blob(repo, desc.digest)
                try:
                    length = resp.headers.get("Content-Length")
                    if length is not None and int(length) != desc.size:
                        raise InvalidArgument(f"blob {desc.digest}: registry sends {length} bytes, "
                                              f"manifest says {desc.size}")
                    if stage is not None:
                        layer = self.engine.images.stage_download(desc, stage[1], stage[0],
                                                                  _Counting(resp, on_read))  # type: ignore[arg-type]
                    else:
                        blobs.put_stream(_Counting(resp, on_read), expected=desc.digest,  # type: ignore[arg-type]
                                         expected_size=desc.size)
                finally:
                    resp.release_conn()
                break
            except (urllib3.exceptions.HTTPError, Transient, OSError) as e:
                if attempt == DOWNLOAD_ATTEMPTS:
                    raise RegistryError(f"downloading {desc.digest}: {e}") from None
                if report:
                    emit(Progress(sid, f"Retrying in {BACKOFF * 2 ** attempt:.0f}s"))
                time.sleep(BACKOFF * 2 ** attempt)
        if report:
            emit(Progress(sid, "Download complete", desc.size, desc.size))
        return layer

    # -- push ------------------------------------------------------------------------------

    def push(self, name: str, dest: str | None = None, *, tls_verify: bool | None = None,
             creds: tuple[str, str] | None = None, progress: ProgressFn | None = None,
             chunk_size: int | None = None) -> PushResult:
        from dockyard.image import manifest as mf
        from dockyard.image.reference import parse

        emit = progress or (lambda p: None)
        record = self.engine.images.get(name)
        target = parse(dest or name)
        self.conf.check_blocked(target)
        data = record.manifest_bytes
        media_type = mf.detect_media_type(data, record.manifest_media_type or None)
        manifest = mf.parse_manifest(data, media_type)
        src = self.conf.rewrite(target)
        client = self.client(src.domain, tls_verify, src.path, creds)
        emit(Progress("", f"The push refers to repository [{target.name}]"))
        # Other names of this image on the same registry (its tags, and the repositories it was
        # pulled from) are where a blob can be mounted from instead of uploaded.
        names = [*record.repo_tags, *(d.split("@", 1)[0] for d in record.repo_digests)]
        mount_sources = list(dict.fromkeys(
            r.path for r in (self._try_parse(t) for t in names)
            if r is not None and r.domain == src.domain and r.path != src.path))
        try:
            descs = [*manifest.layers, manifest.config]
            with ThreadPoolExecutor(max_workers=PARALLEL_UPLOADS) as pool:
                futures = [pool.submit(self._push_blob, client, src.path, d, mount_sources, emit,
                                       chunk_size, d is not manifest.config) for d in descs]
                for f in futures:
                    f.result()
            digest = client.put_manifest(src.path, target.reference, data, media_type)
        finally:
            client.close()
        return PushResult(str(target), digest, len(data), target.reference,
                          [d.digest for d in manifest.layers])

    @staticmethod
    def _try_parse(s: str) -> Reference | None:
        from dockyard.image.reference import parse

        try:
            return parse(s)
        except InvalidArgument:
            return None

    def _push_blob(self, client: RegistryClient, repo: str, desc: Descriptor, mounts: list[str],
                   emit: ProgressFn, chunk_size: int | None, report: bool) -> None:
        sid = short_id(desc.digest)
        say = emit if report else (lambda p: None)
        if not self.engine.blobs.has(desc.digest):
            raise NotFound(f"blob {desc.digest} of the image is missing from the store")
        say(Progress(sid, "Preparing"))
        if client.has_blob(repo, desc.digest):
            say(Progress(sid, "Layer already exists", desc.size, desc.size))
            return
        for m in mounts:
            if client.mount_blob(repo, desc.digest, m):
                say(Progress(sid, f"Mounted from {m}", desc.size, desc.size))
                return
        done = 0
        lock = threading.Lock()

        def on(n: int) -> None:
            nonlocal done
            with lock:
                done += n
                say(Progress(sid, "Pushing", done, desc.size))

        client.upload_blob(repo, desc.digest, desc.size, lambda: self.engine.blobs.open(desc.digest),
                           chunk_size=chunk_size, progress=on)
        say(Progress(sid, "Pushed", desc.size, desc.size))

    # -- login / logout ----------------------------------------------------------------------

    def login(self, registry: str, username: str, password: str, tls_verify: bool | None = None) -> str:
        """Check the credentials against the registry, then store them; returns the auth file."""
        from dockyard.registry import auth
        from dockyard.registry.client import Unauthorized

        key = registry
        domain = _registry_domain(registry)
        if "://" in registry or "/" not in registry:
            key = domain
        if not username:
            raise InvalidArgument("username is required")
        if not password:
            raise InvalidArgument("password is required")
        client = self.client(domain, tls_verify, creds=(username, password))
        try:
            client.ping()
        except Unauthorized as e:
            raise Unauthorized(f'logging into "{domain}": invalid username/password ({e})') from None
        finally:
            client.close()
        return str(auth.store(key, username, password))

    def existing_login(self, registry: str, tls_verify: bool | None = None) -> str | None:
        """The user name of stored credentials for ``registry`` if the registry still accepts them
        (``login`` without -u/-p re-uses them, as Docker and Podman do); None otherwise."""
        from dockyard.registry import auth
        from dockyard.registry.client import Unauthorized

        domain = _registry_domain(registry)
        repo = registry.split("/", 1)[1] if "/" in registry and "://" not in registry else None
        found = auth.lookup(domain, repo)
        if not found:
            return None
        client = self.client(domain, tls_verify, creds=(found.username, found.password))
        try:
            client.ping()
            return found.username
        except Unauthorized:
            return None
        finally:
            client.close()

    def logout(self, registry: str | None = None, all_registries: bool = False) -> str:
        from dockyard.image.reference import parse_domain
        from dockyard.registry import auth

        if all_registries:
            auth.remove_all()
            return ""
        if not registry:
            raise InvalidArgument("registry must be given unless --all is used")
        key = registry if ("/" in registry and "://" not in registry) else parse_domain(registry)
        auth.remove(key)
        return key

    # -- manifest inspect -------------------------------------------------------------------

    def inspect_manifest(self, name: str, *, verbose: bool = False, tls_verify: bool | None = None,
                         creds: tuple[str, str] | None = None) -> Any:
        """The raw index or manifest as JSON; with ``verbose`` Docker's detailed form per image."""
        import base64

        from dockyard.image import manifest as mf
        from dockyard.registry.client import RegistryError

        errors: list[str] = []
        for ref in self.candidates(name):
            src = self.conf.rewrite(ref)
            client = self.client(src.domain, tls_verify, src.path, creds)
            try:
                data, served, digest = client.get_manifest(src.path, src.reference)
                media_type = _media_type(data, served, mf.MANIFEST_TYPES + mf.INDEX_TYPES)
                if not verbose:
                    return json.loads(data)

                def detail(raw: bytes, mt: str, dg: str, platform: dict[str, Any] | None,
                           name: str = ref.name) -> dict[str, Any]:
                    doc = json.loads(raw)
                    desc: dict[str, Any] = {"mediaType": mt, "digest": dg, "size": len(raw)}
                    if platform:
                        desc["platform"] = platform
                    key = "OCIManifest" if mt == mf.OCI_MANIFEST else "SchemaV2Manifest"
                    return {"Ref": f"{name}@{dg}", "Descriptor": desc,
                            "Raw": base64.b64encode(raw).decode(), key: doc}

                if media_type in mf.INDEX_TYPES:
                    out = []
                    for e in mf.parse_index(data):
                        raw, served2, dg = client.get_manifest(src.path, e.digest)
                        mt = _media_type(raw, served2, mf.MANIFEST_TYPES)
                        out.append(detail(raw, mt, dg, e.platform))
                    return out
                mf.parse_manifest(data, media_type)
                cfg = json.loads(data).get("config", {})
                plat = None
                try:
                    c = json.loads(self._small_blob(client, src.path, cfg.get("digest", ""), cfg.get("size", 0)))
                    plat = {k: v for k, v in (("architecture", c.get("architecture")), ("os", c.get("os")),
                                              ("variant", c.get("variant"))) if v}
                except (DockyardError, ValueError):
                    pass
                return detail(data, media_type, digest, plat)
            except (NotFound, RegistryError) as e:
                errors.append(f"{ref}: {e}")
            finally:
                client.close()
        if len(errors) == 1:
            raise NotFound(errors[0].split(": ", 1)[1])
        raise NotFound(f"{name}: no such manifest: " + "; ".join(errors))

    @staticmethod
    def _small_blob(client: RegistryClient, repo: str, digest: str, size: int) -> bytes:
        from dockyard.image.manifest import MAX_CONFIG_SIZE, digest_of

        if size > MAX_CONFIG_SIZE:
            raise InvalidArgument(f"config blob {digest} is too large")
        r = client.open_blob(repo, digest)
        try:
            data: bytes = r.read(MAX_CONFIG_SIZE + 1, decode_content=False)
        finally:
            r.release_conn()
        if digest_of(data) != digest:
            raise InvalidArgument(f"config blob digest mismatch for {digest}")
        return data
