"""Checking registry credentials without storing them: Docker's ``POST /auth``.

``docker login`` against an API server asks the server to try the credentials and keeps them in
the client's own config, sending them back with each pull and push (``X-Registry-Auth``); the
server stores nothing, unlike ``dockyard login``, which writes the auth file.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dockyard.errors import InvalidArgument

if TYPE_CHECKING:
    from dockyard.engine import Engine


def check_login(engine: Engine, registry: str, username: str, password: str) -> str:
    """Raise ``Unauthorized`` unless the registry accepts the credentials; returns its host."""
    from dockyard.engine.registry import _registry_domain
    from dockyard.registry.client import Unauthorized

    if not username:
        raise InvalidArgument("username is required")
    if not password:
        raise InvalidArgument("password is required")
    domain = _registry_domain(registry)
    client = engine.registry.client(domain, creds=(username, password))
    try:
        client.ping()
    except Unauthorized as e:
        raise Unauthorized(f'logging into "{domain}": invalid username/password ({e})') from None
    finally:
        client.close()
    return domain
