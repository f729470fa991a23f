from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
import tempfile

import bench
from bench.harness import report, run_cases


def main() -> int:
    names = sorted(m.name for m in pkgutil.iter_modules(bench.__path__)
                   if m.name not in ("harness",) and not m.name.startswith("_"))
    ap = argparse.ArgumentParser(prog="python -m bench", description=bench.__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("name", nargs="?", choices=names)
    ap.add_argument("-n", "--runs", type=int, default=15)
    args = ap.parse_args()
    if not args.name:
        print("benchmarks:", " ".join(names))
        return 0
    mod = importlib.import_module(f"bench.{args.name}")
    with tempfile.TemporaryDirectory(prefix="dockyard-bench-") as wd:
        cases = mod.prepare(wd)
        try:
            results = run_cases(cases, runs=args.runs)
            print(report(args.name, results))
        finally:
            if hasattr(mod, "cleanup"):
                mod.cleanup(wd)
    return 0


if __name__ == "__main__":
    sys.exit(main())
