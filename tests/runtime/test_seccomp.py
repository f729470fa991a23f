"""Seccomp filters loaded into real children that then exec busybox (or call the kernel directly)."""

from __future__ import annotations

import http.server
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading

import pytest

from dockyard.errors import InvalidArgument, Unsupported
from dockyard.runtime import seccomp
from dockyard.runtime.capabilities import DEFAULT_CAPS
from tests.helpers import BUSYBOX, REPO

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="loading a filter without no_new_privs needs root")


def run_child(body: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    code = "import os, sys, json\nfrom dockyard.runtime import seccomp\n" + textwrap.dedent(body)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, env=env)


def run_filtered(profile: dict | None, script: str, nnp: bool = False) -> subprocess.CompletedProcess[str]:
    """Load ``profile`` in a child, then exec ``busybox sh -c script``."""
    return run_child(f"""
        seccomp.load(json.loads({json.dumps(profile)!r}), {nnp!r})
        os.execv({BUSYBOX!r}, ["sh", "-c", {script!r}])
    """)


def allow_all_but(*rules: dict) -> dict:
    return {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
            "syscalls": list(rules)}


def test_errno_rule_denies_mkdir_only(tmp_path):
    prof = allow_all_but({"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"})
    p = run_filtered(prof, f"mkdir {tmp_path}/d; echo mkdir=$?; touch {tmp_path}/f && echo touch-ok; ls {tmp_path}")
    assert "Operation not permitted" in p.stderr
    assert "mkdir=1" in p.stdout and "touch-ok" in p.stdout
    assert not (tmp_path / "d").exists() and (tmp_path / "f").exists()


def test_errno_ret_is_honoured(tmp_path):
    prof = allow_all_but({"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13})
    p = run_filtered(prof, f"mkdir {tmp_path}/d")
    assert p.returncode != 0 and "Permission denied" in p.stderr


def test_default_errno_ret_for_the_default_action(tmp_path):
    # the default profile with mkdir taken out of its allowlist and ENOSYS as the default errno
    prof = seccomp.default_profile()
    prof["defaultErrnoRet"] = 38
    for rule in prof["syscalls"]:
        rule["names"] = [n for n in rule["names"] if n not in ("mkdir", "mkdirat")]
    p = run_filtered(prof, f"mkdir {tmp_path}/d")
    assert "Function not implemented" in p.stderr, p.stderr


def test_argument_filtered_rule(tmp_path):
    # chmod(path, mode) and fchmodat(dirfd, path, mode): deny only when the mode is exactly 0700
    cond = {"value": 0o777, "valueTwo": 0o700, "op": "SCMP_CMP_MASKED_EQ"}
    prof = allow_all_but({"names": ["chmod"], "action": "SCMP_ACT_ERRNO", "args": [dict(cond, index=1)]},
                         {"names": ["fchmodat", "fchmodat2"], "action": "SCMP_ACT_ERRNO",
                          "args": [dict(cond, index=2)]})
    f = tmp_path / "f"
    f.write_text("x")
    p = run_filtered(prof, f"chmod 755 {f} && echo ok-755; chmod 700 {f}; echo rc=$?; stat -c %a {f}")
    assert "ok-755" in p.stdout
    assert "rc=1" in p.stdout and "Operation not permitted" in p.stderr
    assert p.stdout.split()[-1] == "755"


def test_same_argument_twice_becomes_or_rules(tmp_path):
    # two comparisons of one argument cannot be ANDed by libseccomp; like runc they become two rules
    prof = allow_all_but({"names": ["chmod", "fchmodat"], "action": "SCMP_ACT_ERRNO", "args": [
        {"index": 1, "value": 0o700, "op": "SCMP_CMP_EQ"}, {"index": 1, "value": 0o600, "op": "SCMP_CMP_EQ"}]})
    f = tmp_path / "f"
    f.write_text("x")
    p = run_filtered(prof, f"chmod 700 {f}; echo rc=$?; chmod 600 {f}; echo rc=$?; chmod 644 {f}; echo rc=$?")
    assert p.stdout.split() == ["rc=1", "rc=1", "rc=0"]


@pytest.mark.parametrize("action", ["SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD"])
def test_kill_action_kills_with_sigsys(tmp_path, action):
    prof = allow_all_but({"names": ["mkdir", "mkdirat"], "action": action})
    p = run_child(f"""
        seccomp.load(json.loads({json.dumps(prof)!r}), False)
        os.execv({BUSYBOX!r}, ["mkdir", {str(tmp_path / "d")!r}])
    """)
    assert p.returncode == -signal.SIGSYS
    assert not (tmp_path / "d").exists()


def test_log_and_allow_actions_let_the_call_through(tmp_path):
    prof = allow_all_but({"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_LOG"})
    prof["flags"] = ["SECCOMP_FILTER_FLAG_LOG"]
    p = run_filtered(prof, f"mkdir {tmp_path}/d")
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "d").is_dir()


def test_no_new_privileges_is_set_only_when_asked():
    for nnp, want in ((True, "1"), (False, "0")):
        p = run_filtered(allow_all_but(), "grep -E 'NoNewPrivs|Seccomp:' /proc/self/status", nnp=nnp)
        got = dict(line.split(":\t") for line in p.stdout.splitlines())
        assert got["NoNewPrivs"] == want and got["Seccomp"] == "2"
    p = run_filtered(None, "grep -E 'NoNewPrivs|Seccomp:' /proc/self/status", nnp=True)
    got = dict(line.split(":\t") for line in p.stdout.splitlines())
    assert got["NoNewPrivs"] == "1" and got["Seccomp"] == "0"


def test_unknown_syscalls_are_skipped_but_bad_actions_and_ops_refused():
    seccomp.validate(allow_all_but({"names": ["no_such_syscall_xyz", "mkdir"], "action": "SCMP_ACT_ERRNO"}))
    with pytest.raises(InvalidArgument, match="unknown seccomp action: 'SCMP_ACT_EXPLODE'"):
        seccomp.validate(allow_all_but({"names": ["mkdir"], "action": "SCMP_ACT_EXPLODE"}))
    with pytest.raises(InvalidArgument, match="unknown seccomp operator 'SCMP_CMP_ROUGHLY'"):
        seccomp.validate(allow_all_but({"names": ["mkdir"], "action": "SCMP_ACT_ERRNO",
                                        "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_ROUGHLY"}]}))
    with pytest.raises(InvalidArgument, match="unknown seccomp architecture"):
        seccomp.validate({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_PDP11"]})
    with pytest.raises(Unsupported, match="SCMP_ACT_NOTIFY"):
        seccomp.validate(allow_all_but({"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}))


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def http_dir(tmp_path):
    (tmp_path / "hello.txt").write_text("hello from the host\n")
    handler = lambda *a, **kw: _Quiet(*a, directory=str(tmp_path), **kw)  # noqa: E731
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}"
    finally:
        srv.shutdown()
        srv.server_close()


def test_default_profile_runs_ordinary_programs(tmp_path, http_dir):
    p = run_filtered(seccomp.default_profile(), f"""
        ls / >/dev/null && echo ls-ok
        cat /proc/self/status | grep -q Seccomp && echo cat-ok
        mkdir {tmp_path}/d && echo > {tmp_path}/d/f && rm -r {tmp_path}/d && echo fs-ok
        (sleep 0; echo sub-ok) | cat
        wget -q -O - {http_dir}/hello.txt
    """, nnp=True)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split("\n")[:4] == ["ls-ok", "cat-ok", "fs-ok", "sub-ok"]
    assert "hello from the host" in p.stdout


def test_default_profile_denies_namespace_and_mount_calls():
    # the child is still root with CAP_SYS_ADMIN: only the filter stands in the way
    p = run_filtered(seccomp.default_profile(), """
        unshare -m true; echo unshare=$?
        mount -t tmpfs none /mnt; echo mount=$?
    """)
    assert "unshare=1" in p.stdout and "mount=" in p.stdout and "mount=0" not in p.stdout
    assert "Operation not permitted" in p.stderr
    # with CAP_SYS_ADMIN in the container's set the same profile allows them
    p = run_filtered(seccomp.default_profile(DEFAULT_CAPS + ["CAP_SYS_ADMIN"]), "unshare -m true; echo unshare=$?")
    assert "unshare=0" in p.stdout, p.stderr


def test_default_profile_denies_keyring_and_hides_clone3():
    nrs = {"x86_64": (248, 250, 435), "aarch64": (217, 219, 435)}.get(os.uname().machine)
    if nrs is None:
        pytest.skip("syscall numbers only listed for x86_64/aarch64")
    add_key, keyctl, clone3 = nrs
    body = f"""
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        PROFILE
        out = []
        for nr in ({add_key}, {keyctl}, {clone3}):
            libc.syscall(ctypes.c_long(nr), 0, 0, 0, 0, 0)
            out.append(ctypes.get_errno())
        print(out)
    """
    unfiltered = run_child(body.replace("PROFILE", "pass"))
    filtered = run_child(body.replace("PROFILE", "seccomp.load(seccomp.default_profile(), True)"))
    assert filtered.returncode == 0, filtered.stderr
    assert eval(filtered.stdout) == [1, 1, 38]  # EPERM, EPERM, ENOSYS (so libc falls back to clone)
    assert eval(unfiltered.stdout) != [1, 1, 38]


def test_docker_profile_resolution():
    prof = {
        "defaultAction": "SCMP_ACT_ERRNO",
        "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86"]},
                    {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]}],
        "syscalls": [
            {"names": ["read"], "action": "SCMP_ACT_ALLOW"},
            {"name": "write", "action": "SCMP_ACT_ALLOW"},
            {"names": ["mount"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
            {"names": ["clone"], "action": "SCMP_ACT_ALLOW", "excludes": {"caps": ["CAP_SYS_ADMIN"]},
             "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_MASKED_EQ"}]},
            {"names": ["arch_prctl"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["amd64"]}},
            {"names": ["cacheflush"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["arm64"]}},
            {"names": ["ptrace"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "4.8"}},
            {"names": ["future"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "99.0"}},
        ]}
    plain = seccomp.docker_profile_to_oci(prof, ["CHOWN"])
    names = [n for r in plain["syscalls"] for n in r["names"]]
    assert "mount" not in names and "clone" in names and "future" not in names and "ptrace" in names
    assert names[:2] == ["read", "write"]
    admin = seccomp.docker_profile_to_oci(prof, ["CAP_SYS_ADMIN"])
    admin_names = [n for r in admin["syscalls"] for n in r["names"]]
    assert "mount" in admin_names and "clone" not in admin_names
    if os.uname().machine == "x86_64":
        assert plain["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"]
        assert "arch_prctl" in names and "cacheflush" not in names
    seccomp.validate(plain)
    with pytest.raises(InvalidArgument, match="defaultAction"):
        seccomp.docker_profile_to_oci({"syscalls": []}, [])


def test_default_profile_shape():
    prof = seccomp.default_profile()
    assert prof["defaultAction"] == "SCMP_ACT_ERRNO" and prof["defaultErrnoRet"] == 1
    allowed = {n for r in prof["syscalls"] if r["action"] == "SCMP_ACT_ALLOW" and not r.get("args")
               for n in r["names"]}
    assert {"read", "write", "execve", "openat", "chroot", "ptrace"} <= allowed
    assert not {"mount", "unshare", "setns", "add_key", "keyctl", "reboot", "init_module", "bpf"} & allowed
    clone = [r for r in prof["syscalls"] if r["names"] == ["clone"]]
    assert clone and clone[0]["args"][0]["op"] == "SCMP_CMP_MASKED_EQ"
    seccomp.validate(prof)


def test_docker_format_is_never_applied_literally(tmp_path):
    raw = json.loads((REPO / "dockyard/runtime/seccomp_default.json").read_text())
    with pytest.raises(InvalidArgument, match="Docker format"):
        seccomp.validate(raw)
    f = tmp_path / "profile.json"
    f.write_text(json.dumps(raw))
    assert seccomp.profile_from_file(str(f), DEFAULT_CAPS) == seccomp.default_profile()
    # an OCI-format file passes through unchanged apart from normalisation
    oci = allow_all_but({"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"})
    f.write_text(json.dumps(oci))
    assert seccomp.profile_from_file(str(f), DEFAULT_CAPS)["syscalls"] == oci["syscalls"]
    f.write_text("{not json")
    with pytest.raises(InvalidArgument, match="opening seccomp profile"):
        seccomp.profile_from_file(str(f), DEFAULT_CAPS)


def test_trap_and_trace_actions(tmp_path):
    trap = allow_all_but({"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_TRAP"})
    p = run_child(f"""
        seccomp.load(json.loads({json.dumps(trap)!r}), False)
        os.execv({BUSYBOX!r}, ["mkdir", {str(tmp_path / "d")!r}])
    """)
    assert p.returncode == -signal.SIGSYS
    # with no tracer attached the kernel answers a TRACE rule with ENOSYS
    trace = allow_all_but({"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_TRACE", "errnoRet": 7})
    p = run_filtered(trace, f"mkdir {tmp_path}/d")
    assert "Function not implemented" in p.stderr
    assert not (tmp_path / "d").exists()


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="raw x86_64 syscall numbers")
def test_syscalls_newer_than_the_profile_get_enosys():
    # fchmodat2 (452) is newer than every syscall the default profile names: ENOSYS lets libc fall
    # back to fchmodat.  kexec_load (246) is older and simply not allowed: EPERM.  1000 does not exist.
    body = """
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        PROFILE
        out = []
        for nr in (452, 246, 1000):
            libc.syscall(ctypes.c_long(nr), -1, 0, 0, 0, 0)
            out.append(ctypes.get_errno())
        print(out)
        os.execv(BUSYBOX, ["sh", "-c", "touch /tmp/.dy-$$; chmod 600 /tmp/.dy-$$ && stat -c %a /tmp/.dy-$$; rm /tmp/.dy-$$"])
    """.replace("BUSYBOX", repr(BUSYBOX))
    p = run_child(body.replace("PROFILE", "seccomp.load(seccomp.default_profile(), True)"))
    assert p.returncode == 0, p.stderr
    errnos, mode = p.stdout.split("\n")[:2]
    assert eval(errnos) == [38, 1, 38]
    assert mode == "600"
    # a default-allow profile has nothing to fall back from: no stub
    p = run_child(body.replace("PROFILE", "seccomp.load({'defaultAction': 'SCMP_ACT_ALLOW'}, True)"))
    assert eval(p.stdout.split("\n")[0])[1] != 1


def test_compiled_programs_are_cached_and_reusable(tmp_path, tmp_path_factory):
    cache = tmp_path_factory.mktemp("bpf-cache")
    prof = allow_all_but({"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"})
    first = seccomp.compile_cached(prof, str(cache))
    assert len(os.listdir(cache)) == 1 and first == seccomp.compile_filter(prof)
    assert seccomp.compile_cached(prof, str(cache)) == first
    other = dict(prof, defaultAction="SCMP_ACT_LOG")
    seccomp.compile_cached(other, str(cache))
    assert len(os.listdir(cache)) == 2
    # a cache others can write to is not trusted (nor written)
    shared = tmp_path_factory.mktemp("shared-cache")
    os.chmod(shared, 0o777)
    assert seccomp.compile_cached(prof, str(shared)) == first and os.listdir(shared) == []
    # the precompiled program is what gets installed
    p = run_child(f"""
        prof = json.loads({json.dumps(prof)!r})
        prog = seccomp.compile_cached(prof, {str(cache)!r})
        seccomp.load(prof, True, compiled=prog)
        os.execv({BUSYBOX!r}, ["mkdir", {str(tmp_path / "d")!r}])
    """)
    assert "Operation not permitted" in p.stderr and not (tmp_path / "d").exists()
