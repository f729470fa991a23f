"""Seccomp filters from OCI ``linux.seccomp`` objects, compiled to BPF by libseccomp (via ctypes).

libseccomp builds the filter; dockyard exports its BPF, puts a small ENOSYS stub in front (see
``_enosys_stub``) and installs it with the seccomp(2) system call itself.

Order in the container init (as runc): without ``no_new_privileges`` the filter must be loaded while
the process still holds CAP_SYS_ADMIN (before the capability drop); with it, ``load`` sets
PR_SET_NO_NEW_PRIVS first and may run last, just before execve, so the filter need not allow the
runtime's own set-up calls.

libseccomp is opened when this module is imported, so ``load`` works in an init that has already
pivoted into the container's root filesystem (where the host's libseccomp.so is out of reach).
"""

from __future__ import annotations

import ctypes
import os
import struct
from functools import lru_cache

from dockyard.errors import InvalidArgument, Unsupported
from dockyard.runtime._libc import prctl, syscall

# Every container with a seccomp profile imports this module; json, typing and hashlib would cost
# more than the rest of its start-up, so they are left to the paths that need them.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

PR_SET_NO_NEW_PRIVS = 38

_ACT_KILL_PROCESS = 0x80000000
_ACT_KILL_THREAD = 0x00000000
_ACT_TRAP = 0x00030000
_ACT_ERRNO = 0x00050000
_ACT_TRACE = 0x7FF00000
_ACT_LOG = 0x7FFC0000
_ACT_ALLOW = 0x7FFF0000

ACTIONS = ("SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_TRAP", "SCMP_ACT_ERRNO",
           "SCMP_ACT_TRACE", "SCMP_ACT_ALLOW", "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY")

# enum scmp_compare
_OPS = {"SCMP_CMP_NE": 1, "SCMP_CMP_LT": 2, "SCMP_CMP_LE": 3, "SCMP_CMP_EQ": 4, "SCMP_CMP_GE": 5,
        "SCMP_CMP_GT": 6, "SCMP_CMP_MASKED_EQ": 7}

_SYSCALL_MAX_ARGS = 6
_NR_SCMP_ERROR = -1
_EPERM = 1


class _ArgCmp(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int), ("datum_a", ctypes.c_uint64),
                ("datum_b", ctypes.c_uint64)]


def _open() -> ctypes.CDLL | None:
    try:
        lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)
    except OSError:
        return None
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    lib.seccomp_release.restype = None
    lib.seccomp_arch_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
    lib.seccomp_arch_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_arch_resolve_name.restype = ctypes.c_uint32
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_syscall_resolve_name.restype = ctypes.c_int
    lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint,
                                           ctypes.POINTER(_ArgCmp)]
    lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.seccomp_arch_native.restype = ctypes.c_uint32
    lib.seccomp_syscall_resolve_name_arch.argtypes = [ctypes.c_uint32, ctypes.c_char_p]
    lib.seccomp_syscall_resolve_name_arch.restype = ctypes.c_int
    return lib


_LIB = _open()


def _lib() -> ctypes.CDLL:
    if _LIB is None:
        raise Unsupported("seccomp needs libseccomp (libseccomp.so.2), which is not installed")
    return _LIB


def _rc(rv: int, what: str) -> None:
    if rv < 0:
        raise OSError(-rv, f"libseccomp {what}: {os.strerror(-rv)}")


def _action(name: Any, errno_ret: Any, default_errno: int) -> int:
    if not isinstance(name, str) or name not in ACTIONS:
        raise InvalidArgument(f"unknown seccomp action: {name!r}")
    ret = default_errno if errno_ret is None else int(errno_ret)
    if name in ("SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD"):
        return _ACT_KILL_THREAD
    if name == "SCMP_ACT_KILL_PROCESS":
        return _ACT_KILL_PROCESS
    if name == "SCMP_ACT_TRAP":
        return _ACT_TRAP
    if name == "SCMP_ACT_ERRNO":
        return _ACT_ERRNO | (ret & 0xFFFF)
    if name == "SCMP_ACT_TRACE":
        return _ACT_TRACE | (ret & 0xFFFF)
    if name == "SCMP_ACT_LOG":
        return _ACT_LOG
    if name == "SCMP_ACT_ALLOW":
        return _ACT_ALLOW
    raise Unsupported("seccomp action SCMP_ACT_NOTIFY needs a seccomp listener, which dockyard does not provide")


def _arch_token(lib: ctypes.CDLL, arch: str) -> int:
    short = arch.removeprefix("SCMP_ARCH_").lower()
    token = lib.seccomp_arch_resolve_name(short.encode())
    if not token:
        raise InvalidArgument(f"unknown seccomp architecture: {arch!r}")
    return int(token)


def _conditions(args: list[dict], syscall_name: str) -> list[_ArgCmp]:
    out = []
    for a in args:
        op = a.get("op")
        if op not in _OPS:
            raise InvalidArgument(f"unknown seccomp operator {op!r} in the rule for {syscall_name}")
        index = int(a.get("index", 0))
        if not 0 <= index < _SYSCALL_MAX_ARGS:
            raise InvalidArgument(f"seccomp argument index {index} out of range in the rule for {syscall_name}")
        out.append(_ArgCmp(index, _OPS[op], int(a.get("value", 0)) & 0xFFFFFFFFFFFFFFFF,
                           int(a.get("valueTwo", 0)) & 0xFFFFFFFFFFFFFFFF))
    return out


def _refuse_docker_format(seccomp: dict) -> None:
    # Applied literally, a Docker-format profile would grant its capability-conditional rules to every
    # container; it has to be resolved for the container's capabilities first.
    docker_only = "archMap" in seccomp or any(
        isinstance(r, dict) and ("includes" in r or "excludes" in r) for r in seccomp.get("syscalls") or [])
    if docker_only:
        raise InvalidArgument("seccomp profile is in Docker format (archMap/includes/excludes): "
                              "resolve it with docker_profile_to_oci() first")


def _compile(lib: ctypes.CDLL, ctx: int, seccomp: dict) -> set[int]:
    """Build the filter in ``ctx``; returns the architecture tokens it covers."""
    _refuse_docker_format(seccomp)
    default = _action(seccomp.get("defaultAction"), seccomp.get("defaultErrnoRet"), _EPERM)
    for flag in seccomp.get("flags") or []:
        if flag not in _SECCOMP_FLAGS:
            raise InvalidArgument(f"unsupported seccomp flag: {flag!r}")
    arches = {int(lib.seccomp_arch_native())}
    for arch in seccomp.get("architectures") or []:
        token = _arch_token(lib, arch)
        rv = lib.seccomp_arch_add(ctx, token)
        if rv < 0 and -rv != 17:  # EEXIST: the native architecture is always present
            _rc(rv, f"arch_add({arch})")
        arches.add(token)
    for rule in seccomp.get("syscalls") or []:
        names = rule.get("names") or ([rule["name"]] if rule.get("name") else [])
        errno_ret = rule.get("errnoRet")
        action = _action(rule.get("action"), errno_ret, _EPERM)
        if action == default:
            # libseccomp refuses rules that repeat the default action; they change nothing anyway.
            continue
        conds = _conditions(rule.get("args") or [], ",".join(names))
        per_index = [c.arg for c in conds]
        # libseccomp cannot AND two comparisons of the same argument; like runc, fall back to one
        # rule per comparison (OR) in that case.
        groups = [[c] for c in conds] if len(set(per_index)) != len(per_index) else [conds]
        for name in names:
            nr = lib.seccomp_syscall_resolve_name(name.encode())
            if nr == _NR_SCMP_ERROR:
                continue  # unknown to this libseccomp: skipped, as runc does
            for group in groups:
                arr = (_ArgCmp * max(1, len(group)))(*group)
                _rc(lib.seccomp_rule_add_array(ctx, action, nr, len(group), arr), f"rule_add({name})")
    return arches


# The kernel's audit architecture values, which libseccomp uses as its architecture tokens.
_AUDIT_ARCH_X86_64 = 0xC000003E
_SCMP_ARCH_X32 = 0x4000003E
_X32_SYSCALL_BIT = 0x40000000
_SECCOMP_SET_MODE_FILTER = 1
_SECCOMP_FLAGS = {"SECCOMP_FILTER_FLAG_TSYNC": 1, "SECCOMP_FILTER_FLAG_LOG": 2,
                  "SECCOMP_FILTER_FLAG_SPEC_ALLOW": 4}
_ENOSYS = 38
# classic BPF opcodes for the stub
_LD_W_ABS, _JEQ_K, _JGT_K, _JSET_K, _RET_K = 0x20, 0x15, 0x25, 0x45, 0x06


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def _bpf(code: int, jt: int = 0, jf: int = 0, k: int = 0) -> bytes:
    return struct.pack("<HBBI", code, jt, jf, k)


def _enosys_stub(lib: ctypes.CDLL, seccomp: dict, arches: set[int]) -> bytes:
    """BPF run before the profile: a syscall numbered above every syscall the profile names gets ENOSYS.

    Such a syscall is newer than the profile, and ENOSYS ("not implemented") makes libc fall back to
    the older call it replaces, where the default EPERM would make the program fail.  runc does the
    same; without it, for example, faccessat2 broke every glibc 2.33 image under older profiles.
    """
    names = {n for r in seccomp.get("syscalls") or [] for n in (r.get("names") or [r.get("name")]) if n}
    blocks: list[list[tuple[int, int, int, int]]] = []  # (code, jt, jf, k); -1 in jt/jf = "to the end"
    for arch in sorted(arches):
        nrs = [lib.seccomp_syscall_resolve_name_arch(arch, n.encode()) for n in names]
        known = [nr for nr in nrs if nr >= 0]
        if not known or arch == _SCMP_ARCH_X32:
            continue  # nothing to compare against, or x32 (its calls arrive as x86_64 with a marker bit)
        top = max(nr & ~_X32_SYSCALL_BIT for nr in known)
        block = [(_JEQ_K, 0, 0, arch), (_LD_W_ABS, 0, 0, 0)]
        if arch == _AUDIT_ARCH_X86_64:
            block.append((_JSET_K, -1, 0, _X32_SYSCALL_BIT))
        block += [(_JGT_K, 0, -1, top), (_RET_K, 0, 0, _ACT_ERRNO | _ENOSYS)]
        # a failed arch test skips the rest of its block, leaving A = arch for the next test
        block[0] = (_JEQ_K, 0, len(block) - 1, arch)
        blocks.append(block)
    insns = [(_LD_W_ABS, 0, 0, 4)] + [i for b in blocks for i in b]
    out = []
    for pos, (code, jt, jf, k) in enumerate(insns):
        to_end = len(insns) - pos - 1
        out.append(_bpf(code, to_end if jt == -1 else jt, to_end if jf == -1 else jf, k))
    return b"".join(out)


def _export(lib: ctypes.CDLL, ctx: int) -> bytes:
    fd = os.memfd_create("dockyard-seccomp", os.MFD_CLOEXEC)
    try:
        _rc(lib.seccomp_export_bpf(ctx, fd), "export_bpf")
        os.lseek(fd, 0, os.SEEK_SET)
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _install(prog: bytes, flags: list[str]) -> None:
    buf = ctypes.create_string_buffer(prog, len(prog))
    fprog = _SockFprog(len(prog) // 8, ctypes.addressof(buf))
    bits = 0
    for flag in flags:
        bits |= _SECCOMP_FLAGS[flag]
    syscall("seccomp", _SECCOMP_SET_MODE_FILTER, ctypes.c_uint(bits), ctypes.byref(fprog))


def compile_filter(seccomp: dict) -> bytes:
    """The classic-BPF program (ENOSYS stub + libseccomp's filter) for an OCI seccomp object."""
    lib = _lib()
    ctx = lib.seccomp_init(_action(seccomp.get("defaultAction"), seccomp.get("defaultErrnoRet"), _EPERM))
    if not ctx:
        raise InvalidArgument("libseccomp rejected the seccomp default action")
    try:
        arches = _compile(lib, ctx, seccomp)
        prog = _export(lib, ctx)
        if seccomp.get("defaultAction") not in ("SCMP_ACT_ALLOW", "SCMP_ACT_LOG"):
            prog = _enosys_stub(lib, seccomp, arches) + prog
        return prog
    finally:
        lib.seccomp_release(ctx)


def validate(seccomp: dict) -> None:
    """Compile without loading, so the engine can reject a bad profile before starting anything."""
    compile_filter(seccomp)


def compile_cached(seccomp: dict, cache_dir: str) -> bytes:
    """``compile_filter`` through a cache of programs in ``cache_dir``.

    Generating the BPF for Docker's default profile takes 15-25 ms; nearly every container uses the
    same profile, so the runtime compiles it once per libseccomp/kernel/profile and reuses the bytes.
    """
    try:
        from _sha256 import sha256  # the interpreter's own SHA-256: hashlib would load OpenSSL's libcrypto
    except ImportError:
        from hashlib import sha256

    from dockyard.runtime import jsonfast

    class _Version(ctypes.Structure):
        _fields_ = [("major", ctypes.c_uint), ("minor", ctypes.c_uint), ("micro", ctypes.c_uint)]

    lib = _lib()
    lib.seccomp_version.restype = ctypes.POINTER(_Version)
    v = lib.seccomp_version().contents
    u = os.uname()
    key = sha256(jsonfast.dumps([seccomp, v.major, v.minor, v.micro, u.release, u.machine],
                                sort_keys=True).encode()).hexdigest()
    path = os.path.join(cache_dir, key + ".bpf")
    os.makedirs(cache_dir, mode=0o700, exist_ok=True)
    st = os.stat(cache_dir)
    if st.st_uid != os.geteuid() or st.st_mode & 0o022:
        # Whoever can write there could swap in a weaker filter: do not trust it.
        return compile_filter(seccomp)
    try:
        with open(path, "rb") as f:
            prog = f.read()
        if prog and len(prog) % 8 == 0:
            return prog
    except OSError:
        pass
    prog = compile_filter(seccomp)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "wb") as out:
        out.write(prog)
    os.replace(tmp, path)
    return prog


def load(seccomp: dict | None, no_new_privileges: bool, compiled: bytes | None = None) -> None:
    """Set no_new_privs when asked, then install the filter (if any) into the calling process.

    ``compiled`` is ``compile_filter(seccomp)`` done earlier (e.g. in the parent before fork, or from
    ``compile_cached``); the flags still come from ``seccomp``.
    """
    if no_new_privileges:
        prctl(PR_SET_NO_NEW_PRIVS, 1)
    if not seccomp:
        return
    for flag in seccomp.get("flags") or []:
        if flag not in _SECCOMP_FLAGS:
            raise InvalidArgument(f"unsupported seccomp flag: {flag!r}")
    _install(compiled if compiled is not None else compile_filter(seccomp), list(seccomp.get("flags") or []))


def _kernel_at_least(minimum: str) -> bool:
    def nums(s: str) -> tuple[int, ...]:
        parts = []
        for p in s.split("-")[0].split(".")[:3]:
            digits = "".join(ch for ch in p if ch.isdigit())
            parts.append(int(digits or 0))
        return tuple(parts)

    return nums(os.uname().release) >= nums(minimum)


def docker_profile_to_oci(profile: dict, caps: list[str]) -> dict:
    """Resolve a Docker-format profile (archMap, includes/excludes) into an OCI seccomp object for ``caps``."""
    from dockyard import host
    from dockyard.runtime.capabilities import name as cap_name
    from dockyard.runtime.capabilities import parse as cap_parse

    if not isinstance(profile, dict) or "defaultAction" not in profile:
        raise InvalidArgument("seccomp profile has no defaultAction")
    have = {cap_name(cap_parse(c)) for c in caps}
    arch = host.go_arch()
    native = {"amd64": "SCMP_ARCH_X86_64", "arm64": "SCMP_ARCH_AARCH64", "386": "SCMP_ARCH_X86",
              "arm": "SCMP_ARCH_ARM", "s390x": "SCMP_ARCH_S390X", "ppc64le": "SCMP_ARCH_PPC64LE",
              "riscv64": "SCMP_ARCH_RISCV64"}.get(arch)
    out: dict[str, Any] = {"defaultAction": profile["defaultAction"]}
    if profile.get("defaultErrnoRet") is not None:
        out["defaultErrnoRet"] = profile["defaultErrnoRet"]
    if profile.get("architectures"):
        if profile.get("archMap"):
            raise InvalidArgument("seccomp profile has both architectures and archMap")
        out["architectures"] = list(profile["architectures"])
    else:
        archs: list[str] = []
        for entry in profile.get("archMap") or []:
            if native is not None and entry.get("architecture") == native:
                archs = [native] + list(entry.get("subArchitectures") or [])
        out["architectures"] = archs
    for key in ("flags", "listenerPath", "listenerMetadata"):
        if profile.get(key):
            out[key] = profile[key]
    rules = []
    for call in profile.get("syscalls") or []:
        inc, exc = call.get("includes") or {}, call.get("excludes") or {}
        if inc.get("arches") and arch not in inc["arches"]:
            continue
        if inc.get("caps") and not all(cap_name(cap_parse(c)) in have for c in inc["caps"]):
            continue
        if inc.get("minKernel") and not _kernel_at_least(str(inc["minKernel"])):
            continue
        if exc.get("arches") and arch in exc["arches"]:
            continue
        if exc.get("caps") and any(cap_name(cap_parse(c)) in have for c in exc["caps"]):
            continue
        names = list(call.get("names") or ([call["name"]] if call.get("name") else []))
        if not names:
            raise InvalidArgument("seccomp profile has a syscall rule without names")
        rule: dict[str, Any] = {"names": names, "action": call.get("action")}
        if call.get("errnoRet") is not None:
            rule["errnoRet"] = call["errnoRet"]
        if call.get("args"):
            rule["args"] = [{"index": a.get("index", 0), "value": a.get("value", 0),
                             "valueTwo": a.get("valueTwo", 0), "op": a.get("op")} for a in call["args"]]
        rules.append(rule)
    out["syscalls"] = rules
    return out


def profile_from_file(path: str, caps: list[str]) -> dict:
    """``--security-opt seccomp=FILE``: a Docker- or OCI-format JSON profile as an OCI object for ``caps``."""
    import json

    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        raise InvalidArgument(f"opening seccomp profile ({path}) failed: {e}") from None
    if not isinstance(data, dict):
        raise InvalidArgument(f"seccomp profile {path} is not a JSON object")
    profile = docker_profile_to_oci(data, caps)
    validate(profile)
    return profile


def default_profile(caps: list[str] | None = None) -> dict:
    """Docker's default seccomp behaviour as an OCI object, resolved for ``caps`` (default: Docker's set)."""
    from dockyard.runtime.capabilities import DEFAULT_CAPS

    return docker_profile_to_oci(_default_data(), DEFAULT_CAPS if caps is None else caps)


@lru_cache(maxsize=1)
def _default_data() -> dict:
    import json

    with open(os.path.join(os.path.dirname(__file__), "seccomp_default.json")) as f:
        data: dict = json.load(f)
    return data
