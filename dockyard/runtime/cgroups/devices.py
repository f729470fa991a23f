"""Device access rules for cgroup v2: an eBPF BPF_PROG_TYPE_CGROUP_DEVICE program attached to the cgroup.

v1 has devices.allow/devices.deny files; v2 replaced them with a BPF hook that sees every open/mknod
of a device node as (type, major, minor, access) and returns 1 to allow or 0 to deny.  The OCI rule
list is ordered and later rules override earlier ones (v1 semantics), so the program tests the rules
last-first and the first match decides; no match keeps the v1 default of "allow".
"""

from __future__ import annotations

import ctypes
import os
import struct

from dockyard.errors import InvalidArgument, Unsupported

_BPF_NR = {"x86_64": 321, "aarch64": 280, "s390x": 351, "ppc64le": 361, "riscv64": 280}
_BPF_PROG_LOAD = 5
_BPF_PROG_ATTACH = 8
_BPF_PROG_TYPE_CGROUP_DEVICE = 15
_BPF_CGROUP_DEVICE = 6
_BPF_F_ALLOW_MULTI = 2

# struct bpf_cgroup_dev_ctx { u32 access_type /* access << 16 | type */; u32 major; u32 minor; }
_DEV_BLOCK, _DEV_CHAR = 1, 2
_ACC = {"m": 1, "r": 2, "w": 4}

# eBPF opcodes used below
_LDXW = 0x61      # dst = *(u32 *)(src + off)
_MOV64_X = 0xBF   # dst = src
_MOV64_K = 0xB7   # dst = imm
_AND32_K = 0x54   # dst &= imm
_RSH32_K = 0x74   # dst >>= imm
_JNE_K = 0x55     # if dst != imm: pc += off
_EXIT = 0x95


def _insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


def _rule_code(rule: dict) -> list[bytes]:
    """Instructions that return the rule's verdict when it matches and fall through otherwise."""
    typ = rule.get("type") or "a"
    if typ not in ("a", "b", "c"):
        raise InvalidArgument(f"invalid device rule type {typ!r} (want a, b or c)")
    access = rule.get("access") or "rwm"
    if set(access) - set(_ACC):
        raise InvalidArgument(f"invalid device rule access {access!r} (want a combination of r, w, m)")
    mask = sum(_ACC[c] for c in set(access))
    major, minor = rule.get("major"), rule.get("minor")
    tests: list[tuple[int, int, int]] = []  # (register, imm, kind) kind 0: compare, 1: access subset
    if typ != "a":
        tests.append((3, _DEV_BLOCK if typ == "b" else _DEV_CHAR, 0))
    if mask != 7:
        tests.append((4, mask, 1))
    if major not in (None, -1):
        tests.append((5, int(major), 0))
    if minor not in (None, -1):
        tests.append((6, int(minor), 0))
    # Lay out the tests; every failed test jumps over the rest of this block (the verdict is 2 insns).
    body: list[list[bytes]] = []
    for reg, imm, kind in tests:
        if kind == 0:
            body.append([_insn(_JNE_K, reg, off=0, imm=imm)])
        else:  # the requested access must be a subset of the rule's: (r4 & ~mask) == 0
            body.append([_insn(_MOV64_X, 7, 4), _insn(_AND32_K, 7, imm=~imm & 0xFFFF), _insn(_JNE_K, 7, off=0, imm=0)])
    verdict = [_insn(_MOV64_K, 0, imm=1 if rule.get("allow") else 0), _insn(_EXIT)]
    out: list[bytes] = []
    remaining = sum(len(b) for b in body) + len(verdict)
    for block in body:
        remaining -= len(block)
        jump = block[-1]
        code, regs, _off, imm = struct.unpack("<BBhi", jump)
        out += block[:-1] + [struct.pack("<BBhi", code, regs, remaining, imm)]
    return out + verdict


def program(rules: list[dict]) -> bytes:
    """Compile OCI ``linux.resources.devices`` into eBPF instructions."""
    code = [
        _insn(_LDXW, 2, 1, 0),                 # r2 = ctx->access_type
        _insn(_MOV64_X, 3, 2), _insn(_AND32_K, 3, imm=0xFFFF),  # r3 = type
        _insn(_MOV64_X, 4, 2), _insn(_RSH32_K, 4, imm=16),      # r4 = access
        _insn(_LDXW, 5, 1, 4),                 # r5 = major
        _insn(_LDXW, 6, 1, 8),                 # r6 = minor
    ]
    for rule in reversed(rules):
        block = _rule_code(rule)
        code += block
        if len(block) == 2:
            # An unconditional rule (e.g. the usual leading "deny all") decides everything that reaches
            # it; the verifier refuses the unreachable code a default verdict after it would be.
            return b"".join(code)
    code += [_insn(_MOV64_K, 0, imm=1), _insn(_EXIT)]
    return b"".join(code)


def _bpf(cmd: int, attr: bytes) -> int:
    from dockyard.runtime._libc import libc

    nr = _BPF_NR.get(os.uname().machine)
    if nr is None:
        raise Unsupported(f"eBPF device filters are not supported on {os.uname().machine}")
    buf = ctypes.create_string_buffer(attr, 128)
    rv = libc.syscall(ctypes.c_long(nr), ctypes.c_int(cmd), buf, ctypes.c_uint(128))
    if rv < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return int(rv)


def attach(cgroup_dir: str, rules: list[dict]) -> None:
    """Load the device program for ``rules`` and attach it to ``cgroup_dir``."""
    insns = program(rules)
    license_buf = ctypes.create_string_buffer(b"Apache-2.0")
    log = ctypes.create_string_buffer(65536)
    insn_buf = ctypes.create_string_buffer(insns, len(insns))
    attr = struct.pack("<IIQQIIQII16s", _BPF_PROG_TYPE_CGROUP_DEVICE, len(insns) // 8,
                       ctypes.addressof(insn_buf), ctypes.addressof(license_buf), 1, len(log),
                       ctypes.addressof(log), 0, 0, b"dockyard_dev")
    try:
        prog_fd = _bpf(_BPF_PROG_LOAD, attr)
    except OSError as e:
        detail = log.value.decode(errors="replace").strip().splitlines()[:1] or [""]
        raise Unsupported(f"cannot load the cgroup v2 device filter: {e.strerror} {detail[0]}".strip()) from None
    cg_fd = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        _bpf(_BPF_PROG_ATTACH, struct.pack("<IIII", cg_fd, prog_fd, _BPF_CGROUP_DEVICE, _BPF_F_ALLOW_MULTI))
    except OSError as e:
        raise Unsupported(f"cannot attach the device filter to {cgroup_dir}: {e.strerror}") from None
    finally:
        os.close(cg_fd)
        os.close(prog_fd)
