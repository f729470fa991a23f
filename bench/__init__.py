"""Benchmarks: dockyard against its peers, side by side.

``python -m bench`` lists them; ``python -m bench NAME [-n RUNS]`` runs one.  Each benchmark module
defines ``prepare(workdir) -> list[Case]`` and optionally ``cleanup(workdir)``.  Runs of the cases are
interleaved (A, B, A, B ...) so drift in machine load hits every side equally; the report gives
medians and each peer's ratio to dockyard.  Peers that are not installed are skipped, not failed.
"""
