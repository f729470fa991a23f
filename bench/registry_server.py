"""Registry server: push then pull ~1 GB of layers with 8 concurrent clients, dockyard against the reference.

Each run starts a fresh server on empty storage (dockyard's ``registry serve``, then Debian's
``docker-registry``, i.e. distribution 2.8, alternating), pushes the blobs the way containers/image
does (POST, one streaming PATCH, PUT ?digest) plus one manifest per client, pulls the manifests and
blobs back (blobs with curl), and reads the server's peak RSS (VmHWM) before stopping it.  Plain HTTP on 127.0.0.1,
no auth, access logs off on both sides.

    BENCH_SIZE_MB=1024 BENCH_BLOB_MB=32 python -m bench.registry_server -n 5   # the full report
    python -m bench registry_server -n 3     # the harness: times of start + push + pull + stop per
                                             # server, then the full report

Throughput counts payload bytes (blobs) over the wall time of each phase.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench.harness import REPO, Case

CLIENTS = 8


def _size_mb() -> int:
    return int(os.environ.get("BENCH_SIZE_MB", "1024"))


def _blob_mb() -> int:
    return int(os.environ.get("BENCH_BLOB_MB", "32"))


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    port: int
    stop: Callable[[], None]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def peak_rss_kb(self) -> int:
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
        raise RuntimeError("no VmHWM")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("server did not listen")


def start_dockyard(workdir: Path) -> Server:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
    env.update(PYTHONPATH=REPO, REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY=str(workdir / "data"),
               REGISTRY_STORAGE_DELETE_ENABLED="true")
    proc = subprocess.Popen([sys.executable, "-m", "dockyard", "registry", "serve", "--addr", f"127.0.0.1:{port}"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)

    def stop() -> None:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()

    try:
        _wait(port, proc)
    except BaseException:
        stop()
        raise
    return Server(proc, port, stop)


def start_reference(workdir: Path) -> Server:
    sys.path.insert(0, REPO)
    from tests.registry_peer import start_registry

    peer = start_registry(workdir)
    return Server(peer.proc, peer.port, peer.stop)


@dataclass
class Sample:
    push_s: float
    pull_s: float
    peak_rss_kb: int


@dataclass
class Workload:
    blobs: list[bytes]
    digests: list[str] = field(default_factory=list)

    @classmethod
    def make(cls) -> Workload:
        total, each = _size_mb() << 20, _blob_mb() << 20
        n = max(CLIENTS, total // each)
        blobs = [os.urandom(min(each, max(total // n, 1))) for _ in range(n)]
        return cls(blobs, ["sha256:" + hashlib.sha256(b).hexdigest() for b in blobs])

    @property
    def nbytes(self) -> int:
        return sum(len(b) for b in self.blobs)


def _parallel(fn: Callable[[int], None]) -> float:
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            fn(i)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(CLIENTS)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    dt = time.perf_counter() - t0
    if errors:
        raise errors[0]
    return dt


def round_trip(server: Server, work: Workload) -> Sample:
    import requests

    sessions = [requests.Session() for _ in range(CLIENTS)]
    mine = [list(range(i, len(work.blobs), CLIENTS)) for i in range(CLIENTS)]
    cfg = b'{"architecture":"amd64","os":"linux"}'
    cfg_digest = "sha256:" + hashlib.sha256(cfg).hexdigest()

    def upload(s: requests.Session, repo: str, data: bytes, digest: str) -> None:
        r = s.post(f"{server.url}/v2/{repo}/blobs/uploads/")
        r.raise_for_status()
        loc = r.headers["Location"]
        loc = loc if loc.startswith("http") else server.url + loc
        r = s.patch(loc, data=data, headers={"Content-Type": "application/octet-stream"})
        r.raise_for_status()
        loc = r.headers["Location"]
        loc = loc if loc.startswith("http") else server.url + loc
        r = s.put(f"{loc}{'&' if '?' in loc else '?'}digest={digest}")
        if r.status_code != 201:
            raise RuntimeError(f"push failed: {r.status_code} {r.text}")

    def push(i: int) -> None:
        s, repo = sessions[i], f"bench/client{i}"
        upload(s, repo, cfg, cfg_digest)
        layers = []
        for k in mine[i]:
            upload(s, repo, work.blobs[k], work.digests[k])
            layers.append({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": work.digests[k],
                           "size": len(work.blobs[k])})
        manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfg_digest,
                               "size": len(cfg)}, "layers": layers}
        r = s.put(f"{server.url}/v2/{repo}/manifests/latest", data=json.dumps(manifest),
                  headers={"Content-Type": manifest["mediaType"]})
        if r.status_code != 201:
            raise RuntimeError(f"manifest push failed: {r.status_code} {r.text}")

    def pull(i: int) -> None:
        s, repo = sessions[i], f"bench/client{i}"
        r = s.get(f"{server.url}/v2/{repo}/manifests/latest",
                  headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
        r.raise_for_status()
        for layer in r.json()["layers"]:
            # curl, not requests: eight Python readers in one process saturate before either server does.
            p = subprocess.run(["curl", "-sf", "-o", "/dev/null", "-w", "%{size_download}",
                                f"{server.url}/v2/{repo}/blobs/{layer['digest']}"], capture_output=True, text=True)
            got = int(p.stdout or 0) if p.returncode == 0 else -1
            if got != layer["size"]:
                raise RuntimeError(f"short read of {layer['digest']}: {got} of {layer['size']}")

    push_s = _parallel(push)
    pull_s = _parallel(pull)
    return Sample(push_s, pull_s, server.peak_rss_kb())


SIDES: dict[str, Callable[[Path], Server]] = {
    "dockyard registry serve": start_dockyard,
    "docker-registry (distribution 2.8)": start_reference,
}


def _available() -> dict[str, Callable[[Path], Server]]:
    out = dict(SIDES)
    if not shutil.which("docker-registry"):
        print("  skip docker-registry: not installed")
        del out["docker-registry (distribution 2.8)"]
    return out


def one_run(start: Callable[[Path], Server], work: Workload, base: Path) -> Sample:
    d = Path(tempfile.mkdtemp(dir=base))
    server = start(d)
    try:
        return round_trip(server, work)
    finally:
        server.stop()
        shutil.rmtree(d, ignore_errors=True)


_samples: dict[str, list[Sample]] = {}
_work: list[Workload] = []


def prepare(workdir: str) -> list[Case]:
    """For ``python -m bench registry_server``: each timed case is one push + pull round trip."""
    _work.append(Workload.make())
    cases = []
    for label, start in _available().items():
        def once(label: str = label, start: Callable[[Path], Server] = start) -> None:
            _samples.setdefault(label, []).append(one_run(start, _work[0], Path(workdir)))
        cases.append(Case(label, func=once))
    return cases


def cleanup(workdir: str) -> None:
    if _work:
        # bench.harness.run_cases runs every case twice as a warm-up before the measured runs.
        measured = {label: ss[2:] or ss for label, ss in _samples.items()}
        print(report(measured, _work[0].nbytes))


def report(samples: dict[str, list[Sample]], nbytes: int) -> str:
    mb = nbytes / (1 << 20)
    lines = [f"registry_server: {mb:.0f} MiB in blobs, {CLIENTS} concurrent clients, push then pull "
             f"(medians of {min(len(v) for v in samples.values()) if samples else 0} runs)",
             f"  {'server':<36}{'push MB/s':>11}{'pull MB/s':>11}{'peak RSS MB':>13}"
             f"{'push ratio':>12}{'pull ratio':>12}{'RSS ratio':>11}"]
    meds = {}
    for label, ss in samples.items():
        meds[label] = (mb / statistics.median(s.push_s for s in ss), mb / statistics.median(s.pull_s for s in ss),
                       statistics.median(s.peak_rss_kb for s in ss) / 1024)
    base = next(iter(meds.values()), None)
    for label, (push, pull, rss) in meds.items():
        assert base is not None
        lines.append(f"  {label:<36}{push:>11.0f}{pull:>11.0f}{rss:>13.1f}"
                     f"{push / base[0]:>12.2f}{pull / base[1]:>12.2f}{rss / base[2]:>11.2f}")
    lines.append("  ratio = that server's median / dockyard's median (throughput: higher is better; "
                 "RSS: lower is better)")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.registry_server", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", "--runs", type=int, default=5)
    args = ap.parse_args()
    sides = _available()
    work = Workload.make()
    samples: dict[str, list[Sample]] = {label: [] for label in sides}
    with tempfile.TemporaryDirectory(prefix="dockyard-bench-") as wd:
        for start in sides.values():  # warm-up: page cache, Python bytecode
            one_run(start, work, Path(wd))
        for i in range(args.runs):
            order = list(sides.items()) if i % 2 == 0 else list(reversed(sides.items()))
            for label, start in order:
                samples[label].append(one_run(start, work, Path(wd)))
    print(report(samples, work.nbytes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
