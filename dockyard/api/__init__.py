"""The Docker Engine API on a unix socket: another front end of the engine, like the CLI.

``dockyard system service [--time N] [unix:///path]`` serves it (``server.serve``).  Handlers translate
Docker's JSON to engine calls and engine results back to Docker's JSON; every state change is the
engine's.  Engine calls block (SQLite, subprocesses), so they run in worker threads, each with its
own ``Engine`` (a store connection is not shared across threads).
"""
