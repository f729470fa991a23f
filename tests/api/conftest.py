"""A private dockyard root with busybox, and `dockyard system service` on a socket of its own."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from tests.helpers import REPO, dockyard_cmd, run_cli, wait_for

IMAGE = "localhost/busybox"
DOCKER = "/usr/local/bin/docker"
needs_docker = pytest.mark.skipif(not os.path.exists(DOCKER), reason="the docker CLI is not installed")


class Service:
    def __init__(self, root, runroot, sock) -> None:
        self.root, self.runroot, self.sock = root, runroot, sock
        self.uri = f"unix://{sock}"

    def cli(self, *args: str, **kw):
        """The dockyard CLI on the same store."""
        return run_cli("--runroot", str(self.runroot), *args, root=self.root, **kw)

    def env(self) -> dict[str, str]:
        return {**os.environ, "DOCKER_HOST": self.uri, "DOCKER_CONFIG": str(self.root / "docker-config")}

    def docker(self, *args: str, input: str | None = None, timeout: float = 120):
        return subprocess.run([DOCKER, *args], capture_output=True, text=True, env=self.env(), input=input,
                              timeout=timeout)

    def curl(self, *args: str, timeout: float = 60):
        return subprocess.run(["curl", "-s", "--unix-socket", str(self.sock), *args], capture_output=True,
                              text=True, timeout=timeout)


def start_service(root, runroot, sock, *extra: str) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.Popen(dockyard_cmd(root) + ["--runroot", str(runroot), "system", "service", *extra,
                                                  f"unix://{sock}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)


def stop_service(p: subprocess.Popen[bytes]) -> None:
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    if p.stderr:
        p.stderr.close()


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    base = tmp_path_factory.mktemp("api")
    root, runroot, sock = base / "root", base / "run", base / "api.sock"
    root.mkdir()
    run_cli("image", "bootstrap", "busybox", root=root, check=True)
    p = start_service(root, runroot, sock, "--time", "0")
    svc = Service(root, runroot, sock)
    try:
        wait_for(lambda: sock.exists() or p.poll() is not None, timeout=60, what="the API socket")
        assert p.poll() is None, p.stderr.read().decode() if p.stderr else ""
        yield svc
    finally:
        ids = svc.cli("ps", "-aq", "--no-trunc").stdout.split()
        if ids:
            svc.cli("rm", "-f", *ids)
        stop_service(p)
        deadline = time.monotonic() + 10
        while sock.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not sock.exists(), "the service left its socket behind"
        from tests.containers.conftest import _monitor_pids

        left = _monitor_pids(root)
        mounts = [ln for ln in open("/proc/self/mounts").read().splitlines() if str(root) in ln]
        for pid in left:
            os.kill(pid, signal.SIGKILL)
        for m in mounts:
            subprocess.run(["umount", "-l", m.split()[1]], check=False)
        assert not left, f"monitor processes left behind: {left}"
        assert not mounts, f"mounts left behind: {mounts}"
