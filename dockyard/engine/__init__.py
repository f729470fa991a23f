"""The engine: the one library the CLI, the API server and compose call.

It is the only layer that changes state.  Callers get an ``Engine`` for a pair of storage roots
and use its domain services (``engine.system``, later ``engine.images``, ``engine.containers`` ...),
which take and return plain data (dataclasses / dicts) and raise ``dockyard.errors`` exceptions.
Services are created on first use so a command only pays for what it touches.
"""

from __future__ import annotations

import os
from functools import cached_property
from typing import TYPE_CHECKING

from dockyard.paths import Roots

if TYPE_CHECKING:
    from dockyard.engine.containers import ContainerService
    from dockyard.engine.images import ImageService
    from dockyard.engine.networks import NetworkService
    from dockyard.engine.registry import RegistryService
    from dockyard.engine.system import SystemService
    from dockyard.engine.volumes import VolumeService
    from dockyard.store.blobs import BlobStore
    from dockyard.store.db import Database


class Engine:
    def __init__(self, root: str | os.PathLike[str] | None = None,
                 runroot: str | os.PathLike[str] | None = None) -> None:
        self.roots = Roots.resolve(root, runroot)
        if os.geteuid() != 0:
            # Rootless: everything runs in the user's user + mount namespace (engine/rootless.py).
            from dockyard.engine.rootless import join

            join(self.roots.runroot)

    @cached_property
    def db(self) -> Database:
        from dockyard.store.db import Database

        self.roots.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        return Database(self.roots.db_path)

    @cached_property
    def blobs(self) -> BlobStore:
        from dockyard.store.blobs import BlobStore

        return BlobStore(self.roots.blobs, self.roots.tmp)

    @cached_property
    def system(self) -> SystemService:
        from dockyard.engine.system import SystemService

        return SystemService(self)

    @cached_property
    def images(self) -> ImageService:
        from dockyard.engine.images import ImageService

        return ImageService(self)

    @cached_property
    def registry(self) -> RegistryService:
        from dockyard.engine.registry import RegistryService

        return RegistryService(self)

    @cached_property
    def networks(self) -> NetworkService:
        from dockyard.engine.networks import NetworkService

        return NetworkService(self)

    @cached_property
    def containers(self) -> ContainerService:
        from dockyard.engine.containers import ContainerService

        return ContainerService(self)

    @cached_property
    def volumes(self) -> VolumeService:
        from dockyard.engine.volumes import VolumeService

        return VolumeService(self)

    def close(self) -> None:
        if "db" in self.__dict__:
            self.db.close()
