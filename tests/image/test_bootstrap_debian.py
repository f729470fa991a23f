"""dockyard image bootstrap debian: debootstrap minbase from the host's mirror, as one configured layer."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.conftest import requires_root
from tests.image.helpers import inspect


@pytest.mark.slow
@requires_root
@pytest.mark.peer("debootstrap")
@pytest.mark.timeout(1200)
def test_bootstrap_debian(dy):
    from dockyard.image.bootstrap import host_debian_suite

    suite = host_debian_suite()
    p = dy("image", "bootstrap", f"debian:{suite}", timeout=1100)
    assert p.returncode == 0, p.stderr
    image_id = p.stdout.strip()
    info = inspect(dy, f"localhost/debian:{suite}")
    assert info["Id"] == image_id
    assert info["Config"]["Cmd"] == ["bash"]
    assert any(e.startswith("PATH=/usr/local/sbin:") for e in info["Config"]["Env"])
    layer = info["GraphDriver"]["Data"]["UpperDir"]
    # No host traces: empty apt lists and caches, no devices, per-container files left empty.
    assert os.listdir(os.path.join(layer, "dev")) == []
    assert os.path.getsize(os.path.join(layer, "etc/resolv.conf")) == 0
    assert [n for n in os.listdir(os.path.join(layer, "var/lib/apt/lists")) if n not in ("partial", "lock")] == []
    p = subprocess.run(["chroot", layer, "bash", "-c", ". /etc/os-release && echo $ID $VERSION_CODENAME && "
                        "dpkg-query -W -f '${Status}\\n' apt"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines() == [f"debian {suite}", "install ok installed"]
