"""The remaining container, exec, network and volume endpoints, and the service's own lifecycle."""

from __future__ import annotations

import io
import json
import os
import subprocess
import tarfile

import pytest

from tests.api.conftest import IMAGE, start_service, stop_service
from tests.helpers import unique_name, wait_for


def _post_json(api, path: str, body: dict) -> subprocess.CompletedProcess[str]:
    return api.curl("-XPOST", "-H", "Content-Type: application/json", "-d", json.dumps(body), f"http://localhost{path}")


def _demux(body: bytes) -> list[tuple[int, bytes]]:
    """Docker's multiplexed stream as (stream, data) frames."""
    frames = []
    while body:
        kind, size = body[0], int.from_bytes(body[4:8], "big")
        assert body[1:4] == b"\0\0\0" and len(body) >= 8 + size
        frames.append((kind, body[8:8 + size]))
        body = body[8 + size:]
    return frames


def _code(api, *args: str) -> str:
    return api.curl("-o", "/dev/null", "-w", "%{http_code}", *args).stdout


def test_lifecycle_verbs_exec_archive_and_prune(api, tmp_path):
    name = unique_name("verbs")
    cid = json.loads(_post_json(api, f"/containers/create?name={name}",
                                {"Image": IMAGE, "Cmd": ["sleep", "300"], "Env": ["X=1"],
                                 "Labels": {"a": "b"}, "WorkingDir": "/tmp",
                                 "HostConfig": {"Memory": 64 << 20, "PidsLimit": 50, "CapDrop": ["NET_RAW"],
                                                "RestartPolicy": {"Name": "no"}}}).stdout)["Id"]
    try:
        ins = json.loads(api.curl(f"http://localhost/containers/{cid}/json").stdout)
        assert ins["HostConfig"]["Memory"] == 64 << 20 and ins["HostConfig"]["PidsLimit"] == 50
        assert ins["Config"]["Labels"]["a"] == "b" and ins["Config"]["WorkingDir"] == "/tmp"
        assert _code(api, "-XPOST", f"http://localhost/containers/{cid}/start") == "204"
        assert _code(api, "-XPOST", f"http://localhost/containers/{cid}/pause") == "204"
        assert json.loads(api.curl(f"http://localhost/containers/{cid}/json").stdout)["State"]["Status"] == "paused"
        assert _code(api, "-XPOST", f"http://localhost/containers/{cid}/unpause") == "204"
        new = name + "-2"
        assert _code(api, "-XPOST", f"http://localhost/containers/{cid}/rename?name={new}") == "204"
        assert json.loads(api.curl(f"http://localhost/containers/{new}/json").stdout)["Id"] == cid

        # exec: create, start without upgrade (curl reads the multiplexed body), inspect the exit code
        ex = json.loads(_post_json(api, f"/containers/{cid}/exec",
                                   {"Cmd": ["sh", "-c", "echo $X; pwd; exit 7"], "AttachStdout": True}).stdout)["Id"]
        out = _post_json(api, f"/exec/{ex}/start", {"Detach": False, "Tty": False})
        frames = _demux(out.stdout.encode())
        assert {k for k, _ in frames} == {1} and b"".join(d for _, d in frames) == b"1\n/tmp\n"
        info = json.loads(api.curl(f"http://localhost/exec/{ex}/json").stdout)
        assert (info["ExitCode"], info["Running"], info["ContainerID"]) == (7, False, cid)
        tty = json.loads(_post_json(api, f"/containers/{cid}/exec",
                                    {"Cmd": ["sh", "-c", "tty >/dev/null && echo has-tty"], "Tty": True}).stdout)["Id"]
        assert "has-tty" in _post_json(api, f"/exec/{tty}/start", {"Tty": True}).stdout
        det = json.loads(_post_json(api, f"/containers/{cid}/exec",
                                    {"Cmd": ["sh", "-c", "echo bg > /tmp/bg"]}).stdout)["Id"]
        assert _post_json(api, f"/exec/{det}/start", {"Detach": True}).returncode == 0
        assert _code(api, "http://localhost/exec/nosuch/json") == "404"

        # archive: put a tar in, get it back
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tf:
            data = b"from the api\n"
            ti = tarfile.TarInfo("hello.txt")
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
        (tmp_path / "in.tar").write_bytes(buf.getvalue())
        assert _code(api, "-XPUT", "--data-binary", f"@{tmp_path / 'in.tar'}",
                     f"http://localhost/containers/{cid}/archive?path=/tmp") == "200"
        got = tmp_path / "out.tar"
        assert api.curl("-o", str(got), "-w", "%{http_code}",
                        f"http://localhost/containers/{cid}/archive?path=/tmp/hello.txt").stdout == "200"
        with tarfile.open(got) as tf:
            member = tf.extractfile("hello.txt")
            assert member is not None and member.read() == b"from the api\n"
        wait_for(lambda: api.cli("exec", cid, "cat", "/tmp/bg").stdout == "bg\n", timeout=20, what="detached exec")

        assert _code(api, "-XPOST", f"http://localhost/containers/{cid}/restart?t=1") == "204"
        assert json.loads(api.curl(f"http://localhost/containers/{cid}/json").stdout)["State"]["Running"]
        assert _code(api, "-XPOST", f"http://localhost/containers/{cid}/kill?signal=KILL") == "204"
        wait = json.loads(api.curl("-XPOST", f"http://localhost/containers/{cid}/wait").stdout)
        assert wait == {"StatusCode": 137, "Error": None}
        assert _code(api, "-XPOST", f"http://localhost/containers/{cid}/kill") == "409"
        logs = api.curl(f"http://localhost/containers/{cid}/logs?stdout=1&stderr=1").stdout
        assert logs == ""
        pruned = json.loads(api.curl("-XPOST", "http://localhost/containers/prune").stdout)
        assert cid in pruned["ContainersDeleted"]
    finally:
        api.curl("-XDELETE", f"http://localhost/containers/{cid}?force=1")
    assert _code(api, f"http://localhost/containers/{cid}/json") == "404"


def test_logs_stream_framing_and_attach_to_running(api):
    cid = json.loads(_post_json(api, "/containers/create", {
        "Image": IMAGE, "Cmd": ["sh", "-c", "echo one; echo two >&2; read x; echo got $x; exec sleep 300"],
        "OpenStdin": True}).stdout)["Id"]
    try:
        assert _code(api, "-XPOST", f"http://localhost/containers/{cid}/start") == "204"
        wait_for(lambda: b"two" in api.curl(f"http://localhost/containers/{cid}/logs?stderr=1").stdout.encode(),
                 timeout=30, what="logs")
        body = api.curl(f"http://localhost/containers/{cid}/logs?stdout=1&stderr=1&timestamps=1").stdout.encode()
        frames = _demux(body)
        assert [(k, d.split(b" ", 1)[1]) for k, d in frames] == [(1, b"one\n"), (2, b"two\n")]
        assert all(d[:2] == b"20" for _, d in frames)  # RFC 3339 timestamps first
        only_out = api.curl(f"http://localhost/containers/{cid}/logs?stdout=1&tail=2").stdout.encode()  # tail counts both streams, as Docker does
        assert only_out == b"\x01\0\0\0\0\0\0\x04one\n"

        # attach to the running container with stdin, as `docker attach` does (hijacked connection)
        import socket

        s = socket.socket(socket.AF_UNIX)
        s.connect(str(api.sock))
        s.sendall(f"POST /v1.51/containers/{cid}/attach?stream=1&stdin=1&stdout=1&stderr=1 HTTP/1.1\r\n"
                  "Host: api\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: 0\r\n\r\n".encode())
        s.settimeout(30)
        head = b""
        while b"\r\n\r\n" not in head:
            head += s.recv(1)
        assert head.startswith(b"HTTP/1.1 101")
        s.sendall(b"hello\n")
        got = b""
        while b"got hello" not in got:
            chunk = s.recv(4096)
            assert chunk, got
            got += chunk
        assert got.startswith(b"\x01\0\0\0")
        s.close()
    finally:
        api.curl("-XDELETE", f"http://localhost/containers/{cid}?force=1")


@pytest.mark.skipif(os.geteuid() != 0, reason="bridge networks need root")
def test_networks_and_volumes(api):
    net = unique_name("apinet")
    created = json.loads(_post_json(api, "/networks/create", {
        "Name": net, "Driver": "bridge", "Labels": {"k": "v"},
        "IPAM": {"Config": [{"Subnet": "10.213.7.0/24", "Gateway": "10.213.7.1"}]}}).stdout)
    assert len(created["Id"]) == 64
    cid = None
    try:
        ins = json.loads(api.curl(f"http://localhost/networks/{net}").stdout)
        assert ins["IPAM"]["Config"][0]["Subnet"] == "10.213.7.0/24" and ins["Labels"] == {"k": "v"}
        assert net in [n["Name"] for n in json.loads(api.curl("http://localhost/networks").stdout)]
        cid = json.loads(_post_json(api, "/containers/create", {
            "Image": IMAGE, "Cmd": ["sleep", "300"], "HostConfig": {"NetworkMode": net},
            "NetworkingConfig": {"EndpointsConfig": {net: {"Aliases": ["web"],
                                                           "IPAMConfig": {"IPv4Address": "10.213.7.9"}}}}}).stdout)["Id"]
        assert _code(api, "-XPOST", f"http://localhost/containers/{cid}/start") == "204"
        ns = json.loads(api.curl(f"http://localhost/containers/{cid}/json").stdout)["NetworkSettings"]
        assert ns["Networks"][net]["IPAddress"] == "10.213.7.9"
        assert api.cli("exec", cid, "ip", "-4", "addr").stdout.count("10.213.7.9") == 1
        # connect to a second network and leave it again
        other = json.loads(_post_json(api, "/networks/create", {"Name": net + "b"}).stdout)["Id"]
        try:
            body = json.dumps({"Container": cid, "EndpointConfig": {"Aliases": ["second"]}})
            assert _code(api, "-XPOST", "-H", "Content-Type: application/json", "-d", body,
                         f"http://localhost/networks/{other}/connect") == "200"
            nets = json.loads(api.curl(f"http://localhost/containers/{cid}/json").stdout)["NetworkSettings"]["Networks"]
            assert set(nets) == {net, net + "b"}
            assert _code(api, "-XPOST", "-H", "Content-Type: application/json", "-d", json.dumps({"Container": cid}),
                         f"http://localhost/networks/{other}/disconnect") == "200"
            nets = json.loads(api.curl(f"http://localhost/containers/{cid}/json").stdout)["NetworkSettings"]["Networks"]
            assert set(nets) == {net}
        finally:
            assert _code(api, "-XDELETE", f"http://localhost/networks/{other}") == "204"
    finally:
        if cid:
            api.curl("-XDELETE", f"http://localhost/containers/{cid}?force=1")
        assert _code(api, "-XDELETE", f"http://localhost/networks/{net}") == "204"
    assert _code(api, f"http://localhost/networks/{net}") == "404"

    vol = unique_name("apivol")
    v = json.loads(_post_json(api, "/volumes/create", {"Name": vol, "Labels": {"x": "y"}}).stdout)
    assert v["Name"] == vol and v["Driver"] == "local" and v["Labels"] == {"x": "y"}
    listed = json.loads(api.curl("http://localhost/volumes").stdout)
    assert vol in [x["Name"] for x in listed["Volumes"]] and listed["Warnings"] == []
    assert json.loads(api.curl(f"http://localhost/volumes/{vol}").stdout)["Name"] == vol
    assert _code(api, "-XDELETE", f"http://localhost/volumes/{vol}") == "204"
    assert _code(api, f"http://localhost/volumes/{vol}") == "404"


def test_service_idle_timeout_and_socket_checks(tmp_path):
    root, sock = tmp_path / "root", tmp_path / "idle.sock"
    root.mkdir()
    p = start_service(root, tmp_path / "run", sock, "--time", "1")
    try:
        wait_for(lambda: sock.exists() or p.poll() is not None, timeout=60, what="the API socket")
        assert oct(sock.stat().st_mode & 0o777) == "0o600"
        # a second service on the same live socket is refused
        other = start_service(root, tmp_path / "run", sock, "--time", "0")
        assert other.wait(60) == 125
        assert "already listening" in other.stderr.read().decode()
        other.stderr.close()
        # idle for a second: the service exits by itself and removes its socket
        assert p.wait(60) == 0
        assert not sock.exists()
    finally:
        stop_service(p)
    bad = start_service(root, tmp_path / "run", tmp_path / "x.sock", "--time", "-1")
    assert bad.wait(60) == 125
    bad.stderr.close()


def test_attach_of_a_client_that_left_does_not_hold_the_service(tmp_path):
    import socket

    from tests.api.conftest import Service
    from tests.helpers import run_cli

    root, sock = tmp_path / "root", tmp_path / "left.sock"
    root.mkdir()
    run_cli("image", "bootstrap", "busybox", root=root, check=True)
    p = start_service(root, tmp_path / "run", sock, "--time", "2")
    svc = Service(root, tmp_path / "run", sock)
    try:
        wait_for(lambda: sock.exists() or p.poll() is not None, timeout=60, what="the API socket")
        cid = json.loads(_post_json(svc, "/containers/create", {"Image": IMAGE, "Cmd": ["true"]}).stdout)["Id"]
        s = socket.socket(socket.AF_UNIX)
        s.connect(str(sock))
        s.sendall(f"POST /containers/{cid}/attach?stream=1&stdout=1 HTTP/1.1\r\nHost: a\r\n"
                  "Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n".encode())
        s.settimeout(30)
        assert s.recv(12) == b"HTTP/1.1 101"
        s.close()  # gone before any start
        assert p.wait(60) == 0  # idle once the attach is dropped
    finally:
        stop_service(p)
        ids = svc.cli("ps", "-aq").stdout.split()
        if ids:
            svc.cli("rm", "-f", *ids)
