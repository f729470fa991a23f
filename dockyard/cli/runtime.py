"""`dockyard runtime ...` reached through the click CLI (the `dockyard` console script).

`python -m dockyard runtime` and `dockyard-runtime` skip click entirely; this keeps the command in
`dockyard --help` and working from the main entry point with the same runc-style flags.
"""

from __future__ import annotations

import click


@click.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True,
                                 "help_option_names": []},
               add_help_option=False, help="runc-compatible low-level OCI runtime (spec, create, start, run ...).")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def runtime(args: tuple[str, ...]) -> None:
    from dockyard.runtime.cli import main

    main(list(args))
