"""inspect's NetworkSettings.Ports: published ports with their bindings, exposed ones without."""

from __future__ import annotations

import json
import os

import pytest

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


def test_exposed_but_unpublished_ports_show_as_null(dy, eng, tmp_path):
    dy("image", "bootstrap", "busybox", check=True)
    (tmp_path / "Containerfile").write_text("FROM localhost/busybox\nEXPOSE 80 53/udp\n")
    dy("build", "-t", "localhost/exposer", str(tmp_path), check=True)
    try:
        dy("run", "-d", "--name", "web", "-p", "127.0.0.1::80", "localhost/exposer", "sleep", "300", check=True)
        ports = json.loads(dy("inspect", "web", check=True).stdout)[0]["NetworkSettings"]["Ports"]
        assert ports["53/udp"] is None
        [binding] = ports["80/tcp"]
        assert binding["HostIp"] == "127.0.0.1" and int(binding["HostPort"]) > 0
        assert list(ports) == sorted(ports)  # Docker's (Go's) key order
    finally:
        dy("rm", "-f", "web")
        dy("rmi", "localhost/exposer")
