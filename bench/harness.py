from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def dockyard(*args: str) -> list[str]:
    return [sys.executable, "-m", "dockyard", *args]


@dataclass
class Case:
    label: str
    argv: list[str] | None = None  # a command to time, or
    func: Callable[[], object] | None = None  # a Python callable to time
    needs: str | None = None  # program that must be on PATH, else the case is skipped
    before: Callable[[], object] | None = None  # untimed, before each run
    after: Callable[[], object] | None = None  # untimed, after each run
    env: dict[str, str] = field(default_factory=dict)

    def available(self) -> bool:
        return self.needs is None or shutil.which(self.needs) is not None

    def once(self) -> float:
        if self.before:
            self.before()
        env = dict(os.environ, PYTHONPATH=REPO, **self.env)
        t0 = time.perf_counter()
        if self.argv is not None:
            p = subprocess.run(self.argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
            dt = time.perf_counter() - t0
            if p.returncode != 0:
                raise RuntimeError(f"{self.label}: {' '.join(self.argv)} exited {p.returncode}: "
                                   f"{p.stderr.decode(errors='replace').strip()[-300:]}")
        else:
            assert self.func is not None
            self.func()
            dt = time.perf_counter() - t0
        if self.after:
            self.after()
        return dt


def run_cases(cases: list[Case], runs: int = 15, warmup: int = 2) -> list[tuple[Case, list[float]]]:
    live = [c for c in cases if c.available()]
    for c in cases:
        if not c.available():
            print(f"  skip {c.label}: {c.needs} not installed")
    for _ in range(warmup):
        for c in live:
            c.once()
    times: dict[str, list[float]] = {c.label: [] for c in live}
    for i in range(runs):
        order = live if i % 2 == 0 else list(reversed(live))
        for c in order:
            times[c.label].append(c.once())
    return [(c, times[c.label]) for c in live]


def report(name: str, results: list[tuple[Case, list[float]]], unit: str = "ms") -> str:
    if not results:
        return f"{name}: nothing ran"
    base = statistics.median(results[0][1])
    lines = [f"{name} ({len(results[0][1])} runs each, interleaved)",
             f"  {'case':<34}{'median ' + unit:>12}{'min':>10}{'max':>10}{'ratio':>8}"]
    for c, ts in results:
        med = statistics.median(ts)
        scale = 1000.0 if unit == "ms" else 1.0
        lines.append(f"  {c.label:<34}{med * scale:>12.1f}{min(ts) * scale:>10.1f}"
                     f"{max(ts) * scale:>10.1f}{med / base if base else 0:>8.2f}")
    lines.append(f"  ratio = case median / {results[0][0].label} median")
    return "\n".join(lines)
