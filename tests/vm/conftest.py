"""Runs tests/vm/guest inside a VM that is a pure cgroup v2 host (tests/vm/vm.py).

On the host every guest test is collected as usual, then swapped for a stand-in with the same node
id: the first stand-in to run boots the VM once, which runs pytest on all the selected guest tests;
each stand-in then reports its own test's outcome from the guest (pass, skip with the guest's
reason, or failure with the guest's traceback).  Inside the VM (DOCKYARD_IN_VM=1) the guest tests
run for real.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

IN_VM = os.environ.get("DOCKYARD_IN_VM") == "1"
GUEST_DIR = Path(__file__).resolve().parent / "guest"
# The whole guest run happens inside the first stand-in; emulated (TCG) guests are slow.
VM_TIMEOUT = 2400
# Per guest test: each is a few container runs, well under a minute even emulated.
GUEST_TEST_TIMEOUT = 180


def _is_guest(item: pytest.Item) -> bool:
    return GUEST_DIR in Path(str(item.path)).parents


class _VMRun:
    """One VM boot for the whole session, started lazily by the first stand-in."""

    def __init__(self, nodeids: list[str]) -> None:
        self.nodeids = nodeids
        self.results: dict[str, dict] | None = None
        self.failure = ""

    def get(self) -> dict[str, dict]:
        if self.results is not None:
            return self.results
        from tests.vm import vm

        work = Path(tempfile.mkdtemp(prefix="dockyard-vm-"))
        try:
            repo = Path(__file__).resolve().parent.parent.parent
            cmd = (f"cd {shlex.quote(str(repo))} && DOCKYARD_IN_VM=1 DOCKYARD_VM_RESULTS=/run/vm/results.json "
                   f"exec {shlex.quote(sys.executable)} -m pytest -p no:cacheprovider -q -rfEs --timeout={GUEST_TEST_TIMEOUT} "
                   f"--basetemp=/tmp/pytest-vm " + " ".join(shlex.quote(n) for n in self.nodeids))
            r = vm.run(cmd, work, timeout=VM_TIMEOUT)
            res_file = r.out / "results.json"
            self.results = json.loads(res_file.read_text()) if res_file.exists() else {}
            sys.stderr.write(f"\n[tests/vm: {vm.accelerator()} guest ran {len(self.results)} tests in "
                             f"{r.seconds:.0f}s, guest pytest exit {r.rc}]\n")
            if not self.results:
                self.failure = (f"the VM produced no results (command exit {r.rc}, {r.seconds:.0f}s)\n"
                                f"--- guest output ---\n{r.log[-6000:]}\n--- console ---\n{r.console[-4000:]}")
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return self.results


def _stand_in(nodeid: str, run: _VMRun):
    def stand_in() -> None:
        results = run.get()
        if run.failure:
            pytest.fail(run.failure, pytrace=False)
        res = results.get(nodeid)
        if res is None:
            pytest.fail(f"{nodeid} did not run in the VM (the guest session stopped early?)", pytrace=False)
        if res["outcome"] == "skipped":
            pytest.skip(f"in the VM: {res['reason']}")
        if res["outcome"] == "xfailed":
            pytest.xfail(f"in the VM: {res['reason']}")
        if res["outcome"] != "passed":
            pytest.fail(f"in the pure cgroup v2 VM:\n{res['longrepr']}", pytrace=False)

    return stand_in


@pytest.hookimpl(trylast=True)  # after -k/-m deselection: the VM runs only what was selected
def pytest_collection_modifyitems(config, items):
    if IN_VM:
        return
    guest = [i for i in items if _is_guest(i)]
    if not guest:
        return
    from tests.vm import vm

    why = vm.unavailable()
    run = _VMRun([i.nodeid for i in guest])
    for n, item in enumerate(items):
        if not _is_guest(item):
            continue
        new = pytest.Function.from_parent(item.parent, name=item.name, callobj=_stand_in(item.nodeid, run))
        new.add_marker(pytest.mark.timeout(VM_TIMEOUT + 60))
        if why:
            new.add_marker(pytest.mark.skip(reason=f"cgroup v2 VM unavailable: {why}"))
        items[n] = new
