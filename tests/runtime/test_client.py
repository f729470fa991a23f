"""RuntimeClient drives dockyard's runtime and runc through the same calls (what the engine uses)."""

from __future__ import annotations

import shutil

import pytest

from dockyard.errors import Conflict, NotFound
from dockyard.runtime.client import RuntimeCallError, RuntimeClient
from tests.helpers import unique_name, wait_for
from tests.runtime.conftest import needs_root
from tests.runtime.oci import make_bundle

pytestmark = needs_root


@pytest.fixture(params=["dockyard", "runc"])
def client(request, tmp_path):
    if request.param == "runc" and not shutil.which("runc"):
        pytest.skip("runc is not installed")
    c = RuntimeClient.for_runtime(request.param, tmp_path / f"{request.param}-root")
    made: list[str] = []
    c.made = made  # type: ignore[attr-defined]
    try:
        yield c
    finally:
        for cid in made:
            try:
                c.delete(cid, force=True)
            except Exception:  # noqa: BLE001,S110 - already gone
                pass


def test_lifecycle_through_the_client(client, tmp_path, busybox_rootfs):
    b = make_bundle(tmp_path, busybox_rootfs, ["sleep", "1000"])
    cid = unique_name("cl", 30)
    client.made.append(cid)
    pid_file = tmp_path / "pid"
    client.create(cid, str(b.path), pid_file=str(pid_file))
    st = client.state(cid)
    assert st["status"] == "created" and st["pid"] == int(pid_file.read_text())
    client.start(cid)
    assert client.state(cid)["status"] == "running"
    assert client.ps(cid) == [st["pid"]]
    assert [c["id"] for c in client.list_containers()] == [cid]
    p = client.exec(cid, dict(b.config["process"], args=["sh", "-c", "echo in; exit 4"]))
    assert (p.returncode, p.stdout) == (4, "in\n")
    client.update(cid, {"pids": {"limit": 50}})
    p = client.exec(cid, dict(b.config["process"], args=["cat", "/sys/fs/cgroup/pids/pids.max"]))
    assert p.stdout == "50\n"
    client.pause(cid)
    assert client.state(cid)["status"] == "paused"
    client.resume(cid)
    with pytest.raises(Conflict):
        client.create(cid, str(b.path))
    with pytest.raises(Conflict):
        client.delete(cid)
    client.kill(cid, "KILL")
    wait_for(lambda: client.state(cid)["status"] == "stopped", what="stopped")
    client.delete(cid)
    with pytest.raises(NotFound):
        client.state(cid)


def test_create_error_is_the_runtimes_message(client, tmp_path, busybox_rootfs):
    b = make_bundle(tmp_path, busybox_rootfs, ["no-such-program"])
    cid = unique_name("cl", 30)
    client.made.append(cid)
    with pytest.raises(RuntimeCallError, match="no-such-program.*not found|not found.*no-such-program"):
        client.create(cid, str(b.path))


def test_unknown_runtime():
    with pytest.raises(NotFound, match="not found"):
        RuntimeClient.for_runtime("no-such-runtime-binary", "/tmp")
