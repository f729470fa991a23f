"""Process resource limits (OCI ``process.rlimits``, Docker ``--ulimit``).

Raising a hard limit needs CAP_SYS_RESOURCE in the initial user namespace.  Where that is missing
(rootless, or hosts that withhold it) the limit is clamped to the current hard limit and a warning
is returned, so a container asking for ``nofile=1048576`` still starts, as Podman does rootless.
"""

from __future__ import annotations

from dockyard.errors import InvalidArgument

RLIM_INFINITY_OCI = 2**64 - 1  # OCI and the kernel's rlim_t spelling of "unlimited"
_INF = RLIM_INFINITY_OCI

# Linux resource numbers; the names match OCI's RLIMIT_* spelling.
_RLIMITS = {
    "RLIMIT_CPU": 0, "RLIMIT_FSIZE": 1, "RLIMIT_DATA": 2, "RLIMIT_STACK": 3, "RLIMIT_CORE": 4,
    "RLIMIT_RSS": 5, "RLIMIT_NPROC": 6, "RLIMIT_NOFILE": 7, "RLIMIT_MEMLOCK": 8, "RLIMIT_AS": 9,
    "RLIMIT_LOCKS": 10, "RLIMIT_SIGPENDING": 11, "RLIMIT_MSGQUEUE": 12, "RLIMIT_NICE": 13,
    "RLIMIT_RTPRIO": 14, "RLIMIT_RTTIME": 15,
}
# The names Docker's --ulimit accepts (go-units), without the RLIMIT_ prefix.
ULIMIT_NAMES = ("core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile", "nproc",
                "rss", "rtprio", "rttime", "sigpending", "stack")


def _norm(v: int) -> int:
    """A limit as the kernel's rlim_t: anything at or above 2**63 (or negative) is unlimited."""
    return _INF if v >= 2**63 or v < 0 else v


def _show(v: int) -> str:
    return "unlimited" if v == _INF else str(v)


def _resource(entry: dict) -> tuple[str, int]:
    typ = str(entry.get("type", ""))
    try:
        return typ, _RLIMITS[typ.upper()]
    except KeyError:
        raise InvalidArgument(f"unknown rlimit type: {typ!r}") from None


def _prlimit(res: int, new: tuple[int, int] | None = None) -> tuple[int, int]:
    """prlimit(2) on the calling process: sets ``new`` (soft, hard) if given, returns the old limits.

    Through the runtime's libc handle rather than the `resource` module, whose extension module the
    container init would otherwise load on every start."""
    import ctypes

    from dockyard.runtime._libc import check, libc

    pair = ctypes.c_uint64 * 2
    old = pair()
    check(libc.prlimit(0, res, pair(*new) if new else None, old), "setrlimit")
    return old[0], old[1]


def apply(rlimits: list[dict] | None) -> list[str]:
    """Set each rlimit of the calling process; returns warnings for limits that had to be clamped."""
    warnings: list[str] = []
    entries = []
    for e in rlimits or []:
        typ, res = _resource(e)
        try:
            soft, hard = _norm(int(e["soft"])), _norm(int(e["hard"]))
        except (KeyError, TypeError, ValueError):
            raise InvalidArgument(f"rlimit {typ} needs integer soft and hard values") from None
        if soft > hard:
            raise InvalidArgument(f"rlimit {typ}: soft limit {_show(soft)} exceeds hard limit {_show(hard)}")
        entries.append((typ, res, soft, hard))
    for typ, res, soft, hard in entries:
        try:
            _prlimit(res, (soft, hard))
            continue
        except PermissionError:  # raising the hard limit needs CAP_SYS_RESOURCE
            pass
        _cur_soft, cur_hard = _prlimit(res)
        new_hard = min(hard, cur_hard)
        new_soft = min(soft, new_hard)
        _prlimit(res, (new_soft, new_hard))
        warnings.append(
            f"rlimit {typ}: cannot raise hard limit to {_show(hard)} (current hard limit {_show(cur_hard)}, "
            f"no CAP_SYS_RESOURCE); using soft {_show(new_soft)}, hard {_show(new_hard)}")
    return warnings


def _ulimit_value(text: str, spec: str) -> int:
    t = text.strip().lower()
    if t in ("unlimited", "-1"):
        return RLIM_INFINITY_OCI
    try:
        v = int(t)
    except ValueError:
        raise InvalidArgument(f"invalid ulimit value {text!r} in {spec!r}") from None
    if v < 0:
        raise InvalidArgument(f"invalid ulimit value {text!r} in {spec!r}")
    return v


def parse_ulimit(spec: str) -> dict:
    """Docker's ``--ulimit name=soft[:hard]`` -> an OCI rlimit entry ``{type, soft, hard}``."""
    name, sep, values = spec.partition("=")
    if not sep or not values:
        raise InvalidArgument(f"invalid ulimit argument: {spec!r} (want name=soft[:hard])")
    name = name.strip().lower()
    if name not in ULIMIT_NAMES:
        raise InvalidArgument(f"invalid ulimit type: {name}")
    soft_s, sep, hard_s = values.partition(":")
    soft = _ulimit_value(soft_s, spec)
    hard = _ulimit_value(hard_s, spec) if sep else soft
    if soft > hard:
        raise InvalidArgument(f"ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}")
    return {"type": "RLIMIT_" + name.upper(), "soft": soft, "hard": hard}
