"""Guest side of tests/vm: reports each outcome to the host (DOCKYARD_VM_RESULTS) so the host's
stand-ins can mirror it.  On the host, tests/vm/conftest.py swaps every test here for a stand-in, so
none of them ever touches the host's own cgroups."""

from __future__ import annotations

import json
import os

from tests.vm.conftest import IN_VM

_results: dict[str, dict] = {}


def pytest_runtest_logreport(report):
    if not IN_VM:
        return
    entry = _results.setdefault(report.nodeid, {"outcome": "passed", "reason": "", "longrepr": ""})
    if hasattr(report, "wasxfail"):
        entry["outcome"] = "passed" if report.passed else "xfailed"
        entry["reason"] = report.wasxfail
    elif report.skipped and entry["outcome"] == "passed":
        entry["outcome"] = "skipped"
        lr = report.longrepr
        reason = lr[2] if isinstance(lr, tuple) else str(lr)
        entry["reason"] = reason.removeprefix("Skipped: ")
    elif report.failed:
        entry["outcome"] = "failed"
        entry["longrepr"] += f"[{report.when}] {report.longreprtext}\n"


    # After every report, so a guest that hangs or dies still hands back what it finished.
    dest = os.environ.get("DOCKYARD_VM_RESULTS")
    if dest:
        with open(dest + ".new", "w") as f:
            json.dump(_results, f)
        os.replace(dest + ".new", dest)

