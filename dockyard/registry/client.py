"""A client for the OCI distribution API (``/v2/``), on urllib3.

One ``RegistryClient`` talks to one registry host.  It answers ``WWW-Authenticate`` challenges
(Bearer tokens fetched per scope, or Basic), trusts the registry's certs.d CAs, falls back to plain
HTTP only for registries marked insecure (``--tls-verify=false`` or registries.conf), retries
transient failures with exponential backoff, and never holds a blob in memory: downloads are
streams the caller writes to disk, uploads read from files.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable
from typing import Any, BinaryIO

from dockyard.errors import DockyardError, InvalidArgument, NotFound

log = logging.getLogger(__name__)

MAX_MANIFEST_SIZE = 4 << 20
MANIFEST_ACCEPT = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
USER_AGENT = "dockyard/0.1"
RETRIES = 4
BACKOFF = 0.5  # seconds, doubled per retry
TRANSIENT_STATUSES = {408, 429, 500, 502, 503, 504}


class RegistryError(DockyardError):
    pass


class Unauthorized(RegistryError):
    pass


class Transient(RegistryError):
    """A failure worth retrying (connection reset, 5xx, truncated body)."""


def api_host(domain: str) -> str:
    # Docker Hub's API lives on another host than its name, like in every client.
    return "registry-1.docker.io" if domain == "docker.io" else domain


def _parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    scheme, _, rest = header.strip().partition(" ")
    params = {m.group(1).lower(): m.group(2) if m.group(2) is not None else m.group(3)
              for m in re.finditer(r'(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))', rest)}
    return scheme.lower(), params


def _retry_after(value: str | None) -> float:
    """Seconds from a Retry-After header (delta-seconds only; a date or junk means "use backoff"),
    capped so a hostile registry cannot park us for hours."""
    try:
        return min(max(float(value or 0), 0.0), 30.0)
    except ValueError:
        return 0.0


def _error_message(status: int, body: bytes) -> str:
    """The registry's own words (`errors[].message`) when it sent any, like docker does."""
    try:
        errs = json.loads(body).get("errors") or []
        msgs = [f"{e.get('code', '').lower()}: {e.get('message', '')}".strip(": ") for e in errs]
        if msgs:
            return "; ".join(msgs)
    except (ValueError, AttributeError):
        pass
    return {401: "unauthorized: authentication required", 403: "denied: requested access to the resource is denied",
            404: "not found"}.get(status, f"HTTP status {status}")


class RegistryClient:
    def __init__(self, domain: str, *, tls_verify: bool = True, insecure: bool = False,
                 credentials: tuple[str, str] | None = None, pool_size: int = 8) -> None:
        import urllib3

        from dockyard.registry.tls import ssl_context

        self.domain = domain
        self.host = api_host(domain)
        self.credentials = credentials
        # An insecure registry may be reached over HTTP or with unverified TLS, as Podman's
        # --tls-verify=false and registries.conf `insecure = true` allow.
        self.insecure = insecure or not tls_verify
        self.scheme = "https"
        self._scheme_known = False
        ctx = ssl_context(self.host, verify=not self.insecure)
        self.pool = urllib3.PoolManager(num_pools=4, maxsize=pool_size, ssl_context=ctx,
                                        retries=False, timeout=urllib3.Timeout(connect=30, read=120))
        self._lock = threading.Lock()
        self._auth_scheme: str | None = None  # "bearer" | "basic" once a challenge was seen
        self._bearer: dict[str, str] = {}  # realm/service params of the challenge
        self._tokens: dict[str, str] = {}  # scope -> token

    # -- transport ---------------------------------------------------------------------------

    def url(self, path: str) -> str:
        return f"{self.scheme}://{self.host}{path}"

    def _auth_header(self, scopes: tuple[str, ...]) -> dict[str, str]:
        if self._auth_scheme == "basic" and self.credentials:
            raw = f"{self.credentials[0]}:{self.credentials[1]}".encode()
            return {"Authorization": "Basic " + base64.b64encode(raw).decode()}
        if self._auth_scheme == "bearer":
            token = self._token(scopes)
            if token:
                return {"Authorization": "Bearer " + token}
        return {}

    def _token(self, scopes: tuple[str, ...]) -> str | None:
        key = " ".join(scopes)
        with self._lock:
            if key in self._tokens:
                return self._tokens[key]
        realm = self._bearer.get("realm")
        if not realm:
            raise RegistryError(f"{self.domain}: Bearer challenge without a realm")
        query = [("service", self._bearer["service"])] if self._bearer.get("service") else []
        query += [("scope", s) for s in scopes]
        if not scopes and self._bearer.get("scope"):
            query.append(("scope", self._bearer["scope"]))
        headers = {"User-Agent": USER_AGENT}
        if self.credentials:
            raw = f"{self.credentials[0]}:{self.credentials[1]}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(raw).decode()
        sep = "&" if "?" in realm else "?"
        r = self._send("GET", realm + (sep + urllib.parse.urlencode(query) if query else ""), headers)
        body = r.data
        if r.status in (401, 403):
            raise Unauthorized(f"unauthorized: {_error_message(r.status, body)}"
                               if r.status == 401 else _error_message(r.status, body))
        if r.status != 200:
            raise RegistryError(f"fetching token from {realm}: {_error_message(r.status, body)}")
        try:
            doc = json.loads(body)
            token = doc.get("token") or doc.get("access_token")
        except (ValueError, AttributeError):
            token = None
        if not isinstance(token, str) or not token:
            raise RegistryError(f"token server {realm} returned no token")
        with self._lock:
            self._tokens[key] = token
        return token

    def _send(self, method: str, url: str, headers: dict[str, str], body: Any = None,
              stream: bool = False) -> Any:
        import urllib3

        try:
            return self.pool.request(method, url, headers=headers, body=body, redirect=False,
                                     preload_content=not stream, decode_content=False)
        except urllib3.exceptions.SSLError as e:
            raise RegistryError(f"{method} {url}: TLS error: {e.reason if hasattr(e, 'reason') else e}; "
                                f"add the registry's CA to certs.d or use --tls-verify=false") from None
        except urllib3.exceptions.HTTPError as e:
            msg = str(e)
            # urllib3 prefixes the connection's repr; the errno text is what a user needs.
            if "Failed to establish a new connection: " in msg:
                msg = msg.split("Failed to establish a new connection: ", 1)[1]
            raise Transient(f"{method} {url}: {msg}") from None

    def _detect_scheme(self) -> None:
        """For insecure registries: HTTPS when it answers, else plain HTTP (as containers/image)."""
        if self._scheme_known:
            return
        if self.insecure:
            try:
                self._send("GET", f"https://{self.host}/v2/", {"User-Agent": USER_AGENT})
            except (Transient, RegistryError):
                self.scheme = "http"
        self._scheme_known = True

    def request(self, method: str, path: str, *, scopes: Iterable[str] = (), headers: dict[str, str] | None = None,
                body: Any = None, body_factory: Callable[[], Any] | None = None, stream: bool = False,
                ok: tuple[int, ...] = (200,), retry: bool = True) -> Any:
        """One API call with auth and retries; returns the urllib3 response (status in ``ok``)."""
        self._detect_scheme()
        scopes = tuple(scopes)
        url = path if "://" in path else self.url(path)
        attempt = 0
        authed_retry = False
        while True:
            h = {"User-Agent": USER_AGENT, **(headers or {}), **self._auth_header(scopes)}
            data = body_factory() if body_factory else body
            try:
                r = self._send(method, url, h, data, stream)
            except Transient as e:
                if not retry or attempt >= RETRIES:
                    raise RegistryError(str(e)) from None
                attempt += 1
                log.info("retrying after %s", e)
                time.sleep(BACKOFF * 2 ** (attempt - 1))
                continue
            if r.status == 401 and not authed_retry:
                challenge = r.headers.get("WWW-Authenticate", "")
                r.drain_conn()
                scheme, params = _parse_challenge(challenge)
                if scheme == "bearer":
                    self._auth_scheme, self._bearer = "bearer", params
                    with self._lock:
                        self._tokens.pop(" ".join(scopes), None)
                elif scheme == "basic" and self.credentials:
                    self._auth_scheme = "basic"
                else:
                    raise Unauthorized(f"unauthorized: authentication required for {self.domain}")
                authed_retry = True
                continue
            if r.status in TRANSIENT_STATUSES and retry and attempt < RETRIES:
                r.drain_conn()
                attempt += 1
                time.sleep(_retry_after(r.headers.get("Retry-After")) or BACKOFF * 2 ** (attempt - 1))
                continue
            if r.status in ok:
                return r
            data_ = r.data if not stream else r.read(64 << 10)
            r.release_conn()
            msg = _error_message(r.status, data_)
            if r.status == 401:
                raise Unauthorized(msg)
            if r.status == 403:
                raise Unauthorized(msg)
            if r.status == 404:
                raise NotFound(msg)
            raise RegistryError(f"{method} {urllib.parse.urlsplit(url).path}: {msg}")

    # -- API ---------------------------------------------------------------------------------

    def ping(self) -> None:
        """GET /v2/ with credentials: proves the registry is there and the credentials work."""
        self.request("GET", "/v2/")

    def get_manifest(self, repo: str, reference: str, accept: Iterable[str] = MANIFEST_ACCEPT
                     ) -> tuple[bytes, str, str]:
        """(bytes, media type, digest) of a manifest or index, size-capped and digest-checked."""
        import hashlib

        try:
            r = self.request("GET", f"/v2/{repo}/manifests/{reference}", scopes=(f"repository:{repo}:pull",),
                             headers={"Accept": ", ".join(accept)}, stream=True)
        except NotFound:
            sep = "@" if reference.startswith("sha256:") else ":"
            raise NotFound(f"manifest for {self.domain}/{repo}{sep}{reference} not found: manifest unknown") from None
        try:
            length = r.headers.get("Content-Length")
            if length and int(length) > MAX_MANIFEST_SIZE:
                raise InvalidArgument(f"manifest for {self.domain}/{repo}:{reference} is too large "
                                      f"({length} bytes, limit {MAX_MANIFEST_SIZE})")
            buf = bytearray()
            for chunk in r.stream(64 << 10):
                buf += chunk
                if len(buf) > MAX_MANIFEST_SIZE:
                    raise InvalidArgument(f"manifest for {self.domain}/{repo}:{reference} is too large "
                                          f"(over {MAX_MANIFEST_SIZE} bytes)")
        finally:
            r.release_conn()
        data = bytes(buf)
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        if reference.startswith("sha256:") and reference != digest:
            raise InvalidArgument(f"manifest digest mismatch: asked for {reference}, got {digest}")
        served = r.headers.get("Docker-Content-Digest")
        if served and served.startswith("sha256:") and served != digest:
            raise InvalidArgument(f"manifest digest mismatch: registry says {served}, content is {digest}")
        media_type = (r.headers.get("Content-Type") or "").split(";")[0].strip()
        return data, media_type, digest

    def open_blob(self, repo: str, digest: str) -> Any:
        """A streaming response for a blob; follows redirects to storage without our credentials."""
        r = self.request("GET", f"/v2/{repo}/blobs/{digest}", scopes=(f"repository:{repo}:pull",), stream=True,
                         ok=(200, 307, 302, 301, 303, 308))
        hops = 0
        while r.status in (301, 302, 303, 307, 308):
            loc = r.headers.get("Location")
            r.drain_conn()
            hops += 1
            if not loc or hops > 5:
                raise RegistryError(f"blob {digest}: bad redirect")
            url = urllib.parse.urljoin(r.geturl() or self.url("/"), loc)
            r = self._send("GET", url, {"User-Agent": USER_AGENT}, stream=True)
            if r.status not in (200, 301, 302, 303, 307, 308):
                r.drain_conn()
                raise RegistryError(f"blob {digest}: storage answered HTTP {r.status}")
        return r

    def has_blob(self, repo: str, digest: str, scopes: tuple[str, ...] | None = None) -> bool:
        try:
            r = self.request("HEAD", f"/v2/{repo}/blobs/{digest}",
                             scopes=scopes or (f"repository:{repo}:pull,push",), ok=(200,))
            r.drain_conn()
            return True
        except NotFound:
            return False

    def _push_scopes(self, repo: str, mount_from: str | None = None) -> tuple[str, ...]:
        s = (f"repository:{repo}:pull,push",)
        return s + (f"repository:{mount_from}:pull",) if mount_from else s

    def mount_blob(self, repo: str, digest: str, from_repo: str) -> bool:
        """Cross-repository mount: True when the registry linked the blob without an upload."""
        q = urllib.parse.urlencode({"mount": digest, "from": from_repo})
        r = self.request("POST", f"/v2/{repo}/blobs/uploads/?{q}", scopes=self._push_scopes(repo, from_repo),
                         ok=(201, 202))
        r.drain_conn()
        if r.status == 201:
            return True
        # 202: the registry started a normal upload instead; abandon it (a later POST starts afresh).
        loc = r.headers.get("Location")
        if loc:
            try:
                self.request("DELETE", self._abs(loc), scopes=self._push_scopes(repo), ok=(204, 200, 404),
                             retry=False).drain_conn()
            except DockyardError:
                pass
        return False

    def _abs(self, location: str) -> str:
        return urllib.parse.urljoin(self.url("/"), location)

    def upload_blob(self, repo: str, digest: str, size: int, opener: Callable[[], BinaryIO],
                    chunk_size: int | None = None, progress: Callable[[int], None] | None = None) -> None:
        """Upload a blob: monolithic (one PUT) or, with ``chunk_size``, in PATCH chunks then PUT."""
        scopes = self._push_scopes(repo)
        r = self.request("POST", f"/v2/{repo}/blobs/uploads/", scopes=scopes, ok=(202,))
        r.drain_conn()
        loc = r.headers.get("Location")
        if not loc:
            raise RegistryError(f"{self.domain}: upload started without a Location")
        loc = self._abs(loc)

        def with_digest(url: str) -> str:
            return url + ("&" if "?" in url else "?") + urllib.parse.urlencode({"digest": digest})

        if not chunk_size:
            def body() -> Any:
                return _ProgressFile(opener(), progress)
            r = self.request("PUT", with_digest(loc), scopes=scopes, body_factory=body,
                             headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)},
                             ok=(201,))
            r.drain_conn()
        else:
            # Chunks are not retried on their own: a failed PATCH leaves the upload's offset
            # unknown, so the whole blob is retried by the caller instead.
            with opener() as f:
                offset = 0
                while offset < size:
                    chunk = f.read(min(chunk_size, size - offset))
                    if not chunk:
                        raise RegistryError(f"blob {digest} shorter than its size {size}")
                    end = offset + len(chunk) - 1
                    r = self.request("PATCH", loc, scopes=scopes, body=chunk, retry=False,
                                     headers={"Content-Type": "application/octet-stream",
                                              "Content-Range": f"{offset}-{end}",
                                              "Content-Length": str(len(chunk))}, ok=(202,))
                    r.drain_conn()
                    loc = self._abs(r.headers.get("Location") or loc)
                    offset = end + 1
                    if progress:
                        progress(len(chunk))
            r = self.request("PUT", with_digest(loc), scopes=scopes, body=b"", retry=False,
                             headers={"Content-Length": "0"}, ok=(201,))
            r.drain_conn()
        got = r.headers.get("Docker-Content-Digest")
        if got and got != digest:
            raise RegistryError(f"registry stored blob as {got}, expected {digest}")

    def list_tags(self, repo: str, page_size: int = 1000, limit: int = 100_000) -> list[str]:
        """All tags of a repository, following the spec's ``Link: <...>; rel="next"`` pagination."""
        tags: list[str] = []
        path = f"/v2/{repo}/tags/list?n={page_size}"
        while path and len(tags) < limit:
            r = self.request("GET", path, scopes=(f"repository:{repo}:pull",))
            try:
                doc = json.loads(r.data)
            except ValueError:
                raise RegistryError(f"{self.domain}/{repo}: invalid tag list") from None
            page = (doc.get("tags") or []) if isinstance(doc, dict) else None
            if not isinstance(page, list) or not all(isinstance(t, str) for t in page):
                raise RegistryError(f"{self.domain}/{repo}: invalid tag list")
            tags += page
            m = re.match(r'\s*<([^>]+)>\s*;\s*rel="?next"?', r.headers.get("Link", ""))
            path = m.group(1) if m and page else ""
        return tags

    def put_manifest(self, repo: str, reference: str, data: bytes, media_type: str) -> str:
        import hashlib

        r = self.request("PUT", f"/v2/{repo}/manifests/{reference}", scopes=self._push_scopes(repo), body=data,
                         headers={"Content-Type": media_type}, ok=(201, 200))
        r.drain_conn()
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        got = r.headers.get("Docker-Content-Digest")
        if got and got != digest:
            raise RegistryError(f"registry stored manifest as {got}, expected {digest}")
        return digest

    def close(self) -> None:
        self.pool.clear()


class _ProgressFile:
    """A file wrapper counting bytes read, so an upload body reports progress as urllib3 sends it."""

    def __init__(self, f: BinaryIO, progress: Callable[[int], None] | None) -> None:
        self.f = f
        self.progress = progress

    def read(self, n: int = -1) -> bytes:
        b = self.f.read(n)
        if b and self.progress:
            self.progress(len(b))
        if not b:
            self.f.close()
        return b

    def close(self) -> None:
        self.f.close()
