"""Compose: a front end that turns compose files into engine calls.

``loader`` reads, interpolates, merges and validates the files into a ``Project`` (plain dicts);
``convert`` turns one service into the ``CreateOptions`` the CLI's ``run`` builds; ``project``
drives the engine (networks, volumes, images, containers) to make the project's state match.
Nothing here touches the store or the kernel: every state change is an engine call.
"""
