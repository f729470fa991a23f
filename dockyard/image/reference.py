"""Image references, parsed and normalized exactly as Docker's distribution/reference does.

Grammar (from distribution/reference)::

    reference        := name [ ":" tag ] [ "@" digest ]
    name             := [domain '/'] remote-name
    domain           := host [':' port-number]
    host             := domain-name | IPv4address | '[' IPv6address ']'
    path-component   := alpha-numeric [separator alpha-numeric]*
    separator        := /[_.]|__|[-]+/
    tag              := /[\\w][\\w.-]{0,127}/
    digest           := algorithm ":" hex

Normalization: a first component is a registry only if it contains ``.`` or ``:``, is ``localhost``
or has upper-case letters; otherwise the registry is ``docker.io`` and a single-component Docker Hub
path gets ``library/``.  A name without tag or digest gets ``latest``.

``Reference.short_name`` keeps the name as typed when it had no registry, so Podman-style short-name
resolution (registries.conf aliases and search registries) can qualify it for other registries too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from dockyard.errors import InvalidArgument

DEFAULT_DOMAIN = "docker.io"
LEGACY_DOMAIN = "index.docker.io"
OFFICIAL_PREFIX = "library/"
DEFAULT_TAG = "latest"
NAME_TOTAL_MAX = 255

_ALNUM = r"[a-z0-9]+"
_SEP = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEP}{_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_NAME = rf"{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*"
_IPV6 = r"\[(?:[a-fA-F0-9:]+)\]"
_HOST = rf"(?:{_DOMAIN_NAME}|{_IPV6})"
_DOMAIN = rf"{_HOST}(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][0-9A-Fa-f]{32,}"
_REMOTE = rf"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
_NAME = rf"(?:{_DOMAIN}/)?{_REMOTE}"

_REFERENCE_RE = re.compile(rf"^({_NAME})(?::({_TAG}))?(?:@({_DIGEST}))?$")
_NAME_RE = re.compile(rf"^(?:({_DOMAIN})/)?({_REMOTE})$")
_TAG_RE = re.compile(rf"^{_TAG}$")
_DOMAIN_RE = re.compile(rf"^{_DOMAIN}$")
_IDENTIFIER_RE = re.compile(r"^[a-f0-9]{64}$")
_DIGEST_LENGTHS = {"sha256": 64, "sha384": 96, "sha512": 128}

ERR_FORMAT = "invalid reference format"


@dataclass(frozen=True)
class Reference:
    domain: str
    path: str
    tag: str | None = None
    digest: str | None = None
    # The name as typed (no registry, no tag) when the input was a short name like "alpine" or
    # "myorg/app"; None when the input named its registry.  Not part of equality.
    short_name: str | None = field(default=None, compare=False, repr=False)

    @property
    def name(self) -> str:
        return f"{self.domain}/{self.path}"

    @property
    def is_short(self) -> bool:
        return self.short_name is not None

    def __str__(self) -> str:
        return self._suffixed(self.name)

    def _suffixed(self, name: str) -> str:
        return name + (":" + self.tag if self.tag else "") + ("@" + self.digest if self.digest else "")

    def familiar_name(self) -> str:
        """Docker's short display name: ``alpine``, ``user/app``, ``quay.io/x/y``."""
        if self.domain == DEFAULT_DOMAIN:
            if self.path.startswith(OFFICIAL_PREFIX) and "/" not in self.path[len(OFFICIAL_PREFIX):]:
                return self.path[len(OFFICIAL_PREFIX):]
            return self.path
        return self.name

    def familiar(self) -> str:
        return self._suffixed(self.familiar_name())

    @property
    def reference(self) -> str:
        """What the registry API addresses: the digest when pinned, else the tag."""
        return self.digest or self.tag or DEFAULT_TAG

    def with_tag(self, tag: str) -> Reference:
        if not _TAG_RE.match(tag):
            raise InvalidArgument(f"invalid tag format: {tag!r}")
        return replace(self, tag=tag, digest=None)

    def with_digest(self, digest: str) -> Reference:
        return replace(self, digest=check_digest(digest))

    def with_domain(self, domain: str) -> Reference:
        """The same short name qualified with another registry (Podman's search registries)."""
        path = self.short_name if self.short_name is not None else self.path
        if domain == DEFAULT_DOMAIN and "/" not in path:
            path = OFFICIAL_PREFIX + path
        return Reference(domain, path, self.tag, self.digest)

    def without_tag(self) -> Reference:
        return Reference(self.domain, self.path, None, self.digest, self.short_name)


def check_digest(digest: str) -> str:
    algo, sep, hexpart = digest.partition(":")
    if not sep or not re.match(rf"^{_DIGEST}$", digest):
        raise InvalidArgument(f"invalid digest format: {digest!r}")
    want = _DIGEST_LENGTHS.get(algo)
    if want is None:
        raise InvalidArgument(f"unsupported digest algorithm: {algo}")
    if len(hexpart) != want or hexpart.lower() != hexpart:
        raise InvalidArgument(f"invalid checksum digest length: {digest!r}")
    return digest


def _split_domain(name: str) -> tuple[str, str, bool]:
    """(domain, remote, explicit) as distribution/reference's splitDockerDomain."""
    first, slash, rest = name.partition("/")
    if not slash:
        return DEFAULT_DOMAIN, OFFICIAL_PREFIX + name, False
    if first == "localhost":
        domain, remote, explicit = first, rest, True
    elif first == LEGACY_DOMAIN:
        domain, remote, explicit = DEFAULT_DOMAIN, rest, True
    elif "." in first or ":" in first or first.lower() != first:
        domain, remote, explicit = first, rest, True
    else:
        domain, remote, explicit = DEFAULT_DOMAIN, name, False
    if domain == DEFAULT_DOMAIN and "/" not in remote:
        remote = OFFICIAL_PREFIX + remote
    return domain, remote, explicit


def parse_any(s: str) -> Reference:
    """Parse without adding a default tag (``alpine`` keeps ``tag=None``)."""
    if not s:
        raise InvalidArgument(f"{ERR_FORMAT}: repository name must have at least one component")
    if _IDENTIFIER_RE.match(s):
        raise InvalidArgument(f"invalid repository name ({s}), cannot specify 64-byte hexadecimal strings")
    domain, remainder, explicit = _split_domain(s)
    remote = remainder.split("@", 1)[0].split(":", 1)[0]
    if remote.lower() != remote:
        raise InvalidArgument(f"{ERR_FORMAT}: repository name ({remote}) must be lowercase")
    full = f"{domain}/{remainder}"
    m = _REFERENCE_RE.match(full)
    if not m:
        raise InvalidArgument(f"{ERR_FORMAT}: {s!r}")
    name, tag, digest = m.group(1), m.group(2), m.group(3)
    if len(name) > NAME_TOTAL_MAX:
        raise InvalidArgument(f"{ERR_FORMAT}: repository name must not be more than {NAME_TOTAL_MAX} characters")
    nm = _NAME_RE.match(name)
    if not nm or nm.group(1) != domain:
        raise InvalidArgument(f"{ERR_FORMAT}: {s!r}")
    if digest:
        check_digest(digest)
    short = None
    if not explicit:
        short = s.split("@", 1)[0]
        if ":" in short:
            short = short.rsplit(":", 1)[0]
    return Reference(domain, nm.group(2), tag, digest, short)


def parse(s: str) -> Reference:
    """Parse and normalize like ``docker pull``: ``alpine`` -> ``docker.io/library/alpine:latest``."""
    ref = parse_any(s)
    if ref.tag is None and ref.digest is None:
        ref = replace(ref, tag=DEFAULT_TAG)
    return ref


def normalize(s: str) -> str:
    """The fully qualified string form of ``s``."""
    return str(parse(s))


def parse_domain(s: str) -> str:
    """A registry host as given to ``login``/``logout`` (``localhost:5000``, ``docker.io``).

    Accepts a scheme and a trailing path like Docker does (``https://host/v1/``) and drops them.
    """
    host = s
    for scheme in ("https://", "http://"):
        if host.startswith(scheme):
            host = host[len(scheme):]
    host = host.split("/", 1)[0]
    if host == LEGACY_DOMAIN or host == "registry-1.docker.io":
        host = DEFAULT_DOMAIN
    if not host or not _DOMAIN_RE.match(host):
        raise InvalidArgument(f"invalid registry {s!r}")
    return host
