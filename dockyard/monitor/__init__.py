"""The per-container monitor (the role conmon and containerd-shim play).

``monitor.py`` in this package runs as its own small process, one per running container, started by
the engine with ``python -S -I monitor.py CONFIG``: it imports nothing from dockyard so it stays a few
megabytes.  ``protocol`` holds what the engine and the monitor agree on.
"""
