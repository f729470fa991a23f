"""The command line: parses, calls the engine, prints.  No state changes happen here.

Subcommands live in one module per noun and are imported only when invoked, because Python
start-up is the cost every ``dockyard`` call pays.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

import click

from dockyard import __version__
from dockyard.errors import EXIT_ENGINE, DockyardError

# name -> "module:attribute".  Top-level verbs that Docker also accepts without a noun point at the
# same command objects as their `container`/`image` forms.
COMMANDS: dict[str, str] = {
    "version": "dockyard.cli.system:version",
    "info": "dockyard.cli.system:info",
    "system": "dockyard.cli.system:system",
    "network": "dockyard.cli.network:network",
    "volume": "dockyard.cli.volume:volume",
    "runtime": "dockyard.cli.runtime:runtime",
    "pull": "dockyard.cli.pull:pull",
    "push": "dockyard.cli.pull:push",
    "login": "dockyard.cli.login:login",
    "logout": "dockyard.cli.login:logout",
    "manifest": "dockyard.cli.manifest:manifest",
    "registry": "dockyard.cli.registry:registry",
    "image": "dockyard.cli.image:image",
    "images": "dockyard.cli.image:images",
    "rmi": "dockyard.cli.image:rmi",
    "tag": "dockyard.cli.image:image_tag",
    "save": "dockyard.cli.image:image_save",
    "load": "dockyard.cli.image:image_load",
    "import": "dockyard.cli.image:image_import",
    "history": "dockyard.cli.image:image_history",
    "build": "dockyard.cli.build:build",
    "builder": "dockyard.cli.build:builder",
    "compose": "dockyard.cli.compose:compose",
    "container": "dockyard.cli.container:container",
    "run": "dockyard.cli.container:run",
    "create": "dockyard.cli.container:create",
    "start": "dockyard.cli.container:start",
    "stop": "dockyard.cli.container:stop",
    "restart": "dockyard.cli.container:restart",
    "kill": "dockyard.cli.container:kill",
    "rm": "dockyard.cli.container:rm",
    "ps": "dockyard.cli.container:ps",
    "inspect": "dockyard.cli.container:inspect",
    "exec": "dockyard.cli.container:exec_",
    "logs": "dockyard.cli.container:logs",
    "wait": "dockyard.cli.container:wait",
    "attach": "dockyard.cli.container:attach",
    "top": "dockyard.cli.container:top",
    "stats": "dockyard.cli.container:stats",
    "diff": "dockyard.cli.container:diff",
    "cp": "dockyard.cli.container:cp",
    "rename": "dockyard.cli.container:rename",
    "pause": "dockyard.cli.container:pause",
    "unpause": "dockyard.cli.container:unpause",
    "port": "dockyard.cli.container:port",
    "export": "dockyard.cli.container:export",
    "commit": "dockyard.cli.container:commit",
    "pod": "dockyard.cli.pod:pod",
    "kube": "dockyard.cli.kube:kube",
    "play": "dockyard.cli.kube:play",
    "generate": "dockyard.cli.kube:generate",
}

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 110}


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use."""

    def __init__(self, *args: Any, lazy: dict[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = lazy or {}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(self.lazy))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        cmd = super().get_command(ctx, cmd_name)
        if cmd is not None:
            return cmd
        target = self.lazy.get(cmd_name)
        if target is None:
            return None
        mod, _, attr = target.partition(":")
        return getattr(importlib.import_module(mod), attr)

    def resolve_command(self, ctx: click.Context, args: list[str]) -> Any:
        name = args[0] if args else ""
        if name and not name.startswith("-") and self.get_command(ctx, name) is None:
            raise click.UsageError(f"unrecognized command `{ctx.command_path} {name}`")
        return super().resolve_command(ctx, args)


class CliState:
    """Per-invocation state handed to commands through ``ctx.obj``."""

    def __init__(self, root: str | None, runroot: str | None) -> None:
        self.root = root
        self.runroot = runroot
        self._engine: Any = None

    @property
    def engine(self) -> Any:
        if self._engine is None:
            from dockyard.engine import Engine

            self._engine = Engine(self.root, self.runroot)
            _ENGINES.append(self._engine)
        return self._engine


_ENGINES: list[Any] = []  # closed by main() on the way out


@click.group(cls=LazyGroup, lazy=COMMANDS, context_settings=CONTEXT_SETTINGS,
             help="dockyard: run and manage containers, daemonless and rootless-capable.")
@click.option("--root", envvar="DOCKYARD_ROOT", metavar="DIR",
              help="Persistent storage root (default /var/lib/dockyard, or ~/.local/share/dockyard).")
@click.option("--runroot", envvar="DOCKYARD_RUNROOT", metavar="DIR",
              help="Runtime state root (default /run/dockyard, or $XDG_RUNTIME_DIR/dockyard).")
@click.option("--log-level", default="warn", show_default=True,
              type=click.Choice(["debug", "info", "warn", "error", "fatal"]),
              help="Logging verbosity on stderr.")
@click.version_option(__version__, "-v", "--version", prog_name="dockyard",
                      message="dockyard version %(version)s")
@click.pass_context
def cli(ctx: click.Context, root: str | None, runroot: str | None, log_level: str) -> None:
    if log_level != "warn":
        # Only configured when asked: importing logging costs every `ps`/`run` several ms, and at the
        # default level Python's last-resort handler already prints warnings to stderr.
        import logging

        level = {"fatal": "CRITICAL"}.get(log_level, log_level.upper())
        logging.basicConfig(level=level, format="%(levelname)s: %(message)s", stream=sys.stderr)
    ctx.obj = CliState(root, runroot)


def fail(message: str, code: int = EXIT_ENGINE) -> None:
    click.echo(f"Error: {message}", err=True)
    sys.exit(code)


def main(argv: list[str] | None = None) -> None:
    from dockyard.fastcli import fast_exit

    try:
        _main(argv)
    except SystemExit as e:
        fast_exit(e.code, _ENGINES)


def _main(argv: list[str] | None) -> None:
    try:
        rv = cli.main(args=argv, prog_name="dockyard", standalone_mode=False)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except click.exceptions.Abort:
        fail("aborted", 130)
    except click.ClickException as e:
        # Docker and Podman both answer a bad flag or command with 125.
        msg = e.format_message()
        fail(msg[:1].lower() + msg[1:] if msg else "invalid usage", EXIT_ENGINE)
    except DockyardError as e:
        fail(str(e), e.exit_code)
    except KeyboardInterrupt:
        fail("interrupted", 130)
    except BrokenPipeError:
        # `dockyard ps | head` closing the pipe is not an error worth a traceback.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)
    sys.exit(rv if isinstance(rv, int) else 0)
