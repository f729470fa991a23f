"""Rootless dockyard: an unprivileged user the test creates runs the engine's containers.

The user gets a home, XDG_RUNTIME_DIR and /etc/subuid, /etc/subgid ranges (useradd's, or added with
usermod), and runs ``dockyard`` through ``setpriv``.  Every user command runs inside one private mount
namespace made by root for this module, in which:

* /dev/net/tun is a 0666 copy bind-mounted over the host's node: this machine ships it 0600, so
  slirp4netns could not open it as the user (a normal distribution has it 0666; the host's node is
  never touched);
* the directory under /root holding the test's Python is bind-mounted back over a tmpfs /root, because
  /root is 0700 and the user must be able to run the same interpreter and virtualenv.

Published ports are reached from the host on 127.0.0.1; outbound traffic goes to a server the test runs
on the host's loopback, reached through slirp4netns' 10.0.2.2 with allow_host_loopback=true.
"""

from __future__ import annotations

import contextlib
import http.server
import io
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import threading
import urllib.request
from pathlib import Path

import pytest

from tests.helpers import REPO, run_cli, unique_name, wait_for
from tests.registry_peer import start_registry

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root to create a user"),
    pytest.mark.skipif(not all(shutil.which(p) for p in ("useradd", "setpriv", "unshare", "nsenter", "newuidmap",
                                                           "slirp4netns")),
                       reason="needs useradd, setpriv, unshare, nsenter, newuidmap (uidmap) and slirp4netns"),
    pytest.mark.timeout(600),
]

PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _subid(path: str, name: str) -> tuple[int, int]:
    with open(path) as f:
        for line in f:
            user, start, count = line.strip().split(":")
            if user == name:
                return int(start), int(count)
    raise AssertionError(f"no range for {name} in {path}")


def _holder_script(tmp: Path) -> str:
    """Root's setup of the private mount namespace (see the module docstring), then it sleeps to hold it."""
    lines = ["set -e", f"mount -t tmpfs -o mode=755 tmpfs {tmp}", f"mknod -m 0666 {tmp}/tun c 10 200",
             f"mount --bind {tmp}/tun /dev/net/tun"]
    python = os.path.realpath(sys.executable)
    if python.startswith("/root/") and not os.stat("/root").st_mode & 0o001:
        top = "/root/" + python.split("/")[2]
        lines += [f"mkdir {tmp}/keep", f"mount --bind {top} {tmp}/keep", "mount -t tmpfs -o mode=755 tmpfs /root",
                  f"mkdir {top}", f"mount --move {tmp}/keep {top}"]
    return "\n".join(lines + ["exec sleep infinity"])


class RootlessUser:
    def __init__(self, name: str, home: Path, holder: int) -> None:
        self.name = name
        self.home = home
        self.holder = holder
        pw = pwd.getpwnam(name)
        self.uid, self.gid = pw.pw_uid, pw.pw_gid
        self.runtime_dir = home / "run"
        self.subuid = _subid("/etc/subuid", name)
        self.subgid = _subid("/etc/subgid", name)

    @property
    def root(self) -> Path:
        return self.home / ".local" / "share" / "dockyard"

    @property
    def runroot(self) -> Path:
        return self.runtime_dir / "dockyard"

    def run(self, *argv: str, timeout: float = 120, input: str | None = None) -> subprocess.CompletedProcess[str]:
        env = [f"HOME={self.home}", f"XDG_RUNTIME_DIR={self.runtime_dir}", f"PATH={PATH}", f"USER={self.name}",
               f"PYTHONPATH={REPO}"]
        return subprocess.run(["nsenter", "-t", str(self.holder), "-m", "--", "setpriv", f"--reuid={self.uid}",
                               f"--regid={self.gid}", "--init-groups", "env", "-i", *env, *argv],
                              input=input, capture_output=True, text=True, timeout=timeout, cwd=self.home)

    def dy(self, *args: str, **kw) -> subprocess.CompletedProcess[str]:
        return self.run(sys.executable, "-m", "dockyard", *args, **kw)

    def ok(self, *args: str, **kw) -> str:
        p = self.dy(*args, **kw)
        assert p.returncode == 0, f"dockyard {' '.join(args)} exited {p.returncode}: {p.stderr}"
        return p.stdout

    def pause_pid(self) -> int | None:
        try:
            return int((self.runroot / "pause.pid").read_text())
        except (OSError, ValueError):
            return None

    def ns_mounts(self) -> list[str]:
        """Mounts under the user's home as the rootless mount namespace sees them."""
        pid = self.pause_pid()
        if pid is None:
            return []
        with open(f"/proc/{pid}/mountinfo") as f:
            return [line.split()[4] for line in f if line.split()[4].startswith(str(self.home))]

    def slirp_pids(self) -> list[int]:
        out = []
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open(f"/proc/{d}/cmdline", "rb") as f:
                    cmd = f.read()
                with open(f"/proc/{d}/stat") as f:
                    state = f.read().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if b"slirp4netns" in cmd and str(self.home).encode() in cmd and state != "Z":
                out.append(int(d))
        return out


@pytest.fixture(scope="module")
def registry_image(tmp_path_factory):
    """busybox (bootstrapped from the host's busybox-static) in a local registry, pushed by root."""
    work = tmp_path_factory.mktemp("rl-registry")
    reg = start_registry(work / "registry")
    try:
        root = work / "root"
        run_cli("image", "bootstrap", "busybox", root=root, check=True)
        ref = f"127.0.0.1:{reg.port}/rootless/busybox:1"
        run_cli("push", "--tls-verify=false", "localhost/busybox", ref, root=root, check=True)
        yield ref
    finally:
        reg.stop()
        shutil.rmtree(work, ignore_errors=True)


@pytest.fixture(scope="module")
def user(registry_image):
    name = unique_name("dyrl", 24)
    home = Path(tempfile.mkdtemp(prefix="dy-rootless-", dir="/tmp"))
    os.chmod(home, 0o755)
    tmp = Path(tempfile.mkdtemp(prefix="dy-rootless-ns-", dir="/tmp"))
    holder = None
    subprocess.run(["useradd", "-M", "-d", str(home), "-s", "/bin/sh", name], check=True)
    try:
        for path, flag in (("/etc/subuid", "--add-subuids"), ("/etc/subgid", "--add-subgids")):
            if f"\n{name}:" not in "\n" + Path(path).read_text():
                # useradd gives ranges where login.defs says so; otherwise take one far from its pool.
                base = 1_500_000_000 + int.from_bytes(os.urandom(2), "big") * 65536
                subprocess.run(["usermod", flag, f"{base}-{base + 65535}", name], check=True)
        (home / "run").mkdir(mode=0o700)
        subprocess.run(["chown", "-R", f"{name}:", str(home)], check=True)
        holder = subprocess.Popen(["unshare", "-m", "--propagation", "private", "sh", "-c", _holder_script(tmp)])
        wait_for(lambda: os.stat(f"/proc/{holder.pid}/ns/mnt").st_ino != os.stat("/proc/self/ns/mnt").st_ino
                 and Path(f"/proc/{holder.pid}/cmdline").read_bytes().startswith(b"sleep"),
                 timeout=30, what="the private mount namespace")
        u = RootlessUser(name, home, holder.pid)
        u.ok("pull", "--tls-verify=false", registry_image)
        u.ok("tag", registry_image, "busybox")
        yield u
    finally:
        if holder is not None:
            u = RootlessUser(name, home, holder.pid)
            with contextlib.suppress(Exception):
                ids = u.dy("ps", "-aq").stdout.split()
                if ids:
                    u.dy("rm", "-f", *ids, timeout=120)
            pause = u.pause_pid()
            if pause:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pause, signal.SIGKILL)
            holder.kill()
            holder.wait()
        # The killed processes may linger as zombies until the host's init reaps them, and userdel
        # refuses a user who still owns a process: retry, then force.
        try:
            wait_for(lambda: subprocess.run(["userdel", name], capture_output=True).returncode in (0, 6),
                     timeout=30, interval=0.2, what=f"userdel {name}")
        except Exception:
            subprocess.run(["userdel", "-f", name], capture_output=True)
        shutil.rmtree(home, ignore_errors=True)
        with contextlib.suppress(OSError):
            os.rmdir(tmp)


def test_info_reports_rootless_and_per_user_store(user):
    info = json.loads(user.ok("info", "--format", "json"))
    assert info["host"]["rootless"] is True
    assert info["store"]["root"] == str(user.root)
    assert info["store"]["runRoot"] == str(user.runroot)
    assert info["host"]["idMappings"]["uidmap"] == [
        {"container_id": 0, "host_id": user.uid, "size": 1},
        {"container_id": 1, "host_id": user.subuid[0], "size": user.subuid[1]}]


def test_image_bootstrap_as_the_user(user):
    user.ok("image", "bootstrap", "busybox")
    assert user.ok("run", "--rm", "localhost/busybox", "stat", "-c", "%u:%g", "/bin/busybox") == "0:0\n"


def test_run_is_root_inside_with_the_user_namespace_mapping(user):
    out = user.ok("run", "--rm", "busybox", "sh", "-c",
                  "id; cat /proc/self/uid_map; stat -c '%u:%g %n' /bin/busybox /etc/passwd")
    lines = out.splitlines()
    assert lines[0].startswith("uid=0(root) gid=0(root)")
    assert lines[1].split() == ["0", str(user.uid), "1"]
    assert lines[2].split() == ["1", str(user.subuid[0]), str(user.subuid[1])]
    assert lines[3:] == ["0:0 /bin/busybox", "0:0 /etc/passwd"]
    # The layers are the user's on disk: nothing was written as host root.
    layers = [p for p in (user.root / "layers").rglob("busybox") if p.is_file()]
    assert layers and all(p.stat().st_uid == user.uid for p in layers)


def test_image_files_of_other_owners_keep_them(user):
    """A layer with files of several owners unpacks as the user with the owners mapped through the user
    namespace, shows them unchanged inside, and on the host belongs to the user's subordinate ids."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        tf.add("/bin/busybox", "bin/busybox", filter=lambda ti: (setattr(ti, "uid", 0), setattr(ti, "gid", 0), ti)[2])
        for name, uid, gid, mode in (("owned", 1234, 2345, 0o640), ("setuid", 0, 0, 0o4755),
                                     ("nobody", 65534, 65534, 0o600)):
            ti = tarfile.TarInfo(name)
            ti.size, ti.uid, ti.gid, ti.mode = len(name), uid, gid, mode
            tf.addfile(ti, io.BytesIO(name.encode()))
    archive = user.home / "owners.tar"
    archive.write_bytes(buf.getvalue())
    os.chown(archive, user.uid, user.gid)
    user.ok("import", str(archive), "owners:1")
    out = user.ok("run", "--rm", "owners:1", "/bin/busybox", "stat", "-c", "%u:%g %a %n", "/owned", "/setuid",
                  "/nobody")
    assert out.splitlines() == ["1234:2345 640 /owned", "0:0 4755 /setuid", "65534:65534 600 /nobody"]
    on_disk = {p.name: p.stat() for p in (user.root / "layers").rglob("*") if p.name in ("owned", "nobody")}
    assert (on_disk["owned"].st_uid, on_disk["owned"].st_gid) == (user.subuid[0] + 1233, user.subgid[0] + 2344)
    assert on_disk["nobody"].st_uid == user.subuid[0] + 65533
    user.ok("rmi", "owners:1")


def test_lifecycle_detached_exec_logs_stop_rm_and_volumes(user):
    name = unique_name("rl", 20)
    user.ok("volume", "create", "rlvol")
    try:
        user.ok("run", "-d", "--name", name, "-v", "rlvol:/data", "busybox", "sh", "-c",
                "echo started; echo persisted > /data/f; chown 1000:1000 /data/f; exec sleep 600")
        wait_for(lambda: "started" in user.ok("logs", name), timeout=30, what="container output")
        assert user.ok("exec", name, "id", "-u") == "0\n"
        assert user.ok("exec", name, "stat", "-c", "%u:%g", "/data/f") == "1000:1000\n"
        state = json.loads(user.ok("inspect", name))[0]
        assert state["State"]["Running"] is True
        assert state["HostConfig"]["NetworkMode"] == "slirp4netns"
        user.ok("stop", "-t", "1", name)
        assert json.loads(user.ok("inspect", name))[0]["State"]["Running"] is False
        user.ok("rm", name)
        out = user.ok("run", "--rm", "-v", "rlvol:/data", "busybox", "sh", "-c", "cat /data/f; stat -c %u /data/f")
        assert out == "persisted\n1000\n"
        # -i: stdin reaches the container.
        assert user.ok("run", "--rm", "-i", "busybox", "cat", input="through stdin\n") == "through stdin\n"
    finally:
        user.dy("rm", "-f", name)
        user.ok("volume", "rm", "rlvol")
    assert user.slirp_pids() == []
    assert [m for m in user.ns_mounts() if "/containers/" in m] == []


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802
        body = b"from the host loopback\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


def test_published_port_outbound_and_teardown(user):
    name = unique_name("rl", 20)
    port = _free_port()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        user.ok("run", "-d", "--name", name, "-p", f"{port}:80", "--network", "slirp4netns:allow_host_loopback=true",
                "busybox", "sh", "-c", "mkdir -p /www && echo served-rootless > /www/index.html && "
                "exec httpd -f -p 80 -h /www")
        assert user.ok("port", name).strip() == f"80/tcp -> 0.0.0.0:{port}"

        def fetch() -> bytes | None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as r:
                    return r.read()
            except OSError:
                return None

        wait_for(lambda: fetch() == b"served-rootless\n", timeout=30, what="the published port")
        out = user.ok("exec", name, "wget", "-qO-", f"http://10.0.2.2:{server.server_address[1]}/")
        assert out == "from the host loopback\n"
        assert len(user.slirp_pids()) == 1
        # stop tears the network down; start sets it up again with the same port.
        user.ok("stop", "-t", "1", name)
        assert user.slirp_pids() == [] and fetch() is None
        user.ok("start", name)
        wait_for(lambda: fetch() == b"served-rootless\n", timeout=30, what="the port after a restart")
        assert len(user.slirp_pids()) == 1
        user.ok("rm", "-f", name)
    finally:
        server.shutdown()
        server.server_close()
        user.dy("rm", "-f", name)
    assert user.slirp_pids() == []
    assert fetch() is None
    assert list((user.runroot / "netns").iterdir()) == []
    assert [m for m in user.ns_mounts() if "/containers/" in m or "/netns/" in m] == []


def test_host_loopback_is_closed_by_default(user):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        p = user.dy("run", "--rm", "busybox", "wget", "-qO-", f"http://10.0.2.2:{server.server_address[1]}/")
        assert p.returncode != 0
    finally:
        server.shutdown()
        server.server_close()


def test_userns_keep_id_and_nomap(user):
    out = user.ok("run", "--rm", "--userns=keep-id", "busybox", "sh", "-c", "id -u; id -g; stat -c %u /etc/passwd")
    assert out.split() == [str(user.uid), str(user.gid), "0"]
    name = unique_name("rl", 20)
    user.ok("run", "-d", "--name", name, "--userns=keep-id", "busybox", "sleep", "600")
    try:
        info = json.loads(user.ok("inspect", name))[0]
        assert info["HostConfig"]["UsernsMode"] == "keep-id"
        assert info["Config"]["User"] == f"{user.uid}:{user.gid}"
        # exec joins the nested user namespace after the network namespace, which is not its own.
        assert user.ok("exec", name, "id", "-u") == f"{user.uid}\n"
        assert user.ok("exec", "-u", "0", name, "id", "-u") == "0\n"
    finally:
        user.dy("rm", "-f", name)
    out = user.ok("run", "--rm", "--userns=nomap", "busybox", "sh", "-c", "id -u; cat /proc/self/uid_map")
    assert out.split()[0] == "0" and out.split()[1:] == ["0", "1", str(user.subuid[1])]
    # A nested root may bind low ports in the namespace made for it (Docker's unprivileged port start 0).
    name = unique_name("rl", 20)
    port = _free_port()
    user.ok("run", "-d", "--name", name, "--userns=nomap", "-p", f"{port}:80", "busybox", "httpd", "-f", "-p", "80",
            "-h", "/etc")
    try:
        def fetch() -> bytes | None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/hostname", timeout=5) as r:
                    return r.read()
            except OSError:
                return None

        wait_for(lambda: fetch() is not None, timeout=30, what="httpd in a nomap container")
    finally:
        user.dy("rm", "-f", name)
    p = user.dy("create", "--userns=auto:size=70000", "busybox", "true")
    assert p.returncode == 125
    assert p.stderr.strip() == f"Error: --userns=auto: size 70000 is more than your {user.subuid[1]} subordinate ids"
    out = user.ok("run", "--rm", "--userns=auto:size=2000", "busybox", "sh", "-c", "cat /proc/self/uid_map")
    assert out.split() == ["0", "1", "2000"]
    # The layer copies shifted for those maps went with the last container using them.
    shifted = user.root / "idmapped-layers"
    assert not shifted.exists() or list(shifted.iterdir()) == []


def test_resource_limits_are_refused_without_delegation(user):
    from dockyard import host

    if host.cgroup_info().version == "v2":
        pytest.skip("cgroup v2 host: limits depend on systemd delegation")
    p = user.dy("run", "--rm", "--memory", "64m", "busybox", "true")
    assert p.returncode == 125
    assert p.stderr.strip().startswith("Error: --memory: rootless containers cannot have resource limits")


def test_bridge_networks_are_refused(user):
    p = user.dy("network", "create", unique_name("rl", 12))
    assert p.returncode == 125 and "needs root" in p.stderr
    p = user.dy("run", "--network", "bridge", "busybox", "true")
    assert p.returncode == 125
    assert p.stderr.strip() == "Error: bridge networks need root: rootless containers use --network slirp4netns"
    assert user.ok("ps", "-aq") == ""


def test_network_host_and_runc_rootless(user):
    # The host's network namespace is not the rootless user namespace's: /sys is bound, not mounted.
    out = user.ok("run", "--rm", "--network", "host", "busybox", "sh", "-c", "id -u; ls /sys/class/net | grep -c lo")
    assert out.split() == ["0", "1"]
    if not shutil.which("runc"):
        return
    out = user.ok("run", "--rm", "--runtime", "runc", "busybox", "sh", "-c", "id -u; cat /proc/self/uid_map")
    assert out.split()[:4] == ["0", "0", str(user.uid), "1"]
    assert user.ok("run", "--rm", "--runtime", "runc", "--userns=keep-id", "busybox", "id", "-u") == f"{user.uid}\n"


def test_run_with_a_terminal(user):
    import pty

    master, slave = pty.openpty()
    try:
        env = [f"HOME={user.home}", f"XDG_RUNTIME_DIR={user.runtime_dir}", f"PATH={PATH}", f"PYTHONPATH={REPO}"]
        p = subprocess.Popen(["nsenter", "-t", str(user.holder), "-m", "--", "setpriv", f"--reuid={user.uid}",
                              f"--regid={user.gid}", "--init-groups", "env", "-i", *env, sys.executable, "-m",
                              "dockyard", "run", "--rm", "-it", "busybox", "sh", "-c", "tty; id -u"],
                             stdin=slave, stdout=slave, stderr=slave, cwd=user.home, start_new_session=True)
        os.close(slave)
        slave = -1
        out = b""
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: every writer closed the terminal
                break
            if not chunk:
                break
            out += chunk
        assert p.wait(timeout=60) == 0, out
        assert out.replace(b"\r", b"").split(b"\n")[:2] == [b"/dev/pts/0", b"0"]
    finally:
        os.close(master)
        if slave >= 0:
            os.close(slave)


def test_outbound_to_a_server_in_another_network_namespace(user, tmp_path):
    """slirp4netns connects out from the host's network stack: a server in a namespace the test made,
    routed through a veth pair, is reachable from the container on the default network."""
    ns, veth = unique_name("dyrl", 15), unique_name("dyrl", 15)
    net = f"10.254.{int.from_bytes(os.urandom(1), 'big')}"
    www = tmp_path / "www"
    www.mkdir()
    (www / "index.html").write_text("from another namespace\n")
    subprocess.run(["ip", "netns", "add", ns], check=True)
    server = None
    try:
        for cmd in (["ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns],
                    ["ip", "addr", "add", f"{net}.1/30", "dev", veth], ["ip", "link", "set", veth, "up"],
                    ["ip", "-n", ns, "addr", "add", f"{net}.2/30", "dev", "eth0"],
                    ["ip", "-n", ns, "link", "set", "eth0", "up"], ["ip", "-n", ns, "link", "set", "lo", "up"]):
            subprocess.run(cmd, check=True)
        server = subprocess.Popen(["ip", "netns", "exec", ns, "busybox", "httpd", "-f", "-p", f"{net}.2:8080",
                                   "-h", str(www)])
        out = user.ok("run", "--rm", "busybox", "sh", "-c",
                      f"for i in $(seq 50); do wget -qO- http://{net}.2:8080/ && exit 0; sleep 0.2; done; exit 1")
        assert out == "from another namespace\n"
    finally:
        if server is not None:
            server.kill()
            server.wait()
        subprocess.run(["ip", "link", "del", veth], capture_output=True)
        subprocess.run(["ip", "netns", "del", ns], check=True)


def test_commit_works_and_pause_is_refused_without_a_cgroup(user):
    from dockyard import host

    name = unique_name("rl", 20)
    user.ok("run", "-d", "--name", name, "busybox", "sh", "-c", "echo kept > /made; chown 1234 /made; exec sleep 600")
    try:
        wait_for(lambda: user.dy("exec", name, "test", "-f", "/made").returncode == 0, timeout=30, what="/made")
        if host.cgroup_info().version != "v2":
            p = user.dy("pause", name)
            assert p.returncode == 125
            assert p.stderr.strip() == f"Error: pause needs a cgroup: rootless containers have none on this " \
                                       f"{host.cgroup_info().version} cgroup host"
            p = user.dy("stats", "--no-stream", name)
            assert p.returncode == 125
            assert p.stderr.strip() == f"Error: stats needs a cgroup: rootless containers have none on this " \
                                       f"{host.cgroup_info().version} cgroup host"
        user.ok("commit", name, "rlsnap:1")
        assert user.ok("run", "--rm", "rlsnap:1", "stat", "-c", "%u %n", "/made") == "1234 /made\n"
    finally:
        user.dy("rm", "-f", name)
        user.dy("rmi", "rlsnap:1")


def test_privileged_port_is_refused_clearly(user):
    with open("/proc/sys/net/ipv4/ip_unprivileged_port_start") as f:
        first = int(f.read())
    if first == 0:
        pytest.skip("every port is unprivileged on this host")
    p = user.dy("run", "--rm", "-p", f"{first - 1}:80", "busybox", "true")
    assert p.returncode == 125
    assert p.stderr.strip() == (f"Error: rootless port publishing cannot bind port {first - 1}: ports below {first} "
                                f"need root (sysctl net.ipv4.ip_unprivileged_port_start={first})")
    assert user.ok("ps", "-aq") == ""
    assert user.slirp_pids() == []
